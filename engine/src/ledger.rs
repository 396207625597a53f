//! Double entry (MON-3..MON-5): accounts, immutable balanced entries and
//! the conservation check.
//!
//! Every money movement is one [`Entry`]: an amount above zero moved from
//! one account to another, with its reason and instant. Entries are only
//! appended — a correction is a new entry — and zero amounts are never
//! written. So the balances always add up to zero, and every balance is
//! the sum of its entries; [`Ledger::check`] proves both, and that no
//! account that must not go negative did. The catalog keeps one ledger
//! (payment accounts, deposits); each voucher shard keeps its own.

use crate::money::Fen;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// An account key of one ledger.
pub trait Account: Copy + Ord + fmt::Debug + fmt::Display {
    /// Whether the balance may go below zero: only accounts for money
    /// outside the platform (what buyers paid in, what was paid out) may.
    fn may_go_negative(&self) -> bool;
}

/// Why money moved (MON-3's reason code).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// A seller funded its payment account.
    TopUp,
    /// A seller froze a T+N voucher deposit (ONB-4) or topped it up.
    DepositFrozen,
    /// A group-buying operator funded its group-buying deposit (ONB-5).
    GroupBuyingDepositFunded,
    /// Staff took money from a deposit (REF-5).
    DepositDeducted,
    /// A buyer paid an order into its voucher's escrow (ORD-2).
    Paid,
    /// A redemption moved its units' value to pending (SET-1).
    Redeemed,
    /// A reversal returned a redemption's money to escrow (SET-1).
    Reversed,
    /// A reversal window ended: the money is the seller's (SET-1).
    WindowEnded,
    /// A settlement run sent the seller's payable money out (SET-3).
    PayoutSent,
    /// The payment system confirmed a payout (MON-7).
    PayoutConfirmed,
    /// The payment system failed a payout: the money is payable again
    /// (MON-7).
    PayoutFailed,
    /// A refund to the buyer (REF-1..6), in transit.
    Refunded,
    /// The code fee kept from a refund, the seller's (REF-1, REF-6).
    CodeFee,
    /// What a refund leaves the seller besides the code fee: the ratio
    /// remainder (REF-1, REF-6) or the rest of an agreed amount (REF-2,
    /// REF-4).
    RefundRemainder,
    /// A T+3 order's money, due to the seller (SET-2).
    TPlus3Due,
    /// Unused money of an expired voucher without expiry refund, the
    /// seller's (SET-1 end).
    Expired,
    /// An after-sale refund taken back from a seller's deposit (REF-5).
    AfterSaleRefund,
    /// The part of an after-sale refund the deposit could not cover: owed
    /// by the seller (REF-5, MON-4 `seller_receivable`).
    ReceivableBooked,
    /// What a seller owed, netted from its settlement (SET-3).
    ReceivableNetted,
    /// A failed payout's netting undone: owed again (MON-7).
    NettingReversed,
    /// The payment system confirmed a refund transfer: the money reached
    /// the buyer (MON-7).
    RefundConfirmed,
    /// A refund transfer failed: the money is owed to the buyer until it
    /// is retried (MON-7).
    RefundFailed,
    /// A failed refund's money sent again, as a new transfer (MON-7).
    RefundRetried,
}

impl Reason {
    /// The stable snake_case name, as in JSON and CSV.
    pub fn name(self) -> &'static str {
        match self {
            Reason::TopUp => "top_up",
            Reason::DepositFrozen => "deposit_frozen",
            Reason::GroupBuyingDepositFunded => "group_buying_deposit_funded",
            Reason::DepositDeducted => "deposit_deducted",
            Reason::Paid => "paid",
            Reason::Redeemed => "redeemed",
            Reason::Reversed => "reversed",
            Reason::WindowEnded => "window_ended",
            Reason::PayoutSent => "payout_sent",
            Reason::PayoutConfirmed => "payout_confirmed",
            Reason::PayoutFailed => "payout_failed",
            Reason::Refunded => "refunded",
            Reason::RefundConfirmed => "refund_confirmed",
            Reason::RefundFailed => "refund_failed",
            Reason::RefundRetried => "refund_retried",
            Reason::CodeFee => "code_fee",
            Reason::RefundRemainder => "refund_remainder",
            Reason::TPlus3Due => "t_plus_3_due",
            Reason::Expired => "expired",
            Reason::AfterSaleRefund => "after_sale_refund",
            Reason::ReceivableBooked => "receivable_booked",
            Reason::ReceivableNetted => "receivable_netted",
            Reason::NettingReversed => "netting_reversed",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One balanced, immutable movement of money (MON-3), with `link` naming
/// what it belongs to (a voucher shard links each entry to its voucher;
/// the catalog links nothing, `()`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry<A, L = ()> {
    /// Account the money left (its balance goes down).
    pub from: A,
    /// Account the money reached (its balance goes up).
    pub to: A,
    /// Amount, > 0.
    pub amount: Fen,
    /// Why.
    pub reason: Reason,
    /// When, unix ms.
    pub at_ms: i64,
    /// What it belongs to.
    pub link: L,
}

/// Why an entry was not posted; nothing changed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    /// `from` holds less than the amount and may not go negative.
    #[error("{account} holds {balance} yuan, {needed} needed")]
    Insufficient {
        /// The account, in words.
        account: String,
        /// Its balance.
        balance: Fen,
        /// The amount asked for.
        needed: Fen,
    },
    /// An account would leave the range an amount can have.
    #[error("the balance of {0} would overflow")]
    Overflow(String),
}

