-- Rooms and their messages. Each room hands out a gapless sequence (`seq`); `last_seq` is
-- the latest one handed out and is only changed while the room's row is locked.

CREATE TABLE rooms (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- "C" collation: byte order, the same order as SQLite and as `RoomName`'s `Ord`, so
    -- cursor paging over names gives the same pages on every backend and locale.
    name          text COLLATE "C" NOT NULL UNIQUE,
    last_seq      bigint NOT NULL DEFAULT 0 CHECK (last_seq >= 0),
    created_at_ms bigint NOT NULL
)
-- Every append rewrites its room's row; free space on the page keeps that a HOT update.
WITH (fillfactor = 70);

CREATE TABLE messages (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    room_id       bigint NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    seq           bigint NOT NULL CHECK (seq > 0),
    author_id     text NOT NULL,
    author_name   text NOT NULL,
    body          text NOT NULL,
    kind          text NOT NULL DEFAULT 'text',
    client_msg_id text NOT NULL,
    created_at_ms bigint NOT NULL,
    -- Serves history paging (room_id, seq range) and the foreign key's lookups.
    CONSTRAINT messages_room_seq_key UNIQUE (room_id, seq),
    -- Idempotency is per author: nobody can suppress another's message by reusing its id.
    CONSTRAINT messages_room_author_client_msg_id_key UNIQUE (room_id, author_id, client_msg_id)
);
