//! The reconciliation export (RPT-5): every ledger entry of a seller — or,
//! for staff, of the platform — in a time range, one row per entry with
//! stable columns. Each voucher shard answers for its own ledger
//! ([`ListEntries`], a client command routed by shard) and the catalog for
//! its own ([`crate::catalog::CatalogQuery::Entries`]); both answer with
//! an [`EntryPage`] and a cursor, looking at a bounded number of entries per
//! request, so an export of any size is many small reads.

use crate::ids::SellerId;
use crate::ledger::Reason;
use crate::money::Fen;
use serde::{Deserialize, Serialize};

/// Most rows one [`EntryPage`] carries.
pub const ENTRIES_PAGE_ITEMS_MAX: u32 = 1_000;

/// Most entries one request looks at: a filter that matches little
/// returns a short (even empty) page with a cursor, so every request does
/// bounded work.
pub const ENTRIES_SCAN_MAX: u32 = 20_000;

/// One page of a shard's ledger entries (RPT-5), in posting order.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ListEntries {
    /// Shard to read.
    pub shard: u32,
    /// Only entries of this seller's vouchers (filled in by the server for
    /// a seller's token; staff may leave it None for every seller).
    pub seller_id: Option<SellerId>,
    /// Only entries posted at or after this instant, unix ms.
    pub from_ms: i64,
    /// Only entries posted before this instant, unix ms.
    pub until_ms: i64,
    /// First entry position to look at: 0, then the previous page's
    /// `next`.
    pub after: u64,
    /// Most rows (1..=[`ENTRIES_PAGE_ITEMS_MAX`]).
    pub limit: u32,
}

/// Which ledger an entry is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LedgerName {
    /// The ledger of voucher shard `n`.
    Shard(u32),
    /// The catalog's ledger (payment accounts, deposits, payables,
    /// payouts).
    Catalog,
}

/// Where the movement an entry starts stands (RPT-5's
/// pending/posted/voided column).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryState {
    /// Waits for a decision: a redemption inside its reversal window, a
    /// payout or refund transfer the payment system has not answered.
    Pending,
    /// Final.
    Posted,
    /// Undone by a later entry: a redemption reversed inside its window, a
    /// payout or refund transfer the payment system failed.
    Voided,
}

impl EntryState {
    /// The stable name: `pending`, `posted`, `voided`.
    pub fn name(self) -> &'static str {
        match self {
            EntryState::Pending => "pending",
            EntryState::Posted => "posted",
            EntryState::Voided => "voided",
        }
    }
}

/// One ledger entry as the export shows it (RPT-5).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryRow {
    /// Its ledger.
    pub ledger: LedgerName,
    /// Its position in that ledger, from 0: with `ledger`, the entry id.
    pub index: u64,
    /// When it was posted, unix ms.
    pub at_ms: i64,
    /// The order it belongs to, if any.
    pub order_id: Option<String>,
    /// The voucher's position in its shard (one voucher per order), for
    /// shard entries.
    pub voucher: Option<u32>,
    /// The seller it concerns, if any.
    pub seller_id: Option<SellerId>,
    /// Why the money moved.
    pub reason: Reason,
    /// The account the money left, by its stable name.
    pub debit: String,
    /// The account the money reached, by its stable name.
    pub credit: String,
    /// Amount, fen, > 0.
    pub amount: Fen,
    /// Pending, posted or voided.
    pub state: EntryState,
    /// The settlement it belongs to (SET-3): payouts, nettings and the
    /// payable lines a settlement took.
    pub settlement: Option<u64>,
}

impl EntryRow {
    /// The entry id as the export prints it: `s3-41` (shard 3, entry 41)
    /// or `c-7` (catalog entry 7).
    pub fn id(&self) -> String {
        match self.ledger {
            LedgerName::Shard(s) => format!("s{s}-{}", self.index),
            LedgerName::Catalog => format!("c-{}", self.index),
        }
    }
}

/// Reply to a [`ListEntries`] or a catalog entries read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryPage {
    /// The rows, in posting order.
    pub items: Vec<EntryRow>,
    /// Where to go on (`after` of the next request), None at the end.
    pub next: Option<u64>,
}

/// Checks a request's page size and time range.
///
/// Errors: a message for a limit outside 1..=[`ENTRIES_PAGE_ITEMS_MAX`] or
/// a range that ends before it starts.
pub fn check_entries_request(limit: u32, from_ms: i64, until_ms: i64) -> Result<(), String> {
    if limit == 0 || limit > ENTRIES_PAGE_ITEMS_MAX {
        return Err(format!("page limit must be 1..={ENTRIES_PAGE_ITEMS_MAX}"));
    }
    if until_ms < from_ms {
        return Err("the time range ends before it starts".into());
    }
    Ok(())
}
