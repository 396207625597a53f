//! Lockouts after failed code attempts (issue 7, DESIGN "code guessing is
//! bounded"): the durable record of which key is locked out until when.
//!
//! The server counts failures (`code_invalid` on lookups and redemptions,
//! `redemption_unknown` on reversals) per authenticated principal, per
//! outlet of a POS and per transport peer address, in sliding windows off
//! the success path; when a key passes its limit the server sends
//! [`SystemInput::LockOut`] as the system, so the lockout is logged,
//! replayed after a restart and listed for staff and the key's seller.
//! Staff lift one with [`CatalogCommand::LiftLockout`]. Ended lockouts are
//! dropped by the next tick or lockout change, so the map holds only what
//! the server's bounded counters tripped within one cooling period.

use super::*;
use std::net::IpAddr;

/// What a failure limit counts: never a field the client writes itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LockKey {
    /// An authenticated principal: a POS, a verifier account, a seller.
    Principal(Actor),
    /// The outlet a POS is registered at (catalog facts, not the request).
    Outlet(OutletId),
    /// A transport peer: an IPv4 address, or an IPv6 /64 prefix (the rest
    /// of the address zeroed), so one host cannot spread over addresses.
    Peer(IpAddr),
}

impl LockKey {
    /// The key of a peer address: IPv4 as is (also when mapped into IPv6),
    /// IPv6 cut to its /64 prefix.
    pub fn peer(addr: IpAddr) -> LockKey {
        let addr = match addr {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => {
                    let bits = u128::from(v6) & !((1u128 << 64) - 1);
                    IpAddr::V6(bits.into())
                }
            },
            v4 => v4,
        };
        LockKey::Peer(addr)
    }
}

impl std::fmt::Display for LockKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LockKey::Principal(Actor::Device(id)) => write!(f, "POS {id}"),
            LockKey::Principal(Actor::Verifier(id)) => write!(f, "verifier {id}"),
            LockKey::Principal(Actor::Seller(id)) => write!(f, "seller {id}"),
            LockKey::Principal(Actor::Provider(id)) => write!(f, "provider {id}"),
            LockKey::Principal(Actor::FrontEnd) => write!(f, "the front end"),
            LockKey::Principal(Actor::PaymentSystem) => write!(f, "the payment system"),
            LockKey::Principal(Actor::Staff | Actor::System) => write!(f, "staff"),
            LockKey::Outlet(id) => write!(f, "outlet {id}"),
            LockKey::Peer(addr) => write!(f, "peer {addr}"),
        }
    }
}

/// One lockout as the catalog keeps and shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockoutView {
    /// What is locked out.
    pub key: LockKey,
    /// When it was locked out, unix ms.
    pub since_ms: i64,
    /// When it ends, unix ms (exclusive).
    pub until_ms: i64,
    /// Failures counted in the window when the limit was passed.
    pub failures: u32,
}

/// Most lockouts one read returns.
pub const LOCKOUTS_PAGE_ITEMS_MAX: u32 = 1_000;

impl Catalog {
    /// Records a lockout of `key` from `now_ms` to `until_ms` (the
    /// system only); an earlier one of the key is replaced. Ended ones are
    /// dropped first.
    ///
    /// Errors: `bad_request` when `until_ms` is not after `now_ms`.
    pub(super) fn lock_out(
        &mut self,
        now_ms: i64,
        key: LockKey,
        until_ms: i64,
        failures: u32,
    ) -> CatalogReply {
        if until_ms <= now_ms {
            return Err(reject(
                ErrorCode::BadRequest,
                "a lockout must end after it starts",
            ));
        }
        self.end_lockouts(now_ms);
        let view = LockoutView {
            key,
            since_ms: now_ms,
            until_ms,
            failures,
        };
        self.lockouts.insert(key, view);
        Ok(CatalogOutcome::Done)
    }

    /// Lifts the lockout of `key` (staff).
    ///
    /// Errors: `not_found` when `key` is not locked out.
    pub(super) fn lift_lockout(&mut self, now_ms: i64, key: LockKey) -> CatalogReply {
        self.end_lockouts(now_ms);
        match self.lockouts.remove(&key) {
            Some(_) => Ok(CatalogOutcome::Done),
            None => Err(reject(
                ErrorCode::NotFound,
                format!("{key} is not locked out"),
            )),
        }
    }

    /// Drops lockouts that ended by `now_ms`; how many.
    pub(super) fn end_lockouts(&mut self, now_ms: i64) -> u32 {
        let before = self.lockouts.len();
        self.lockouts.retain(|_, l| l.until_ms > now_ms);
        (before - self.lockouts.len()) as u32
    }

    /// Every lockout recorded, ended ones included until the next tick
    /// drops them (the server enforces exact end times).
    pub fn lockouts(&self) -> impl Iterator<Item = &LockoutView> {
        self.lockouts.values()
    }

    /// The seller a key belongs to, for the seller's view: its POS, its
    /// verifier accounts, its outlets and itself. Peers belong to nobody.
    fn lockout_owner(&self, key: &LockKey) -> Option<SellerId> {
        match key {
            LockKey::Principal(Actor::Seller(s)) => Some(*s),
            LockKey::Principal(Actor::Verifier(v)) => self.verifiers.get(v).map(|v| v.seller),
            LockKey::Principal(Actor::Device(d)) => {
                let outlet = self.devices.get(d)?.outlet;
                self.outlets.get(&outlet).map(|o| o.seller)
            }
            LockKey::Outlet(o) => self.outlets.get(o).map(|o| o.seller),
            _ => None,
        }
    }

    /// The lockouts `actor` may see after `after`, at most `limit`
    /// (1..=[`LOCKOUTS_PAGE_ITEMS_MAX`]): staff all, a seller those of its
    /// POS, verifiers, outlets and itself.
    ///
    /// Errors: `bad_request` for a limit out of range.
    pub(super) fn read_lockouts(
        &self,
        actor: Actor,
        after: Option<LockKey>,
        limit: u32,
    ) -> ReadReply {
        if limit == 0 || limit > LOCKOUTS_PAGE_ITEMS_MAX {
            return Err(reject(
                ErrorCode::BadRequest,
                format!("limit must be 1..={LOCKOUTS_PAGE_ITEMS_MAX}"),
            ));
        }
        use std::ops::Bound;
        let from = after.map_or(Bound::Unbounded, Bound::Excluded);
        let visible = |key: &LockKey| match actor {
            Actor::Staff | Actor::System => true,
            Actor::Seller(me) => self.lockout_owner(key) == Some(me),
            _ => false,
        };
        let items = self
            .lockouts
            .range((from, Bound::Unbounded))
            .filter(|(k, _)| visible(k))
            .take(limit as usize)
            .map(|(_, v)| *v)
            .collect();
        Ok(CatalogView::Lockouts(items))
    }
}