/// One ledger: balances per account and the entries, in order.
#[derive(Clone, Debug)]
pub struct Ledger<A: Account, L = ()> {
    balances: BTreeMap<A, Fen>,
    entries: Vec<Entry<A, L>>,
}

impl<A: Account, L> Default for Ledger<A, L> {
    fn default() -> Self {
        Ledger {
            balances: BTreeMap::new(),
            entries: Vec::new(),
        }
    }
}

impl<A: Account, L> Ledger<A, L> {
    /// An empty ledger.
    pub fn new() -> Ledger<A, L> {
        Ledger::default()
    }

    /// Balance of `account` (0.00 when it never moved).
    pub fn balance(&self, account: A) -> Fen {
        self.balances.get(&account).copied().unwrap_or_default()
    }

    /// Every entry, in the order posted.
    pub fn entries(&self) -> &[Entry<A, L>] {
        &self.entries
    }

    /// Accounts in `range` that ever moved, with their balances, in key
    /// order.
    pub fn balances(
        &self,
        range: impl std::ops::RangeBounds<A>,
    ) -> impl Iterator<Item = (A, Fen)> + '_ {
        self.balances.range(range).map(|(a, f)| (*a, *f))
    }

    /// Whether `amount` may move out of `from` now.
    ///
    /// Errors: as [`Ledger::post`].
    pub fn check_post(&self, from: A, to: A, amount: Fen) -> Result<(), LedgerError> {
        let balance = self.balance(from);
        if !from.may_go_negative() && balance < amount {
            return Err(LedgerError::Insufficient {
                account: from.to_string(),
                balance,
                needed: amount,
            });
        }
        balance
            .checked_sub(amount)
            .ok_or_else(|| LedgerError::Overflow(from.to_string()))?;
        self.balance(to)
            .checked_add(amount)
            .ok_or_else(|| LedgerError::Overflow(to.to_string()))?;
        Ok(())
    }

    /// Moves `amount` from `from` to `to` as one entry at `at_ms` linked to
    /// `link`; a zero amount writes nothing (MON-3).
    ///
    /// Errors: [`LedgerError::Insufficient`] when `from` may not go
    /// negative and holds less; [`LedgerError::Overflow`]. Nothing changes
    /// on an error.
    ///
    /// Panics on a negative amount: callers compute amounts, never take
    /// them from outside unchecked.
    pub fn post(
        &mut self,
        from: A,
        to: A,
        amount: Fen,
        reason: Reason,
        at_ms: i64,
        link: L,
    ) -> Result<(), LedgerError> {
        assert!(amount >= Fen::ZERO, "negative entry {amount} {from} → {to}");
        if amount.is_zero() {
            return Ok(());
        }
        self.check_post(from, to, amount)?;
        *self.balances.entry(from).or_default() -= amount;
        *self.balances.entry(to).or_default() += amount;
        self.entries.push(Entry {
            from,
            to,
            amount,
            reason,
            at_ms,
            link,
        });
        Ok(())
    }

    /// MON-5: the balances add up to zero, each is the sum of its entries,
    /// every entry is above zero and no account that must not go negative
    /// did.
    ///
    /// Errors: the first broken rule, in words.
    pub fn check(&self) -> Result<(), String> {
        let mut sums: BTreeMap<A, i128> = BTreeMap::new();
        for (i, e) in self.entries.iter().enumerate() {
            if e.amount <= Fen::ZERO || e.from == e.to {
                return Err(format!(
                    "entry {i} moves {} from {} to {}",
                    e.amount, e.from, e.to
                ));
            }
            *sums.entry(e.from).or_default() -= i128::from(e.amount.fen());
            *sums.entry(e.to).or_default() += i128::from(e.amount.fen());
        }
        let total: i128 = self.balances.values().map(|f| i128::from(f.fen())).sum();
        if total != 0 {
            return Err(format!("balances add up to {total} fen, not 0"));
        }
        for (account, balance) in &self.balances {
            let from_entries = sums.get(account).copied().unwrap_or(0);
            if from_entries != i128::from(balance.fen()) {
                return Err(format!(
                    "{account} holds {balance} but its entries add up to {from_entries} fen"
                ));
            }
            if *balance < Fen::ZERO && !account.may_go_negative() {
                return Err(format!("{account} is negative: {balance}"));
            }
        }
        if sums.keys().any(|a| !self.balances.contains_key(a)) {
            return Err("an account with entries has no balance".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
    enum Acct {
        Outside,
        Payment,
        Deposit,
    }

    impl fmt::Display for Acct {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "{self:?}")
        }
    }

    impl Account for Acct {
        fn may_go_negative(&self) -> bool {
            *self == Acct::Outside
        }
    }

    /// MON-3: one entry per movement, zero amounts not written, a refused
    /// movement changes nothing; MON-5 holds after each.
    #[test]
    fn mon_3_every_movement_is_one_balanced_entry() {
        let mut l: Ledger<Acct> = Ledger::new();
        l.post(
            Acct::Outside,
            Acct::Payment,
            Fen::new(50_000),
            Reason::TopUp,
            1,
            (),
        )
        .unwrap();
        l.post(
            Acct::Payment,
            Acct::Deposit,
            Fen::ZERO,
            Reason::DepositFrozen,
            2,
            (),
        )
        .unwrap();
        assert_eq!(l.entries().len(), 1, "zero amounts are not written");
        let refused = l.post(
            Acct::Payment,
            Acct::Deposit,
            Fen::new(50_001),
            Reason::DepositFrozen,
            3,
            (),
        );
        assert_eq!(
            refused,
            Err(LedgerError::Insufficient {
                account: "Payment".into(),
                balance: Fen::new(50_000),
                needed: Fen::new(50_001),
            })
        );
        assert_eq!(l.entries().len(), 1);
        l.post(
            Acct::Payment,
            Acct::Deposit,
            Fen::new(20_000),
            Reason::DepositFrozen,
            4,
            (),
        )
        .unwrap();
        assert_eq!(l.balance(Acct::Outside), Fen::new(-50_000));
        assert_eq!(l.balance(Acct::Payment), Fen::new(30_000));
        assert_eq!(l.balance(Acct::Deposit), Fen::new(20_000));
        assert_eq!(l.check(), Ok(()));
    }

    /// A movement that would overflow an account is refused and changes
    /// nothing.
    #[test]
    fn mon_5_an_overflowing_movement_is_refused_and_changes_nothing() {
        let mut l: Ledger<Acct> = Ledger::new();
        l.post(
            Acct::Outside,
            Acct::Payment,
            Fen::new(i64::MAX),
            Reason::TopUp,
            1,
            (),
        )
        .unwrap();
        let again = l.post(
            Acct::Outside,
            Acct::Payment,
            Fen::new(1),
            Reason::TopUp,
            2,
            (),
        );
        assert!(matches!(again, Err(LedgerError::Overflow(_))), "{again:?}");
        assert_eq!(l.entries().len(), 1);
        assert_eq!(l.balance(Acct::Payment), Fen::new(i64::MAX));
        assert_eq!(l.check(), Ok(()));
    }

    /// MON-5: the check finds a balance that differs from its entries.
    #[test]
    fn mon_5_the_check_finds_a_balance_its_entries_do_not_explain() {
        let mut l: Ledger<Acct> = Ledger::new();
        l.post(
            Acct::Outside,
            Acct::Payment,
            Fen::new(100),
            Reason::TopUp,
            1,
            (),
        )
        .unwrap();
        let mut broken = l.clone();
        *broken.balances.get_mut(&Acct::Payment).unwrap() = Fen::new(99);
        *broken.balances.get_mut(&Acct::Outside).unwrap() = Fen::new(-99);
        assert_eq!(
            broken.check(),
            Err("Outside holds -0.99 but its entries add up to -100 fen".into())
        );
        let mut unbalanced = l.clone();
        *unbalanced.balances.get_mut(&Acct::Payment).unwrap() = Fen::new(101);
        assert!(unbalanced.check().unwrap_err().contains("add up to 1 fen"));
    }
}
