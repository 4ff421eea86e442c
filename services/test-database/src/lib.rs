//! A database of its own for one test, the one helper the store suite and the integration
//! tests share: tests run in parallel against one server, so each creates a database with
//! a fresh name, and drops it when the test ends, passed or failed.
//!
//! PostgreSQL is reached at `DATABASE_URL` (the local server by default); a fault test
//! that starts a throwaway server gives its admin URL instead. SQLite lives in a temporary
//! directory.

use sqlx::Connection;

/// The PostgreSQL server tests use: `DATABASE_URL`, or the local server.
pub fn database_admin_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A fresh, empty database for one test, dropped when this is.
pub struct TestDb {
    /// The database's name (PostgreSQL) or file (SQLite).
    pub name: String,
    /// Where the services under test connect.
    pub url: String,
    backend: Backend,
}

enum Backend {
    /// The server's admin URL, to drop the database from.
    Postgres { admin: String },
    /// Removed with its directory.
    Sqlite { _dir: tempfile::TempDir },
}

impl TestDb {
    /// A database on the PostgreSQL server at [`database_admin_url`].
    pub async fn create() -> Self {
        Self::create_on(&database_admin_url()).await
    }

    /// A database on the PostgreSQL server of `admin` (a fault test's own server).
    pub async fn create_on(admin: &str) -> Self {
        let name = format!("test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = postgres(admin).await;
        sqlx::query(&format!(r#"CREATE DATABASE "{name}""#))
            .execute(&mut conn)
            .await
            .expect("create test database");
        conn.close().await.ok();
        Self {
            url: with_database(admin, &name),
            name,
            backend: Backend::Postgres {
                admin: admin.to_owned(),
            },
        }
    }

    /// A SQLite database in a directory of its own that does not exist yet: whoever
    /// connects first must create it, as the all-in-one does on a fresh machine.
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("nested").join("chat.db");
        Self {
            name: file.display().to_string(),
            url: format!("sqlite:{}", file.display()),
            backend: Backend::Sqlite { _dir: dir },
        }
    }

    /// Runs SQL behind the services' backs: for states the API cannot produce (an expired
    /// session, a corrupt row).
    pub async fn execute(&self, sql: &str) {
        match self.backend {
            Backend::Postgres { .. } => {
                let mut conn = postgres(&self.url).await;
                sqlx::raw_sql(sql).execute(&mut conn).await.expect("execute");
                conn.close().await.ok();
            }
            Backend::Sqlite { .. } => {
                let mut conn = sqlx::SqliteConnection::connect(&self.url).await.expect("open SQLite");
                sqlx::raw_sql(sql).execute(&mut conn).await.expect("execute");
                conn.close().await.ok();
            }
        }
    }

    /// Rows in `messages` as (room, seq, author id, body), straight from PostgreSQL.
    pub async fn message_rows(&self) -> Vec<(String, i64, String, String)> {
        let mut conn = postgres(&self.url).await;
        sqlx::query_as(
            "SELECT r.name, m.seq, m.author_id, m.body FROM messages m JOIN rooms r ON r.id = m.room_id ORDER BY r.name, m.seq",
        )
        .fetch_all(&mut conn)
        .await
        .expect("read messages")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Backend::Postgres { admin } = &self.backend else {
            return;
        };
        let (admin, name) = (admin.clone(), self.name.clone());
        // Best effort, and on a thread of its own: Drop cannot await, and this may run
        // while a failing test unwinds inside the test's runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                // The server may be gone already (a fault test's own, stopped first).
                let mut conn = sqlx::PgConnection::connect(&admin).await.ok()?;
                sqlx::query(&format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#))
                    .execute(&mut conn)
                    .await
                    .ok()
            })
        })
        .join();
    }
}

async fn postgres(url: &str) -> sqlx::PgConnection {
    sqlx::PgConnection::connect(url)
        .await
        .expect("connect to PostgreSQL (set DATABASE_URL)")
}

/// `url` with its database replaced by `name`, its parameters (`?…`) kept.
pub fn with_database(url: &str, name: &str) -> String {
    let authority_start = url.find("://").map_or(0, |i| i + 3);
    let path_start = url[authority_start..]
        .find(['/', '?'])
        .map_or(url.len(), |i| authority_start + i);
    let query_start = url[path_start..].find('?').map_or(url.len(), |i| path_start + i);
    format!("{}/{}{}", &url[..path_start], name, &url[query_start..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_is_replaced_and_the_rest_kept() {
        assert_eq!(
            with_database("postgres://u@h:5432/postgres?sslmode=disable", "t1"),
            "postgres://u@h:5432/t1?sslmode=disable"
        );
        assert_eq!(with_database("postgres://u@h:5432", "t1"), "postgres://u@h:5432/t1");
        assert_eq!(with_database("postgres://u@h/db", "t1"), "postgres://u@h/t1");
    }
}
