#!/usr/bin/env python3
"""Release control for FaceSocial instances behind nginx: blue-green switch, gated canary,
rolling restart and rollback. Standard library only, so it runs on any host with python3.

State lives in one JSON file (--state or FACESOCIAL_DEPLOY_STATE):
  nginx_cmd      command that runs nginx for this deployment, e.g. ["nginx", "-p", P, "-c", C]
                 or ["docker", "compose", "exec", "-T", "nginx", "nginx"]; "-t" and
                 "-s reload" are appended
  upstream_file  the file that defines `upstream facesocial_live` (included by nginx.conf)
  access_log     nginx access log (log_format facesocial) used when /metrics is missing
  instance_ctl   command taking `start NAME` / `stop NAME` (scripts/deploy/instance.sh)
  instances      {name: {"addr": "host:port", "color": "blue"|"green"}}
  live           {name: weight} routed now; down: [names] drained; history: previous lives
"""
import argparse
import json
import math
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request


def log(msg):
    print(f"[release {time.strftime('%H:%M:%S')}] {msg}", flush=True)


class State:
    def __init__(self, path):
        self.path = path
        with open(path) as f:
            self.d = json.load(f)
        self.d.setdefault("live", {})
        self.d.setdefault("down", [])
        self.d.setdefault("history", [])
        self.d.setdefault("versions", {})

    def save(self):
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.d, f, indent=2, sort_keys=True)
        os.replace(tmp, self.path)  # atomic: a crash never leaves half a state file

    def addr(self, name):
        return self.d["instances"][name]["addr"]

    def color_of(self, name):
        return self.d["instances"][name]["color"]

    def names(self, color=None):
        return sorted(n for n, i in self.d["instances"].items() if color is None or i["color"] == color)

    def live_colors(self):
        return sorted({self.color_of(n) for n in self.d["live"]})


# nginx -------------------------------------------------------------------------------------------

def render_upstream(state):
    lines = ["# Written by scripts/deploy/release.py; edit the state file, not this one.",
             "upstream facesocial_live {"]
    for name in sorted(state.d["live"]):
        w = state.d["live"][name]
        flags = " down" if name in state.d["down"] else ""
        lines.append(f"    server {state.addr(name)} weight={w} max_fails=3 fail_timeout=10s{flags};  # {name}")
    # Idle upstream connections close before the server's own idle timeout (45 s) closes them.
    lines += ["    keepalive 32;", "    keepalive_timeout 30s;", "}", ""]
    return "\n".join(lines)


def apply(state, note):
    """Write the upstream, check the whole nginx config, reload; restore the old file on failure."""
    live_up = [n for n in state.d["live"] if n not in state.d["down"] and state.d["live"][n] > 0]
    if not live_up:
        raise SystemExit("refusing to route traffic to no instance at all")
    path = state.d["upstream_file"]
    old = open(path).read() if os.path.exists(path) else None
    with open(path + ".tmp", "w") as f:
        f.write(render_upstream(state))
    os.replace(path + ".tmp", path)
    cmd = state.d["nginx_cmd"]
    t = subprocess.run(cmd + ["-t", "-q"], capture_output=True, text=True)
    if t.returncode != 0:
        if old is not None:
            with open(path, "w") as f:
                f.write(old)
        raise SystemExit(f"nginx -t failed, upstream restored:\n{t.stderr}")
    subprocess.run(cmd + ["-s", "reload"], check=True, capture_output=True)
    time.sleep(0.3)  # new workers take over within milliseconds; old ones finish their requests
    state.save()
    log(f"{note}: " + ", ".join(f"{n}={state.d['live'][n]}{'(down)' if n in state.d['down'] else ''}"
                                  for n in sorted(state.d["live"])))


# probes ------------------------------------------------------------------------------------------

def http_status(url, timeout=2.0):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            r.read()
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except Exception:
        return None


def wait_ready(state, name, timeout):
    deadline = time.time() + timeout
    url = f"http://{state.addr(name)}/health/ready"
    while time.time() < deadline:
        if http_status(url) == 200:
            return True
        time.sleep(0.2)
    return False


METRIC_LINE = re.compile(r'^http_requests_total\{([^}]*)\}\s+([0-9.eE+-]+)')


def metrics_counts(addr):
    """(total, 5xx) from the instance's /metrics, or None while it has no /metrics."""
    try:
        # In production /metrics answers to the scraper's token (FACESOCIAL_METRICS_TOKEN).
        headers = {}
        if os.environ.get("FACESOCIAL_METRICS_TOKEN"):
            headers["Authorization"] = "Bearer " + os.environ["FACESOCIAL_METRICS_TOKEN"]
        request = urllib.request.Request(f"http://{addr}/metrics", headers=headers)
        with urllib.request.urlopen(request, timeout=2) as r:
            text = r.read().decode()
    except Exception:
        return None
    total = errors = 0.0
    for line in text.splitlines():
        m = METRIC_LINE.match(line)
        if not m:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
        if labels.get("route", "").startswith(("/metrics", "/health")):
            continue  # probes would dilute the rate
        v = float(m.group(2))
        total += v
        if labels.get("status", "").startswith("5"):
            errors += v
    return total, errors


