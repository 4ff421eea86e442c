//! `message-service`: the gRPC service that commits and publishes messages.

use anyhow::Context;
use chat_common::shutdown::{CancellationToken, cancel_on_signal};
use clap::Parser;
use message_service::{MessageService, connect_dependencies, settings::Settings};
use std::path::PathBuf;

#[derive(Parser)]
#[command(version, about = "Super Channels message service")]
struct Args {
    /// A TOML file layered over the built-in defaults; `SC_*` environment variables win over it.
    #[arg(long)]
    config: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let settings =
        Settings::load(args.config.as_deref()).context("failed to load configuration")?;
    chat_common::telemetry::init(&settings.log);
    let shutdown = CancellationToken::new();
    cancel_on_signal(shutdown.clone());
    let (store, bus) = connect_dependencies(&settings)
        .await
        .context("failed to start")?;
    let service = MessageService::start(&settings, store, bus, shutdown)
        .await
        .context("failed to start")?;
    service.wait().await;
    Ok(())
}
