-- Accounts hardened: look-alike usernames, the log-in throttle's memory, password resets.

-- The look-alike keys of each username (chat_domain::lookalike::skeleton_keys, of the
-- name as typed and lowercased): a new username, or a guest's name, that shares a key with a
-- registered username is refused. Usernames are ASCII letters, digits and _, and of those
-- the UTS #39 skeleton changes only 0 (to O), 1 and I (to l) and m (to rn); so the keys are
-- the expressions below, which fill in the accounts made before them. Not unique: two such
-- accounts may already exist.
ALTER TABLE users ADD COLUMN name_key TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN name_key_folded TEXT NOT NULL DEFAULT '';
UPDATE users SET
    name_key = replace(lower(replace(replace(replace(username, '0', 'o'), '1', 'l'), 'I', 'l')), 'm', 'rn'),
    name_key_folded = replace(replace(replace(lower(username), '0', 'o'), '1', 'l'), 'm', 'rn');
CREATE INDEX users_name_key_idx ON users (name_key);
CREATE INDEX users_name_key_folded_idx ON users (name_key_folded);

-- Password resets find accounts by e-mail, in any case.
CREATE INDEX users_email_idx ON users (lower(email));

-- Failed log-ins, counted per account (`account:<username key>`) and per client address
-- (`address:<ip or IPv6 /64>`), shared by every gateway. A count whose last failure is
-- older than the throttle's window starts again.
CREATE TABLE login_failures (
    key      TEXT PRIMARY KEY,
    failures INTEGER NOT NULL,
    last_ms  INTEGER NOT NULL
);

-- Password-reset links: the token itself is never stored, only its keyed hash (as for
-- sessions). Used once: `used_at_ms` is set when it is redeemed.
CREATE TABLE password_resets (
    token_hash    TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL,
    used_at_ms    INTEGER
);
CREATE INDEX password_resets_user_idx ON password_resets (user_id, created_at_ms);
