#!/usr/bin/env python3
"""Renders every deploy/k8s overlay with kubectl's built-in kustomize, validates the objects against
the Kubernetes schema (kubernetes-validate, strict), and checks what the deployment guide requires."""
import os
import re
import shutil
import subprocess
import sys

import yaml

root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
if not shutil.which("kubectl"):
    print("  SKIP no kubectl here: the overlays are rendered with kubectl kustomize")
    sys.exit(77)
out_dir = sys.argv[1]
validate = sys.argv[2]
key = lambda o: (o["kind"], o["metadata"]["name"])
# REDIS_CLUSTER_NODES as the server parses it: host:port seeds after one optional redis[s]:// prefix.
SEEDS = re.compile(r"(rediss?://([^@/]*@)?)?[^,/@:\s]+:[0-9]+(,[^,/@:\s]+:[0-9]+)*")
failures = []
overlays = sorted(os.listdir(os.path.join(root, "deploy/k8s/overlays")))
for ov in overlays:
    path = os.path.join(root, "deploy/k8s/overlays", ov)
    rendered = subprocess.run(["kubectl", "kustomize", path], capture_output=True, text=True)
    if rendered.returncode != 0:
        failures.append(f"{ov}: kubectl kustomize: {rendered.stderr.strip()}")
        continue
    objects = sorted((o for o in yaml.safe_load_all(rendered.stdout) if o), key=key)
    f = os.path.join(out_dir, f"{ov}.yaml")
    with open(f, "w") as out:
        yaml.safe_dump_all(objects, out, sort_keys=True)
    r = subprocess.run([validate, "--strict", "--quiet", f], capture_output=True, text=True)
    if r.returncode != 0:
        failures.append(f"{ov}: kubernetes-validate: {r.stdout}{r.stderr}")
    objs = {key(o): o for o in objects}
    dep = objs[("Deployment", "facesocial")]
    c = dep["spec"]["template"]["spec"]["containers"][0]
    checks = {
        "readiness probe /health/ready": c["readinessProbe"]["httpGet"]["path"] == "/health/ready",
        "liveness probe /health": c["livenessProbe"]["httpGet"]["path"] == "/health",
        "requests and limits": {"requests", "limits"} <= set(c["resources"]),
        "rolling update never below wanted": dep["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0,
        "HPA": ("HorizontalPodAutoscaler", "facesocial") in objs,
        "PDB": ("PodDisruptionBudget", "facesocial") in objs,
        "ConfigMap and Secret": ("ConfigMap", "facesocial-config") in objs and ("Secret", "facesocial-secrets") in objs,
        "Service and Ingress": ("Service", "facesocial") in objs and ("Ingress", "facesocial") in objs,
        "namespace": all(o["metadata"].get("namespace", "").startswith("facesocial-") for o in objects),
        "non-root": dep["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True,
    }
    secret = objs.get(("Secret", "facesocial-secrets"), {})
    env = {**(secret.get("data") or {}), **(secret.get("stringData") or {})}
    redis = {k for k in ("REDIS_URL", "REDIS_CLUSTER_NODES") if env.get(k)}
    if "redis-cluster" in ov:
        checks["Secret: REDIS_CLUSTER_NODES, no REDIS_URL"] = redis == {"REDIS_CLUSTER_NODES"} and "REDIS_URL" not in env
        checks["REDIS_CLUSTER_NODES host:port seeds"] = bool(SEEDS.fullmatch(env.get("REDIS_CLUSTER_NODES", "")))
    else:
        checks["Secret: REDIS_URL, no REDIS_CLUSTER_NODES"] = redis == {"REDIS_URL"}
    if "gpu" in ov:
        checks["requests nvidia.com/gpu"] = c["resources"]["limits"].get("nvidia.com/gpu") == 1
        checks["gpu image"] = c["image"].endswith("-gpu")
    for name, ok in checks.items():
        if not ok:
            failures.append(f"{ov}: {name}")
    print(f"  {ov}: {len(objects)} objects (kubectl kustomize), schema ok: {r.returncode == 0}, "
          f"{sum(checks.values())}/{len(checks)} guide checks")
for f in failures:
    print("  FAIL", f)
sys.exit(1 if failures else 0)
