//! Sessions and websocket connections.
//!
//! Each connection binds its TCP socket to a loopback source address of its own choosing
//! (127.0.0.1, 127.0.0.2, …) before connecting. The kernel gives each source address its
//! own ephemeral port range, so one machine can open far more than ~28,000 connections to
//! one gateway port.

use crate::token::{Claims, JwtKey};
use crate::wire::{Frame, WireError};
use http::Uri;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::net::TcpSocket;

pub use crate::wire::Ws;

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("invalid gateway URL {url:?}: {reason}")]
    Url { url: String, reason: &'static str },
    #[error("cannot resolve {host}: {source}")]
    Resolve {
        host: String,
        #[source]
        source: std::io::Error,
    },
    #[error("session request to {url} failed: {source}")]
    SessionHttp {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("session request to {url} answered {status}: {body}")]
    SessionStatus { url: String, status: u16, body: String },
    #[error("cannot bind to source address {addr}: {source}")]
    Bind {
        addr: IpAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("TCP connect to {addr} failed: {source}")]
    Tcp {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("websocket handshake with {url} failed: {source}")]
    Handshake {
        url: String,
        #[source]
        source: Box<WireError>,
    },
    #[error("join of {room} refused: {code}: {message}")]
    JoinRefused {
        room: String,
        code: String,
        message: String,
    },
    #[error("connection closed before {0}")]
    Closed(&'static str),
    #[error("timed out after {0:?} waiting for {1}")]
    Timeout(Duration, &'static str),
}

impl ConnectError {
    /// A short, stable label for counting failures by kind in a report.
    pub fn kind(&self) -> &'static str {
        match self {
            ConnectError::Url { .. } => "url",
            ConnectError::Resolve { .. } => "resolve",
            ConnectError::SessionHttp { .. } | ConnectError::SessionStatus { .. } => "session",
            ConnectError::Bind { .. } => "bind",
            ConnectError::Tcp { source, .. } => match source.raw_os_error() {
                Some(libc::EMFILE) | Some(libc::ENFILE) => "tcp_too_many_open_files",
                Some(libc::EADDRNOTAVAIL) => "tcp_no_ephemeral_port",
                Some(libc::ECONNREFUSED) => "tcp_refused",
                _ => "tcp",
            },
            ConnectError::Handshake { .. } => "handshake",
            ConnectError::JoinRefused { .. } => "join_refused",
            ConnectError::Closed(_) => "closed",
            ConnectError::Timeout(..) => "timeout",
        }
    }
}

/// One gateway, resolved once: where to connect, what to put in the request, and where
/// its HTTP API is.
#[derive(Debug, Clone)]
pub struct Gateway {
    /// As given, for reports.
    pub url: String,
    ws_url: String,
    /// The handshake's `Host` header and request target.
    host_header: String,
    path: String,
    pub addr: SocketAddr,
    pub http_base: String,
}

impl Gateway {
    /// `ws://host:port[/path]` or `http://host:port`; the path defaults to `/ws`.
    pub async fn resolve(url: &str) -> Result<Self, ConnectError> {
        let bad = |reason| ConnectError::Url {
            url: url.into(),
            reason,
        };
        let uri: Uri = url.parse().map_err(|_| bad("not a URL"))?;
        match uri.scheme_str() {
            Some("ws") | Some("http") => {}
            Some("wss") | Some("https") => return Err(bad("TLS is not supported; point it at the plain port")),
            _ => return Err(bad("the scheme must be ws:// or http://")),
        }
        let host = uri.host().ok_or_else(|| bad("no host"))?.to_owned();
        let port = uri.port_u16().unwrap_or(80);
        let path = match uri.path() {
            "" | "/" => "/ws",
            path => path,
        };
        let addr = tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|source| ConnectError::Resolve {
                host: host.clone(),
                source,
            })?
            .find(SocketAddr::is_ipv4)
            .ok_or_else(|| bad("no IPv4 address"))?;
        Ok(Self {
            url: url.into(),
            ws_url: format!("ws://{host}:{port}{path}"),
            host_header: format!("{host}:{port}"),
            path: path.to_owned(),
            addr,
            http_base: format!("http://{host}:{port}"),
        })
    }
}

