//! Test support: start the real services on port 0 against a fresh Postgres database and a
//! fresh Redis key prefix, and talk to them as clients do (websocket, HTTP).

pub mod backends;
pub mod cluster;
pub mod otlp;
pub mod processes;
pub mod relay;
pub mod smtp;
pub mod steady_load;
pub mod ws;

pub use cluster::{TestCluster, TestDb};
pub use ws::WsClient;
