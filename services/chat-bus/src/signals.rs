//! Ephemeral signals between gateways: who is typing, who came online or went offline, who
//! read how far. Unlike [`crate::BusEvent`]s they are never stored, take no `seq` and are
//! not replayed: a gateway that is not listening when one is sent never sees it, and what
//! it stood for expires anyway (a typing indicator after seconds, presence by renewal).
//! That is why they travel on their own channel (Redis Pub/Sub, or an in-process
//! broadcast), not on the message streams that every gateway reads back after a gap.

use bytes::Bytes;
use chat_domain::{RoomName, UserId};

/// What a signal says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalKind {
    /// `user` is typing in `room`.
    Typing,
    /// `user` came online or went offline; `room` is one they belong to.
    Presence,
    /// `user` read `room` up to a seq.
    Read,
}

/// One signal: the frame for the room's members, who it is about, and the room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signal {
    pub kind: SignalKind,
    pub room: RoomName,
    pub user: UserId,
    /// The frame exactly as clients receive it, serialized once by the sender.
    pub payload: Bytes,
}

impl SignalKind {
    fn wire(self) -> u8 {
        match self {
            Self::Typing => b't',
            Self::Presence => b'p',
            Self::Read => b'r',
        }
    }

    fn from_wire(byte: u8) -> Option<Self> {
        match byte {
            b't' => Some(Self::Typing),
            b'p' => Some(Self::Presence),
            b'r' => Some(Self::Read),
            _ => None,
        }
    }
}

impl Signal {
    /// `kind \n room \n user \n payload`: neither a room name nor a user id holds a line
    /// break, and the payload, the last field, may hold anything.
    pub fn encode(&self) -> Vec<u8> {
        let mut wire = Vec::with_capacity(4 + self.room.as_str().len() + self.user.as_str().len() + self.payload.len());
        wire.push(self.kind.wire());
        wire.push(b'\n');
        wire.extend_from_slice(self.room.as_str().as_bytes());
        wire.push(b'\n');
        wire.extend_from_slice(self.user.as_str().as_bytes());
        wire.push(b'\n');
        wire.extend_from_slice(&self.payload);
        wire
    }

    /// `None` for anything [`Self::encode`] did not make.
    pub fn decode(wire: &[u8]) -> Option<Self> {
        let mut fields = wire.splitn(4, |b| *b == b'\n');
        let kind = match fields.next()? {
            [byte] => SignalKind::from_wire(*byte)?,
            _ => return None,
        };
        let room = RoomName::parse(std::str::from_utf8(fields.next()?).ok()?).ok()?;
        let user = UserId::parse(std::str::from_utf8(fields.next()?).ok()?).ok()?;
        let payload = Bytes::copy_from_slice(fields.next()?);
        Some(Self {
            kind,
            room,
            user,
            payload,
        })
    }
}

/// Where a gateway hears the signals every gateway sends (itself included).
#[async_trait::async_trait]
pub trait SignalReader: Send {
    /// Waits for the next signals. Never fails: a broken connection is reconnected inside,
    /// and whatever was sent meanwhile is lost, as an ephemeral signal may be.
    async fn next(&mut self) -> Vec<Signal>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signal_survives_its_wire_form_and_garbage_is_refused() {
        let signal = Signal {
            kind: SignalKind::Typing,
            room: RoomName::parse("lobby").unwrap(),
            user: UserId::parse("u:1").unwrap(),
            payload: Bytes::from_static(b"{\"type\":\"typing\",\n\"x\":1}"),
        };
        assert_eq!(Signal::decode(&signal.encode()), Some(signal));
        for garbage in [
            &b""[..],
            b"t",
            b"x\nlobby\nu:1\n{}",
            b"tt\nlobby\nu:1\n{}",
            b"t\nlobby\nu:1",
        ] {
            assert_eq!(Signal::decode(garbage), None, "{:?}", String::from_utf8_lossy(garbage));
        }
    }
}
