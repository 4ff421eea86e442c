//! `super-channels`: the all-in-one server, the default `cargo run --release`.

use anyhow::Context;
use chat_common::shutdown::{CancellationToken, cancel_on_signal};
use clap::Parser;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    version,
    about = "Super Channels, all in one process: http://127.0.0.1:8080 by default"
)]
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
    let settings = all_in_one::Settings::load(args.config.as_deref()).context("failed to load configuration")?;
    if args.print_config {
        print!("{}", chat_common::settings::to_toml(&settings));
        return Ok(());
    }
    if args.probe_ready {
        return chat_common::ops::probe(settings.ops_listen, "/readyz")
            .await
            .map_err(anyhow::Error::msg);
    }
    let _telemetry = chat_common::telemetry::init("super-channels", &settings.log, &settings.telemetry)?;
    let shutdown = CancellationToken::new();
    cancel_on_signal(shutdown.clone());
    let server = all_in_one::start(settings, shutdown).await.context("failed to start")?;
    // The one line scripts and tests wait for; also what a person wants to see.
    println!("Super Channels is running on http://{}", server.addr);
    server.wait().await;
    Ok(())
}
