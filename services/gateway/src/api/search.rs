//! Message search over the rooms the caller may read.

use super::extract::{QueryParams, Session};
use super::schema::{ErrorBody, SearchHas, SearchHit, SearchIn, SearchParams, SearchResults};
use super::{ApiResult, limit, next_cursor, text_param};
use crate::actions::access;
use crate::error::GatewayError;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use chat_domain::search::parse_time;
use chat_domain::{RoomName, SearchQuery, UserId};
use chat_store::SearchRequest;

/// Find messages by their words, newest first, paged by cursor: in your rooms, every public
/// room (`scope=public`) or one room, never a private room you are not in, never a deleted
/// message, and an edited one by its current text. Each result carries a snippet with the
/// words found marked (segments, never HTML).
#[utoipa::path(get, path = "/api/v1/search", tag = "search", params(SearchParams),
    responses((status = 200, body = SearchResults),
        (status = 400, description = "`invalid_query`, `invalid_argument`, `invalid_room`", body = ErrorBody),
        (status = 403, description = "`banned` from the room named", body = ErrorBody),
        (status = 404, description = "the room named does not exist (or is not yours to see)", body = ErrorBody)))]
pub async fn search(
    State(app): State<AppState>,
    Session(principal): Session,
    QueryParams(params): QueryParams<SearchParams>,
) -> ApiResult {
    let query = SearchQuery::parse(params.q.as_deref().unwrap_or(""))?;
    let limit = limit(params.limit)?;
    let room = params.room.as_deref().map(RoomName::parse).transpose()?;
    let author = params
        .author
        .as_deref()
        .map(|a| Ok::<_, GatewayError>(UserId::parse(text_param("author", a)?)?))
        .transpose()?;
    let since_ms = params.since.as_deref().map(parse_time).transpose()?;
    let until_ms = params.until.as_deref().map(parse_time).transpose()?;
    let everywhere = matches!(params.scope.unwrap_or_default(), SearchIn::Public);
    let scope = access::search_scope(&app, &principal, room.as_ref(), everywhere).await?;
    let found = app
        .directory()
        .search(&SearchRequest {
            query: &query,
            scope,
            author: author.as_ref(),
            since_ms,
            until_ms,
            images_only: matches!(params.has, Some(SearchHas::Image)),
            before_id: params.before,
            limit,
        })
        .await?;
    let next_before = next_cursor(&found, limit, |m| m.id.get());
    let results = found
        .iter()
        .map(|m| SearchHit {
            message: m.into(),
            snippet: query.snippet(&m.text),
        })
        .collect();
    Ok(Json(SearchResults { results, next_before }).into_response())
}
