#!/usr/bin/env bash
# Calls per second through Kamailio with and without Trunkline (issue 14): what asking the
# cluster costs a proxy. Not a test: one run on this machine, numbers printed.
#
#   deploy/kamailio/bench.sh [SECONDS [CALLS_PER_SECOND]]     # default 20 s at 300 calls/s
#
# Two runs of the same sipp caller (deploy/kamailio/sipp/caller.xml) at a fixed rate, against
# the same two sipp gateways: the first refuses every call (REFUSE_CODE), the second answers,
# so every call fails over once.
#   static:    Kamailio with deploy/kamailio/kamailio.cfg -A STATIC_ROUTES (the two gateways
#              in a fixed rtjson document, no cluster);
#   trunkline: the same cfg asking a three-node Trunkline cluster on this machine (one HTTP
#              request a call, /v1/outbound with plan=1; the refused leg and the call's end
#              go out later in batches from the reporter processes).
# Printed for each: calls answered per second, the failed calls, and the post-dial delay
# (sipp's response time, INVITE to 200: mean, p50, p99; sipp's clock ticks every few ms under
# load, so the mean says more than the percentiles), then the ratios.
#
# REFUSE_CODE is 500 by default, not 503: a 503 is circuit-breaker evidence, so after a few
# calls Trunkline stops offering the refusing gateway at all and its run does less SIP work
# than the static one (REFUSE_CODE=503 shows that). A 500 moves every call on without
# opening the breaker, so both runs do the same SIP work.
#
# Binaries: TRUNKLINE_BIN / TRUNKCTL_BIN, else the release build in $CARGO_TARGET_DIR (or
# target/), else the debug build (said in the output: a debug node is several times slower).
# Needs kamailio, sipp and ss (.ci/run installs them). KEEP=1 keeps the logs and statistics.
# ONLY=trunkline skips the static run (to profile the cluster's side alone); ONLY=static skips
# the cluster's run (to find the static list's own limit). CHILDREN: Kamailio's
# SIP workers (8). The nodes take their tokio worker threads from TOKIO_WORKER_THREADS when
# set (sharing this machine's two cores with Kamailio and sipp, 1 spends less on waking
# threads). TL_MAX_CPS: MAX_CPS for the cluster's Kamailio (see below).
# KAMAILIO_OPTS: options for both Kamailio command lines; by default 512 MB of shared memory
# (-m 512: transactions, their AVPs and a dialog per call live there; Debian's default 64 MB
# runs out at 300 calls/s, 256 MB near 1,400, and a call Kamailio can't allocate for is
# refused 500 at once) and the TLSF memory manager for shared and private memory (-x tlsf -X
# tlsf: Debian's default, qm, spent 15 % of Kamailio's CPU in qm_malloc at 800 calls/s;
# KAMAILIO_OPTS="-m 512" measures with it).
set -euo pipefail

SECONDS_TO_RUN=${1:-20}
RATE=${2:-300}
REFUSE_CODE=${REFUSE_CODE:-500}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}

pick_binary() { # NAME ENV_VALUE
  if [[ -n $2 ]]; then echo "$2"; return; fi
  for profile in release debug; do
    if [[ -x $target/$profile/$1 ]]; then echo "$target/$profile/$1"; return; fi
  done
  echo "no $1 binary in $target: cargo build --release --bin $1, or set the path" >&2
  exit 2
}
trunkline=$(pick_binary trunkline "${TRUNKLINE_BIN:-}")
trunkctl=$(pick_binary trunkctl "${TRUNKCTL_BIN:-}")
for program in kamailio sipp ss; do
  command -v "$program" >/dev/null || { echo "$program is missing: bash .ci/run installs it" >&2; exit 2; }
done

