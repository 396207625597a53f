//! Refunds on their way to the buyer (MON-7): every refund that pays the
//! buyer something is one transfer, numbered per order from 1, "in
//! transit" until the payment system confirms it (the money has left the
//! platform) or fails it (the money waits, still owed to the buyer, until
//! staff or the payment system retry it as a new transfer). Money in
//! transit or failed already counts as refunded for every cap.
//! Transfers route by order id, like the refund that made them.

use super::RequestId;
use crate::ids::SellerId;
use crate::money::Fen;
use serde::{Deserialize, Serialize};

/// Most transfers one order may have (its refunds and their retries):
/// after-sale requests stop at half of it, retries two below it (room for
/// an open after-sale request's confirmation and the one refund that
/// closes the order). A refused retry leaves the money failed and owed,
/// for staff.
pub const ORDER_TRANSFERS_MAX: u16 = 256;

/// Most transfers one [`ListTransfers`] page returns.
pub const TRANSFERS_PAGE_ITEMS_MAX: u32 = 1_000;

/// The payment system's answer about one transfer, or a retry.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TransferStep {
    /// Client request id.
    pub request_id: RequestId,
    /// The order.
    pub order_id: String,
    /// The transfer's number within the order, from 1.
    pub transfer: u16,
    /// What happened.
    pub action: TransferAction,
}

/// The steps of a transfer (MON-7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferAction {
    /// The money reached the buyer (payment system).
    Confirm,
    /// The transfer failed: the money is owed to the buyer again (payment
    /// system).
    Fail,
    /// Send a failed transfer's money again, as a new transfer (staff or
    /// the payment system).
    Retry,
}

impl TransferAction {
    /// The step as a verb: `confirm`, `fail`, `retry`.
    pub fn verb(self) -> &'static str {
        match self {
            TransferAction::Confirm => "confirm",
            TransferAction::Fail => "fail",
            TransferAction::Retry => "retry",
        }
    }
}

/// Where a transfer is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferState {
    /// Sent, not yet answered.
    InTransit,
    /// The money reached the buyer.
    Confirmed,
    /// Failed; the money is owed to the buyer until retried.
    Failed,
    /// Failed and sent again as transfer `retried_as`.
    Retried,
}

/// Where a transfer's money is held while it travels: the voucher's shard
/// for refunds out of escrow, the catalog for money taken back from the
/// seller (REF-5, and REF-1/REF-6 after a T+3 payout).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferSource {
    /// Out of the voucher's escrow.
    Escrow,
    /// Taken back from the seller by the catalog.
    TakenBack,
}

/// One transfer, as [`TransferStep`] and [`ListTransfers`] show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferView {
    /// The order.
    pub order_id: String,
    /// The order's seller.
    pub seller_id: SellerId,
    /// Its number within the order, from 1.
    pub transfer: u16,
    /// To the buyer, > 0.
    pub amount: Fen,
    /// Where its money is held.
    pub source: TransferSource,
    /// Where it is.
    pub state: TransferState,
    /// When it was sent, unix ms.
    pub sent_at_ms: i64,
    /// The failed transfer this one retries.
    pub retry_of: Option<u16>,
    /// The transfer that retried this one (state `retried`).
    pub retried_as: Option<u16>,
    /// True when this answers a retry of a step already applied.
    pub replayed: bool,
}

/// One page of a shard's transfers that await an answer (in transit) or a
/// retry (failed), oldest order first: what the payment system works
/// through (staff and the payment system only).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ListTransfers {
    /// Shard to read.
    pub shard: u32,
    /// Failed transfers instead of those in transit.
    pub failed: bool,
    /// Cursor: 0 for the first page, else the previous page's `next`.
    pub after: u64,
    /// Most items (≤ [`TRANSFERS_PAGE_ITEMS_MAX`]).
    pub limit: u32,
}

/// Reply to a [`ListTransfers`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferPage {
    /// The page.
    pub items: Vec<TransferView>,
    /// The cursor for the next page, None at the end.
    pub next: Option<u64>,
}

impl std::fmt::Display for TransferView {
    /// In words, without times: which transfer, how much, where it is.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.replayed {
            f.write_str("already done (a repeat; nothing applied again): ")?;
        }
        write!(
            f,
            "refund transfer {} of order {}: {} yuan to the buyer ({}), {}",
            self.transfer, self.order_id, self.amount, self.source, self.state
        )?;
        match (self.retry_of, self.retried_as) {
            (_, Some(n)) => write!(f, ", sent again as transfer {n}"),
            (Some(n), None) => write!(f, ", a retry of transfer {n}"),
            (None, None) => Ok(()),
        }
    }
}

impl std::fmt::Display for TransferState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TransferState::InTransit => "in transit",
            TransferState::Confirmed => "confirmed",
            TransferState::Failed => "failed",
            TransferState::Retried => "retried",
        })
    }
}

impl std::fmt::Display for TransferSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TransferSource::Escrow => "from escrow",
            TransferSource::TakenBack => "taken back from the seller",
        })
    }
}
