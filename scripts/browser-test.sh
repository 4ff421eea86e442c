#!/usr/bin/env bash
# Runs the browser tests (browser-tests/tests/*.test.mjs, node's test runner) in headless
# Chromium driven by Playwright, against real servers: scripts/cluster.sh with haproxy,
# two gateways and a message service, on PostgreSQL and Redis.
#
#   scripts/browser-test.sh [node --test arguments]
#   e.g. scripts/browser-test.sh browser-tests/tests/00-smoke.test.mjs
#        scripts/browser-test.sh --test-name-pattern=smoke
#
# Installs what is missing: Debian's chromium (as root, or through sudo -n) and the npm
# packages of browser-tests/ (npm ci); it needs node 20.10+ with npm. Each run gets its
# own database (sc_browser_*, created from DATABASE_URL, default
# postgres://postgres@127.0.0.1:5432/postgres) and its own Redis key prefix (on REDIS_URL,
# default redis://127.0.0.1:6379), and removes both, and the cluster, at exit.
# A real SMTP server (scripts/smtp-sink.sh, aiosmtpd, installed into a venv when missing)
# takes the gateways' mail; the tests read it from the Maildir named by MAIL_DIR.
# Test files run one at a time in name order, those whose names start with 9 last;
# screenshots go to test-artifacts/browser/, emptied first. CHROMIUM names another browser
# binary; BROWSER_TEST_TIMEOUT bounds the test run in seconds (default 900).
# scripts/test.sh runs this after the cargo tests unless SC_SKIP_BROWSER_TESTS=1.
# Other tools reuse the same set-up (scripts/client-bench.sh): BROWSER_TEST_RUN names a
# node script to run, with this script's arguments, instead of the tests (test-artifacts/
# browser/ is then left alone), and BROWSER_TEST_BIN_DIR a directory of gateway and
# message-service binaries to use, never built here.
set -euo pipefail
caller_dir=$PWD
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

# shellcheck disable=SC2034 # read by log, in lib.sh
LOG_PREFIX=browser-test
# shellcheck source=lib.sh
. scripts/lib.sh

# An SC_* variable reaches every service through cluster.sh, and a key a service does not
# know stops it.
unset SC_SKIP_BROWSER_TESTS

