//! Commands, replies and effects: what goes into [`crate::Shard::apply`], what
//! comes back to the caller, and what the layers around the engine must do
//! (send an SMS, write history). These are the same types the protocol
//! carries and the storage log records.

mod ledger;
mod order;
mod transfer;
pub use ledger::*;
pub use order::*;
pub use transfer::*;

use crate::code::Code;
use crate::error::Rejection;
use crate::ids::{OutletId, PosId, ProductId, SellerId, VerifierId};
use crate::money::Fen;
use crate::validity::Validity;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// A client request id (DESIGN invariant 4): `source` is the POS device or
/// verifier account that numbers its requests, `serial` its serial number.
/// A retry with the same id returns the original reply and never applies
/// twice; the same id with different content is `request_conflict`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RequestId {
    /// The numbering party: a POS id or a verifier account id.
    pub source: u64,
    /// Its serial number.
    pub serial: u64,
}

/// Issue a voucher for a paid order (ORD-1, ORD-2, ORD-3). The order id is
/// the idempotency key: issuing the same order again with the same content
/// returns the original reply; with other content, `order_conflict`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Issue {
    /// Order id, 1..=64 bytes, unique per platform.
    pub order_id: String,
    /// Seller id.
    pub seller_id: SellerId,
    /// Product id.
    pub product_id: ProductId,
    /// Units bought, 1..=[`crate::limits::VOUCHER_UNITS_MAX`].
    pub units: u32,
    /// Unit price, fen, 0..=[`crate::limits::UNIT_PRICE_FEN_MAX`] (JSON: the
    /// yuan string, e.g. `"19.90"`).
    pub unit_price: Fen,
    /// Buyer mobile, 5..=15 ASCII digits; its last four digits guard the code.
    pub mobile: String,
    /// Validity window (PUB-3). For a product the catalog knows, the
    /// product's validity applies instead (PUB-3, PRV-6).
    pub validity: Validity,
    /// Code length wanted, 6..=11 (the code provider's setting). May be
    /// lengthened when that length is full (see `CODE_DENSITY_PPM_MAX`).
    pub code_digits: u8,
}

/// Look a code up without consuming it (ORD-9). Needs the last four phone
/// digits, like a redemption, so that it is no guessing oracle.
///
/// `verifier_id` and `pos_id` name who is looking; the server sets them
/// from a verifier's or POS device's credential. A verifier or POS of
/// another seller than the voucher's is refused (`verifier_not_authorized`,
/// `device_not_registered`), like a redemption, and sees nothing.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Lookup {
    /// The code the buyer shows.
    pub code: Code,
    /// Last four digits of the buyer's phone, as ASCII digits.
    pub phone_last4: String,
    /// The verifier account looking, if any.
    pub verifier_id: Option<VerifierId>,
    /// The POS device looking, if any.
    pub pos_id: Option<PosId>,
}

/// Redeem `units` of the voucher behind `code` (ORD-7, ORD-8, ORD-10).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Redeem {
    /// Client request id (POS serial number).
    pub request_id: RequestId,
    /// The code the buyer shows.
    pub code: Code,
    /// Last four digits of the buyer's phone.
    pub phone_last4: String,
    /// Units to redeem, 1 ≤ units ≤ remaining.
    pub units: u32,
    /// Outlet where the redemption happens.
    pub outlet_id: OutletId,
    /// Verifier account; `VerifierId(0)` leaves it to the server, which
    /// fills in the verifier account of the token sending it (only a
    /// verifier account's own token may leave it out).
    pub verifier_id: VerifierId,
    /// POS id for device redemptions.
    pub pos_id: Option<PosId>,
}

/// Reverse (冲正) a redemption by its request id: once only, by the same POS,
/// by the verifier account that redeemed it, or by the voucher's seller,
/// within the reversal window. The units go back
/// onto the voucher's current live code; when the voucher had none left, a
/// new code is issued for them (Decision, see ARCHITECTURE.md).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Reverse {
    /// This reversal's own request id.
    pub request_id: RequestId,
    /// Any code the voucher had: the one redeemed, or its replacement. Routes
    /// the command to the voucher's shard.
    pub code: Code,
    /// Request id of the redemption to reverse.
    pub redemption: RequestId,
    /// The POS asking, when a POS asks; must equal the redemption's POS.
    pub pos_id: Option<PosId>,
    /// The verifier account asking, when one asks without a POS; must
    /// equal the redemption's verifier account.
    pub verifier_id: Option<VerifierId>,
    /// The seller asking, when the seller asks; must be the voucher's seller.
    pub seller_id: Option<SellerId>,
}

