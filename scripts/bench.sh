#!/usr/bin/env bash
# refrakt's benchmark harness (issue #9): refrakt next to the field's
# references in one run on this machine, then one line per goal:
#
#   BENCH <name> refrakt=<value> reference=<value> ratio=<r> goal=<op><g> <PASS|MISS>
#
#   scripts/bench.sh [--quick]     (make bench runs it without --quick)
#
# It starts its own redis-server on a free loopback port (stopped by its pid
# at the end) for the HTTP load test on Redis (the daemon on DB 2). The Go
# suites start their throwaway servers through internal/redistest (the same
# redis-server binary and flags): the limiter suite one server for
# redis_rate and refrakt (DBs 1 and 0), the queue suite one per benchmark
# (asynq on DB 14, refrakt on DB 15). Suites: bench/ (x/time/rate,
# redis_rate, asynq), the memory store's bytes-per-key benchmark, and
# scripts/loadtest.sh (HTTP against a bare net/http handler).
# --quick takes about 90 seconds on 2 cores (the issue asks under 3 minutes); the full run
# takes longer samples (about 3 minutes).
# Raw `go test -bench` output is kept in $BENCH_OUT (default
# /tmp/refrakt-bench.txt).
set -euo pipefail
cd "$(dirname "$0")/.."

QUICK=0
case "${1:-}" in
  --quick) QUICK=1 ;;
  "") ;;
  -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
  *) echo "bench: unknown argument $1 (only --quick)" >&2; exit 2 ;;
esac
bash scripts/ensure-redis.sh

