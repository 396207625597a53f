//! Settlement (SET-3, MON-7, RPT-4): what voucher shards made payable
//! arrives as [`ShardMessage`]s and is booked to the seller's payable
//! account, once each; a settlement run for a seller and a cutoff takes
//! every payable line booked before the cutoff that no earlier run took and
//! moves their sum into a payout in transit; the payment system confirms
//! the payout (the money leaves the platform) or fails it (the money and
//! its lines go back for the next run).
//!
//! ```text
//! message      from_shards          → payable(seller)    (its reason)
//! run          payable(seller)      → payout_in_transit  (payout_sent)
//! confirm      payout_in_transit    → external           (payout_confirmed)
//! fail         payout_in_transit    → payable(seller)    (payout_failed)
//! ```
//! `from_shards` mirrors the shards' `settlement` accounts: once every
//! message is applied, Σ shards' `settlement` = −`from_shards`.

use super::check::reject;
use super::{Account, Catalog, CatalogLink, CatalogOutcome, CatalogReply};
use crate::command::TransferState;
use crate::error::{ErrorCode, Rejection};
use crate::ids::SellerId;
use crate::ledger::Reason;
use crate::message::{ShardMessage, ShardMessageBody};
use crate::money::Fen;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Most lines one statement page shows.
pub const STATEMENT_PAGE_LINES_MAX: u32 = 1_000;

/// Most settlements one page of [`super::CatalogQuery::Settlements`] shows.
pub const SETTLEMENTS_PAGE_ITEMS_MAX: u32 = 1_000;

/// Where a settlement's payout is (MON-7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PayoutState {
    /// The run found nothing to pay: no payout (SET-3).
    NothingToPay,
    /// Sent to the payment system, not yet confirmed.
    InTransit,
    /// The payment system confirmed it: the seller has the money.
    Confirmed,
    /// The payment system failed it: its lines went back to the next run.
    Failed,
}

/// One payable line of the catalog: what one shard message booked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayableLine {
    /// The seller.
    pub seller: SellerId,
    /// Why it became payable (e.g. `window_ended`).
    pub reason: Reason,
    /// Amount, fen, > 0.
    pub amount: Fen,
    /// How many shard ledger entries it sums.
    pub entries: u32,
    /// The shard and message number it came from.
    pub shard: u32,
    /// The message's number in its shard.
    pub seq: u64,
    /// When the shard made it payable, unix ms.
    pub shard_at_ms: i64,
    /// When the catalog booked it, unix ms: what a cutoff compares.
    pub booked_at_ms: i64,
    /// The settlement that took it, if any (a failed payout gives it back).
    pub settlement: Option<u64>,
}

/// A settlement run and its payout (SET-3, MON-7).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettlementView {
    /// Settlement id, from 1; the payout has the same id.
    pub id: u64,
    /// The seller.
    pub seller: SellerId,
    /// Lines booked before this instant were taken, unix ms.
    pub cutoff_ms: i64,
    /// When it ran, unix ms.
    pub created_at_ms: i64,
    /// Sum of its lines, fen.
    pub total: Fen,
    /// What the seller owed back, netted from the total (REF-5, SET-3).
    pub netted: Fen,
    /// What the payout carries: total − netted.
    pub payout: Fen,
    /// How many payable lines it took.
    pub lines: u32,
    /// Its payout's state.
    pub state: PayoutState,
    /// When the payment system confirmed or failed it, unix ms.
    pub decided_at_ms: Option<i64>,
}

/// A settlement's statement (RPT-4): the settlement and one page of the
/// lines it took, in booking order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatementView {
    /// The settlement.
    pub settlement: SettlementView,
    /// Position of the first line shown, from 0.
    pub offset: u32,
    /// The lines.
    pub lines: Vec<PayableLine>,
}

#[derive(Clone, Debug)]
pub(super) struct SettlementRecord {
    view: SettlementView,
    /// Positions in `Catalog::payables`, in booking order.
    lines: Vec<u32>,
}

