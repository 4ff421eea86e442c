//! A connection's sender: its sends go upstream in the order the client sent them, and
//! each is answered on the socket with its `ack` or `error`, in the same order.

use crate::actions::propose::prepare;
use crate::auth::Principal;
use crate::error::GatewayError;
use crate::outbox::{Outbox, text};
use crate::queue;
use crate::state::AppState;
use crate::upstream::{GroupSend, MAX_GROUP, Proposal};
use chat_common::telemetry::{MessageTrace, TRACE_TARGET};
use chat_domain::protocol::ServerFrame;
use chat_domain::{ClientMsgId, RoomName};
use std::time::Instant;
use tracing::Instrument;

/// A send or change the reader accepted, waiting for its turn.
pub(super) struct SendRequest {
    pub room: RoomName,
    pub proposal: Proposal,
    pub client_msg_id: ClientMsgId,
    pub received: Instant,
    /// Its trace: the `ws receive` span, the root of the trace (or a child of the
    /// browser's), when the trace is recorded.
    pub trace: MessageTrace,
}

/// Sends in the order the client sent them, so that a person's messages keep their order:
/// whatever has queued goes as one group (up to [`MAX_GROUP`]), and the next group only
/// after this one is answered. Acks come back on the same socket, in the same order.
pub(super) async fn send_loop(
    app: AppState,
    principal: Principal,
    outbox: Outbox,
    mut pending: queue::Receiver<Box<SendRequest>>,
) {
    let metrics = app.metrics().clone();
    let mut requests = Vec::with_capacity(MAX_GROUP);
    while pending.recv_many(&mut requests, MAX_GROUP).await > 0 {
        // An image must be an upload of the sender's, and mentions are resolved: here, and
        // a refused send is answered in its place without going upstream.
        let mut refused = Vec::with_capacity(requests.len());
        for request in &mut requests {
            let check = Box::pin(
                prepare(&app, &principal, &request.room, &mut request.proposal)
                    .instrument(request.trace.span().clone()),
            )
            .await
            .err();
            refused.push(check);
        }
        // Each send's own `grpc client` span, from the batch until its answer, if its trace
        // is recorded; one that is not passes on the `traceparent` that says so.
        let calls: Vec<tracing::Span> = requests
            .iter()
            .map(|r| {
                if r.trace.is_recorded() {
                    tracing::info_span!(target: TRACE_TARGET, parent: r.trace.span(), "grpc client", rpc.method = "send_messages")
                } else {
                    tracing::Span::none()
                }
            })
            .collect();
        let sends = requests
            .iter()
            .zip(&refused)
            .zip(&calls)
            .filter(|((_, refused), _)| refused.is_none())
            .map(|((request, _), call)| GroupSend {
                room: &request.room,
                proposal: &request.proposal,
                client_msg_id: &request.client_msg_id,
                traceparent: request.trace.traceparent_through(call),
            });
        // Boxed like the reader's frame handling: an idle socket holds no room for a call.
        let mut answers = Box::pin(app.upstream().send_group(&principal.author, sends))
            .await
            .into_iter();
        drop(calls);
        for (request, refused) in requests.drain(..).zip(refused) {
            let result = match refused {
                Some(error) => Err(error),
                None => answers.next().unwrap_or_else(|| Err(GatewayError::internal())),
            };
            let frame = match result {
                Ok((event, duplicate)) => {
                    request.trace.span().in_scope(|| {
                        tracing::debug!(room = %event.room(), seq = event.seq(), "send acknowledged");
                    });
                    metrics.acks.inc();
                    metrics.send_seconds.observe(request.received.elapsed().as_secs_f64());
                    ServerFrame::ack(&event, duplicate)
                }
                Err(error) => {
                    metrics.error(error.code);
                    error.to_frame(Some(request.client_msg_id.as_str()))
                }
            };
            outbox.push(text(frame.to_bytes()));
        }
    }
}
