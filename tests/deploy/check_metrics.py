#!/usr/bin/env python3
"""Every metric the alert rules and the Grafana dashboard query must be exported by the server.
Usage: check_metrics.py BASE_URL [REDIS_PID]   (a running server; one detect request is sent first
so that labelled series exist). Host metrics (node_*) and Prometheus' own `up` are not the server's.
The redis_* series exist only when the server has Redis (REDIS_URL), and redis_command_errors_total
only after a failed command: with REDIS_PID (the Redis server it uses, which this script may stop),
names still missing after the first scrape get a second one, after that Redis is stopped and one
more detect request is sent. Exit 0 all present, 1 some missing, 77 the server has no /metrics yet (skip)."""
import json
import os
import re
import signal
import sys
import time
import urllib.error
import urllib.request

import yaml

root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FUNCS = {"rate", "irate", "increase", "sum", "avg", "max", "min", "count", "histogram_quantile", "by",
         "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool",
         "abs", "clamp_min", "clamp_max", "delta", "deriv", "topk", "bottomk", "offset", "vector",
         "scalar", "time", "label_replace", "avg_over_time", "max_over_time", "min_over_time",
         "sum_over_time", "quantile", "stddev", "inf", "nan"}


def names_in(expr):
    expr = re.sub(r"\{[^}]*\}", "", expr)                 # label matchers
    expr = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", expr)  # grouping labels
    expr = re.sub(r"\[[^\]]*\]", "", expr)                # range selectors
    expr = re.sub(r"\boffset\s+-?[0-9a-z]+", "", expr)     # offset 1d
    expr = re.sub(r'"[^"]*"', "", expr)
    out = set()
    for tok in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr):
        if tok.lower() in FUNCS or ":" in tok:            # recording rules contain ':'
            continue
        out.add(re.sub(r"_(bucket|sum|count)$", "", tok) if tok.endswith(("_bucket",)) else tok)
    return out


used = {}
rules = yaml.safe_load(open(os.path.join(root, "deploy/prometheus/rules/facesocial.rules.yml")))
for g in rules["groups"]:
    for r in g["rules"]:
        for n in names_in(r["expr"]):
            used.setdefault(n, set()).add("rules")
dash = json.load(open(os.path.join(root, "deploy/grafana/dashboards/facesocial.json")))
for p in dash["panels"] + [q for p in dash["panels"] for q in p.get("panels", [])]:  # rows hold none or their own
    for t in p.get("targets", []):
        for n in names_in(t["expr"]):
            used.setdefault(n, set()).add("dashboard")
server_metrics = {n: w for n, w in used.items() if not n.startswith("node_") and n != "up"}

base = sys.argv[1].rstrip("/")
redis_pid = int(sys.argv[2]) if len(sys.argv) > 2 else None
img = open(os.path.join(os.environ.get("FACESOCIAL_TESTDATA", os.path.join(root, "../shared/testdata")), "obama.jpg"), "rb").read()


def scrape():
    """One detect request, then the names /metrics exports."""
    urllib.request.urlopen(urllib.request.Request(base + "/v1/detect", data=img, headers={"Content-Type": "image/jpeg"}), timeout=30).read()
    text = urllib.request.urlopen(base + "/metrics", timeout=10).read().decode()
    names = set()
    for line in text.splitlines():
        m = re.match(r"# TYPE (\S+)", line) or re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)", line)
        if m:
            names.add(m.group(1))
    return names


try:
    exported = scrape()
except urllib.error.HTTPError as e:
    if e.code == 404:
        print(f"  SKIP: the server has no /metrics yet; the rules and dashboard need: {', '.join(sorted(server_metrics))}")
        sys.exit(77)
    raise
after_outage = set()
if redis_pid and any(n not in exported for n in server_metrics):
    os.kill(redis_pid, signal.SIGKILL)
    for _ in range(50):
        try:
            os.kill(redis_pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    after_outage = scrape() - exported
    exported |= after_outage
missing = sorted(n for n in server_metrics if n not in exported)
for n in sorted(server_metrics):
    state = "MISSING" if n not in exported else "ok*    " if n in after_outage else "ok     "
    print(f"  {state} {n}  ({', '.join(sorted(server_metrics[n]))})")
if after_outage:
    print("  * exported once Redis was stopped")
if any(n.startswith("redis_") for n in missing) and not redis_pid:
    print("  (redis_* exist only while the server has Redis: redis_evicted_keys is read from it at scrape time,"
          " redis_command_errors_total appears after a failed command; pass REDIS_PID, and this script stops"
          " that Redis between its two scrapes)")
sys.exit(1 if missing else 0)
