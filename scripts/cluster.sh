#!/usr/bin/env bash
# The scaled topology as local processes on one machine: M message services, N gateways,
# and haproxy in front as the websocket-aware balancer; PostgreSQL and Redis are started
# here too unless DATABASE_URL / REDIS_URL name existing ones.
#
#   scripts/cluster.sh up [--gateways N] [--services M] [--port P] [--redis-cluster]
#   scripts/cluster.sh status
#   scripts/cluster.sh logs [NAME] [-f]
#   scripts/cluster.sh down
#
# N, M and P default to 2, 2 and 8080.
# Ports, from the balancer's port P: gateways P+1…, their ops P+101…; message services
# gRPC P+201…, their ops P+301…; Postgres P+400 and Redis P+401 when started here.
# With --redis-cluster the bus is a Redis Cluster started here instead (REDIS_URL must then
# be unset): three masters and three replicas on P+410…P+415 (and, for the cluster bus
# between them, P+420…P+425), passed to the services as SC_REDIS__CLUSTER_NODES.
# State (pids, logs, generated config, the cluster nodes' directories) lives in CLUSTER_DIR
# (default .cluster/).
# Binaries come from CLUSTER_BIN_DIR (default <target>/release; built when missing).
# Every other SC_* variable in the environment is passed to the services; GATEWAY_SC_*
# variables go to the gateways only and SERVICE_SC_* ones to the message services only,
# without the prefix (a key one kind does not know, such as SC_GATEWAY__SEND_RATE_PER_SEC,
# would stop the other); GATEWAY_<i>_SC_* and SERVICE_<i>_SC_* ones go to gateway i or
# message service i only. Such a variable wins over what the script sets itself (the
# message services' endpoints, the Redis URL): the tests point one process at a relay.
# Each process runs one worker thread (SC_RUNTIME__WORKER_THREADS=1) unless the environment
# says otherwise: they all share this machine's cores.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
state="${CLUSTER_DIR:-$root/.cluster}"
pids="$state/pids"
logs="$state/logs"

# shellcheck disable=SC2034 # read by log, in lib.sh
LOG_PREFIX=cluster
# shellcheck source=lib.sh
. "$root/scripts/lib.sh"
alive() { [ -f "$pids/$1.pid" ] && kill -0 "$(cat "$pids/$1.pid")" 2>/dev/null; }


# Waits until the command succeeds, up to $2 seconds, while the recorded process $1 lives.
wait_until() {
  local what=$1 seconds=$2; shift 2
  local deadline=$((SECONDS + seconds))
  until "$@"; do
    if [ -f "$pids/$what.pid" ] && ! alive "$what"; then
      tail -n 20 "$logs/$what.log" >&2 || true
      die "$what exited; its log is $logs/$what.log"
    fi
    [ "$SECONDS" -lt "$deadline" ] || die "$what did not come up within ${seconds}s; see $logs/"
    sleep 0.1
  done
}

# Exports the $1SC_* variables of the environment as SC_* ones (in a subshell).
export_prefixed_env() {
  local name
  for name in $(compgen -v "${1}SC_" || true); do
    export "${name#"$1"}=${!name}"
  done
}

# Starts a process in its own session, with its log and pid file.
spawn() {
  local name=$1; shift
  setsid "$@" >"$logs/$name.log" 2>&1 < /dev/null &
  echo $! >"$pids/$name.pid"
}


ensure_binaries() {
  bin="${CLUSTER_BIN_DIR:-${CARGO_TARGET_DIR:-$root/target}/release}"
  if [ ! -x "$bin/gateway" ] || [ ! -x "$bin/message-service" ]; then
    [ -z "${CLUSTER_BIN_DIR:-}" ] || die "no gateway/message-service binaries in CLUSTER_BIN_DIR=$CLUSTER_BIN_DIR"
    log "building release binaries"
    (cd "$root" && cargo build --release --bins -p gateway -p message-service)
  fi
}

start_postgres() {
  local port=$1
  have_pg_server || die "PostgreSQL is needed: set DATABASE_URL or apt-get install postgresql"
  if [ "$(id -u)" = 0 ]; then chmod 755 "$state"; fi
  # The server runs as the postgres user: its log lives in its own directory.
  ln -sf "$state/pg/server.log" "$logs/postgres.log"
  start_throwaway_pg "$state/pg" "$port" "$state/pg/server.log" -c max_connections=200
  head -n 1 "$state/pg/postmaster.pid" >"$pids/postgres.pid"
  export DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
}

