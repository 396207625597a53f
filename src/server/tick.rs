//! The server's own catalog commands, sent as the system: the minute tick
//! (PUB-3 automatic delisting, ended lockouts dropped) and the lockouts
//! the guard trips (issue 7), which are logged so they hold after a
//! restart.

use super::Ctx;
use crate::guard::Trip;
use crate::pipeline::{CatalogOp, CatalogWork};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use vouch_engine::catalog::SystemInput;

/// How often the server sends the catalog its time tick (PUB-3 automatic
/// delisting), in ms.
pub const CATALOG_TICK_MS: u64 = 60_000;

/// A catalog op of the system whose reply nobody waits for.
fn system_op(input: SystemInput) -> CatalogOp {
    let (tx, _rx) = mpsc::unbounded_channel();
    CatalogOp {
        work: CatalogWork::System(input),
        tx,
        corr: 0,
        permit: None,
    }
}

/// Sends the catalog a `Tick` as the system every `CATALOG_TICK_MS` until
/// shutdown. The engine never reads the clock: this is its time input.
pub(super) async fn tick_driver(ctx: Arc<Ctx>, mut stop: watch::Receiver<bool>) {
    let mut every = tokio::time::interval(Duration::from_millis(CATALOG_TICK_MS));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = stop.changed() => return,
        }
        let op = system_op(SystemInput::Tick);
        if ctx.catalog_tx.send(vec![op]).await.is_err() {
            return;
        }
    }
}

/// How often an idle shard is woken for its time input (reversal-window
/// ends, MON-6), in ms. A busy shard ticks with every batch.
pub const SHARD_TICK_MS: u64 = 1_000;

/// Wakes every shard worker every `SHARD_TICK_MS` with an empty batch, so
/// deadlines apply on time without traffic. A full queue is skipped: that
/// shard is busy and ticks with its next batch anyway.
pub(super) async fn shard_tick_driver(ctx: Arc<Ctx>, mut stop: watch::Receiver<bool>) {
    let mut every = tokio::time::interval(Duration::from_millis(SHARD_TICK_MS));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = stop.changed() => return,
        }
        for tx in &ctx.shard_txs {
            if let Err(mpsc::error::TrySendError::Closed(_)) = tx.try_send(Vec::new()) {
                return;
            }
        }
    }
}

/// Records every lockout the guard trips as a logged catalog command, on
/// a thread of its own that never keeps the catalog's queue open (it holds
/// only a weak sender, so shutdown is not delayed by it). A trip is sent
/// once per key and cooling period, so the queue stays small.
pub(super) fn record_lockouts(
    trips: crossbeam_channel::Receiver<Trip>,
    catalog: mpsc::Sender<Vec<CatalogOp>>,
) {
    let catalog = catalog.downgrade();
    let _ = std::thread::Builder::new()
        .name("vouch-lockouts".into())
        .spawn(move || {
            while let Ok(trip) = trips.recv() {
                let input = SystemInput::LockOut {
                    key: trip.key,
                    until_ms: trip.until_ms,
                    failures: trip.failures,
                };
                let Some(tx) = catalog.upgrade() else { return };
                if tx.blocking_send(vec![system_op(input)]).is_err() {
                    return;
                }
            }
        });
}
