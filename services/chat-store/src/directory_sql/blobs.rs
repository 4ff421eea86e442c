//! [`Blobs`] in SQL: uploads kept in the database, one text for both backends.

use super::SqlDirectory;
use crate::blobs::{Blob, Blobs};
use crate::error::StoreError;
use crate::rows::corrupt;
use chat_domain::{UploadId, UserId};

/// An upload's stored owner, which must be a valid user id.
fn owner(id: UploadId, owner_id: &str) -> Result<UserId, StoreError> {
    UserId::parse(owner_id).map_err(|_| corrupt("uploads", id.get(), "owner_id", owner_id))
}

macro_rules! sql_blobs {
    ($db:ty) => {
        #[async_trait::async_trait]
        impl Blobs for SqlDirectory<$db> {
            async fn put(
                &self,
                owner_id: &UserId,
                content_type: &str,
                bytes: &[u8],
                now_ms: i64,
            ) -> Result<UploadId, StoreError> {
                let (id,): (i64,) = sqlx::query_as(
                    "INSERT INTO uploads (owner_id, content_type, size_bytes, data, created_at_ms)
                     VALUES ($1, $2, $3, $4, $5) RETURNING id",
                )
                .bind(owner_id.as_str())
                .bind(content_type)
                .bind(bytes.len() as i64)
                .bind(bytes)
                .bind(now_ms)
                .fetch_one(&self.pool)
                .await?;
                UploadId::new(id).map_err(|_| corrupt("uploads", id, "id", id))
            }

            async fn get(&self, id: UploadId) -> Result<Option<Blob>, StoreError> {
                let row: Option<(String, String, Vec<u8>, i64)> =
                    sqlx::query_as("SELECT owner_id, content_type, data, created_at_ms FROM uploads WHERE id = $1")
                        .bind(id.get())
                        .fetch_optional(&self.pool)
                        .await?;
                row.map(|(owner_id, content_type, bytes, created_at_ms)| {
                    Ok(Blob {
                        id,
                        owner_id: owner(id, &owner_id)?,
                        content_type,
                        bytes,
                        created_at_ms,
                    })
                })
                .transpose()
            }

            async fn owner(&self, id: UploadId) -> Result<Option<UserId>, StoreError> {
                let row: Option<(String,)> = sqlx::query_as("SELECT owner_id FROM uploads WHERE id = $1")
                    .bind(id.get())
                    .fetch_optional(&self.pool)
                    .await?;
                row.map(|(owner_id,)| owner(id, &owner_id)).transpose()
            }
        }
    };
}

sql_blobs!(sqlx::Postgres);
sql_blobs!(sqlx::Sqlite);
