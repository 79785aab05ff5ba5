#!/usr/bin/env python3
"""Renders every deploy/k8s overlay (kubectl kustomize when present, and always the bundled
kustomize_lite.py, which must agree with it), validates the objects against the Kubernetes
schema (kubernetes-validate, strict), and checks what the deployment guide requires."""
import os
import shutil
import subprocess
import sys

import yaml

root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(root, "scripts", "deploy"))
import kustomize_lite  # noqa: E402

out_dir = sys.argv[1]
validate = sys.argv[2]
key = lambda o: (o["kind"], o["metadata"]["name"])
failures = []
overlays = sorted(os.listdir(os.path.join(root, "deploy/k8s/overlays")))
for ov in overlays:
    path = os.path.join(root, "deploy/k8s/overlays", ov)
    lite = sorted(kustomize_lite.render(path), key=key)
    renderer = "kustomize_lite"
    if shutil.which("kubectl"):
        real = sorted((o for o in yaml.safe_load_all(subprocess.check_output(["kubectl", "kustomize", path])) if o), key=key)
        if real != lite:
            failures.append(f"{ov}: kustomize_lite.py differs from kubectl kustomize")
        renderer = "kubectl kustomize = kustomize_lite"
    f = os.path.join(out_dir, f"{ov}.yaml")
    yaml.safe_dump_all(lite, open(f, "w"), sort_keys=True)
    r = subprocess.run([validate, "--strict", "--quiet", f], capture_output=True, text=True)
    if r.returncode != 0:
        failures.append(f"{ov}: kubernetes-validate: {r.stdout}{r.stderr}")
    objs = {key(o): o for o in lite}
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
        "namespace": all(o["metadata"].get("namespace", "").startswith("facesocial-") for o in lite),
        "non-root": dep["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True,
    }
    if "gpu" in ov:
        checks["requests nvidia.com/gpu"] = c["resources"]["limits"].get("nvidia.com/gpu") == 1
        checks["gpu image"] = c["image"].endswith("-gpu")
    for name, ok in checks.items():
        if not ok:
            failures.append(f"{ov}: {name}")
    print(f"  {ov}: {len(lite)} objects ({renderer}), schema ok: {r.returncode == 0}, "
          f"{sum(checks.values())}/{len(checks)} guide checks")
for f in failures:
    print("  FAIL", f)
sys.exit(1 if failures else 0)
