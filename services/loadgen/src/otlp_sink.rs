//! A trace collector that only counts: what `scripts/bench.sh` points the services at to
//! measure what tracing costs them, with every span exported over OTLP/gRPC as in
//! production, without a real collector's own CPU on the same two cores.

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::net::TcpListener;

/// What the sink has received so far.
#[derive(Debug, Default)]
pub struct Counts {
    requests: AtomicU64,
    spans: AtomicU64,
}

/// [`Counts`] read at one moment, as the sink reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Totals {
    pub requests: u64,
    pub spans: u64,
}

impl Counts {
    pub fn totals(&self) -> Totals {
        Totals {
            requests: self.requests.load(Ordering::Relaxed),
            spans: self.spans.load(Ordering::Relaxed),
        }
    }
}

struct Sink(Arc<Counts>);

#[tonic::async_trait]
impl TraceService for Sink {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let spans: usize = request
            .get_ref()
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum();
        self.0.requests.fetch_add(1, Ordering::Relaxed);
        self.0.spans.fetch_add(spans as u64, Ordering::Relaxed);
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

/// Serves OTLP/gRPC trace exports on `listener`, counting into `counts`, until `shutdown`
/// completes.
pub async fn serve(
    listener: TcpListener,
    counts: Arc<Counts>,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let incoming = futures::stream::unfold(listener, |listener| async move {
        let accepted = listener.accept().await.map(|(stream, _)| stream);
        Some((accepted, listener))
    });
    tonic::transport::Server::builder()
        .add_service(TraceServiceServer::new(Sink(counts)))
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

    fn request(spans_per_scope: &[usize]) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: spans_per_scope
                    .iter()
                    .map(|n| ScopeSpans {
                        spans: vec![Span::default(); *n],
                        ..ScopeSpans::default()
                    })
                    .collect(),
                ..ResourceSpans::default()
            }],
        }
    }

    #[tokio::test]
    async fn it_counts_every_span_of_every_export() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let counts = Arc::new(Counts::default());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, counts.clone(), async {
            let _ = stopped.await;
        }));
        let mut client = TraceServiceClient::connect(format!("http://{addr}")).await.unwrap();
        client.export(request(&[2, 3])).await.unwrap();
        client.export(request(&[0])).await.unwrap();
        assert_eq!(counts.totals(), Totals { requests: 2, spans: 5 });
        stop.send(()).unwrap();
        server.await.unwrap().unwrap();
    }
}
