-- Message search: an FTS5 index on what messages say now, kept by triggers (an edit
-- rewrites `body`; a deletion empties it and sets `deleted_at_ms`, which takes the row out).
--
-- Contentless: the text stays in `messages` only; the index holds the words and the
-- message id as its rowid. The tokenizer keeps diacritics, as Postgres's 'simple'
-- configuration does, so both backends find the same messages ("cafe" does not find
-- "café"); both lowercase.
CREATE VIRTUAL TABLE message_search USING fts5 (
    body,
    content = '',
    contentless_delete = 1,
    tokenize = 'unicode61 remove_diacritics 0'
);

INSERT INTO message_search (rowid, body)
    SELECT id, body FROM messages WHERE kind IN ('text', 'image') AND deleted_at_ms IS NULL;

CREATE TRIGGER message_search_insert AFTER INSERT ON messages
    WHEN new.kind IN ('text', 'image') AND new.deleted_at_ms IS NULL
BEGIN
    INSERT INTO message_search (rowid, body) VALUES (new.id, new.body);
END;

CREATE TRIGGER message_search_update AFTER UPDATE OF body, deleted_at_ms ON messages
    WHEN new.kind IN ('text', 'image')
BEGIN
    DELETE FROM message_search WHERE rowid = old.id;
    INSERT INTO message_search (rowid, body) SELECT new.id, new.body WHERE new.deleted_at_ms IS NULL;
END;

CREATE TRIGGER message_search_delete AFTER DELETE ON messages
    WHEN old.kind IN ('text', 'image')
BEGIN
    DELETE FROM message_search WHERE rowid = old.id;
END;
