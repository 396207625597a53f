//! Money in a shard (MON-3..MON-6, SET-1): every voucher's escrow lives
//! with the voucher, so a redemption and the money it releases are one
//! atomic shard step (DESIGN invariant 2).
//!
//! ```text
//! issue        buyers  → escrow    units × unit price   (Reason::Paid)
//! redeem k     escrow  → pending   k × unit price       (Reason::Redeemed)
//! reverse      pending → escrow    the redemption's amount (Reason::Reversed)
//! window end   pending → settlement                      (Reason::WindowEnded)
//! refund       escrow  → refunds     the buyer's part       (Reason::Refunded)
//!              escrow  → settlement  code fee, remainder    (Reason::CodeFee, RefundRemainder)
//! T+3 due      escrow  → settlement  what is left           (Reason::TPlus3Due)
//! expiry       escrow  → refunds / settlement               (REF-6, SET-1 end)
//! ```
//! Money in `refunds` travels on to the buyer as a transfer the payment
//! system confirms or fails (MON-7, `transfer.rs`).
//! Money in `settlement` has been handed to the catalog: each tick sums
//! what it made payable per seller and reason into one
//! [`ShardMessage`], numbered per shard, which the catalog books to the
//! seller's payable account exactly once (SET-3 then pays it out).
//! The window ends are deadlines applied by the shard's logged tick, in
//! deadline order, each once (MON-6): a redemption's money becomes payable
//! to the seller at the first tick at or after `at + reversal window`, and
//! from that instant it can no longer be reversed (`reversal_window_closed`).
//! Per-voucher balances are kept inline (`Voucher::escrow`); the ledger's
//! `Escrow` and `Pending` accounts are their sums, and every entry links to
//! its voucher slot, so MON-5 is checked per voucher from the entries.

use super::*;
use crate::command::TransferSource;
use crate::ledger::{Account, Ledger, Reason};
use crate::message::{ShardMessage, ShardMessageBody};
use std::collections::BTreeMap;
use std::fmt;

/// Most window ends one tick applies: bounds the work of one batch, and is
/// above `BATCH_COMMANDS_MAX` redemptions so ticks keep up with any load.
pub const TICK_DEADLINES_MAX: usize = 16_384;

/// An account of a shard's ledger.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShardAccount {
    /// What buyers paid in (money from outside the platform).
    Buyers,
    /// Held for vouchers: the sum of every voucher's escrow.
    Escrow,
    /// Redeemed, inside the reversal window (SET-1's pending entries).
    Pending,
    /// Payable to sellers and handed to the catalog's settlement as
    /// [`ShardMessage`]s (the catalog keeps MON-4's `seller_payable`).
    Settlement,
    /// Refunds to buyers, in transit to the payment system (MON-4
    /// `refund_in_transit`, MON-7).
    Refunds,
    /// Refunds the payment system failed: owed to the buyers until they
    /// are retried (MON-7).
    RefundsFailed,
}

impl fmt::Display for ShardAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShardAccount::Buyers => f.write_str("buyer payments"),
            ShardAccount::Escrow => f.write_str("escrow"),
            ShardAccount::Pending => f.write_str("pending redemptions"),
            ShardAccount::Settlement => f.write_str("handed to settlement"),
            ShardAccount::Refunds => f.write_str("refunds in transit"),
            ShardAccount::RefundsFailed => f.write_str("refunds failed, owed to buyers"),
        }
    }
}

impl Account for ShardAccount {
    fn may_go_negative(&self) -> bool {
        *self == ShardAccount::Buyers
    }
}

/// What one command or tick made payable: (seller, reason) → (sum,
/// entries).
pub(super) type Payables = BTreeMap<(SellerId, Reason), (Fen, u32)>;

impl ShardAccount {
    /// The stable name, as in the RPT-5 export: `buyers`, `escrow`,
    /// `pending`, `settlement`, `refunds`, `refunds_failed`.
    pub fn name(self) -> &'static str {
        match self {
            ShardAccount::Buyers => "buyers",
            ShardAccount::Escrow => "escrow",
            ShardAccount::Pending => "pending",
            ShardAccount::Settlement => "settlement",
            ShardAccount::Refunds => "refunds",
            ShardAccount::RefundsFailed => "refunds_failed",
        }
    }
}

/// What a shard entry belongs to: its voucher slot and, for a
/// redemption's entries, the redemption's log position, for money sent to
/// the buyer, the refund transfer's number ([`EntryLink::NONE`]
/// otherwise). The export (RPT-5) reads the movement's state through it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryLink {
    /// The voucher's slot.
    pub slot: u32,
    /// Redemption position or transfer number, or [`EntryLink::NONE`].
    pub of: u32,
}

impl EntryLink {
    /// No redemption or transfer.
    pub const NONE: u32 = u32::MAX;

