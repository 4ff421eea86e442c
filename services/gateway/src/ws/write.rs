//! A connection's writer: queued frames go out in batches, one flush per batch, with a
//! ping every interval, and the close frame with its code at the end.

use crate::outbox::Closer;
use crate::queue;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use bytes::Bytes;
use chat_domain::CloseCode;
use futures::SinkExt;
use futures::stream::SplitSink;
use std::sync::Arc;
use std::time::Duration;

/// At most this many queued frames go out per flush: the library writes its buffer out as
/// it fills anyway, and the writer's own list stays small.
const FRAMES_PER_FLUSH: usize = 64;

/// Writes queued frames, as many as are ready per flush, and the close frame at the end.
/// Pings every `ping_every`, and closes with 4002 a socket that answered nothing (nor sent
/// anything) for `idle_timeout`: at the first ping at least that long after the last thing
/// the reader heard.
pub(super) async fn write_loop(
    mut sink: SplitSink<WebSocket, Message>,
    mut outbound: queue::Receiver<Utf8Bytes>,
    closer: Arc<Closer>,
    frames_out: prometheus_client::metrics::counter::Counter,
    ping_every: Duration,
    idle_timeout: Duration,
) {
    let silent_pings = silent_pings_allowed(ping_every, idle_timeout);
    // The first tick is a period away: a new socket is not pinged at once.
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + ping_every, ping_every);
    let closed = closer.cancelled();
    tokio::pin!(closed);
    let mut batch = Vec::new();
    loop {
        tokio::select! {
            biased;
            _ = &mut closed => break,
            _ = ping.tick() => {
                if closer.unanswered(silent_pings) {
                    closer.close(CloseCode::IdleTimeout);
                    continue;
                }
                if sink.send(Message::Ping(Bytes::new())).await.is_err() {
                    return;
                }
            }
            taken = outbound.recv_many(&mut batch, FRAMES_PER_FLUSH) => {
                if taken == 0 {
                    break;
                }
                frames_out.inc_by(taken as u64);
                for frame in batch.drain(..) {
                    if sink.feed(Message::Text(frame)).await.is_err() {
                        return;
                    }
                }
                if sink.flush().await.is_err() {
                    return;
                }
            }
        }
    }
    let close = closer.code().map_or(
        CloseFrame {
            code: axum::extract::ws::close_code::NORMAL,
            reason: Utf8Bytes::from_static(""),
        },
        |code| CloseFrame {
            code: code.code(),
            reason: Utf8Bytes::from_static(code.reason()),
        },
    );
    let _ = sink.send(Message::Close(Some(close))).await;
    let _ = sink.close().await;
}

/// How many pings may go unanswered before the next tick closes the socket: the ticks are
/// `ping_every` apart, so `n` silent ones since the last thing heard mean at least
/// `n × ping_every` of silence, and the close comes no earlier than `idle_timeout`.
fn silent_pings_allowed(ping_every: Duration, idle_timeout: Duration) -> u32 {
    let periods = idle_timeout.as_millis().div_ceil(ping_every.as_millis().max(1));
    u32::try_from(periods).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::silent_pings_allowed;
    use crate::outbox::Outbox;
    use std::time::Duration;

    #[test]
    fn a_socket_is_presumed_dead_at_the_first_ping_past_the_idle_timeout() {
        let s = Duration::from_secs;
        assert_eq!(silent_pings_allowed(s(30), s(90)), 3);
        assert_eq!(silent_pings_allowed(s(30), s(100)), 4);
        assert_eq!(silent_pings_allowed(s(1), s(2)), 2);

        // Pings at 30, 60, 90 s unanswered: at the ping due at 120 s the socket closes,
        // 90 s or more after the last thing heard (at most a ping period late).
        let (_outbox, _queue, closer) = Outbox::new(1);
        let allowed = silent_pings_allowed(s(30), s(90));
        assert!(!closer.unanswered(allowed));
        assert!(!closer.unanswered(allowed));
        assert!(!closer.unanswered(allowed));
        assert!(closer.unanswered(allowed));
        // Anything heard starts the count again.
        closer.heard();
        assert!(!closer.unanswered(allowed));
    }
}
