#!/usr/bin/env bash
# redis-cluster.sh — a local Redis Cluster on loopback for demos and manual tests.
#
#   scripts/redis-cluster.sh start [N]   start N masters (default 3, at least 3) and create the
#                                        cluster; prints the seed URL (line 1) and every node's
#                                        host:port (line 2) on stdout, progress on stderr
#   scripts/redis-cluster.sh status      one line per node; exit 0 when every node is ok,
#                                        1 when some node is down, not ok or does not answer
#                                        (noanswer: running but stalled, within 2 s), 3 when no
#                                        cluster; the seed line names the first node that is ok
#   scripts/redis-cluster.sh stop        stop every node by pid and remove the cluster dir
#
# Environment:
#   REFRAKT_CLUSTER_DIR   where the nodes live, one dir each (default /tmp/refrakt-cluster)
#   REPLICAS              replicas per master (default 0; REPLICAS=1 doubles the nodes)
#   REFRAKT_CLUSTER_PORT  first port to try (default 30001); busy ports, and ports whose
#                         cluster bus port (port+10000) is busy, are skipped
#
# start is idempotent: when the cluster is already running it only prints it, and nodes that
# died are started again from their dirs (nodes.conf keeps their slots, the append-only file
# their data). Nodes listen on 127.0.0.1 only, with appendonly on and RDB snapshots off.
#
#   url=$(scripts/redis-cluster.sh start | head -n1)
#   QUEUE_URL=$url refrakt serve
set -euo pipefail

readonly DIR="${REFRAKT_CLUSTER_DIR:-/tmp/refrakt-cluster}"
readonly REPLICAS_GIVEN="${REPLICAS+yes}"
readonly REPLICAS="${REPLICAS:-0}"
readonly FIRST_PORT="${REFRAKT_CLUSTER_PORT:-30001}"
readonly MARKER="$DIR/refrakt-cluster"  # "masters replicas"; marks the dir as ours
readonly WAIT_SECONDS=30
readonly CLI_TIMEOUT=2 # seconds a node has to answer one redis-cli call

die() { echo "redis-cluster: $*" >&2; exit 1; }
usage_error() { echo "redis-cluster: $*; see: $0 --help" >&2; exit 2; }
say() { echo "redis-cluster: $*" >&2; }
usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }

is_uint() { [[ $1 =~ ^(0|[1-9][0-9]*)$ ]]; }

require_tools() {
	local t
	for t in redis-server redis-cli; do
		command -v "$t" >/dev/null ||
			die "$t not found in PATH: install Redis 7 (scripts/ensure-redis.sh, or apt-get install redis-server)"
	done
}

# node_dirs lists the node dirs of the cluster in DIR, in node order.
node_dirs() { compgen -G "$DIR/node-*" | sort -V || true; }

node_port() { sed -n 's/^port \([0-9]*\)$/\1/p' "$1/redis.conf"; }

# node_pid prints the pid of the node in dir $1 when that process is alive and is the
# redis-server of that node's port (a stale pid file may name a reused pid), and fails otherwise.
node_pid() {
	local pid cmdline
	[[ -s $1/redis.pid ]] || return 1
	pid=$(<"$1/redis.pid")
	is_uint "$pid" || return 1
	cmdline=$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") || return 1
	[[ $cmdline == *redis-server*":$(node_port "$1")"* ]] || return 1
	echo "$pid"
}