OUT=${BENCH_OUT:-/tmp/refrakt-bench.txt}
: >"$OUT"
TMP=$(mktemp -d /tmp/refrakt-bench.XXXXXX)
REDIS_PID=""
cleanup() {
  if [ -n "$REDIS_PID" ]; then kill "$REDIS_PID" 2>/dev/null || true; wait "$REDIS_PID" 2>/dev/null || true; fi
  rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

# The limiter suites, whose goals compare two implementations at parity or
# near it, run ROUNDS rounds, each running refrakt and its reference one
# after the other; the table takes each side's median, so that a burst of
# another process, or one slow round, does not decide a comparison alone.
# The HTTP phases take the best of three alternated rounds
# (scripts/loadtest.sh).
ROUNDS=3
# The pickup probe takes 500 samples in either mode (about 3 seconds): its
# p99 is then the 6th-largest, where with 100 it was the largest, which one
# hiccup of the machine decided (10.7 ms once at 23:26 UTC, against 2.3-3.3
# in six runs of 100 and 1.3 ms over 2,000 samples minutes later).
if [ "$QUICK" = 1 ]; then
  MEM_TIME=300ms REDIS_N=6000x ENQ_N=10000x PICKUP_N=500x ASYNQ_PICKUP_N=8x HTTP_N=20000
else
  MEM_TIME=1s REDIS_N=20000x ENQ_N=50000x PICKUP_N=500x ASYNQ_PICKUP_N=30x HTTP_N=60000
fi

# The harness's own Redis, on a free port: a port that looked free may be
# taken before redis-server binds it, so a server that does not answer is
# stopped and another port tried.
redis_answers() { # our redis-server is alive and answers PING
  kill -0 "$REDIS_PID" 2>/dev/null && [ "$(redis-cli -p "$PORT" ping 2>/dev/null)" = PONG ]
}
start_redis() {
  for _ in $(seq 5); do
    for _ in $(seq 100); do
      PORT=$((20000 + RANDOM % 30000))
      (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null || break
    done
    redis-server --port "$PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$TMP" --logfile "$TMP/redis.log" &
    REDIS_PID=$!
    # Ours only while our process lives: a PONG from a server someone else
    # started on the port meanwhile does not count.
    for _ in $(seq 100); do
      if redis_answers; then return 0; fi
      kill -0 "$REDIS_PID" 2>/dev/null || break
      sleep 0.05
    done
    kill "$REDIS_PID" 2>/dev/null || true; wait "$REDIS_PID" 2>/dev/null || true
    REDIS_PID=""
  done
  echo "bench: could not start redis-server on a free port:" >&2
  tail -5 "$TMP/redis.log" >&2
  exit 1
}
start_redis

step() { echo "bench: $*" >&2; }
gobench() { # gobench DIR PATTERN BENCHTIME [PKG]
  (cd "$1" && go test -run '^$' -bench "$2" -benchtime "$3" -benchmem -count 1 -timeout 20m "${4:-.}") | tee -a "$OUT" |
    grep -E '^Benchmark' >&2 || { echo "bench: go test failed in $1 ($2)" >&2; exit 1; }
}

START=$(date +%s)
step "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(go version | cut -d' ' -f3), $(redis-server --version | cut -d' ' -f3), load $(cut -d' ' -f1-3 /proc/loadavg)"
step "memory store vs x/time/rate (10k keys, parallel)"
for _ in $(seq "$ROUNDS"); do
  gobench bench 'BenchmarkRatelimitMemory$/^impl=(xrate|refrakt)$/^keys=10000$/parallel' "$MEM_TIME"
done
step "memory per idle key"
gobench . 'BenchmarkBytesPerKey' 1x ./internal/core/ratelimit/memstore
step "redis store vs redis_rate (1, 8, 32 callers)"
for _ in $(seq "$ROUNDS"); do
  gobench bench 'BenchmarkRatelimitRedis' "$REDIS_N"
done
step "end to end, 100k no-op jobs, 10 workers: asynq, refrakt"
gobench bench 'Benchmark(Asynq|Refrakt)EndToEndSimple' 1x
step "enqueue: one caller, batch; the round-trip floor (a bare PING loop)"
gobench bench 'Benchmark(AsynqEnqueue|AsynqEnqueueParallel|RefraktEnqueue|RefraktEnqueueBatch)$' "$ENQ_N"
gobench bench 'BenchmarkEnqueueCost$/^impl=ping$' "$ENQ_N"
step "pickup latency on an idle queue"
gobench bench 'BenchmarkRefraktPickupLatency' "$PICKUP_N"
gobench bench 'BenchmarkAsynqPickupLatency' "$ASYNQ_PICKUP_N"
step "HTTP: limited endpoint through every middleware vs bare net/http, 64 connections"
LOADTEST=$(bash scripts/loadtest.sh -n "$HTTP_N" -c 64)
echo "$LOADTEST" | tee -a "$OUT" >&2
step "HTTP on this harness's Redis (not a goal: the Redis figures for the runbook)"
if ! redis_answers; then
  echo "bench: the harness's redis-server (pid $REDIS_PID, port $PORT) stopped answering:" >&2
  tail -20 "$TMP/redis.log" >&2
  exit 1
fi
LOADTEST_REDIS_PORT=$PORT bash scripts/loadtest.sh --redis -n "$((HTTP_N / 4))" -c 64 | grep '^RESULT' | sed 's/^RESULT name=/RESULT redis-backend name=/' | tee -a "$OUT" >&2

# metric NAME UNIT: the value of UNIT on benchmark NAME's line (the -P
# suffix of GOMAXPROCS ignored), the median when it ran several rounds;
# empty when it did not run.
metric() {
  awk -v name="$1" -v unit="$2" '/^Benchmark/ {
    n = $1; sub(/-[0-9]+$/, "", n)
    if (n != name) next
    for (i = 3; i < NF; i++) if ($(i + 1) == unit) { v[++k] = $i + 0; break }
  } END {
    if (k == 0) exit
    for (i = 2; i <= k; i++) for (j = i; j > 1 && v[j - 1] > v[j]; j--) { t = v[j]; v[j] = v[j - 1]; v[j - 1] = t }
    m = (k % 2) ? v[(k + 1) / 2] : (v[k / 2] + v[k / 2 + 1]) / 2
    printf "%.10g\n", m
  }' "$OUT"
}
http_field() { sed -nE "s#^BENCH $1 refrakt=([0-9.]+) reference=([0-9.]+).*#\\$2#p" <<<"$LOADTEST"; }

# goal NAME REFRAKT REFERENCE OP GOAL MODE: MODE "ratio" compares
# refrakt/reference with GOAL, "abs" compares refrakt itself.
FAILS=0
goal() {
  local line
  line=$(awk -v n="$1" -v r="$2" -v ref="$3" -v op="$4" -v g="$5" -v mode="$6" 'BEGIN {
    if (r == "" || (mode == "ratio" && (ref == "" || ref + 0 == 0))) {
      printf "BENCH %s refrakt=%s reference=%s ratio=- goal=%s%s MISS (not measured)\n", n, (r == "" ? "-" : r), (ref == "" ? "-" : ref), op, g; exit }
    ratio = (ref != "" && ref + 0 != 0) ? sprintf("%.3g", r / ref) : "-"
    v = mode == "ratio" ? r / ref : r + 0
    ok = (op == ">=") ? v >= g : v <= g
    printf "BENCH %s refrakt=%s reference=%s ratio=%s goal=%s%s %s\n", n, r, (ref == "" ? "-" : ref), ratio, op, g, ok ? "PASS" : "MISS" }')
  echo "$line"
  case "$line" in *MISS*) FAILS=$((FAILS + 1)) ;; esac
}


