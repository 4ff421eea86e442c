//! The store's one error type, and the single place that decides which database failures
//! mean "the database is unavailable, retry" rather than "this request failed".

use sqlx::migrate::MigrateError;

/// Why a store call failed. Callers branch on [`StoreError::is_unavailable`]: an unavailable
/// database becomes an `unavailable` answer to the client (nothing was stored, retry), every
/// other variant an internal error.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or went away mid-call: connection refused or reset,
    /// pool timed out, the server shutting down or refusing connections.
    #[error("database unavailable")]
    Unavailable(#[source] sqlx::Error),
    /// Any other database failure: a bug, a constraint, a full disk.
    #[error("database error")]
    Database(#[source] sqlx::Error),
    /// A stored row that does not hold valid domain values; someone wrote it behind our back.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    #[error("database migration failed")]
    Migrate(#[source] MigrateError),
    /// A uniqueness rule refused the write (a taken username).
    #[error("conflict: {0}")]
    Conflict(String),
    /// A value the database cannot hold as text: PostgreSQL refuses NUL characters
    /// (SQLSTATE 22021). It comes from the request, so it is the caller's bad argument.
    #[error("text the database cannot store (a NUL character)")]
    InvalidText(#[source] sqlx::Error),
    /// The URL names no backend this store speaks.
    #[error("invalid database url: {0}")]
    InvalidUrl(String),
}

impl StoreError {
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        if is_unavailable(&error) {
            Self::Unavailable(error)
        } else if is_invalid_text(&error) {
            Self::InvalidText(error)
        } else {
            Self::Database(error)
        }
    }
}

impl From<MigrateError> for StoreError {
    /// A database that goes away while migrating is the same transient condition as one
    /// that goes away later, so the caller can treat start-up retries the same way.
    fn from(error: MigrateError) -> Self {
        match error {
            MigrateError::Execute(e) | MigrateError::ExecuteMigration(e, _) if is_unavailable(&e) => {
                Self::Unavailable(e)
            }
            other => Self::Migrate(other),
        }
    }
}

/// PostgreSQL SQLSTATEs (outside class 08, connection exception) after which the same
/// request can succeed on a retry: the server is shutting down, crashed or still starting
/// (57P01 admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now), or it has no
/// connection slot left (53300 too_many_connections).
const PG_UNAVAILABLE_STATES: [&str; 4] = ["57P01", "57P02", "57P03", "53300"];

/// SQLite primary result codes that mean another writer held the database for longer than
/// the busy timeout (SQLITE_BUSY, SQLITE_LOCKED): a retry later can succeed.
const SQLITE_BUSY_CODES: [i32; 2] = [5, 6];

/// PostgreSQL's character_not_in_repertoire: a NUL in a text parameter.
fn is_invalid_text(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db)
        if db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>().is_some_and(|pg| pg.code() == "22021"))
}

fn is_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
                let code = pg.code();
                code.starts_with("08") || PG_UNAVAILABLE_STATES.contains(&code)
            } else if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                // The code is the extended result code; its low byte is the primary code.
                db.code()
                    .and_then(|c| c.parse::<i32>().ok())
                    .is_some_and(|c| SQLITE_BUSY_CODES.contains(&(c & 0xff)))
            } else {
                false
            }
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::Connection;
    use std::io;

    #[test]
    fn transport_failures_are_unavailable_and_others_are_not() {
        let reset = sqlx::Error::Io(io::Error::from(io::ErrorKind::ConnectionReset));
        assert!(StoreError::from(reset).is_unavailable());
        assert!(StoreError::from(sqlx::Error::PoolTimedOut).is_unavailable());
        assert!(StoreError::from(sqlx::Error::PoolClosed).is_unavailable());
        assert!(!StoreError::from(sqlx::Error::RowNotFound).is_unavailable());
        assert!(!StoreError::from(sqlx::Error::Protocol("bad".into())).is_unavailable());
        let migrate = MigrateError::Execute(sqlx::Error::PoolTimedOut);
        assert!(StoreError::from(migrate).is_unavailable());
        assert!(!StoreError::from(MigrateError::Dirty(1)).is_unavailable());
    }

    #[tokio::test]
    async fn connecting_to_a_closed_port_is_unavailable() {
        // Bind then drop a listener: the port is now (almost certainly) closed.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        let mut options = crate::ConnectOptions::new(format!("postgres://postgres@127.0.0.1:{port}/x"));
        options.acquire_timeout = std::time::Duration::from_millis(300);
        let err = crate::connect(&options).await.err().expect("nothing listens there");
        assert!(err.is_unavailable(), "{err:?}");
    }

    #[tokio::test]
    async fn a_terminated_postgres_session_is_unavailable() {
        let url =
            std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
        // The server ends our own session with 57P01, as it does on a fast shutdown.
        let err = sqlx::query("SELECT pg_terminate_backend(pg_backend_pid())")
            .execute(&mut conn)
            .await
            .unwrap_err();
        let err = StoreError::from(err);
        assert!(err.is_unavailable(), "{err:?}");
    }

    #[tokio::test]
    async fn sqlite_busy_is_unavailable_but_a_constraint_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(dir.path().join("busy.db"))
            .create_if_missing(true)
            .busy_timeout(std::time::Duration::from_millis(50));
        let mut a = sqlx::SqliteConnection::connect_with(&options).await.unwrap();
        let mut b = sqlx::SqliteConnection::connect_with(&options).await.unwrap();
        sqlx::query("CREATE TABLE t (x INTEGER UNIQUE)")
            .execute(&mut a)
            .await
            .unwrap();
        sqlx::query("BEGIN IMMEDIATE").execute(&mut a).await.unwrap();
        let busy = sqlx::query("BEGIN IMMEDIATE").execute(&mut b).await.unwrap_err();
        assert!(StoreError::from(busy).is_unavailable());
        sqlx::query("INSERT INTO t VALUES (1)").execute(&mut a).await.unwrap();
        let dup = sqlx::query("INSERT INTO t VALUES (1)")
            .execute(&mut a)
            .await
            .unwrap_err();
        assert!(!StoreError::from(dup).is_unavailable());
    }
}