# running succeeds while process $1 exists and is not a zombie: a daemonized node is reparented
# to PID 1, which in some containers reaps exited children only after a while.
running() {
	local stat
	stat=$(cat 2>/dev/null "/proc/$1/stat") || return 1
	[[ ${stat##*) } != Z* ]]
}

# cli runs redis-cli against the node on port $1, bounded: a stalled node (a stopped process, a
# long fork) accepts the connection and never answers, and redis-cli would wait for ever. It
# fails (124) when the node did not answer within CLI_TIMEOUT.
cli() { timeout "$CLI_TIMEOUT" redis-cli -h 127.0.0.1 -p "$1" "${@:2}"; }

# port_busy succeeds when something accepts connections on 127.0.0.1:$1.
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

write_conf() { # dir port
	cat >"$1/redis.conf" <<-EOF
		port $2
		bind 127.0.0.1
		daemonize yes
		pidfile "$1/redis.pid"
		logfile "$1/redis.log"
		dir "$1"
		cluster-enabled yes
		cluster-config-file nodes.conf
		cluster-node-timeout 5000
		appendonly yes
		save ""
	EOF
}

# launch starts the node in dir $1 and waits until it answers PING. It returns 2 when the
# port turned out to be taken, so that the caller can try another one.
launch() {
	local d=$1 port i
	port=$(node_port "$d")
	rm -f "$d/redis.pid"
	: >"$d/redis.log"
	redis-server "$d/redis.conf" >/dev/null || die "redis-server failed to start with $d/redis.conf"
	for ((i = 0; i < 200; i++)); do
		if node_pid "$d" >/dev/null && [[ $(cli "$port" ping 2>/dev/null) == PONG ]]; then
			return 0
		fi
		if grep -qE 'Address already in use|Failed listening on port' "$d/redis.log"; then
			return 2
		fi
		sleep 0.05
	done
	die "node on port $port did not answer PING within 10 s; last log lines of $d/redis.log:
$(tail -n 5 "$d/redis.log")"
}

# new_node creates node dir $1 on the first free port from $2 on, starts it, and prints its port.
new_node() {
	local d=$1 port=$2 rc
	mkdir -p "$d"
	for (( ; port + 10000 <= 65535; port++)); do
		port_busy "$port" || port_busy $((port + 10000)) && continue
		write_conf "$d" "$port"
		rc=0
		launch "$d" || rc=$?
		[[ $rc == 0 ]] && { echo "$port"; return 0; }
		[[ $rc == 2 ]] || return "$rc"
	done
	die "no free port pair (p, p+10000) on 127.0.0.1 from $2 up"
}

# kill_nodes stops every node of DIR by pid: SIGTERM (Redis flushes its AOF), then SIGKILL
# for any that has not exited within 5 s.
kill_nodes() {
	local d pid pids=() i
	while read -r d; do
		[[ -n $d ]] || continue
		pid=$(node_pid "$d") || continue
		kill -TERM "$pid" 2>/dev/null || true
		pids+=("$pid")
	done < <(node_dirs)
	for ((i = 0; i < 50; i++)); do
		local alive=()
		for pid in "${pids[@]}"; do
			running "$pid" && alive+=("$pid")
		done
		pids=("${alive[@]}")
		((${#pids[@]} == 0)) && return 0
		sleep 0.1
	done
	for pid in "${pids[@]}"; do
		kill -KILL "$pid" 2>/dev/null || true
	done
}

# remove_dir deletes DIR, but only when it is a cluster dir this script made.
remove_dir() {
	[[ -f $MARKER ]] || die "$DIR has no $(basename "$MARKER") file: not removing a dir this script did not make"
	rm -rf -- "$DIR"
}

# node_ok succeeds when the node on port $1 reports cluster_state:ok.
node_ok() { cli "$1" cluster info 2>/dev/null | tr -d '\r' | grep -qx 'cluster_state:ok'; }

# wait_ok waits until every node reports cluster_state:ok and redis-cli agrees that all
# nodes see the same slot map covering every slot, for WAIT_SECONDS by the clock: a stalled
# node costs each round CLI_TIMEOUT, which a count of rounds would not see.
wait_ok() {
	local ports=("$@") p deadline=$((SECONDS + WAIT_SECONDS))
	while ((SECONDS < deadline)); do
		local all=1
		for p in "${ports[@]}"; do
			node_ok "$p" || { all=0; break; }
		done
		if ((all)) && timeout $((CLI_TIMEOUT * ${#ports[@]})) redis-cli --cluster check "127.0.0.1:${ports[0]}" >/dev/null 2>&1; then
			return 0
		fi
		sleep 0.1
	done
	for p in "${ports[@]}"; do
		echo "  127.0.0.1:$p $(cli "$p" cluster info 2>/dev/null | tr -d '\r' | grep -m1 cluster_state || echo 'down or not answering')" >&2
	done
	die "cluster not ok within ${WAIT_SECONDS}s (logs in $DIR/node-*/redis.log)"
}

ports_of_nodes() {
	local d
	while read -r d; do
		[[ -n $d ]] && node_port "$d"
	done < <(node_dirs)
}

print_cluster() { # ports...
	local addrs=() p
	for p in "$@"; do addrs+=("127.0.0.1:$p"); done
	echo "redis://127.0.0.1:$1"
	echo "${addrs[*]}"
}

# resume handles start when DIR already holds a created cluster: keep it, starting dead
# nodes again.
resume() {
	local want_masters=$1 want_explicit=$2 masters replicas d ports=() restarted=0
	read -r masters replicas <"$MARKER" || die "$MARKER is unreadable; run: $0 stop"
	if [[ $want_explicit == 1 && $want_masters != "$masters" ]] || [[ $REPLICAS_GIVEN == yes && $REPLICAS != "$replicas" ]]; then
		die "$DIR already holds a cluster of $masters masters with $replicas replicas each; run '$0 stop' first to start a different one"
	fi
	while read -r d; do
		[[ -n $d ]] || continue
		ports+=("$(node_port "$d")")
		if ! node_pid "$d" >/dev/null; then
			say "node 127.0.0.1:$(node_port "$d") is down; starting it again from $d"
			launch "$d" || die "port $(node_port "$d") of $d is taken by another process"
			restarted=1
		fi
	done < <(node_dirs)
	((${#ports[@]} == masters * (1 + replicas))) || die "$DIR has ${#ports[@]} node dirs, want $((masters * (1 + replicas))); run: $0 stop"
	((restarted)) || say "already running in $DIR"
	wait_ok "${ports[@]}"
	print_cluster "${ports[@]}"
}

cmd_start() {
	local masters=3 explicit=0
	if (($# > 1)); then usage_error "start takes at most one argument, N"; fi
	if (($# == 1)); then masters=$1 explicit=1; fi
	if ! { is_uint "$masters" && ((masters >= 3)); }; then
		usage_error "N must be an integer of at least 3 (redis-cli --cluster create needs 3 masters), not '$masters'"
	fi
	is_uint "$REPLICAS" || usage_error "REPLICAS must be a non-negative integer, not '$REPLICAS'"
	if ! { is_uint "$FIRST_PORT" && ((FIRST_PORT >= 1024 && FIRST_PORT + 10000 <= 65535)); }; then
		usage_error "REFRAKT_CLUSTER_PORT must be between 1024 and 55535, not '$FIRST_PORT'"
	fi
	require_tools

	if [[ -f $MARKER && ! -f $DIR/created ]]; then
		say "$DIR holds a cluster whose creation did not finish; starting over"
		kill_nodes
		remove_dir
	fi
	if [[ -f $MARKER ]]; then
		resume "$masters" "$explicit"
		return
	elif [[ -e $DIR ]] && [[ -n $(ls -A "$DIR" 2>/dev/null) || ! -d $DIR ]]; then
		die "$DIR exists and was not made by this script; choose another REFRAKT_CLUSTER_DIR"
	fi

	local started=$SECONDS total=$((masters * (1 + REPLICAS))) ports=() port=$FIRST_PORT i
	mkdir -p "$DIR"
	echo "$masters $REPLICAS" >"$MARKER"
	# A start that fails half-way leaves nothing running behind it.
	trap 'say "start failed; stopping the nodes it started"; kill_nodes; remove_dir' EXIT
	for ((i = 1; i <= total; i++)); do
		port=$(new_node "$DIR/node-$i" "$port")
		ports+=("$port")
		port=$((port + 1))
	done
	local addrs=()
	for port in "${ports[@]}"; do addrs+=("127.0.0.1:$port"); done
	say "creating a cluster of $masters masters, $REPLICAS replicas each: ${addrs[*]}"
	redis-cli --cluster create "${addrs[@]}" --cluster-replicas "$REPLICAS" --cluster-yes >"$DIR/create.log" 2>&1 ||
		die "redis-cli --cluster create failed:
$(tail -n 5 "$DIR/create.log")"
	wait_ok "${ports[@]}"
	touch "$DIR/created"
	trap - EXIT
	say "cluster ok in $((SECONDS - started))s in $DIR; stop it with: $0 stop"
	print_cluster "${ports[@]}"
}

cmd_stop() {
	(($# == 0)) || usage_error "stop takes no arguments"
	if [[ ! -e $DIR ]]; then
		say "no cluster in $DIR"
		return 0
	fi
	[[ -f $MARKER ]] || die "$DIR was not made by this script; not touching it"
	kill_nodes
	remove_dir
	say "stopped; removed $DIR"
}

cmd_status() {
	(($# == 0)) || usage_error "status takes no arguments"
	[[ -f $MARKER ]] || { say "no cluster in $DIR"; exit 3; }
	local d port pid info state role bad=0 seed=""
	printf '%-16s %-8s %-7s %s\n' NODE PID ROLE STATE
	while read -r d; do
		[[ -n $d ]] || continue
		port=$(node_port "$d")
		role=-
		if ! pid=$(node_pid "$d"); then
			pid=- state=down
		elif ! info=$(cli "$port" cluster info 2>/dev/null); then
			state=noanswer # running, but stalled (or refusing): no second call to wait for
		else
			state=$(tr -d '\r' <<<"$info" | sed -n 's/^cluster_state://p')
			role=$(cli "$port" role 2>/dev/null | head -n1) || role=-
		fi
		if [[ $state == ok ]]; then
			seed=${seed:-$port}
		else
			bad=1
		fi
		printf '%-16s %-8s %-7s %s\n' "127.0.0.1:$port" "$pid" "${role:--}" "${state:-unknown}"
	done < <(node_dirs)
	if [[ -n $seed ]]; then
		echo "seed: redis://127.0.0.1:$seed"
	else
		say "no node is ok: no seed to give"
	fi
	return "$bad"
}

main() {
	(($# >= 1)) || usage_error "missing command"
	local cmd=$1
	shift
	case $cmd in
	start) cmd_start "$@" ;;
	stop) cmd_stop "$@" ;;
	status) cmd_status "$@" ;;
	-h | --help | help) usage ;;
	*) usage_error "unknown command '$cmd'" ;;
	esac
}

main "$@"
