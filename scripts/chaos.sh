#!/usr/bin/env bash
# Chaos run: a Redis with AOF (appendfsync always) and three daemons on
# 127.0.0.1 take a known set of jobs over POST /run while each of three
# rounds SIGKILLs and restarts a daemon, SIGSTOPs Redis for longer than a job
# lease, restarts Redis, and kills another daemon; garbage requests and a
# limiter probe run throughout. Prints one summary line and exits non-zero
# on any loss (a lost or wrong job, unexplained extra attempts, a limiter
# over its policy, a 5xx for garbage, a daemon not ready again).
# The logic lives in internal/chaos (its test runs a short version in
# `make test`); this script runs the long version, without -race.
#
#   scripts/chaos.sh        (no arguments; -h or --help prints this and exits)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
if [ $# -gt 0 ]; then
  case "$1" in
    -h|--help) sed -n '2,/^set -/{/^set -/!p}' "$0"; exit 0 ;;
    *) echo "chaos: unknown argument $1 (it takes none; see --help)" >&2; exit 2 ;;
  esac
fi
bash scripts/ensure-redis.sh >/dev/null
out=$(REFRAKT_CHAOS=full go test -count=1 -timeout 5m -run '^TestChaos$' -v ./internal/chaos 2>&1)
status=$?
line=$(grep -o 'chaos: [0-9]* daemons.*' <<<"$out" | tail -1)
if [ $status -ne 0 ] || [ -z "$line" ]; then
  echo "$out" >&2
  echo "${line:-chaos: no summary (the run did not finish)}"
  exit 1
fi
echo "$line"
