//! One shard of engine state. All state of a voucher — its live code, its
//! retired codes, its redemptions and their reversals — lives in exactly one
//! shard, chosen by the code (DESIGN invariant 2): a code's shard is
//! `code.value() % shards`, and a replacement code is drawn inside the same
//! shard, so every command touches one shard only.

use crate::code::{space, Code};
use crate::command::{
    AuditRedemptions, AuditVouchers, CatalogFact, Command, Effect, Issue, Issued, LookedUp, Lookup,
    Outcome, Redeem, Redeemed, RedemptionEntry, Reply, RequestId, Reverse, Reversed, SendReason,
    VoucherState,
};
use crate::error::{ErrorCode, InvalidCodeReason, Rejection};
use crate::limits::*;
use crate::validity::Validity;
use jiff::tz::TimeZone;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

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
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            shards: 2,
            time_zone: "Asia/Shanghai".into(),
            reversal_window_ms: 3_600_000,
            code_quarantine_ms: 90 * 86_400_000,
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
        TimeZone::get(&self.time_zone)
            .map_err(|e| format!("unknown time zone {:?}: {e}", self.time_zone))
    }
}

struct Voucher {
    order_id: Arc<str>,
    seller_id: u64,
    product_id: u64,
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
    #[allow(dead_code)]
    unit_price: Decimal,
}

struct Redemption {
    request_id: RequestId,
    voucher: u32,
    units: u32,
    at_ms: i64,
    outlet_id: u64,
    verifier_id: u64,
    pos_id: Option<u64>,
    fingerprint: u64,
    units_remaining_after: u32,
    new_code: Option<Code>,
    reversed: bool,
}

struct Reversal {
    fingerprint: u64,
    reply: Reversed,
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
    products: Map<u64, ProductFact>,
    /// Verifier → (seller, authorised outlets).
    verifiers: Map<u64, (u64, Vec<u64>)>,
    /// POS → (seller, outlet, registering provider).
    devices: Map<u64, (u64, u64, u64)>,
}

/// What a shard knows of a catalog product (see [`CatalogFact::Product`]).
#[derive(Clone, Debug, PartialEq)]
struct ProductFact {
    seller: u64,
    outlets: Vec<u64>,
    code_digits: Option<u8>,
    provider: Option<u64>,
    validity: Validity,
    listed: bool,
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
                ..
            } => Some(ProductFact {
                seller: *seller,
                outlets: outlets.clone(),
                code_digits: *code_digits,
                provider: *provider,
                validity: *validity,
                listed: *listed,
            }),
            _ => None,
        }
    }
}

