//! The order commands on top of the voucher core: refunds (REF-1..6),
//! validity extension (ORD-6) and the order's state (ORD-12), with their
//! replies. Like redemptions, every mutation carries a client request id
//! and is idempotent (invariant 4); they route by order id, to the shard
//! that issued the order.

use super::RequestId;
use crate::code::Code;
use crate::ids::{ProductId, SellerId};
use crate::money::Fen;
use serde::{Deserialize, Serialize};

/// Longest after-sale reason a buyer may give, bytes.
pub const REFUND_REASON_BYTES_MAX: usize = 512;

/// A refund step for one order (REF-1..5). Who may send which step is the
/// server's role matrix: the front end acts for the buyer (automatic,
/// request, after-sale, and the not-delivered refund, which the shard
/// refuses once a code was delivered, ORD-2), the seller decides (agreed,
/// approve, reject); staff may do all.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Refund {
    /// Client request id.
    pub request_id: RequestId,
    /// The order.
    pub order_id: String,
    /// The step.
    pub action: RefundAction,
    /// The asking seller, filled in by the server for a seller's token:
    /// another seller's order is `not_found`, like an unknown one (no
    /// oracle). None for the front end and staff.
    pub seller_id: Option<SellerId>,
}

/// The steps of the refund kinds.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundAction {
    /// REF-1: the buyer's unexpired automatic refund of every unredeemed
    /// unit (categories that support it), applied at once.
    Automatic,
    /// REF-3: no code delivery ever succeeded and nothing was redeemed:
    /// the whole order amount back, no code fee.
    NotDelivered,
    /// REF-4: the seller agreed with the buyer on `amount`, 0 < amount ≤
    /// the unredeemed value; every unredeemed unit is void.
    Agreed {
        /// Fen to the buyer.
        amount: Fen,
    },
    /// REF-2: the buyer asks for a manual refund (categories without the
    /// automatic one) of `amount` (default: the unredeemed value); the
    /// unredeemed units are locked until the seller decides, or 5 calendar
    /// days pass (then it is approved).
    Request {
        /// Fen asked; None for the whole unredeemed value.
        amount: Option<Fen>,
    },
    /// REF-2: the seller approves the open request (as REF-4 with its
    /// amount).
    Approve,
    /// REF-2: the seller rejects the open request: the units are unlocked
    /// and a new code is sent.
    Reject,
    /// REF-5: after the order's money was paid to the seller, the buyer
    /// asks for `amount` back with a reason; one open request per order.
    AfterSale {
        /// Fen asked, > 0, at most what the seller received for the order
        /// less what was already taken back.
        amount: Fen,
        /// The buyer's reason, 1..=`REFUND_REASON_BYTES_MAX` bytes.
        reason: String,
    },
    /// REF-5: the seller confirms the open after-sale request: the amount
    /// is taken back from the seller's deposit (or owed) and refunded.
    ConfirmAfterSale,
}

/// Which rule a refund followed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundKind {
    /// REF-1.
    Automatic,
    /// REF-2.
    Manual,
    /// REF-3.
    NotDelivered,
    /// REF-4.
    Agreed,
    /// REF-6 (not a request: applied by the tick at the validity end).
    Expiry,
    /// REF-5.
    AfterSale,
}

/// Where a refund step left the order's refund.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundState {
    /// Applied: the money moved, the units are void.
    Done,
    /// A REF-2 request is open: the units are locked.
    Requested,
    /// The seller rejected the request: the units are free again.
    Rejected,
}

/// Reply to a [`Refund`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refunded {
    /// The order.
    pub order_id: String,
    /// The rule followed.
    pub kind: RefundKind,
    /// Where the refund is.
    pub state: RefundState,
    /// To the buyer (in transit until the payment system confirms, MON-7).
    pub buyer_amount: Fen,
    /// Kept as the code fee, paid to the seller (REF-1, REF-6).
    pub code_fee: Fen,
    /// To the seller besides the code fee (the ratio remainder, or the
    /// rest of an agreed refund).
    pub seller_amount: Fen,
    /// Units voided by this step.
    pub units_voided: u32,
    /// The order's still-refundable figure afterwards.
    pub refundable: Fen,
    /// The new code after a rejected request (the old one is void).
    pub new_code: Option<Code>,
    /// The transfer that carries `buyer_amount` to the buyer (MON-7), when
    /// the step paid the buyer something.
    pub transfer: Option<u16>,
    /// True when this answers a retry of a step already applied.
    pub replayed: bool,
}

/// ORD-6: the seller moves one order's validity end later.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Extend {
    /// Client request id.
    pub request_id: RequestId,
    /// The order.
    pub order_id: String,
    /// The new end, unix ms (exclusive), after the current one.
    pub valid_until_ms: i64,
    /// The asking seller (filled in by the server for a seller's token).
    pub seller_id: Option<SellerId>,
}

/// Reply to an [`Extend`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extended {
    /// The order.
    pub order_id: String,
    /// Validity start, unix ms.
    pub valid_from_ms: i64,
    /// The new end, unix ms (exclusive).
    pub valid_until_ms: i64,
    /// True when this answers a retry.
    pub replayed: bool,
}

/// One order's state for its seller (ORD-12, RPT-2) and its money.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct OrderShow {
    /// The order.
    pub order_id: String,
    /// The asking seller (filled in for a seller's token): another's order
    /// is `not_found`.
    pub seller_id: Option<SellerId>,
}

/// Most orders one [`ListOrders`] page returns.
pub const ORDERS_PAGE_ITEMS_MAX: u32 = 1_000;

