#!/usr/bin/env bash
# Message search at scale: fills a database of its own with 1,000,000 messages across 1,000
# rooms, then times the store's search statements with pgbench, as the gateway sends them
# (the extended protocol's unnamed statement, the query bound as a parameter, so each
# execution is planned for its words), and prints p50 and p99 per case.
#
#   scripts/search-bench.sh [--messages N] [--rooms N] [--runs N] [--keep]
#
# Postgres from DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres); the
# database `search_bench` is created and dropped (kept with --keep). Words follow Zipf's law
# over a 5,000-word vocabulary (w1 the most common, in about half of all messages; each of
# w4000..w4999 in a few hundred), 3 to 15 words a message, 5% of them images, over 30 days.
# The searcher is a member of 20 rooms; 10% of rooms are private.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
# shellcheck disable=SC2034 # read by log, in lib.sh
LOG_PREFIX=search-bench
# shellcheck source=lib.sh
. scripts/lib.sh

messages=1000000 rooms=1000 runs=200 keep=0
while [ $# -gt 0 ]; do
  case $1 in
    --messages) messages=$2; shift 2 ;;
    --rooms) rooms=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    -h|--help) sed -n '2,13p' "$0" >&2; exit 0 ;;
    *) die "unknown option $1" ;;
  esac
done
command -v pgbench >/dev/null 2>&1 || die "pgbench is needed (Debian: postgresql-client)"
base="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
db=search_bench
url="$(pg_url_with_db "$base" "$db")"
pg_drop_db "$base" "$db" 2>/dev/null || true
pg_create_db "$base" "$db"
[ "$keep" = 1 ] || trap 'pg_drop_db "$base" "$db" || true' EXIT

