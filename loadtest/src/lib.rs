//! vouch-loadtest: load generation, real-data replay and end-of-run audit
//! for a running vouch server (DESIGN "Command-line contracts").
//!
//! Layout:
//! - [`data`]: the real input files of `../shared/data` turned into paid
//!   orders (mapping and skip reasons documented there).
//! - [`delivery`]: the delivery audit: what the webhook receiver accepted
//!   against the engine's live codes and redemptions (ORD-2, ORD-8).
//! - [`model`]: the client's own model of every acknowledged operation and
//!   the audit that compares it with the server's state.
//! - [`runner`]: closed-loop execution over connections × pipeline depth,
//!   with HdrHistogram latencies per operation.
//! - [`money`]: the replay's refunds, settlement and payouts, and the
//!   money audit; [`expiry`]: the replay's expiry after a restart with
//!   the server's clock ahead.
//! - [`receiver`]: a loopback webhook receiver (the `vouch-receiver`
//!   binary) that verifies signatures, records attempts and fails on
//!   purpose, for the outbox tests and the main job.
//! - [`report`]: the JSON report and the printed summary.
//! - [`scenarios`]: `replay`, `flash-sale`, `pos`.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod data;
pub mod delivery;
pub mod expiry;
pub mod model;
pub mod money;
pub mod receiver;
pub mod report;
pub mod runner;
pub mod scenarios;
pub mod words;
