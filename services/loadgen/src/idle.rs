//! An idle run: open many connections, hold them, count what stayed open, and measure what
//! they cost the watched server in memory.
//!
//! With guest sessions, all connections share one session: 100,000 guest sessions would
//! take longer to create than to connect (the gateway's `max_connections_per_user` must
//! then allow them). With `--jwt-secret` each connection is a user of its own, minted
//! locally, as in production.

use crate::connect::{self, ConnectError};
use crate::monitor::{Counters, Monitor, Phase};
use crate::report::{IdleConfig, IdleProcess, IdleReport};
use crate::run::{RunError, run_id};
use crate::scenario::IdleScenario;
use crate::wire::Frame;
use futures::StreamExt;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub async fn run_idle(scenario: &IdleScenario) -> Result<IdleReport, RunError> {
    scenario.validate()?;
    let common = &scenario.common;
    let open_files_limit = crate::procstat::raise_open_files_limit();
    let monitor = Monitor::new(&common.watch, scenario.connections);
    let monitor_stop = CancellationToken::new();
    let monitor_task = monitor.spawn(common.progress, monitor_stop.clone());
    let started_at = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let id = run_id();

    let http = reqwest::Client::new();
    let token = common
        .auth
        .token(&http, &common.gateways[0], &format!("lg:{id}:idle"), "lg-idle")
        .await
        .map_err(|first| RunError::Setup {
            failed: scenario.connections,
            total: scenario.connections,
            first,
        })?;

    // The window opens before the first connection: RSS growth is the connections' cost.
    monitor.open_window();
    let stop = CancellationToken::new();
    let holders = TaskTracker::new();
    let errors: Mutex<BTreeMap<String, u64>> = Mutex::new(BTreeMap::new());
    let connect_started = Instant::now();
    futures::stream::iter(0..scenario.connections)
        .for_each_concurrent(common.connect_concurrency, |i| {
            let gateway = &common.gateways[i % common.gateways.len()];
            let (token, monitor, errors, holders, stop, id, http) =
                (&token, &monitor, &errors, &holders, &stop, &id, &http);
            async move {
                let attempt = async {
                    let source = connect::source_address(i, common.source_addrs);
                    let own_token = match &common.auth {
                        crate::connect::Auth::Jwt(_) => Some(
                            common
                                .auth
                                .token(http, gateway, &format!("lg:{id}:idle:{i}"), "lg-idle")
                                .await?,
                        ),
                        crate::connect::Auth::Guest => None,
                    };
                    let token = own_token.as_deref().unwrap_or(token);
                    let mut ws = connect::open(gateway, source, token, scenario.read_buffer_bytes).await?;
                    if scenario.rooms > 0 {
                        connect::join(
                            &mut ws,
                            &format!("lg-{id}-{}", i % scenario.rooms),
                            common.connect_timeout,
                        )
                        .await?;
                    }
                    Ok::<_, ConnectError>(ws)
                };
                match tokio::time::timeout(common.connect_timeout, attempt).await {
                    Ok(Ok(ws)) => {
                        Counters::add(&monitor.counters.connected, 1);
                        Counters::add(&monitor.counters.open, 1);
                        holders.spawn(hold(ws, monitor.clone(), stop.clone()));
                    }
                    Ok(Err(e)) => {
                        Counters::add(&monitor.counters.failed, 1);
                        *errors.lock().expect("not poisoned").entry(e.kind().into()).or_default() += 1;
                    }
                    Err(_) => {
                        Counters::add(&monitor.counters.failed, 1);
                        *errors
                            .lock()
                            .expect("not poisoned")
                            .entry("timeout".into())
                            .or_default() += 1;
                    }
                }
            }
        })
        .await;
    let connect_seconds = connect_started.elapsed().as_secs_f64();
    monitor.set_phase(Phase::Hold);
    let hold_started = Instant::now();
    tokio::time::sleep(scenario.hold).await;
    let hold_seconds = hold_started.elapsed().as_secs_f64();
    let open_at_end = monitor.counters.open.load(Ordering::Relaxed) as usize;
    monitor.close_window();
    monitor.set_phase(Phase::Done);

    stop.cancel();
    holders.close();
    let _ = tokio::time::timeout(Duration::from_secs(10), holders.wait()).await;
    monitor_stop.cancel();
    let _ = monitor_task.await;

    let opened = monitor.counters.connected.load(Ordering::Relaxed) as usize;
    let failed = monitor.counters.failed.load(Ordering::Relaxed) as usize;
    let wall = connect_seconds + hold_seconds;
    let processes: Vec<IdleProcess> = monitor
        .trackers
        .lock()
        .expect("not poisoned")
        .iter()
        .map(|t| {
            let process = t.report(wall, 0);
            let growth = process.rss_end_bytes as f64 - process.rss_start_bytes as f64;
            let measured = open_at_end > 0 && process.error.is_none();
            IdleProcess {
                rss_per_connection_bytes: measured.then(|| per_connection(growth, open_at_end, 1)),
                rss_per_gateway_share_bytes: (measured && common.gateways.len() > 1)
                    .then(|| per_connection(growth, open_at_end, common.gateways.len())),
                process,
            }
        })
        .collect();
    let errors = errors.into_inner().expect("not poisoned");
    let mut warnings = Vec::new();
    if errors.contains_key("tcp_too_many_open_files") {
        warnings.push(format!(
            "this process ran out of file descriptors (limit {open_files_limit}): raise `ulimit -n`"
        ));
    }
    if errors.contains_key("tcp_no_ephemeral_port") {
        warnings.push("ephemeral ports ran out: use more --source-addrs".into());
    }
    if open_at_end < opened {
        warnings.push(format!("{} connections closed during the hold", opened - open_at_end));
    }
    Ok(IdleReport {
        kind: "idle",
        name: common.name.clone(),
        started_at,
        config: IdleConfig {
            gateways: common.gateways.iter().map(|g| g.url.clone()).collect(),
            auth: common.auth.label(),
            connections: scenario.connections,
            rooms: scenario.rooms,
            hold_seconds: scenario.hold.as_secs_f64(),
            source_addrs: common.source_addrs,
            read_buffer_bytes: scenario.read_buffer_bytes,
        },
        requested: scenario.connections,
        opened,
        failed,
        errors,
        open_at_end,
        connect_seconds,
        connects_per_second: crate::stats::per_second(opened as u64, connect_seconds),
        hold_seconds,
        processes,
        warnings,
    })
}

