//! A connection's writer: queued frames go out in batches, one flush per batch, with a
//! ping every interval, and the close frame with its code at the end.

use crate::outbox::Closer;
use crate::queue;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use bytes::Bytes;
use futures::SinkExt;
use futures::stream::SplitSink;
use std::sync::Arc;

/// At most this many queued frames go out per flush: the library writes its buffer out as
/// it fills anyway, and the writer's own list stays small.
const FRAMES_PER_FLUSH: usize = 64;

/// Writes queued frames, as many as are ready per flush, and the close frame at the end.
pub(super) async fn write_loop(
    mut sink: SplitSink<WebSocket, Message>,
    mut outbound: queue::Receiver<Utf8Bytes>,
    closer: Arc<Closer>,
    frames_out: prometheus_client::metrics::counter::Counter,
    ping_every: std::time::Duration,
) {
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
