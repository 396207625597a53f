//! Failure counters and lockouts against code guessing (issue 7 item 2;
//! the arithmetic is in SECURITY.md).
//!
//! Failed code attempts — `code_invalid` on a lookup or redemption,
//! `redemption_unknown` on a reversal — and failed logins are counted per
//! [`LockKey`]: the authenticated principal (POS, verifier account,
//! seller), the outlet a POS is registered at (from the catalog's facts)
//! and the transport peer address, never a field the client writes. Each
//! kind has a [`LockoutLimit`]: past `failures_max` failures within a
//! sliding `window_ms` the key is locked out for `lockout_ms`; every
//! request of a locked-out key is refused with `locked_out` (with the
//! retry-after), right or wrong. Staff (the admin token and staff tokens)
//! are neither counted nor locked out, so an operator can always lift a
//! lockout.
//!
//! Counting happens only on failures, in the shard worker after a command
//! was refused, and the check costs one atomic load while nothing is
//! locked out: the success path pays nothing. The counter map is capped
//! ([`GuardConfig::keys_max`]); when a flood of distinct peers fills it,
//! new peers share one overflow counter, so a flood only locks out sooner.
//!
//! A lockout takes effect at once in memory and is sent to the catalog as
//! a logged [`SystemInput::LockOut`](vouch_engine::catalog::SystemInput)
//! so it holds across reconnects, transports and restarts and is listed for
//! staff and the key's seller.

use dashmap::DashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use vouch_engine::catalog::{Actor, LockKey, LockoutView};
use vouch_engine::OutletId;

/// One kind of key's limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LockoutLimit {
    /// Failures within the window that lock the key out (the limit-th
    /// failure trips it).
    pub failures_max: u32,
    /// Length of the sliding window, ms.
    pub window_ms: i64,
    /// How long a lockout lasts, ms.
    pub lockout_ms: i64,
}

/// Most failures a limit may allow per window.
pub const LOCKOUT_FAILURES_MAX: u32 = 1_000_000;
/// Shortest window or lockout, ms (one second).
pub const LOCKOUT_DURATION_MS_MIN: i64 = 1_000;
/// Longest window or lockout, ms (30 days).
pub const LOCKOUT_DURATION_MS_MAX: i64 = 30 * 86_400_000;
/// Most counters kept (one per key seen failing within its window): about
/// 150 bytes each, so the default 100,000 cost about 15 MB at most.
pub const GUARD_KEYS_MAX_DEFAULT: usize = 100_000;
/// Buckets of a sliding window: the window slides in steps of 1/12 of
/// its length.
const WINDOW_BUCKETS: usize = 12;
/// How often, at most, a full counter map is swept for idle counters, ms.
const SWEEP_INTERVAL_MS: i64 = 1_000;

impl LockoutLimit {
    /// Checks the limit; `what` names it in the message.
    ///
    /// Errors: a message when `failures_max` is not 1..=1,000,000 or a
    /// duration is not 1 s..=30 days.
    pub fn validate(&self, what: &str) -> Result<(), String> {
        if !(1..=LOCKOUT_FAILURES_MAX).contains(&self.failures_max) {
            return Err(format!(
                "{what}: failures must be 1..={LOCKOUT_FAILURES_MAX}, got {}",
                self.failures_max
            ));
        }
        for (name, ms) in [("window", self.window_ms), ("lockout", self.lockout_ms)] {
            if !(LOCKOUT_DURATION_MS_MIN..=LOCKOUT_DURATION_MS_MAX).contains(&ms) {
                return Err(format!(
                    "{what}: {name} must be 1 s..=30 days, got {} s",
                    ms / 1000
                ));
            }
        }
        Ok(())
    }
}

/// The limits of every key kind; see SECURITY.md for why these defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuardConfig {
    /// Per principal (POS, verifier account, seller): 20 failures a day,
    /// then locked out for a day. A counter that mistypes a few codes a
    /// day never reaches it; a stolen credential gets at most 20 guesses
    /// a day (plus one per lockout period).
    pub principal: LockoutLimit,
    /// Per outlet of a POS: 60 failures a day, then an hour. Above the
    /// principal limit, so one careless POS never locks its colleagues out.
    pub outlet: LockoutLimit,
    /// Per peer address (IPv4, or IPv6 /64), also for failed logins: 200
    /// an hour, then an hour. A gateway in front of many honest POS stays
    /// under it; many stolen credentials from one host do not.
    pub peer: LockoutLimit,
    /// Most counters kept at once.
    pub keys_max: usize,
}

const DAY_MS: i64 = 86_400_000;
const HOUR_MS: i64 = 3_600_000;

