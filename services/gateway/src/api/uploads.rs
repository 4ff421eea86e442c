//! Images in and out. Uploads are raw request bodies (any client can send a `File` with
//! `fetch`), limited in size before and while they are read, and typed by sniffing their
//! bytes. They are then decoded within bounds ([`crate::images`]): stored without their
//! metadata, with their size and thumbnails. They are served back with the sniffed type,
//! `nosniff`, and a sandboxing CSP, so no upload can ever run as a page on our origin.

use super::ApiResult;
use super::extract::{PathParams, Session};
use super::schema::{ErrorBody, UploadView};
use crate::actions::access;
use crate::auth::now_ms;
use crate::error::GatewayError;
use crate::images::{ImageError, prepare_off_thread};
use crate::state::AppState;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use chat_domain::message::upload_url;
use chat_domain::upload::{ImageType, THUMBNAIL_WIDTHS, sniff_image};
use chat_domain::{ErrorCode, UploadId};
use chat_store::{Blob, NewThumbnail, NewUpload};

fn too_large(max: usize) -> GatewayError {
    GatewayError::new(
        ErrorCode::PayloadTooLarge,
        format!("uploads are limited to {max} bytes"),
    )
}

/// Upload an image: the request body is the file. PNG, JPEG, GIF or WebP, judged by its
/// bytes; at most `uploads.max_bytes` (5 MiB by default) and 50 megapixels. It is stored
/// without its metadata (a photo's EXIF, with its position, is gone; its orientation is
/// applied), with its size and thumbnails 160, 360 and 720 pixels wide.
#[utoipa::path(post, path = "/api/v1/uploads", tag = "uploads",
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The file's bytes"),
    responses(
        (status = 201, body = UploadView),
        (status = 413, description = "`payload_too_large`: too many bytes, or too many pixels", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: not one of the four types, or not readable as one", body = ErrorBody),
    ))]
pub async fn upload(
    State(app): State<AppState>,
    Session(principal): Session,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    let max = app.settings().uploads.max_bytes;
    // An honest client says how big the file is: refuse before reading a byte of it.
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(too_large(max));
    }
    // Any other client is cut off as soon as it passes the limit.
    let bytes = axum::body::to_bytes(body, max).await.map_err(|_| too_large(max))?;
    let Some(kind) = sniff_image(&bytes) else {
        return Err(GatewayError::new(
            ErrorCode::UnsupportedMediaType,
            "only PNG, JPEG, GIF and WebP images are accepted",
        ));
    };
    let prepared = prepare_off_thread(bytes, kind).await.map_err(|e| match e {
        ImageError::TooLarge => GatewayError::new(ErrorCode::PayloadTooLarge, e.to_string()),
        ImageError::Unreadable(_) => GatewayError::new(ErrorCode::UnsupportedMediaType, e.to_string()),
    })?;
    let upload = NewUpload {
        owner_id: principal.author.id.clone(),
        content_type: prepared.kind.mime().to_owned(),
        bytes: prepared.bytes,
        size: prepared.size,
        thumbnails: prepared
            .thumbnails
            .into_iter()
            .map(|t| NewThumbnail {
                size: t.size,
                content_type: t.kind.mime().to_owned(),
                bytes: t.bytes,
            })
            .collect(),
        created_at_ms: now_ms(),
    };
    let id = app.blobs().put(&upload).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(UploadView {
            id: id.get(),
            url: upload_url(id),
            content_type: upload.content_type,
            size: upload.bytes.len(),
            width: upload.size.width,
            height: upload.size.height,
        }),
    )
        .into_response())
}

/// An uploaded image: yours, someone's avatar, or posted in a room you may read (a
/// deleted message's image is gone). Uploads never change, so they may be cached (privately)
/// for a long time.
#[utoipa::path(get, path = "/api/v1/uploads/{id}", tag = "uploads",
    params(("id" = i64, Path)),
    responses(
        (status = 200, description = "The image", content_type = "image/*", body = Vec<u8>),
        (status = 404, body = ErrorBody),
    ))]
pub async fn download(
    State(app): State<AppState>,
    Session(principal): Session,
    PathParams(id): PathParams<i64>,
) -> ApiResult {
    // An id no upload can have names none.
    let id = UploadId::new(id).map_err(|_| GatewayError::not_found("upload"))?;
    // Yours, an avatar, or posted where you may read; else as if there were none.
    access::may_fetch_upload(&app, &principal, id).await?;
    let blob = app
        .blobs()
        .get(id)
        .await?
        .ok_or_else(|| GatewayError::not_found("upload"))?;
    serve(blob)
}

/// A thumbnail of an uploaded image, `width` pixels wide: one of the widths a message's
/// `attachment.thumbnails` lists, or the 160 an `avatar_url` names. For those widths an
/// image with no such thumbnail (no wider, or uploaded before thumbnails were made) is
/// served itself. Whoever may fetch the image may fetch its thumbnails.
#[utoipa::path(get, path = "/api/v1/uploads/{id}/thumbnails/{width}", tag = "uploads",
    params(("id" = i64, Path), ("width" = u32, Path)),
    responses(
        (status = 200, description = "The thumbnail", content_type = "image/*", body = Vec<u8>),
        (status = 404, body = ErrorBody),
    ))]
pub async fn thumbnail(
    State(app): State<AppState>,
    Session(principal): Session,
    PathParams((id, width)): PathParams<(i64, u32)>,
) -> ApiResult {
    let id = UploadId::new(id).map_err(|_| GatewayError::not_found("upload"))?;
    access::may_fetch_upload(&app, &principal, id).await?;
    let blob = match app.blobs().thumbnail(id, width).await? {
        Some(thumbnail) => Some(thumbnail),
        None if THUMBNAIL_WIDTHS.contains(&width) => app.blobs().get(id).await?,
        None => None,
    };
    serve(blob.ok_or_else(|| GatewayError::not_found("thumbnail"))?)
}

/// An upload's bytes with the headers that keep them inert, and cached: an upload and its
/// thumbnails never change.
fn serve(blob: Blob) -> ApiResult {
    // Only ever served as one of the image types it was sniffed as.
    let kind = ImageType::from_mime(&blob.content_type).ok_or_else(|| GatewayError::not_found("upload"))?;
    let mut response = blob.bytes.into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind.mime()));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=31536000, immutable"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    Ok(response)
}