impl Catalog {
    /// The number of the latest message applied from shard `shard` (0:
    /// none): recovery sends again every message above it.
    pub fn shard_mark(&self, shard: u32) -> u64 {
        self.shard_marks.get(&shard).copied().unwrap_or(0)
    }

    /// Cutoff of the latest daily settlement run, unix ms (`i64::MIN`:
    /// none yet).
    pub fn daily_cutoff_ms(&self) -> i64 {
        self.daily_cutoff_ms
    }

    /// Applies one message from a voucher shard at `now_ms`: books its
    /// money to the seller's payable account. Returns false, changing
    /// nothing, for a message already applied (`seq` at or below the
    /// shard's mark).
    ///
    /// Errors: `bad_request` for a message out of order (a gap below it)
    /// or an amount the ledger cannot hold; nothing changes.
    pub fn apply_message(
        &mut self,
        now_ms: i64,
        m: &ShardMessage,
        events: &mut Vec<super::CatalogEvent>,
    ) -> Result<bool, Rejection> {
        let mark = self.shard_mark(m.shard);
        if m.seq <= mark {
            return Ok(false);
        }
        if m.seq != mark + 1 {
            return Err(reject(
                ErrorCode::BadRequest,
                format!("message {} of shard {} before {}", m.seq, m.shard, mark + 1),
            ));
        }
        match &m.body {
            ShardMessageBody::Payable {
                seller,
                reason,
                amount,
                entries,
            } => self.book_payable(now_ms, m, *seller, *reason, *amount, *entries)?,
            ShardMessageBody::TakeBack {
                seller,
                category,
                group_buying,
                amount,
                order_id,
            } => {
                let link = CatalogLink::Order(*seller, order_id.as_str().into());
                let deposit = (*category, *group_buying);
                self.take_back(now_ms, *seller, deposit, *amount, link, events)?
            }
            ShardMessageBody::Transfer {
                reason,
                amount,
                seller,
                order_id,
            } => {
                let link = CatalogLink::Order(*seller, order_id.as_str().into());
                self.refund_transfer(now_ms, *reason, *amount, link)?
            }
            ShardMessageBody::TakeBackNumbered {
                seller,
                category,
                group_buying,
                amount,
                order_id,
                transfer,
            } => {
                let key = (*seller, Arc::<str>::from(order_id.as_str()), *transfer);
                let link = CatalogLink::Transfer(key.0, key.1.clone(), key.2);
                let deposit = (*category, *group_buying);
                self.take_back(now_ms, *seller, deposit, *amount, link, events)?;
                self.taken_back.insert(key, TransferState::InTransit);
            }
            ShardMessageBody::TransferNumbered {
                seller,
                order_id,
                reason,
                amount,
                transfer,
                retry_of,
            } => {
                let order = Arc::<str>::from(order_id.as_str());
                let link = CatalogLink::Transfer(*seller, order.clone(), *transfer);
                self.refund_transfer(now_ms, *reason, *amount, link)?;
                self.note_transfer((*seller, order, *transfer), *reason, *retry_of);
            }
        }
        self.shard_marks.insert(m.shard, m.seq);
        Ok(true)
    }

    /// The state a taken-back transfer's answer or retry leaves (RPT-5):
    /// confirmed, failed, or — for a retry — the new transfer in transit
    /// and the failed one retried.
    fn note_transfer(
        &mut self,
        key: (SellerId, Arc<str>, u16),
        reason: Reason,
        retry_of: Option<u16>,
    ) {
        let state = match reason {
            Reason::RefundConfirmed => TransferState::Confirmed,
            Reason::RefundFailed => TransferState::Failed,
            _ => TransferState::InTransit,
        };
        if let Some(old) = retry_of.filter(|_| reason == Reason::RefundRetried) {
            let old = (key.0, key.1.clone(), old);
            self.taken_back.insert(old, TransferState::Retried);
        }
        self.taken_back.insert(key, state);
    }

    /// The state of a taken-back refund transfer, as its messages said;
    /// None for one this catalog never heard of.
    pub(super) fn taken_back_state(
        &self,
        seller: SellerId,
        order: &Arc<str>,
        transfer: u16,
    ) -> Option<TransferState> {
        self.taken_back
            .get(&(seller, order.clone(), transfer))
            .copied()
    }

