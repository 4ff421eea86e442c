-- People and what hangs off them: accounts, server-side sessions, room membership, uploaded
-- files and the admin audit log. Times are Unix milliseconds, as in the first migration.
-- User ids are text, the same ids messages carry as author_id: registered users are
-- `u:<uuid>`, guests `guest:<uuid>`, externally authenticated users `ext:<sub>`. Only
-- registered users have a `users` row; sessions and memberships work for all three.

CREATE TABLE users (
    id            text PRIMARY KEY,
    username      text NOT NULL,
    -- Lowercased username: uniqueness regardless of case. "C" collation for byte-order
    -- cursor paging, as for room names.
    username_key  text COLLATE "C" NOT NULL UNIQUE,
    email         text NOT NULL,
    first_name    text NOT NULL,
    last_name     text NOT NULL,
    bio           text NOT NULL DEFAULT '',
    avatar_id     bigint,
    role          text NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
    -- PHC string (argon2id); never the password.
    password_hash text NOT NULL,
    disabled      boolean NOT NULL DEFAULT false,
    created_at_ms bigint NOT NULL,
    last_login_ms bigint
);

CREATE TABLE sessions (
    -- HMAC-SHA256 of the token under auth.secret: a leaked table does not leak usable tokens.
    token_hash    text PRIMARY KEY,
    -- Public handle for listing and revoking; not usable to authenticate.
    id            text NOT NULL UNIQUE,
    user_id       text NOT NULL,
    -- A guest's display name (registered users' names come from `users`).
    user_name     text NOT NULL,
    guest         boolean NOT NULL,
    created_at_ms bigint NOT NULL,
    expires_at_ms bigint NOT NULL,
    user_agent    text NOT NULL DEFAULT ''
);
CREATE INDEX sessions_user_id_idx ON sessions (user_id);

CREATE TABLE memberships (
    user_id       text NOT NULL,
    room_id       bigint NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_name     text NOT NULL,
    joined_at_ms  bigint NOT NULL,
    -- The highest seq the member has seen; unread = rooms.last_seq - last_read_seq.
    last_read_seq bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, room_id)
);
CREATE INDEX memberships_room_id_idx ON memberships (room_id, user_id);

CREATE TABLE uploads (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    owner_id      text NOT NULL,
    content_type  text NOT NULL,
    size_bytes    bigint NOT NULL,
    data          bytea NOT NULL,
    created_at_ms bigint NOT NULL
);

CREATE TABLE audit_log (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    actor_id      text NOT NULL,
    actor_name    text NOT NULL,
    action        text NOT NULL,
    target        text NOT NULL,
    detail        text NOT NULL DEFAULT '',
    created_at_ms bigint NOT NULL
);

-- Image messages carry an upload; deleted messages keep their row (and so their seq, which
-- keeps every room's sequence gapless for readers) with the body erased.
ALTER TABLE messages ADD COLUMN attachment_id bigint;
ALTER TABLE messages ADD COLUMN deleted_at_ms bigint;
CREATE INDEX messages_author_id_idx ON messages (author_id);
-- A deleted room keeps its row, so its seq never restarts (readers rely on seqs only growing);
-- entering its name again brings it back, empty.
ALTER TABLE rooms ADD COLUMN deleted_at_ms bigint;
