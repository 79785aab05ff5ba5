"""Turns bench-http.sh's JSON lines into the markdown tables of docs/benchmarks.md."""

import json
import os
import platform
import sys

path, duration = sys.argv[1], sys.argv[2]
rows = [json.loads(line) for line in open(path)]
runs = {(r["server"], r["endpoint"], r["concurrency"]): r["result"] for r in rows if "result" in r}
rss = {r["server"]: r["rss_mb"] for r in rows if "rss_mb" in r}
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
print(f"Machine: {cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}; {duration} s per run.\n")
print("| endpoint | concurrency | server | req/s | p50 ms | p95 ms | p99 ms | errors |")
print("|---|---|---|---|---|---|---|---|")
for (server, endpoint, c), r in sorted(runs.items(), key=lambda kv: (kv[0][1], kv[0][2], kv[0][0])):
    rps = r["requests"] / r["seconds"]
    errors = r["socket_errors"] + r["non2xx"]
    print(f"| {endpoint} | {c} | {server} | {rps:.1f} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} | {r['p99_ms']:.1f} | {errors} |")

print("\n| ratio (FaceSocial / peer) | value |")
print("|---|---|")
def rps(server, endpoint, c):
    r = runs.get((server, endpoint, c))
    return r["requests"] / r["seconds"] if r else None
peers = ("peer-w1", "peer-w2", "peer-w2t1")
for c in sorted({k[2] for k in runs}):
    for endpoint in ("detect", "verify"):
        for peer in peers:
            a, b = rps("facesocial", endpoint, c), rps(peer, endpoint, c)
            if a and b:
                print(f"| {endpoint} throughput c={c} vs {peer} | {a / b:.2f}× |")
        # Against the peer configuration that did best on this route at this concurrency.
        best = max((rps(p, endpoint, c) or 0, p) for p in peers)
        a = rps("facesocial", endpoint, c)
        if a and best[0]:
            print(f"| **{endpoint} throughput c={c} vs the best peer ({best[1]})** | **{a / best[0]:.2f}×** |")
for endpoint in ("detect", "verify"):
    for peer in peers:
        a, b = runs.get(("facesocial", endpoint, 16)), runs.get((peer, endpoint, 16))
        if a and b:
            print(f"| {endpoint} p99 c=16 vs {peer} | {a['p99_ms'] / b['p99_ms']:.2f}× |")
    a, b = runs.get(("facesocial", endpoint, 1)), runs.get(("peer-w1", endpoint, 1))
    if a and b:
        print(f"| {endpoint} single-request p50 vs peer-w1 | {a['p50_ms'] / b['p50_ms']:.2f}× |")
print("\n| server | RSS after load (MB) |")
print("|---|---|")
for server, mb in rss.items():
    print(f"| {server} | {mb} |")

# The ceilings from `facesocial bench routes` (same run, before the HTTP runs), against the HTTP
# throughput at concurrency 16.
ceilings = [r for r in rows if "ceiling" in r]
if ceilings:
    print("\n| route | photo | CPU ms per request | ceiling req/s | in process, 16 at once | HTTP c=16 req/s | HTTP ÷ ceiling |")
    print("|---|---|---|---|---|---|---|")
    for r in ceilings:
        http = rps("facesocial", r["route"], 16)
        share = f"{http / r['ceiling'] * 100:.0f} %" if http else "–"
        http_text = f"{http:.1f}" if http else "–"
        print(f"| {r['route']} | {r['photo']} | {r['cpuMs']:.2f} | {r['ceiling']:.1f} | {r['inProcess']:.1f} | {http_text} | {share} |")
tuning = [r for r in rows if "tuning" in r]
if tuning:
    print("\nTuning chosen on this machine (`facesocial tune`): " + tuning[0]["tuning"])
