//! `gateway`: the websocket gateway of the scaled topology.

use anyhow::Context;
use chat_bus::redis_streams::RedisStreamsBus;
use chat_common::cli::{OneShot, ServiceArgs};
use chat_common::shutdown::{CancellationToken, cancel_on_signal};
use chat_common::startup::wait_for;
use chat_common::telemetry::Identity;
use clap::Parser;
use gateway::admin_cli::AdminCommand;
use gateway::{Gateway, settings::Settings};
use std::sync::Arc;

/// mimalloc rather than the system allocator: an idle connection keeps less memory
/// resident (9.45 against 12.3 KiB, with the 1 KiB read buffer; docs/benchmarks.md), and
/// frames are allocated and freed at a high rate.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(version, about = "Super Channels websocket gateway")]
struct Args {
    #[command(flatten)]
    service: ServiceArgs,
    #[command(subcommand)]
    command: Option<AdminCommand>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let settings = Settings::load(args.service.config.as_deref()).context("failed to load configuration")?;
    let runtime = settings.runtime.build().context("cannot start the runtime")?;
    runtime.block_on(run(args, settings))
}

async fn run(args: Args, settings: Settings) -> anyhow::Result<()> {
    if let OneShot::Done(result) = args.service.one_shot(&settings, settings.ops_listen).await {
        return result.map_err(anyhow::Error::msg);
    }
    if let Some(command) = args.command {
        let database = gateway::connect_database(&settings.database)
            .await
            .context("cannot open the database")?;
        println!("{}", command.run(database.directory.as_ref()).await?);
        return Ok(());
    }
    let _telemetry = chat_common::telemetry::init(
        &Identity::new(
            "gateway",
            env!("CARGO_PKG_VERSION"),
            settings.listen,
            &settings.telemetry,
        ),
        &settings.log,
        &settings.telemetry,
    )?;
    let shutdown = CancellationToken::new();
    cancel_on_signal(shutdown.clone());
    let Some(database) = wait_for("database", &shutdown, || gateway::connect_database(&settings.database)).await else {
        return Ok(());
    };
    let Some(bus) = wait_for("redis", &shutdown, || RedisStreamsBus::connect(settings.redis.clone())).await else {
        return Ok(());
    };
    let gateway = Gateway::start(settings, database, Arc::new(bus), shutdown, Vec::new())
        .await
        .context("failed to start")?;
    gateway.wait().await;
    Ok(())
}
