//! The command line every service binary shares: a config file, and the two one-shot
//! modes operators and orchestrators use.

use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct ServiceArgs {
    /// A TOML file layered over the built-in defaults; `SC_*` environment variables win over it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Ask a running instance's `/readyz` and exit 0 if it is ready (a container health check).
    #[arg(long)]
    pub probe_ready: bool,
    /// Print the effective settings (defaults, file, environment) as TOML, secrets masked,
    /// and exit.
    #[arg(long)]
    pub print_config: bool,
}

/// What a one-shot mode did.
pub enum OneShot {
    /// Neither mode was asked for: run the service.
    Serve,
    /// A mode ran; exit with this result.
    Done(Result<(), String>),
}

impl ServiceArgs {
    /// Runs `--print-config` or `--probe-ready` if asked for.
    pub async fn one_shot<T: serde::Serialize>(&self, settings: &T, ops_addr: SocketAddr) -> OneShot {
        if self.print_config {
            print!("{}", crate::settings::to_toml(settings));
            OneShot::Done(Ok(()))
        } else if self.probe_ready {
            OneShot::Done(crate::ops::probe(ops_addr, "/readyz").await)
        } else {
            OneShot::Serve
        }
    }
}
