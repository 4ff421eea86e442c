-- Images get their size at upload (a client reserves the space before the image arrives)
-- and thumbnails in the widths the domain names (chat_domain::upload::THUMBNAIL_WIDTHS).
-- Uploads stored before this have no size and no thumbnails; they are shown as before.
ALTER TABLE uploads ADD COLUMN width INTEGER;
ALTER TABLE uploads ADD COLUMN height INTEGER;

CREATE TABLE upload_thumbnails (
    upload_id     INTEGER NOT NULL REFERENCES uploads (id) ON DELETE CASCADE,
    width         INTEGER NOT NULL,
    height        INTEGER NOT NULL,
    content_type  TEXT    NOT NULL,
    data          BLOB    NOT NULL,
    PRIMARY KEY (upload_id, width)
) STRICT;
