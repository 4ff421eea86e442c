-- Search indexing after the commit, off the send path (as Zulip does). Maintaining the GIN
-- index of 20261207 inside every append (parsing each text, inserting its words, and now
-- and then merging GIN's pending list in the sending transaction) took the cluster's
-- highest clean saturation step from 20,000 to 12,000 msg/s (docs/benchmarks.md). Now an
-- append only queues its message ids: a statement trigger adds one row, the ids of its text
-- and image messages, to `search_queue`, in the same transaction, so nothing committed is
-- ever missed (a row per message cost the indexer as much to delete as to index). A
-- message service's indexer (chat_store::Store::index_for_search) takes the queue in
-- batches, one indexer at a time, and writes each message's current words to
-- `message_search`, or takes the message out when it was deleted. Searches still check
-- `deleted_at_ms` on the message itself, so a deletion is never found even before the
-- indexer has seen it; a new message or an edit is found once indexed.
--
-- A plain `tsvector` column, unlike the partial expression index before, also gets
-- ANALYZE's statistics of how common each word is, which the planner needs: with none, it
-- took every word to match 0.5% of messages and a rare word's search took seconds.
DROP INDEX messages_search_idx;

CREATE TABLE message_search (
    message_id BIGINT PRIMARY KEY,
    words tsvector NOT NULL
);
CREATE INDEX message_search_words_idx ON message_search USING gin (words);
-- ANALYZE keeps the 10,000 most common words rather than 1,000: a word past the list is
-- estimated at half the rarest listed frequency, and a longer list makes that estimate
-- small enough that a rare word is looked up in the index rather than searched for by
-- walking messages newest first (70 ms against 1 ms at a million messages).
ALTER TABLE message_search ALTER COLUMN words SET STATISTICS 1000;

-- Messages to index, oldest first: new ones, an append's as one entry, or one `changed`
-- (edited or deleted: its old words are to go). Entries are ordered by their own id, so an
-- edit queued while the indexer works on the message's earlier entry is a later entry.
CREATE TABLE search_queue (
    id BIGSERIAL PRIMARY KEY,
    message_ids BIGINT[] NOT NULL,
    changed BOOLEAN NOT NULL
);

CREATE FUNCTION queue_inserted_for_search() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO search_queue (message_ids, changed)
        SELECT array_agg(id), false FROM inserted WHERE kind IN ('text', 'image') HAVING count(*) > 0;
    RETURN NULL;
END
$$;
CREATE TRIGGER messages_queue_inserted_for_search AFTER INSERT ON messages
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION queue_inserted_for_search();

-- Edits rewrite `body`; deletions empty it and set `deleted_at_ms`. Rare, so row by row.
CREATE FUNCTION queue_changed_for_search() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO search_queue (message_ids, changed) VALUES (ARRAY[NEW.id], true);
    RETURN NULL;
END
$$;
CREATE TRIGGER messages_queue_changed_for_search AFTER UPDATE OF body, deleted_at_ms ON messages
    FOR EACH ROW
    WHEN (NEW.kind IN ('text', 'image')
          AND (OLD.body IS DISTINCT FROM NEW.body OR OLD.deleted_at_ms IS DISTINCT FROM NEW.deleted_at_ms))
    EXECUTE FUNCTION queue_changed_for_search();

-- The messages stored before this migration, indexed here once.
INSERT INTO message_search (message_id, words)
    SELECT id, to_tsvector('simple', body) FROM messages
    WHERE kind IN ('text', 'image') AND deleted_at_ms IS NULL;
