//! The server's own catalog commands, sent as the system: the minute tick
//! (PUB-3 automatic delisting, ended lockouts dropped), the daily
//! settlement run (SET-3) and the lockouts the guard trips (issue 7),
//! which are logged so they hold after a restart.

use super::Ctx;
use crate::guard::Trip;
use crate::pipeline::{CatalogOp, CatalogWork};
use jiff::tz::TimeZone;
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

/// The cutoff of the latest daily settlement run due at `now_ms`: the
/// last instant at or before it whose local time in `tz` is `at` (today's
/// when it has passed, else yesterday's), unix ms. None only outside
/// jiff's range.
pub fn settlement_cutoff_ms(now_ms: i64, tz: &TimeZone, at: jiff::civil::Time) -> Option<i64> {
    let now = jiff::Timestamp::from_millisecond(now_ms).ok()?;
    let today = now.to_zoned(tz.clone()).date();
    let mut cutoff = today.to_datetime(at).to_zoned(tz.clone()).ok()?;
    if cutoff.timestamp() > now {
        cutoff = today
            .yesterday()
            .ok()?
            .to_datetime(at)
            .to_zoned(tz.clone())
            .ok()?;
    }
    Some(cutoff.timestamp().as_millisecond())
}

/// Sends the catalog a `Tick` and the due daily settlement run (SET-3)
/// as the system every `CATALOG_TICK_MS` until shutdown. The engine never
/// reads the clock: this is its time input. A run already made for a
/// cutoff is not made again, so sending it every minute is cheap.
pub(super) async fn tick_driver(ctx: Arc<Ctx>, mut stop: watch::Receiver<bool>) {
    let mut every = tokio::time::interval(Duration::from_millis(CATALOG_TICK_MS));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = stop.changed() => return,
        }
        let mut ops = vec![system_op(SystemInput::Tick)];
        if let Some(cutoff_ms) =
            settlement_cutoff_ms(super::now_ms(), &ctx.time_zone, ctx.settlement_time)
        {
            ops.push(system_op(SystemInput::Settle { cutoff_ms }));
        }
        if ctx.catalog_tx.send(ops).await.is_err() {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> i64 {
        s.parse::<jiff::Timestamp>().unwrap().as_millisecond()
    }

    /// SET-3's daily run at 02:00 Shanghai time, whatever the process's
    /// zone: before 02:00 local the due cutoff is yesterday's, from 02:00
    /// on today's (the instants are UTC).
    #[test]
    fn set_3_the_daily_cutoff_is_local_time_in_the_platform_zone() {
        let tz = TimeZone::get("Asia/Shanghai").unwrap();
        let at = jiff::civil::time(2, 0, 0, 0);
        let cutoff = |now| settlement_cutoff_ms(ms(now), &tz, at).unwrap();
        assert_eq!(
            cutoff("2026-12-01T17:59:59.999Z"),
            ms("2026-11-30T18:00:00Z")
        );
        assert_eq!(cutoff("2026-12-01T18:00:00Z"), ms("2026-12-01T18:00:00Z"));
        assert_eq!(cutoff("2026-12-01T16:00:00Z"), ms("2026-11-30T18:00:00Z"));
        let midnight = jiff::civil::time(0, 0, 0, 0);
        let local_midnight = settlement_cutoff_ms(ms("2026-12-01T16:00:00Z"), &tz, midnight);
        assert_eq!(local_midnight, Some(ms("2026-12-01T16:00:00Z")));
    }
}
