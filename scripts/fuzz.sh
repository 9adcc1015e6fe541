#!/usr/bin/env bash
# Runs every Go fuzz target in the module for FUZZTIME each (default 3s;
# `FUZZTIME=2m scripts/fuzz.sh` for a real session) and prints the exec count
# of each. The seed corpora also run as plain tests in `go test ./...`.
#
# `scripts/fuzz.sh --self-test` checks how a failed run is classified.
#
#   scripts/fuzz.sh [--self-test]   (-h or --help prints this and exits)
set -euo pipefail
cd "$(dirname "$0")/.."

case "${1:-}" in
  ""|--self-test) ;;
  -h|--help) sed -n '2,/^set -/{/^set -/!p}' "$0"; exit 0 ;;
  *) echo "fuzz: unknown argument $1 (only --self-test; see --help)" >&2; exit 2 ;;
esac
if [ $# -gt 1 ]; then
  echo "fuzz: too many arguments (only --self-test; see --help)" >&2
  exit 2
fi

# deadline_race OUTPUT: succeeds when a failed `go test -fuzz` run is Go 1.26's
# fuzz-coordinator race at the end of -fuzztime (golang/go#75804, fixed in Go
# 1.27): the target reported as failed with a bare "context deadline exceeded",
# no input failed and none was written. A real finding always writes its
# input ("Failing input written to testdata/fuzz/..."), and a crash, a panic
# or a failed check prints more than the deadline.
deadline_race() {
  grep -q 'context deadline exceeded' <<<"$1" || return 1
  ! grep -qE 'Failing input written|panic:|_test\.go:[0-9]+:|fuzzing process hung|terminated unexpectedly' <<<"$1"
}

if [[ ${1:-} == --self-test ]]; then
  race=$'fuzz: elapsed: 2s, execs: 45299 (21539/sec), new interesting: 3 (total: 179)\n--- FAIL: FuzzDottedQuad (2.13s)\n    context deadline exceeded\nFAIL'
  found=$'--- FAIL: FuzzDottedQuad (0.41s)\n    --- FAIL: FuzzDottedQuad (0.00s)\n        identity_test.go:51: isDottedQuad("1.2.3.04") = true, netip says false\n    Failing input written to testdata/fuzz/FuzzDottedQuad/0123abcd\n    To re-run:\n    go test -run=FuzzDottedQuad/0123abcd\nFAIL'
  crashed=$'--- FAIL: FuzzLoad (1.20s)\n    fuzzing process hung or terminated unexpectedly: exit status 2\n    context deadline exceeded\nFAIL'
  deadline_race "$race" || { echo "fuzz self-test: a bare deadline race was taken for a finding" >&2; exit 1; }
  if deadline_race "$found"; then echo "fuzz self-test: a written failing input was taken for a deadline race" >&2; exit 1; fi
  if deadline_race "$crashed"; then echo "fuzz self-test: a crashed worker was taken for a deadline race" >&2; exit 1; fi
  echo "fuzz self-test: ok"
  exit 0
fi

fuzztime=${FUZZTIME:-3s}
status=0
for pkg in $(go list ./...); do
  targets=$(go test -list '^Fuzz' "$pkg" 2>/dev/null | grep '^Fuzz' || true)
  for t in $targets; do
    result=FAILED
    races=0
    # A deadline race is run again, up to three times in all; anything else
    # that fails is reported at once.
    for _ in 1 2 3; do
      if out=$(go test -run='^$' -fuzz="^${t}\$" -fuzztime="$fuzztime" "$pkg" 2>&1); then
        result=ok
        break
      fi
      if ! deadline_race "$out"; then
        break
      fi
      races=$((races + 1))
    done
    if [[ $result == FAILED && $races == 3 ]]; then
      # Three races in a row and still no failing input: nothing was found.
      result="ok (3 runs ended in golang/go#75804, no failing input)"
    elif [[ $result == FAILED ]]; then
      echo "$out"
      status=1
    elif ((races > 0)); then
      result="ok (after $races run(s) ended in golang/go#75804)"
    fi
    # A short run may spend all of FUZZTIME replaying the cached corpus
    # (baseline coverage) and print no exec count: that is a pass, not an error.
    execs=$(echo "$out" | grep -o 'execs: [0-9]*' | tail -1 | cut -d' ' -f2 || true)
    echo "fuzz ${pkg#github.com/refrakt/refrakt/} ${t}: ${execs:-baseline-only} execs in ${fuzztime} ${result}"
  done
done
exit $status
