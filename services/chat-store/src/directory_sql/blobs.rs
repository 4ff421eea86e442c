//! [`Blobs`] in SQL: uploads kept in the database, one text for both backends.

use super::SqlDirectory;
use crate::blobs::{Blob, Blobs};
use crate::error::StoreError;

macro_rules! sql_blobs {
    ($db:ty) => {
        #[async_trait::async_trait]
        impl Blobs for SqlDirectory<$db> {
            async fn put(
                &self,
                owner_id: &str,
                content_type: &str,
                bytes: &[u8],
                now_ms: i64,
            ) -> Result<i64, StoreError> {
                let (id,): (i64,) = sqlx::query_as(
                    "INSERT INTO uploads (owner_id, content_type, size_bytes, data, created_at_ms)
                     VALUES ($1, $2, $3, $4, $5) RETURNING id",
                )
                .bind(owner_id)
                .bind(content_type)
                .bind(bytes.len() as i64)
                .bind(bytes)
                .bind(now_ms)
                .fetch_one(&self.pool)
                .await?;
                Ok(id)
            }

            async fn get(&self, id: i64) -> Result<Option<Blob>, StoreError> {
                let row: Option<(String, String, Vec<u8>, i64)> =
                    sqlx::query_as("SELECT owner_id, content_type, data, created_at_ms FROM uploads WHERE id = $1")
                        .bind(id)
                        .fetch_optional(&self.pool)
                        .await?;
                Ok(row.map(|(owner_id, content_type, bytes, created_at_ms)| Blob {
                    id,
                    owner_id,
                    content_type,
                    bytes,
                    created_at_ms,
                }))
            }

            async fn owner(&self, id: i64) -> Result<Option<String>, StoreError> {
                let row: Option<(String,)> = sqlx::query_as("SELECT owner_id FROM uploads WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.map(|(owner,)| owner))
            }
        }
    };
}

sql_blobs!(sqlx::Postgres);
sql_blobs!(sqlx::Sqlite);