    /// An entry of voucher `slot` about redemption or transfer `of`.
    pub fn of(slot: u32, of: u32) -> EntryLink {
        EntryLink { slot, of }
    }
}

impl From<u32> for EntryLink {
    fn from(slot: u32) -> EntryLink {
        EntryLink::of(slot, EntryLink::NONE)
    }
}

/// A shard's ledger: entries link to their voucher (and redemption or
/// transfer).
pub type ShardLedger = Ledger<ShardAccount, EntryLink>;

/// A movement the shard's own state guarantees is possible (the balances
/// it draws on are the voucher's); a failure is a broken invariant.
pub(super) fn post(
    ledger: &mut ShardLedger,
    from: ShardAccount,
    to: ShardAccount,
    amount: Fen,
    reason: Reason,
    at_ms: i64,
    link: impl Into<EntryLink>,
) {
    let link = link.into();
    ledger
        .post(from, to, amount, reason, at_ms, link)
        .unwrap_or_else(|e| panic!("MON-5: {e} ({reason}, voucher slot {})", link.slot));
}

impl Shard {
    /// Refuses an order whose payment the shard's totals could not hold
    /// (`bad_request`), before anything changes; every other account of
    /// the shard is bounded by what buyers paid in, so this is the only
    /// overflow a command can reach.
    pub(super) fn check_payment(&self, c: &Issue) -> Result<(), Rejection> {
        let paid = c.unit_price.times(c.units).expect("bounded price × units");
        self.ledger
            .check_post(ShardAccount::Buyers, ShardAccount::Escrow, paid)
            .map_err(|e| Rejection::new(ErrorCode::BadRequest, format!("order refused: {e}")))
    }

    /// ORD-2 with MON-4: the order's money, units × unit price, moves from
    /// the buyer into the voucher's escrow.
    pub(super) fn take_payment(&mut self, now_ms: i64, slot: u32) {
        let v = &mut self.vouchers[slot as usize];
        let paid = v
            .unit_price
            .times(v.units_total)
            .expect("bounded price × units");
        v.escrow = paid;
        post(
            &mut self.ledger,
            ShardAccount::Buyers,
            ShardAccount::Escrow,
            paid,
            Reason::Paid,
            now_ms,
            slot,
        );
    }

    /// SET-1: redemption `pos` moves its units' value from escrow to
    /// pending, payable when its reversal window ends. A T+3 order's
    /// money stays in escrow until its payout (SET-2) and moves nothing.
    pub(super) fn hold_redeemed(&mut self, now_ms: i64, pos: u32) {
        let r = &mut self.log[pos as usize];
        let v = &mut self.vouchers[r.voucher as usize];
        let amount = if v.terms.t_plus_3 {
            Fen::ZERO
        } else {
            v.unit_price.times(r.units).expect("bounded price × units")
        };
        r.amount = amount;
        v.escrow -= amount;
        assert!(v.escrow >= Fen::ZERO, "MON-5: escrow below zero");
        let slot = r.voucher;
        // Window ends stay in time order even if a restart's wall clock is
        // behind the log (the workers start from `clock_floor_ms`, so this
        // only guards): never before the previous end.
        let end = now_ms
            .saturating_add(self.config.reversal_window_ms)
            .max(self.window_ends.back().map_or(i64::MIN, |(t, _)| *t));
        post(
            &mut self.ledger,
            ShardAccount::Escrow,
            ShardAccount::Pending,
            amount,
            Reason::Redeemed,
            now_ms,
            EntryLink::of(slot, pos),
        );
        self.window_ends.push_back((end, pos));
    }

    /// SET-1: a reversal inside the window returns redemption `pos`'s
    /// pending money to the voucher's escrow.
    pub(super) fn return_reversed(&mut self, now_ms: i64, pos: u32) {
        let r = &self.log[pos as usize];
        assert!(!r.settled, "a settled redemption is never reversed");
        let (amount, slot) = (r.amount, r.voucher);
        self.vouchers[slot as usize].escrow += amount;
        post(
            &mut self.ledger,
            ShardAccount::Pending,
            ShardAccount::Escrow,
            amount,
            Reason::Reversed,
            now_ms,
            EntryLink::of(slot, pos),
        );
    }

    /// Moves `amount` of voucher `slot`'s money from `from` to the
    /// seller's settlement for `reason`, to be sent as a message when the
    /// command or tick ends ([`Shard::send_payables`]).
    pub(super) fn make_payable(
        &mut self,
        now_ms: i64,
        from: ShardAccount,
        slot: u32,
        amount: Fen,
        reason: Reason,
    ) {
        if amount.is_zero() {
            return;
        }
        let seller = self.vouchers[slot as usize].seller_id;
        post(
            &mut self.ledger,
            from,
            ShardAccount::Settlement,
            amount,
            reason,
            now_ms,
            slot,
        );
        let sum = self.payable.entry((seller, reason)).or_default();
        sum.0 += amount;
        sum.1 += 1;
    }

