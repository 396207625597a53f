//! One shard of engine state. All state of a voucher — its live code, its
//! retired codes, its redemptions and their reversals — lives in exactly one
//! shard, chosen by the code (DESIGN invariant 2): a code's shard is
//! `code.value() % shards`, and a replacement code is drawn inside the same
//! shard, so every command touches one shard only.

use crate::code::Code;
use crate::command::{
    AuditRedemptions, AuditVouchers, Command, Effect, History, HistoryEvent, Issue, Issued,
    LookedUp, Lookup, Outcome, Redeem, Redeemed, RedemptionEntry, Reply, RequestId, Reverse,
    Reversed, SendReason, Unavailable, VoucherHistory, VoucherState,
};
use crate::error::{ErrorCode, InvalidCodeReason, Rejection};
use crate::ids::{OutletId, PosId, ProductId, ProviderId, SellerId, VerifierId};
use crate::limits::*;
use crate::message::{CatalogFact, ProductTerms};
use crate::money::Fen;
use crate::validity::Validity;
use jiff::tz::TimeZone;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

mod after_sale;
mod audit;
mod authz;
mod codes;
mod expiry;
mod export;
mod history;
mod issue;
mod lookup;
mod money;
mod order;
mod redeem;
mod refund;
mod reverse;
mod settle;
mod transfer;

pub use authz::Caller;
use authz::Who;
pub use money::{EntryLink, ShardAccount, ShardLedger, TICK_DEADLINES_MAX};

/// Settings fixed when a data directory is created; every shard of one
/// engine shares them, and replay needs the same values.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineConfig {
    /// Number of shards: a power of two, 1..=64 (`SHARDS_MAX`).
    pub shards: u32,
    /// Platform time zone, an IANA name (PUB-3). Default `Asia/Shanghai`.
    pub time_zone: String,
    /// How long after a redemption it may be reversed, in ms. Default 1 hour.
    pub reversal_window_ms: i64,
    /// How long a retired code stays unissuable, in ms (invariant 5).
    /// Default 90 days.
    pub code_quarantine_ms: i64,
    /// Live plus quarantined codes of one length may fill at most this
    /// many parts per million of that length's space in a shard before
    /// codes are lengthened (ORD-3; issue 7 item 3: the guessing bound
    /// in SECURITY.md is proportional to it). 1..=10,000 (1 %), default
    /// 10,000.
    pub code_density_ppm: u64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            shards: 2,
            time_zone: "Asia/Shanghai".into(),
            reversal_window_ms: 3_600_000,
            code_quarantine_ms: 90 * 86_400_000,
            code_density_ppm: CODE_DENSITY_PPM_MAX,
        }
    }
}

impl EngineConfig {
    /// Checks the settings and loads the time zone.
    ///
    /// Errors: a message when `shards` is not a power of two in 1..=64, the
    /// zone name is unknown, or a duration is negative.
    pub fn validate(&self) -> Result<TimeZone, String> {
        if !self.shards.is_power_of_two() || self.shards > SHARDS_MAX {
            return Err(format!(
                "shards must be a power of two up to {SHARDS_MAX}, got {}",
                self.shards
            ));
        }
        if self.reversal_window_ms < 0 || self.code_quarantine_ms < 0 {
            return Err("durations must not be negative".into());
        }
        if !(1..=CODE_DENSITY_PPM_MAX).contains(&self.code_density_ppm) {
            return Err(format!(
                "code density must be 1..={CODE_DENSITY_PPM_MAX} ppm, got {}",
                self.code_density_ppm
            ));
        }
        TimeZone::get(&self.time_zone)
            .map_err(|e| format!("unknown time zone {:?}: {e}", self.time_zone))
    }
}