work="" db_name="" db_admin_url="" redis_prefix="" cluster_up=0 smtp_pid=""
cleanup() {
  local status=$? f state pid
  set +e
  if [ "$cluster_up" = 1 ]; then
    if [ "$status" != 0 ]; then
      for f in "$work"/cluster/logs/*.log; do
        [ -e "$f" ] || continue
        log "--- last lines of $f"
        tail -n 40 "$f" >&2
      done
    fi
    # A gateway a test SIGKILLed may linger as a zombie when nothing reaps orphans (some
    # containers' PID 1): cluster.sh would wait out its grace period on it.
    for f in "$work"/cluster/pids/*.pid; do
      [ -e "$f" ] || continue
      state=$(sed 's/.*) //' "/proc/$(cat "$f")/stat" 2>/dev/null | cut -c1)
      [ -n "$state" ] && [ "$state" != Z ] || rm -f "$f"
    done
    CLUSTER_DIR="$work/cluster" bash scripts/cluster.sh down >"$work/down.log" 2>&1 \
      || { cat "$work/down.log" >&2; log "cluster.sh down failed"; }
  fi
  # After the gateways, which may still be sending.
  if [ -n "$smtp_pid" ]; then
    [ "$status" = 0 ] || { log "--- last lines of the SMTP sink's log"; tail -n 20 "$work/smtp-sink.log" >&2; }
    stop_child "$smtp_pid"
  fi
  # Chromium runs in its own process group: after a timeout or a crashed test, end what
  # is left of this run's browsers, known by their profile directory under $work.
  if [ -n "$work" ]; then
    for pid in $(pgrep -f -- "--user-data-dir=$work/" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
  fi
  if [ -n "$db_name" ]; then
    pg_drop_db "$db_admin_url" "$db_name" || log "could not drop database $db_name"
  fi
  if [ -n "$redis_prefix" ]; then
    redis-cli -u "$REDIS_URL" --scan --pattern "$redis_prefix:*" 2>/dev/null \
      | xargs -r -n 500 redis-cli -u "$REDIS_URL" DEL >/dev/null 2>&1 \
      || log "could not delete the Redis keys $redis_prefix:*"
  fi
  [ -z "$work" ] || rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- Chromium: Debian's package, never Playwright's own downloads.
chromium="${CHROMIUM:-/usr/bin/chromium}"
# Installs Debian packages, as root or through sudo -n; fails where that cannot be done.
apt_install() {
  local as_root
  if [ "$(id -u)" = 0 ]; then as_root=()
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then as_root=(sudo -n)
  else return 1; fi
  command -v apt-get >/dev/null 2>&1 || return 1
  log "installing $* (Debian packages)"
  local apt=("${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get)
  "${apt[@]}" install -y -qq --no-install-recommends "$@" >/dev/null 2>&1 \
    || { "${apt[@]}" update -qq && "${apt[@]}" install -y -qq --no-install-recommends "$@" >/dev/null; }
}
install_chromium() { apt_install chromium; }
if [ ! -x "$chromium" ]; then
  if [ -n "${CHROMIUM:-}" ] && [ -x /usr/bin/chromium ]; then
    die "CHROMIUM=$CHROMIUM is not an executable; unset it to use /usr/bin/chromium"
  fi
  install_chromium || true
  [ -x "$chromium" ] || die "Chromium is needed at $chromium and could not be installed here: as root," \
    "run 'apt-get install --no-install-recommends chromium' (Debian), or set CHROMIUM to a Chromium binary"
fi
chromium_version=$("$chromium" --version 2>&1) || die "$chromium does not run: $chromium_version"
log "$chromium_version"
# Reactions and the emoji picker are drawn with a colour emoji font; without one the
# screenshots show empty boxes (the tests read text, so they pass either way).
if ! fc-list 2>/dev/null | grep -qi 'color emoji'; then
  apt_install fonts-noto-color-emoji || log "no colour emoji font could be installed; emoji show as boxes"
fi

# --- Node and the npm packages (playwright-core, which downloads no browser).
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 \
  || die "node 20.10+ and npm are needed (Debian: apt-get install nodejs npm, or Node's own packages)"
node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 10) ? 0 : 1)' \
  || die "node $(node --version) is too old: node 20.10+ is needed (playwright-core, node --test-concurrency)"
if [ ! -f browser-tests/node_modules/.package-lock.json ] \
  || [ browser-tests/package-lock.json -nt browser-tests/node_modules/.package-lock.json ] \
  || [ browser-tests/package.json -nt browser-tests/node_modules/.package-lock.json ]; then
  log "installing the npm packages of browser-tests/"
  (cd browser-tests && npm ci --no-audit --no-fund >&2)
fi

# --- The binaries: scripts/test.sh has built the debug ones.
bin="${BROWSER_TEST_BIN_DIR:-${CARGO_TARGET_DIR:-$root/target}/debug}"
if [ ! -x "$bin/gateway" ] || [ ! -x "$bin/message-service" ]; then
  [ -z "${BROWSER_TEST_BIN_DIR:-}" ] || die "no gateway and message-service binaries in BROWSER_TEST_BIN_DIR=$bin"
  log "building the gateway and message-service binaries"
  cargo build --bins -p gateway -p message-service --quiet
fi

# --- A database and a Redis key prefix of this run's own.
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
command -v psql >/dev/null 2>&1 || die "psql is needed (Debian: apt-get install postgresql-client)"
command -v redis-cli >/dev/null 2>&1 || die "redis-cli is needed (Debian: apt-get install redis-tools)"
psql -X -q -d "$DATABASE_URL" -c 'SELECT 1' >/dev/null 2>&1 \
  || die "PostgreSQL does not answer at DATABASE_URL=$DATABASE_URL"
[ "$(redis-cli -u "$REDIS_URL" ping 2>/dev/null)" = PONG ] || die "Redis does not answer at REDIS_URL=$REDIS_URL"

run_id="$$_$(printf '%04x%04x' "$RANDOM" "$RANDOM")"
work=$(mktemp -d /tmp/sc-browser-test.XXXXXX)
chmod 755 "$work"
db_admin_url=$DATABASE_URL
pg_create_db "$db_admin_url" "sc_browser_$run_id"
db_name="sc_browser_$run_id"
# The same server and parameters, another database.
db_url=$(pg_url_with_db "$db_admin_url" "$db_name")
redis_prefix="sc-browser-$run_id"

# --- The cluster, on a base port P whose ports (cluster.sh: balancer P, gateways P+1…,
# their ops P+101…, the message service P+201, its ops P+301) are all free. Below Linux's
# ephemeral range, so no outgoing connection holds one of them.
ports_free() {
  local p
  for p in "$1" $(($1 + 1)) $(($1 + 2)) $(($1 + 101)) $(($1 + 102)) $(($1 + 201)) $(($1 + 301)); do
    ! port_open 127.0.0.1 "$p" || return 1
  done
}
port=""
for _ in $(seq 50); do
  candidate=$((12000 + RANDOM % 18000))
  if ports_free "$candidate"; then port=$candidate; break; fi
done
[ -n "$port" ] || die "found no free base port"

# --- The SMTP sink the gateways send their mail to (password resets), on a free port picked
# the same way, outside the cluster's range; up before the gateways, which connect to it
# when they send. Installed first, in the foreground, so that a failed install says why.
smtp_port=""
for _ in $(seq 50); do
  candidate=$((12000 + RANDOM % 18000))
  if { [ "$candidate" -lt "$port" ] || [ "$candidate" -gt $((port + 401)) ]; } \
    && ! port_open 127.0.0.1 "$candidate"; then smtp_port=$candidate; break; fi
done
[ -n "$smtp_port" ] || die "found no free port for the SMTP sink"
export MAIL_DIR="$work/mail"
bash scripts/smtp-sink.sh --install
bash scripts/smtp-sink.sh "$smtp_port" "$MAIL_DIR" >"$work/smtp-sink.log" 2>&1 &
smtp_pid=$!
wait_for --while-alive "$smtp_pid" 150 0.1 port_open 127.0.0.1 "$smtp_port" \
  || { cat "$work/smtp-sink.log" >&2; die "the SMTP sink did not answer on port $smtp_port"; }

export CLUSTER_DIR="$work/cluster"
# The administrator's username: the admin test signs it up (each run has a fresh database).
export ADMIN_USERNAME=boss
cluster_up=1
DATABASE_URL="$db_url" CLUSTER_BIN_DIR="$bin" SC_REDIS__KEY_PREFIX="$redis_prefix" \
  GATEWAY_SC_GATEWAY__SEND_RATE_PER_SEC=200 GATEWAY_SC_GATEWAY__SEND_BURST=400 \
  GATEWAY_SC_AUTH__ADMINS="$ADMIN_USERNAME" \
  GATEWAY_SC_MAIL__TRANSPORT=smtp GATEWAY_SC_MAIL__SMTP_URL="smtp://127.0.0.1:$smtp_port" \
  GATEWAY_SC_MAIL__LINK_BASE="http://127.0.0.1:$port" \
  bash scripts/cluster.sh up --gateways 2 --services 1 --port "$port"

# --- Another tool's script instead of the tests, on the same cluster and browser.
if [ -n "${BROWSER_TEST_RUN:-}" ]; then
  mkdir -p "$work/tmp"
  log "cluster at http://127.0.0.1:$port; running $BROWSER_TEST_RUN"
  status=0
  (cd browser-tests && BASE_URL="http://127.0.0.1:$port" CHROMIUM="$chromium" TMPDIR="$work/tmp" \
    timeout --kill-after=15 "${BROWSER_TEST_TIMEOUT:-900}" node "$BROWSER_TEST_RUN" "$@") || status=$?
  [ "$status" != 124 ] || log "$BROWSER_TEST_RUN timed out after ${BROWSER_TEST_TIMEOUT:-900}s"
  exit "$status"
fi

# --- The tests, one file at a time: those starting with 9 (which may kill a gateway) last.
test_files() {
  local LC_ALL=C f
  shopt -s nullglob
  for f in "$root"/browser-tests/tests/[!9]*.test.mjs "$root"/browser-tests/tests/9*.test.mjs; do
    echo "$f"
  done
}
files=() options=()
for arg in "$@"; do
  case $arg in
    -*) options+=("$arg") ;;
    /*) if [ -f "$arg" ]; then files+=("$arg"); else options+=("$arg"); fi ;;
    *)
      if [ -f "$caller_dir/$arg" ]; then files+=("$caller_dir/$arg")
      elif [ -f "$root/$arg" ]; then files+=("$root/$arg")
      elif [ -f "$root/browser-tests/tests/$arg" ]; then files+=("$root/browser-tests/tests/$arg")
      else options+=("$arg"); fi ;;
  esac
done
if [ ${#files[@]} = 0 ]; then
  mapfile -t files < <(test_files)
  [ ${#files[@]} -gt 0 ] || die "no test files in browser-tests/tests/"
fi

artifacts="$root/test-artifacts/browser"
rm -rf "$artifacts"
mkdir -p "$artifacts" "$work/tmp"
log "cluster at http://127.0.0.1:$port; running ${#files[@]} test file(s)"
status=0
(cd browser-tests && BASE_URL="http://127.0.0.1:$port" ARTIFACTS_DIR="$artifacts" CHROMIUM="$chromium" TMPDIR="$work/tmp" \
  timeout --kill-after=15 "${BROWSER_TEST_TIMEOUT:-900}" \
  node --test --test-concurrency=1 --test-reporter=spec "${options[@]}" "${files[@]}") || status=$?
[ "$status" != 124 ] || log "the browser tests timed out after ${BROWSER_TEST_TIMEOUT:-900}s"
exit "$status"
