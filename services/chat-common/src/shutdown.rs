//! One shutdown signal for a whole process: every server, websocket task and worker loop
//! holds a child of the same token and stops when it is cancelled.

pub use tokio_util::sync::CancellationToken;

/// Cancels `token` on ctrl-c or SIGTERM. Returns at once; the watching runs in a task.
pub fn cancel_on_signal(token: CancellationToken) {
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            _ = ctrl_c => {}
            _ = term => {}
            _ = token.cancelled() => return,
        }
        tracing::info!("shutdown signal received");
        token.cancel();
    });
}
