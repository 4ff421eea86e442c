//! Domain types and the v1 wire protocol of Super Channels.
//!
//! # Layout
//! * [`names`]: validated newtypes (`RoomName`, `MessageText`, `ClientMsgId`, `DisplayName`,
//!   `UserId`). Each is parsed once at the edge; holding one means it is valid, and a
//!   refusal ([`NameError`]) carries the protocol's code for it.
//! * [`lookalike`]: the checks that keep a new name from passing for someone else's
//!   (invisible characters, mixed scripts, confusable skeletons).
//! * [`message`]: what a send carries ([`MessageBody`]: text, or an image with a caption)
//!   and a committed message with its [`MessageId`].
//! * [`timeline`]: a room's events (messages and the changes made to them: edits,
//!   deletions, reactions), the rules a change must keep, and the fold that gives a
//!   message's current state.
//! * [`room`]: public and private rooms, roles, bans and mutes: who may see and do what
//!   (the one place access is decided), and the room events moderation commits.
//! * [`search`]: a message search query, checked once, in each backend's dialect, and the
//!   highlighted snippet a result shows.
//! * [`upload`]: upload ids, and what an upload's bytes really are.
//! * [`protocol`]: client frames (parsed with precise error codes) and [`protocol::ServerFrame`],
//!   every frame the server sends.
//! * [`error`]: the stable error codes and websocket close codes of the protocol.
//! * `testing` (feature `testing`): a valid committed message for other crates' tests.

pub mod account;
pub mod error;
pub mod lookalike;
pub mod message;
pub mod names;
pub mod protocol;
pub mod room;
pub mod search;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod timeline;
pub mod upload;

pub use account::{Bio, Email, Password, PersonName, Role, Username};
pub use error::{CloseCode, ErrorCode};
pub use message::{Author, ChatMessage, MessageBody, MessageId, MessageKind, Reaction};
pub use names::{ClientMsgId, DisplayName, Emoji, MessageText, NameError, RoomName, UserId};
pub use room::{AccessError, RoomAccess, RoomAction, RoomEvent, RoomRole, Standing, Visibility};
pub use search::SearchQuery;
pub use timeline::{Change, ChangeError, ChangeEvent, TimelineEvent};
pub use upload::{ImageSize, UploadId};
