-- The log-in before the latest one: what a person's panel shows as their last log-in (the
-- latest is the session they are looking from, which tells them nothing).
ALTER TABLE users ADD COLUMN previous_login_ms INTEGER;