/// Most vouchers one [`ListOrders`] request looks at: a filter that
/// matches little returns a short (even empty) page with a cursor, so
/// every request does bounded work.
pub const ORDERS_SCAN_MAX: u32 = 20_000;

/// One page of a shard's orders for their seller (ORD-12, RPT-2), in issue
/// order, optionally of one state.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ListOrders {
    /// Shard to read.
    pub shard: u32,
    /// Only this seller's (filled in by the server for a seller's token).
    pub seller_id: Option<SellerId>,
    /// Only orders in this state.
    pub state: Option<OrderState>,
    /// First voucher position to look at: 0, then the previous page's
    /// `next`.
    pub from: u32,
    /// Most items (≤ [`ORDERS_PAGE_ITEMS_MAX`]).
    pub limit: u32,
}

/// One order in a list (ORD-12).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderSummary {
    /// The order.
    pub order_id: String,
    /// Its seller.
    pub seller_id: SellerId,
    /// Its product.
    pub product_id: ProductId,
    /// ORD-12.
    pub state: OrderState,
    /// Why `unavailable`.
    pub unavailable: Option<Unavailable>,
    /// Units bought.
    pub units_total: u32,
    /// Units left to redeem.
    pub units_remaining: u32,
    /// What the buyer paid.
    pub paid: Fen,
    /// The one still-refundable figure.
    pub refundable: Fen,
    /// Validity end, unix ms (exclusive).
    pub valid_until_ms: i64,
}

/// Reply to a [`ListOrders`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderPage {
    /// The page.
    pub items: Vec<OrderSummary>,
    /// Where to go on (`from` of the next request), None at the end.
    pub next: Option<u32>,
}

/// ORD-12's order states.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderState {
    /// Units remain.
    Available,
    /// Every unit redeemed.
    Used,
    /// Refunded or expired (see [`Unavailable`]).
    Unavailable,
}

/// Why an order is `unavailable`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unavailable {
    /// Its unredeemed units were refunded.
    Refunded,
    /// Its validity ended with units unused (REF-6 / SET-1 end).
    Expired,
}

/// Reply to an [`OrderShow`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderView {
    /// The order.
    pub order_id: String,
    /// Its seller.
    pub seller_id: SellerId,
    /// Its product.
    pub product_id: ProductId,
    /// ORD-12.
    pub state: OrderState,
    /// Why `unavailable`.
    pub unavailable: Option<Unavailable>,
    /// Units bought.
    pub units_total: u32,
    /// Units left to redeem.
    pub units_remaining: u32,
    /// Units redeemed, not reversed.
    pub units_redeemed: u32,
    /// Units void by a refund or the expiry.
    pub units_void: u32,
    /// An after-sale request is open (REF-5).
    pub after_sale_requested: bool,
    /// Taken back from the seller for after-sale refunds (REF-5).
    pub taken_back: Fen,
    /// A REF-2 request is open (units locked).
    pub refund_requested: bool,
    /// A code reached the buyer: the SMS gateway accepted a message
    /// carrying one (ORD-2 `issued`). REF-3 needs it false.
    pub delivered: bool,
    /// Validity start and end, unix ms.
    pub valid_from_ms: i64,
    /// Validity end, unix ms (exclusive).
    pub valid_until_ms: i64,
    /// What the buyer paid.
    pub paid: Fen,
    /// Refunded to the buyer.
    pub refunded: Fen,
    /// What left the escrow for the seller: redemptions (those inside
    /// their reversal window are still pending), refund shares and code
    /// fees, the T+3 payout, the expiry.
    pub to_seller: Fen,
    /// Still held for the order.
    pub escrow: Fen,
    /// The one still-refundable figure (REF).
    pub refundable: Fen,
    /// Its refund transfers to the buyer (MON-7), in order.
    pub transfers: Vec<super::TransferView>,
}

impl std::fmt::Display for RefundKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RefundKind::Automatic => "automatic refund",
            RefundKind::Manual => "manual refund",
            RefundKind::NotDelivered => "not-delivered refund",
            RefundKind::Agreed => "agreed refund",
            RefundKind::Expiry => "expiry refund",
            RefundKind::AfterSale => "after-sale refund",
        })
    }
}

impl std::fmt::Display for OrderState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            OrderState::Available => "available",
            OrderState::Used => "used",
            OrderState::Unavailable => "unavailable",
        })
    }
}

impl std::fmt::Display for Refunded {
    /// In words: what the step did and the money, in yuan.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.replayed {
            f.write_str("already done (a repeat; nothing applied again): ")?;
        }
        match self.state {
            RefundState::Requested => write!(
                f,
                "{} of {} yuan requested for order {}; its units are locked until the seller decides",
                self.kind, self.buyer_amount, self.order_id
            ),
            RefundState::Rejected => write!(
                f,
                "refund request of order {} rejected; its units are unlocked on new code {} (the old code no longer works)",
                self.order_id,
                self.new_code.map_or_else(|| "-".to_string(), |c| c.to_string())
            ),
            RefundState::Done => write!(
                f,
                "{} of order {}: {} yuan to the buyer, the code fee of {} yuan and {} yuan more to the seller; {} void; {} yuan still refundable",
                self.kind,
                self.order_id,
                self.buyer_amount,
                self.code_fee,
                self.seller_amount,
                crate::words::count(u64::from(self.units_voided), "unit", "units"),
                self.refundable
            )
            .and_then(|()| match self.transfer {
                Some(n) => write!(f, "; refund transfer {n} in transit to the buyer"),
                None => Ok(()),
            }),
        }
    }
}
