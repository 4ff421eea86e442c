//! [`Blobs`] in SQL: uploads kept in the database, one text for both backends.

use super::SqlDirectory;
use crate::blobs::{Blob, Blobs, NewUpload, UploadInfo};
use crate::error::StoreError;
use crate::rows::{corrupt, image_size};
use chat_domain::{UploadId, UserId};

/// An upload's stored owner, which must be a valid user id.
fn owner(id: UploadId, owner_id: &str) -> Result<UserId, StoreError> {
    UserId::parse(owner_id).map_err(|_| corrupt("uploads", id.get(), "owner_id", owner_id))
}

/// An upload's or a thumbnail's row (owner, type, bytes, time) as a [`Blob`] of upload `id`.
fn blob(
    id: UploadId,
    (owner_id, content_type, bytes, created_at_ms): (String, String, Vec<u8>, i64),
) -> Result<Blob, StoreError> {
    Ok(Blob {
        id,
        owner_id: owner(id, &owner_id)?,
        content_type,
        bytes,
        created_at_ms,
    })
}

macro_rules! sql_blobs {
    ($db:ty) => {
        #[async_trait::async_trait]
        impl Blobs for SqlDirectory<$db> {
            async fn put(&self, upload: &NewUpload) -> Result<UploadId, StoreError> {
                let mut tx = self.pool.begin().await?;
                let (id,): (i64,) = sqlx::query_as(
                    "INSERT INTO uploads (owner_id, content_type, size_bytes, data, created_at_ms, width, height)
                     VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
                )
                .bind(upload.owner_id.as_str())
                .bind(&upload.content_type)
                .bind(upload.bytes.len() as i64)
                .bind(&upload.bytes)
                .bind(upload.created_at_ms)
                .bind(i64::from(upload.size.width))
                .bind(i64::from(upload.size.height))
                .fetch_one(&mut *tx)
                .await?;
                for thumbnail in &upload.thumbnails {
                    sqlx::query(
                        "INSERT INTO upload_thumbnails (upload_id, width, height, content_type, data)
                         VALUES ($1, $2, $3, $4, $5)",
                    )
                    .bind(id)
                    .bind(i64::from(thumbnail.size.width))
                    .bind(i64::from(thumbnail.size.height))
                    .bind(&thumbnail.content_type)
                    .bind(&thumbnail.bytes)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                UploadId::new(id).map_err(|_| corrupt("uploads", id, "id", id))
            }

            async fn get(&self, id: UploadId) -> Result<Option<Blob>, StoreError> {
                let row: Option<(String, String, Vec<u8>, i64)> =
                    sqlx::query_as("SELECT owner_id, content_type, data, created_at_ms FROM uploads WHERE id = $1")
                        .bind(id.get())
                        .fetch_optional(&self.pool)
                        .await?;
                row.map(|row| blob(id, row)).transpose()
            }

            async fn thumbnail(&self, id: UploadId, width: u32) -> Result<Option<Blob>, StoreError> {
                let row: Option<(String, String, Vec<u8>, i64)> = sqlx::query_as(
                    "SELECT u.owner_id, t.content_type, t.data, u.created_at_ms
                     FROM upload_thumbnails t JOIN uploads u ON u.id = t.upload_id
                     WHERE t.upload_id = $1 AND t.width = $2",
                )
                .bind(id.get())
                .bind(i64::from(width))
                .fetch_optional(&self.pool)
                .await?;
                row.map(|row| blob(id, row)).transpose()
            }

            async fn info(&self, id: UploadId) -> Result<Option<UploadInfo>, StoreError> {
                let row: Option<(String, Option<i64>, Option<i64>)> =
                    sqlx::query_as("SELECT owner_id, width, height FROM uploads WHERE id = $1")
                        .bind(id.get())
                        .fetch_optional(&self.pool)
                        .await?;
                row.map(|(owner_id, width, height)| {
                    Ok(UploadInfo {
                        owner_id: owner(id, &owner_id)?,
                        size: image_size("uploads", id.get(), width, height)?,
                    })
                })
                .transpose()
            }
        }
    };
}

sql_blobs!(sqlx::Postgres);
sql_blobs!(sqlx::Sqlite);
