#!/usr/bin/env python3
"""Every metric the alert rules and the Grafana dashboard query must be exported by the server.
Usage: check_metrics.py BASE_URL   (a running server; one detect request is sent first so that
labelled series exist). Host metrics (node_*) and Prometheus' own `up` are not the server's.
Exit 0 all present, 1 some missing, 77 the server has no /metrics yet (skip)."""
import json
import os
import re
import sys
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
for p in dash["panels"]:
    for t in p["targets"]:
        for n in names_in(t["expr"]):
            used.setdefault(n, set()).add("dashboard")
server_metrics = {n: w for n, w in used.items() if not n.startswith("node_") and n != "up"}

base = sys.argv[1].rstrip("/")
try:
    img = open(os.path.join(os.environ.get("FACESOCIAL_TESTDATA", os.path.join(root, "../shared/testdata")), "obama.jpg"), "rb").read()
    urllib.request.urlopen(urllib.request.Request(base + "/v1/detect", data=img, headers={"Content-Type": "image/jpeg"}), timeout=30).read()
    text = urllib.request.urlopen(base + "/metrics", timeout=10).read().decode()
except urllib.error.HTTPError as e:
    if e.code == 404:
        print(f"  SKIP: the server has no /metrics yet; the rules and dashboard need: {', '.join(sorted(server_metrics))}")
        sys.exit(77)
    raise
exported = set()
for line in text.splitlines():
    m = re.match(r"# TYPE (\S+)", line) or re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)", line)
    if m:
        exported.add(m.group(1))
missing = sorted(n for n in server_metrics if n not in exported)
for n in sorted(server_metrics):
    print(f"  {'ok     ' if n in exported else 'MISSING'} {n}  ({', '.join(sorted(server_metrics[n]))})")
sys.exit(1 if missing else 0)