    /// MON-7 for money taken back from sellers: a refund transfer's answer
    /// or retry moves it between in transit, failed and outside.
    ///
    /// Errors: `bad_request` for another reason or an amount not above
    /// zero, `insufficient_balance` for money the accounts do not hold (a
    /// broken shard); nothing changes.
    fn refund_transfer(
        &mut self,
        now_ms: i64,
        reason: Reason,
        amount: Fen,
        link: CatalogLink,
    ) -> Result<(), Rejection> {
        let (from, to) = match reason {
            Reason::RefundConfirmed => (Account::RefundsInTransit, Account::External),
            Reason::RefundFailed => (Account::RefundsInTransit, Account::RefundsFailed),
            Reason::RefundRetried => (Account::RefundsFailed, Account::RefundsInTransit),
            other => {
                return Err(reject(
                    ErrorCode::BadRequest,
                    format!("a refund transfer message does not carry {other}"),
                ))
            }
        };
        if amount <= Fen::ZERO {
            return Err(reject(
                ErrorCode::BadRequest,
                "a transfer amount is above 0.00",
            ));
        }
        self.transfer_for(from, to, amount, reason, now_ms, link)
    }

    /// SET-3: books a shard's payable money to the seller's payable
    /// account, as one line.
    fn book_payable(
        &mut self,
        now_ms: i64,
        m: &ShardMessage,
        seller: SellerId,
        reason: Reason,
        amount: Fen,
        entries: u32,
    ) -> Result<(), Rejection> {
        let at = self.payables.len() as u32;
        self.transfer_for(
            Account::FromShards,
            Account::Payable(seller),
            amount,
            reason,
            now_ms,
            CatalogLink::Line(at),
        )?;
        self.payables.push(PayableLine {
            seller,
            reason,
            amount,
            entries,
            shard: m.shard,
            seq: m.seq,
            shard_at_ms: m.at_ms,
            booked_at_ms: now_ms,
            settlement: None,
        });
        self.open_payables.insert((seller, at));
        Ok(())
    }

    /// REF-5: pays an after-sale refund of `amount` from the deposit that
    /// guarantees the seller's order (the group-buying deposit for a
    /// group-buying order, else the category's voucher deposit) and books
    /// the rest as the seller's receivable; a deposit left below its
    /// required amount raises `deposit_short` (ONB-6). The buyer's refund
    /// never waits for the deposit.
    fn take_back(
        &mut self,
        now_ms: i64,
        seller: SellerId,
        (category, group_buying): (crate::ids::CategoryId, bool),
        amount: Fen,
        link: CatalogLink,
        events: &mut Vec<super::CatalogEvent>,
    ) -> Result<(), Rejection> {
        let deposit = if group_buying {
            Account::GroupBuyingDeposit(seller)
        } else {
            Account::Deposit(seller, category)
        };
        if amount <= Fen::ZERO {
            return Err(reject(
                ErrorCode::BadRequest,
                "a take-back amount is above 0.00",
            ));
        }
        let (to, owed) = (Account::RefundsInTransit, Account::Receivable(seller));
        // Both postings or none: the whole amount reaches `to`.
        self.ledger
            .check_post(owed, to, amount)
            .map_err(|e| reject(ErrorCode::BadRequest, e.to_string()))?;
        let covered = self.balance(deposit).min(amount).max(Fen::ZERO);
        let rest = amount - covered;
        self.transfer_for(
            deposit,
            to,
            covered,
            Reason::AfterSaleRefund,
            now_ms,
            link.clone(),
        )?;
        self.transfer_for(owed, to, rest, Reason::ReceivableBooked, now_ms, link)?;
        let known = self.sellers.contains_key(&seller) && self.categories.contains_key(&category);
        let before = events.len();
        if !group_buying && known {
            self.review_deposit(seller, category, events)?;
        }
        // A deposit that could not cover it raises `deposit_short` (REF-5),
        // the group-buying one too.
        if covered < amount && events.len() == before {
            events.push(super::CatalogEvent::DepositShort {
                seller,
                category,
                balance: self.balance(deposit),
                required: amount,
            });
        }
        Ok(())
    }