struct Voucher {
    order_id: Arc<str>,
    seller_id: SellerId,
    product_id: ProductId,
    units_total: u32,
    units_remaining: u32,
    mobile: Arc<str>,
    /// Last four digits of `mobile`, inline: checked on every redemption
    /// without following the pointer.
    last4: [u8; 4],
    valid_from_ms: i64,
    valid_until_ms: i64,
    live_code: Option<Code>,
    /// Code length for replacements: the length of the latest code.
    code_digits: u8,
    /// The code of the original issue reply (idempotent re-issue).
    issued_code: Code,
    fingerprint: u64,
    unit_price: Fen,
    /// Money held for its unredeemed units (MON-4): what the buyer paid
    /// less every redemption not reversed.
    escrow: Fen,
    /// When it was issued, unix ms (its history's first event).
    issued_at_ms: i64,
    /// Reversals so far (at most `VOUCHER_REVERSALS_MAX`).
    reversals: u16,
    /// Its latest redemption's position in the log, or [`NO_REDEMPTION`];
    /// each entry links to the one before (`Redemption::prev`).
    last_redemption: u32,
    /// The product's money terms when it was issued.
    terms: ProductTerms,
    /// Refunded or expired (ORD-12 `unavailable`): its code is void.
    closed: Option<Unavailable>,
    /// An open REF-2 request: (amount, decision deadline unix ms).
    request: Option<(Fen, i64)>,
    /// Units voided by a refund or the expiry.
    units_void: u32,
    /// Refunded to the buyer (in transit, MON-7).
    refunded: Fen,
    /// Made payable to the seller other than by redemptions (refund
    /// shares, code fees, the T+3 payout, the expiry).
    released: Fen,
    /// SET-2 applied: the order's money went to the seller.
    paid_out: bool,
    /// A code delivery succeeded (ORD-2; set once the outbox reports it,
    /// issue 10). REF-3 needs it false.
    delivered: bool,
    /// An open after-sale request's amount (REF-5).
    after_sale: Option<Fen>,
    /// Taken back from the seller by after-sale refunds (REF-5).
    taken_back: Fen,
}

impl Voucher {
    /// Whom its effects are about.
    fn recipient(&self) -> crate::command::Recipient {
        crate::command::Recipient {
            order_id: self.order_id.clone(),
            mobile: self.mobile.clone(),
            seller_id: self.seller_id,
            product_id: self.product_id,
        }
    }
}

/// No redemption: the end of a voucher's chain of redemptions.
const NO_REDEMPTION: u32 = u32::MAX;

struct Redemption {
    request_id: RequestId,
    voucher: u32,
    /// The code redeemed.
    code: Code,
    /// The voucher's previous redemption, or [`NO_REDEMPTION`].
    prev: u32,
    units: u32,
    at_ms: i64,
    outlet_id: OutletId,
    verifier_id: VerifierId,
    pos_id: Option<PosId>,
    fingerprint: u64,
    units_remaining_after: u32,
    new_code: Option<Code>,
    /// Its reversal, once reversed.
    reversal: Option<ReversalMark>,
    /// The value of its units, moved from escrow (SET-1).
    amount: Fen,
    /// Its reversal window ended: the money is payable, no reversal.
    settled: bool,
}

/// What the verification log keeps of a reversal, for the history.
#[derive(Clone, Copy)]
struct ReversalMark {
    request_id: RequestId,
    at_ms: i64,
    /// The new code drawn when the voucher had none left.
    new_code: Option<Code>,
}

impl Redemption {
    fn reversed(&self) -> bool {
        self.reversal.is_some()
    }
}

struct Reversal {
    fingerprint: u64,
    reply: Reversed,
}

/// An applied refund step or extension, for retries (invariant 4).
struct OrderStep {
    fingerprint: u64,
    reply: Outcome,
}

