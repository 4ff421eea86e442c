#!/usr/bin/env bash
# The standard benchmark scenarios of issue 7, with the load generator (services/loadgen),
# against the local cluster (scripts/cluster.sh: 2 gateways, 2 message services, Postgres,
# Redis) and against the all-in-one binary. Results go to bench-results/<timestamp>/.
#
#   scripts/bench.sh [--quick] [--only cluster|all-in-one] [--scenarios "light saturation bigroom reactions typing idle tracing"]
#                    [--port P] [--idle-connections N] [--saturation-rates "5 10 20"]
#                    [--gateways N] [--services M]
#
# The cluster has 2 gateways and 2 message services unless --gateways and --services say
# otherwise: on one small machine, fewer processes wait less for a core at moderate load
# (docs/benchmarks.md), so the topology is part of what a figure measures.
#
#   light       10 rooms x 10 members, 1 sender per room at 10 msg/s
#   saturation  50 rooms x 4 members, all sending; the rate steps up until anything is lost,
#               duplicated or reordered, or the pace is not kept; the highest step that was
#               also within 100 ms at p99 is reported (highest clean step).
#               Each step also reports where a message's time went, hop by hop, as the
#               means of the services' own histograms over the run (<step>_hops)
#   bigroom     1 room x 2,000 members over both gateways, 1 sender at 50 msg/s, then higher
#               while p99 <= 50 ms and clean; reports gateway CPU-seconds per million deliveries
#   reactions   the big room with a timeline that changes: 1 sender at 50 msg/s and a member
#               reacting (👍 to the newest message, then taking it back) at 50 a second, so
#               2,000 members receive 100 events a second; reports the same figures
#   idle        as many connections on one gateway as the file-descriptor limit allows;
#               reports gateway RSS per connection
#   tracing     light and the saturation steps again on fresh clusters, with tracing off,
#               at 1% sampling and at 100%, every span exported over OTLP/gRPC to a sink
#               that only counts (`loadgen otlp-sink`): what tracing costs, side by side
#
# --quick runs each scenario briefly with smaller steps: a check that everything works,
# not figures to publish. Every load generator run is bounded by `timeout`.
# Servers run from release binaries; the load generator connects to the gateways directly
# (not through haproxy) so that it controls which gateway each client sits on.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

# shellcheck disable=SC2034 # read by log, in lib.sh
LOG_PREFIX=bench
# shellcheck source=lib.sh
. scripts/lib.sh

quick=0 only="" scenarios="light saturation bigroom reactions typing idle tracing" port=18080 idle_connections=""
gateways=2 services=2
rates_chosen=""
while [ $# -gt 0 ]; do
  case $1 in
    --quick) quick=1; shift ;;
    --only) only=$2; shift 2 ;;
    --scenarios) scenarios=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    --idle-connections) idle_connections=$2; shift 2 ;;
    --saturation-rates) rates_chosen=$2; shift 2 ;;
    --gateways) gateways=$2; shift 2 ;;
    --services) services=$2; shift 2 ;;
    -h|--help) sed -n '2,34p' "$0" >&2; exit 0 ;;
    *) die "unknown option $1" ;;
  esac
done
command -v jq >/dev/null 2>&1 || die "jq is needed (apt-get install jq)"

if [ "$quick" = 1 ]; then
  duration=2s warmup=1s drain=10s hold=2s
  saturation_rates="5 20"
  bigroom_members=200 bigroom_rates="50"
else
  duration=20s warmup=5s drain=30s hold=15s
  saturation_rates="5 10 20 40 60 80 100 125 150 200 250 300"
  bigroom_members=2000 bigroom_rates="50 100 200"
fi
if [ -n "$rates_chosen" ]; then saturation_rates=$rates_chosen; fi
# Every run: setup + warm-up + window + drain, with room for 2,000 connections.
run_limit=300

# Idle holds one descriptor per connection in the generator and in the gateway (which
# inherits this shell's limit through cluster.sh).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
fd_limit=$(ulimit -n); [ "$fd_limit" = unlimited ] && fd_limit=1048576
if [ -z "$idle_connections" ]; then
  if [ "$quick" = 1 ]; then idle_connections=2000
  else idle_connections=$(( fd_limit - 2000 < 100000 ? fd_limit - 2000 : 100000 )); fi
fi

target_dir="${CARGO_TARGET_DIR:-$root/target}"
# For the idle scenario: one user per connection, minted by the load generator.
jwt_secret=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
log "building release binaries"
cargo build --release --quiet -p loadgen -p all-in-one -p gateway -p message-service
loadgen="$target_dir/release/loadgen"