/// How clients authenticate.
#[derive(Debug, Clone)]
pub enum Auth {
    /// A guest session per client from `POST /api/v1/sessions`.
    Guest,
    /// Tokens minted here, for a gateway that trusts this key.
    Jwt(JwtKey),
}

impl Auth {
    pub fn label(&self) -> &'static str {
        match self {
            Auth::Guest => "guest",
            Auth::Jwt(_) => "jwt",
        }
    }

    /// A bearer token for a client with user id `id` and display name `name`.
    pub async fn token(
        &self,
        http: &reqwest::Client,
        gateway: &Gateway,
        id: &str,
        name: &str,
    ) -> Result<String, ConnectError> {
        match self {
            Auth::Jwt(key) => {
                let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
                Ok(key.mint(&Claims {
                    sub: id.into(),
                    name: name.into(),
                    exp: now + 24 * 3600,
                }))
            }
            Auth::Guest => guest_session(http, gateway, name).await,
        }
    }
}

async fn guest_session(http: &reqwest::Client, gateway: &Gateway, name: &str) -> Result<String, ConnectError> {
    let url = format!("{}/api/v1/sessions", gateway.http_base);
    let response = http
        .post(&url)
        .json(&serde_json::json!({ "name": name }))
        .send()
        .await
        .map_err(|source| ConnectError::SessionHttp {
            url: url.clone(),
            source,
        })?;
    let status = response.status();
    let body = response.text().await.map_err(|source| ConnectError::SessionHttp {
        url: url.clone(),
        source,
    })?;
    let token = (status.as_u16() == 201)
        .then(|| serde_json::from_str::<serde_json::Value>(&body).ok())
        .flatten()
        .and_then(|v| v["token"].as_str().map(str::to_owned));
    token.ok_or(ConnectError::SessionStatus {
        url,
        status: status.as_u16(),
        body: body.chars().take(200).collect(),
    })
}

/// The `i`th of `count` loopback source addresses: 127.0.0.1, 127.0.0.2, …
pub fn source_address(i: usize, count: u8) -> IpAddr {
    let count = usize::from(count.max(1));
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + (i % count) as u8))
}

/// Opens a websocket to `gateway` from `source` with `token` as the bearer, as a
/// well-behaved client does: a handshake the gateway paces away (503 with `Retry-After`) is
/// tried again after the wait it asks for. Callers bound the whole attempt with their
/// connect timeout.
pub async fn open(
    gateway: &Gateway,
    source: IpAddr,
    token: &str,
    read_buffer_bytes: usize,
) -> Result<Ws, ConnectError> {
    loop {
        match open_once(gateway, source, token, read_buffer_bytes).await {
            Err(error) => match error.retry_after() {
                Some(wait) => tokio::time::sleep(wait).await,
                None => return Err(error),
            },
            opened => return opened,
        }
    }
}

impl ConnectError {
    /// The wait a pacing gateway asked for, if this was a paced handshake.
    pub fn retry_after(&self) -> Option<Duration> {
        let ConnectError::Handshake { source, .. } = self else {
            return None;
        };
        let WireError::Refused {
            status: 503,
            retry_after,
        } = source.as_ref()
        else {
            return None;
        };
        Some(Duration::from_secs(retry_after.unwrap_or(1).max(1)))
    }
}

/// One handshake. No `Origin` header: the gateway lets non-browser clients through
/// without one.
async fn open_once(
    gateway: &Gateway,
    source: IpAddr,
    token: &str,
    read_buffer_bytes: usize,
) -> Result<Ws, ConnectError> {
    let socket = TcpSocket::new_v4().map_err(|source_err| ConnectError::Bind {
        addr: source,
        source: source_err,
    })?;
    if gateway.addr.ip().is_loopback() {
        socket
            .bind(SocketAddr::new(source, 0))
            .map_err(|source_err| ConnectError::Bind {
                addr: source,
                source: source_err,
            })?;
    }
    let stream = socket.connect(gateway.addr).await.map_err(|source| ConnectError::Tcp {
        addr: gateway.addr,
        source,
    })?;
    let _ = stream.set_nodelay(true);
    Ws::handshake(
        stream,
        &gateway.host_header,
        &gateway.path,
        Some(token),
        read_buffer_bytes,
    )
    .await
    .map_err(|source| ConnectError::Handshake {
        url: gateway.ws_url.clone(),
        source: Box::new(source),
    })
}

