#!/usr/bin/env python3
"""The reliability suite (issue 9): load and soak, faults, bad input, fuzzing, schemathesis and a
privacy scan, with one summary table. Run it through scripts/reliability.sh, which makes the venv,
starts PostgreSQL (primary + streaming replica) and cleans up; this file starts Redis and the servers.

  suite.py --mode smoke|full --work DIR [--only NAME,...] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import abuse  # noqa: E402
import badinput  # noqa: E402
import faults  # noqa: E402
import soak  # noqa: E402
from common import (ROOT, Postgres, Redis, Scenario, Server, free_port, image_signatures, log, login,  # noqa: E402
                    request, testimage)

# The main server's PostgreSQL statement silence limit and pool wait, which bound the answers in
# the frozen-primary scenario (the server's defaults are 30 s and 10 s; 2 s keeps it short).
STATEMENT_LIMIT_S, POOL_WAIT_S = 2, 10
PORTS = {"redis": 18301, "load": 18310, "main": 18311, "models": 18312, "sigterm": 18313, "abuse": 18314,
         "rcluster": 18315}
# The Redis Cluster scenario's six nodes; each one's cluster bus is its port + 10000.
CLUSTER_PORTS = list(range(18320, 18326))
PLANS = {
    #          load s, warm-up, bursts at, burst s, schemathesis s, fuzz s, sign-in hammering s
    "smoke": dict(load=45, warmup=20, bursts=[3, 12], burst_len=5, schema=25, fuzz=10, hammer=8),
    "full": dict(load=300, warmup=60, bursts=[20, 120, 180, 240], burst_len=10, schema=150, fuzz=90, hammer=30),
}


def run_schemathesis(sc: Scenario, server: Server, token: str, seconds: int, work: str) -> None:
    st = os.path.join(os.environ.get("RELIABILITY_VENV", os.path.join(ROOT, ".venv-reliability")), "bin", "schemathesis")
    if not os.path.exists(st):
        sc.skipped = "schemathesis not installed (scripts/reliability.sh makes the venv)"
        return
    report = os.path.join(work, "tools", "schemathesis")
    # Excluded: /v1/deepfake answers 503 MODEL_UNAVAILABLE by design while no deepfake model is
    # installed (none is in the manifest), which schemathesis would count as a server error.
    # docs/reliability.md says more.
    cmd = [st, "run", f"http://127.0.0.1:{server.port}/openapi.json", "-H", f"Authorization: Bearer {token}",
           "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,"
           "response_schema_conformance,response_headers_conformance",
           "--phases", "examples,coverage,fuzzing", "--max-time", str(seconds), "--seed", "20261127",
           "--workers", "2", "--request-timeout", "30", "--exclude-path", "/v1/deepfake",
           "--report", "json", "--report-dir", report, "--no-color"]
    t0 = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120, cwd=os.path.join(work, "tools"),
                       env={**os.environ, "SCHEMATHESIS_HOOKS": ""})  # cwd: its .schemathesis cache stays there
    out = p.stdout + p.stderr
    with open(os.path.join(work, "tools", "schemathesis.txt"), "w") as f:
        f.write(out)
    m = re.search(r"(\d+) generated", out)
    sc.requests = int(m.group(1)) if m else 0
    failures = re.findall(r"❌ (ST\d+ [^:]+): (\d+)", out)
    for name, n in failures:
        sc.codes[name] += int(n)
    blocks = re.split(r"\n_{5,} ", out)
    for b in blocks[1:]:
        head = b.splitlines()[0].strip(" _")
        kinds = re.findall(r"- (ST\d+ [^\n]+)", b)
        recv = re.findall(r"\[(\d{3})\] [^\n]*\n\n\s+`([^`]{0,300})", b)
        repro = re.search(r"(curl -X [^\n]+)", b)
        sc.unexpected.append(f"{head}: {', '.join(kinds)} {recv[:1]} {repro.group(1) if repro else ''}")
    sc.notes.append(f"schemathesis {seconds} s budget, ran {time.time() - t0:.0f} s; output in tools/schemathesis.txt")
    sc.check("schemathesis: no server error, no schema violation", p.returncode == 0 and not failures,
             f"exit {p.returncode}, {sum(int(n) for _, n in failures)} failures")


def run_fuzz(sc: Scenario, seconds: int, work: str) -> None:
    t0 = time.time()
    p = subprocess.run([os.path.join(ROOT, "scripts", "fuzz.sh"), str(seconds)], capture_output=True, text=True,
                       cwd=ROOT, timeout=seconds + 900)
    out = p.stdout + p.stderr
    with open(os.path.join(work, "tools", "fuzz.txt"), "w") as f:
        f.write(out)
    runs = re.search(r"stat::number_of_executed_units:\s*(\d+)", out) or re.search(r"Done (\d+) runs", out)
    sc.requests = int(runs.group(1)) if runs else 0
    crashed = p.returncode != 0 or "ERROR: libFuzzer" in out or "ERROR: AddressSanitizer" in out
    if crashed:
        sc.crashes += 1
        tail = [ln for ln in out.splitlines() if "ERROR" in ln or "SUMMARY" in ln or "artifact" in ln][:5]
        sc.unexpected.append("fuzz: " + " | ".join(tail or out.splitlines()[-5:]))
    sc.notes.append(f"libFuzzer on the JPEG/PNG/WebP/HEIC decoders: {sc.requests} inputs in {seconds} s "
                    f"({time.time() - t0:.0f} s with the harness build)")
    sc.check("fuzzer ran without a crash", not crashed and sc.requests > 0, f"exit {p.returncode}")


def privacy_scan(sc: Scenario, roots: list) -> None:
    """Every file under roots: database files (SQLite, PostgreSQL data and WAL), the Redis RDB and AOF,
    every server log and every server's TMPDIR."""
    files, total, hits = 0, 0, []
    for root in roots:
        for dp, _, fns in os.walk(root):
            for fn in fns:
                path = os.path.join(dp, fn)
                try:
                    with open(path, "rb") as f:
                        data = f.read()
                except OSError:
                    continue
                files += 1
                total += len(data)
                for h in image_signatures(data):
                    hits.append(f"{path}: {h}")
    sc.requests = files
    sc.notes.append(f"scanned {files} files, {total / 1e6:.1f} MB: {', '.join(roots)}")
    sc.unexpected += hits[:20]
    sc.check("no JPEG/PNG/WebP signature or base64 image opening in any file", not hits, f"{len(hits)} hits")
    # The scan finds the opening of a real photo planted among other bytes, and does not report
    # the three-byte chance match that random data (sealed embeddings in the WAL) contains.
    photo = testimage("obama.jpg")[:4096]
    sc.check("scan self-test finds a planted JPEG opening", bool(image_signatures(b"\x00" * 100 + photo + b"\x00" * 100)))
    chance = b"\x17\xff\xd8\xff\xe1\x9c\x03" + bytes(range(200))
    sc.check("scan self-test ignores a chance FF D8 FF", not image_signatures(chance))


