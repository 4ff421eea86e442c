//! End-to-end tests of the scaled topology. One test binary (link time), one module per
//! concern. Each test starts its own cluster: fresh database, fresh Redis prefix.

mod access;
mod account_safety;
mod accounts;
mod bad_input;
mod black_holes;
mod caching;
mod cluster;
mod configuration;
mod delivery;
mod faults;
mod grpc;
mod helpers;
mod hostile;
mod http_api;
mod intake;
mod limits;
mod membership;
mod observability;
mod openapi;
mod presence;
mod redis_cluster;
mod search;
mod signals;
mod slow_consumers;
mod timeline;
mod uploads;