/// Keeps one connection open (answering pings) until `stop` or until the server ends it.
async fn hold(mut ws: connect::Ws, monitor: Arc<Monitor>, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => {
                let _ = tokio::time::timeout(Duration::from_secs(1), ws.close()).await;
                break;
            }
            read = ws.fill() => {
                if read.is_err() || !answer(&mut ws).await {
                    break;
                }
            }
        }
    }
    monitor.counters.open.fetch_sub(1, Ordering::Relaxed);
}

/// Takes the frames read so far and answers their pings: false once the server closed
/// or broke the protocol.
async fn answer(ws: &mut connect::Ws) -> bool {
    loop {
        match ws.next_frame() {
            Ok(Some(Frame::Close(_))) | Err(_) => return false,
            Ok(Some(_)) => {}
            Ok(None) => return ws.flush_pongs().await.is_ok(),
        }
    }
}

/// A process's RSS growth per connection, to a tenth of a byte, when the connections were
/// spread evenly over `gateways` gateways and the process held one gateway's share.
fn per_connection(growth_bytes: f64, connections: usize, gateways: usize) -> f64 {
    let share = connections as f64 / gateways as f64;
    (growth_bytes / share * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::per_connection;

    #[test]
    fn a_gateways_growth_is_divided_by_its_own_share_of_the_connections() {
        // 15,000 connections over two gateways: each holds 7,500.
        assert_eq!(per_connection(7_500.0 * 4096.0, 15_000, 2), 4096.0);
        assert_eq!(per_connection(7_500.0 * 4096.0, 15_000, 1), 2048.0);
        assert_eq!(per_connection(1000.0, 3, 1), 333.3);
    }
}
