-- An administrator's retried deletion records its audit entry once: the audit looks up
-- earlier entries by action and target.
CREATE INDEX audit_log_action_target ON audit_log (action, target);

-- (Since the timeline's events, a member's unread count is no longer
-- rooms.last_seq - memberships.last_read_seq, as the accounts migration says: it counts the
-- messages after last_read_seq, not the changes. An 'edit' row's mentions column holds the
-- members its new text names, which replace the message's.)
