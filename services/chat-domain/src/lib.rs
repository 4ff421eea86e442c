//! Domain types and the v1 wire protocol of Super Channels.
//!
//! # Layout
//! * [`names`]: validated newtypes (`RoomName`, `MessageText`, `ClientMsgId`, `DisplayName`,
//!   `UserId`). Each is parsed once at the edge; holding one means it is valid.
//! * [`message`]: a stored chat message and its one JSON serialization, shared by every
//!   path that delivers it (live fan-out, history, gap fill).
//! * [`protocol`]: client frames (parsed with precise error codes) and server frames.
//! * [`error`]: the stable error codes and websocket close codes of the protocol.

pub mod account;
pub mod error;
pub mod message;
pub mod names;
pub mod protocol;
pub mod upload;

pub use account::{Bio, Email, Password, PersonName, Role, Username};
pub use error::{CloseCode, ErrorCode};
pub use message::{Author, ChatMessage, MessageKind};
pub use names::{ClientMsgId, DisplayName, MessageText, NameError, RoomName, UserId};
