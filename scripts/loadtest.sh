#!/usr/bin/env bash
# Load test of a real `refrakt serve` over HTTP, from a separate process
# (bench/loadgen, a small keep-alive HTTP/1.1 generator), next to a bare
# net/http handler in the same run; then POST /run and the decision route
# (/api/check/loadtest, a RATE_LIMITS limit). 127.0.0.1 only, a bounded number of
# requests per phase, and every process it starts is stopped by its pid.
#
#   scripts/loadtest.sh [-n REQUESTS] [-c CONNS] [-r ROUNDS] [--redis] [--shared] [--sweep]
#
#   -n N      requests per measured phase (default 20000)
#   -c N      connections of the main phases (default 64)
#   -r N      rounds of the bare and limited phases, alternated; the best
#             round of each is compared (default 3)
#   --redis   run the daemon on Redis (QUEUE_URL): a throwaway redis-server,
#             or the one on LOADTEST_REDIS_PORT (scripts/bench.sh passes its
#             own; the daemon uses DB 2 there); reports Redis CPU per phase
#   --shared  let the generator and the servers share every CPU (by default,
#             with 2+ CPUs and taskset, the servers get the first half of the
#             CPUs and the generator the rest, so the generator's work does
#             not land in the servers' latency; both the bare baseline and
#             the daemon get the same CPUs)
#   --sweep   also sweep the limited endpoint over 1..256 connections (where
#             p99 climbs) and POST /run with QUEUE_MAX_PENDING=1000 and 5 ms
#             sleep jobs (where admission control starts refusing)
#
# Prints one RESULT line per phase and, for the HTTP goal of issue #9,
# (the best of the rounds):
#   BENCH http-limited-rps refrakt=<req/s> reference=<bare req/s> ratio=<r> goal=>=0.7 PASS|MISS
#   BENCH http-limited-p99 refrakt=<ms> reference=<bare ms> ratio=<r> goal=<=5 PASS|MISS
set -euo pipefail
cd "$(dirname "$0")/.."

N=20000 CONNS=64 USE_REDIS=0 SWEEP=0 ROUNDS=3 SHARED=0
while [ $# -gt 0 ]; do
  case "$1" in
    -n) N="$2"; shift 2 ;;
    -c) CONNS="$2"; shift 2 ;;
    -r) ROUNDS="$2"; shift 2 ;;
    --redis) USE_REDIS=1; shift ;;
    --sweep) SWEEP=1; shift ;;
    --shared) SHARED=1; shift ;;
    -h|--help) sed -n '2,28p' "$0"; exit 0 ;;
    *) echo "loadtest: unknown argument $1" >&2; exit 2 ;;
  esac
done
command -v curl >/dev/null || { echo "loadtest: curl is needed" >&2; exit 1; }
if [ "$USE_REDIS" = 1 ]; then bash scripts/ensure-redis.sh; fi

