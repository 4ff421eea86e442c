-- Search indexing after the commit, as in PostgreSQL (its migration of the same name says
-- why). Kept by triggers in every append, the FTS5 table wrote a new segment in each
-- commit: the all-in-one's light p99 went from 2.4-2.6 ms to 4.3-4.4 ms and its highest
-- clean saturation step from 8,000-12,000 to 8,000 msg/s (docs/benchmarks.md). Now the
-- triggers only queue message ids, in the committing transaction; the message service's
-- indexer (chat_store::Store::index_for_search) writes them to `message_search` in
-- batches. Searches check `deleted_at_ms` on the message itself, so a deletion is never
-- found even before the indexer has seen it.
DROP TRIGGER message_search_insert;
DROP TRIGGER message_search_update;

-- Messages to index, oldest first: a new one, or one `changed` (edited or deleted: its old
-- words are to go). SQLite has no statement triggers, so an entry is one message.
CREATE TABLE search_queue (
    id INTEGER PRIMARY KEY,
    message_id INTEGER NOT NULL,
    changed INTEGER NOT NULL
);

CREATE TRIGGER search_queue_inserted AFTER INSERT ON messages
    WHEN new.kind IN ('text', 'image')
BEGIN
    INSERT INTO search_queue (message_id, changed) VALUES (new.id, 0);
END;

CREATE TRIGGER search_queue_changed AFTER UPDATE OF body, deleted_at_ms ON messages
    WHEN new.kind IN ('text', 'image')
         AND (old.body IS NOT new.body OR old.deleted_at_ms IS NOT new.deleted_at_ms)
BEGIN
    INSERT INTO search_queue (message_id, changed) VALUES (new.id, 1);
END;
