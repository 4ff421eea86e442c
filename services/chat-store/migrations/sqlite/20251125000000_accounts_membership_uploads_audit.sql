-- People and what hangs off them: accounts, server-side sessions, room membership, uploaded
-- files and the admin audit log. Times are Unix milliseconds, as in the first migration.
-- User ids are text, the same ids messages carry as author_id: registered users are
-- `u:<uuid>`, guests `guest:<uuid>`, externally authenticated users `ext:<sub>`. Only
-- registered users have a `users` row; sessions and memberships work for all three.

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    username      TEXT NOT NULL,
    -- Lowercased username: uniqueness regardless of case. SQLite compares text bytewise, the order for
    -- cursor paging, as for room names.
    username_key  TEXT NOT NULL UNIQUE,
    email         TEXT NOT NULL,
    first_name    TEXT NOT NULL,
    last_name     TEXT NOT NULL,
    bio           TEXT NOT NULL DEFAULT '',
    avatar_id     INTEGER,
    role          TEXT NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
    -- PHC string (argon2id); never the password.
    password_hash TEXT NOT NULL,
    disabled      INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    created_at_ms INTEGER NOT NULL,
    last_login_ms INTEGER
) STRICT;

CREATE TABLE sessions (
    -- HMAC-SHA256 of the token under auth.secret: a leaked table does not leak usable tokens.
    token_hash    TEXT PRIMARY KEY,
    -- Public handle for listing and revoking; not usable to authenticate.
    id            TEXT NOT NULL UNIQUE,
    user_id       TEXT NOT NULL,
    -- A guest's display name (registered users' names come from `users`).
    user_name     TEXT NOT NULL,
    guest         INTEGER NOT NULL CHECK (guest IN (0, 1)),
    created_at_ms INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL,
    user_agent    TEXT NOT NULL DEFAULT ''
) STRICT;
CREATE INDEX sessions_user_id_idx ON sessions (user_id);

CREATE TABLE memberships (
    user_id       TEXT NOT NULL,
    room_id       INTEGER NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_name     TEXT NOT NULL,
    joined_at_ms  INTEGER NOT NULL,
    -- The highest seq the member has seen; unread = rooms.last_seq - last_read_seq.
    last_read_seq INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, room_id)
) STRICT;
CREATE INDEX memberships_room_id_idx ON memberships (room_id, user_id);

CREATE TABLE uploads (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    owner_id      TEXT NOT NULL,
    content_type  TEXT NOT NULL,
    size_bytes    INTEGER NOT NULL,
    data          BLOB NOT NULL,
    created_at_ms INTEGER NOT NULL
) STRICT;

CREATE TABLE audit_log (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    actor_id      TEXT NOT NULL,
    actor_name    TEXT NOT NULL,
    action        TEXT NOT NULL,
    target        TEXT NOT NULL,
    detail        TEXT NOT NULL DEFAULT '',
    created_at_ms INTEGER NOT NULL
) STRICT;

-- Image messages carry an upload; deleted messages keep their row (and so their seq, which
-- keeps every room's sequence gapless for readers) with the body erased.
ALTER TABLE messages ADD COLUMN attachment_id INTEGER;
ALTER TABLE messages ADD COLUMN deleted_at_ms INTEGER;
CREATE INDEX messages_author_id_idx ON messages (author_id);
-- A deleted room keeps its row, so its seq never restarts (readers rely on seqs only growing);
-- entering its name again brings it back, empty.
ALTER TABLE rooms ADD COLUMN deleted_at_ms INTEGER;
