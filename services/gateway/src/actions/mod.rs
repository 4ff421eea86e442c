//! Domain actions that both the HTTP API and the websocket take. Neither layer owns them,
//! so neither imports the other: a websocket join records a membership exactly as
//! `POST /api/v1/rooms` does, and an image send checks its upload exactly as the HTTP
//! publish does.
//!
//! * [`membership`]: entering and leaving a room, and read markers.
//! * [`uploads`]: whether an upload may be attached by this person.
//! * [`announce`]: telling every gateway about a change (control events and notices).

pub mod announce;
pub mod membership;
pub mod uploads;
