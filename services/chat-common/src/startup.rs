//! Start-up in any order: a service waits for each dependency, saying so in the log,
//! instead of exiting because the database or Redis came up a moment later.

use std::future::Future;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Calls `connect` until it succeeds, backing off from 200 ms to 5 s between attempts.
/// Returns `None` if `shutdown` is cancelled first.
pub async fn wait_for<T, E, F, Fut>(dependency: &str, shutdown: &CancellationToken, mut connect: F) -> Option<T>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut backoff = Duration::from_millis(200);
    let mut attempts = 0u32;
    loop {
        match connect().await {
            Ok(value) => {
                if attempts > 0 {
                    tracing::info!(dependency, attempts, "dependency is up");
                }
                return Some(value);
            }
            Err(error) => {
                attempts += 1;
                tracing::warn!(dependency, %error, retry_in_ms = backoff.as_millis() as u64, "waiting for dependency");
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return None,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test(start_paused = true)]
    async fn retries_until_the_dependency_answers() {
        let calls = AtomicU32::new(0);
        let value = wait_for("thing", &CancellationToken::new(), || async {
            match calls.fetch_add(1, Ordering::SeqCst) {
                0..=2 => Err("not yet"),
                n => Ok(n),
            }
        })
        .await;
        assert_eq!(value, Some(3));
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_on_shutdown() {
        let shutdown = CancellationToken::new();
        shutdown.cancel();
        let value: Option<()> = wait_for("thing", &shutdown, || async { Err::<(), _>("down") }).await;
        assert_eq!(value, None);
    }
}
