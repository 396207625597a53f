//! Money and deposits, as balanced ledger entries: a seller tops up its
//! payment account (bound in ONB-2 step 2); T+N is applied for per
//! category, decided by staff and confirmed by the seller, which freezes
//! the category's deposit amount from the payment account (ONB-4); staff
//! deduct from a deposit (e.g. after-sale refunds, REF-5) and the seller
//! tops it up; a group-buying operator funds its group-buying deposit
//! (ONB-5). A deposit below the category's amount raises `deposit_short`
//! once and flags the category until it is covered again (ONB-6).

use super::check::{check_amount, reject};
use super::{
    Account, Catalog, CatalogEvent, CatalogLink, CatalogOutcome, CatalogReply, Onboarding, TPlusN,
};
use crate::error::{ErrorCode, Rejection};
use crate::ids::{CategoryId, SellerId};
use crate::ledger::{LedgerError, Reason};
use crate::money::Fen;

impl Catalog {
    /// [`super::CatalogCommand::TopUp`]: funds the seller's payment
    /// account from outside.
    pub(super) fn top_up(&mut self, now_ms: i64, me: SellerId, amount: Fen) -> CatalogReply {
        check_amount(amount)?;
        // The payment account exists once bound (ONB-2 step 2).
        if matches!(
            self.seller(me)?.onboarding,
            Onboarding::Applied | Onboarding::AgreementAccepted
        ) {
            return Err(reject(
                ErrorCode::OnboardingStepOutOfOrder,
                "bind a payment account before topping it up",
            ));
        }
        self.transfer(
            Account::External,
            Account::Payment(me),
            amount,
            Reason::TopUp,
            now_ms,
        )?;
        Ok(CatalogOutcome::Balance(self.balance(Account::Payment(me))))
    }

    /// [`super::CatalogCommand::ApplyTPlusN`] (ONB-4): a first application,
    /// or a new one after a rejection.
    pub(super) fn apply_t_plus_n(&mut self, me: SellerId, category: CategoryId) -> CatalogReply {
        self.enabled_seller(me)?;
        if !self.category(category)?.supports_vouchers {
            return Err(reject(
                ErrorCode::CategoryNotForVouchers,
                format!("category {category}"),
            ));
        }
        let s = self.seller_mut(me)?;
        match s.t_plus_n.get(&category) {
            None | Some(TPlusN::Rejected) => {
                s.t_plus_n.insert(category, TPlusN::Applied);
                Ok(CatalogOutcome::TPlusN(TPlusN::Applied))
            }
            Some(other) => Err(reject(
                ErrorCode::TPlusNNotPending,
                format!("T+N for category {category} is already {other}"),
            )),
        }
    }

    /// [`super::CatalogCommand::DecideTPlusN`] (ONB-4): approval creates a
    /// deposit-freeze notice for the category's deposit amount.
    pub(super) fn decide_t_plus_n(
        &mut self,
        seller: SellerId,
        category: CategoryId,
        approve: bool,
        events: &mut Vec<CatalogEvent>,
    ) -> CatalogReply {
        let amount = self.category(category)?.deposit;
        let s = self.seller_mut(seller)?;
        if s.t_plus_n.get(&category) != Some(&TPlusN::Applied) {
            return Err(reject(
                ErrorCode::TPlusNNotPending,
                "no pending T+N application",
            ));
        }
        let next = if approve {
            TPlusN::FreezeNotice { amount }
        } else {
            TPlusN::Rejected
        };
        s.t_plus_n.insert(category, next);
        if approve {
            events.push(CatalogEvent::FreezeNotice {
                seller,
                category,
                amount,
            });
        }
        Ok(CatalogOutcome::TPlusN(next))
    }

    /// [`super::CatalogCommand::ConfirmDepositFreeze`] (ONB-4): freezes the
    /// notice's amount from the payment account; T+N is enabled.
    pub(super) fn confirm_deposit_freeze(
        &mut self,
        now_ms: i64,
        me: SellerId,
        category: CategoryId,
        events: &mut Vec<CatalogEvent>,
    ) -> CatalogReply {
        let Some(TPlusN::FreezeNotice { amount }) =
            self.seller(me)?.t_plus_n.get(&category).copied()
        else {
            return Err(reject(
                ErrorCode::TPlusNNotPending,
                "no deposit-freeze notice to confirm",
            ));
        };
        self.transfer(
            Account::Payment(me),
            Account::Deposit(me, category),
            amount,
            Reason::DepositFrozen,
            now_ms,
        )?;
        self.seller_mut(me)?
            .t_plus_n
            .insert(category, TPlusN::Enabled);
        self.review_deposit(me, category, events)?;
        Ok(CatalogOutcome::TPlusN(TPlusN::Enabled))
    }