stamp=$(date -u +%Y%m%dT%H%M%SZ)
out="$root/bench-results/$stamp"
mkdir -p "$out"
{
  echo "date: $(date -u +%FT%TZ)"
  echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "quick: $quick"
  echo "kernel: $(uname -sr)"
  echo "cpus: $(nproc)"
  grep -m1 'model name' /proc/cpuinfo 2>/dev/null || true
  grep -m1 MemTotal /proc/meminfo 2>/dev/null || true
  echo "open files limit: $fd_limit"
  echo "postgres: $(psql --version 2>/dev/null || echo '?')"
  echo "redis: $(redis-server --version 2>/dev/null || echo '?')"
} >"$out/machine.txt"
log "results in $out"

# One load generator run, bounded in time; its JSON lands in $dir/$name.json. A failed
# run is recorded, not fatal: the next scenario still runs.
lg() {
  local dir=$1 name=$2; shift 2
  mkdir -p "$dir"
  log "$name: loadgen $*"
  if ! timeout --signal=INT --kill-after=10 "$run_limit" "$loadgen" "$@" --name "$name" --out "$dir/$name.json" \
      >"$dir/$name.stdout" 2>"$dir/$name.stderr"; then
    log "$name: FAILED (see $dir/$name.stderr)"; tail -n 3 "$dir/$name.stderr" >&2 || true
    return 1
  fi
  cat "$dir/$name.stdout" >&2
}

# p99 within $2 ms, nothing lost, duplicated or reordered, pace kept, drain complete.
clean_within() {
  jq -e --argjson limit "$2" '.correctness.clean and .drain.completed
    and .latency.delivery.p99_ms <= $limit
    and .throughput.sends_per_second >= 0.95 * .throughput.target_sends_per_second' "$1" >/dev/null
}

# Nothing lost, duplicated or reordered, pace kept, drain complete, whatever the latency.
keeps_up() {
  jq -e '.correctness.clean and .drain.completed
    and .throughput.sends_per_second >= 0.95 * .throughput.target_sends_per_second' "$1" >/dev/null
}

# The /metrics of every ops address after $1 (host:port ...), one after another, into $1.
scrape() {
  local file=$1 address; shift
  : >"$file"
  for address in "$@"; do
    curl -fsS --max-time 10 "http://$address/metrics" >>"$file" || log "cannot scrape $address"
  done
}

# The mean of histogram $3 over what was observed between scrapes $1 and $2, summed over
# every process, times $4 (1000: seconds as ms); "-" where nothing was observed.
hop_mean() {
  awk -v h="$3" -v scale="${4:-1000}" 'FNR == 1 { file++ }
    $1 == h "_sum" { s[file] += $2 } $1 == h "_count" { c[file] += $2 }
    END { n = c[2] - c[1]; if (n > 0) printf "%.3f", (s[2] - s[1]) / n * scale; else printf "-" }' "$1" "$2"
}

# Where a message's time went in one run, from the scrapes before ($1) and after ($2):
# the gateway's frame → ack, its SendMessages call and the same call inside the message
# service (the difference: between the two processes, both ways), the commit's wait, the
# commit and its batch; the commit's end → XADD done, and XADD → fan-out on a gateway;
# means, in ms.
hops() {
  printf 'frame→ack %s ms (call %s, in the service %s; commit wait %s, commit %s, batch %s sends); commit→XADD done %s ms; XADD→fan-out %s ms' \
    "$(hop_mean "$1" "$2" sc_gateway_send_seconds)" \
    "$(hop_mean "$1" "$2" sc_gateway_send_call_seconds)" \
    "$(hop_mean "$1" "$2" sc_message_service_send_seconds)" \
    "$(hop_mean "$1" "$2" sc_message_service_commit_wait_seconds)" \
    "$(hop_mean "$1" "$2" sc_message_service_commit_seconds)" \
    "$(hop_mean "$1" "$2" sc_message_service_commit_batch_size 1)" \
    "$(hop_mean "$1" "$2" sc_message_service_publish_seconds)" \
    "$(hop_mean "$1" "$2" sc_gateway_fanout_lag_seconds)"
}

