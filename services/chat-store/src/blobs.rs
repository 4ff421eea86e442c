//! Uploaded files behind a small trait, so where bytes live can change without the API
//! noticing. The default keeps them in the database (one backup, one thing to run); an
//! object store (S3, GCS, a CDN origin) is a second implementation of [`Blobs`]: `put`
//! writes the object and records its key, `get` streams it back or the API redirects to a
//! signed URL. Nothing else in the system reads upload bytes.

use crate::error::StoreError;
use chat_domain::{ImageSize, UploadId, UserId};

/// A stored upload.
#[derive(Debug, Clone, PartialEq)]
pub struct Blob {
    pub id: UploadId,
    pub owner_id: UserId,
    /// As sniffed from the bytes at upload, never as the client claimed.
    pub content_type: String,
    pub bytes: Vec<u8>,
    pub created_at_ms: i64,
}

/// An image to store: the file as it will be served (its metadata already removed), its
/// size, and its thumbnails.
#[derive(Debug, Clone, PartialEq)]
pub struct NewUpload {
    pub owner_id: UserId,
    pub content_type: String,
    pub bytes: Vec<u8>,
    pub size: ImageSize,
    /// One per width of [`chat_domain::upload::THUMBNAIL_WIDTHS`] narrower than the image.
    pub thumbnails: Vec<NewThumbnail>,
    pub created_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewThumbnail {
    pub size: ImageSize,
    pub content_type: String,
    pub bytes: Vec<u8>,
}

/// What is known of an upload without reading its bytes: for checking an attachment and
/// describing it in the message.
#[derive(Debug, Clone, PartialEq)]
pub struct UploadInfo {
    pub owner_id: UserId,
    /// `None` for uploads stored before sizes were recorded.
    pub size: Option<ImageSize>,
}

#[async_trait::async_trait]
pub trait Blobs: Send + Sync + 'static {
    /// Stores the image and its thumbnails, all or nothing; returns the new upload's id.
    async fn put(&self, upload: &NewUpload) -> Result<UploadId, StoreError>;
    async fn get(&self, id: UploadId) -> Result<Option<Blob>, StoreError>;
    /// The thumbnail of upload `id` that is `width` pixels wide, if it has one (its owner is
    /// the upload's).
    async fn thumbnail(&self, id: UploadId, width: u32) -> Result<Option<Blob>, StoreError>;
    /// Who uploaded it and how big it is, without reading the bytes.
    async fn info(&self, id: UploadId) -> Result<Option<UploadInfo>, StoreError>;
}
