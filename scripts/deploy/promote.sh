#!/usr/bin/env bash
# Shared body of scripts/promote-to-staging.sh and scripts/promote-to-production.sh.
#   promote.sh staging|production --version=vX.Y.Z [options]
# Options:
#   --target=local|k8s    local: instances on this host behind nginx (release.py state file);
#                         k8s: kubectl set image + rollout status on the environment's namespace
#   --state=FILE          release.py state (default $FACESOCIAL_DEPLOY_STATE)
#   --releases-dir=DIR    local: DIR/vX.Y.Z/facesocial is the release binary
#                         (default $FACESOCIAL_RELEASES_DIR or /opt/facesocial/releases)
#   --steps= --gate= --hold= --min-requests=   production canary settings (5,25,100 / 1% / 60s / 100)
#   --skip-preflight      do not run scripts/preflight.sh first
#   --dry-run             k8s: print the kubectl commands instead of running them
# Staging is a blue-green switch after a smoke test; production is a canary of the idle colour
# gated on its error rate, rolled back automatically when over the gate.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
envname=${1:?staging|production}; shift
version="" target=local state=${FACESOCIAL_DEPLOY_STATE:-} releases=${FACESOCIAL_RELEASES_DIR:-/opt/facesocial/releases}
steps=5,25,100 gate=0.01 hold=60 minreq=100 preflight=1 dry=0
for arg in "$@"; do
  case $arg in
    --version=*) version=${arg#*=} ;;
    --target=*) target=${arg#*=} ;;
    --state=*) state=${arg#*=} ;;
    --releases-dir=*) releases=${arg#*=} ;;
    --steps=*) steps=${arg#*=} ;;
    --gate=*) gate=${arg#*=} ;;
    --hold=*) hold=${arg#*=} ;;
    --min-requests=*) minreq=${arg#*=} ;;
    --skip-preflight) preflight=0 ;;
    --dry-run) dry=1 ;;
    *) echo "unknown option $arg" >&2; exit 2 ;;
  esac
done
say() { printf '[promote %s] %s\n' "$envname" "$*"; }
[[ $version =~ ^v[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.]+)?$ ]] || { echo "--version=vX.Y.Z is required (got '$version')" >&2; exit 2; }

if [ "$target" = k8s ]; then
  ns=facesocial-$envname
  image=${FACESOCIAL_IMAGE:-ghcr.io/example/facesocial}:$version
  run() { if [ $dry = 1 ]; then echo "+ $*"; else "$@"; fi; }
  say "rolling $image out to namespace $ns"
  run kubectl -n "$ns" set image deployment/facesocial "api=$image"
  if ! run kubectl -n "$ns" rollout status deployment/facesocial --timeout=10m; then
    say "rollout failed; undoing"
    run kubectl -n "$ns" rollout undo deployment/facesocial
    exit 1
  fi
  exit 0
fi

[ -n "$state" ] || { echo "--state=FILE or FACESOCIAL_DEPLOY_STATE is required" >&2; exit 2; }
run_dir=${FACESOCIAL_RUN_DIR:?set FACESOCIAL_RUN_DIR (instance env files)}
bin="$releases/$version/facesocial"
[ -x "$bin" ] || { echo "release binary $bin not found" >&2; exit 1; }
rel() { python3 "$here/release.py" --state "$state" "$@"; }

if [ $preflight = 1 ]; then "$root/scripts/preflight.sh" --quick; fi

# The idle colour is whichever has no traffic now.
idle=$(python3 - "$state" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
live = {d["instances"][n]["color"] for n in d["live"]}
colors = sorted({i["color"] for i in d["instances"].values()} - live)
print(colors[0] if colors else "")
PY
)
[ -n "$idle" ] || { echo "no idle colour to deploy to" >&2; exit 1; }
names=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(" ".join(sorted(n for n,i in d["instances"].items() if i["color"]==sys.argv[2])))' "$state" "$idle")
say "deploying $version to $idle ($names)"
for n in $names; do
  # Point the instance at the new binary, then restart it.
  sed -i '/^FACESOCIAL_BIN=/d' "$run_dir/$n.env"
  echo "FACESOCIAL_BIN=$bin" >> "$run_dir/$n.env"
  "$here/instance.sh" stop "$n" >/dev/null
  "$here/instance.sh" start "$n"
done

if [ "$envname" = staging ]; then
  image=${FACESOCIAL_SMOKE_IMAGE:-$root/../shared/testdata/obama.jpg}
  for n in $names; do
    addr=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["instances"][sys.argv[2]]["addr"])' "$state" "$n")
    for _ in $(seq 300); do [ "$(curl -s -o /dev/null -w '%{http_code}' "http://$addr/health/ready")" = 200 ] && break; sleep 0.2; done
    code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: image/jpeg' --data-binary "@$image" "http://$addr/v1/detect")
    [ "$code" = 200 ] || { say "smoke test failed on $n (detect -> $code); traffic unchanged"; exit 1; }
  done
  say "smoke tests passed; switching"
  rel switch --to "$idle" --version "$version"
else
  rel canary --to "$idle" --steps "$steps" --gate "$gate" --hold "$hold" --min-requests "$minreq" --version "$version"
fi
say "$version is live on $idle"
