#!/usr/bin/env bash
# Soak: `scripts/soak.sh [DURATION]` (a Go duration, default 10m) runs one
# daemon on a real Redis (127.0.0.1 only) under steady mixed load and prints
# goroutines, heap in use and open descriptors (sockets included) at the
# start and the end, both sampled with the load stopped, plus the peak.
# Exits non-zero when growth passes the bounds in internal/chaos/soak.go
# (goroutines +25, descriptors +10, heap +16 MiB + 50 %) or on a server error.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
duration=${1:-10m}
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
