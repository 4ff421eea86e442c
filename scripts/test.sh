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

# shellcheck disable=SC2034 # read by log, in lib.sh
LOG_PREFIX=test.sh

tmp_root=""
cleanup() {
  if [ -n "${pg_data:-}" ] && [ -d "$pg_data" ]; then
    stop_throwaway_pg "$pg_data" immediate || true
  fi
  if [ -n "${redis_pid:-}" ]; then kill "$redis_pid" 2>/dev/null || true; fi
  if [ -n "$tmp_root" ]; then rm -rf "$tmp_root"; fi
}
trap cleanup EXIT

# shellcheck source=lib.sh
. scripts/lib.sh

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
    if ! have_pg_server; then
      log "PostgreSQL is needed: set DATABASE_URL, run one on 127.0.0.1:5432, or install the"
      die "server binaries (Debian: apt-get install postgresql) so this script can start one."
    fi
    ensure_tmp
    pg_data="$tmp_root/pg"
    pg_port=$(free_port_or_random)
    log "starting a throwaway PostgreSQL on port $pg_port"
    start_throwaway_pg "$pg_data" "$pg_port" "$pg_data/log" -c max_connections=300 -c fsync=off
    export DATABASE_URL="postgres://postgres@127.0.0.1:$pg_port/postgres"
  fi
fi

if [ -z "${REDIS_URL:-}" ]; then
  if port_open 127.0.0.1 6379; then
    export REDIS_URL="redis://127.0.0.1:6379"
  else
    if ! command -v redis-server >/dev/null 2>&1; then
      log "Redis is needed: set REDIS_URL, run one on 127.0.0.1:6379, or install it"
      die "(Debian: apt-get install redis-server) so this script can start one."
    fi
    ensure_tmp
    redis_port=$(free_port_or_random)
    log "starting a throwaway Redis on port $redis_port"
    start_throwaway_redis "$redis_port" "$tmp_root" --logfile "$tmp_root/redis.log"
    redis_pid=$!
    wait_for 100 0.1 port_open 127.0.0.1 "$redis_port" || true
    export REDIS_URL="redis://127.0.0.1:$redis_port"
  fi
fi

# The cluster tests run scripts/cluster.sh, whose balancer is haproxy. Install it here, once,
# rather than from tests running in parallel.
ensure_haproxy || exit 1
# The password-reset tests send mail to a real SMTP server (aiosmtpd, from PyPI): install it
# here, once, rather than from tests starting it in parallel.
bash scripts/smtp-sink.sh --install

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
