//! `loadgen`: flags in, a scenario out, the report written. The work is in the library.

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use loadgen::connect::{Auth, Gateway};
use loadgen::procstat::Watch;
use loadgen::report::OutputPaths;
use loadgen::scenario::{Common, IdleScenario, LoadScenario};
use loadgen::token::JwtKey;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(version, about = "Load generator for Super Channels (protocol v1)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Clients in rooms, some sending at a paced rate: throughput, loss, order, latency.
    Load(LoadArgs),
    /// Many connections held open: how many stay up, and what each costs the server.
    Idle(IdleArgs),
    /// A trace collector (OTLP/gRPC) that only counts spans, until SIGINT or SIGTERM;
    /// then prints `{"requests":…,"spans":…}`.
    OtlpSink(OtlpSinkArgs),
}

#[derive(Args)]
struct OtlpSinkArgs {
    /// Where to listen, as host:port.
    #[arg(long)]
    listen: std::net::SocketAddr,
}

#[derive(Args)]
struct CommonArgs {
    /// A gateway's websocket URL (ws://127.0.0.1:8081); repeat to spread clients over several.
    #[arg(long = "gateway", required = true)]
    gateways: Vec<String>,
    /// Mint HS256 JWTs with this secret instead of creating guest sessions over HTTP.
    #[arg(long, env = "LOADGEN_JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,
    /// Names the output files and the report.
    #[arg(long)]
    name: Option<String>,
    /// A JSON file (the summary and the plot go beside it) or a directory.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Loopback source addresses to connect from (127.0.0.1..=127.0.0.N).
    #[arg(long, default_value_t = 4)]
    source_addrs: u8,
    /// Sessions and handshakes in flight at once while connecting.
    #[arg(long, default_value_t = 64)]
    connect_concurrency: usize,
    /// Per connection: handshake plus join.
    #[arg(long, default_value = "30s", value_parser = humantime_like)]
    connect_timeout: Duration,
    /// Another process to report CPU and RSS for, as NAME=PID (NAME=PID+ adds its children); repeatable.
    #[arg(long = "watch-pid")]
    watch: Vec<String>,
    /// No progress line on stderr.
    #[arg(long)]
    quiet: bool,
}

#[derive(Args)]
struct LoadArgs {
    #[command(flatten)]
    common: CommonArgs,
    #[arg(long, default_value_t = 100)]
    clients: usize,
    #[arg(long, default_value_t = 10)]
    rooms: usize,
    #[arg(long, default_value_t = 1)]
    senders_per_room: usize,
    /// Messages per second per sender.
    #[arg(long, default_value_t = 10.0)]
    rate: f64,
    /// Reactions per second per room, from a member that does not send (0: none).
    #[arg(long, default_value_t = 0.0)]
    reactions_per_room: f64,
    /// Members per room that type (a `typing` frame every 3 s) without sending (0: none).
    #[arg(long, default_value_t = 0)]
    typists_per_room: usize,
    /// The measured window.
    #[arg(long, default_value = "10s", value_parser = humantime_like)]
    duration: Duration,
    #[arg(long, default_value = "2s", value_parser = humantime_like)]
    warmup: Duration,
    #[arg(long, default_value = "10s", value_parser = humantime_like)]
    drain_timeout: Duration,
    /// Unacked sends per sender (the gateway's send_queue is 64).
    #[arg(long, default_value_t = 64)]
    max_in_flight: usize,
    /// Message text length in bytes (at least the stamp, 55).
    #[arg(long, default_value_t = 64)]
    text_bytes: usize,
    /// Per-connection read buffer; it grows for a larger frame. A delivery is one ~300-byte
    /// frame per read, and an idle connection holds its buffer all along.
    #[arg(long, default_value_t = 4096)]
    read_buffer_bytes: usize,
    /// Read the clients that only read through one io_uring (one completion per read, no
    /// system call per delivery) rather than as tokio tasks; `false` for the tokio path.
    /// Without io_uring in the kernel, tokio it is, with a warning in the report.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    receive_ring: bool,
}