echo
printf '%-44s %14s %14s\n' "measure" "refrakt" "reference"
row() { printf '%-44s %14s %14s\n' "$1" "${2:--}" "${3:--}"; }
row "memory decision ns/op (10k keys, parallel)" "$(metric BenchmarkRatelimitMemory/impl=refrakt/keys=10000/parallel ns/op)" "$(metric BenchmarkRatelimitMemory/impl=xrate/keys=10000/parallel ns/op)"
row "memory decision allocs/op" "$(metric BenchmarkRatelimitMemory/impl=refrakt/keys=10000/parallel allocs/op)" "$(metric BenchmarkRatelimitMemory/impl=xrate/keys=10000/parallel allocs/op)"
row "memory bytes per idle key" "$(metric BenchmarkBytesPerKey bytes/key)" ""
for c in 1 8 32; do
  row "redis decisions/s, $c caller(s)" "$(metric BenchmarkRatelimitRedis/impl=refrakt/callers=$c decisions/s)" "$(metric BenchmarkRatelimitRedis/impl=redis_rate/callers=$c decisions/s)"
done
row "end-to-end jobs/s (100k, 10 workers)" "$(metric BenchmarkRefraktEndToEndSimple jobs/s)" "$(metric BenchmarkAsynqEndToEndSimple jobs/s)"
row "  redis CPU seconds for it" "$(metric BenchmarkRefraktEndToEndSimple redis-cpu-s)" "$(metric BenchmarkAsynqEndToEndSimple redis-cpu-s)"
row "enqueue jobs/s, one caller" "$(metric BenchmarkRefraktEnqueue jobs/s)" "$(metric BenchmarkAsynqEnqueue jobs/s)"
row "  floor: bare PING round trips/s, one caller" "$(metric BenchmarkEnqueueCost/impl=ping ops/s)" ""
row "batch enqueue jobs/s (asynq: 16 callers)" "$(metric BenchmarkRefraktEnqueueBatch jobs/s)" "$(metric BenchmarkAsynqEnqueueParallel jobs/s)"
row "pickup latency p50 ms" "$(metric BenchmarkRefraktPickupLatency p50-ms)" "$(metric BenchmarkAsynqPickupLatency p50-ms)"
row "pickup latency p99 ms" "$(metric BenchmarkRefraktPickupLatency p99-ms)" "$(metric BenchmarkAsynqPickupLatency p99-ms)"
row "HTTP req/s, 64 conns (ref: bare net/http)" "$(http_field http-limited-rps 1)" "$(http_field http-limited-rps 2)"
row "HTTP p99 ms, 64 conns" "$(http_field http-limited-p99 1)" "$(http_field http-limited-p99 2)"
echo

