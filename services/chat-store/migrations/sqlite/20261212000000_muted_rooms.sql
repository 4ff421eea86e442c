-- A member may mute a room's notifications (not a moderator's mute, which is
-- `muted_until_ms`): the room stays theirs (unread counts, the sidebar), but their clients
-- neither notify nor sound for it. Kept with the membership, so every device agrees.
ALTER TABLE memberships ADD COLUMN notifications_muted INTEGER NOT NULL DEFAULT 0;