impl Default for GuardConfig {
    fn default() -> Self {
        GuardConfig {
            principal: LockoutLimit {
                failures_max: 20,
                window_ms: DAY_MS,
                lockout_ms: DAY_MS,
            },
            outlet: LockoutLimit {
                failures_max: 60,
                window_ms: DAY_MS,
                lockout_ms: HOUR_MS,
            },
            peer: LockoutLimit {
                failures_max: 200,
                window_ms: HOUR_MS,
                lockout_ms: HOUR_MS,
            },
            keys_max: GUARD_KEYS_MAX_DEFAULT,
        }
    }
}

impl GuardConfig {
    /// Checks every limit.
    ///
    /// Errors: the first limit out of range, named; `keys_max` not
    /// 1,000..=10,000,000.
    pub fn validate(&self) -> Result<(), String> {
        self.principal.validate("principal lockout")?;
        self.outlet.validate("outlet lockout")?;
        self.peer.validate("peer lockout")?;
        if !(1_000..=10_000_000).contains(&self.keys_max) {
            return Err(format!(
                "lockout keys must be 1000..=10000000, got {}",
                self.keys_max
            ));
        }
        Ok(())
    }

    fn limit(&self, key: &LockKey) -> LockoutLimit {
        match key {
            LockKey::Principal(_) => self.principal,
            LockKey::Outlet(_) => self.outlet,
            LockKey::Peer(_) => self.peer,
        }
    }
}

/// A sliding window of failure counts: `WINDOW_BUCKETS` buckets, each
/// tagged with the step it counts.
#[derive(Clone, Copy, Default)]
struct Window {
    buckets: [(i64, u32); WINDOW_BUCKETS],
}

impl Window {
    /// Adds one failure at `now_ms`; the failures within the window.
    fn add(&mut self, now_ms: i64, window_ms: i64) -> u32 {
        let step_ms = (window_ms / WINDOW_BUCKETS as i64).max(1);
        let step = now_ms.div_euclid(step_ms);
        let slot = &mut self.buckets[step.rem_euclid(WINDOW_BUCKETS as i64) as usize];
        if slot.0 != step {
            *slot = (step, 0);
        }
        slot.1 = slot.1.saturating_add(1);
        self.count(step)
    }

    fn count(&self, step: i64) -> u32 {
        self.buckets
            .iter()
            .filter(|(s, _)| step - s < WINDOW_BUCKETS as i64 && *s <= step)
            .map(|(_, n)| *n)
            .fold(0u32, u32::saturating_add)
    }

    /// The failures within the window at `now_ms`.
    fn total(&self, now_ms: i64, window_ms: i64) -> u32 {
        let step_ms = (window_ms / WINDOW_BUCKETS as i64).max(1);
        self.count(now_ms.div_euclid(step_ms))
    }

    /// Whether no failure of this window is left at `now_ms`.
    fn idle(&self, now_ms: i64, window_ms: i64) -> bool {
        self.total(now_ms, window_ms) == 0
    }
}

/// A lockout tripped by the counters, for the catalog to record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trip {
    /// What is locked out.
    pub key: LockKey,
    /// End of the lockout, unix ms.
    pub until_ms: i64,
    /// Failures in the window.
    pub failures: u32,
}

/// The shared failure counters and lockouts; see the module docs.
pub struct Guard {
    config: GuardConfig,
    counters: DashMap<LockKey, Window, foldhash::fast::RandomState>,
    locked: DashMap<LockKey, i64, foldhash::fast::RandomState>,
    /// `locked.len()`, readable with one atomic load on the request path.
    locked_count: AtomicUsize,
    last_sweep_ms: AtomicI64,
    trips: crossbeam_channel::Sender<Trip>,
}

/// The key every new peer shares while the counter map is full.
const OVERFLOW_PEER: LockKey = LockKey::Peer(IpAddr::V6(Ipv6Addr::UNSPECIFIED));

/// The keys a request from `actor` at `peer` is counted and checked
/// under; `outlet` is the outlet its POS is registered at. Staff (and the
/// admin token, `actor` None) have none.
pub fn keys_of(actor: Option<Actor>, peer: LockKey, outlet: Option<OutletId>) -> Vec<LockKey> {
    match actor {
        None | Some(Actor::Staff) | Some(Actor::System) => Vec::new(),
        Some(a) => {
            let mut keys = vec![LockKey::Principal(a), peer];
            keys.extend(outlet.map(LockKey::Outlet));
            keys
        }
    }
}

impl Guard {
    /// A guard with `config`; tripped lockouts are sent to `trips`.
    pub fn new(config: GuardConfig, trips: crossbeam_channel::Sender<Trip>) -> Guard {
        Guard {
            config,
            counters: DashMap::default(),
            locked: DashMap::default(),
            locked_count: AtomicUsize::new(0),
            last_sweep_ms: AtomicI64::new(i64::MIN),
            trips,
        }
    }

    /// The limits in force.
    pub fn config(&self) -> &GuardConfig {
        &self.config
    }