#[derive(Args)]
struct IdleArgs {
    #[command(flatten)]
    common: CommonArgs,
    #[arg(long, default_value_t = 1000)]
    connections: usize,
    /// 0: join nothing; otherwise each connection joins one of this many rooms.
    #[arg(long, default_value_t = 0)]
    rooms: usize,
    /// How long to hold the connections once all are attempted.
    #[arg(long, default_value = "5s", value_parser = humantime_like)]
    hold: Duration,
    #[arg(long, default_value_t = 2048)]
    read_buffer_bytes: usize,
}

/// `500ms`, `10s`, `2m` or a bare number of seconds.
fn humantime_like(s: &str) -> Result<Duration, String> {
    let (number, unit) = s
        .find(|c: char| c.is_ascii_alphabetic())
        .map_or((s, "s"), |i| (&s[..i], &s[i..]));
    let value: f64 = number.trim().parse().map_err(|_| format!("not a duration: {s:?}"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        _ => return Err(format!("unknown unit in {s:?} (ms, s, m)")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("{s:?}: {e}"))
}

async fn common(args: CommonArgs, default_name: &str) -> anyhow::Result<(Common, Option<PathBuf>)> {
    let mut gateways = Vec::new();
    for url in &args.gateways {
        gateways.push(
            Gateway::resolve(url)
                .await
                .with_context(|| format!("failed to use gateway {url}"))?,
        );
    }
    let watch = args
        .watch
        .iter()
        .map(|w| Watch::parse(w))
        .collect::<Result<Vec<_>, _>>()
        .context("failed to read --watch-pid")?;
    let auth = match args.jwt_secret {
        Some(secret) if !secret.is_empty() => Auth::Jwt(JwtKey::new(secret.as_bytes())),
        _ => Auth::Guest,
    };
    Ok((
        Common {
            name: args.name.unwrap_or_else(|| default_name.into()),
            gateways,
            auth,
            source_addrs: args.source_addrs,
            connect_concurrency: args.connect_concurrency,
            connect_timeout: args.connect_timeout,
            watch,
            progress: !args.quiet,
        },
        args.out,
    ))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Load(args) => {
            let (common, out) = common(args.common, "load").await?;
            let scenario = LoadScenario {
                common,
                clients: args.clients,
                rooms: args.rooms,
                senders_per_room: args.senders_per_room,
                rate_per_sender: args.rate,
                reactions_per_room: args.reactions_per_room,
                typists_per_room: args.typists_per_room,
                warmup: args.warmup,
                duration: args.duration,
                drain_timeout: args.drain_timeout,
                max_in_flight: args.max_in_flight,
                text_bytes: args.text_bytes,
                read_buffer_bytes: args.read_buffer_bytes,
                receive_ring: args.receive_ring,
            };
            let report = loadgen::run::run_load(&scenario).await.context("load run failed")?;
            print!("{}", report.summary());
            if let Some(out) = out {
                let paths = OutputPaths::new(&out, &report.name);
                report.write(&paths).context("failed to write the report")?;
                eprintln!("report: {}", paths.json.display());
            }
        }
        Command::Idle(args) => {
            let (common, out) = common(args.common, "idle").await?;
            let scenario = IdleScenario {
                common,
                connections: args.connections,
                rooms: args.rooms,
                hold: args.hold,
                read_buffer_bytes: args.read_buffer_bytes,
            };
            let report = loadgen::idle::run_idle(&scenario).await.context("idle run failed")?;
            print!("{}", report.summary());
            if let Some(out) = out {
                let paths = OutputPaths::new(&out, &report.name);
                report.write(&paths).context("failed to write the report")?;
                eprintln!("report: {}", paths.json.display());
            }
        }
        Command::OtlpSink(args) => {
            let listener = tokio::net::TcpListener::bind(args.listen)
                .await
                .with_context(|| format!("cannot listen on {}", args.listen))?;
            let counts = std::sync::Arc::new(loadgen::otlp_sink::Counts::default());
            let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            let stop = async move {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = terminate.recv() => {}
                }
            };
            loadgen::otlp_sink::serve(listener, counts.clone(), stop).await?;
            println!("{}", serde_json::to_string(&counts.totals())?);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_a_unit_or_seconds() {
        assert_eq!(humantime_like("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(humantime_like("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(humantime_like("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(humantime_like("1.5"), Ok(Duration::from_millis(1500)));
        assert!(humantime_like("ten").is_err());
        assert!(humantime_like("3h").is_err());
    }

    #[test]
    fn the_cli_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