/// Joins `room` and waits for `joined`; returns the room's `last_seq` at the join, the
/// point after which this member expects every message.
pub async fn join(ws: &mut Ws, room: &str, timeout: Duration) -> Result<u64, ConnectError> {
    ws.send_text(&crate::protocol::join(room))
        .await
        .map_err(|_| ConnectError::Closed("joined"))?;
    let wait = async {
        loop {
            while let Some(frame) = ws.next_frame().map_err(|_| ConnectError::Closed("joined"))? {
                let Frame::Text(text) = frame else {
                    if matches!(frame, Frame::Close(_)) {
                        return Err(ConnectError::Closed("joined"));
                    }
                    continue;
                };
                let Ok(frame) = crate::protocol::Incoming::parse(text) else {
                    continue;
                };
                match frame.kind.as_ref() {
                    "joined" => return Ok(frame.last_seq.unwrap_or(0)),
                    "error" => {
                        return Err(ConnectError::JoinRefused {
                            room: room.into(),
                            code: frame.code.unwrap_or_default().into_owned(),
                            message: frame.message.unwrap_or_default().into_owned(),
                        });
                    }
                    _ => {}
                }
            }
            ws.flush_pongs().await.map_err(|_| ConnectError::Closed("joined"))?;
            ws.fill().await.map_err(|_| ConnectError::Closed("joined"))?;
        }
    };
    tokio::time::timeout(timeout, wait)
        .await
        .map_err(|_| ConnectError::Timeout(timeout, "joined"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(status: u16, retry_after: Option<u64>) -> ConnectError {
        ConnectError::Handshake {
            url: "ws://127.0.0.1:1/ws".into(),
            source: Box::new(WireError::Refused { status, retry_after }),
        }
    }

    #[test]
    fn only_a_paced_handshake_is_retried_after_the_wait_it_names() {
        assert_eq!(refused(503, Some(2)).retry_after(), Some(Duration::from_secs(2)));
        assert_eq!(refused(503, None).retry_after(), Some(Duration::from_secs(1)));
        assert_eq!(refused(503, Some(0)).retry_after(), Some(Duration::from_secs(1)));
        assert_eq!(refused(401, Some(2)).retry_after(), None);
        assert_eq!(refused(403, None).retry_after(), None);
    }

    #[tokio::test]
    async fn gateway_urls_default_to_the_ws_path_and_refuse_tls() {
        let g = Gateway::resolve("ws://127.0.0.1:8081").await.unwrap();
        assert_eq!(g.ws_url, "ws://127.0.0.1:8081/ws");
        assert_eq!((g.host_header.as_str(), g.path.as_str()), ("127.0.0.1:8081", "/ws"));
        assert_eq!(g.http_base, "http://127.0.0.1:8081");
        assert_eq!(g.addr, "127.0.0.1:8081".parse().unwrap());
        let g = Gateway::resolve("http://localhost:9000/other").await.unwrap();
        assert_eq!(g.ws_url, "ws://localhost:9000/other");
        assert!(Gateway::resolve("wss://127.0.0.1:1").await.is_err());
        assert!(Gateway::resolve("127.0.0.1:1").await.is_err());
    }

    #[test]
    fn source_addresses_cycle_over_the_loopback_range() {
        assert_eq!(source_address(0, 3), "127.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(source_address(4, 3), "127.0.0.2".parse::<IpAddr>().unwrap());
        assert_eq!(source_address(7, 0), "127.0.0.1".parse::<IpAddr>().unwrap());
    }
}
