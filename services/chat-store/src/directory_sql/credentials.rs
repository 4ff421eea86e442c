//! [`Credentials`] in SQL, one text for both backends, like the rest of the directory.

use super::SqlDirectory;
use super::rows::{USER_COLUMNS, UserRow};
use crate::credentials::{Credentials, LoginFailures, NewPasswordReset};
use crate::directory::UserRecord;
use crate::error::StoreError;
use chat_domain::UserId;

fn failures(key: String, failures: i64, last_ms: i64) -> (String, LoginFailures) {
    let failures = u32::try_from(failures).unwrap_or(u32::MAX);
    (key, LoginFailures { failures, last_ms })
}

macro_rules! sql_credentials {
    ($db:ty) => {
        #[async_trait::async_trait]
        impl Credentials for SqlDirectory<$db> {
            async fn login_failures(
                &self,
                keys: &[String],
                since_ms: i64,
            ) -> Result<Vec<(String, LoginFailures)>, StoreError> {
                let mut found = Vec::with_capacity(keys.len());
                for key in keys {
                    let row: Option<(String, i64, i64)> = sqlx::query_as(
                        "SELECT key, failures, last_ms FROM login_failures WHERE key = $1 AND last_ms >= $2",
                    )
                    .bind(key)
                    .bind(since_ms)
                    .fetch_optional(&self.pool)
                    .await?;
                    found.extend(row.map(|(key, n, last)| failures(key, n, last)));
                }
                Ok(found)
            }

            async fn record_login_failure(&self, keys: &[String], now_ms: i64, since_ms: i64) -> Result<(), StoreError> {
                for key in keys {
                    sqlx::query(
                        "INSERT INTO login_failures (key, failures, last_ms) VALUES ($1, 1, $2)
                         ON CONFLICT (key) DO UPDATE SET
                             failures = CASE WHEN login_failures.last_ms < $3 THEN 1
                                             ELSE login_failures.failures + 1 END,
                             last_ms = $2",
                    )
                    .bind(key)
                    .bind(now_ms)
                    .bind(since_ms)
                    .execute(&self.pool)
                    .await?;
                }
                Ok(())
            }

            async fn clear_login_failures(&self, key: &str) -> Result<(), StoreError> {
                sqlx::query("DELETE FROM login_failures WHERE key = $1")
                    .bind(key)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn set_password(
                &self,
                id: &UserId,
                password_hash: &str,
                keep: Option<&str>,
            ) -> Result<Option<Vec<String>>, StoreError> {
                let mut tx = self.pool.begin().await?;
                let done = sqlx::query("UPDATE users SET password_hash = $2 WHERE id = $1")
                    .bind(id.as_str())
                    .bind(password_hash)
                    .execute(&mut *tx)
                    .await?;
                if done.rows_affected() == 0 {
                    return Ok(None);
                }
                let ended: Vec<(String,)> =
                    sqlx::query_as("DELETE FROM sessions WHERE user_id = $1 AND ($2 IS NULL OR id <> $2) RETURNING id")
                        .bind(id.as_str())
                        .bind(keep)
                        .fetch_all(&mut *tx)
                        .await?;
                tx.commit().await?;
                Ok(Some(ended.into_iter().map(|(id,)| id).collect()))
            }

            async fn users_by_email(&self, email: &str, limit: u32) -> Result<Vec<UserRecord>, StoreError> {
                let rows: Vec<UserRow> = sqlx::query_as(&format!(
                    "SELECT {USER_COLUMNS} FROM users WHERE lower(email) = lower($1) ORDER BY created_at_ms, id LIMIT $2"
                ))
                .bind(email)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter().map(UserRow::into_record).collect()
            }

            async fn create_password_reset(
                &self,
                reset: &NewPasswordReset<'_>,
                since_ms: i64,
                max_recent: u32,
            ) -> Result<bool, StoreError> {
                let done = sqlx::query(
                    "INSERT INTO password_resets (token_hash, user_id, created_at_ms, expires_at_ms)
                     SELECT $1, $2, $3, $4
                     WHERE (SELECT count(*) FROM password_resets WHERE user_id = $2 AND created_at_ms >= $5) < $6",
                )
                .bind(reset.token_hash)
                .bind(reset.user_id.as_str())
                .bind(reset.now_ms)
                .bind(reset.expires_at_ms)
                .bind(since_ms)
                .bind(i64::from(max_recent))
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn password_reset_user(&self, token_hash: &str, now_ms: i64) -> Result<Option<UserRecord>, StoreError> {
                let row: Option<UserRow> = sqlx::query_as(&format!(
                    "SELECT {USER_COLUMNS} FROM users WHERE id = (
                         SELECT user_id FROM password_resets
                         WHERE token_hash = $1 AND used_at_ms IS NULL AND expires_at_ms > $2)"
                ))
                .bind(token_hash)
                .bind(now_ms)
                .fetch_optional(&self.pool)
                .await?;
                row.map(UserRow::into_record).transpose()
            }

            async fn redeem_password_reset(
                &self,
                token_hash: &str,
                password_hash: &str,
                now_ms: i64,
            ) -> Result<Option<(UserId, Vec<String>)>, StoreError> {
                let mut tx = self.pool.begin().await?;
                // The conditional update is the claim: of two redemptions at once, one
                // updates the row and the other finds it used.
                let user: Option<(String,)> = sqlx::query_as(
                    "UPDATE password_resets SET used_at_ms = $2
                     WHERE token_hash = $1 AND used_at_ms IS NULL AND expires_at_ms > $2
                     RETURNING user_id",
                )
                .bind(token_hash)
                .bind(now_ms)
                .fetch_optional(&mut *tx)
                .await?;
                let Some((user,)) = user else { return Ok(None) };
                let user = UserId::parse(&user)
                    .map_err(|_| StoreError::Corrupt(format!("password_resets: invalid user id {user:?}")))?;
                sqlx::query("UPDATE users SET password_hash = $2 WHERE id = $1")
                    .bind(user.as_str())
                    .bind(password_hash)
                    .execute(&mut *tx)
                    .await?;
                let ended: Vec<(String,)> = sqlx::query_as("DELETE FROM sessions WHERE user_id = $1 RETURNING id")
                    .bind(user.as_str())
                    .fetch_all(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(Some((user, ended.into_iter().map(|(id,)| id).collect())))
            }

            async fn purge_credentials(&self, failures_before_ms: i64, now_ms: i64) -> Result<u64, StoreError> {
                let failures = sqlx::query("DELETE FROM login_failures WHERE last_ms < $1")
                    .bind(failures_before_ms)
                    .execute(&self.pool)
                    .await?;
                let resets = sqlx::query("DELETE FROM password_resets WHERE expires_at_ms < $1")
                    .bind(now_ms)
                    .execute(&self.pool)
                    .await?;
                Ok(failures.rows_affected() + resets.rows_affected())
            }
        }
    };
}

sql_credentials!(sqlx::Postgres);
sql_credentials!(sqlx::Sqlite);