    /// What `seller` owes back now (the receivable's balance, negated).
    pub fn receivable(&self, seller: SellerId) -> Fen {
        Fen::ZERO - self.balance(Account::Receivable(seller)).min(Fen::ZERO)
    }

    /// [`super::CatalogCommand::RunSettlement`] (SET-3): the settlement of
    /// `seller` for `cutoff_ms`, run now or, when it ran before, as it is.
    ///
    /// Errors: `bad_request` for a cutoff after now; `not_found` for an
    /// unknown seller.
    pub(super) fn run_settlement(
        &mut self,
        now_ms: i64,
        seller: SellerId,
        cutoff_ms: i64,
    ) -> CatalogReply {
        if cutoff_ms > now_ms {
            return Err(reject(
                ErrorCode::BadRequest,
                "a settlement cutoff must not be in the future",
            ));
        }
        self.seller(seller)?;
        let id = match self.settlement_keys.get(&(seller, cutoff_ms)) {
            Some(id) => *id,
            None => self.settle(now_ms, seller, cutoff_ms),
        };
        Ok(CatalogOutcome::Settlement(self.settlement(id).view.clone()))
    }

    /// Creates the settlement of `seller` for `cutoff_ms` (not run before)
    /// and returns its id.
    fn settle(&mut self, now_ms: i64, seller: SellerId, cutoff_ms: i64) -> u64 {
        let id = self.settlements.len() as u64 + 1;
        let taken: Vec<u32> = self
            .open_payables
            .range((seller, 0)..=(seller, u32::MAX))
            .map(|(_, at)| *at)
            .take_while(|at| self.payables[*at as usize].booked_at_ms < cutoff_ms)
            .collect();
        let mut total = Fen::ZERO;
        for at in &taken {
            self.open_payables.remove(&(seller, *at));
            let line = &mut self.payables[*at as usize];
            line.settlement = Some(id);
            total += line.amount;
        }
        // SET-3: what the seller owes back is netted first.
        let netted = self.receivable(seller).min(total);
        let payout = total - netted;
        let state = if payout.is_zero() {
            PayoutState::NothingToPay
        } else {
            PayoutState::InTransit
        };
        let (from, owed) = (Account::Payable(seller), Account::Receivable(seller));
        let link = CatalogLink::Settlement(id);
        self.transfer_for(
            from,
            owed,
            netted,
            Reason::ReceivableNetted,
            now_ms,
            link.clone(),
        )
        .expect("MON-5: the payable account holds its open lines");
        let transit = Account::PayoutInTransit(seller);
        self.transfer_for(from, transit, payout, Reason::PayoutSent, now_ms, link)
            .expect("MON-5: the payable account holds its open lines");
        self.settlement_keys.insert((seller, cutoff_ms), id);
        self.settlements.push(SettlementRecord {
            view: SettlementView {
                id,
                seller,
                cutoff_ms,
                created_at_ms: now_ms,
                total,
                netted,
                payout,
                lines: taken.len() as u32,
                state,
                decided_at_ms: None,
            },
            lines: taken,
        });
        id
    }

    /// [`super::SystemInput::Settle`]: the daily run, for every seller
    /// with open payable lines booked before `cutoff_ms`. Returns the ids
    /// of the settlements it created; a cutoff at or before the last daily
    /// one changes nothing.
    ///
    /// Errors: `bad_request` for a cutoff after now.
    pub(super) fn settle_daily(&mut self, now_ms: i64, cutoff_ms: i64) -> CatalogReply {
        if cutoff_ms > now_ms {
            return Err(reject(
                ErrorCode::BadRequest,
                "a settlement cutoff must not be in the future",
            ));
        }
        if cutoff_ms <= self.daily_cutoff_ms {
            return Ok(CatalogOutcome::Settled(Vec::new()));
        }
        self.daily_cutoff_ms = cutoff_ms;
        let mut due: Vec<SellerId> = Vec::new();
        for (seller, at) in &self.open_payables {
            let booked = self.payables[*at as usize].booked_at_ms;
            if booked < cutoff_ms && due.last() != Some(seller) {
                due.push(*seller);
            }
        }
        let mut created = Vec::new();
        for seller in due {
            if !self.settlement_keys.contains_key(&(seller, cutoff_ms)) {
                created.push(self.settle(now_ms, seller, cutoff_ms));
            }
        }
        Ok(CatalogOutcome::Settled(created))
    }