# Sum of CPU-seconds of the watched processes whose name starts with $2, per million deliveries.
cpu_per_million() {
  jq -r --arg p "$2" '([.processes[] | select(.name | startswith($p)) | .cpu_seconds] | add // 0) as $cpu
    | if .throughput.delivered > 0 then ($cpu / .throughput.delivered * 1e6 * 1000 | round / 1000) else null end' "$1"
}

# Runs the chosen scenarios against one target. $1: label; $2: gateway URLs (space
# separated); $3: --watch-pid arguments; $4: the gateway prefix for CPU accounting; $5:
# the ops addresses (host:port, space separated) whose metrics break a run down by hop.
run_scenarios() {
  local label=$1 gateways=$2 watch=$3 gw_prefix=$4 ops=$5
  local dir="$out/$label" gw_args=() first_gw_args=() watch_args=()
  for g in $gateways; do gw_args+=(--gateway "$g"); done
  first_gw_args=(--gateway "${gateways%% *}")
  for w in $watch; do watch_args+=(--watch-pid "$w"); done
  local common=(--warmup "$warmup" --duration "$duration" --drain-timeout "$drain" "${watch_args[@]}")
  mkdir -p "$dir"
  : >"$dir/results.tsv"

  if [[ " $scenarios " == *" light "* ]]; then
    lg "$dir" light load "${gw_args[@]}" --clients 100 --rooms 10 --senders-per-room 1 --rate 10 "${common[@]}" || true
  fi

  if [[ " $scenarios " == *" saturation "* ]]; then
    local best="" rate
    for rate in $saturation_rates; do
      local name="saturation-$rate"
      # shellcheck disable=SC2086 # one address per word
      scrape "$dir/$name.metrics-before" $ops
      lg "$dir" "$name" load "${gw_args[@]}" --clients 200 --rooms 50 --senders-per-room 4 --rate "$rate" \
        "${common[@]}" || break
      # shellcheck disable=SC2086
      scrape "$dir/$name.metrics-after" $ops
      printf '%s_hops\t%s\n' "$name" "$(hops "$dir/$name.metrics-before" "$dir/$name.metrics-after")" >>"$dir/results.tsv"
      # A step over 100 ms at p99 does not end the climb: batches grow with the rate, and a
      # higher step has been clean where a lower one was not. Only loss, a duplicate, a
      # reordering or a pace the system cannot keep does.
      if clean_within "$dir/$name.json" 100; then best=$name
      elif ! keeps_up "$dir/$name.json"; then log "$name: lost, duplicated, reordered or behind its pace; stopping"; break
      else log "$name: p99 over 100 ms, nothing lost: the next step runs"; fi
    done
    printf 'saturation_highest_clean_step\t%s\n' "${best:-none}" >>"$dir/results.tsv"
  fi

  if [[ " $scenarios " == *" bigroom "* ]]; then
    local best="" rate
    for rate in $bigroom_rates; do
      local name="bigroom-$rate"
      lg "$dir" "$name" load "${gw_args[@]}" --clients "$bigroom_members" --rooms 1 --senders-per-room 1 \
        --rate "$rate" --connect-concurrency 128 "${common[@]}" || break
      printf '%s_gateway_cpu_s_per_million_deliveries\t%s\n' "$name" "$(cpu_per_million "$dir/$name.json" "$gw_prefix")" \
        >>"$dir/results.tsv"
      if clean_within "$dir/$name.json" 50; then best=$name; else log "$name: not clean or p99 > 50 ms; stopping"; break; fi
    done
    printf 'bigroom_highest_step_within_50ms\t%s\n' "${best:-none}" >>"$dir/results.tsv"
  fi

  if [[ " $scenarios " == *" reactions "* ]]; then
    local name="bigroom-reactions"
    lg "$dir" "$name" load "${gw_args[@]}" --clients "$bigroom_members" --rooms 1 --senders-per-room 1 \
      --rate 50 --reactions-per-room 50 --connect-concurrency 128 "${common[@]}" || true
    printf '%s_gateway_cpu_s_per_million_deliveries\t%s\n' "$name" "$(cpu_per_million "$dir/$name.json" "$gw_prefix")" \
      >>"$dir/results.tsv"
  fi

  if [[ " $scenarios " == *" typing "* ]]; then
    # The big room at 50 msg/s, without and then with 20 members typing (a typing frame
    # every 3 s each): what the typists cost the messages' latency and the gateways' CPU.
    # Alternated three times: one pair's p99 moves more between runs than typing moves it.
    local typists name round
    for round in 1 2 3; do
      for typists in 0 20; do
        name="bigroom-typists-$typists-r$round"
        lg "$dir" "$name" load "${gw_args[@]}" --clients "$bigroom_members" --rooms 1 --senders-per-room 1 \
          --rate 50 --typists-per-room "$typists" --connect-concurrency 128 "${common[@]}" || true
        printf '%s_gateway_cpu_s_per_million_deliveries\t%s\n' "$name" "$(cpu_per_million "$dir/$name.json" "$gw_prefix")" \
          >>"$dir/results.tsv"
      done
    done
  fi

  if [[ " $scenarios " == *" idle "* ]]; then
    local gw_watch=()
    for w in $watch; do
      if [[ $w == "$gw_prefix"* ]]; then gw_watch=(--watch-pid "$w"); break; fi
    done
    lg "$dir" idle idle "${first_gw_args[@]}" --connections "$idle_connections" --hold "$hold" --source-addrs 8 \
      --jwt-secret "$jwt_secret" \
      --connect-concurrency 256 "${gw_watch[@]}" || true
  fi
}

