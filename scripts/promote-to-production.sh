#!/usr/bin/env bash
# Promote a release to production; see scripts/deploy/promote.sh for the options.
exec "$(dirname "$0")/deploy/promote.sh" production "$@"