log "schema: the migrations of services/chat-store/migrations/postgres"
for migration in services/chat-store/migrations/postgres/*.sql; do
  psql -X -q -v ON_ERROR_STOP=1 -d "$url" -f "$migration" >/dev/null
done

log "data: $rooms rooms, $messages messages (a few minutes)"
started=$(date +%s)
psql -X -q -v ON_ERROR_STOP=1 -d "$url" <<SQL
SELECT setseed(0.42) \gset
INSERT INTO rooms (name, last_seq, created_at_ms, visibility)
  SELECT 'room' || g, 0, 0, CASE WHEN g % 10 = 0 THEN 'private' ELSE 'public' END
  FROM generate_series(1, $rooms) g;
INSERT INTO memberships (user_id, room_id, user_name, joined_at_ms)
  SELECT 'usearcher', id, 'searcher', 0 FROM rooms WHERE id % ($rooms / 20) = 1;
-- Zipf's law: a word's rank is e^(U ln 5000), so rank r comes up with probability ~ 1/r.
CREATE TEMP TABLE texts AS
  SELECT g AS i,
         (SELECT string_agg('w' || floor(exp(random() * ln(5000)))::int, ' ')
            FROM generate_series(1, 3 + (g::bigint * 7919 % 13)::int) WHERE g > 0) AS body
  FROM generate_series(1, $messages) g;
CREATE INDEX ON texts (i);
-- In appends of 100, as a message service commits them: each queues one entry for search.
DO \$\$ BEGIN
  FOR b IN 0 .. ($messages - 1) / 100 LOOP
    INSERT INTO messages (room_id, seq, author_id, author_name, body, kind, client_msg_id, created_at_ms)
      SELECT 1 + (i * 7) % $rooms, i, 'u' || (i % 1000), 'user' || (i % 1000), body,
             CASE WHEN i % 20 = 0 THEN 'image' ELSE 'text' END, 'c' || i,
             1764547200000 + i * (30::bigint * 86400000 / $messages)
      FROM texts WHERE i > b * 100 AND i <= (b + 1) * 100 ORDER BY i;
  END LOOP;
END \$\$;
SQL
log "data loaded in $(( $(date +%s) - started )) s; $(psql -X -q -At -d "$url" -c "SELECT count(*) FROM search_queue") queued for search"

# The indexer, as a message service runs it (PgStore::index_for_search: 100 queue entries a
# transaction, here 10,000 messages; its statements for new messages here as one), until the
# queue is empty.
work=$(mktemp -d)
trap 'rm -rf "$work"; [ "$keep" = 1 ] || pg_drop_db "$base" "$db" || true' EXIT
cat > "$work/index.sql" <<'SQL'
WITH taken AS (
  DELETE FROM search_queue WHERE id IN (SELECT id FROM search_queue ORDER BY id LIMIT 100) RETURNING message_ids
)
INSERT INTO message_search (message_id, words)
  SELECT id, to_tsvector('simple', body) FROM messages
  WHERE id IN (SELECT unnest(message_ids) FROM taken) AND kind IN ('text', 'image') AND deleted_at_ms IS NULL
  ON CONFLICT (message_id) DO UPDATE SET words = EXCLUDED.words;
SQL
batches=$(( ($(psql -X -q -At -d "$url" -c "SELECT count(*) FROM search_queue") + 99) / 100 ))
started=$(date +%s.%N)
pgbench -n -M prepared -c 1 -t "$batches" -f "$work/index.sql" "$url" >/dev/null 2>"$work/pgbench.err" \
  || { cat "$work/pgbench.err" >&2; exit 1; }
indexed=$(psql -X -q -At -d "$url" -c "SELECT count(*) FROM message_search")
log "indexed $indexed messages in $batches rounds of 100 queue entries: $(awk -v n="$indexed" -v s="$started" -v e="$(date +%s.%N)" \
  'BEGIN { printf "%.0f messages/s", n / (e - s) }'); $(psql -X -q -At -d "$url" -c "SELECT count(*) FROM search_queue") left queued"
psql -X -q -d "$url" -c "ANALYZE"

# The store's statement (chat-store/src/directory_sql/search.rs), with $1 the query as
# SearchQuery::websearch gives it and the scope and filters of each case.
select="SELECT r.name AS room_name, m.id, m.room_id, m.seq, m.author_id, m.author_name, m.body, m.kind, \
m.client_msg_id, m.created_at_ms, m.attachment_id, m.deleted_at_ms, m.target_seq, m.reply_to, m.mentions, \
m.edited_at_ms FROM messages m JOIN rooms r ON r.id = m.room_id \
WHERE m.id IN (SELECT message_id FROM message_search WHERE words @@ websearch_to_tsquery('simple', :q)) \
AND m.kind IN ('text', 'image') AND m.deleted_at_ms IS NULL AND r.deleted_at_ms IS NULL"
mine="AND m.room_id IN (SELECT room_id FROM memberships WHERE user_id = 'usearcher') \
AND NOT EXISTS (SELECT 1 FROM room_bans b WHERE b.room_id = m.room_id AND b.user_id = 'usearcher')"
public="AND (r.visibility = 'public' OR EXISTS (SELECT 1 FROM memberships ms WHERE ms.room_id = r.id \
AND ms.user_id = 'usearcher')) AND NOT EXISTS (SELECT 1 FROM room_bans b WHERE b.room_id = m.room_id \
AND b.user_id = 'usearcher')"
page="ORDER BY m.id DESC LIMIT 50"
week="AND m.created_at_ms >= 1766448000000 AND m.created_at_ms < 1767052800000"

printf '%-40s %8s %10s %10s %8s\n' case found "p50 ms" "p99 ms" runs
run_case() { # name, query, where
  local name=$1 q=$2 where=$3
  printf '%s %s %s;\n' "$select" "$where" "$page" > "$work/case.sql"
  local found
  found=$(psql -X -q -At -d "$url" -c "PREPARE s(text) AS $(sed 's/:q/$1/' "$work/case.sql" | sed 's/;$//'); \
EXECUTE s('$q');" | wc -l)
  (cd "$work" && rm -f pgbench_log.* && pgbench -n -M extended -c 1 -t "$runs" -D "q=$q" -f case.sql \
    --log --log-prefix=pgbench_log "$url" >/dev/null 2>"$work/pgbench.err") || { cat "$work/pgbench.err" >&2; return 1; }
  # Each log line: client, transaction, latency in microseconds, …
  cat "$work"/pgbench_log.* | awk '{print $3}' | sort -n | awk -v name="$name" -v found="$found" '
    { v[NR] = $1 } END {
      p50 = v[int(NR * 0.50) > 0 ? int(NR * 0.50) : 1]; p99 = v[int(NR * 0.99) > 0 ? int(NR * 0.99) : 1];
      printf "%-40s %8d %10.2f %10.2f %8d\n", name, found, p50 / 1000, p99 / 1000, NR }'
}
run_case "common word, my rooms" '"w1"' "$mine"
run_case "common word, public rooms" '"w1"' "$public"
run_case "rare word, my rooms" '"w4321"' "$mine"
run_case "rare word, public rooms" '"w4321"' "$public"
run_case "two words, public rooms" '"w2" "w3"' "$public"
run_case "phrase, public rooms" '"w1 w2"' "$public"
run_case "common -excluded, public rooms" '"w1" -"w2"' "$public"
run_case "common word, one room" '"w1"' "AND r.name = 'room7'"
run_case "rare word, one room" '"w4321"' "AND r.name = 'room7'"
run_case "common word, author filter, public" '"w1"' "$public AND m.author_id = 'u8'"
run_case "common word, images, public" '"w1"' "$public AND m.kind = 'image'"
run_case "common word, one week, public" '"w1"' "$public $week"
run_case "rare word, one week, public" '"w4321"' "$public $week"