    /// Restores lockouts recorded in the catalog that have not ended by
    /// `now_ms` (at start).
    pub fn restore<'a>(&self, now_ms: i64, lockouts: impl Iterator<Item = &'a LockoutView>) {
        for l in lockouts.filter(|l| l.until_ms > now_ms) {
            self.lock(l.key, l.until_ms);
        }
    }

    fn lock(&self, key: LockKey, until_ms: i64) {
        if self.locked.insert(key, until_ms).is_none() {
            self.locked_count.fetch_add(1, Ordering::Release);
        }
    }

    /// Lifts the lockout of `key` and forgets its failures (staff lifted
    /// it; the catalog's record is durable).
    pub fn lift(&self, key: &LockKey) {
        if self.locked.remove(key).is_some() {
            self.locked_count.fetch_sub(1, Ordering::Release);
        }
        self.counters.remove(key);
    }

    /// Whether any key is locked out (one atomic load).
    pub fn any_locked(&self) -> bool {
        self.locked_count.load(Ordering::Acquire) > 0
    }

    /// The end (unix ms) of the longest lockout among `keys` at `now_ms`,
    /// or None when none is locked out. One atomic load while nothing is.
    pub fn locked_until(&self, now_ms: i64, keys: &[LockKey]) -> Option<i64> {
        if self.locked_count.load(Ordering::Acquire) == 0 {
            return None;
        }
        let mut until = None;
        for key in keys {
            until = until.max(self.overflow_lock(now_ms, key));
            let Some(end) = self.locked.get(key).map(|e| *e) else {
                continue;
            };
            if end > now_ms {
                until = until.max(Some(end));
            } else if self.locked.remove_if(key, |_, e| *e <= now_ms).is_some() {
                self.locked_count.fetch_sub(1, Ordering::Release);
            }
        }
        until
    }

    /// While the shared overflow counter is locked out, so is every peer
    /// without a counter of its own (it would be counted there).
    fn overflow_lock(&self, now_ms: i64, key: &LockKey) -> Option<i64> {
        if !matches!(key, LockKey::Peer(_)) || *key == OVERFLOW_PEER {
            return None;
        }
        let end = self.locked.get(&OVERFLOW_PEER).map(|e| *e)?;
        (end > now_ms && !self.counters.contains_key(key)).then_some(end)
    }

    /// Counts one failure at `now_ms` for each of `keys`; a key that
    /// reaches its limit is locked out at once and its lockout sent for
    /// the catalog to record. Returns the trips (for logging and tests).
    pub fn failure(&self, now_ms: i64, keys: &[LockKey]) -> Vec<Trip> {
        let mut trips = Vec::new();
        for key in keys {
            let key = self.counted_key(now_ms, *key);
            let limit = self.config.limit(&key);
            let failures = self
                .counters
                .entry(key)
                .or_default()
                .add(now_ms, limit.window_ms);
            if failures < limit.failures_max || self.locked_until(now_ms, &[key]).is_some() {
                continue;
            }
            let trip = Trip {
                key,
                until_ms: now_ms.saturating_add(limit.lockout_ms),
                failures,
            };
            self.lock(key, trip.until_ms);
            tracing::warn!(key = %key, failures, until_ms = trip.until_ms, "locked out after failed code attempts");
            let _ = self.trips.send(trip);
            trips.push(trip);
        }
        trips
    }

    /// `key`, or the shared overflow key for a new peer while the counter
    /// map is full (after sweeping idle counters, at most once a second).
    fn counted_key(&self, now_ms: i64, key: LockKey) -> LockKey {
        if self.counters.len() < self.config.keys_max || self.counters.contains_key(&key) {
            return key;
        }
        let last = self.last_sweep_ms.load(Ordering::Relaxed);
        if now_ms.saturating_sub(last) >= SWEEP_INTERVAL_MS
            && self
                .last_sweep_ms
                .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let config = self.config;
            self.counters
                .retain(|k, w| !w.idle(now_ms, config.limit(k).window_ms));
            // Still full: peers far from their limit make room; those
            // close to it stay counted.
            if self.counters.len() >= self.config.keys_max {
                self.counters.retain(|k, w| {
                    let limit = config.limit(k);
                    !matches!(k, LockKey::Peer(_))
                        || w.total(now_ms, limit.window_ms) >= limit.failures_max / 2
                });
            }
        }
        match key {
            LockKey::Peer(_) if self.counters.len() >= self.config.keys_max => OVERFLOW_PEER,
            other => other,
        }
    }

    /// Keys counted now (for tests and metrics).
    pub fn counted_keys(&self) -> usize {
        self.counters.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;
    use vouch_engine::{PosId, VerifierId};

    fn guard(config: GuardConfig) -> (Guard, crossbeam_channel::Receiver<Trip>) {
        let (tx, rx) = crossbeam_channel::unbounded();
        (Guard::new(config, tx), rx)
    }

    fn peer(last: u8) -> LockKey {
        LockKey::peer(IpAddr::V4(Ipv4Addr::new(10, 0, 0, last)))
    }

    #[test]
    fn lockout_trips_at_the_limit_and_ends_after_the_cooling_period() {
        let (g, trips) = guard(GuardConfig::default());
        let keys = keys_of(Some(Actor::Device(PosId(31))), peer(1), Some(OutletId(900)));
        let t0 = 1_000_000_000_000;
        for i in 0..19 {
            assert!(g.failure(t0 + i, &keys).is_empty(), "failure {i}");
            assert_eq!(g.locked_until(t0 + i, &keys), None);
        }
        let tripped = g.failure(t0 + 19, &keys);
        assert_eq!(tripped.len(), 1, "only the POS trips: {tripped:?}");
        assert_eq!(tripped[0].key, LockKey::Principal(Actor::Device(PosId(31))));
        assert_eq!(tripped[0].failures, 20);
        assert_eq!(trips.try_recv().unwrap(), tripped[0]);
        let until = t0 + 19 + DAY_MS;
        assert_eq!(g.locked_until(t0 + 20, &keys), Some(until));
        // Another POS of the same outlet made no mistakes: not locked out.
        let colleague = keys_of(Some(Actor::Device(PosId(32))), peer(2), Some(OutletId(900)));
        assert_eq!(g.locked_until(t0 + 20, &colleague), None);
        assert_eq!(g.locked_until(until, &keys), None, "the lockout ended");
    }

    #[test]
    fn lockout_window_slides_so_old_failures_stop_counting() {
        let (g, _trips) = guard(GuardConfig::default());
        let keys = keys_of(Some(Actor::Verifier(VerifierId(41))), peer(1), None);
        let t0 = 5 * DAY_MS;
        for i in 0..19 {
            g.failure(t0 + i, &keys);
        }
        // A day and a step later the 19 failures have left the window.
        let later = t0 + DAY_MS + DAY_MS / 12;
        assert!(g.failure(later, &keys).is_empty());
        assert_eq!(g.locked_until(later, &keys), None);
    }

    #[test]
    fn lockout_staff_is_never_counted() {
        assert!(keys_of(None, peer(1), Some(OutletId(1))).is_empty());
        assert!(keys_of(Some(Actor::Staff), peer(1), None).is_empty());
    }

    #[test]
    fn lockout_lift_clears_the_lockout_and_the_count() {
        let (g, _trips) = guard(GuardConfig::default());
        let keys = [LockKey::Principal(Actor::Device(PosId(7)))];
        for i in 0..20 {
            g.failure(i, &keys);
        }
        assert!(g.locked_until(21, &keys).is_some());
        g.lift(&keys[0]);
        assert_eq!(g.locked_until(22, &keys), None);
        assert!(g.failure(23, &keys).is_empty(), "the count started again");
    }

    #[test]
    fn lockout_flood_of_peers_is_capped_into_one_overflow_counter() {
        let config = GuardConfig {
            keys_max: 1_000,
            ..GuardConfig::default()
        };
        let (g, _trips) = guard(config);
        for i in 0..5_000u32 {
            let addr = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
            g.failure(1_000, &[LockKey::peer(addr)]);
        }
        assert!(g.counted_keys() <= 1_001, "{}", g.counted_keys());
        // The 4,000 peers past the cap share the overflow key, which passed
        // the peer limit (200) and is locked out: so is every new peer
        // without a counter of its own, while a counted one is not.
        assert!(g.locked_until(1_001, &[OVERFLOW_PEER]).is_some());
        let newcomer = LockKey::peer(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)));
        assert!(g.locked_until(1_001, &[newcomer]).is_some());
        let counted = LockKey::peer(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + 1_500)));
        assert_eq!(g.locked_until(1_001, &[counted]), None);
    }

    #[test]
    fn lockout_ipv6_peers_count_per_64_prefix() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(LockKey::peer(a), LockKey::peer(b));
        assert_ne!(LockKey::peer(a), LockKey::peer(c));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(LockKey::peer(mapped), peer(1));
    }

    #[test]
    fn lockout_limits_out_of_range_are_refused() {
        let mut c = GuardConfig::default();
        assert!(c.validate().is_ok());
        c.principal.failures_max = 0;
        assert!(c.validate().unwrap_err().contains("principal"));
        let mut c = GuardConfig::default();
        c.peer.lockout_ms = LOCKOUT_DURATION_MS_MAX + 1;
        assert!(c.validate().unwrap_err().contains("peer lockout: lockout"));
        let c = GuardConfig {
            keys_max: usize::MAX,
            ..GuardConfig::default()
        };
        assert!(c.validate().is_err());
    }
}