class ErrorMeter:
    """Counts requests and 5xx answers of some instances from a starting point on: from each
    instance's /metrics when all have one, else from nginx's access log (upstream_addr/status)."""

    def __init__(self, state, names):
        self.state, self.names = state, names
        self.base = {n: metrics_counts(state.addr(n)) for n in names}
        self.source = "metrics" if all(self.base.values()) else "nginx-log"
        log_path = state.d.get("access_log")
        self.offset = os.path.getsize(log_path) if log_path and os.path.exists(log_path) else 0

    def read(self):
        if self.source == "metrics":
            total = errors = 0.0
            for n in self.names:
                now = metrics_counts(self.state.addr(n)) or self.base[n]
                total += now[0] - self.base[n][0]
                errors += now[1] - self.base[n][1]
            return int(total), int(errors)
        addrs = {self.state.addr(n) for n in self.names}
        total = errors = 0
        with open(self.state.d["access_log"], "rb") as f:
            f.seek(self.offset)
            for raw in f:
                line = raw.decode(errors="replace")
                ua = re.search(r'ua="([^"]*)"', line)
                us = re.search(r'us="([^"]*)"', line)
                if not ua or not us or '"GET /health' in line:
                    continue
                for a, s in zip(re.split(r"[,:]\s+|\s:\s", ua.group(1)), re.split(r"[,:]\s+|\s:\s", us.group(1))):
                    a, s = a.strip(), s.strip()
                    if a in addrs:
                        total += 1
                        errors += s.startswith("5")
        return total, errors


# commands ----------------------------------------------------------------------------------------

def cmd_init(a):
    inst = {}
    for spec in a.instance:
        name, addr, color = spec.split("=")[0], *spec.split("=")[1].rsplit("@", 1)
        inst[name] = {"addr": addr, "color": color}
    d = {"nginx_cmd": a.nginx_cmd.split(), "upstream_file": a.upstream_file,
         "access_log": a.access_log, "instance_ctl": a.instance_ctl.split(), "instances": inst,
         "live": {n: 1 for n, i in inst.items() if i["color"] == a.live}, "down": [], "history": [],
         "versions": {}}
    with open(a.state, "w") as f:
        json.dump(d, f, indent=2, sort_keys=True)
    s = State(a.state)
    if a.apply:
        apply(s, "initial upstream")
    else:  # nginx may not run yet: only write the file it will start with
        with open(a.upstream_file, "w") as f:
            f.write(render_upstream(s))


def cmd_status(a, s):
    print(json.dumps({"live": s.d["live"], "down": s.d["down"], "versions": s.d["versions"],
                      "live_colors": s.live_colors()}, indent=2))


def cmd_switch(a, s):
    target = s.names(a.to)
    if not target:
        raise SystemExit(f"no instances of colour {a.to}")
    for n in target:
        if not wait_ready(s, n, a.ready_timeout):
            raise SystemExit(f"{n} is not ready; switch aborted, traffic unchanged")
    s.d["history"].append(dict(s.d["live"]))
    s.d["live"] = {n: 1 for n in target}
    s.d["down"] = [n for n in s.d["down"] if n not in target]
    if a.version:
        s.d["versions"][a.to] = a.version
    apply(s, f"blue-green switch to {a.to}")


