#!/usr/bin/env bash
# Trunkline against the stores a team would otherwise route and write with, on this machine:
# RouteOutbound (one node, a 3-node cluster, unary and streaming) against Redis and
# PostgreSQL holding the same rate decks, and SetSetting against etcd's Put (3 members each).
#
# Installs redis-server, postgresql and etcd-server from Debian's packages when missing (no
# service is started by apt), builds the release `trunkline` and `loadgen`, starts every
# server on loopback on free ports in a temporary folder, loads the decks a `trunkline dev`
# node seeds into Redis and PostgreSQL, runs every pair with the same concurrency, stops
# everything, and writes the report into docs/performance.md (between its markers) and
# docs/performance.json. The servers run one at a time under load; the others sit idle.
#
# Settings (environment), with their defaults:
#   DURATION=10s WARMUP=2s  each run's measured window and unrecorded warm-up
#   CONNECTIONS=50          connections (clients) of every run
#   STREAMS=10              gRPC requests in flight per connection in the multiplexed runs
#   WINDOW=10               lookups in flight per RouteStream call
#   NUMBERS=10000           numbers drawn from the decks
#   OUT_MD, OUT_JSON        where the report goes (docs/performance.md, docs/performance.json)
#   SETTLE_LOAD=1.0         after the build, wait for the 1-minute load average to fall below
#   SETTLE_MAX_S=120        this, at most this long
#
# Run from anywhere, as root (apt, and postgres runs as the postgres user via runuser):
#   crates/trunkline-bench/perf/run.sh
# Exit codes: 0 every run measured and the report written; 1 a setup step or a run failed
# (the report is still written, the failed runs marked "no result").
set -euo pipefail
cd "$(dirname "$0")/../../.."
root_dir=$(pwd)

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/trunkline-target}"
DURATION="${DURATION:-10s}"
WARMUP="${WARMUP:-2s}"
CONNECTIONS="${CONNECTIONS:-50}"
STREAMS="${STREAMS:-10}"
WINDOW="${WINDOW:-10}"
NUMBERS="${NUMBERS:-10000}"
OUT_MD="${OUT_MD:-docs/performance.md}"
OUT_JSON="${OUT_JSON:-docs/performance.json}"
SETTLE_LOAD="${SETTLE_LOAD:-1.0}"
SETTLE_MAX_S="${SETTLE_MAX_S:-120}"
command_line="DURATION=$DURATION WARMUP=$WARMUP CONNECTIONS=$CONNECTIONS STREAMS=$STREAMS WINDOW=$WINDOW crates/trunkline-bench/perf/run.sh"
# How long a server may take to start.
START_TIMEOUT_S=60

log() { printf '== %s\n' "$*" >&2; }

if ! grep -q '<!-- loadgen-report:begin -->' "$OUT_MD" 2>/dev/null; then
  echo "run.sh: $OUT_MD has no <!-- loadgen-report:begin --> marker to write the report at" >&2
  exit 1
fi
load_at_start=$(cut -d' ' -f1-3 /proc/loadavg)

