//! The websocket client side of RFC 6455, just as much of it as the load generator needs,
//! written for the cost of a delivery rather than for generality.
//!
//! Why our own: in the big room the generator reads 100,000 frames a second, and through
//! tokio-tungstenite each one cost a zeroed read buffer, a split of a `BytesMut`, waker
//! juggling between the sink and the stream halves and an owned `Message`: about half of
//! the generator's user time (docs/benchmarks.md, "The load generator"). Here a frame is a
//! slice of one reusable buffer, parsed in place; the bytes after the handshake's response
//! stay in that buffer, so nothing the server sent early is lost.
//!
//! What it does not do: TLS, extensions (permessage-deflate is never offered), and frames
//! from a client (a server's frames are unmasked; ours are masked, as the RFC requires).

use base64::Engine;
use sha1::Digest;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The largest frame accepted from the server: far above any protocol v1 frame, and a
/// bound on what a broken server can make the generator hold.
pub const MAX_FRAME: usize = 16 * 1024 * 1024;
/// The largest handshake response read before giving up on it.
const MAX_RESPONSE_HEAD: usize = 16 * 1024;
const ACCEPT_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

const OP_CONTINUATION: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error("the server answered the handshake with {status}")]
    Refused {
        status: u16,
        /// Its `Retry-After`, in seconds, if it sent one that parses.
        retry_after: Option<u64>,
    },
    #[error("malformed handshake response: {0}")]
    BadHandshake(&'static str),
    #[error("protocol violation: {0}")]
    Protocol(&'static str),
    #[error("the connection closed")]
    Eof,
}

/// One frame, or a whole fragmented message, read from the server.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    Text(&'a [u8]),
    Binary(&'a [u8]),
    /// The close code, if the frame carried one.
    Close(Option<u16>),
    /// Pings (already answered by the next [`Ws::flush_pongs`]) and pongs.
    Control,
}

/// A websocket client connection over a TCP stream.
pub struct Ws {
    stream: TcpStream,
    frames: Frames,
    out: Vec<u8>,
}

/// What a connection has read and not yet handed out, apart from its socket: the load
/// generator's receive-only clients read theirs through an io_uring
/// (`run::ring`) and feed the bytes here with [`Frames::push`].
pub struct Frames {
    /// Bytes read and not yet parsed are `buf[start..end]`.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// The opcode of a fragmented message being put together, whose bytes so far are in
    /// `assembled`.
    fragments: Option<u8>,
    assembled: Vec<u8>,
    /// Pongs owed, as whole frames ready to write.
    pongs: Vec<u8>,
    /// Each outgoing frame's mask comes from this xorshift state.
    mask_state: u64,
}

impl Ws {
    /// The opening handshake on a connected stream. `host` is the `Host` header's value,
    /// `path` the request target; `bearer`, if given, goes in `Authorization`.
    pub async fn handshake(
        mut stream: TcpStream,
        host: &str,
        path: &str,
        bearer: Option<&str>,
        read_buffer_bytes: usize,
    ) -> Result<Self, WireError> {
        let random = uuid::Uuid::new_v4().into_bytes();
        let key = base64::engine::general_purpose::STANDARD.encode(random);
        let mut request = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        );
        if let Some(token) = bearer {
            request.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).await?;

        let mut head = vec![0u8; MAX_RESPONSE_HEAD];
        let mut end = 0;
        let head_len = loop {
            if let Some(at) = find(&head[..end], b"\r\n\r\n") {
                break at + 4;
            }
            if end == MAX_RESPONSE_HEAD {
                return Err(WireError::BadHandshake("response head too long"));
            }
            let n = stream.read(&mut head[end..]).await?;
            if n == 0 {
                return Err(WireError::Eof);
            }
            end += n;
        };
        check_response(&head[..head_len], &key)?;
        // What came after the head is the first frames: it moves to the connection's own
        // buffer, sized for the connection's life rather than for the handshake.
        let early = &head[head_len..end];
        let mut buf = vec![0u8; read_buffer_bytes.max(early.len()).max(16)];
        buf[..early.len()].copy_from_slice(early);
        let seed = u64::from_le_bytes(random[..8].try_into().expect("16 bytes")) | 1;
        Ok(Self {
            stream,
            frames: Frames {
                end: early.len(),
                buf,
                start: 0,
                fragments: None,
                assembled: Vec::new(),
                pongs: Vec::new(),
                mask_state: seed,
            },
            out: Vec::new(),
        })
    }

    /// The socket and what was read from it, apart: for a reader other than tokio.
    pub fn into_parts(self) -> (TcpStream, Frames) {
        (self.stream, self.frames)
    }

    /// What was read and not yet handed out.
    pub fn frames(&mut self) -> &mut Frames {
        &mut self.frames
    }

    /// Reads once from the socket into the buffer: how many bytes came. Cancel-safe (one
    /// `read`), so it can stand in a `select!`. An end of stream is [`WireError::Eof`].
    pub async fn fill(&mut self) -> Result<usize, WireError> {
        let n = self.stream.read(self.frames.spare()?).await?;
        if n == 0 {
            return Err(WireError::Eof);
        }
        self.frames.end += n;
        delayed_ack(self.stream.as_fd());
        Ok(n)
    }

    /// The next whole frame read, if one is there: see [`Frames::next_frame`].
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>, WireError> {
        self.frames.next_frame()
    }

    /// Writes the pongs owed, if any.
    pub async fn flush_pongs(&mut self) -> Result<(), WireError> {
        if !self.frames.pongs.is_empty() {
            self.stream.write_all(&self.frames.pongs).await?;
            self.frames.pongs.clear();
        }
        Ok(())
    }

    /// Sends one text frame.
    pub async fn send_text(&mut self, text: &str) -> Result<(), WireError> {
        let mask = self.frames.next_mask();
        self.out.clear();
        encode(&mut self.out, OP_TEXT, text.as_bytes(), mask);
        self.stream.write_all(&self.out).await?;
        Ok(())
    }

    /// Sends a close frame (1000, normal closure). The caller bounds the wait.
    pub async fn close(&mut self) -> Result<(), WireError> {
        self.out = self.frames.close_frame();
        self.stream.write_all(&self.out).await?;
        Ok(())
    }
}