    /// [`super::CatalogCommand::ConfirmPayout`] and
    /// [`super::CatalogCommand::FailPayout`] (MON-7): a confirmed payout
    /// leaves the platform; a failed one goes back to the seller's payable
    /// account and its lines to the next run.
    ///
    /// Errors: `not_found` for an unknown settlement;
    /// `payout_not_in_transit` when it has no payout or was already
    /// confirmed or failed.
    pub(super) fn decide_payout(&mut self, now_ms: i64, id: u64, confirmed: bool) -> CatalogReply {
        let view = self.settlement_mut(id)?.view.clone();
        if view.state != PayoutState::InTransit {
            return Err(reject(
                ErrorCode::PayoutNotInTransit,
                format!("settlement {id}'s payout is {}", view.state),
            ));
        }
        let (to, reason, state) = if confirmed {
            (
                Account::External,
                Reason::PayoutConfirmed,
                PayoutState::Confirmed,
            )
        } else {
            (
                Account::Payable(view.seller),
                Reason::PayoutFailed,
                PayoutState::Failed,
            )
        };
        let transit = Account::PayoutInTransit(view.seller);
        let link = CatalogLink::Settlement(id);
        self.transfer_for(transit, to, view.payout, reason, now_ms, link.clone())
            .expect("MON-5: the payout in transit holds its settlement's payout");
        if !confirmed {
            // The lines go back whole: the netting is undone, and the next
            // run nets again.
            let payable = Account::Payable(view.seller);
            let owed = Account::Receivable(view.seller);
            let reason = Reason::NettingReversed;
            self.transfer_for(owed, payable, view.netted, reason, now_ms, link)
                .expect("a receivable may go negative");
        }
        let record = self.settlement_mut(id)?;
        record.view.state = state;
        record.view.decided_at_ms = Some(now_ms);
        if !confirmed {
            let lines = record.lines.clone();
            for at in lines {
                self.payables[at as usize].settlement = None;
                self.open_payables.insert((view.seller, at));
            }
        }
        Ok(CatalogOutcome::Settlement(self.settlement(id).view.clone()))
    }

    fn settlement(&self, id: u64) -> &SettlementRecord {
        &self.settlements[(id - 1) as usize]
    }

    /// Settlement `id` (which exists).
    pub(super) fn settlement_view(&self, id: u64) -> &SettlementView {
        &self.settlement(id).view
    }

    fn settlement_mut(&mut self, id: u64) -> Result<&mut SettlementRecord, Rejection> {
        id.checked_sub(1)
            .and_then(|i| self.settlements.get_mut(i as usize))
            .ok_or_else(|| reject(ErrorCode::NotFound, format!("settlement {id}")))
    }

    /// Settlement `id` as `seller` (None: staff or the payment system) may
    /// see it: another seller's is `not_found`, like an unknown one.
    pub(super) fn visible_settlement(
        &self,
        seller: Option<SellerId>,
        id: u64,
    ) -> Result<&SettlementView, Rejection> {
        id.checked_sub(1)
            .and_then(|i| self.settlements.get(i as usize))
            .map(|r| &r.view)
            .filter(|v| seller.is_none_or(|s| s == v.seller))
            .ok_or_else(|| reject(ErrorCode::NotFound, format!("settlement {id}")))
    }

