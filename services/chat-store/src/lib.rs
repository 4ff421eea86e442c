//! The message store: rooms and their messages, in PostgreSQL or SQLite.
//!
//! Everything above this crate codes against the [`Store`] trait; [`connect`] picks the
//! backend from the URL, so the all-in-one binary (SQLite file) and the scaled-out
//! services (one shared PostgreSQL) run the same code. The store is where two guarantees
//! of the system are kept:
//! * each room has a gapless sequence `seq` 1, 2, 3 …, assigned in the transaction that
//!   commits the message, even with several processes appending to one room;
//! * a retried send is stored once: `(room, author, client_msg_id)` is unique, and a repeat
//!   returns the original message.
//!
//! Appends come in batches (group commit: one transaction for many sends) because the
//! cost of a commit, not of a row, bounds throughput.
//!
//! # Layout
//! * [`store`](Store): the trait and its data types, the contract both backends keep.
//! * `batch`: the backend-neutral core of `append_batch`: dedupe and seq numbering once
//!   the batch's rooms are locked.
//! * `rows`: rows as selected from either database, and their one conversion into domain
//!   values (a row that breaks a domain rule is [`StoreError::Corrupt`]).
//! * `kept`: the connection PostgreSQL's appends keep from one batch to the next, so that
//!   a commit does not pay for the pool's ping of a returned connection.
//! * `postgres` and `sqlite`: the SQL of each backend, its pool and its migrations
//!   (`migrations/postgres`, `migrations/sqlite`, embedded at compile time).
//! * [`search`](MessageSearch): full-text search over the rooms a person may read; the
//!   match is each backend's own index, the rest one SQL text.
//! * [`error`](StoreError): the error type, and which failures mean "unavailable, retry".

mod batch;
mod blobs;
mod credentials;
mod directory;
mod directory_sql;
mod error;
mod kept;
mod postgres;
mod rooms;
mod rows;
mod search;
mod sqlite;
mod store;

pub use blobs::{Blob, Blobs, NewThumbnail, NewUpload, UploadInfo};
pub use credentials::{Credentials, LoginFailures, NewPasswordReset};
pub use directory::{
    AuditEntry, Directory, Entered, MemberRoom, MessageAt, NewAuditEntry, NewUser, ProfileUpdate, RoomMember, Search,
    SessionLookup, SessionRecord, UNREAD_WINDOW, UserRecord,
};
pub use error::StoreError;
pub use postgres::SEARCH_INDEXER_LOCK;
pub use rooms::{
    Invitation, MAX_INVITATIONS, Moderation, NewInviteLink, NewRoom, Redeemed, RoomRecord, Rooms, UPLOAD_ROOMS,
    UploadUses,
};
pub use search::{IndexRound, MessageSearch, SearchRequest, SearchScope};
pub use store::{AppendOutcome, NewChange, NewEvent, NewMessage, RoomInfo, Store};

use std::sync::Arc;
use std::time::Duration;

/// How to reach the database.
#[derive(Clone)]
pub struct ConnectOptions {
    /// `postgres://…` / `postgresql://…`, or `sqlite:path/to/file.db` (the file and its
    /// directory are created when missing).
    pub url: String,
    /// The pool's size: how many statements this process can have in flight at once.
    pub max_connections: u32,
    /// How long a call waits for a pooled connection (including connecting) before it
    /// fails as unavailable; bounds how long a send hangs while the database is down.
    pub acquire_timeout: Duration,
}

impl ConnectOptions {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            max_connections: 10,
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

/// Shows the URL without its password: options end up in logs.
impl std::fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectOptions")
            .field("url", &redact_password(&self.url))
            .field("max_connections", &self.max_connections)
            .field("acquire_timeout", &self.acquire_timeout)
            .finish()
    }
}

fn redact_password(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let authority_end = url[scheme_end..].find(['/', '?']).map_or(url.len(), |i| scheme_end + i);
    let authority = &url[scheme_end..authority_end];
    match (authority.rfind('@'), authority.find(':')) {
        (Some(at), Some(colon)) if colon < at => {
            format!(
                "{}{}:***{}",
                &url[..scheme_end],
                &authority[..colon],
                &url[scheme_end + at..]
            )
        }
        _ => url.to_owned(),
    }
}

enum Backend {
    Postgres,
    Sqlite,
}

impl Backend {
    fn of(url: &str) -> Result<Self, StoreError> {
        let has_scheme = |scheme: &str| url.get(..scheme.len()).is_some_and(|s| s.eq_ignore_ascii_case(scheme));
        if has_scheme("postgres://") || has_scheme("postgresql://") {
            Ok(Self::Postgres)
        } else if has_scheme("sqlite:") {
            Ok(Self::Sqlite)
        } else {
            Err(StoreError::InvalidUrl(
                "expected a postgres://, postgresql:// or sqlite: url".into(),
            ))
        }
    }
}

/// Picks PostgreSQL or SQLite by the URL's scheme, connects, and applies pending migrations
/// before returning, so a store that exists has the schema this code expects.
pub async fn connect(options: &ConnectOptions) -> Result<Arc<dyn Store>, StoreError> {
    Ok(open(options).await?.messages)
}

/// Every view of one database, sharing one pool: the message store (the message service's),
/// and the directory and uploads (the gateway's HTTP API).
#[derive(Clone)]
pub struct Database {
    pub messages: Arc<dyn Store>,
    pub directory: Arc<dyn Directory>,
    pub blobs: Arc<dyn Blobs>,
}

impl Database {
    fn over<DB: sqlx::Database>(store: impl Store, pool: sqlx::Pool<DB>) -> Self
    where
        directory_sql::SqlDirectory<DB>: Directory + Blobs,
    {
        let directory = Arc::new(directory_sql::SqlDirectory { pool });
        Self {
            messages: Arc::new(store),
            directory: directory.clone(),
            blobs: directory,
        }
    }
}

/// Like [`connect`], with every view of the database.
pub async fn open(options: &ConnectOptions) -> Result<Database, StoreError> {
    Ok(match Backend::of(&options.url)? {
        Backend::Postgres => {
            let store = postgres::PgStore::connect(options).await?;
            let pool = store.pool.clone();
            Database::over(store, pool)
        }
        Backend::Sqlite => {
            let store = sqlite::SqliteStore::connect(options).await?;
            let pool = store.pool.clone();
            Database::over(store, pool)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_unknown_scheme_is_an_invalid_url() {
        for url in ["mysql://localhost/x", "chat.db", ""] {
            let err = connect(&ConnectOptions::new(url)).await.err().expect("refused");
            assert!(matches!(err, StoreError::InvalidUrl(_)), "{url}: {err:?}");
        }
    }

    #[test]
    fn debug_output_hides_the_password() {
        let options = ConnectOptions::new("postgres://app:s3cret@db:5432/chat?sslmode=require");
        let shown = format!("{options:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(
            shown.contains("postgres://app:***@db:5432/chat?sslmode=require"),
            "{shown}"
        );
        assert_eq!(redact_password("sqlite:data/chat.db"), "sqlite:data/chat.db");
        assert_eq!(redact_password("postgres://app@db/chat"), "postgres://app@db/chat");
    }
}
