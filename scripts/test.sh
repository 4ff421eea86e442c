#!/usr/bin/env bash
# Runs every test of the workspace against real PostgreSQL and real Redis.
#
# Finds the services in this order:
#   1. DATABASE_URL / REDIS_URL when set;
#   2. the local defaults, postgres://postgres@127.0.0.1:5432/postgres and redis://127.0.0.1:6379;
#   3. throwaway instances started here from the installed binaries (initdb/pg_ctl,
#      redis-server), stopped again when the tests end.
# When none of those works it says exactly what to install.
#
# Tests isolate themselves: each creates its own database and uses its own Redis key
# prefix, so runs can overlap and repeat. Extra arguments go to the test runner.
#
# After the cargo tests, scripts/browser-test.sh runs the browser tests in headless Chromium
# against a real cluster (it installs Chromium and the npm packages where missing);
# SC_SKIP_BROWSER_TESTS=1 skips them. Then scripts/schemathesis.sh fuzzes the HTTP API from its
# OpenAPI document against the all-in-one server; SC_SKIP_SCHEMATHESIS=1 skips it.
set -euo pipefail
cd "$(dirname "$0")/.."

# Read and unset: every SC_* variable reaches the services the tests start, and a key they
# do not know stops them.
skip_browser_tests=${SC_SKIP_BROWSER_TESTS:-0}
skip_schemathesis=${SC_SKIP_SCHEMATHESIS:-0}
unset SC_SKIP_BROWSER_TESTS SC_SKIP_SCHEMATHESIS

log() { printf '[test.sh] %s\n' "$*" >&2; }

tmp_root=""
cleanup() {
  if [ -n "${pg_data:-}" ] && [ -d "$pg_data" ]; then
    as_pg_user "$pg_ctl" -D "$pg_data" -m immediate stop >/dev/null 2>&1 || true
  fi
  if [ -n "${redis_pid:-}" ]; then kill "$redis_pid" 2>/dev/null || true; fi
  if [ -n "$tmp_root" ]; then rm -rf "$tmp_root"; fi
}
trap cleanup EXIT

# shellcheck source=lib.sh
. scripts/lib.sh

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null \
    || echo $((20000 + RANDOM % 20000))
}


ensure_tmp() {
  if [ -z "$tmp_root" ]; then
    tmp_root=$(mktemp -d /tmp/super-channels-test.XXXXXX)
    chmod 755 "$tmp_root"
  fi
}

if [ -z "${DATABASE_URL:-}" ]; then
  if port_open 127.0.0.1 5432; then
    export DATABASE_URL="postgres://postgres@127.0.0.1:5432/postgres"
  else
    initdb=$(find_pg_bin initdb || true)
    pg_ctl=$(find_pg_bin pg_ctl || true)
    if [ -z "$initdb" ] || [ -z "$pg_ctl" ]; then
      log "PostgreSQL is needed: set DATABASE_URL, run one on 127.0.0.1:5432, or install the"
      log "server binaries (Debian: apt-get install postgresql) so this script can start one."
      exit 1
    fi
    ensure_tmp
    pg_data="$tmp_root/pg"
    mkdir -p "$pg_data"
    if [ "$(id -u)" = 0 ]; then chown postgres "$pg_data"; fi
    pg_port=$(free_port)
    log "starting a throwaway PostgreSQL on port $pg_port"
    as_pg_user "$initdb" -D "$pg_data" -U postgres --auth=trust >/dev/null
    as_pg_user "$pg_ctl" -D "$pg_data" -l "$pg_data/log" -w \
      -o "-p $pg_port -k $pg_data -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off" start >/dev/null
    export DATABASE_URL="postgres://postgres@127.0.0.1:$pg_port/postgres"
  fi
fi

if [ -z "${REDIS_URL:-}" ]; then
  if port_open 127.0.0.1 6379; then
    export REDIS_URL="redis://127.0.0.1:6379"
  else
    if ! command -v redis-server >/dev/null 2>&1; then
      log "Redis is needed: set REDIS_URL, run one on 127.0.0.1:6379, or install it"
      log "(Debian: apt-get install redis-server) so this script can start one."
      exit 1
    fi
    ensure_tmp
    redis_port=$(free_port)
    log "starting a throwaway Redis on port $redis_port"
    redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
      --dir "$tmp_root" --logfile "$tmp_root/redis.log" &
    redis_pid=$!
    for _ in $(seq 100); do port_open 127.0.0.1 "$redis_port" && break; sleep 0.1; done
    export REDIS_URL="redis://127.0.0.1:$redis_port"
  fi
fi

# The cluster tests run scripts/cluster.sh, whose balancer is haproxy. Install it here, once,
# rather than from tests running in parallel.
ensure_haproxy || exit 1

log "DATABASE_URL=$DATABASE_URL"
log "REDIS_URL=$REDIS_URL"

# Process-level tests start the real binaries: build them first.
cargo build --workspace --bins --quiet

if cargo nextest --version >/dev/null 2>&1; then
  # nextest does not run doctests; run them first so nextest's summary closes the output.
  cargo test --workspace --doc --quiet
  cargo nextest run --workspace --no-fail-fast "$@"
else
  cargo test --workspace --no-fail-fast "$@"
fi

if [ "$skip_browser_tests" = 1 ]; then
  log "SC_SKIP_BROWSER_TESTS=1: browser tests skipped"
else
  bash scripts/browser-test.sh
fi

if [ "$skip_schemathesis" = 1 ]; then
  log "SC_SKIP_SCHEMATHESIS=1: schemathesis skipped"
else
  bash scripts/schemathesis.sh
fi
