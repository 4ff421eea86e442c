//! [`MessageSearch`] in SQL. Only the match differs between the backends, so the macro
//! takes it as a fragment; the scope, filters and paging are one text.

use super::rows::NamedMessageRow;
use super::{SqlDirectory, room_name};
use crate::error::StoreError;
use crate::rows::message_columns;
use crate::search::{MessageSearch, SearchRequest, SearchScope};
use chat_domain::ChatMessage;

/// The rooms a scope reaches, after `AND`: see [`SearchScope`]. A ban shuts every room.
fn push_scope<'a, DB: sqlx::Database>(sql: &mut sqlx::QueryBuilder<'a, DB>, scope: SearchScope<'a>)
where
    &'a str: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
{
    let user = match scope {
        SearchScope::Room(room) => {
            sql.push(" AND r.name = ").push_bind(room.as_str());
            return;
        }
        SearchScope::Member(user) => {
            sql.push(" AND m.room_id IN (SELECT room_id FROM memberships WHERE user_id = ")
                .push_bind(user.as_str())
                .push(")");
            user
        }
        SearchScope::Public(user) => {
            sql.push(" AND (r.visibility = 'public' OR EXISTS (SELECT 1 FROM memberships ms WHERE ms.room_id = r.id AND ms.user_id = ")
                .push_bind(user.as_str())
                .push("))");
            user
        }
    };
    sql.push(" AND NOT EXISTS (SELECT 1 FROM room_bans b WHERE b.room_id = m.room_id AND b.user_id = ")
        .push_bind(user.as_str())
        .push(")");
}

macro_rules! sql_search {
    ($db:ty, $match_before:literal, $match_after:literal, $query:expr) => {
        #[async_trait::async_trait]
        impl MessageSearch for SqlDirectory<$db> {
            async fn search(&self, request: &SearchRequest<'_>) -> Result<Vec<ChatMessage>, StoreError> {
                let query: fn(&chat_domain::SearchQuery) -> String = $query;
                let mut sql = sqlx::QueryBuilder::<$db>::new(concat!(
                    "SELECT r.name AS room_name, ",
                    message_columns!(),
                    " FROM messages m JOIN rooms r ON r.id = m.room_id WHERE ",
                    $match_before
                ));
                sql.push_bind(query(request.query)).push(concat!(
                    $match_after,
                    " AND m.kind IN ('text', 'image') AND m.deleted_at_ms IS NULL AND r.deleted_at_ms IS NULL"
                ));
                push_scope(&mut sql, request.scope);
                if let Some(author) = request.author {
                    sql.push(" AND m.author_id = ").push_bind(author.as_str());
                }
                if let Some(since) = request.since_ms {
                    sql.push(" AND m.created_at_ms >= ").push_bind(since);
                }
                if let Some(until) = request.until_ms {
                    sql.push(" AND m.created_at_ms < ").push_bind(until);
                }
                if request.images_only {
                    sql.push(" AND m.kind = 'image'");
                }
                if let Some(before) = request.before_id {
                    sql.push(" AND m.id < ").push_bind(before);
                }
                sql.push(" ORDER BY m.id DESC LIMIT ")
                    .push_bind(i64::from(request.limit));
                let rows: Vec<NamedMessageRow> = sql.build_query_as().fetch_all(&self.pool).await?;
                rows.into_iter()
                    .map(|r| r.message.into_message(room_name(&r.room_name)?))
                    .collect()
            }
        }
    };
}

// `message_search` holds each indexed message's words (kept after the commit: see
// `Store::index_for_search`), with a GIN index on them.
sql_search!(
    sqlx::Postgres,
    "m.id IN (SELECT message_id FROM message_search WHERE words @@ websearch_to_tsquery('simple', ",
    "))",
    chat_domain::SearchQuery::websearch
);
sql_search!(
    sqlx::Sqlite,
    "m.id IN (SELECT rowid FROM message_search WHERE message_search MATCH ",
    ")",
    |q| q.fts5()
);