    /// [`super::CatalogCommand::DeductDeposit`]: staff take money from a
    /// deposit (e.g. an after-sale refund, REF-5).
    pub(super) fn deduct_deposit(
        &mut self,
        now_ms: i64,
        seller: SellerId,
        category: CategoryId,
        amount: Fen,
        events: &mut Vec<CatalogEvent>,
    ) -> CatalogReply {
        check_amount(amount)?;
        self.seller(seller)?;
        self.transfer(
            Account::Deposit(seller, category),
            Account::External,
            amount,
            Reason::DepositDeducted,
            now_ms,
        )?;
        self.review_deposit(seller, category, events)?;
        Ok(CatalogOutcome::Balance(
            self.balance(Account::Deposit(seller, category)),
        ))
    }

    /// [`super::CatalogCommand::TopUpDeposit`]: moves money from the
    /// seller's payment account into a deposit (ONB-6).
    pub(super) fn top_up_deposit(
        &mut self,
        now_ms: i64,
        me: SellerId,
        category: CategoryId,
        amount: Fen,
        events: &mut Vec<CatalogEvent>,
    ) -> CatalogReply {
        check_amount(amount)?;
        self.category(category)?;
        self.transfer(
            Account::Payment(me),
            Account::Deposit(me, category),
            amount,
            Reason::DepositFrozen,
            now_ms,
        )?;
        self.review_deposit(me, category, events)?;
        Ok(CatalogOutcome::Balance(
            self.balance(Account::Deposit(me, category)),
        ))
    }

    /// [`super::CatalogCommand::FundGroupBuyingDeposit`] (ONB-5).
    pub(super) fn fund_group_buying_deposit(
        &mut self,
        now_ms: i64,
        me: SellerId,
        amount: Fen,
    ) -> CatalogReply {
        check_amount(amount)?;
        if !self.seller(me)?.group_buying_operator {
            return Err(reject(
                ErrorCode::GroupBuyingNotAllowed,
                "not a group-buying operator",
            ));
        }
        self.transfer(
            Account::Payment(me),
            Account::GroupBuyingDeposit(me),
            amount,
            Reason::GroupBuyingDepositFunded,
            now_ms,
        )?;
        Ok(CatalogOutcome::Balance(
            self.balance(Account::GroupBuyingDeposit(me)),
        ))
    }

    /// Moves `amount` from `from` to `to` as one ledger entry at `now_ms`
    /// (MON-3); nothing for a zero amount.
    ///
    /// Errors: `insufficient_balance` when `from` (not External) holds less.
    pub(super) fn transfer(
        &mut self,
        from: Account,
        to: Account,
        amount: Fen,
        reason: Reason,
        now_ms: i64,
    ) -> Result<(), Rejection> {
        self.transfer_for(from, to, amount, reason, now_ms, CatalogLink::None)
    }

    /// [`Catalog::transfer`] for what `link` names (RPT-5).
    ///
    /// Errors: as [`Catalog::transfer`].
    pub(super) fn transfer_for(
        &mut self,
        from: Account,
        to: Account,
        amount: Fen,
        reason: Reason,
        now_ms: i64,
        link: CatalogLink,
    ) -> Result<(), Rejection> {
        self.ledger
            .post(from, to, amount, reason, now_ms, link)
            .map_err(|e| match e {
                LedgerError::Insufficient { .. } => {
                    reject(ErrorCode::InsufficientBalance, e.to_string())
                }
                LedgerError::Overflow(_) => reject(ErrorCode::BadRequest, e.to_string()),
            })
    }

    /// Emits `deposit_short` and flags the category when the seller has T+N
    /// enabled there and the deposit is below the category's amount
    /// (ONB-6); clears the flag otherwise.
    pub(super) fn review_deposit(
        &mut self,
        seller: SellerId,
        category: CategoryId,
        events: &mut Vec<CatalogEvent>,
    ) -> Result<(), Rejection> {
        let required = self.category(category)?.deposit;
        let balance = self.balance(Account::Deposit(seller, category));
        let s = self.seller_mut(seller)?;
        let t_plus_n = s.t_plus_n.get(&category) == Some(&TPlusN::Enabled);
        if t_plus_n && balance < required {
            if s.short.insert(category) {
                events.push(CatalogEvent::DepositShort {
                    seller,
                    category,
                    balance,
                    required,
                });
            }
        } else {
            s.short.remove(&category);
        }
        Ok(())
    }
}
