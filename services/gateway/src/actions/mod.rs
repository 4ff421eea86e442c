//! Domain actions that both the HTTP API and the websocket take. Neither layer owns them,
//! so neither imports the other: a websocket join records a membership exactly as
//! `POST /api/v1/rooms` does, and an image send checks its upload exactly as the HTTP
//! publish does.
//!
//! * [`access`]: who may see and do what in a room, asked alike on every path.
//! * [`membership`]: entering and leaving a room, and read markers.
//! * [`mentions`]: who a message's `@username`s name.
//! * [`propose`]: readying a message or change to go upstream (upload check, mentions).
//! * [`uploads`]: whether an upload may be attached by this person.
//! * [`moderation`]: owners' and moderators' actions, committed as room events and told to
//!   every gateway; invite links and direct messages.
//! * [`announce`]: telling every gateway about a change (control events and notices).

pub mod access;
pub mod announce;
pub mod membership;
pub mod mentions;
pub mod moderation;
pub mod propose;
pub mod uploads;