# --- packages -------------------------------------------------------------------------------
need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v etcd >/dev/null || need+=(etcd-server)
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || need+=(postgresql)
if ((${#need[@]})); then
  log "installing ${need[*]}"
  # Only this script starts these servers, on ports of its choosing: policy-rc.d keeps apt
  # from starting the packages' own services.
  policy_rc_d=/usr/sbin/policy-rc.d
  remove_policy=false
  if [[ ! -e $policy_rc_d ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy_rc_d"
    chmod +x "$policy_rc_d"
    remove_policy=true
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
  if $remove_policy; then rm -f "$policy_rc_d"; fi
fi
pg_bin=$(dirname "$(compgen -G '/usr/lib/postgresql/*/bin/initdb' | sort -V | tail -n 1)")

# --- build ----------------------------------------------------------------------------------
log "building the release trunkline and loadgen"
cargo build --release --locked -p trunkline-node --bin trunkline -p trunkline-bench --bin loadgen >&2
trunkline="$CARGO_TARGET_DIR/release/trunkline"
loadgen="$CARGO_TARGET_DIR/release/loadgen"

# The build leaves the load average high for a minute: wait (a bounded time) for it to fall.
settle_deadline=$((SECONDS + SETTLE_MAX_S))
while (( SECONDS < settle_deadline )) \
  && ! awk -v limit="$SETTLE_LOAD" '{ exit !($1 < limit) }' /proc/loadavg; do
  sleep 5
done
log "load average $(cut -d' ' -f1-3 /proc/loadavg)"

# --- servers, and stopping them whatever happens --------------------------------------------
work=$(mktemp -d /tmp/trunkline-perf.XXXXXX)
# The postgres user must reach its data folder inside.
chmod 755 "$work"
background_pids=()
pg_data="$work/pg"
pg_started=false

stop_pid() {
  local pid=$1
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
  local status=$?
  set +e
  for pid in "${background_pids[@]}"; do stop_pid "$pid"; done
  wait 2>/dev/null
  if $pg_started; then
    runuser -u postgres -- "$pg_bin/pg_ctl" -D "$pg_data" -m fast -w stop >/dev/null 2>&1
  fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A loopback port nothing listens on, never one handed out before in this run.
used_ports=" "
free_port() {
  local port
  while :; do
    port=$((20000 + RANDOM % 40000))
    [[ $used_ports == *" $port "* ]] && continue
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      used_ports+="$port "
      echo "$port"
      return
    fi
  done
}

# Prints the last lines of a log, for a failure.
show_log() { echo "--- $1" >&2; tail -n 30 "$1" >&2 || true; }

# Starts `loadgen cluster` with $1 nodes, waits for `ready`, and sets cluster_pid,
# cluster_addrs (comma-separated api addresses) and cluster_pids (comma-separated).
start_trunkline() {
  local nodes=$1 out="$work/cluster-$1.out"
  "$loadgen" cluster --trunkline "$trunkline" --root "$work/trunkline-$nodes" --nodes "$nodes" \
    >"$out" 2>"$work/cluster-$nodes.err" &
  cluster_pid=$!
  background_pids+=("$cluster_pid")
  for _ in $(seq $((START_TIMEOUT_S * 10))); do
    if grep -qx ready "$out"; then
      cluster_addrs=$(awk '$1 == "node" { print $4 }' "$out" | paste -sd,)
      cluster_pids=$(awk '$1 == "node" { print $6 }' "$out" | paste -sd,)
      return 0
    fi
    if ! kill -0 "$cluster_pid" 2>/dev/null; then break; fi
    sleep 0.1
  done
  echo "run.sh: the $nodes-node Trunkline cluster did not start" >&2
  show_log "$work/cluster-$nodes.err"
  for log_file in "$work/trunkline-$nodes"/*.log; do show_log "$log_file"; done
  return 1
}

stop_trunkline() {
  stop_pid "$cluster_pid"
  wait "$cluster_pid" 2>/dev/null || true
}

results="$work/results.jsonl"
: >"$results"
failed_runs=()
# One measured run: its label, then the loadgen arguments. A failure is recorded, not fatal.
measure() {
  local label=$1
  shift
  log "run $label"
  if ! "$loadgen" "$@" --label "$label" --connections "$CONNECTIONS" \
    --duration "$DURATION" --warmup "$WARMUP" >>"$results"; then
    failed_runs+=("$label")
  fi
}

log "starting Redis, PostgreSQL and a Trunkline dev node in $work"
redis_port=$(free_port)
mkdir "$work/redis"
# An in-memory cache, as a routing deployment would run it: no snapshots, no AOF.
redis-server --bind 127.0.0.1 --port "$redis_port" --dir "$work/redis" --save '' \
  --appendonly no --logfile "$work/redis.log" &
redis_pid=$!
background_pids+=("$redis_pid")

pg_port=$(free_port)
install -d -o postgres -g postgres "$pg_data" "$work/pg-log"
pg_log="$work/pg-log/postgres.log"
runuser -u postgres -- "$pg_bin/initdb" -D "$pg_data" -U postgres --auth=trust -E UTF8 \
  --locale=C --no-sync >"$work/initdb.log" 2>&1 || { show_log "$work/initdb.log"; exit 1; }
pg_started=true
runuser -u postgres -- "$pg_bin/pg_ctl" -D "$pg_data" -l "$pg_log" -w \
  -t "$START_TIMEOUT_S" \
  -o "-c listen_addresses=127.0.0.1 -p $pg_port -k $pg_data" start >/dev/null \
  || { show_log "$pg_log"; exit 1; }
pg_pid=$(head -n 1 "$pg_data/postmaster.pid")

start_trunkline 1
one_node_addr=$cluster_addrs
one_node_pid=$cluster_pids
for _ in $(seq 50); do
  redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break
  sleep 0.1
done

log "loading the decks of $one_node_addr into Redis and PostgreSQL"
"$loadgen" load-decks --from-trunkline "$one_node_addr" --redis "127.0.0.1:$redis_port" \
  --pg "127.0.0.1:$pg_port" --numbers-out "$work/numbers.txt" --count "$NUMBERS"
numbers=(--numbers "$work/numbers.txt")

load_before_runs=$(cut -d' ' -f1-3 /proc/loadavg)

# --- lookups: one node, Redis, PostgreSQL ---------------------------------------------------
measure route-1n route --addrs "$one_node_addr" "${numbers[@]}" --server-pids "$one_node_pid"
measure route-1n-mux route --addrs "$one_node_addr" --streams "$STREAMS" "${numbers[@]}" \
  --server-pids "$one_node_pid"
measure stream-1n route --target stream --addrs "$one_node_addr" --window "$WINDOW" \
  "${numbers[@]}" --server-pids "$one_node_pid"
# The decision alone, as `trunkctl route test` asks for it: no call record through Raft, so
# what the anchors do (a longest-prefix match) is compared with what Trunkline adds to it.
measure stream-1n-dry route --target stream --addrs "$one_node_addr" --window "$WINDOW" \
  --dry-run "${numbers[@]}" --server-pids "$one_node_pid"
stop_trunkline
measure redis redis --addr "127.0.0.1:$redis_port" "${numbers[@]}" --server-pids "$redis_pid"
measure pg pg --addr "127.0.0.1:$pg_port" "${numbers[@]}" --server-pids "$pg_pid"
stop_pid "$redis_pid"
runuser -u postgres -- "$pg_bin/pg_ctl" -D "$pg_data" -m fast -w stop >/dev/null
pg_started=false

# --- writes and lookups: a 3-node Trunkline cluster -----------------------------------------
# Writes first, on the fresh cluster: the lookups leave every call they route in progress
# (nobody ends them), which the cluster then carries.
log "starting a 3-node Trunkline cluster"
start_trunkline 3
measure set-leader write --target trunkline --addrs "$cluster_addrs" --to leader \
  --server-pids "$cluster_pids"
measure set-follower write --target trunkline --addrs "$cluster_addrs" --to follower \
  --server-pids "$cluster_pids"
measure route-3n route --addrs "$cluster_addrs" "${numbers[@]}" --server-pids "$cluster_pids"
measure route-3n-mux route --addrs "$cluster_addrs" --streams "$STREAMS" "${numbers[@]}" \
  --server-pids "$cluster_pids"
measure stream-3n route --target stream --addrs "$cluster_addrs" --window "$WINDOW" \
  "${numbers[@]}" --server-pids "$cluster_pids"
stop_trunkline

# --- writes: a 3-member etcd cluster --------------------------------------------------------
log "starting a 3-member etcd cluster"
etcd_clients=()
etcd_peers=()
for member in 1 2 3; do
  etcd_clients+=("127.0.0.1:$(free_port)")
  etcd_peers+=("127.0.0.1:$(free_port)")
done
initial_cluster="m1=http://${etcd_peers[0]},m2=http://${etcd_peers[1]},m3=http://${etcd_peers[2]}"
etcd_pids=()
for member in 1 2 3; do
  client=${etcd_clients[member - 1]}
  peer=${etcd_peers[member - 1]}
  etcd --name "m$member" --data-dir "$work/etcd-$member" \
    --listen-client-urls "http://$client" --advertise-client-urls "http://$client" \
    --listen-peer-urls "http://$peer" --initial-advertise-peer-urls "http://$peer" \
    --initial-cluster "$initial_cluster" --initial-cluster-token trunkline-perf \
    --initial-cluster-state new --logger zap --log-level warn \
    >"$work/etcd-$member.log" 2>&1 &
  etcd_pids+=("$!")
  background_pids+=("$!")
done
etcd_addrs=$(IFS=,; echo "${etcd_clients[*]}")
etcd_pid_list=$(IFS=,; echo "${etcd_pids[*]}")
measure etcd-leader write --target etcd --addrs "$etcd_addrs" --to leader \
  --server-pids "$etcd_pid_list"
measure etcd-follower write --target etcd --addrs "$etcd_addrs" --to follower \
  --server-pids "$etcd_pid_list"
for pid in "${etcd_pids[@]}"; do stop_pid "$pid"; done

# --- the report -----------------------------------------------------------------------------
commit=$(git -C "$root_dir" rev-parse --short HEAD 2>/dev/null || echo unknown)
if ! git -C "$root_dir" diff --quiet HEAD 2>/dev/null; then
  commit+=" with uncommitted changes"
fi
redis_version=$(redis-server --version | grep -o 'v=[0-9.]*' | cut -c3-)
pg_version=$("$pg_bin/postgres" --version | awk '{ print $3 }')
etcd_version=$(etcd --version | awk '/etcd Version/ { print $3 }')
"$loadgen" report --results "$results" --markdown "$OUT_MD" --json "$OUT_JSON" \
  --command "$command_line" --date "$(date -u '+%Y-%m-%d %H:%M UTC')" --commit "$commit" \
  --load-before "$load_before_runs (before the build: $load_at_start)" \
  --note "Every run: $CONNECTIONS connections, $WARMUP warm-up, then $DURATION measured, closed loop (each request sent when the previous one on its connection or stream is answered)." \
  --note "Trunkline: the release \`trunkline\`; \`trunkline dev --no-auth\` alone, or with two \`trunkline serve\` members joined (\`loadgen cluster\`); lookups for tenant \`demo\`, not dry runs, so each also writes its call record through Raft. Anchors: Redis $redis_version (no persistence), PostgreSQL $pg_version (default settings), etcd $etcd_version (3 members, default settings), from Debian's packages, all on loopback." \
  --note "Lookups: $NUMBERS numbers drawn from the demo decks, the same sequence for every backend; writes: 1,000 keys overwritten in turn, 64-byte values." \
  --pair "Lookup, 1 node, 1 request a connection|route-1n|redis" \
  --pair "Lookup, 1 node, 1 request a connection|route-1n|pg" \
  --pair "Lookup, 1 node, $STREAMS requests a connection|route-1n-mux|redis" \
  --pair "Lookup, 1 node, RouteStream, window $WINDOW|stream-1n|redis" \
  --pair "Lookup, 1 node, RouteStream, window $WINDOW|stream-1n|pg" \
  --pair "Lookup (dry run: no call record), 1 node, RouteStream|stream-1n-dry|redis" \
  --pair "Lookup (dry run: no call record), 1 node, RouteStream|stream-1n-dry|pg" \
  --pair "Lookup, 3 nodes, 1 request a connection|route-3n|redis" \
  --pair "Lookup, 3 nodes, $STREAMS requests a connection|route-3n-mux|redis" \
  --pair "Lookup, 3 nodes, RouteStream, window $WINDOW|stream-3n|redis" \
  --pair "Write to the leader (SetSetting)|set-leader|etcd-leader" \
  --pair "Write to a follower (SetSetting)|set-follower|etcd-follower"

if ((${#failed_runs[@]})); then
  echo "run.sh: these runs failed: ${failed_runs[*]}" >&2
  exit 1
fi
log "done: $OUT_MD, $OUT_JSON"
