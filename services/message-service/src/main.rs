//! `message-service`: the gRPC service that commits and publishes messages.

use anyhow::Context;
use chat_bus::redis_streams::RedisStreamsBus;
use chat_common::cli::{OneShot, ServiceArgs};
use chat_common::shutdown::{CancellationToken, cancel_on_signal};
use chat_common::startup::wait_for;
use chat_common::telemetry::Identity;
use clap::Parser;
use message_service::{MessageService, connect_store, settings::Settings};
use std::sync::Arc;

/// mimalloc rather than the system allocator, as in the gateway: every send allocates and
/// frees its request, its rows and its bus entry at a high rate.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(version, about = "Super Channels message service")]
struct Args {
    #[command(flatten)]
    service: ServiceArgs,
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
    let _telemetry = chat_common::telemetry::init(
        &Identity::new(
            "message-service",
            env!("CARGO_PKG_VERSION"),
            settings.grpc_listen,
            &settings.telemetry,
        ),
        &settings.log,
        &settings.telemetry,
    )?;
    let shutdown = CancellationToken::new();
    cancel_on_signal(shutdown.clone());
    let Some(store) = wait_for("database", &shutdown, || connect_store(&settings.database)).await else {
        return Ok(());
    };
    let Some(bus) = wait_for("redis", &shutdown, || RedisStreamsBus::connect(settings.redis.clone())).await else {
        return Ok(());
    };
    let service = MessageService::start(&settings, store, Arc::new(bus), shutdown)
        .await
        .context("failed to start")?;
    service.wait().await;
    Ok(())
}