# A table of every run of a target, from the JSON reports.
summarise() {
  local dir=$1
  {
    echo "| run | acked msg/s | deliveries/s | p50 ms | p99 ms | p99.9 ms | max ms | clean | loadgen cpu % | server cpu-s/M deliveries |"
    echo "|---|---|---|---|---|---|---|---|---|---|"
    for f in "$dir"/*.json; do
      [ -e "$f" ] || continue
      jq -r 'select(.kind == "load") | "| \(.name) | \(.throughput.acks_per_second) | \(.throughput.deliveries_per_second)"
        + " | \(.latency.delivery.p50_ms) | \(.latency.delivery.p99_ms) | \(.latency.delivery.p999_ms)"
        + " | \(.latency.delivery.max_ms) | \(.correctness.clean) | \(.processes[0].cpu_percent)"
        + " | \([.processes[1:][] | "\(.name) \(.cpu_seconds_per_million_deliveries)"] | join(", ")) |"' "$f"
    done
    for f in "$dir"/*.json; do
      [ -e "$f" ] || continue
      jq -r 'select(.kind == "idle") | "\nidle: \(.open_at_end) of \(.requested) connections open; "
        + ([.processes[1:][] | "\(.name) \((.rss_per_connection_bytes // 0) / 1024 * 100 | round / 100) KiB/connection"] | join(", "))' "$f"
    done
    if [ -s "$dir/results.tsv" ]; then echo; sed 's/\t/: /' "$dir/results.tsv"; fi
  } >"$dir/summary.md"
  cat "$dir/summary.md" >&2
}

cluster_up=0 aio_pid=""
cleanup() {
  if [ "$cluster_up" = 1 ]; then
    cp -r "$CLUSTER_DIR/logs" "$out/cluster-logs" 2>/dev/null || true
    scripts/cluster.sh down || true
  fi
  stop_child "${sink_pid:-}"
  stop_child "$aio_pid"
  if [ -n "${aio_dir:-}" ]; then rm -rf "$aio_dir"; fi
}
trap cleanup EXIT

# Starts the cluster ($gateways gateways, $services message services), with any further
# VAR=value settings given, and sets $watch to the processes the load generator reports on.
start_cluster() {
  export CLUSTER_DIR="$out/.cluster-state"
  log "cluster: $gateways gateways, $services message services on port $port${*:+ ($*)}"
  # The load generator's senders go past the per-socket rate meant for people; the idle
  # scenario's users are minted as external tokens.
  env GATEWAY_SC_GATEWAY__SEND_RATE_PER_SEC=1000000 GATEWAY_SC_GATEWAY__SEND_BURST=1000000 \
    GATEWAY_SC_GATEWAY__MAX_CONNECTIONS=1000000 GATEWAY_SC_AUTH__JWT_SECRET="$jwt_secret" "$@" \
    CLUSTER_BIN_DIR="$target_dir/release" scripts/cluster.sh up --gateways "$gateways" --services "$services" --port "$port"
  cluster_up=1
  watch=""
  for f in "$CLUSTER_DIR"/pids/*.pid; do
    name=$(basename "$f" .pid)
    # Postgres serves each connection from a child process: watch the tree ('+').
    case $name in
      haproxy) ;;
      postgres) watch="$watch $name=$(cat "$f")+" ;;
      *) watch="$watch $name=$(cat "$f")" ;;
    esac
  done
}

# Runs the chosen scenarios ($scenarios) against the cluster, as target $1.
cluster_scenarios() {
  local urls="" ops="" i
  for i in $(seq 1 "$gateways"); do
    urls="$urls ws://127.0.0.1:$((port + i))" ops="$ops 127.0.0.1:$((port + 100 + i))"
  done
  for i in $(seq 1 "$services"); do ops="$ops 127.0.0.1:$((port + 300 + i))"; done
  run_scenarios "$1" "${urls# }" "$watch" gateway- "${ops# }"
}

# Stops the cluster, keeping its logs with target $1's results.
stop_cluster() {
  cp -r "$CLUSTER_DIR/logs" "$out/$1/logs" 2>/dev/null || true
  scripts/cluster.sh down
  cluster_up=0
  rm -rf "$CLUSTER_DIR"
}

if [ -z "$only" ] || [ "$only" = cluster ]; then
  every=$scenarios
  scenarios=${every/tracing/}
  if [ -n "${scenarios// /}" ]; then
    start_cluster
    cluster_scenarios cluster
    summarise "$out/cluster"
    stop_cluster cluster
  fi
  if [[ " $every " == *" tracing "* ]]; then
    # Light and the saturation steps on a fresh cluster per setting. The sink runs for
    # all three, so that its share of the machine does not favour "off".
    sink_port=$((port + 450)) sink_pid=""
    "$loadgen" otlp-sink --listen "127.0.0.1:$sink_port" >"$out/otlp-sink.json" 2>"$out/otlp-sink.log" &
    sink_pid=$!
    scenarios="light saturation"
    for tracing in off 0.01 1.0; do
      label="tracing-$tracing"
      settings=()
      if [ "$tracing" != off ]; then
        settings=(SC_TELEMETRY__OTLP_ENDPOINT="http://127.0.0.1:$sink_port" SC_TELEMETRY__SAMPLING_RATIO="$tracing")
      fi
      start_cluster "${settings[@]}"
      watch="$watch otlp-sink=$sink_pid"
      cluster_scenarios "$label"
      summarise "$out/$label"
      stop_cluster "$label"
    done
    stop_child "$sink_pid"
    log "spans the sink counted over the three: $(cat "$out/otlp-sink.json")"
    # Side by side: each setting's highest clean step, with its rate, and light's latency.
    {
      echo "| tracing | highest clean saturation step | its acked msg/s | its p50 / p99 ms | light p50 / p99 ms |"
      echo "|---|---|---|---|---|"
      for tracing in off 0.01 1.0; do
        dir="$out/tracing-$tracing"
        step=$(sed -n 's/^saturation_highest_clean_step\t//p' "$dir/results.tsv")
        at=$( [ -f "$dir/$step.json" ] && jq -r '"\(.throughput.acks_per_second) | \(.latency.delivery.p50_ms) / \(.latency.delivery.p99_ms)"' "$dir/$step.json" || echo "- | -")
        light=$( [ -f "$dir/light.json" ] && jq -r '"\(.latency.delivery.p50_ms) / \(.latency.delivery.p99_ms)"' "$dir/light.json" || echo -)
        echo "| $tracing | ${step:-none} | $at | $light |"
      done
    } >"$out/tracing.md"
    cat "$out/tracing.md" >&2
  fi
  scenarios=$every
fi

if [ -z "$only" ] || [ "$only" = all-in-one ]; then
  aio_dir=$(mktemp -d /tmp/bench-aio.XXXXXX)
  aio_port=$((port + 500))
  log "all-in-one on port $aio_port"
  SC_LISTEN="127.0.0.1:$aio_port" SC_OPS_LISTEN="127.0.0.1:$((aio_port + 1))" SC_DATA_DIR="$aio_dir" \
    SC_STATIC_DIR="$root/static" SC_LOG__LEVEL=warn SC_SEND_RATE_PER_SEC=1000000 SC_SEND_BURST=1000000 \
    SC_JWT_SECRET="$jwt_secret" \
    "$target_dir/release/super-channels" >"$aio_dir/stdout" 2>"$out/all-in-one.log" &
  aio_pid=$!
  wait_for 100 0.1 grep -q "running on" "$aio_dir/stdout" 2>/dev/null \
    || grep -q "running on" "$aio_dir/stdout" || die "the all-in-one did not start; see $out/all-in-one.log"
  run_scenarios all-in-one "ws://127.0.0.1:$aio_port" "all-in-one=$aio_pid" all-in-one "127.0.0.1:$((aio_port + 1))"
  summarise "$out/all-in-one"
fi

log "done: $out"
