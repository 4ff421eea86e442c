//! `gateway`: the websocket gateway of the scaled topology.

use anyhow::Context;
use chat_bus::redis_streams::RedisStreamsBus;
use chat_common::shutdown::{CancellationToken, cancel_on_signal};
use chat_common::startup::wait_for;
use clap::Parser;
use gateway::{Gateway, settings::Settings};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Parser)]
#[command(version, about = "Super Channels websocket gateway")]
struct Args {
    /// A TOML file layered over the built-in defaults; `SC_*` environment variables win over it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Ask a running instance's `/readyz` and exit 0 if it is ready (a container health check).
    #[arg(long)]
    probe_ready: bool,
    /// Print the effective settings (defaults, file, environment) as TOML, secrets masked,
    /// and exit.
    #[arg(long)]
    print_config: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let settings = Settings::load(args.config.as_deref()).context("failed to load configuration")?;
    if args.print_config {
        print!("{}", chat_common::settings::to_toml(&settings));
        return Ok(());
    }
    if args.probe_ready {
        return chat_common::ops::probe(settings.ops_listen, "/readyz")
            .await
            .map_err(anyhow::Error::msg);
    }
    let _telemetry = chat_common::telemetry::init("gateway", &settings.log, &settings.telemetry)?;
    let shutdown = CancellationToken::new();
    cancel_on_signal(shutdown.clone());
    let Some(bus) = wait_for("redis", &shutdown, || RedisStreamsBus::connect(settings.redis.clone())).await else {
        return Ok(());
    };
    let gateway = Gateway::start(settings, Arc::new(bus), shutdown)
        .await
        .context("failed to start")?;
    gateway.wait().await;
    Ok(())
}
