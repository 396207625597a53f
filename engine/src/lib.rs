//! vouch-engine: the deterministic, sans-IO state machine of the e-voucher core.
//!
//! The engine issues vouchers for paid orders (ORD-2, ORD-3), looks codes up
//! without consuming them (ORD-9), redeems units with an atomic code
//! replacement (ORD-7, ORD-8), logs every redemption (ORD-10) and reverses a
//! redemption (冲正) once, within a window.
//!
//! It never reads the clock, the OS random source, the disk or the network:
//! every state change goes through [`Shard::apply`] with the current time as
//! an argument, and randomness comes from a ChaCha20 generator that is part of
//! the state. Same state + same commands ⇒ same replies, which is what makes
//! recovery by log replay possible (DESIGN invariant 1).
//!
//! Layout:
//! - [`catalog`]: categories, sellers and onboarding, code providers,
//!   outlets, verifiers, devices and products (ONB, PUB, PRV), with a ledger.
//! - [`code`]: the numeric code type (6–11 digits, leading zeros significant).
//! - [`command`]: commands, replies and effects — the types the protocol
//!   carries and the storage log records.
//! - [`error`]: stable error codes.
//! - [`ids`]: typed entity ids (`SellerId`, `ProductId`, `OutletId`,
//!   `PosId`, `VerifierId`, `CategoryId`, `ProviderId`) over `u64`.
//! - [`shard`]: one shard of state; all state of a voucher lives in one shard
//!   (DESIGN invariant 2).
//! - [`engine`]: a set of shards with the routing function, for in-process use.
//! - [`validity`]: validity windows in the platform time zone (PUB-3).
//! - [`limits`]: every limit, with its unit in the name.
//! - [`ledger`]: double entry — accounts, immutable balanced entries and
//!   the conservation check (MON-3..MON-5).
//! - [`log`]: the versioned log record and the one path that applies a
//!   batch, for the live workers and recovery alike.
//! - [`message`]: logged messages between state machines (catalog facts).
//! - [`money`]: integer fen and basis-point ratios (MON-1, MON-2).
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod catalog;
pub mod code;
pub mod command;
pub mod engine;
pub mod error;
pub mod ids;
pub mod ledger;
pub mod limits;
pub mod log;
pub mod message;
pub mod money;
pub mod shard;
pub mod validity;
pub mod words;

pub use code::Code;
pub use command::{Command, Effect, Outcome, Reply, RequestId};
pub use engine::Engine;
pub use error::{ErrorCode, Rejection};
pub use ids::{CategoryId, OutletId, PosId, ProductId, ProviderId, SellerId, VerifierId};
pub use money::{Bps, Fen};
pub use shard::{EngineConfig, Shard};