def print_table(scenarios: list, mode: str, started: float) -> bool:
    rows = []
    for s in scenarios:
        errors = ", ".join(f"{k}×{v}" for k, v in sorted(s.codes.items(), key=lambda kv: -kv[1])) or "none"
        status = "SKIP" if s.skipped else ("PASS" if s.passed else "FAIL")
        rows.append((s.name, str(s.requests), errors, str(len(s.unexpected)),
                     "–" if s.lost_writes is None else str(s.lost_writes), str(s.crashes), status, f"{s.seconds:.0f}"))
    heads = ("scenario", "requests", "errors by code", "unexpected", "lost writes", "crashes", "result", "s")
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(heads)]
    widths[2] = min(widths[2], 200)
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(heads, widths)) + " |"
    print()
    print(f"Reliability suite ({mode}), {time.strftime('%Y-%m-%d %H:%M %Z')}, {time.time() - started:.0f} s")
    print(line)
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |")
    lost = sum(s.lost_writes or 0 for s in scenarios)
    crashes = sum(s.crashes for s in scenarios)
    fails = [s.name for s in scenarios if not s.passed and not s.skipped]
    print(f"\ntotal: {sum(s.requests for s in scenarios if s.name not in ('privacy scan',))} requests/inputs, "
          f"lost writes {lost}, crashes {crashes}, {len(fails)} failed{': ' + ', '.join(fails) if fails else ''}")
    for s in scenarios:
        for n in s.notes:
            print(f"  {s.name}: {n}")
        for name, ok, d in s.checks:
            if not ok:
                print(f"  {s.name}: FAILED CHECK {name}: {d}")
        for u in s.unexpected[:8]:
            print(f"  {s.name}: UNEXPECTED {u[:400]}")
        if len(s.unexpected) > 8:
            print(f"  {s.name}: ... {len(s.unexpected) - 8} more unexpected (see the JSON report)")
    return not fails


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=PLANS, default="full")
    ap.add_argument("--work", required=True)
    ap.add_argument("--only", default="")
    ap.add_argument("--json", default="")
    a = ap.parse_args()
    plan = PLANS[a.mode]
    only = set(filter(None, a.only.split(",")))
    want = lambda key: not only or key in only  # noqa: E731
    started = time.time()
    os.makedirs(os.path.join(a.work, "logs"), exist_ok=True)
    os.makedirs(os.path.join(a.work, "tools"), exist_ok=True)
    for name, port in [*PORTS.items(), *[("redis cluster", p) for p in CLUSTER_PORTS],
                       *[("redis cluster bus", p + 10000) for p in CLUSTER_PORTS]]:
        if not free_port(port):
            print(f"port {port} ({name}) is in use", file=sys.stderr)
            return 2

    scenarios: list = []
    servers: list = []
    redis = Redis(PORTS["redis"], a.work)
    pg = None

    def wait_postgres(timeout: float = 240):
        """scripts/reliability.sh starts PostgreSQL in the background and writes its exports here."""
        if os.environ.get("FACESOCIAL_TEST_POSTGRES_URL"):
            return Postgres()
        env_file = os.path.join(a.work, "pg.env")
        t0 = time.time()
        while not os.path.exists(env_file):
            if time.time() - t0 > timeout:
                raise RuntimeError(f"PostgreSQL did not start within {timeout:.0f} s (see {a.work}/pg.log)")
            time.sleep(0.5)
        if time.time() - t0 > 1:
            log(f"waited {time.time() - t0:.0f} s for PostgreSQL")
        for line in open(env_file):
            m = re.match(r"export (\w+)=(.*)$", line.strip())
            if m:
                os.environ[m.group(1)] = m.group(2)
        return Postgres()

    def scenario(key, name, fn, *args):
        sc = Scenario(name)
        scenarios.append(sc)
        if not want(key):
            sc.skipped = "not selected"
            return sc
        log(f"== {name}")
        t0 = time.time()
        try:
            fn(sc, *args)
        except Exception as e:  # a scenario that could not run is a failure, with its reason
            sc.check("scenario ran to the end", False, f"{type(e).__name__}: {e}")
            traceback.print_exc()
        sc.seconds = time.time() - t0
        for s in servers:
            if s.died_unexpectedly():
                sc.crashes += 1
                sc.unexpected.append(f"server {s.name} crashed (exit {s.proc.returncode}): "
                                     + " | ".join(s.log_crash_lines()[:4]))
                if s.name == "main":  # the later scenarios still run, on a restarted server
                    log("  the main server crashed; restarting it for the next scenarios")
                    try:
                        s.start()
                    except RuntimeError as e:
                        sc.unexpected.append(f"main server restart failed: {e}")
        return sc

    def make_server(name, env=None):
        s = Server(name, PORTS[name], a.work, env)
        servers.append(s)
        return s

    ledger = faults.Ledger()
    main_srv = None
    try:
        # 1. load and soak
        def load(sc):
            s = make_server("load", {"FACESOCIAL_CACHE_TTL_SECONDS": "0"})
            s.start()
            soak.run(sc, s, plan["load"], plan["warmup"], plan["bursts"], plan["burst_len"],
                     release_build="/debug/" not in os.environ.get("FACESOCIAL_BIN", ""))
            s.stop()
            sc.crashes += s.crashes
        scenario("load", "load and soak", load)

        # The main server: PostgreSQL primary + replica, Redis, debug logs (more to scan for privacy).
        pg = wait_postgres()
        redis.start()
        main_srv = make_server("main", {"DATABASE_URL": pg.primary_url, "DATABASE_REPLICA_URLS": pg.replica_url,
                                        "REDIS_URL": redis.url, "FACESOCIAL_LOG_LEVEL": "debug",
                                        "FACESOCIAL_DB_STATEMENT_TIMEOUT_MS": str(STATEMENT_LIMIT_S * 1000),
                                        "FACESOCIAL_DB_POOL_TIMEOUT_MS": str(POOL_WAIT_S * 1000)})
        main_srv.start()
        token = login(main_srv.port)

        scenario("badinput", "bad input", badinput.run, main_srv, token)
        def abuse_run(sc):
            s = make_server("abuse", abuse.ENV)
            s.start()
            abuse.run(sc, s, main_srv.port, plan["hammer"])
            s.stop()
            sc.crashes += s.crashes
        scenario("abuse", "abuse: sign-ins hammered, refresh races, slow clients", abuse_run)
        scenario("schemathesis", "schemathesis /openapi.json", run_schemathesis, main_srv, token, plan["schema"], a.work)
        scenario("redis", "fault: Redis killed, restarted", faults.redis_fault, main_srv, redis, token, ledger,
                 pg.primary_url)
        scenario("rcluster", "fault: Redis Cluster master killed, stopped, resharded", faults.redis_cluster_fault,
                 make_server, CLUSTER_PORTS, a.work)
        scenario("replica", "fault: PG replica killed", faults.replica_fault, main_srv, pg, token, ledger)
        scenario("primary", "fault: PG primary killed", faults.primary_fault, main_srv, pg, token, ledger)
        scenario("frozen", "fault: PG primary frozen", faults.frozen_primary_fault, main_srv, pg, token, ledger,
                 STATEMENT_LIMIT_S, POOL_WAIT_S)
        scenario("model", "fault: model file corrupted", faults.model_fault, make_server, a.work)

        def sigterm(sc):
            s = make_server("sigterm", {"FACESOCIAL_CACHE_TTL_SECONDS": "0"})
            s.start()
            faults.sigterm_fault(sc, s)
        scenario("sigterm", "fault: SIGTERM under load", sigterm)
        scenario("fuzz", "fuzz image decoders", run_fuzz, plan["fuzz"], a.work)

        def recheck(sc):
            if not main_srv.alive():
                main_srv.start()
            try:
                tok = login(main_srv.port)
            except RuntimeError as e:
                sc.check("sign in for the read-back", False, str(e)[:300])
                tok = token
            sc.requests = ledger.size()
            sc.lost_writes = ledger.verify(sc, main_srv.port, {"Authorization": f"Bearer {tok}"}, pg.primary_url)
            sc.check("every acknowledged write is in PostgreSQL at the end", sc.lost_writes == 0 and ledger.size() > 0,
                     f"{ledger.size()} acknowledged, {sc.lost_writes} missing")
        scenario("ledger", "acknowledged writes, at the end", recheck)
    except Exception as e:
        sc = Scenario("suite setup")
        sc.check("suite setup", False, f"{type(e).__name__}: {e}")
        scenarios.append(sc)
        traceback.print_exc()
    except KeyboardInterrupt:  # scripts/reliability.sh's time bound (SIGINT): report what ran
        sc = Scenario("time bound")
        sc.check("the suite finished within its time bound", False, "interrupted")
        scenarios.append(sc)
        if scenarios[-2].seconds == 0:
            scenarios[-2].check("scenario finished", False, "interrupted by the time bound")
    finally:
        for s in servers:
            if s.alive():
                s.stop()
        redis.save_and_stop()

    # Privacy: everything the servers, Redis and PostgreSQL wrote.
    roots = [os.path.join(a.work, "servers"), os.path.join(a.work, "logs"), redis.dir]
    if pg:
        roots.append(pg.dir)
    scenario("privacy", "privacy scan", privacy_scan, [r for r in roots if os.path.isdir(r)])

    ok = print_table(scenarios, a.mode, started)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"mode": a.mode, "seconds": round(time.time() - started), "passed": ok,
                       "scenarios": [s.to_dict() for s in scenarios]}, f, indent=2)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
