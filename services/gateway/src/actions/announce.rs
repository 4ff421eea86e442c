//! Telling every gateway (this one included) about a change, through the bus: control
//! events for who may see what, and notices for what members must be shown at once.

use crate::control::Control;
use crate::state::AppState;
use bytes::Bytes;
use chat_bus::{BusEvent, EventKind};
use chat_domain::RoomName;
use std::time::Duration;

/// Puts a notice or control event on the bus, for every gateway (this one included).
pub async fn publish_unsequenced(app: &AppState, kind: EventKind, room: RoomName, payload: Bytes) {
    publish(app, BusEvent::unsequenced(kind, room, payload)).await;
}

/// Puts an event on the bus, with a few quick retries; after that the loss is logged: the
/// database already holds the change. What a notice would have shown appears on the next
/// history read; a room event's seq is caught up by every gateway's repair sweep.
pub async fn publish(app: &AppState, event: BusEvent) {
    let kind = event.kind;
    let event = [event];
    for attempt in 1..=3 {
        match app.bus().publish(&event).await {
            Ok(()) => return,
            Err(error) if attempt < 3 => {
                tracing::warn!(%error, attempt, "publishing an event failed; retrying");
                tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
            }
            Err(error) => tracing::error!(%error, ?kind, "publishing an event failed; dropped"),
        }
    }
}

/// Tells every gateway about a change in who may see what.
pub async fn announce(app: &AppState, control: Control) {
    publish_unsequenced(app, control.kind(), control.room().clone(), control.to_json()).await;
}