impl Frames {
    /// The free end of the buffer, after moving a partial frame to the front or growing
    /// the buffer for a large one: where the next read goes.
    fn spare(&mut self) -> Result<&mut [u8], WireError> {
        if self.start == self.end {
            (self.start, self.end) = (0, 0);
        } else if self.end == self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                (self.start, self.end) = (0, self.end - self.start);
            } else if self.buf.len() >= MAX_FRAME + 14 {
                return Err(WireError::Protocol("frame too large"));
            } else {
                self.buf.resize((self.buf.len() * 2).min(MAX_FRAME + 14), 0);
            }
        }
        Ok(&mut self.buf[self.end..])
    }

    /// Appends bytes read from the socket elsewhere.
    pub fn push(&mut self, mut bytes: &[u8]) -> Result<(), WireError> {
        while !bytes.is_empty() {
            let spare = self.spare()?;
            let n = spare.len().min(bytes.len());
            spare[..n].copy_from_slice(&bytes[..n]);
            self.end += n;
            bytes = &bytes[n..];
        }
        Ok(())
    }

    /// Pongs owed, as whole frames ready to write; [`Frames::pongs_sent`] once written.
    pub fn pongs(&self) -> &[u8] {
        &self.pongs
    }

    pub fn pongs_sent(&mut self) {
        self.pongs.clear();
    }

    /// A close frame (1000, normal closure), masked.
    pub fn close_frame(&mut self) -> Vec<u8> {
        let mask = self.next_mask();
        let mut out = Vec::with_capacity(8);
        encode(&mut out, OP_CLOSE, &1000u16.to_be_bytes(), mask);
        out
    }

    /// The next whole frame in the buffer, if one is there. A ping is answered by queueing
    /// its pong, which [`Ws::flush_pongs`] or the caller writes ([`Frames::pongs`]).
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>, WireError> {
        loop {
            let Some(header) = parse_header(&self.buf[self.start..self.end])? else {
                return Ok(None);
            };
            let payload = self.start + header.header_len..self.start + header.header_len + header.len;
            self.start = payload.end;
            match header.opcode {
                OP_TEXT | OP_BINARY => {
                    if self.fragments.is_some() {
                        return Err(WireError::Protocol("a new message inside a fragmented one"));
                    }
                    if header.fin {
                        return Ok(Some(data(header.opcode, &self.buf[payload])));
                    }
                    self.fragments = Some(header.opcode);
                    self.assembled.clear();
                    self.assembled.extend_from_slice(&self.buf[payload]);
                }
                OP_CONTINUATION => {
                    let Some(opcode) = self.fragments else {
                        return Err(WireError::Protocol("a continuation with no message"));
                    };
                    if self.assembled.len() + payload.len() > MAX_FRAME {
                        return Err(WireError::Protocol("message too large"));
                    }
                    self.assembled.extend_from_slice(&self.buf[payload]);
                    if header.fin {
                        self.fragments = None;
                        return Ok(Some(data(opcode, &self.assembled)));
                    }
                }
                OP_CLOSE => {
                    let body = &self.buf[payload];
                    let code = (body.len() >= 2).then(|| u16::from_be_bytes([body[0], body[1]]));
                    return Ok(Some(Frame::Close(code)));
                }
                OP_PING => {
                    let mask = self.next_mask();
                    encode(&mut self.pongs, OP_PONG, &self.buf[payload], mask);
                    return Ok(Some(Frame::Control));
                }
                OP_PONG => return Ok(Some(Frame::Control)),
                _ => return Err(WireError::Protocol("unknown opcode")),
            }
        }
    }

    fn next_mask(&mut self) -> [u8; 4] {
        // xorshift64: the RFC asks for unpredictable masks against proxy cache poisoning;
        // a seed from the handshake's random bytes is plenty for a load generator.
        let mut x = self.mask_state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.mask_state = x;
        (x as u32).to_le_bytes()
    }
}