/// One shard of the engine's state; see the module docs.
pub struct Shard {
    index: u32,
    config: EngineConfig,
    tz: TimeZone,
    rng: ChaCha20Rng,
    vouchers: Vec<Voucher>,
    by_order: Map<Arc<str>, u32>,
    live: Map<Code, u32>,
    /// Retired codes still in quarantine → their voucher.
    retired: Map<Code, u32>,
    quarantine: VecDeque<(i64, Code)>,
    /// Live plus quarantined codes per length (index = digits).
    codes_used: [u64; 12],
    redemptions: Map<RequestId, u32>,
    /// The verification log (ORD-10), in apply order.
    log: Vec<Redemption>,
    reversals: Map<RequestId, Reversal>,
    /// Catalog facts (ORD-2 and ORD-7 checks) per product.
    products: Map<ProductId, ProductFact>,
    /// Verifier → (seller, authorised outlets).
    verifiers: Map<VerifierId, (SellerId, Vec<OutletId>)>,
    /// POS → (seller, outlet, registering provider).
    devices: Map<PosId, (SellerId, OutletId, ProviderId)>,
    /// Double entry of the shard's money (MON-3).
    ledger: ShardLedger,
    /// Reversal-window ends not yet applied: (end, log position), in
    /// time order (MON-6).
    window_ends: VecDeque<(i64, u32)>,
    /// The latest `now` this shard applied anything at, unix ms.
    clock_floor_ms: i64,
    /// Messages for the catalog not yet taken by the worker (not state:
    /// replay makes them again).
    outbox: Vec<crate::message::ShardMessage>,
    /// What the current command or tick made payable, sent as messages
    /// when it ends.
    payable: money::Payables,
    /// Refund steps and extensions by request id.
    order_steps: Map<RequestId, OrderStep>,
    /// Validity ends not yet handled (REF-6): (end, slot).
    expiries: BTreeSet<(i64, u32)>,
    /// Open REF-2 requests' deadlines: (deadline, slot).
    refund_deadlines: BTreeSet<(i64, u32)>,
    /// T+3 payouts not yet made (SET-2): (due, slot).
    t3_due: BTreeSet<(i64, u32)>,
    /// Messages made so far: the `seq` of the latest.
    messages_sent: u64,
    /// Effects made by logged inputs so far; the next one's number
    /// (its outbox message id, ORD-2) is this.
    effects_made: u64,
    /// Refund transfers (MON-7) by (voucher slot, number).
    transfers: BTreeMap<transfer::TransferKey, transfer::Transfer>,
    /// Transfers awaiting an answer (false) or a retry (true), for paging.
    transfers_open: BTreeSet<(bool, u32, u16)>,
}

/// What a shard knows of a catalog product (see [`CatalogFact::Product`]).
#[derive(Clone, Debug, PartialEq)]
struct ProductFact {
    seller: SellerId,
    outlets: Vec<OutletId>,
    code_digits: Option<u8>,
    provider: Option<ProviderId>,
    validity: Validity,
    listed: bool,
    terms: ProductTerms,
}

impl ProductFact {
    /// The shard's view of a `CatalogFact::Product`; None for other facts.
    fn of(fact: &CatalogFact) -> Option<ProductFact> {
        match fact {
            CatalogFact::Product {
                seller,
                outlets,
                code_digits,
                provider,
                validity,
                listed,
                terms,
                ..
            } => Some(ProductFact {
                seller: *seller,
                outlets: outlets.clone(),
                code_digits: *code_digits,
                provider: *provider,
                validity: *validity,
                listed: *listed,
                terms: *terms,
            }),
            _ => None,
        }
    }
}

/// Maps keyed by codes, request ids and order ids. foldhash: fast. Its seed
/// comes from the data directory's secret, not from the OS: the engine stays
/// deterministic (same seed, same iteration order, before and after a
/// restart), and chosen keys still cannot force collisions.
type Map<K, V> = HashMap<K, V, foldhash::fast::FixedState>;

/// A map hashed with `hash_seed` (see [`Map`]).
fn map<K, V>(hash_seed: u64) -> Map<K, V> {
    HashMap::with_hasher(foldhash::fast::FixedState::with_seed(hash_seed))
}

fn fingerprint<T: Hash>(value: &T) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    value.hash(&mut h);
    h.finish()
}

/// The last four bytes of a mobile number already checked to be 5..=15
/// ASCII digits.
fn last4_of(mobile: &str) -> [u8; 4] {
    let b = mobile.as_bytes();
    [
        b[b.len() - 4],
        b[b.len() - 3],
        b[b.len() - 2],
        b[b.len() - 1],
    ]
}

fn check_last4(s: &str) -> Result<(), Rejection> {
    if s.len() == 4 && s.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(Rejection::new(
            ErrorCode::BadRequest,
            "phone_last4 must be exactly 4 digits",
        ))
    }
}

impl Shard {
    /// A new, empty shard `index` of `config.shards`, with its code generator
    /// seeded from `seed` (the data directory's secret) and its own stream.
    ///
    /// Errors: the message of [`EngineConfig::validate`], or when `index`
    /// is not below `config.shards`.
    pub fn new(index: u32, config: EngineConfig, seed: [u8; 32]) -> Result<Shard, String> {
        let tz = config.validate()?;
        if index >= config.shards {
            return Err(format!("shard {index} of {}", config.shards));
        }
        let mut rng = ChaCha20Rng::from_seed(seed);
        rng.set_stream(u64::from(index));
        // Domain-separated from the code generator's use of the seed.
        let h = xxhash_rust::xxh3::xxh3_64_with_seed(&seed, 0x6d61_7073 ^ u64::from(index));
        Ok(Shard {
            index,
            config,
            tz,
            rng,
            vouchers: Vec::new(),
            by_order: map(h),
            live: map(h),
            retired: map(h),
            quarantine: VecDeque::new(),
            codes_used: [0; 12],
            redemptions: map(h),
            log: Vec::new(),
            reversals: map(h),
            products: map(h),
            verifiers: map(h),
            devices: map(h),
            ledger: ShardLedger::new(),
            window_ends: VecDeque::new(),
            clock_floor_ms: i64::MIN,
            outbox: Vec::new(),
            messages_sent: 0,
            effects_made: 0,
            transfers: BTreeMap::new(),
            transfers_open: BTreeSet::new(),
            payable: Default::default(),
            order_steps: map(h),
            expiries: BTreeSet::new(),
            refund_deadlines: BTreeSet::new(),
            t3_due: BTreeSet::new(),
        })
    }

