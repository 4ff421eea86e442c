-- Images get their size at upload (a client reserves the space before the image arrives)
-- and thumbnails in the widths the domain names (chat_domain::upload::THUMBNAIL_WIDTHS).
-- Uploads stored before this have no size and no thumbnails; they are shown as before.
ALTER TABLE uploads ADD COLUMN width bigint, ADD COLUMN height bigint;

CREATE TABLE upload_thumbnails (
    upload_id     bigint  NOT NULL REFERENCES uploads (id) ON DELETE CASCADE,
    width         bigint  NOT NULL,
    height        bigint  NOT NULL,
    content_type  text    NOT NULL,
    data          bytea   NOT NULL,
    PRIMARY KEY (upload_id, width)
);
