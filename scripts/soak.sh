#!/usr/bin/env bash
# Soak: `scripts/soak.sh [DURATION]` (a Go duration, default 10m) runs one
# daemon on a real Redis (127.0.0.1 only) under steady mixed load and prints
# goroutines, heap in use and open descriptors (sockets included) at the
# start and the end, both sampled with the load stopped, plus the peak.
# Exits non-zero when growth passes the bounds in internal/chaos/soak.go
# (goroutines +25, descriptors +10, heap +16 MiB + 50 %) or on a server error.
#
#   scripts/soak.sh [DURATION]   (e.g. 30m, 1h30m; -h or --help prints this and exits)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
case "${1:-}" in
  -h|--help) sed -n '2,/^set -/{/^set -/!p}' "$0"; exit 0 ;;
esac
if [ $# -gt 1 ]; then
  echo "soak: too many arguments (only DURATION; see --help)" >&2
  exit 2
fi
duration=${1:-10m}
# A positive Go duration (what TestSoak accepts), checked here so that a
# typo is one line, not the test binary's whole output.
unit='(ns|us|µs|ms|s|m|h)'
num='([0-9]+(\.[0-9]*)?|\.[0-9]+)'
if ! [[ $duration =~ ^($num$unit)+$ ]] || ! [[ $duration =~ [1-9] ]]; then
  echo "soak: $duration is not a positive Go duration (such as 10m or 1h30m; see --help)" >&2
  exit 2
fi
bash scripts/ensure-redis.sh >/dev/null
out=$(REFRAKT_SOAK_DURATION="$duration" go test -count=1 -timeout 0 -run '^TestSoak$' -v ./internal/chaos 2>&1)
status=$?
line=$(grep -o 'soak: .*' <<<"$out" | tail -1)
if [ $status -ne 0 ] || [ -z "$line" ]; then
  echo "$out" >&2
  echo "${line:-soak: no summary (the run did not finish)}"
  exit 1
fi
echo "$line"
