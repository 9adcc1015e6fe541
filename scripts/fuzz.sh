#!/usr/bin/env bash
# Runs every Go fuzz target in the module for FUZZTIME each (default 3s;
# `FUZZTIME=2m scripts/fuzz.sh` for a real session) and prints the exec count
# of each. The seed corpora also run as plain tests in `go test ./...`.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-3s}
status=0
for pkg in $(go list ./...); do
  targets=$(go test -list '^Fuzz' "$pkg" 2>/dev/null | grep '^Fuzz' || true)
  for t in $targets; do
    result=ok
    out=$(go test -run='^$' -fuzz="^${t}\$" -fuzztime="$fuzztime" "$pkg" 2>&1) || { echo "$out"; status=1; result=FAILED; }
    # A short run may spend all of FUZZTIME replaying the cached corpus
    # (baseline coverage) and print no exec count: that is a pass, not an error.
    execs=$(echo "$out" | grep -o 'execs: [0-9]*' | tail -1 | cut -d' ' -f2 || true)
    echo "fuzz ${pkg#github.com/refrakt/refrakt/} ${t}: ${execs:-baseline-only} execs in ${fuzztime} ${result}"
  done
done
exit $status
