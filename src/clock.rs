//! The server's one clock: the wall clock in unix ms, plus the rehearsal
//! offset `vouch serve --rehearsal-clock-ahead-s` sets at start (0
//! otherwise). The engine never reads a clock; the workers, recovery, the
//! guard and the ticks all read this one, so a rehearsal moves every
//! deadline (validity ends, T+3, REF-2, daily settlement runs) together.

use std::sync::atomic::{AtomicI64, Ordering};

/// The rehearsal offset, ms; set once before the server starts serving.
static AHEAD_MS: AtomicI64 = AtomicI64::new(0);

/// Runs the clock `ahead_ms` ms (≥ 0) ahead of the wall clock from now on.
/// Only for rehearsals: deadlines then pass early.
pub fn set_ahead_ms(ahead_ms: i64) {
    AHEAD_MS.store(ahead_ms.max(0), Ordering::Relaxed);
}

/// How far ahead of the wall clock the server's clock runs, ms.
pub fn ahead_ms() -> i64 {
    AHEAD_MS.load(Ordering::Relaxed)
}

/// The server's clock now, unix ms (0 before 1970).
pub fn now_ms() -> i64 {
    wall_ms().saturating_add(ahead_ms())
}

/// The wall clock now, unix ms (0 before 1970), without the rehearsal
/// offset: for what other machines compare with their own clocks (a
/// webhook signature's timestamp), never for deadlines.
pub fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