    /// This shard's index.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// Vouchers ever issued in this shard.
    pub fn voucher_count(&self) -> usize {
        self.vouchers.len()
    }

    /// Live plus quarantined codes of `digits` digits in this shard: what the
    /// density limit (`CODE_DENSITY_PPM_MAX`) counts.
    pub fn codes_in_use(&self, digits: u8) -> u64 {
        self.codes_used
            .get(usize::from(digits))
            .copied()
            .unwrap_or(0)
    }

    /// Whether this shard already holds `fact` exactly as given (applying
    /// it again would change nothing).
    pub fn has_fact(&self, fact: &CatalogFact) -> bool {
        match fact {
            CatalogFact::Product { id, .. } => {
                self.products.get(id) == ProductFact::of(fact).as_ref()
            }
            CatalogFact::Verifier {
                id,
                seller,
                outlets,
            } => self
                .verifiers
                .get(id)
                .is_some_and(|(s, o)| s == seller && o == outlets),
            CatalogFact::Device {
                pos_id,
                seller,
                outlet,
                provider,
            } => self.devices.get(pos_id) == Some(&(*seller, *outlet, *provider)),
        }
    }

    /// Whether `command` is a retry or a reuse of a request this shard
    /// already applied (same order id or request id): its reply then is the
    /// original one or a conflict, and it changes nothing, so it needs no
    /// log record.
    pub fn is_repeat(&self, command: &Command) -> bool {
        match command {
            Command::Issue(c) => self.by_order.contains_key(c.order_id.as_str()),
            Command::Redeem(c) => self.knows_request(&c.request_id),
            Command::Reverse(c) => self.knows_request(&c.request_id),
            Command::Refund(c) => self.knows_request(&c.request_id),
            Command::Extend(c) => self.knows_request(&c.request_id),
            Command::TransferStep(c) => self.knows_request(&c.request_id),
            _ => false,
        }
    }

    /// Whether this shard holds the record of a redemption or reversal with
    /// request id `rid` (invariant 4).
    pub fn knows_request(&self, rid: &RequestId) -> bool {
        self.redemptions.contains_key(rid)
            || self.reversals.contains_key(rid)
            || self.order_steps.contains_key(rid)
    }

    /// The outlet the catalog registered POS `pos_id` at, if it knows it
    /// (issue 7: failed attempts of a POS count against its outlet).
    pub fn device_outlet(&self, pos_id: PosId) -> Option<OutletId> {
        self.devices.get(&pos_id).map(|d| d.1)
    }

    /// Live codes in this shard (one per voucher with units left).
    pub fn live_code_count(&self) -> usize {
        self.live.len()
    }

    /// Applies one command at time `now_ms` (unix ms) and returns its reply;
    /// work for the outside world is appended to `effects`.
    ///
    /// A rejected command changes nothing (but may advance the code
    /// generator, deterministically). Panics only on a broken invariant.
    pub fn apply(&mut self, now_ms: i64, command: &Command, effects: &mut Vec<Effect>) -> Reply {
        self.apply_as(now_ms, Caller::Staff, command, effects)
    }

