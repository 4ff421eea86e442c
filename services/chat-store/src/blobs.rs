//! Uploaded files behind a small trait, so where bytes live can change without the API
//! noticing. The default keeps them in the database (one backup, one thing to run); an
//! object store (S3, GCS, a CDN origin) is a second implementation of [`Blobs`]: `put`
//! writes the object and records its key, `get` streams it back or the API redirects to a
//! signed URL. Nothing else in the system reads upload bytes.

use crate::error::StoreError;
use chat_domain::{UploadId, UserId};

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

#[async_trait::async_trait]
pub trait Blobs: Send + Sync + 'static {
    /// Stores the bytes; returns the new upload's id.
    async fn put(&self, owner: &UserId, content_type: &str, bytes: &[u8], now_ms: i64) -> Result<UploadId, StoreError>;
    async fn get(&self, id: UploadId) -> Result<Option<Blob>, StoreError>;
    /// Who uploaded it, without reading the bytes: for checking an attachment.
    async fn owner(&self, id: UploadId) -> Result<Option<UserId>, StoreError>;
}