# CPU split: servers (bare baseline, daemon) on the first half of the CPUs
# this process may use, the load generator on the rest. Go sizes GOMAXPROCS
# from the affinity mask.
allowed_cpus() { # the CPUs this process may run on, one per line
  local list r ranges
  list=$(sed -n 's/^Cpus_allowed_list:[[:space:]]*//p' /proc/self/status 2>/dev/null)
  if [ -z "$list" ]; then seq 0 $(($(nproc) - 1)); return; fi
  IFS=, read -ra ranges <<<"$list"
  for r in "${ranges[@]}"; do
    if [[ $r == *-* ]]; then seq "${r%-*}" "${r#*-}"; else echo "$r"; fi
  done
}
mapfile -t CPUS < <(allowed_cpus)
NCPU=${#CPUS[@]}
# ON_SERVER / ON_LOAD prefix a command (taskset execs it, so $! stays the
# server's pid); both are "env" when the CPUs are shared.
SERVER_CPUS="" LOAD_CPUS="" ON_SERVER=(env) ON_LOAD=(env)
if [ "$SHARED" = 0 ] && [ "$NCPU" -ge 2 ] && command -v taskset >/dev/null; then
  SERVER_CPUS=$(IFS=,; echo "${CPUS[*]:0:NCPU/2}") LOAD_CPUS=$(IFS=,; echo "${CPUS[*]:NCPU/2}")
  ON_SERVER=(taskset -c "$SERVER_CPUS") ON_LOAD=(taskset -c "$LOAD_CPUS")
fi

TMP=$(mktemp -d /tmp/refrakt-loadtest.XXXXXX)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

echo "loadtest: building refrakt and loadgen" >&2
go build -o "$TMP/refrakt" ./cmd/refrakt
(cd bench && go build -o "$TMP/loadgen" ./loadgen/cmd/loadgen)

free_port() {
  local p
  for _ in $(seq 100); do
    p=$((20000 + RANDOM % 30000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
  done
  echo "loadtest: no free port" >&2; exit 1
}

wait_for() { # wait_for FILE REGEX: prints the first capture
  for _ in $(seq 200); do
    if grep -qE "$2" "$1" 2>/dev/null; then sed -nE "s/.*$2.*/\1/p" "$1" | head -1; return; fi
    sleep 0.05
  done
  echo "loadtest: timed out waiting for $2 in $1:" >&2; cat "$1" >&2; exit 1
}

REDIS_PORT="" REDIS_DB=0
if [ "$USE_REDIS" = 1 ] && [ -n "${LOADTEST_REDIS_PORT:-}" ]; then
  REDIS_PORT=$LOADTEST_REDIS_PORT REDIS_DB=2
  redis-cli -p "$REDIS_PORT" -n "$REDIS_DB" flushdb >/dev/null
elif [ "$USE_REDIS" = 1 ]; then
  REDIS_PORT=$(free_port)
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$TMP" \
    --logfile "$TMP/redis.log" &
  PIDS+=($!)
  for _ in $(seq 100); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.05; done
fi

redis_cpu() { # seconds of CPU redis-server has used (user + sys)
  [ -n "$REDIS_PORT" ] || { echo 0; return; }
  redis-cli -p "$REDIS_PORT" info cpu | tr -d '\r' |
    awk -F: '/^used_cpu_(user|sys):/ {s += $2} END {printf "%.3f", s}'
}

TOKEN="loadtest-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
DAEMON_URL=""
start_daemon() { # start_daemon NAME [ENV=VALUE...]
  local name="$1"; shift
  local env=(REFRAKT_DEVELOPER_TOKEN="$TOKEN" XDG_STATE_HOME="$TMP/state" LOG_LEVEL=info LOG_FORMAT=text
    REFRAKT_MAX_IN_FLIGHT=4096 RATE_LIMITS="loadtest=1000000/1000s burst=1000000000")
  if [ -n "$REDIS_PORT" ]; then env+=(QUEUE_URL="redis://127.0.0.1:$REDIS_PORT/$REDIS_DB"); fi
  "${ON_SERVER[@]}" env "${env[@]}" "$@" "$TMP/refrakt" serve --addr 127.0.0.1:0 >"$TMP/$name.log" 2>&1 &
  DAEMON_PID=$!
  PIDS+=("$DAEMON_PID")
  DAEMON_URL="http://$(wait_for "$TMP/$name.log" 'msg=listening addr=([0-9.:]+)')"
  for _ in $(seq 200); do curl -fs "$DAEMON_URL/readyz" >/dev/null && break; sleep 0.05; done
  # Lift the limits under test so the phases measure admitted requests.
  for target in rl-test run; do
    curl -fsS -o /dev/null -X POST -H "Authorization: Bearer $TOKEN" \
      -d "{\"target\":\"$target\",\"capacity\":1000000000,\"window_seconds\":1000}" \
      "$DAEMON_URL/api/dev/rate-limits/config"
  done
}
stop_daemon() {
  kill "$DAEMON_PID" 2>/dev/null || true
  wait "$DAEMON_PID" 2>/dev/null || true
}

phase() { # phase NAME CONNS loadgen-run-args...: warm up, measure, print RESULT
  local name="$1" conns="$2"; shift 2
  "${ON_LOAD[@]}" "$TMP/loadgen" run -name warmup -c "$conns" -n $((N / 10 > conns ? N / 10 : conns)) "$@" >/dev/null
  local cpu0 t0 t1 cpu1 line
  cpu0=$(redis_cpu); t0=$(date +%s.%N)
  line=$("${ON_LOAD[@]}" "$TMP/loadgen" run -name "$name" -c "$conns" -n "$N" "$@")
  t1=$(date +%s.%N); cpu1=$(redis_cpu)
  if [ -n "$REDIS_PORT" ]; then
    line="$line redis_cpu=$(awk -v a="$cpu0" -v b="$cpu1" -v s="$t0" -v e="$t1" 'BEGIN {printf "%.0f%%", 100 * (b - a) / (e - s)}')"
  fi
  echo "$line"
}

field() { sed -nE "s#.* $2=([0-9.]+).*#\\1#p" <<<"$1"; }

# The bare baseline: a separate process serving a plain net/http handler.
"${ON_SERVER[@]}" "$TMP/loadgen" bare -max-time 30m >"$TMP/bare.log" 2>&1 &
PIDS+=($!)
BARE_URL="http://$(wait_for "$TMP/bare.log" 'listening ([0-9.:]+)')/"

start_daemon main
AUTH="Authorization: Bearer $TOKEN"
echo "loadtest: daemon $DAEMON_URL (backend $([ -n "$REDIS_PORT" ] && echo redis || echo memory)), bare $BARE_URL, $N requests per phase, $NCPU CPUs ($([ -n "$SERVER_CPUS" ] && echo "servers on $SERVER_CPUS, generator on $LOAD_CPUS" || echo shared)), load $(cut -d' ' -f1-3 /proc/loadavg)" >&2

# The baseline and the limited endpoint alternate for ROUNDS rounds and the
# best round of each counts: on a shared machine another process's burst
# lands in one round, not in the comparison.
best_of() { # best_of LINES: the RESULT line with the highest req/s among those without errors (any, when every one has some)
  awk '/^RESULT/ {
    v = 0; e = 0
    for (i = 1; i <= NF; i++) { if ($i ~ /^req\/s=/) v = substr($i, 7) + 0; if ($i ~ /^errors=/) e = substr($i, 8) + 0 }
    if (e == 0 && v > m) { m = v; l = $0 }
    if (v > am) { am = v; al = $0 }
  } END { print (l != "" ? l : al) }' <<<"$1"
}
bares="" limiteds=""
for _ in $(seq "$ROUNDS"); do
  line=$(phase bare "$CONNS" -url "$BARE_URL"); echo "$line"; bares+="$line"$'\n'
  line=$(phase limited "$CONNS" -url "$DAEMON_URL/api/dev/rl-test" -H "$AUTH" -xff); echo "$line"; limiteds+="$line"$'\n'
done
bare=$(best_of "$bares")
limited=$(best_of "$limiteds")
run=$(phase post-run "$CONNS" -url "$DAEMON_URL/run" -method POST -body '{"type":"ping"}' -xff)
echo "$run"
# The decision route a proxy asks for every request of its API, a limit
# of RATE_LIMITS (lifted as above), each request another client address.
phase check "$CONNS" -url "$DAEMON_URL/api/check/loadtest" -xff

if [ "$SWEEP" = 1 ]; then
  for c in 1 4 16 64 128 256; do
    phase "sweep-limited" "$c" -url "$DAEMON_URL/api/dev/rl-test" -H "$AUTH" -xff
  done
  stop_daemon
  start_daemon admission QUEUE_MAX_PENDING=1000 WORKER_CONCURRENCY=4
  for c in 1 4 16 64 256; do
    phase "sweep-admission" "$c" -url "$DAEMON_URL/run" -method POST -body '{"type":"sleep","payload":{"ms":5}}' -xff
  done
fi

brps=$(field "$bare" 'req/s'); lrps=$(field "$limited" 'req/s')
bp99=$(field "$bare" p99); lp99=$(field "$limited" p99)
# A round that measured errors (a 429 from a limit not lifted, a 5xx, a
# transport error: loadgen's errors=) measured something else than the
# goal: it is a MISS whatever its speed.
# The rounds compared are the best without errors (best_of); only when
# every round of a phase had some is a round with errors compared.
berrs=$(field "$bare" errors); lerrs=$(field "$limited" errors)
errs=$(( ${berrs:-1} + ${lerrs:-1} ))
if [ "$errs" -gt 0 ]; then
  echo "loadtest: every round had failed requests (bare: ${berrs:-no count}, limited: ${lerrs:-no count}); the HTTP goals are MISS" >&2
fi
awk -v r="$lrps" -v b="$brps" -v e="$errs" 'BEGIN {
  ratio = b > 0 ? r / b : 0
  printf "BENCH http-limited-rps refrakt=%.0f reference=%.0f ratio=%.2f goal=>=0.7 %s\n", r, b, ratio, (ratio >= 0.7 && e == 0 ? "PASS" : "MISS") }'
awk -v r="$lp99" -v b="$bp99" -v e="$errs" 'BEGIN {
  printf "BENCH http-limited-p99 refrakt=%.3f reference=%.3f ratio=%.2f goal=<=5 %s\n", r, b, (b > 0 ? r / b : 0), (r <= 5 && e == 0 ? "PASS" : "MISS") }'
