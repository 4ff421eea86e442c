//! `super-channels`: the all-in-one server, the default `cargo run --release`.

use anyhow::Context;
use chat_common::cli::{OneShot, ServiceArgs};
use chat_common::shutdown::{CancellationToken, cancel_on_signal};
use chat_common::telemetry::Identity;
use clap::Parser;
use gateway::admin_cli::AdminCommand;

/// mimalloc rather than the system allocator, as in the gateway: less memory resident per
/// connection, and frames are allocated and freed at a high rate (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    version,
    about = "Super Channels, all in one process: http://127.0.0.1:8080 by default"
)]
struct Args {
    #[command(flatten)]
    service: ServiceArgs,
    #[command(subcommand)]
    command: Option<AdminCommand>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let settings =
        all_in_one::Settings::load(args.service.config.as_deref()).context("failed to load configuration")?;
    let runtime = settings.runtime.build().context("cannot start the runtime")?;
    runtime.block_on(run(args, settings))
}

async fn run(args: Args, settings: all_in_one::Settings) -> anyhow::Result<()> {
    if let OneShot::Done(result) = args.service.one_shot(&settings, settings.ops_listen).await {
        return result.map_err(anyhow::Error::msg);
    }
    if let Some(command) = args.command {
        std::fs::create_dir_all(&settings.data_dir).context("cannot create the data directory")?;
        let mut database = message_service::settings::Settings::defaults().database;
        database.url = all_in_one::database_url(&settings);
        let database = gateway::connect_database(&database)
            .await
            .context("cannot open the database")?;
        println!("{}", command.run(database.directory.as_ref()).await?);
        return Ok(());
    }
    let _telemetry = chat_common::telemetry::init(
        &Identity::new(
            "super-channels",
            env!("CARGO_PKG_VERSION"),
            settings.listen,
            &settings.telemetry,
        ),
        &settings.log,
        &settings.telemetry,
    )?;
    let shutdown = CancellationToken::new();
    cancel_on_signal(shutdown.clone());
    let server = all_in_one::start(settings, shutdown).await.context("failed to start")?;
    // The one line scripts and tests wait for; also what a person wants to see.
    println!("Super Channels is running on http://{}", server.addr);
    server.wait().await;
    Ok(())
}