/// A whole text or binary message as a [`Frame`].
fn data(opcode: u8, bytes: &[u8]) -> Frame<'_> {
    if opcode == OP_TEXT {
        Frame::Text(bytes)
    } else {
        Frame::Binary(bytes)
    }
}

/// A frame header: where the payload starts and how long it is.
#[derive(Debug, PartialEq, Eq)]
struct Header {
    fin: bool,
    opcode: u8,
    header_len: usize,
    len: usize,
}

/// The header of the frame at the start of `bytes`, when the whole frame is there.
fn parse_header(bytes: &[u8]) -> Result<Option<Header>, WireError> {
    if bytes.len() < 2 {
        return Ok(None);
    }
    let (b0, b1) = (bytes[0], bytes[1]);
    if b0 & 0x70 != 0 {
        return Err(WireError::Protocol("reserved bits set with no extension"));
    }
    if b1 & 0x80 != 0 {
        return Err(WireError::Protocol("a masked frame from the server"));
    }
    let opcode = b0 & 0x0F;
    let fin = b0 & 0x80 != 0;
    let (header_len, len) = match b1 & 0x7F {
        126 => {
            if bytes.len() < 4 {
                return Ok(None);
            }
            (4, usize::from(u16::from_be_bytes([bytes[2], bytes[3]])))
        }
        127 => {
            if bytes.len() < 10 {
                return Ok(None);
            }
            let len = u64::from_be_bytes(bytes[2..10].try_into().expect("8 bytes"));
            (10, usize::try_from(len).unwrap_or(usize::MAX))
        }
        n => (2, usize::from(n)),
    };
    if len > MAX_FRAME {
        return Err(WireError::Protocol("frame too large"));
    }
    if opcode >= OP_CLOSE && (!fin || len > 125) {
        return Err(WireError::Protocol("a fragmented or long control frame"));
    }
    if bytes.len() < header_len + len {
        return Ok(None);
    }
    Ok(Some(Header {
        fin,
        opcode,
        header_len,
        len,
    }))
}

/// Appends one whole client frame (FIN set, masked with `mask`) to `out`.
fn encode(out: &mut Vec<u8>, opcode: u8, payload: &[u8], mask: [u8; 4]) {
    out.push(0x80 | opcode);
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n if n <= usize::from(u16::MAX) => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
}

/// Checks a handshake response's head: `101` with the `Sec-WebSocket-Accept` our key asks
/// for. Any other status is [`WireError::Refused`], with its `Retry-After`.
fn check_response(head: &[u8], key: &str) -> Result<(), WireError> {
    let head = std::str::from_utf8(head).map_err(|_| WireError::BadHandshake("not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or(WireError::BadHandshake("no status"))?;
    let header = |name: &str| {
        head.split("\r\n").skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    };
    if status != 101 {
        return Err(WireError::Refused {
            status,
            retry_after: header("retry-after").and_then(|v| v.parse().ok()),
        });
    }
    let expected = {
        let mut sha = sha1::Sha1::new();
        sha.update(key.as_bytes());
        sha.update(ACCEPT_GUID.as_bytes());
        base64::engine::general_purpose::STANDARD.encode(sha.finalize())
    };
    if header("sec-websocket-accept") != Some(expected.as_str()) {
        return Err(WireError::BadHandshake("wrong Sec-WebSocket-Accept"));
    }
    if header("sec-websocket-extensions").is_some() {
        return Err(WireError::BadHandshake("an extension we did not offer"));
    }
    Ok(())
}

/// Lets the kernel delay the ACK of what was just read (`TCP_QUICKACK` off), as most
/// clients' stacks do, so that it goes with the next read's, once for every two segments
/// or so. Linux otherwise ACKs a small pushed segment as soon as a read empties the queue:
/// one ACK per delivery, whose sending and whose processing at the gateway's socket
/// both ran on the generator's CPU (38 % of it in the big room). Off again after the
/// delayed-ACK timer fires, hence after every read. The gateway sends with `TCP_NODELAY`,
/// so no send of its waits on these ACKs. Measured in docs/benchmarks.md: 7.6 against
/// 8.1-8.6 CPU-s per million deliveries in the big room, the gateways' cost unchanged.
#[allow(unsafe_code)]
pub fn delayed_ack(socket: BorrowedFd<'_>) {
    let off: libc::c_int = 0;
    // SAFETY: a valid socket descriptor, and a pointer to an int that outlives the call.
    unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_QUICKACK,
            (&raw const off).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests;
