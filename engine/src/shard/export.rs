//! RPT-5 for a voucher shard: its ledger entries as export rows, one page
//! per request, each request looking at most at `ENTRIES_SCAN_MAX`
//! entries.
//!
//! A shard entry's seller and order are its voucher's. Money a shard made
//! payable reaches a settlement through the catalog's payable line of the
//! same seller and reason, whose row carries the settlement id; so shard
//! rows leave the settlement column empty.

use super::money::EntryLink;
use super::*;
use crate::command::{
    check_entries_request, EntryPage, EntryRow, EntryState, LedgerName, ListEntries, TransferState,
    ENTRIES_SCAN_MAX,
};
use crate::ledger::{Entry, Reason};

impl Shard {
    /// [`Command::Entries`]: one page of entries from position `after`, of
    /// one seller when given, posted in `[from_ms, until_ms)`.
    ///
    /// Errors: `bad_request` for a limit outside 1..=`ENTRIES_PAGE_ITEMS_MAX`
    /// or a range that ends before it starts.
    pub(super) fn list_entries(&self, c: &ListEntries) -> Reply {
        check_entries_request(c.limit, c.from_ms, c.until_ms)
            .map_err(|e| Rejection::new(ErrorCode::BadRequest, e))?;
        let entries = self.ledger.entries();
        let end = (entries.len() as u64).min(c.after.saturating_add(u64::from(ENTRIES_SCAN_MAX)));
        let (mut items, mut at) = (Vec::new(), c.after);
        while at < end && items.len() < c.limit as usize {
            let e = &entries[at as usize];
            let seller = self.vouchers[e.link.slot as usize].seller_id;
            let in_range = (c.from_ms..c.until_ms).contains(&e.at_ms);
            if in_range && c.seller_id.is_none_or(|s| s == seller) {
                items.push(self.entry_row(at, e));
            }
            at += 1;
        }
        let next = ((at as usize) < entries.len()).then_some(at);
        Ok(Outcome::Entries(EntryPage { items, next }))
    }

    fn entry_row(&self, index: u64, e: &Entry<ShardAccount, EntryLink>) -> EntryRow {
        let v = &self.vouchers[e.link.slot as usize];
        EntryRow {
            ledger: LedgerName::Shard(self.index),
            index,
            at_ms: e.at_ms,
            order_id: Some(v.order_id.to_string()),
            voucher: Some(e.link.slot),
            seller_id: Some(v.seller_id),
            reason: e.reason,
            debit: e.from.name().into(),
            credit: e.to.name().into(),
            amount: e.amount,
            state: self.entry_state(e),
            settlement: None,
        }
    }

    /// A redemption's entry is pending inside its window, voided once
    /// reversed; money sent to the buyer is pending in transit, voided
    /// when the payment system failed it; everything else is posted.
    fn entry_state(&self, e: &Entry<ShardAccount, EntryLink>) -> EntryState {
        match (e.reason, e.link.of) {
            (_, EntryLink::NONE) => EntryState::Posted,
            (Reason::Redeemed, pos) => {
                let r = &self.log[pos as usize];
                if r.reversed() {
                    EntryState::Voided
                } else if r.settled {
                    EntryState::Posted
                } else {
                    EntryState::Pending
                }
            }
            (Reason::Refunded | Reason::RefundRetried, n) => {
                let key = (e.link.slot, n as u16);
                match self.transfers.get(&key).map(|t| t.state) {
                    Some(TransferState::InTransit) => EntryState::Pending,
                    Some(TransferState::Failed | TransferState::Retried) => EntryState::Voided,
                    Some(TransferState::Confirmed) | None => EntryState::Posted,
                }
            }
            _ => EntryState::Posted,
        }
    }
}
