-- Rooms and their messages. Each room hands out a gapless sequence (`seq`); `last_seq` is
-- the latest one handed out and is only changed inside a write (BEGIN IMMEDIATE) transaction.
-- STRICT makes SQLite refuse values of the wrong type instead of storing them silently.
-- AUTOINCREMENT keeps ids from being reused after a room and its messages are deleted.

CREATE TABLE rooms (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    name          TEXT NOT NULL UNIQUE,
    last_seq      INTEGER NOT NULL DEFAULT 0 CHECK (last_seq >= 0),
    created_at_ms INTEGER NOT NULL
) STRICT;

CREATE TABLE messages (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    room_id       INTEGER NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    seq           INTEGER NOT NULL CHECK (seq > 0),
    author_id     TEXT NOT NULL,
    author_name   TEXT NOT NULL,
    body          TEXT NOT NULL,
    kind          TEXT NOT NULL DEFAULT 'text',
    client_msg_id TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    UNIQUE (room_id, seq),
    -- Idempotency is per author: nobody can suppress another's message by reusing its id.
    UNIQUE (room_id, author_id, client_msg_id)
) STRICT;