    /// Pays `amount` of voucher `slot`'s escrow to the seller for
    /// `reason` (a refund's share, the T+3 payout, the expiry).
    pub(super) fn release_to_seller(
        &mut self,
        now_ms: i64,
        slot: u32,
        amount: Fen,
        reason: Reason,
    ) {
        let v = &mut self.vouchers[slot as usize];
        v.escrow -= amount;
        v.released += amount;
        assert!(v.escrow >= Fen::ZERO, "MON-5: escrow below zero");
        self.make_payable(now_ms, ShardAccount::Escrow, slot, amount, reason);
    }

    /// Refunds `amount` of voucher `slot`'s escrow to the buyer: one
    /// transfer in transit (MON-7) when above zero.
    pub(super) fn refund_to_buyer(&mut self, now_ms: i64, slot: u32, amount: Fen) {
        if amount.is_zero() {
            return;
        }
        let v = &mut self.vouchers[slot as usize];
        v.escrow -= amount;
        v.refunded += amount;
        assert!(v.escrow >= Fen::ZERO, "MON-5: escrow below zero");
        let n = self.send_transfer(now_ms, slot, amount, TransferSource::Escrow, None);
        post(
            &mut self.ledger,
            ShardAccount::Escrow,
            ShardAccount::Refunds,
            amount,
            Reason::Refunded,
            now_ms,
            EntryLink::of(slot, u32::from(n)),
        );
    }

    /// One message per seller and reason of what the command or tick
    /// made payable, numbered in order.
    pub(super) fn send_payables(&mut self, now_ms: i64) {
        for ((seller, reason), (amount, entries)) in std::mem::take(&mut self.payable) {
            self.messages_sent += 1;
            self.outbox.push(ShardMessage {
                shard: self.index,
                seq: self.messages_sent,
                at_ms: now_ms,
                body: ShardMessageBody::Payable {
                    seller,
                    reason,
                    amount,
                    entries,
                },
            });
        }
    }

    /// The messages for the catalog made since the last call, in `seq`
    /// order. The caller delivers them once the batch that made them is
    /// durable; replaying the log makes them again, with the same numbers.
    pub fn take_messages(&mut self) -> Vec<ShardMessage> {
        std::mem::take(&mut self.outbox)
    }

    /// How many messages this shard has made (the `seq` of the latest).
    pub fn messages_sent(&self) -> u64 {
        self.messages_sent
    }

    /// The shard's ledger, for inspection and the audit.
    pub fn ledger(&self) -> &ShardLedger {
        &self.ledger
    }

    /// MON-5 for the shard: the ledger balances and explains every balance;
    /// escrow and pending are the sums of the vouchers' and redemptions';
    /// per voucher, what the buyer paid = escrow + everything redeemed and
    /// not reversed. Panics with the broken rule.
    pub(super) fn check_money(&self) {
        if let Err(e) = self.ledger.check() {
            panic!("MON-5: {e}");
        }
        let mut left = vec![Fen::ZERO; self.vouchers.len()];
        let (mut pending, mut settled) = (Fen::ZERO, Fen::ZERO);
        for r in self.log.iter().filter(|r| !r.reversed()) {
            left[r.voucher as usize] += r.amount;
            if r.settled {
                settled += r.amount;
            } else {
                pending += r.amount;
            }
        }
        let mut escrow = Fen::ZERO;
        for slot in 0..self.vouchers.len() as u32 {
            let v = &self.vouchers[slot as usize];
            let reserved = v.taken_back + v.after_sale.unwrap_or(Fen::ZERO);
            assert!(
                reserved <= self.seller_received(slot),
                "REF-5: order {} takes back more than the seller received",
                v.order_id
            );
        }
        for (v, redeemed) in self.vouchers.iter().zip(left) {
            let paid = v.unit_price.times(v.units_total).expect("bounded");
            assert_eq!(
                paid,
                v.escrow + redeemed + v.refunded + v.released,
                "MON-5: order {} paid ≠ escrow + redeemed + refunded + released",
                v.order_id
            );
            escrow += v.escrow;
            settled += v.released;
        }
        assert_eq!(
            self.ledger.balance(ShardAccount::Escrow),
            escrow,
            "MON-5: escrow"
        );
        assert_eq!(
            self.ledger.balance(ShardAccount::Pending),
            pending,
            "MON-5: pending"
        );
        assert_eq!(
            self.ledger.balance(ShardAccount::Settlement),
            settled,
            "MON-5: handed to settlement"
        );
        self.check_transfers();
        assert!(self.payable.is_empty(), "payables left unsent");
    }
}
