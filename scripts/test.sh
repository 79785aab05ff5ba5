#!/usr/bin/env bash
# Runs every test against the installed models and the shared test photos.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export FACESOCIAL_MODEL_DIR=${FACESOCIAL_MODEL_DIR:-$root/var/models}
export FACESOCIAL_MODEL_MANIFEST=${FACESOCIAL_MODEL_MANIFEST:-$root/models/manifest.json}
export FACESOCIAL_TESTDATA=${FACESOCIAL_TESTDATA:-$root/../shared/testdata}
# A PostgreSQL primary with a streaming replica for the gallery tests, stopped on exit.
if [ -z "${FACESOCIAL_TEST_POSTGRES_URL:-}" ]; then
  services=$("$root/scripts/test-services/postgres.sh" start)
  eval "$services"
  trap '"$root/scripts/test-services/postgres.sh" stop "$FACESOCIAL_TEST_POSTGRES_DIR"' EXIT
fi
# The log is long (request lines); on failure, repeat what failed at the end where CI's tail shows it.
if ! swift test 2>&1 | tee "$root/.build/test.log"; then
  echo "---- swift test failed; the failing tests and their issues:" >&2
  grep -E '✘|recorded an issue|error:|Fatal error|Expectation failed' "$root/.build/test.log" | tail -60 >&2 || true
  exit 1
fi
# The web console in headless chromium (tests/console, about a minute): sign-in, every page,
# roles, 360 px, storage; its screenshots go to docs/console/.
FACESOCIAL_BIN="$root/.build/debug/facesocial" tests/console/run.sh
# Every deployment check (about 2 minutes): hadolint, compose schema, promtool, Kubernetes overlays,
# metrics used = exported, nginx in front of four instances through blue-green / canary / rollback /
# rolling restart under load, and backup/restore with measured restore times. The debug binary the
# tests just built serves; `make test-deploy` runs the same with the release build.
FACESOCIAL_BIN="$root/.build/debug/facesocial" tests/deploy/run.sh all
# Reliability smoke (docs/reliability.md): load with bursts, faults, bad input, fuzz, schemathesis,
# privacy scan, about 4 minutes, on the same debug binary.
FACESOCIAL_BIN="$root/.build/debug/facesocial" scripts/reliability.sh smoke
# Containers with podman (about 3 minutes; docs/deployment.md, "Tests"): the CPU image's runtime
# stage around the debug binary just built, run hardened, through the docker CLI, and the production
# compose stack behind nginx TLS with a rolling update. `make test-containers` adds the full
# multi-stage image builds (CPU and GPU), which do not fit this budget.
scripts/containers/install.sh
FACESOCIAL_BIN="$root/.build/debug/facesocial" tests/containers/run.sh quick
