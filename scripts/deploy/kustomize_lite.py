#!/usr/bin/env python3
"""Renders deploy/k8s overlays where no kustomize or kubectl is installed (Debian ships neither
in a usable version). Implements only what deploy/k8s uses: resources (files and kustomization
folders), namespace, labels (metadata only), patches (strategic merge of whole objects, lists of
named items merged by name) and images (newName/newTag). tests/deploy checks that its output
equals `kubectl kustomize` wherever kubectl exists.
Usage: kustomize_lite.py DIR > rendered.yaml"""
import copy
import os
import sys

import yaml


def merge(base, patch):
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for k, v in patch.items():
            out[k] = merge(base[k], v) if k in base else copy.deepcopy(v)
        return out
    named = lambda xs: isinstance(xs, list) and xs and all(isinstance(x, dict) and "name" in x for x in xs)
    if named(base) and named(patch):
        out, new = [copy.deepcopy(x) for x in base], []
        for p in patch:
            for i, b in enumerate(out):
                if b["name"] == p["name"]:
                    out[i] = merge(b, p)
                    break
            else:
                new.append(copy.deepcopy(p))
        return new + out  # kustomize puts items the patch adds first
    return copy.deepcopy(patch)


def containers(obj):
    spec = obj.get("spec", {}).get("template", {}).get("spec", {})
    return spec.get("containers", []) + spec.get("initContainers", [])


def render(d):
    k = yaml.safe_load(open(os.path.join(d, "kustomization.yaml")))
    objs = []
    for r in k.get("resources", []):
        path = os.path.join(d, r)
        if os.path.isdir(path):
            objs += render(path)
        else:
            objs += [o for o in yaml.safe_load_all(open(path)) if o]
    for p in k.get("patches", []):
        for patch in yaml.safe_load_all(open(os.path.join(d, p["path"]))):
            if not patch:
                continue
            hit = [i for i, o in enumerate(objs)
                   if o["kind"] == patch["kind"] and o["metadata"]["name"] == patch["metadata"]["name"]]
            if not hit:
                raise SystemExit(f"patch {p['path']}: no {patch['kind']}/{patch['metadata']['name']}")
            for i in hit:
                objs[i] = merge(objs[i], patch)
    for img in k.get("images", []):
        for o in objs:
            for c in containers(o):
                name, _, tag = c["image"].partition(":")
                if name == img["name"]:
                    c["image"] = f"{img.get('newName', name)}:{img.get('newTag', tag or 'latest')}"
    for lab in k.get("labels", []):
        for o in objs:
            o["metadata"].setdefault("labels", {}).update(lab["pairs"])
    if "namespace" in k:
        for o in objs:
            o["metadata"]["namespace"] = k["namespace"]
    return objs


if __name__ == "__main__":
    yaml.safe_dump_all(render(sys.argv[1]), sys.stdout, sort_keys=True)