def canary_weights(stable, target, pct):
    if pct >= 100:
        return {n: 1 for n in target}
    ws, wt = len(target) * (100 - pct), len(stable) * pct
    g = math.gcd(ws, wt)
    w = {n: ws // g for n in stable}
    w.update({n: wt // g for n in target})
    return w


def cmd_canary(a, s):
    target = s.names(a.to)
    stable = [n for n in s.d["live"] if n not in target]
    if not stable:
        raise SystemExit(f"{a.to} already takes all traffic")
    for n in target:
        if not wait_ready(s, n, a.ready_timeout):
            raise SystemExit(f"{n} is not ready; canary not started, traffic unchanged")
    before = dict(s.d["live"])
    s.d["history"].append(before)
    steps = [int(x) for x in a.steps.split(",")]
    for pct in steps:
        meter = ErrorMeter(s, target)
        s.d["live"] = canary_weights(stable, target, pct)
        apply(s, f"canary {a.to} at {pct}%")
        # Hold at least --hold seconds and until the canary has seen --min-requests requests.
        t0 = time.time()
        while True:
            time.sleep(0.5)
            total, errors = meter.read()
            waited = time.time() - t0
            if waited >= a.hold and total >= a.min_requests:
                break
            if waited >= a.max_hold:
                break
        rate = errors / total if total else 0.0
        log(f"canary {a.to} at {pct}%: {total} requests, {errors} 5xx, error rate {rate:.2%} "
            f"(gate {a.gate:.2%}, source {meter.source})")
        if rate > a.gate:
            s.d["live"] = s.d["history"].pop()
            apply(s, "canary rolled back (error rate over the gate)")
            raise SystemExit(2)
        if total < a.min_requests:
            s.d["live"] = s.d["history"].pop()
            apply(s, "canary rolled back (too little traffic to judge)")
            raise SystemExit(3)
    if a.version:
        s.d["versions"][a.to] = a.version
    s.save()
    log(f"canary {a.to} promoted to 100%")


def ctl(s, verb, name):
    subprocess.run(s.d["instance_ctl"] + [verb, name], check=True)


def cmd_rolling(a, s):
    names = a.names.split(",") if a.names else sorted(s.d["live"])
    for name in names:
        up = [n for n in s.d["live"] if n != name and n not in s.d["down"] and s.d["live"][n] > 0]
        if not up:
            raise SystemExit(f"restarting {name} would leave no instance serving; add one first")
        s.d["down"].append(name)
        apply(s, f"drain {name}")
        time.sleep(a.drain_wait)
        t0 = time.time()
        ctl(s, "stop", name)  # SIGTERM: the server stops accepting and finishes in-flight requests
        ctl(s, "start", name)
        if not wait_ready(s, name, a.ready_timeout):
            raise SystemExit(f"{name} did not become ready within {a.ready_timeout}s; "
                             "rolling restart halted with it drained")
        s.d["down"].remove(name)
        apply(s, f"{name} back after {time.time() - t0:.1f}s")


def cmd_rollback(a, s):
    if not s.d["history"]:
        raise SystemExit("nothing to roll back to")
    prev = s.d["history"].pop()
    for n in prev:
        if not wait_ready(s, n, a.ready_timeout):
            raise SystemExit(f"{n} of the previous release is not ready; start it first")
    s.d["live"], s.d["down"] = prev, []
    apply(s, "rollback")


def cmd_render(a, s):
    apply(s, "render")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--state", default=os.environ.get("FACESOCIAL_DEPLOY_STATE"))
    sub = p.add_subparsers(dest="cmd", required=True)
    i = sub.add_parser("init", help="write a state file")
    i.add_argument("--nginx-cmd", required=True)
    i.add_argument("--upstream-file", required=True)
    i.add_argument("--access-log", default="")
    i.add_argument("--instance-ctl", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "instance.sh"))
    i.add_argument("--instance", action="append", required=True, help="NAME=HOST:PORT@COLOR")
    i.add_argument("--live", default="blue")
    i.add_argument("--apply", action="store_true")
    sub.add_parser("status")
    sub.add_parser("render", help="rewrite the upstream from the state and reload nginx")
    sw = sub.add_parser("switch", help="blue-green: route everything to one colour")
    sw.add_argument("--to", required=True)
    sw.add_argument("--version", default="")
    c = sub.add_parser("canary", help="shift traffic to a colour in steps, gated on its error rate")
    c.add_argument("--to", required=True)
    c.add_argument("--steps", default="5,25,100")
    c.add_argument("--gate", type=float, default=0.01, help="largest 5xx rate allowed (0.01 = 1%%)")
    c.add_argument("--hold", type=float, default=60, help="seconds at each step at least")
    c.add_argument("--max-hold", type=float, default=600, help="give up waiting for traffic after this")
    c.add_argument("--min-requests", type=int, default=100)
    c.add_argument("--version", default="")
    r = sub.add_parser("rolling-restart", help="drain, SIGTERM, start, await readiness, re-enable; one by one")
    r.add_argument("--names", default="")
    r.add_argument("--drain-wait", type=float, default=1.0)
    rb = sub.add_parser("rollback", help="route to the previous set of instances")
    for sp in (sw, c, r, rb):
        sp.add_argument("--ready-timeout", type=float, default=60)
    a = p.parse_args()
    if not a.state:
        raise SystemExit("--state or FACESOCIAL_DEPLOY_STATE is required")
    if a.cmd == "init":
        return cmd_init(a)
    s = State(a.state)
    {"status": cmd_status, "render": cmd_render, "switch": cmd_switch, "canary": cmd_canary,
     "rolling-restart": cmd_rolling, "rollback": cmd_rollback}[a.cmd](a, s)


if __name__ == "__main__":
    main()