start_redis() {
  local port=$1
  command -v redis-server >/dev/null 2>&1 || die "Redis is needed: set REDIS_URL or apt-get install redis-server"
  start_throwaway_redis --own-session "$port" "$state" >"$logs/redis.log" 2>&1 </dev/null
  echo $! >"$pids/redis.pid"
  wait_until redis 10 port_open 127.0.0.1 "$port"
  export REDIS_URL="redis://127.0.0.1:$port"
}

# Whether the Redis Cluster node on 127.0.0.1 port $1 sees the cluster whole: every slot
# served (cluster_state:ok), and the three replicas known as such.
cluster_state_ok() {
  [[ $(redis-cli -h 127.0.0.1 -p "$1" cluster info 2>/dev/null) == *cluster_state:ok* ]] || return 1
  local replicas
  replicas=$(redis-cli -h 127.0.0.1 -p "$1" cluster nodes 2>/dev/null | grep -c slave || true)
  [ "$replicas" = 3 ]
}

# Whether three of the Redis Cluster nodes on ports $1…$1+5 are replicas in sync with their
# masters: a master can fail over (and stops at once, without waiting for a replica).
cluster_replicas_synced() {
  local port synced=0
  for port in $(seq "$1" $(($1 + 5))); do
    if [[ $(redis-cli -h 127.0.0.1 -p "$port" info replication 2>/dev/null) == *master_link_status:up* ]]; then
      synced=$((synced + 1))
    fi
  done
  [ "$synced" = 3 ]
}

# Starts a Redis Cluster of three masters and three replicas on ports $1…$1+5 (and their
# cluster bus on $1+10…), each node redis-cluster-N in a fresh directory of its own
# under the state dir, and waits until every node sees it whole and the replicas are in
# sync. Sets cluster_nodes to the nodes' URLs, comma-separated: the value of
# SC_REDIS__CLUSTER_NODES.
start_redis_cluster() {
  local base=$1 i port dir tool addresses=() urls=()
  for tool in redis-server redis-cli; do
    command -v "$tool" >/dev/null 2>&1 || die "a Redis Cluster needs $tool (Redis 7.0 or later): apt-get install redis-server"
  done
  # Another server on a node's port would answer in its place (a silent one would hang
  # create). Each node's cluster bus is given a port 10 above its own, inside the block the
  # caller chose: Redis's default, port + 10000, lands outside it, where another cluster's
  # ports or an outgoing connection's source port may already be.
  for port in $(seq "$base" $((base + 5))) $(seq $((base + 10)) $((base + 15))); do
    if port_open 127.0.0.1 "$port"; then die "port $port, needed by the Redis Cluster, is in use"; fi
  done
  for i in 1 2 3 4 5 6; do
    port=$((base + i - 1)) dir="$state/redis-cluster-$i"
    # A nodes.conf left behind would bring back an old cluster that create refuses to join.
    rm -rf "$dir"
    mkdir -p "$dir"
    spawn "redis-cluster-$i" redis-server --port "$port" --cluster-port $((port + 10)) --bind 127.0.0.1 --protected-mode no \
      --daemonize no --save "" --appendonly no --repl-diskless-sync-delay 0 --dir "$dir" \
      --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 2000
    addresses+=("127.0.0.1:$port")
    urls+=("redis://127.0.0.1:$port")
  done
  for i in 1 2 3 4 5 6; do
    wait_until "redis-cluster-$i" 10 port_open 127.0.0.1 $((base + i - 1))
  done
  # Three masters sharing the 16384 slots, each with one replica.
  timeout 60 redis-cli --cluster create "${addresses[@]}" --cluster-replicas 1 --cluster-yes \
    >"$logs/redis-cluster-create.log" 2>&1 </dev/null \
    || { tail -n 20 "$logs/redis-cluster-create.log" >&2 || true; die "redis-cli --cluster create failed; see $logs/redis-cluster-create.log"; }
  for i in 1 2 3 4 5 6; do
    wait_until "redis-cluster-$i" 30 cluster_state_ok $((base + i - 1))
  done
  wait_until redis-cluster-replicas 30 cluster_replicas_synced "$base"
  cluster_nodes=$(IFS=,; echo "${urls[*]}")
}

