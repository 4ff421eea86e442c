-- Whether a person lets the members of their rooms see how far they have read (read
-- receipts). Off, their read marker still drives their own unread counts; it is only not
-- shown. People without an account row (guests, external users) send receipts.
ALTER TABLE users ADD COLUMN read_receipts boolean NOT NULL DEFAULT true;
