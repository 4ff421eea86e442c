-- How common each searched word is, for the planner. Postgres takes no statistics from a
-- partial index (it does not describe the whole table), so with `messages_search_idx`
-- alone every word was estimated to match 0.5% of messages: a rare word looked common,
-- the planner walked the primary key backwards re-parsing every message for 50 hits that
-- were not there (seconds at a million messages), and a common word in a few rooms looked
-- rare. Statistics on the indexed expression give ANALYZE's most common words and their
-- frequencies (autovacuum keeps them current), and each search is planned by its words.
-- SQLite's FTS5 table needs nothing of the kind.
CREATE STATISTICS messages_search_words ON (to_tsvector('simple', body)) FROM messages;