    /// [`Shard::apply`] for a command sent by `caller`. The caller changes
    /// only which refusal is given, never whether a command succeeds (a
    /// tenant's refusals about another seller's voucher are the
    /// unknown-code reply, ORD-7), so replaying a logged command as staff
    /// rebuilds the same state.
    pub fn apply_as(
        &mut self,
        now_ms: i64,
        caller: Caller,
        command: &Command,
        effects: &mut Vec<Effect>,
    ) -> Reply {
        self.clock_floor_ms = self.clock_floor_ms.max(now_ms);
        let reply = match command {
            Command::Issue(c) => self.issue(now_ms, c, effects),
            Command::Lookup(c) => self.lookup(now_ms, caller, c),
            Command::Redeem(c) => self.redeem(now_ms, caller, c, effects),
            Command::Reverse(c) => self.reverse(now_ms, caller, c, effects),
            Command::History(c) => self.history(caller, c),
            Command::AuditVouchers(c) => Ok(self.audit_vouchers(c)),
            Command::AuditRedemptions(c) => Ok(self.audit_redemptions(c)),
            Command::Refund(c) => self.refund(now_ms, c, effects),
            Command::Extend(c) => self.extend(now_ms, c),
            Command::Order(c) => self.order(c),
            Command::TransferStep(c) => self.transfer_step(now_ms, c),
            Command::Transfers(c) => Ok(self.list_transfers(c)),
            Command::Orders(c) => Ok(self.list_orders(c)),
            Command::Entries(c) => self.list_entries(c),
        };
        self.send_payables(now_ms);
        reply
    }

    /// The latest time this shard applied anything at (unix ms; `i64::MIN`
    /// when new): a worker's clock starts here, so time never runs
    /// backwards in a shard across a restart with a clock behind the log.
    pub fn clock_floor_ms(&self) -> i64 {
        self.clock_floor_ms
    }

    /// Effects made by logged inputs so far: the next effect's number. The
    /// outbox names a message by (shard, number), the same live and after
    /// recovery, since only logged inputs count (ORD-2).
    pub fn effects_made(&self) -> u64 {
        self.effects_made
    }

    /// Marks the order `order_id` delivered (ORD-2): a code reached its
    /// buyer. Returns whether that changed state (false for an unknown
    /// order or one delivered before).
    pub fn note_delivered(&mut self, order_id: &str) -> bool {
        let Some(&slot) = self.by_order.get(order_id) else {
            return false;
        };
        let v = &mut self.vouchers[slot as usize];
        !std::mem::replace(&mut v.delivered, true)
    }

    /// Counts `n` effects a logged input made ([`crate::log::ShardBatch`]).
    pub(crate) fn count_effects(&mut self, n: usize) {
        self.effects_made += n as u64;
    }

    /// Notes a catalog fact (ORD-7): later redemptions and issues are
    /// checked against it. A newer fact about the same product, verifier or
    /// POS replaces the older one.
    pub fn note_fact(&mut self, fact: &CatalogFact) {
        match fact {
            CatalogFact::Product { id, .. } => {
                if let Some(product) = ProductFact::of(fact) {
                    self.products.insert(*id, product);
                }
            }
            CatalogFact::Verifier {
                id,
                seller,
                outlets,
            } => {
                self.verifiers.insert(*id, (*seller, outlets.clone()));
            }
            CatalogFact::Device {
                pos_id,
                seller,
                outlet,
                provider,
            } => {
                self.devices.insert(*pos_id, (*seller, *outlet, *provider));
            }
        }
    }

    /// Checks every invariant of the shard; panics with the broken one.
    /// Meant for tests and for verification after recovery.
    pub fn check_invariants(&self) {
        let mut live_seen = 0usize;
        for (slot, v) in self.vouchers.iter().enumerate() {
            assert!(v.units_remaining <= v.units_total, "units above total");
            match v.live_code {
                Some(code) => {
                    assert!(v.units_remaining > 0, "live code on a used voucher");
                    assert_eq!(self.live.get(&code), Some(&(slot as u32)), "live map");
                    assert_eq!(
                        code.value() % u64::from(self.config.shards),
                        u64::from(self.index)
                    );
                    live_seen += 1;
                }
                None => assert_eq!(v.units_remaining, 0, "units without a live code"),
            }
        }
        assert_eq!(live_seen, self.live.len(), "live codes without voucher");
        let mut net = vec![0u64; self.vouchers.len()];
        for r in &self.log {
            if !r.reversed() {
                net[r.voucher as usize] += u64::from(r.units);
            }
        }
        for (v, n) in self.vouchers.iter().zip(net) {
            assert_eq!(
                u64::from(v.units_total - v.units_remaining - v.units_void),
                n,
                "redeemed units differ from the verification log"
            );
            assert!(
                v.closed.is_none() || v.units_remaining == 0,
                "closed with units"
            );
        }
        self.check_money();
    }
}