goal memory-decision-10k-parallel "$(metric BenchmarkRatelimitMemory/impl=refrakt/keys=10000/parallel ns/op)" "$(metric BenchmarkRatelimitMemory/impl=xrate/keys=10000/parallel ns/op)" "<=" 1.0 ratio
goal memory-decision-allocs "$(metric BenchmarkRatelimitMemory/impl=refrakt/keys=10000/parallel allocs/op)" "$(metric BenchmarkRatelimitMemory/impl=xrate/keys=10000/parallel allocs/op)" "<=" 0 abs
goal redis-decisions-1-caller "$(metric BenchmarkRatelimitRedis/impl=refrakt/callers=1 decisions/s)" "$(metric BenchmarkRatelimitRedis/impl=redis_rate/callers=1 decisions/s)" ">=" 1.0 ratio
goal redis-decisions-32-callers "$(metric BenchmarkRatelimitRedis/impl=refrakt/callers=32 decisions/s)" "$(metric BenchmarkRatelimitRedis/impl=redis_rate/callers=32 decisions/s)" ">=" 4 ratio
goal e2e-jobs-100k-10-workers "$(metric BenchmarkRefraktEndToEndSimple jobs/s)" "$(metric BenchmarkAsynqEndToEndSimple jobs/s)" ">=" 3 ratio
goal pickup-latency-p50-ms "$(metric BenchmarkRefraktPickupLatency p50-ms)" "$(metric BenchmarkAsynqPickupLatency p50-ms)" "<=" 2 abs
goal pickup-latency-p99-ms "$(metric BenchmarkRefraktPickupLatency p99-ms)" "$(metric BenchmarkAsynqPickupLatency p99-ms)" "<=" 10 abs
goal enqueue-1-caller "$(metric BenchmarkRefraktEnqueue jobs/s)" "$(metric BenchmarkAsynqEnqueue jobs/s)" ">=" 2 ratio
goal enqueue-batch "$(metric BenchmarkRefraktEnqueueBatch jobs/s)" "$(metric BenchmarkAsynqEnqueueParallel jobs/s)" ">=" 1 ratio
goal http-limited-rps-64-conns "$(http_field http-limited-rps 1)" "$(http_field http-limited-rps 2)" ">=" 0.7 ratio
goal http-limited-p99-ms-64-conns "$(http_field http-limited-p99 1)" "$(http_field http-limited-p99 2)" "<=" 5 abs
goal memory-bytes-per-idle-key "$(metric BenchmarkBytesPerKey bytes/key)" "" "<=" 100 abs

# The floor under the one-caller enqueue goal, measured in this run: a
# caller that waits for each acknowledgement pays at least a round trip per
# job, so no enqueue from one caller can beat a bare PING loop. Its ratio to
# asynq is the most any one-round-trip enqueue could reach here; below the
# goal, a MISS of enqueue-1-caller is this machine's, not the code's.
floor=$(metric BenchmarkEnqueueCost/impl=ping ops/s)
asynq1=$(metric BenchmarkAsynqEnqueue jobs/s)
if [ -n "$floor" ] && [ -n "$asynq1" ]; then
  awk -v f="$floor" -v a="$asynq1" 'BEGIN { printf "FLOOR enqueue-1-caller ping=%s reference=%s ratio=%.3g goal=>=2 (the most a one-round-trip enqueue can reach in this run)\n", f, a, f / a }'
fi

step "done in $(($(date +%s) - START))s, $FAILS goal(s) missed; load now $(cut -d' ' -f1-3 /proc/loadavg); raw output in $OUT"
