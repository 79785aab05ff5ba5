#!/usr/bin/env bash
# Promote a release to staging; see scripts/deploy/promote.sh for the options.
exec "$(dirname "$0")/deploy/promote.sh" staging "$@"
