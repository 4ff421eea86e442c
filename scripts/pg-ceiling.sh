#!/usr/bin/env bash
# How many messages a second PostgreSQL alone can store on this machine, with nothing else
# running: pgbench runs the message service's append statement (the one PgStore::append_new
# runs: services/chat-store/src/append_new.sql, or append_one.sql for a batch of one) on
# our own schema, with durable commits, from C clients for S seconds each. Each client has
# rooms of its own, as each message service has (rooms are routed to one service each):
# clients never wait on each other's room locks.
#
#   scripts/pg-ceiling.sh [--batch B] [--rooms R per client] [--seconds S] [--clients "1 2 4"]
#
# Uses DATABASE_URL's server (default postgres://postgres@127.0.0.1:5432/postgres) and a
# database of its own, dropped at the end. It measures the ceiling the saturation
# scenario's 30,000 msg/s target meets: if Postgres alone, with both cores, stores fewer,
# the full path cannot store more.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
# Its messages carry no prefix (log, in lib.sh, reads this): its output is a report of its own.
# shellcheck disable=SC2034
LOG_PREFIX=""
# shellcheck source=lib.sh
. "$root/scripts/lib.sh"
batch=100 rooms=50 seconds=15 clients="1 2 4"
while [ $# -gt 0 ]; do
  case $1 in
    --batch) batch=$2; shift 2 ;;
    --rooms) rooms=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --clients) clients=$2; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0" >&2; exit 0 ;;
    *) log "unknown option $1"; exit 2 ;;
  esac
done
# Without TLS, as the services connect (sqlx is built without it): libpq would otherwise
# prefer TLS to a server that offers it, and pgbench's side of every statement would cost more.
export PGSSLMODE="${PGSSLMODE:-disable}"
command -v pgbench >/dev/null 2>&1 || die "pgbench is needed (Debian: apt-get install postgresql-contrib)"

max_clients=$(printf '%s\n' $clients | sort -n | tail -n 1)
server="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
db="sc_pg_ceiling_$$"
url=$(pg_url_with_db "$server" "$db")
work=$(mktemp -d)
cleanup() { pg_drop_db --no-force "$server" "$db" || true; rm -rf "$work"; }
trap cleanup EXIT

pg_create_db "$server" "$db"
for migration in "$root"/services/chat-store/migrations/postgres/*.sql; do
  psql -q -v ON_ERROR_STOP=1 "$url" -f "$migration" >/dev/null
done
psql -q -v ON_ERROR_STOP=1 "$url" >/dev/null <<SQL
INSERT INTO rooms (name, created_at_ms)
  SELECT 'room-' || g, 0 FROM generate_series(0, $rooms * $max_clients - 1) g;
CREATE SEQUENCE pg_ceiling_keys;
SQL

# One transaction: a batch of $batch new messages over the client's rooms, as the committer
# sends it. The batch's values are built first (\gset keeps them as variables p1, p2, …), then
# the append statement itself runs with them as its parameters.
if [ "$batch" = 1 ]; then
  # The service's statement for a batch of one takes each value alone; no attachment.
  cat >"$work/append.sql" <<SQL
SELECT 'room-' || (:client_id * $rooms + 1 % $rooms) AS p1, 'u1' AS p2, 'User 1' AS p3,
       repeat('x', 64) AS p4, 'text' AS p5, 'k' || nextval('pg_ceiling_keys') AS p6, '' AS p8
\gset
SQL
  grep -v '^--' "$root/services/chat-store/src/append_one.sql" \
    | sed -e 's/\$7/NULL::bigint/' -e 's/\$\([0-9]\)/:p\1/g' >>"$work/append.sql"
  echo ';' >>"$work/append.sql"
else
cat >"$work/append.sql" <<SQL
SELECT array_agg('room-' || (:client_id * $rooms + g % $rooms) ORDER BY g) AS p1,
       array_fill('u1'::text, ARRAY[$batch]) AS p2,
       array_fill('User 1'::text, ARRAY[$batch]) AS p3,
       array_fill(repeat('x', 64), ARRAY[$batch]) AS p4,
       array_fill('text'::text, ARRAY[$batch]) AS p5,
       array_agg('k' || nextval('pg_ceiling_keys') ORDER BY g) AS p6,
       array_fill(NULL::bigint, ARRAY[$batch]) AS p7,
       array_agg(DISTINCT 'room-' || (:client_id * $rooms + g % $rooms)) AS p8,
       array_fill(''::text, ARRAY[$batch]) AS p9
FROM generate_series(1, $batch) g
\gset
SQL
grep -v '^--' "$root/services/chat-store/src/append_new.sql" | sed 's/\$\([0-9]\)/:p\1/g' >>"$work/append.sql"
echo ';' >>"$work/append.sql"
fi

printf 'batch %s messages over %s rooms per client, %s s per run\n' "$batch" "$rooms" "$seconds"
for c in $clients; do
  out=$(pgbench -n -M prepared -c "$c" -j "$c" -T "$seconds" -f "$work/append.sql" "$url" 2>&1) \
    || die "$out"
  tps=$(echo "$out" | sed -n 's/^tps = \([0-9.]*\).*/\1/p' | head -n 1)
  latency=$(echo "$out" | sed -n 's/^latency average = \([0-9.]*\) ms/\1/p')
  stored=$(psql -qtA "$url" -c "SELECT count(*) FROM messages")
  printf '%s client(s): %.0f commits/s, %.0f messages/s, %s ms per commit (%s messages stored so far)\n' \
    "$c" "$tps" "$(awk -v t="$tps" -v b="$batch" 'BEGIN { print t * b }')" "$latency" "$stored"
done