/// Read a voucher's history (ORD-10, issue 8): its issue, every
/// redemption (outlet, verifier, POS, units), reversal and code
/// replacement, oldest first. Staff and the voucher's seller only: to
/// anyone else, and for a code no voucher has (or whose quarantine ended),
/// the reply is the uniform `code_invalid`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct History {
    /// Any code the voucher had: its live code, or one it had before
    /// (while that code is in quarantine, 90 days by default).
    pub code: Code,
    /// The seller asking; the server sets it from a seller's credential
    /// (None for staff).
    pub seller_id: Option<SellerId>,
    /// First event to return (0 for the first page).
    pub from: u32,
    /// Most events to return (≤ `AUDIT_PAGE_ITEMS_MAX`).
    pub limit: u32,
}

/// Read one page of vouchers of a shard, for the end-of-run audit.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AuditVouchers {
    /// Shard to read.
    pub shard: u32,
    /// First voucher slot to return.
    pub from: u32,
    /// Most vouchers to return (≤ `AUDIT_PAGE_ITEMS_MAX`).
    pub limit: u32,
}

/// Read one page of a shard's verification log (ORD-10), for the audit.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AuditRedemptions {
    /// Shard to read.
    pub shard: u32,
    /// First log position to return.
    pub from: u32,
    /// Most entries to return (≤ `AUDIT_PAGE_ITEMS_MAX`).
    pub limit: u32,
}

/// Every command a client may send to a voucher shard. Internal inputs
/// (catalog facts) are not commands: see [`crate::log::ShardInput`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Command {
    /// See [`Issue`].
    Issue(Issue),
    /// See [`Lookup`].
    Lookup(Lookup),
    /// See [`Redeem`].
    Redeem(Redeem),
    /// See [`Reverse`].
    Reverse(Reverse),
    /// See [`History`].
    History(History),
    /// See [`AuditVouchers`].
    AuditVouchers(AuditVouchers),
    /// See [`AuditRedemptions`].
    AuditRedemptions(AuditRedemptions),
    /// See [`Refund`].
    Refund(Refund),
    /// See [`Extend`].
    Extend(Extend),
    /// See [`OrderShow`].
    Order(OrderShow),
    /// See [`TransferStep`].
    TransferStep(TransferStep),
    /// See [`ListTransfers`].
    Transfers(ListTransfers),
    /// See [`ListOrders`].
    Orders(ListOrders),
    /// See [`ListEntries`].
    Entries(ListEntries),
}

impl Command {
    /// The client request id of a redemption or reversal.
    pub fn request_id(&self) -> Option<RequestId> {
        match self {
            Command::Redeem(c) => Some(c.request_id),
            Command::Reverse(c) => Some(c.request_id),
            Command::Refund(c) => Some(c.request_id),
            Command::Extend(c) => Some(c.request_id),
            Command::TransferStep(c) => Some(c.request_id),
            _ => None,
        }
    }

    /// True for commands that may change state.
    pub fn is_mutation(&self) -> bool {
        matches!(
            self,
            Command::Issue(_)
                | Command::Redeem(_)
                | Command::Reverse(_)
                | Command::Refund(_)
                | Command::Extend(_)
                | Command::TransferStep(_)
        )
    }
}

/// Reply to an [`Issue`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Issued {
    /// The code first issued for the order.
    pub code: Code,
    /// Units bought.
    pub units: u32,
    /// The voucher's live code now: `code` on the first reply; on a
    /// repeat, the replacement after partial redemptions (ORD-8), or None
    /// when no units remain.
    pub live_code: Option<Code>,
    /// Units left now (equal to `units` on the first reply).
    pub units_remaining: u32,
    /// True when this reply answers a repeat of an order already issued
    /// (ORD-1: nothing was issued again).
    pub replayed: bool,
    /// Start of validity, unix milliseconds.
    pub valid_from_ms: i64,
    /// End of validity, exclusive, unix milliseconds: the first instant at
    /// which the voucher is expired (00:00:00 of the day after the end date).
    pub valid_until_ms: i64,
}