    /// RPT-4: up to `limit` lines of settlement `id` from `offset`.
    pub(super) fn statement(
        &self,
        seller: Option<SellerId>,
        id: u64,
        offset: u32,
        limit: u32,
    ) -> Result<StatementView, Rejection> {
        if limit == 0 || limit > STATEMENT_PAGE_LINES_MAX {
            return Err(reject(
                ErrorCode::BadRequest,
                format!("page limit must be 1..={STATEMENT_PAGE_LINES_MAX}"),
            ));
        }
        let view = self.visible_settlement(seller, id)?.clone();
        let lines = self
            .settlement(id)
            .lines
            .iter()
            .skip(offset as usize)
            .take(limit as usize)
            .map(|at| self.payables[*at as usize].clone())
            .collect();
        Ok(StatementView {
            settlement: view,
            offset,
            lines,
        })
    }

    /// Settlements after id `after`, of `seller` only when given, up to
    /// `limit`, in id order.
    pub(super) fn settlement_page(
        &self,
        seller: Option<SellerId>,
        after: Option<u64>,
        limit: u32,
    ) -> Result<Vec<SettlementView>, Rejection> {
        if limit == 0 || limit > SETTLEMENTS_PAGE_ITEMS_MAX {
            return Err(reject(
                ErrorCode::BadRequest,
                format!("page limit must be 1..={SETTLEMENTS_PAGE_ITEMS_MAX}"),
            ));
        }
        let start = after.unwrap_or(0).min(self.settlements.len() as u64) as usize;
        Ok(self.settlements[start..]
            .iter()
            .map(|r| &r.view)
            .filter(|v| seller.is_none_or(|s| s == v.seller))
            .take(limit as usize)
            .cloned()
            .collect())
    }

    /// SET-3's money check: every open line is untaken and every taken one
    /// names a settlement in transit or confirmed that lists it; each
    /// seller's payable balance is the sum of its open lines and its
    /// payouts in transit the sum of their totals.
    pub(super) fn check_settlement(&self) -> Result<(), String> {
        let mut payable = std::collections::BTreeMap::<SellerId, Fen>::new();
        for (seller, at) in &self.open_payables {
            let line = &self.payables[*at as usize];
            if line.settlement.is_some() || line.seller != *seller {
                return Err(format!("open payable line {at} is taken"));
            }
            *payable.entry(*seller).or_default() += line.amount;
        }
        let mut transit = std::collections::BTreeMap::<SellerId, Fen>::new();
        for r in &self.settlements {
            let sum: Fen = r
                .lines
                .iter()
                .map(|at| self.payables[*at as usize].amount)
                .sum();
            if sum != r.view.total {
                return Err(format!(
                    "settlement {} total differs from its lines",
                    r.view.id
                ));
            }
            if r.view.payout != r.view.total - r.view.netted {
                return Err(format!(
                    "settlement {} payout differs from total − netted",
                    r.view.id
                ));
            }
            if r.view.state == PayoutState::InTransit {
                *transit.entry(r.view.seller).or_default() += r.view.payout;
            }
        }
        let in_ledger = |make: fn(SellerId) -> Account| {
            self.ledger
                .balances(make(SellerId(0))..=make(SellerId(u64::MAX)))
                .filter(|(_, f)| !f.is_zero())
                .collect::<Vec<_>>()
        };
        let want = |sums: std::collections::BTreeMap<SellerId, Fen>,
                    make: fn(SellerId) -> Account| {
            sums.into_iter()
                .filter(|(_, f)| !f.is_zero())
                .map(|(s, f)| (make(s), f))
                .collect::<Vec<_>>()
        };
        if in_ledger(Account::Payable) != want(payable, Account::Payable) {
            return Err("sellers' payable balances differ from their open lines".into());
        }
        if in_ledger(Account::PayoutInTransit) != want(transit, Account::PayoutInTransit) {
            return Err("payouts in transit differ from their settlements".into());
        }
        Ok(())
    }
}

impl std::fmt::Display for PayoutState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PayoutState::NothingToPay => "nothing to pay",
            PayoutState::InTransit => "in transit",
            PayoutState::Confirmed => "confirmed",
            PayoutState::Failed => "failed",
        })
    }
}