# Runs the command with the bus's setting in its environment: SC_REDIS__CLUSTER_NODES on a
# Redis Cluster, SC_REDIS__URL otherwise.
with_bus() {
  if [ -n "$cluster_nodes" ]; then
    SC_REDIS__CLUSTER_NODES="$cluster_nodes" "$@"
  else
    SC_REDIS__URL="${SC_REDIS__URL:-$REDIS_URL}" "$@"
  fi
}

write_haproxy_config() {
  local port=$1 gateways=$2
  # Two descriptors per proxied connection; stay inside this machine's hard limit.
  local fds maxconn
  fds=$(ulimit -Hn); [ "$fds" = unlimited ] && fds=1048576
  maxconn=$(( (fds - 1000) / 2 ))
  {
    cat <<CFG
# Generated by scripts/cluster.sh. Websockets are long-lived HTTP upgrades: haproxy
# tunnels them after the handshake ('timeout tunnel'); a gateway that fails /readyz
# (draining) gets no new connections, and a refused connection is retried elsewhere.
global
    maxconn $maxconn
    pidfile $pids/haproxy.pid
defaults
    mode http
    option redispatch 1
    retries 3
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    timeout tunnel 1h
    timeout client-fin 5s
frontend chat
    bind 127.0.0.1:$port
    default_backend gateways
backend gateways
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
CFG
    for i in $(seq 1 "$gateways"); do
      echo "    server gateway-$i 127.0.0.1:$((port + i)) check port $((port + 100 + i)) inter 500ms fall 1 rise 1"
    done
  } >"$state/haproxy.cfg"
}

