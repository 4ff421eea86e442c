-- A batch of new messages in one statement: PgStore::append_new (postgres.rs) runs it, and
-- scripts/pg-ceiling.sh runs it under pgbench. $1-$7: the batch's rooms, author ids, author
-- names, texts, kinds, client message ids and attachment ids, in batch order; $8: its
-- distinct room names; $9: each message's mentions (JSON, '' for none). The time
-- expression is postgres.rs's now_ms!().
WITH t AS (
    SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                         $7::bigint[], $9::text[])
        WITH ORDINALITY AS t(room, author_id, author_name, body, kind, client_msg_id, attachment_id, mentions, ord)
), locked AS MATERIALIZED (
    SELECT id, name, last_seq FROM rooms
    WHERE name = ANY($8) AND deleted_at_ms IS NULL ORDER BY id FOR UPDATE
), numbered AS (
    SELECT l.id AS room_id,
           l.last_seq + row_number() OVER (PARTITION BY l.id ORDER BY t.ord) AS seq,
           t.author_id, t.author_name, t.body, t.kind, t.client_msg_id, t.attachment_id, t.mentions
    FROM t JOIN locked l ON l.name = t.room
), grown AS (
    UPDATE rooms SET last_seq = g.last_seq
    FROM (SELECT room_id, max(seq) AS last_seq FROM numbered GROUP BY room_id) g
    WHERE rooms.id = g.room_id
), inserted AS (
    INSERT INTO messages
        (room_id, seq, author_id, author_name, body, kind, client_msg_id, attachment_id, mentions, created_at_ms)
    SELECT room_id, seq, author_id, author_name, body, kind, client_msg_id, attachment_id, mentions,
           (floor(extract(epoch FROM statement_timestamp()) * 1000))::bigint
    FROM numbered
    RETURNING id, room_id, seq, created_at_ms
)
SELECT id AS room_id, name, last_seq AS seq, NULL::bigint AS id, NULL::bigint AS created_at_ms FROM locked
UNION ALL
SELECT room_id, NULL, seq, id, created_at_ms FROM inserted
