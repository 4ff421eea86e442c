-- Message search: a full-text index on what messages say now (edits rewrite `body`; a
-- deletion empties it and sets `deleted_at_ms`, which takes the row out of the index).
--
-- The 'simple' configuration lowercases words and does nothing else: no stemming and no
-- stop words, so it treats every language alike. An English stemmer would make "running"
-- find "run", and would also mangle words of every other language people chat in; a
-- chat's rooms mix languages. Searches use the same expression, so the planner can use
-- the index, and the same kinds and condition, which the partial index requires.
CREATE INDEX messages_search_idx ON messages USING gin (to_tsvector('simple', body))
    WHERE kind IN ('text', 'image') AND deleted_at_ms IS NULL;