/// Reply to a [`Lookup`] (ORD-9).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LookedUp {
    /// Order id.
    pub order_id: String,
    /// Seller id.
    pub seller_id: SellerId,
    /// Product id.
    pub product_id: ProductId,
    /// Units left.
    pub units_remaining: u32,
    /// Units bought.
    pub units_total: u32,
    /// Start of validity, unix ms.
    pub valid_from_ms: i64,
    /// End of validity, exclusive, unix ms.
    pub valid_until_ms: i64,
}

/// Reply to a [`Redeem`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Redeemed {
    /// Order id of the voucher.
    pub order_id: String,
    /// Units redeemed by this request.
    pub units: u32,
    /// Units left after it.
    pub units_remaining: u32,
    /// The new code for the remaining units (None when none remain).
    pub new_code: Option<Code>,
    /// True when this reply answers a retry of a redemption already
    /// applied (invariant 4): it repeats the original reply, nothing was
    /// redeemed again, and `new_code` may have been replaced since.
    pub replayed: bool,
}

/// Reply to a [`Reverse`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reversed {
    /// Order id of the voucher.
    pub order_id: String,
    /// Units given back.
    pub units: u32,
    /// Units left after the reversal.
    pub units_remaining: u32,
    /// The voucher's live code after the reversal.
    pub live_code: Code,
    /// True when this reply answers a retry of a reversal already applied:
    /// it repeats the original reply and nothing was reversed again.
    pub replayed: bool,
}

/// One event of a voucher's history (see [`History`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum HistoryEvent {
    /// The order was issued its first code.
    Issued {
        /// When, unix ms.
        at_ms: i64,
        /// The code.
        code: Code,
        /// Units bought.
        units: u32,
    },
    /// Units were redeemed (ORD-10); the rest moved to `new_code` (ORD-8).
    Redeemed {
        /// When, unix ms.
        at_ms: i64,
        /// The redemption's request id (a reversal names it).
        request_id: RequestId,
        /// The code redeemed (retired by this redemption).
        code: Code,
        /// Units redeemed.
        units: u32,
        /// Units left after it.
        units_remaining: u32,
        /// Outlet.
        outlet_id: OutletId,
        /// Verifier account.
        verifier_id: VerifierId,
        /// POS, for device redemptions.
        pos_id: Option<PosId>,
        /// The replacement code for the units left; None when none were left.
        new_code: Option<Code>,
    },
    /// A redemption was reversed (冲正); its units went back.
    Reversed {
        /// When, unix ms.
        at_ms: i64,
        /// The reversal's request id.
        request_id: RequestId,
        /// The redemption reversed.
        redemption: RequestId,
        /// Units given back.
        units: u32,
        /// A new code, drawn when the voucher had no live code left.
        new_code: Option<Code>,
    },
}

impl HistoryEvent {
    /// When it happened, unix ms.
    pub fn at_ms(&self) -> i64 {
        match self {
            HistoryEvent::Issued { at_ms, .. }
            | HistoryEvent::Redeemed { at_ms, .. }
            | HistoryEvent::Reversed { at_ms, .. } => *at_ms,
        }
    }
}

/// Reply to a [`History`]: the voucher now and one page of its events.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoucherHistory {
    /// Order id.
    pub order_id: String,
    /// Seller id.
    pub seller_id: SellerId,
    /// Product id.
    pub product_id: ProductId,
    /// Units bought.
    pub units_total: u32,
    /// Units left now.
    pub units_remaining: u32,
    /// The live code now; None when no units remain.
    pub live_code: Option<Code>,
    /// Start of validity, unix ms.
    pub valid_from_ms: i64,
    /// End of validity, exclusive, unix ms.
    pub valid_until_ms: i64,
    /// The page of events, oldest first.
    pub events: Vec<HistoryEvent>,
    /// The `from` of the next page; None at the end.
    pub next: Option<u32>,
}

/// One voucher as the audit sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoucherState {
    /// Order id.
    pub order_id: String,
    /// Units bought.
    pub units_total: u32,
    /// Units left.
    pub units_remaining: u32,
    /// Units redeemed and not reversed.
    pub units_redeemed: u32,
    /// Units void by a refund or the expiry (REF, ORD-12).
    pub units_void: u32,
    /// The live code, if units remain.
    pub live_code: Option<Code>,
}