cmd_up() {
  local gateways=2 services=2 port=8080 redis_cluster=0
  while [ $# -gt 0 ]; do
    case $1 in
      --gateways) gateways=$2; shift 2 ;;
      --services) services=$2; shift 2 ;;
      --port) port=$2; shift 2 ;;
      --redis-cluster) redis_cluster=1; shift ;;
      *) die "unknown option $1" ;;
    esac
  done
  if [ "$redis_cluster" = 1 ] && [ -n "${REDIS_URL:-}" ]; then
    die "--redis-cluster starts a Redis Cluster here for the bus; unset REDIS_URL (it names a single Redis)"
  fi
  if ls "$pids"/*.pid >/dev/null 2>&1; then die "a cluster is already up in $state (run: $0 down)"; fi
  mkdir -p "$pids" "$logs"
  ensure_binaries
  ensure_haproxy || die "no balancer"
  [ -n "${DATABASE_URL:-}" ] || start_postgres $((port + 400))
  cluster_nodes=""
  if [ "$redis_cluster" = 1 ]; then
    start_redis_cluster $((port + 410))
  else
    [ -n "${REDIS_URL:-}" ] || start_redis $((port + 401))
  fi
  local secret="${SC_AUTH__SECRET:-$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')}"
  # Every process here shares the machine's cores: one worker thread each, so that a
  # message's hand-offs inside a process do not wake a second thread (lower latency and
  # CPU at moderate load, docs/benchmarks.md). SC_RUNTIME__WORKER_THREADS=0 gives each its
  # default of one per core.
  export SC_RUNTIME__WORKER_THREADS="${SC_RUNTIME__WORKER_THREADS:-1}"

  local endpoints=()
  for i in $(seq 1 "$services"); do
    ( export_prefixed_env SERVICE_
      export_prefixed_env "SERVICE_${i}_"
      SC_DATABASE__URL="$DATABASE_URL" \
        SC_GRPC_LISTEN="127.0.0.1:$((port + 200 + i))" SC_OPS_LISTEN="127.0.0.1:$((port + 300 + i))" \
        with_bus spawn "message-service-$i" "$bin/message-service" )
    endpoints+=("http://127.0.0.1:$((port + 200 + i))")
  done
  local joined; joined=$(IFS=,; echo "${endpoints[*]}")
  for i in $(seq 1 "$services"); do
    SC_DATABASE__URL="$DATABASE_URL" SC_OPS_LISTEN="127.0.0.1:$((port + 300 + i))" \
      with_bus wait_until "message-service-$i" 60 "$bin/message-service" --probe-ready 2>/dev/null
  done
  for i in $(seq 1 "$gateways"); do
    ( export_prefixed_env GATEWAY_
      export_prefixed_env "GATEWAY_${i}_"
      SC_DATABASE__URL="$DATABASE_URL" SC_AUTH__SECRET="$secret" \
        SC_MESSAGE_SERVICE__ENDPOINTS="${SC_MESSAGE_SERVICE__ENDPOINTS:-$joined}" SC_LISTEN="127.0.0.1:$((port + i))" \
        SC_OPS_LISTEN="127.0.0.1:$((port + 100 + i))" SC_STATIC_DIR="$root/static" \
        with_bus spawn "gateway-$i" "$bin/gateway" )
  done
  for i in $(seq 1 "$gateways"); do
    SC_DATABASE__URL="$DATABASE_URL" SC_AUTH__SECRET="$secret" SC_OPS_LISTEN="127.0.0.1:$((port + 100 + i))" \
      with_bus wait_until "gateway-$i" 60 "$bin/gateway" --probe-ready 2>/dev/null
  done
  write_haproxy_config "$port" "$gateways"
  haproxy -c -q -f "$state/haproxy.cfg" || die "invalid haproxy config $state/haproxy.cfg"
  haproxy -D -f "$state/haproxy.cfg" >"$logs/haproxy.log" 2>&1 || { cat "$logs/haproxy.log" >&2; die "haproxy did not start"; }
  wait_until haproxy 10 port_open 127.0.0.1 "$port"
  # A readiness probe answered by another process on the same port (a port someone else
  # took) would pass while ours died on its bind: every process must still be alive.
  local file name
  for file in "$pids"/*.pid; do
    name=$(basename "$file" .pid)
    alive "$name" || { tail -n 20 "$logs/$name.log" >&2 || true; die "$name exited; its log is $logs/$name.log"; }
  done
  log "up: http://127.0.0.1:$port ($gateways gateways, $services message services${cluster_nodes:+, on a Redis Cluster})"
}

cmd_status() {
  [ -d "$pids" ] || { log "no cluster in $state"; return 0; }
  local any=0
  for file in "$pids"/*.pid; do
    [ -e "$file" ] || continue
    any=1
    local name; name=$(basename "$file" .pid)
    if alive "$name"; then printf '%-20s up    pid %s\n' "$name" "$(cat "$file")"
    else printf '%-20s DOWN  (pid %s)\n' "$name" "$(cat "$file")"; fi
  done
  [ "$any" = 1 ] || log "no processes recorded in $pids"
}

cmd_logs() {
  [ -d "$logs" ] || die "no logs in $state"
  if [ $# -ge 1 ] && [ "$1" != -f ]; then
    local name=$1; shift
    tail -n 100 "$@" "$logs/$name.log"
  else
    tail -n 20 "$@" "$logs"/*.log
  fi
}

# Stops one recorded process: SIGTERM, up to $2 seconds to exit, then SIGKILL.
stop() {
  local name=$1 grace=$2
  alive "$name" || { rm -f "$pids/$name.pid"; return 0; }
  local pid; pid=$(cat "$pids/$name.pid")
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + grace))
  while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    log "$name did not stop within ${grace}s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pids/$name.pid"
}

cmd_down() {
  [ -d "$pids" ] || { log "no cluster in $state"; return 0; }
  local name
  # The balancer first (no new connections), then gateways (they drain), then services.
  stop haproxy 5
  for f in "$pids"/gateway-*.pid; do [ -e "$f" ] && stop "$(basename "$f" .pid)" 15; done
  for f in "$pids"/message-service-*.pid; do [ -e "$f" ] && stop "$(basename "$f" .pid)" 15; done
  stop redis 5
  for f in "$pids"/redis-cluster-*.pid; do [ -e "$f" ] && stop "$(basename "$f" .pid)" 5; done
  rm -rf "$state"/redis-cluster-[1-6]
  if [ -f "$pids/postgres.pid" ]; then
    stop_throwaway_pg "$state/pg" fast || true
    stop postgres 5
    rm -rf "$state/pg"
  fi
  for f in "$pids"/*.pid; do [ -e "$f" ] && stop "$(basename "$f" .pid)" 5; done
  log "down"
}

case "${1:-}" in
  up) shift; cmd_up "$@" ;;
  down) cmd_down ;;
  status) cmd_status ;;
  logs) shift; cmd_logs "$@" ;;
  *) sed -n '2,/^set /{/^#/p}' "$0" >&2; exit 2 ;;
esac