work=$(mktemp -d)
pids=()
groups=()
cleanup() {
  for group in "${groups[@]}"; do kill -KILL -- "-$group" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [[ -n ${KEEP:-} ]]; then echo "logs kept in $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

# A port nothing listens on (TCP and UDP), picked at random.
used_ports=" "
free_port() {
  local port
  while :; do
    port=$((20000 + RANDOM % 30000))
    [[ $used_ports == *" $port "* ]] && continue
    if ! ss -Hltun "sport = :$port" | grep -q .; then
      used_ports+="$port "
      echo "$port"
      return
    fi
  done
}

# Waits up to 30 s for a command to succeed.
wait_until() { # WHAT COMMAND...
  local what=$1; shift
  for _ in $(seq 300); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  echo "timed out waiting for $what" >&2
  exit 1
}

json_value() { # FIELD < json
  sed -n "s/.*\"$1\": *\"\\([^\"]*\\)\".*/\\1/p" | head -1
}

# The gateways: the first refuses, the second answers. -aa answers the nodes' OPTIONS probes.
sed "s/SIP\\/2.0 503 Service Unavailable/SIP\\/2.0 $REFUSE_CODE Refused/" \
  "$here/sipp/refuse503.xml" >"$work/refuse.xml"
refusing_port=$(free_port)
answering_port=$(free_port)
(cd "$work" && exec sipp -sf refuse.xml -aa -i 127.0.0.1 -p "$refusing_port" -nostdin >/dev/null 2>&1) &
pids+=($!)
gateway_pids=($!)
(cd "$work" && exec sipp -sf "$here/sipp/answer.xml" -aa -i 127.0.0.1 -p "$answering_port" -nostdin >/dev/null 2>&1) &
pids+=($!)
gateway_pids+=($!)

# CPU time (clock ticks) of processes: where a run's CPU went.
process_ticks() { # PIDS...
  local pid total=0 fields
  for pid in "$@"; do
    # Fields 14 and 15: user and system time (the command, field 2, has no spaces here).
    read -r -a fields <"/proc/$pid/stat" 2>/dev/null || continue
    total=$((total + fields[13] + fields[14]))
  done
  echo "$total"
}
ticks_per_second=$(getconf CLK_TCK)
# CPU time (clock ticks) of this shell's finished children, user and system: a sipp caller's
# once it has run. (Not /proc/stat: its busy time is sampled at the timer tick and missed
# most of the short bursts of SIP work here, less than Kamailio's own.)
children_ticks() {
  local line user system
  line=$(times | tail -1)
  read -r user system <<<"$line"
  awk -v u="$user" -v s="$system" -v hz="$ticks_per_second" 'BEGIN {
    split(u, a, /[ms]/); split(s, b, /[ms]/)
    printf "%d\n", ((a[1] * 60 + a[2]) + (b[1] * 60 + b[2])) * hz
  }'
}

# The cluster: three nodes, formed as the README says.
api=() peer=() http=() node_pids=()
for n in 1 2 3; do
  api[n]=127.0.0.1:$(free_port)
  peer[n]=127.0.0.1:$(free_port)
  http[n]=127.0.0.1:$(free_port)
  "$trunkline" serve --node-id "$n" --cluster-name bench --data-dir "$work/node-$n" \
    --api-addr "${api[n]}" --peer-addr "${peer[n]}" --http-addr "${http[n]}" \
    --probe-addr 127.0.0.1:0 --insecure --log-level warn >"$work/node-$n.log" 2>&1 &
  pids+=($!)
  node_pids+=($!)
done
wait_until "node 1's bootstrap token" test -f "$work/node-1/bootstrap.token"
ctl() { "$trunkctl" --endpoints "${api[1]},${api[2]},${api[3]}" --timeout-ms 10000 "$@"; }
admin_token=$("$trunkctl" --endpoints "${api[1]}" --token-file "$work/node-1/bootstrap.token" \
  -o json cluster init | json_value admin_token)
export TRUNKLINE_TOKEN=$admin_token
for n in 2 3; do
  wait_until "node $n joining" "$trunkctl" --endpoints "${api[1]}" cluster join --node-id "$n" \
    --peer-addr "${peer[n]}" --api-addr "${api[n]}"
  wait_until "node $n promoted" "$trunkctl" --endpoints "${api[1]}" cluster promote "$n"
done
proxy_token=$(ctl -o json token create --role proxy --all-tenants --name bench | json_value token)
# (Their warnings about emergency calls are beside the point here.)
ctl tenant add acme >/dev/null 2>&1
for carrier in alpha:$refusing_port:0.0100 bravo:$answering_port:0.0200; do
  IFS=: read -r name port rate <<<"$carrier"
  ctl carrier add "$name" --plus >/dev/null 2>&1
  ctl gateway add "$name-1" --carrier "$name" --uri "sip:127.0.0.1:$port" >/dev/null 2>&1
  printf 'prefix,rate\n44,%s\n' "$rate" >"$work/$name.csv"
  ctl rates import "$work/$name.csv" --carrier "$name" --replace >/dev/null 2>&1
