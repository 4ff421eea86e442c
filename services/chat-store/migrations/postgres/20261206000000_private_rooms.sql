-- Private rooms, direct messages, room roles and moderation.
--
-- A room is public (entered by name, listed in the directory) or private (seen only by its
-- members and invitees). Private rooms and direct messages get server-made names (`p.…`,
-- `dm.…`); `title` is what the creator called a private room. A direct message is the one
-- room of its pair: `dm_key` is the two user ids, sorted, joined by a newline.
ALTER TABLE rooms ADD COLUMN visibility text NOT NULL DEFAULT 'public'
    CHECK (visibility IN ('public', 'private'));
ALTER TABLE rooms ADD COLUMN title text;
ALTER TABLE rooms ADD COLUMN topic text NOT NULL DEFAULT '';
ALTER TABLE rooms ADD COLUMN description text NOT NULL DEFAULT '';
ALTER TABLE rooms ADD COLUMN dm_key text;
CREATE UNIQUE INDEX rooms_dm_key ON rooms (dm_key) WHERE dm_key IS NOT NULL;

-- A member's role in the room, and until when they may read but not send. A room made
-- before roles has no owner: its site administrators moderate it.
ALTER TABLE memberships ADD COLUMN role text NOT NULL DEFAULT 'member'
    CHECK (role IN ('owner', 'moderator', 'member'));
ALTER TABLE memberships ADD COLUMN muted_until_ms bigint;

-- Who may not come back. A ban outlives the membership it ended.
CREATE TABLE room_bans (
    room_id      bigint NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_id      text NOT NULL,
    user_name    text NOT NULL,
    by_id        text NOT NULL,
    at_ms        bigint NOT NULL,
    PRIMARY KEY (room_id, user_id)
);

-- Who may see and join a private room before they are members; used up on joining.
CREATE TABLE room_invites (
    room_id      bigint NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_id      text NOT NULL,
    user_name    text NOT NULL,
    by_id        text NOT NULL,
    at_ms        bigint NOT NULL,
    PRIMARY KEY (room_id, user_id)
);

-- Invite links: the token itself is never stored, only its hash (as for sessions).
CREATE TABLE invite_links (
    token_hash    text PRIMARY KEY,
    room_id       bigint NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    by_id         text NOT NULL,
    created_at_ms bigint NOT NULL,
    expires_at_ms bigint NOT NULL,
    -- NULL: any number of uses until it expires.
    max_uses      bigint,
    uses          bigint NOT NULL DEFAULT 0
);

-- Finds whether an upload was posted in a room (and whether that message was deleted),
-- which decides who may fetch it.
CREATE INDEX messages_attachment_idx ON messages (attachment_id) WHERE attachment_id IS NOT NULL;
-- Room events (kind 'room', body: the action as JSON) take the room's next seq like a
-- message; history pages and unread counts, which read kinds 'text' and 'image', skip them.