/// One verification-log entry (ORD-10) as the audit sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedemptionEntry {
    /// Request id of the redemption.
    pub request_id: RequestId,
    /// Order id of the voucher.
    pub order_id: String,
    /// Units redeemed.
    pub units: u32,
    /// Time of redemption, unix ms.
    pub at_ms: i64,
    /// Outlet.
    pub outlet_id: OutletId,
    /// Verifier account.
    pub verifier_id: VerifierId,
    /// POS id, for device redemptions.
    pub pos_id: Option<PosId>,
    /// Whether it was reversed.
    pub reversed: bool,
}

/// A successful reply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// See [`Issued`].
    Issued(Issued),
    /// See [`LookedUp`].
    LookedUp(LookedUp),
    /// See [`Redeemed`].
    Redeemed(Redeemed),
    /// See [`Reversed`].
    Reversed(Reversed),
    /// See [`VoucherHistory`].
    History(VoucherHistory),
    /// A page of vouchers; `next` is the slot to ask for next, None at the end.
    Vouchers {
        /// The page.
        items: Vec<VoucherState>,
        /// Next `from`, or None when the shard has no more.
        next: Option<u32>,
    },
    /// A page of the verification log.
    Redemptions {
        /// The page.
        items: Vec<RedemptionEntry>,
        /// Next `from`, or None at the end.
        next: Option<u32>,
    },
    /// See [`Refunded`].
    Refunded(Refunded),
    /// See [`Extended`].
    Extended(Extended),
    /// See [`OrderView`].
    Order(OrderView),
    /// See [`TransferView`].
    Transfer(TransferView),
    /// See [`TransferPage`].
    Transfers(TransferPage),
    /// See [`OrderPage`].
    Orders(OrderPage),
    /// See [`EntryPage`].
    Entries(EntryPage),
}

/// What a command returns: an outcome or a rejection.
pub type Reply = Result<Outcome, Rejection>;

/// Why a code is sent to the buyer's phone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SendReason {
    /// First issue of the order (ORD-2).
    Issued,
    /// New code after a reversal gave units back to a used-up voucher.
    Reversal,
    /// New code after the seller rejected a refund request: the units are
    /// unlocked (REF-2).
    Unlocked,
}

/// Whom an effect is about: the voucher's order and buyer, and whose
/// product it is (the SMS names the seller's customer-service phone,
/// ONB-2; a provider's product tells its provider, PRV).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    /// Order id (shared with the engine's voucher, no copy).
    pub order_id: Arc<str>,
    /// Buyer mobile.
    pub mobile: Arc<str>,
    /// The product's seller.
    pub seller_id: SellerId,
    /// The product.
    pub product_id: ProductId,
}

/// Work the layers around the engine must do after the batch is durable:
/// each becomes one outbox message (ORD-2). Effects made by a shard are
/// numbered in order ([`crate::Shard::effects_made`]), so a message's id
/// is the same live and after recovery. Stored in the outbox as postcard:
/// new variants go at the end.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Effect {
    /// Send `code` to the buyer's phone by SMS (ORD-2 issue, and a new
    /// code after a reversal or a rejected refund request).
    SendCode {
        /// The voucher.
        to: Recipient,
        /// The code to send.
        code: Code,
        /// Units on the code.
        units: u32,
        /// Why.
        reason: SendReason,
    },
    /// Tell the buyer that `units` were redeemed (ORD-8 success SMS), with
    /// the units left and the new code that now carries them.
    RedemptionNotice {
        /// The voucher.
        to: Recipient,
        /// Units redeemed.
        units: u32,
        /// Units left on the voucher.
        units_remaining: u32,
        /// The code for the units left (ORD-8); None when none are left.
        new_code: Option<Code>,
    },
    /// Tell the buyer that `amount` is refunded (REF); `code_void`: the
    /// refund voided the code, so no code message of the order that is
    /// still unsent may go out any more.
    RefundNotice {
        /// The voucher.
        to: Recipient,
        /// Refunded to the buyer, fen.
        amount: crate::money::Fen,
        /// The refund voided the voucher's code.
        code_void: bool,
    },
}

