-- A room's timeline holds changes as well as messages. Besides 'text' and 'image', a row's
-- kind may be 'edit' (body: the new text), 'delete', 'react' or 'unreact' (body: the
-- emoji); such a row takes the room's next seq like a message, and `target_seq` names the
-- message it changes. The message row itself keeps the current state (text and
-- edited_at_ms after edits, a tombstone after a deletion), so history reads no events.

ALTER TABLE messages ADD COLUMN target_seq bigint;
-- The message (same room) this one replies to.
ALTER TABLE messages ADD COLUMN reply_to bigint;
-- The members the text mentions, as a JSON array of {id, name}; '' for none.
ALTER TABLE messages ADD COLUMN mentions text NOT NULL DEFAULT '';
ALTER TABLE messages ADD COLUMN edited_at_ms bigint;
-- Finds a message's edits, whose text a deletion erases too.
CREATE INDEX messages_room_target_idx ON messages (room_id, target_seq) WHERE target_seq IS NOT NULL;

-- Standing reactions: one row per message, emoji and person. `reacted_seq` is the seq of
-- the 'react' event, which orders reactions as every reader shows them.
CREATE TABLE reactions (
    room_id     bigint NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    seq         bigint NOT NULL,
    emoji       text NOT NULL,
    user_id     text NOT NULL,
    user_name   text NOT NULL,
    reacted_seq bigint NOT NULL,
    PRIMARY KEY (room_id, seq, emoji, user_id)
);
