#!/usr/bin/env bash
# Fuzzes the HTTP API from its own OpenAPI document (/api/v1/openapi.json) with schemathesis,
# against the all-in-one server, and fails on any 5xx, on a response that breaks the
# documented schema, or on a server that crashes or panics meanwhile.
#
# It installs schemathesis (pinned) into a venv under the cache directory where missing, so
# that later runs and CI reuse it; builds the binaries (a no-op when scripts/test.sh just
# did); starts `super-channels` on free ports with a throwaway data directory; signs up an
# account that is an administrator by configuration (so every authenticated endpoint, admin
# ones included, is reached) and checks guest sessions work; runs schemathesis with that
# account's bearer token, bounded in examples and in time; then stops the server.
#
# The server stores in SQLite in the data directory, or, when DATABASE_URL names PostgreSQL
# (as scripts/test.sh sets it) and psql is installed, in a throwaway database created there
# and dropped afterwards: PostgreSQL refuses some text SQLite takes (NUL), so it finds more.
#
# Knobs (not SC_*, which would reach the server): SCHEMATHESIS_MAX_EXAMPLES (default 100 per
# operation), SCHEMATHESIS_TIMEOUT (default 240 s for the whole run). Extra arguments go to
# `schemathesis run`.
set -euo pipefail
cd "$(dirname "$0")/.."

version=4.32.5
venv=${XDG_CACHE_HOME:-$HOME/.cache}/super-channels/schemathesis-venv
max_examples=${SCHEMATHESIS_MAX_EXAMPLES:-100}
run_timeout=${SCHEMATHESIS_TIMEOUT:-240}
bin=${CARGO_TARGET_DIR:-target}/debug/super-channels

# shellcheck disable=SC2034 # read by log, in lib.sh
LOG_PREFIX=schemathesis.sh
# shellcheck source=lib.sh
. scripts/lib.sh

if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -q "$version"; then
  log "installing schemathesis $version into $venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "schemathesis==$version"
fi

cargo build --workspace --bins --quiet

port=$(free_port)
ops_port=$(free_port)
base="http://127.0.0.1:$port"
tmp=$(mktemp -d /tmp/super-channels-schemathesis.XXXXXX)
server_pid=""
pg_admin=""
pg_db=""
cleanup() {
  stop_child "$server_pid"
  if [ -n "$pg_db" ]; then
    pg_drop_db "$pg_admin" "$pg_db" || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

database_url=""
case "${DATABASE_URL:-}" in
  postgres://* | postgresql://*)
    if command -v psql >/dev/null 2>&1; then
      pg_admin=$DATABASE_URL
      pg_db="schemathesis_$(date +%s)_$$"
      pg_create_db "$pg_admin" "$pg_db"
      database_url=$(pg_url_with_db "$pg_admin" "$pg_db")
      log "storing in PostgreSQL, database $pg_db"
    else
      log "psql is not installed: storing in SQLite instead of DATABASE_URL"
    fi
    ;;
esac

admin=fuzzer
# The fuzzer's own requests are the load here: lift the per-socket send rate out of the way.
SC_LISTEN="127.0.0.1:$port" SC_OPS_LISTEN="127.0.0.1:$ops_port" SC_DATA_DIR="$tmp/data" \
  SC_DATABASE_URL="$database_url" SC_ADMINS="$admin" SC_LOG__LEVEL=warn "$bin" >"$tmp/server.log" 2>&1 &
server_pid=$!

# Says what went wrong with the server, shows its log and fails.
die_with_server_log() {
  log "$*; its log:"
  cat "$tmp/server.log" >&2
  exit 1
}

wait_for --while-alive "$server_pid" 300 0.2 url_ok "$base/api/v1/openapi.json" \
  || die_with_server_log "the server did not come up on $base"

# POSTs JSON $2 to path $1 and prints the reply's token; fails unless the status is 201.
token_from() {
  local reply
  reply=$(curl -sS -w '\n%{http_code}' -H 'content-type: application/json' -d "$2" "$base$1")
  if [ "$(tail -n 1 <<<"$reply")" != 201 ]; then
    log "POST $1 failed: $reply"
    return 1
  fi
  python3 -c 'import json, sys; print(json.loads(sys.stdin.read())["token"])' <<<"$(head -n -1 <<<"$reply")"
}
token_from /api/v1/sessions '{"name":"Schemathesis guest"}' >/dev/null
token=$(token_from /api/v1/accounts \
  "{\"username\":\"$admin\",\"email\":\"$admin@example.com\",\"first_name\":\"Fuzz\",\"last_name\":\"Er\",\"password\":\"correct horse battery staple\"}")

log "fuzzing $base/api/v1/openapi.json ($max_examples examples per operation, at most ${run_timeout}s)"
started=$(date +%s)
status=0
# Log-out and revoking a session (the stateful phase finds this session's id in
# GET /me/sessions) would end the token every later request relies on: they are left out
# (the integration tests cover both). Status codes are not checked against the document:
# it lists the usual answers of each operation, not every 400/401 every operation can give.
# Run from the throwaway directory: nothing (reports, example databases) lands in the tree.
(cd "$tmp" && timeout "$run_timeout" "$venv/bin/schemathesis" --no-color run "$base/api/v1/openapi.json" \
  --url "$base" \
  --header "Authorization: Bearer $token" \
  --checks not_a_server_error,content_type_conformance,response_schema_conformance \
  --max-examples "$max_examples" \
  --exclude-name "DELETE /api/v1/session" --exclude-name "DELETE /api/v1/me/sessions/{id}" \
  --generation-database none \
  "$@") || status=$?
log "schemathesis finished in $(($(date +%s) - started))s with status $status"

if ! kill -0 "$server_pid" 2>/dev/null; then
  die_with_server_log "the server died during the run"
fi
if grep -q 'panicked' "$tmp/server.log"; then
  die_with_server_log "the server panicked during the run"
fi
if [ "$status" = 124 ]; then
  log "schemathesis did not finish within ${run_timeout}s"
fi
exit "$status"