/// Maps keyed by codes, request ids and order ids. foldhash: fast, and
/// seeded per process so that chosen keys cannot force collisions.
type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

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
        Ok(Shard {
            index,
            config,
            tz,
            rng,
            vouchers: Vec::new(),
            by_order: Map::default(),
            live: Map::default(),
            retired: Map::default(),
            quarantine: VecDeque::new(),
            codes_used: [0; 12],
            redemptions: Map::default(),
            log: Vec::new(),
            reversals: Map::default(),
            products: Map::default(),
            verifiers: Map::default(),
            devices: Map::default(),
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
            _ => false,
        }
    }

    /// Whether this shard holds the record of a redemption or reversal with
    /// request id `rid` (invariant 4).
    pub fn knows_request(&self, rid: &RequestId) -> bool {
        self.redemptions.contains_key(rid) || self.reversals.contains_key(rid)
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
        match command {
            Command::Issue(c) => self.issue(now_ms, c, effects),
            Command::Lookup(c) => self.lookup(now_ms, c),
            Command::Redeem(c) => self.redeem(now_ms, c, effects),
            Command::Reverse(c) => self.reverse(now_ms, c, effects),
            Command::AuditVouchers(c) => Ok(self.audit_vouchers(c)),
            Command::AuditRedemptions(c) => Ok(self.audit_redemptions(c)),
            Command::CatalogFact(f) => {
                match f {
                    CatalogFact::Product { id, .. } => {
                        if let Some(fact) = ProductFact::of(f) {
                            self.products.insert(*id, fact);
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
                Ok(Outcome::FactNoted)
            }
        }
    }

    fn release_quarantine(&mut self, now_ms: i64) {
        for _ in 0..QUARANTINE_RELEASE_PER_APPLY_MAX {
            match self.quarantine.front() {
                Some(&(at, code))
                    if at.saturating_add(self.config.code_quarantine_ms) <= now_ms =>
                {
                    self.quarantine.pop_front();
                    let removed = self.retired.remove(&code);
                    assert!(
                        removed.is_some(),
                        "quarantined code missing from retired set"
                    );
                    self.codes_used[usize::from(code.digits())] -= 1;
                }
                _ => break,
            }
        }
    }

    /// Draws a free code in this shard, starting at `digits` and lengthening
    /// when a length is at its density limit. First releases quarantined
    /// codes that are due at `now_ms`. Only commands that succeed or fail
    /// with `code_space_exhausted` draw, and both kinds are logged, so the
    /// releases happen at the same points on replay.
    fn draw_code(&mut self, digits: u8, now_ms: i64) -> Result<Code, Rejection> {
        self.release_quarantine(now_ms);
        let shards = u64::from(self.config.shards);
        for len in digits..=CODE_DIGITS_MAX {
            let per_shard = space(len) / shards;
            let cap = per_shard * CODE_DENSITY_PPM_MAX / 1_000_000;
            if self.codes_used[usize::from(len)] >= cap {
                continue;
            }
            for _ in 0..CODE_DRAW_ATTEMPTS_MAX {
                let r = self.rng.random_range(0..per_shard);
                let code = Code::new(len, r * shards + u64::from(self.index))
                    .expect("drawn value is inside the code space");
                if !self.live.contains_key(&code) && !self.retired.contains_key(&code) {
                    return Ok(code);
                }
            }
        }
        Err(Rejection::new(
            ErrorCode::CodeSpaceExhausted,
            "no free code at any length up to 11 digits",
        ))
    }

    fn issue(&mut self, now_ms: i64, c: &Issue, effects: &mut Vec<Effect>) -> Reply {
        if c.order_id.is_empty()
            || c.order_id.len() > ORDER_ID_BYTES_MAX
            || c.order_id.chars().any(char::is_control)
        {
            return Err(Rejection::new(
                ErrorCode::BadRequest,
                format!(
                    "order_id must be 1..={ORDER_ID_BYTES_MAX} bytes without control characters"
                ),
            ));
        }
        if c.units == 0 || c.units > VOUCHER_UNITS_MAX {
            return Err(Rejection::new(
                ErrorCode::BadRequest,
                format!("units must be 1..={VOUCHER_UNITS_MAX}, got {}", c.units),
            ));
        }
        if c.unit_price.is_sign_negative()
            || c.unit_price > Decimal::from(UNIT_PRICE_YUAN_MAX)
            || c.unit_price.normalize().scale() > 2
        {
            return Err(Rejection::new(
                ErrorCode::BadRequest,
                format!(
                    "unit_price must be 0..={UNIT_PRICE_YUAN_MAX} yuan with at most 2 decimals, got {}",
                    c.unit_price
                ),
            ));
        }
        if !(MOBILE_DIGITS_MIN..=MOBILE_DIGITS_MAX).contains(&c.mobile.len())
            || !c.mobile.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(Rejection::new(
                ErrorCode::BadRequest,
                format!("mobile must be {MOBILE_DIGITS_MIN}..={MOBILE_DIGITS_MAX} digits"),
            ));
        }
        if !(CODE_DIGITS_MIN..=CODE_DIGITS_MAX).contains(&c.code_digits) {
            return Err(Rejection::new(
                ErrorCode::BadRequest,
                format!("code_digits must be 6..=11, got {}", c.code_digits),
            ));
        }
        let fp = fingerprint(c);
        if let Some(&slot) = self.by_order.get(c.order_id.as_str()) {
            let v = &self.vouchers[slot as usize];
            if v.fingerprint != fp {
                return Err(Rejection::new(
                    ErrorCode::OrderConflict,
                    format!("order {} was issued with other content", c.order_id),
                ));
            }
            return Ok(Outcome::Issued(Issued {
                code: v.issued_code,
                units: v.units_total,
                valid_from_ms: v.valid_from_ms,
                valid_until_ms: v.valid_until_ms,
            }));
        }
        // A catalog product is sold only by its seller, only while listed.
        if let Some(p) = self.products.get(&c.product_id) {
            if p.seller != c.seller_id || !p.listed {
                return Err(Rejection::new(
                    ErrorCode::ProductNotForSale,
                    format!(
                        "product {} is {}",
                        c.product_id,
                        if p.listed {
                            format!("not seller {}'s", c.seller_id)
                        } else {
                            "delisted".to_string()
                        }
                    ),
                ));
            }
        }
        // A catalog product's validity is the product's (PUB-3, PRV-6), and
        // its code length its provider's setting (ORD-3).
        let fact = self.products.get(&c.product_id);
        let validity = fact.map_or(c.validity, |p| p.validity);
        let window = validity.resolve(now_ms, &self.tz)?;
        let digits = fact.and_then(|p| p.code_digits).unwrap_or(c.code_digits);
        let code = self.draw_code(digits, now_ms)?;
        let slot = u32::try_from(self.vouchers.len()).expect("fewer than 2^32 vouchers per shard");
        let order_id: Arc<str> = c.order_id.as_str().into();
        let mobile: Arc<str> = c.mobile.as_str().into();
        self.vouchers.push(Voucher {
            order_id: order_id.clone(),
            seller_id: c.seller_id,
            product_id: c.product_id,
            units_total: c.units,
            units_remaining: c.units,
            last4: last4_of(&c.mobile),
            mobile: mobile.clone(),
            valid_from_ms: window.from_ms,
            valid_until_ms: window.until_ms,
            live_code: Some(code),
            code_digits: code.digits(),
            issued_code: code,
            fingerprint: fp,
            unit_price: c.unit_price,
        });
        self.by_order.insert(order_id.clone(), slot);
        let fresh = self.live.insert(code, slot).is_none();
        assert!(fresh, "drawn code was already live");
        self.codes_used[usize::from(code.digits())] += 1;
        effects.push(Effect::SendCode {
            order_id,
            mobile,
            code,
            reason: SendReason::Issued,
        });
        Ok(Outcome::Issued(Issued {
            code,
            units: c.units,
            valid_from_ms: window.from_ms,
            valid_until_ms: window.until_ms,
        }))
    }

    /// Finds the voucher of a live code and checks phone digits and expiry.
    /// Every failure is the uniform `code_invalid` with a hidden reason.
    fn find_live(&self, now_ms: i64, code: Code, last4: &str) -> Result<u32, Rejection> {
        let Some(&slot) = self.live.get(&code) else {
            let reason = if self.retired.contains_key(&code) {
                InvalidCodeReason::Replaced
            } else {
                InvalidCodeReason::Unknown
            };
            return Err(Rejection::code_invalid(reason));
        };
        let v = &self.vouchers[slot as usize];
        if v.last4[..] != *last4.as_bytes() {
            return Err(Rejection::code_invalid(InvalidCodeReason::WrongPhoneDigits));
        }
        if now_ms >= v.valid_until_ms {
            return Err(Rejection::code_invalid(InvalidCodeReason::Expired));
        }
        Ok(slot)
    }

    fn lookup(&self, now_ms: i64, c: &Lookup) -> Reply {
        check_last4(&c.phone_last4)?;
        let slot = self.find_live(now_ms, c.code, &c.phone_last4)?;
        let v = &self.vouchers[slot as usize];
        self.check_tenant(v.product_id, v.seller_id, c.verifier_id, c.pos_id)?;
        Ok(Outcome::LookedUp(LookedUp {
            order_id: v.order_id.to_string(),
            seller_id: v.seller_id,
            product_id: v.product_id,
            units_remaining: v.units_remaining,
            units_total: v.units_total,
            valid_from_ms: v.valid_from_ms,
            valid_until_ms: v.valid_until_ms,
        }))
    }

    fn redeemed_reply(&self, r: &Redemption) -> Outcome {
        Outcome::Redeemed(Redeemed {
            order_id: self.vouchers[r.voucher as usize].order_id.to_string(),
            units: r.units,
            units_remaining: r.units_remaining_after,
            new_code: r.new_code,
        })
    }

    fn redeem(&mut self, now_ms: i64, c: &Redeem, effects: &mut Vec<Effect>) -> Reply {
        let fp = fingerprint(c);
        if let Some(&pos) = self.redemptions.get(&c.request_id) {
            let r = &self.log[pos as usize];
            if r.fingerprint != fp {
                return Err(Rejection::new(
                    ErrorCode::RequestConflict,
                    "request id already used with other content",
                ));
            }
            return Ok(self.redeemed_reply(r));
        }
        if self.reversals.contains_key(&c.request_id) {
            return Err(Rejection::new(
                ErrorCode::RequestConflict,
                "request id already used by a reversal",
            ));
        }
        if c.units == 0 {
            return Err(Rejection::new(
                ErrorCode::UnitsInvalid,
                "units must be at least 1",
            ));
        }
        check_last4(&c.phone_last4)?;
        let slot = self.find_live(now_ms, c.code, &c.phone_last4)?;
        let v = &self.vouchers[slot as usize];
        if now_ms < v.valid_from_ms {
            return Err(Rejection::new(
                ErrorCode::NotYetValid,
                "the voucher's validity has not started",
            ));
        }
        self.check_place(v.product_id, v.seller_id, c)?;
        if c.units > v.units_remaining {
            return Err(Rejection::new(
                ErrorCode::UnitsInsufficient,
                format!("{} units asked, {} remain", c.units, v.units_remaining),
            ));
        }
        let remaining = v.units_remaining - c.units;
        let digits = v.code_digits;
        // Draw before changing anything, so a full code space changes nothing.
        let new_code = if remaining > 0 {
            Some(self.draw_code(digits, now_ms)?)
        } else {
            None
        };
        self.retire(c.code, now_ms);
        let v = &mut self.vouchers[slot as usize];
        v.units_remaining = remaining;
        v.live_code = new_code;
        if let Some(code) = new_code {
            v.code_digits = code.digits();
        }
        assert!(v.units_remaining <= v.units_total);
        let order_id = v.order_id.clone();
        let mobile = v.mobile.clone();
        if let Some(code) = new_code {
            let fresh = self.live.insert(code, slot).is_none();
            assert!(fresh, "replacement code was already live");
            self.codes_used[usize::from(code.digits())] += 1;
        }
        let pos = u32::try_from(self.log.len()).expect("fewer than 2^32 redemptions per shard");
        self.log.push(Redemption {
            request_id: c.request_id,
            voucher: slot,
            units: c.units,
            at_ms: now_ms,
            outlet_id: c.outlet_id,
            verifier_id: c.verifier_id,
            pos_id: c.pos_id,
            fingerprint: fp,
            units_remaining_after: remaining,
            new_code,
            reversed: false,
        });
        self.redemptions.insert(c.request_id, pos);
        effects.push(Effect::RedemptionNotice {
            order_id: order_id.clone(),
            mobile: mobile.clone(),
            units: c.units,
        });
        if let Some(code) = new_code {
            effects.push(Effect::SendCode {
                order_id: order_id.clone(),
                mobile,
                code,
                reason: SendReason::Replaced,
            });
        }
        Ok(Outcome::Redeemed(Redeemed {
            order_id: order_id.to_string(),
            units: c.units,
            units_remaining: remaining,
            new_code,
        }))
    }

    /// ORD-7's checks of where and by whom a voucher is redeemed: the
    /// outlet is one of the product's, the verifier belongs to the seller
    /// and is authorised for the outlet, and a POS, when named, is
    /// registered for the seller at that outlet.
    ///
    /// The checks apply when the catalog knows the voucher's product. For a
    /// product it does not know (issued before the product was published
    /// through the catalog; Decision, see ARCHITECTURE.md) only the tenant
    /// is checked, and only for a verifier or POS the catalog knows.
    /// Runs only after the code and phone digits matched: no oracle.
    fn check_place(&self, product: u64, seller: u64, c: &Redeem) -> Result<(), Rejection> {
        let Some(fact) = self.product_of(product, seller) else {
            // A product the catalog does not know: a verifier or POS the
            // catalog knows must still be the seller's, at its own outlet.
            self.check_tenant(product, seller, Some(c.verifier_id), c.pos_id)?;
            if let Some((_, outlets)) = self.verifiers.get(&c.verifier_id) {
                if !outlets.contains(&c.outlet_id) {
                    return Err(Rejection::new(
                        ErrorCode::VerifierNotAuthorized,
                        format!(
                            "verifier {} is not authorised at outlet {}",
                            c.verifier_id, c.outlet_id
                        ),
                    ));
                }
            }
            if let Some((_, outlet, _)) = c.pos_id.and_then(|p| self.devices.get(&p)) {
                if *outlet != c.outlet_id {
                    return Err(Rejection::new(
                        ErrorCode::DeviceNotRegistered,
                        format!("the POS is not registered at outlet {}", c.outlet_id),
                    ));
                }
            }
            return Ok(());
        };
        if !fact.outlets.contains(&c.outlet_id) {
            return Err(Rejection::new(
                ErrorCode::OutletNotAllowed,
                format!("outlet {} is not an outlet of this product", c.outlet_id),
            ));
        }
        match self.verifiers.get(&c.verifier_id) {
            Some((s, o)) if *s == seller && o.contains(&c.outlet_id) => {}
            _ => {
                return Err(Rejection::new(
                    ErrorCode::VerifierNotAuthorized,
                    format!(
                        "verifier {} is not authorised for this seller at outlet {}",
                        c.verifier_id, c.outlet_id
                    ),
                ))
            }
        }
        if let Some(pos) = c.pos_id {
            match self.devices.get(&pos) {
                Some((s, outlet, provider))
                    if *s == seller
                        && *outlet == c.outlet_id
                        && fact.provider.is_none_or(|p| p == *provider) => {}
                _ => {
                    return Err(Rejection::new(
                        ErrorCode::DeviceNotRegistered,
                        format!(
                            "POS {pos} is not registered for this seller and product's code provider at outlet {}",
                            c.outlet_id
                        ),
                    ))
                }
            }
        }
        Ok(())
    }

    /// The catalog's fact of `product` when it is `seller`'s. A voucher
    /// issued for a product id before another seller published that id is
    /// not bound by the other seller's product (it gets the tenant check).
    fn product_of(&self, product: u64, seller: u64) -> Option<&ProductFact> {
        self.products.get(&product).filter(|p| p.seller == seller)
    }

    /// The tenant check shared by lookups and redemptions: a verifier or
    /// POS must belong to the voucher's seller. It applies when the catalog
    /// knows the product or the verifier or POS named; a verifier or POS
    /// unknown to the catalog, looking at a voucher of a product it does not
    /// know either, is not checked (Decision, see ARCHITECTURE.md).
    fn check_tenant(
        &self,
        product: u64,
        seller: u64,
        verifier: Option<u64>,
        pos: Option<u64>,
    ) -> Result<(), Rejection> {
        let product_known = self.product_of(product, seller).is_some();
        if let Some(v) = verifier {
            let owner = self.verifiers.get(&v).map(|(s, _)| *s);
            if owner.map_or(product_known, |s| s != seller) {
                return Err(Rejection::new(
                    ErrorCode::VerifierNotAuthorized,
                    format!("verifier {v} is not a verifier of this voucher's seller"),
                ));
            }
        }
        if let Some(p) = pos {
            let owner = self.devices.get(&p).map(|(s, _, _)| *s);
            if owner.map_or(product_known, |s| s != seller) {
                return Err(Rejection::new(
                    ErrorCode::DeviceNotRegistered,
                    format!("POS {p} is not registered for this voucher's seller"),
                ));
            }
        }
        Ok(())
    }

    /// Moves a live code to quarantine. The caller sets the voucher's new
    /// live code.
    fn retire(&mut self, code: Code, now_ms: i64) {
        let slot = self.live.remove(&code).expect("retired code was live");
        self.retired.insert(code, slot);
        self.quarantine.push_back((now_ms, code));
    }

    fn reverse(&mut self, now_ms: i64, c: &Reverse, effects: &mut Vec<Effect>) -> Reply {
        let fp = fingerprint(c);
        if let Some(r) = self.reversals.get(&c.request_id) {
            if r.fingerprint != fp {
                return Err(Rejection::new(
                    ErrorCode::RequestConflict,
                    "request id already used with other content",
                ));
            }
            return Ok(Outcome::Reversed(r.reply.clone()));
        }
        if self.redemptions.contains_key(&c.request_id) {
            return Err(Rejection::new(
                ErrorCode::RequestConflict,
                "request id already used by a redemption",
            ));
        }
        let unknown = || {
            Rejection::new(
                ErrorCode::RedemptionUnknown,
                "no redemption with that request id on this code's voucher",
            )
        };
        let &pos = self.redemptions.get(&c.redemption).ok_or_else(unknown)?;
        let r = &self.log[pos as usize];
        let code_slot = self.live.get(&c.code).or_else(|| self.retired.get(&c.code));
        if code_slot != Some(&r.voucher) {
            return Err(unknown());
        }
        if r.reversed {
            return Err(Rejection::new(
                ErrorCode::AlreadyReversed,
                "that redemption was already reversed",
            ));
        }
        let slot = r.voucher;
        let v = &self.vouchers[slot as usize];
        let by_pos = c.pos_id.is_some() && c.pos_id == r.pos_id;
        let by_seller = c.seller_id == Some(v.seller_id);
        if !by_pos && !by_seller {
            return Err(Rejection::new(
                ErrorCode::ReversalNotPermitted,
                "only the POS that redeemed or the voucher's seller may reverse",
            ));
        }
        if now_ms > r.at_ms.saturating_add(self.config.reversal_window_ms) {
            return Err(Rejection::new(
                ErrorCode::ReversalWindowPassed,
                "the reversal window of this redemption has passed",
            ));
        }
        let units = r.units;
        let digits = v.code_digits;
        let new_code = match v.live_code {
            Some(_) => None,
            None => Some(self.draw_code(digits, now_ms)?),
        };
        self.log[pos as usize].reversed = true;
        let v = &mut self.vouchers[slot as usize];
        v.units_remaining += units;
        assert!(
            v.units_remaining <= v.units_total,
            "reversal exceeds units bought"
        );
        if let Some(code) = new_code {
            v.live_code = Some(code);
            v.code_digits = code.digits();
        }
        let live_code = v.live_code.expect("voucher with units has a live code");
        let reply = Reversed {
            order_id: v.order_id.to_string(),
            units,
            units_remaining: v.units_remaining,
            live_code,
        };
        if let Some(code) = new_code {
            effects.push(Effect::SendCode {
                order_id: v.order_id.clone(),
                mobile: v.mobile.clone(),
                code,
                reason: SendReason::Reversal,
            });
            let fresh = self.live.insert(code, slot).is_none();
            assert!(fresh, "reversal code was already live");
            self.codes_used[usize::from(code.digits())] += 1;
        }
        self.reversals.insert(
            c.request_id,
            Reversal {
                fingerprint: fp,
                reply: reply.clone(),
            },
        );
        Ok(Outcome::Reversed(reply))
    }

    fn audit_vouchers(&self, c: &AuditVouchers) -> Outcome {
        let limit = c.limit.min(AUDIT_PAGE_ITEMS_MAX) as usize;
        let from = (c.from as usize).min(self.vouchers.len());
        let end = (from + limit).min(self.vouchers.len());
        let items = self.vouchers[from..end]
            .iter()
            .map(|v| VoucherState {
                order_id: v.order_id.to_string(),
                units_total: v.units_total,
                units_remaining: v.units_remaining,
                units_redeemed: v.units_total - v.units_remaining,
                live_code: v.live_code,
            })
            .collect();
        let next = (end < self.vouchers.len()).then_some(end as u32);
        Outcome::Vouchers { items, next }
    }

    fn audit_redemptions(&self, c: &AuditRedemptions) -> Outcome {
        let limit = c.limit.min(AUDIT_PAGE_ITEMS_MAX) as usize;
        let from = (c.from as usize).min(self.log.len());
        let end = (from + limit).min(self.log.len());
        let items = self.log[from..end]
            .iter()
            .map(|r| RedemptionEntry {
                request_id: r.request_id,
                order_id: self.vouchers[r.voucher as usize].order_id.to_string(),
                units: r.units,
                at_ms: r.at_ms,
                outlet_id: r.outlet_id,
                verifier_id: r.verifier_id,
                pos_id: r.pos_id,
                reversed: r.reversed,
            })
            .collect();
        let next = (end < self.log.len()).then_some(end as u32);
        Outcome::Redemptions { items, next }
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
            if !r.reversed {
                net[r.voucher as usize] += u64::from(r.units);
            }
        }
        for (v, n) in self.vouchers.iter().zip(net) {
            assert_eq!(
                u64::from(v.units_total - v.units_remaining),
                n,
                "redeemed units differ from the verification log"
            );
        }
    }
}
