//! Message search: full text over the rooms a person may read. The query is the domain's
//! ([`SearchQuery`], checked at the edge); each backend matches it in its own full-text
//! index, and everything around the match (scope, filters, paging) is one SQL text for
//! both. Both keep their index after the commit, off the send path
//! ([`crate::Store::index_for_search`], fed from the queue an append writes to): in
//! Postgres the table `message_search`, a `tsvector` per message with a GIN index; in
//! SQLite the FTS5 table `message_search`.

use crate::error::StoreError;
use chat_domain::{ChatMessage, RoomName, SearchQuery, UserId};

/// Which rooms a search looks in. The set form of [`chat_domain::RoomAccess::check_read`]:
/// a room the person is banned from is never searched, a private room only by its members.
#[derive(Debug, Clone, Copy)]
pub enum SearchScope<'a> {
    /// One room, which the caller has checked the person may read.
    Room(&'a RoomName),
    /// The rooms `0` is a member of (and not banned from).
    Member(&'a UserId),
    /// Those and every public room `0` is not banned from.
    Public(&'a UserId),
}

/// A search: what to find, where, and which page. Newest first: the page holds the
/// messages with ids below `before_id`, so paging stays stable while new messages arrive.
#[derive(Debug, Clone)]
pub struct SearchRequest<'a> {
    pub query: &'a SearchQuery,
    pub scope: SearchScope<'a>,
    /// Only messages by this author.
    pub author: Option<&'a UserId>,
    /// Only messages committed at or after this time (Unix ms).
    pub since_ms: Option<i64>,
    /// Only messages committed before this time (Unix ms).
    pub until_ms: Option<i64>,
    /// Only image messages (found by their captions).
    pub images_only: bool,
    pub before_id: Option<i64>,
    pub limit: u32,
}

#[async_trait::async_trait]
pub trait MessageSearch: Send + Sync + 'static {
    /// The messages (not deleted, in their current text) that match, newest first, with
    /// their rooms; at most `limit`.
    async fn search(&self, request: &SearchRequest<'_>) -> Result<Vec<ChatMessage>, StoreError>;
}

/// What one call of [`crate::Store::index_for_search`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexRound {
    /// Brought this many messages' entries up to date; `more` when the round took as
    /// many queue entries as it could, so more may be waiting.
    Indexed { messages: u64, more: bool },
    /// Another process is indexing right now; it takes the queue.
    Busy,
}