done
for n in 1 2 3; do
  wait_until "node $n routing to both carriers" bash -c \
    "curl -sf -H 'Authorization: Bearer $proxy_token' \
      'http://${http[n]}/v1/outbound?tenant=acme&call_id=ready&to=%2B442071234567&dry_run=1' \
      | grep -q bravo-1"
done

# The Raft log index node 1 has applied (a dry-run lookup's answer says it): entries written
# during a run are the difference.
applied_index() {
  curl -sf -H "Authorization: Bearer $proxy_token" \
    "http://${http[1]}/v1/outbound?tenant=acme&call_id=index&to=%2B442071234567&dry_run=1" |
    sed -n 's/.*"applied_index": *\([0-9]*\).*/\1/p'
}

# One Kamailio run and one sipp caller run; writes "answered_per_second failed mean p50 p99"
# to $work/NAME/result.
run() { # NAME KAMAILIO_DEFINES...
  local name=$1; shift
  local port carrier_port dir=$work/$name
  port=$(free_port)
  carrier_port=$(free_port)
  mkdir -p "$dir"
  # shellcheck disable=SC2086 # KAMAILIO_OPTS is a list of options on purpose.
  setsid kamailio ${KAMAILIO_OPTS:--m 512 -x tlsf -X tlsf} -DD -E -f "$here/kamailio.cfg" -P "$dir/kamailio.pid" -Y "$dir" \
    -A "LISTEN=udp:127.0.0.1:$port" -A "CARRIER_LISTEN=udp:127.0.0.1:$carrier_port" \
    -A "CARRIER_PORT=$carrier_port" -A LOG_LEVEL=0 -A "CHILDREN=${CHILDREN:-8}" "$@" >"$dir/kamailio.log" 2>&1 &
  local kamailio=$!
  groups+=("$kamailio")
  wait_until "kamailio ($name)" test -s "$dir/kamailio.pid"
  sleep 1 # its workers are forked after the pid file is written
  local nodes_before index_before sipp_before
  index_before=$(applied_index)
  nodes_before=$(process_ticks "${node_pids[@]}")
  sipp_before=$(($(process_ticks "${gateway_pids[@]}") + $(children_ticks)))
  (cd "$dir" && sipp -sf "$here/sipp/caller.xml" -s +442071234567 -key caller +14155550111 \
    -i 127.0.0.1 -p "$(free_port)" "127.0.0.1:$port" -r "$RATE" -m $((RATE * SECONDS_TO_RUN)) \
    -l $((RATE * 4)) -timeout $((SECONDS_TO_RUN + 60))s -recv_timeout 10s -nostdin \
    -trace_stat -stf stats.csv -fd 1 -trace_rtt -rtt_freq 1 -trace_err -error_file errors.log \
    >/dev/null 2>&1) || true
  # CPU of the run: Kamailio's processes (all of them, started with the run), and the nodes'
  # since the run began.
  local kamailio_ticks nodes_ticks sipp_ticks
  # shellcheck disable=SC2046 # one PID per word
  kamailio_ticks=$(process_ticks $(ps -o pid= -g "$kamailio"))
  nodes_ticks=$(($(process_ticks "${node_pids[@]}") - nodes_before))
  sipp_ticks=$(($(process_ticks "${gateway_pids[@]}") + $(children_ticks) - sipp_before))
  echo $(($(applied_index) - index_before)) >"$dir/entries"
  { kill -KILL -- "-$kamailio" && wait "$kamailio"; } 2>/dev/null || true
  # Answered calls per second: the answered calls over the time of the last answer (the rtt
  # file stamps each in ms since the start), so calls still waiting at the end don't dilute
  # it; the PDD from the same file.
  awk -F';' '
    FNR == 1 { for (i = 1; i <= NF; i++) column[$i] = i; next }
    { last = $0 }
    END { split(last, field, ";"); print field[column["FailedCall(C)"]] }' "$dir/stats.csv" >"$dir/failed"
  cat "$dir"/*_rtt.csv | awk -F';' 'NR > 1 && $2 ~ /^[0-9.]+$/ { print $1, $2 }' >"$dir/answered"
  sort -k2,2n "$dir/answered" |
    awk -v failed="$(cat "$dir/failed")" '
      { value[NR] = $2; sum += $2; if ($1 > end) end = $1 }
      END {
        if (NR == 0 || end == 0) { print "0", failed, "0 0 0"; exit }
        printf "%.1f %d %.1f %d %d\n", NR / (end / 1000), failed, sum / NR,
          value[int((NR - 1) * 0.5) + 1], value[int((NR - 1) * 0.99) + 1]
      }' >"$dir/result"
  # CPU ms per answered call: Kamailio's, the nodes', sipp's (the caller and both gateways).
  awk -v calls="$(wc -l <"$dir/answered")" -v k="$kamailio_ticks" -v n="$nodes_ticks" \
    -v s="$sipp_ticks" -v hz="$ticks_per_second" 'BEGIN {
      per = (calls > 0 ? 1000 / hz / calls : 0)
      printf "%.3f %.3f %.3f\n", k * per, n * per, s * per
    }' >"$dir/cpu"
}

# A run skipped (ONLY): its figures zero.
skipped() { # NAME
  mkdir -p "$work/$1"
  echo "0 0 0 0 0" >"$work/$1/result"
  echo "0 0 0" >"$work/$1/cpu"
  echo 0 >"$work/$1/entries"
}

echo "trunkline: $trunkline"
echo "$SECONDS_TO_RUN s at $RATE calls/s, first gateway refusing with $REFUSE_CODE, the second answering"
if [[ ${ONLY:-} == trunkline ]]; then
  skipped static # profiling the cluster's side alone
else
  run static -A STATIC_ROUTES -A "STATIC_GW1=\"127.0.0.1:$refusing_port\"" \
    -A "STATIC_GW2=\"127.0.0.1:$answering_port\""
fi
# TL_MAX_CPS: the cluster's run only, with MAX_CPS (the cfg refuses calls past it, 503): how
# it levels off past what it keeps up with (the static run's rate is never capped).
max_cps=()
if [[ -n ${TL_MAX_CPS:-} ]]; then max_cps=(-A "MAX_CPS=$TL_MAX_CPS"); fi
if [[ ${ONLY:-} == static ]]; then
  skipped trunkline # the static list's own limit
else
  run trunkline "${max_cps[@]}" -A 'TL_TENANT="acme"' \
    -A "TL_NODE1=\"tl1=>http://bench:$proxy_token@${http[1]}\"" \
    -A "TL_NODE2=\"tl2=>http://bench:$proxy_token@${http[2]}\"" \
    -A "TL_NODE3=\"tl3=>http://bench:$proxy_token@${http[3]}\""
fi
read -r static_cps static_failed static_mean static_p50 static_p99 <"$work/static/result"
read -r tl_cps tl_failed tl_mean tl_p50 tl_p99 <"$work/trunkline/result"

read -r static_kamailio static_nodes static_sipp <"$work/static/cpu"
read -r tl_kamailio tl_nodes tl_sipp <"$work/trunkline/cpu"

printf '\n%-10s %11s %7s %12s %7s %7s %16s %13s %12s\n' "" "answered/s" "failed" "PDD mean ms" \
  "p50 ms" "p99 ms" "Kamailio CPU ms" "nodes CPU ms" "sipp CPU ms"
printf '%-10s %11s %7s %12s %7s %7s %16s %13s %12s\n' static "$static_cps" "$static_failed" \
  "$static_mean" "$static_p50" "$static_p99" "$static_kamailio" "$static_nodes" "$static_sipp"
printf '%-10s %11s %7s %12s %7s %7s %16s %13s %12s\n' trunkline "$tl_cps" "$tl_failed" \
  "$tl_mean" "$tl_p50" "$tl_p99" "$tl_kamailio" "$tl_nodes" "$tl_sipp"
echo "(CPU ms: the processes' CPU time during the run over its answered calls; sipp's is the"
echo "caller's and both gateways'.)"
echo "Raft entries written during the runs: static $(cat "$work/static/entries"), trunkline $(cat "$work/trunkline/entries")"
awk -v a="$tl_cps" -v b="$static_cps" -v c="$tl_mean" -v d="$static_mean" 'BEGIN {
  printf "\ntrunkline / static: %.2f of the answered calls per second; PDD mean %s ms more\n",
    (b > 0 ? a / b : 0), c - d
}'
