# shellcheck shell=bash
# Shell helpers shared by the scripts in scripts/. Source it; it defines functions and sets
# nothing. Each function stops at its first failure and returns it, whether or not the caller
# runs under `set -e`; LOG_PREFIX and optional arguments may be unset under `set -u`.

# Says $* on stderr, after "[$LOG_PREFIX] " when the script has set LOG_PREFIX (its name), so
# that each script's lines can be told apart (and grepped) in a combined log.
log() { printf '%s%s\n' "${LOG_PREFIX:+[$LOG_PREFIX] }" "$*" >&2; }

# Says $* as log does and ends the script (or the subshell) with status 1.
die() { log "$*"; exit 1; }

# Whether something listens on host $1, port $2.
port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# A TCP port free on 127.0.0.1 now, the kernel's pick (python3 binds port 0).
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# free_port, or a random port in 20000-39999 where python3 cannot run (it may then be taken):
# for scripts that must not depend on python3.
free_port_or_random() { free_port 2>/dev/null || echo $((20000 + RANDOM % 20000)); }

# Whether GET URL $1 answers with a 2xx status: a server is up and serving.
url_ok() { curl -fsS -o /dev/null "$1" 2>/dev/null; }

# Runs the command after $1 and $2 up to $1 times, $2 seconds apart, until it succeeds: a
# bounded wait for a port, a URL or a file. With `--while-alive PID` first it gives up as soon
# as process PID has exited (a server that died will never answer). Fails when it gave up.
wait_for() {
  local _wf_pid="" _wf_tries _wf_pause _wf_i
  if [ "${1:-}" = --while-alive ]; then _wf_pid=$2; shift 2; fi
  _wf_tries=$1 _wf_pause=$2; shift 2
  for ((_wf_i = 0; _wf_i < _wf_tries; _wf_i++)); do
    if [ -n "$_wf_pid" ] && ! kill -0 "$_wf_pid" 2>/dev/null; then return 1; fi
    if "$@"; then return 0; fi
    sleep "$_wf_pause"
  done
  return 1
}

# Ends the background process $1 (SIGTERM) and waits for it to exit, so that nothing it
# writes outlives the cleanup; does nothing when $1 is empty or the process is gone.
stop_child() {
  [ -n "${1:-}" ] || return 0
  kill -TERM "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

# The path of a PostgreSQL server binary (initdb, pg_ctl), on PATH or in Debian's versioned
# directory.
find_pg_bin() {
  command -v "$1" 2>/dev/null && return 0
  ls /usr/lib/postgresql/*/bin/"$1" 2>/dev/null | sort -V | tail -n 1
}

# Whether initdb and pg_ctl are installed, so that start_throwaway_pg can start a server.
have_pg_server() { [ -n "$(find_pg_bin initdb)" ] && [ -n "$(find_pg_bin pg_ctl)" ]; }

# initdb and the server refuse to run as root; run them as the postgres user then.
as_pg_user() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# Starts a throwaway PostgreSQL server, waiting until it accepts connections: data directory
# $1 (created, and initialised unless it already is), port $2, log file $3, further
# arguments added to its options (-c name=value). Trust auth for user postgres, on 127.0.0.1
# only, its socket in the data directory: nothing of the machine's own server is touched.
start_throwaway_pg() {
  local data=$1 port=$2 logfile=$3; shift 3
  mkdir -p "$data" || return
  if [ "$(id -u)" = 0 ]; then chown postgres "$data" || return; fi
  if [ ! -f "$data/PG_VERSION" ]; then
    as_pg_user "$(find_pg_bin initdb)" -D "$data" -U postgres --auth=trust >/dev/null || return
  fi
  as_pg_user "$(find_pg_bin pg_ctl)" -D "$data" -l "$logfile" -w \
    -o "-p $port -k $data -c listen_addresses=127.0.0.1 $*" start >/dev/null
}

# Stops the server start_throwaway_pg started on data directory $1, in pg_ctl's shutdown mode
# $2 (fast, immediate); quiet.
stop_throwaway_pg() { as_pg_user "$(find_pg_bin pg_ctl)" -D "$1" -m "$2" stop >/dev/null 2>&1; }

# Starts a throwaway redis-server in the background, its pid then in $!: port $1 on 127.0.0.1
# only, no persistence, working directory $2, further arguments to redis-server. With
# --own-session first it runs in a session of its own (setsid), out of reach of the
# terminal's signals, for a server that outlives the script.
start_throwaway_redis() {
  local launcher=()
  if [ "${1:-}" = --own-session ]; then launcher=(setsid); shift; fi
  local port=$1 dir=$2; shift 2
  "${launcher[@]}" redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$dir" "$@" &
}

# The PostgreSQL URL $1 with its database replaced by $2, its parameters (?…) kept: another
# database on the same server, reached the same way.
pg_url_with_db() {
  local base=${1%%\?*}
  local query=${1#"$base"} rest=${base#*://}
  case $rest in
    */*) printf '%s\n' "${base%/*}/$2$query" ;;
    *) printf '%s\n' "$base/$2$query" ;;
  esac
}

# Creates database $2 on the server at URL $1: a throwaway database of a run's own, so that
# runs can overlap and repeat. Errors go to stderr.
pg_create_db() { psql -X -q -v ON_ERROR_STOP=1 -d "$1" -c "CREATE DATABASE $2" >/dev/null; }

# Drops database $2 of the server at URL $1 where it exists, ending its connections first
# (FORCE, PostgreSQL 13+) unless --no-force comes first; quiet, for cleanup traps.
pg_drop_db() {
  local force=" WITH (FORCE)"
  if [ "${1:-}" = --no-force ]; then force=""; shift; fi
  psql -X -q -d "$1" -c "DROP DATABASE IF EXISTS $2$force" >/dev/null 2>&1
}

# Installs haproxy (the local balancer) from Debian's packages where missing and possible.
# Fails, saying what to install, where it cannot.
ensure_haproxy() {
  command -v haproxy >/dev/null 2>&1 && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    printf 'installing haproxy (Debian package)\n' >&2
    # Under a lock: clusters started in parallel (tests run outside scripts/test.sh) would
    # otherwise race for dpkg's lock, and the loser would fail at once.
    ( flock 9
      command -v haproxy >/dev/null 2>&1 && exit 0
      apt-get install -y -qq haproxy >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq haproxy >/dev/null; }
    ) 9>/tmp/super-channels-apt.lock
  fi
  command -v haproxy >/dev/null 2>&1 || { printf 'haproxy is needed as the balancer: apt-get install haproxy\n' >&2; return 1; }
}
