//! vouch: the server and command-line client of the vouch e-voucher engine.
//!
//! Layout:
//! - [`clock`]: the server's clock (wall clock plus a rehearsal offset).
//! - [`data_dir`]: the data directory — storage, engine seed and settings,
//!   the admin token, the development certificate — and recovery by replay.
//! - [`pipeline`]: shard worker threads and durable reply delivery.
//! - [`server`]: TCP and QUIC listeners, connections, handshake, shutdown.
//! - [`cli`]: the command-line contract of DESIGN.md (`vouch serve`,
//!   `vouch issue|lookup|redeem|reverse|history`), with `cli::catalog`
//!   (the catalog's subcommands), `cli::outcome` (how replies are shown)
//!   and `cli::time` (times in the platform time zone).
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod cli;
pub mod clock;
pub mod data_dir;
pub mod guard;
pub mod outbox;
pub mod pipeline;
pub mod server;
