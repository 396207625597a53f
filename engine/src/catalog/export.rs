//! RPT-5 for the catalog: its ledger entries (payment accounts, deposits,
//! payables, payouts, money taken back from sellers) as export rows. Each
//! entry links to what it belongs to ([`CatalogLink`]), which gives the
//! row its seller, order and settlement.

use super::check::reject;
use super::{Account, Catalog, PayoutState};
use crate::command::{
    check_entries_request, EntryPage, EntryRow, EntryState, LedgerName, TransferState,
    ENTRIES_SCAN_MAX,
};
use crate::error::{ErrorCode, Rejection};
use crate::ids::SellerId;
use crate::ledger::Reason;
use std::sync::Arc;

/// What a catalog entry belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CatalogLink {
    /// Nothing besides its accounts (top-ups, deposits).
    None,
    /// The payable line at this position (what one shard message booked).
    Line(u32),
    /// This settlement (its netting, payout and the payout's answer).
    Settlement(u64),
    /// Money taken back from `seller` for order `.1` (REF-5, MON-7), as
    /// logged by earlier builds (without the transfer's number).
    Order(SellerId, Arc<str>),
    /// Money taken back from `seller` for order `.1`, its refund transfer
    /// `.2` (numbered per order in the order's shard).
    Transfer(SellerId, Arc<str>, u16),
}

/// One entry of the catalog's ledger (MON-3).
pub type Entry = crate::ledger::Entry<Account, CatalogLink>;

impl Account {
    /// The stable name, as in the RPT-5 export; the seller is in its own
    /// column, a deposit's category in the name (`deposit.12`).
    pub fn name(&self) -> String {
        match self {
            Account::External => "external".into(),
            Account::Payment(_) => "payment".into(),
            Account::Deposit(_, c) => format!("deposit.{c}"),
            Account::GroupBuyingDeposit(_) => "group_buying_deposit".into(),
            Account::FromShards => "from_shards".into(),
            Account::Payable(_) => "payable".into(),
            Account::PayoutInTransit(_) => "payout_in_transit".into(),
            Account::RefundsInTransit => "refunds_in_transit".into(),
            Account::Receivable(_) => "receivable".into(),
            Account::RefundsFailed => "refunds_failed".into(),
        }
    }

    /// The seller whose account it is, if any.
    pub fn seller(&self) -> Option<SellerId> {
        match self {
            Account::Payment(s)
            | Account::Deposit(s, _)
            | Account::GroupBuyingDeposit(s)
            | Account::Payable(s)
            | Account::PayoutInTransit(s)
            | Account::Receivable(s) => Some(*s),
            Account::External
            | Account::FromShards
            | Account::RefundsInTransit
            | Account::RefundsFailed => None,
        }
    }
}

impl Catalog {
    /// [`super::CatalogQuery::Entries`]: one page of entries from position
    /// `after`, of `seller` when given, posted in `[from_ms, until_ms)`;
    /// looks at most at `ENTRIES_SCAN_MAX` entries.
    ///
    /// Errors: `bad_request` for a limit outside 1..=`ENTRIES_PAGE_ITEMS_MAX`
    /// or a range that ends before it starts.
    pub(super) fn entry_page(
        &self,
        seller: Option<SellerId>,
        (from_ms, until_ms): (i64, i64),
        after: u64,
        limit: u32,
    ) -> Result<EntryPage, Rejection> {
        check_entries_request(limit, from_ms, until_ms)
            .map_err(|e| reject(ErrorCode::BadRequest, e))?;
        let entries = self.ledger.entries();
        let end = (entries.len() as u64).min(after.saturating_add(u64::from(ENTRIES_SCAN_MAX)));
        let (mut items, mut at) = (Vec::new(), after);
        while at < end && items.len() < limit as usize {
            let row = self.entry_row(at, &entries[at as usize]);
            let in_range = (from_ms..until_ms).contains(&row.at_ms);
            if in_range && seller.is_none_or(|s| row.seller_id == Some(s)) {
                items.push(row);
            }
            at += 1;
        }
        let next = ((at as usize) < entries.len()).then_some(at);
        Ok(EntryPage { items, next })
    }

    fn entry_row(&self, index: u64, e: &Entry) -> EntryRow {
        let (mut seller, mut order, mut settlement) = (None, None, None);
        let mut state = EntryState::Posted;
        match &e.link {
            CatalogLink::None => {}
            CatalogLink::Line(at) => {
                let line = &self.payables[*at as usize];
                (seller, settlement) = (Some(line.seller), line.settlement);
            }
            CatalogLink::Settlement(id) => {
                let view = self.settlement_view(*id);
                (seller, settlement) = (Some(view.seller), Some(*id));
                if matches!(e.reason, Reason::PayoutSent | Reason::ReceivableNetted) {
                    state = payout_state(view.state);
                }
            }
            CatalogLink::Order(s, id) => (seller, order) = (Some(*s), Some(id.to_string())),
            CatalogLink::Transfer(s, id, n) => {
                (seller, order) = (Some(*s), Some(id.to_string()));
                if matches!(
                    e.reason,
                    Reason::AfterSaleRefund | Reason::ReceivableBooked | Reason::RefundRetried
                ) {
                    state = transfer_state(self.taken_back_state(*s, id, *n));
                }
            }
        }
        EntryRow {
            ledger: LedgerName::Catalog,
            index,
            at_ms: e.at_ms,
            order_id: order,
            voucher: None,
            seller_id: seller.or_else(|| e.from.seller()).or_else(|| e.to.seller()),
            reason: e.reason,
            debit: e.from.name(),
            credit: e.to.name(),
            amount: e.amount,
            state,
            settlement,
        }
    }
}

/// Money on its way to a buyer waits for the payment system, and is undone
/// when it fails the transfer (the same as a shard's refund rows).
fn transfer_state(state: Option<TransferState>) -> EntryState {
    match state {
        Some(TransferState::InTransit) => EntryState::Pending,
        Some(TransferState::Failed | TransferState::Retried) => EntryState::Voided,
        Some(TransferState::Confirmed) | None => EntryState::Posted,
    }
}

/// A settlement's payout and netting wait for the payment system, and are
/// undone when it fails the payout.
fn payout_state(state: PayoutState) -> EntryState {
    match state {
        PayoutState::InTransit => EntryState::Pending,
        PayoutState::Failed => EntryState::Voided,
        PayoutState::Confirmed | PayoutState::NothingToPay => EntryState::Posted,
    }
}
