-- One new message in one statement: PgStore::append_new (postgres.rs) runs it for a batch
-- of one, the usual batch at moderate load, and append_new.sql for more. It does what
-- append_new.sql does for one message (lock the room, take its next seq, insert, raise
-- `last_seq`) and hands back the same rows, without a batch's machinery (the arrays, the
-- numbering window, the join): under pgbench, Postgres spent about a sixth less CPU per
-- commit on it (docs/benchmarks/history.md). The UPDATE takes the room's row lock, as
-- append_new.sql's FOR UPDATE does, and reads `last_seq` under it. $1-$8: the room, author
-- id, author name, text, kind, client message id, attachment id and mentions ('' for none).
-- The time expression is postgres.rs's now_ms!().
WITH room AS (
    UPDATE rooms SET last_seq = last_seq + 1
    WHERE name = $1 AND deleted_at_ms IS NULL
    RETURNING id, name, last_seq
), inserted AS (
    INSERT INTO messages
        (room_id, seq, author_id, author_name, body, kind, client_msg_id, attachment_id, mentions, created_at_ms)
    SELECT id, last_seq, $2, $3, $4, $5, $6, $7, $8,
           (floor(extract(epoch FROM statement_timestamp()) * 1000))::bigint
    FROM room
    RETURNING id, room_id, seq, created_at_ms
)
SELECT id AS room_id, name, last_seq - 1 AS seq, NULL::bigint AS id, NULL::bigint AS created_at_ms FROM room
UNION ALL
SELECT room_id, NULL, seq, id, created_at_ms FROM inserted