impl Effect {
    /// The code the message gives the buyer, if any.
    pub fn code(&self) -> Option<Code> {
        match self {
            Effect::SendCode { code, .. } => Some(*code),
            Effect::RedemptionNotice { new_code, .. } => *new_code,
            Effect::RefundNotice { .. } => None,
        }
    }

    /// The voucher the effect is about.
    pub fn recipient(&self) -> &Recipient {
        match self {
            Effect::SendCode { to, .. }
            | Effect::RedemptionNotice { to, .. }
            | Effect::RefundNotice { to, .. } => to,
        }
    }
}

impl std::fmt::Display for RequestId {
    /// `SOURCE:SERIAL`, the form the CLI takes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.source, self.serial)
    }
}

impl Outcome {
    /// The reply as the first application of the command gave it: a
    /// repeat's reply with `replayed` cleared and, for an issue, the live
    /// code and units of that first reply. Equal replies to the same
    /// request compare equal after it (clients and tests comparing a retry
    /// with the original).
    pub fn as_first(&self) -> Outcome {
        match self {
            Outcome::Issued(i) => Outcome::Issued(Issued {
                live_code: Some(i.code),
                units_remaining: i.units,
                replayed: false,
                ..i.clone()
            }),
            Outcome::Redeemed(r) => Outcome::Redeemed(Redeemed {
                replayed: false,
                ..r.clone()
            }),
            Outcome::Reversed(r) => Outcome::Reversed(Reversed {
                replayed: false,
                ..r.clone()
            }),
            other => other.clone(),
        }
    }
}

impl std::fmt::Display for Outcome {
    /// One short sentence without times (the CLI adds them in the
    /// platform's time zone). A repeat says so first.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Issued(i) if i.replayed => {
                write!(
                    f,
                    "already issued (a repeat; nothing issued again): code {} for {} units; ",
                    i.code, i.units
                )?;
                match i.live_code {
                    Some(c) if c == i.code => {
                        write!(f, "{} units remaining on it", i.units_remaining)
                    }
                    Some(c) => write!(
                        f,
                        "that code was replaced, {} units remaining on live code {c}",
                        i.units_remaining
                    ),
                    None => write!(f, "no units remain, the voucher has no live code"),
                }
            }
            Outcome::Issued(i) => write!(f, "issued code {} for {} units", i.code, i.units),
            Outcome::LookedUp(l) => write!(
                f,
                "order {}: {} of {} units remaining",
                l.order_id, l.units_remaining, l.units_total
            ),
            Outcome::Redeemed(r) => {
                if r.replayed {
                    f.write_str("already redeemed (a repeat; nothing redeemed again): ")?;
                }
                match r.new_code {
                    Some(c) => write!(
                        f,
                        "redeemed {} units of order {}; {} left on new code {c}",
                        r.units, r.order_id, r.units_remaining
                    ),
                    None => write!(
                        f,
                        "redeemed {} units of order {}; none left",
                        r.units, r.order_id
                    ),
                }
            }
            Outcome::Reversed(r) => {
                if r.replayed {
                    f.write_str("already reversed (a repeat; nothing reversed again): ")?;
                }
                write!(
                    f,
                    "reversed {} units of order {}; {} left on code {}",
                    r.units, r.order_id, r.units_remaining, r.live_code
                )
            }
            Outcome::History(h) => write!(
                f,
                "order {}: {} of {} units remaining, {} events",
                h.order_id,
                h.units_remaining,
                h.units_total,
                h.events.len()
            ),
            Outcome::Vouchers { items, .. } => write!(f, "{} vouchers", items.len()),
            Outcome::Redemptions { items, .. } => write!(f, "{} redemptions", items.len()),
            Outcome::Refunded(r) => write!(f, "{r}"),
            Outcome::Extended(x) => {
                if x.replayed {
                    f.write_str("already extended (a repeat): ")?;
                }
                write!(f, "order {} validity extended", x.order_id)
            }
            Outcome::Order(o) => write!(f, "order {} is {}", o.order_id, o.state),
            Outcome::Transfer(t) => write!(f, "{t}"),
            Outcome::Transfers(p) => write!(f, "{} refund transfers", p.items.len()),
            Outcome::Orders(p) => write!(f, "{} orders", p.items.len()),
            Outcome::Entries(p) => write!(f, "{} ledger entries", p.items.len()),
        }
    }
}
