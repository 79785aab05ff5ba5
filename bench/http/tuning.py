"""Prints the tuning cache's choices as `model precision/HINT, …` for the benchmark report."""

import json
import sys

records = json.load(open(sys.argv[1]))
print(", ".join(f"{r['key'].split('|')[3]} {r['chosen']['precision']}/{r['chosen']['hint']}" for r in records.values()))
