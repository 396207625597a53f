//! Refunds (REF-1..4) of one order, with the exact arithmetic of DOMAIN:
//! every kind draws on the order's one still-refundable figure, a refund
//! that would pay the buyer 0.00 is `refund_amount_zero` and changes
//! nothing, and refunded units are void at once.

use super::*;
use crate::command::{Refund, RefundAction, RefundKind, RefundState, Refunded};
use crate::ledger::Reason;
use crate::money::Bps;

/// The code fee kept from an automatic or expiry refund: 1.00 (REF-1,
/// REF-6, glossary).
pub const CODE_FEE: Fen = Fen::YUAN;

/// Calendar days the seller has to decide a manual refund request (REF-2).
pub const REFUND_DECISION_DAYS: i64 = 5;

/// How a refund splits an unredeemed value `G` (MON-2: one rounding, the
/// other parts exact differences).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Split {
    /// To the buyer.
    pub buyer: Fen,
    /// The code fee, to the seller.
    pub code_fee: Fen,
    /// The rest, to the seller.
    pub seller: Fen,
}

impl Split {
    /// REF-1: R = round(G × r), fee = min(1.00, R), buyer R − fee, the
    /// seller the fee and G − R.
    pub fn automatic(g: Fen, ratio: Bps) -> Split {
        let r = g.share(ratio);
        let fee = CODE_FEE.min(r);
        Split {
            buyer: r - fee,
            code_fee: fee,
            seller: g - r,
        }
    }

    /// REF-6 with expiry refund: the buyer round(G × r) − 1.00 (0 when
    /// below), the seller the fee and the rest. The same split as REF-1.
    pub fn expiry(g: Fen, ratio: Bps) -> Split {
        Split::automatic(g, ratio)
    }

    /// REF-2, REF-4: the agreed `a` to the buyer, the rest of `g` to the
    /// seller, no code fee.
    pub fn agreed(g: Fen, a: Fen) -> Split {
        Split {
            buyer: a,
            code_fee: Fen::ZERO,
            seller: g - a,
        }
    }
}

fn not_allowed(why: impl Into<String>) -> Rejection {
    Rejection::new(ErrorCode::RefundNotAllowed, why)
}

impl Shard {
    /// [`Command::Refund`]: one refund step of an order.
    ///
    /// Errors: `not_found` (unknown order, or another seller's);
    /// `refund_not_allowed`, `refund_open`, `refund_above_refundable`,
    /// `refund_amount_zero` as each step documents; `request_conflict`
    /// for a reused request id. A refused step changes nothing.
    pub(super) fn refund(&mut self, now_ms: i64, c: &Refund, effects: &mut Vec<Effect>) -> Reply {
        let fp = fingerprint(&("refund", c));
        if let Some(reply) = self.order_step_retry(&c.request_id, fp) {
            return reply;
        }
        let slot = self.order_slot(&c.order_id, c.seller_id)?;
        let was_open = self.vouchers[slot as usize].closed.is_none();
        let refunded = match &c.action {
            RefundAction::Automatic => self.refund_automatic(now_ms, slot)?,
            RefundAction::NotDelivered => self.refund_not_delivered(now_ms, slot)?,
            RefundAction::Agreed { amount } => self.refund_agreed(now_ms, slot, *amount)?,
            RefundAction::Request { amount } => self.refund_request(now_ms, slot, *amount)?,
            RefundAction::Approve => self.refund_decide(now_ms, slot, None)?,
            RefundAction::Reject => self.refund_decide(now_ms, slot, Some(effects))?,
            RefundAction::AfterSale { amount, reason } => {
                self.after_sale_request(slot, *amount, reason)?
            }
            RefundAction::ConfirmAfterSale => self.after_sale_confirm(now_ms, slot)?,
        };
        // The buyer's refund SMS; a refund that voided the code also
        // withdraws any code message not sent yet (REF-3's "never delivered"
        // must stay true).
        let v = &self.vouchers[slot as usize];
        if refunded.buyer_amount > Fen::ZERO {
            effects.push(Effect::RefundNotice {
                to: v.recipient(),
                amount: refunded.buyer_amount,
                code_void: was_open && v.closed.is_some(),
            });
        }
        let reply = Outcome::Refunded(refunded);
        Ok(self.remember_step(c.request_id, fp, reply))
    }

    /// What every unexpired refund needs: the order open (not refunded or
    /// expired, validity not over), its money still held (not paid out
    /// under T+3) and units unredeemed.
    fn check_refundable(&self, now_ms: i64, slot: u32, automatic: bool) -> Result<(), Rejection> {
        let v = &self.vouchers[slot as usize];
        if v.closed.is_some() {
            return Err(not_allowed("the order was already refunded or expired"));
        }
        if now_ms >= v.valid_until_ms {
            return Err(not_allowed(
                "the validity has ended: the expiry refund applies (REF-6)",
            ));
        }
        // Paid out under T+3: only REF-1 applies, taken back from the
        // seller (REF-5's mechanics); due but not yet paid: nothing until
        // the tick pays it.
        let v = &self.vouchers[slot as usize];
        if self.t_plus_3_passed(now_ms, slot) && !(v.paid_out && automatic) {
            return Err(not_allowed(
                "the order's money was paid to the seller (T+3): an after-sale or automatic refund applies",
            ));
        }
        if v.units_remaining == 0 {
            return Err(not_allowed("every unit was redeemed"));
        }
        Ok(())
    }

    /// REF-2's lock: while a request is open no other refund applies.
    fn check_no_request(&self, slot: u32) -> Result<(), Rejection> {
        if self.vouchers[slot as usize].request.is_some() {
            return Err(Rejection::new(
                ErrorCode::RefundOpen,
                "a refund request of this order is open: the seller approves or rejects it first",
            ));
        }
        Ok(())
    }

    /// REF-1: the automatic refund of every unredeemed unit.
    fn refund_automatic(&mut self, now_ms: i64, slot: u32) -> Result<Refunded, Rejection> {
        self.check_refundable(now_ms, slot, true)?;
        self.check_no_request(slot)?;
        let terms = self.vouchers[slot as usize].terms;
        if !terms.auto_refund {
            return Err(not_allowed(
                "the product's category has no automatic refund: request a manual one (REF-2)",
            ));
        }
        let ratio = terms.expiry_refund_ratio.unwrap_or(Bps::FULL);
        let split = Split::automatic(self.unredeemed_value(slot), ratio);
        if self.vouchers[slot as usize].paid_out {
            return self.apply_taken_back(
                now_ms,
                slot,
                split,
                RefundKind::Automatic,
                Unavailable::Refunded,
            );
        }
        self.apply_split(
            now_ms,
            slot,
            split,
            RefundKind::Automatic,
            Unavailable::Refunded,
        )
    }

    /// REF-1 and REF-6 after a T+3 payout (REF-5's last sentence): the
    /// seller already has the money, so the buyer's part is taken back
    /// from it through the catalog; the units are void.
    /// `refund_amount_zero` (nothing changes) when the buyer would get
    /// 0.00, unless it is the expiry.
    pub(super) fn apply_taken_back(
        &mut self,
        now_ms: i64,
        slot: u32,
        split: Split,
        kind: RefundKind,
        why: Unavailable,
    ) -> Result<Refunded, Rejection> {
        // Every take-back together stays within what the seller received
        // (REF-5): earlier after-sale refunds count.
        let buyer = split.buyer.min(self.after_sale_refundable(slot));
        let split = Split {
            buyer,
            code_fee: split.code_fee,
            seller: split.seller + (split.buyer - buyer),
        };
        if split.buyer.is_zero() && kind != RefundKind::Expiry {
            return Err(Rejection::new(
                ErrorCode::RefundAmountZero,
                format!(
                    "the refund would pay the buyer 0.00 (code fee {} yuan)",
                    split.code_fee
                ),
            ));
        }
        self.take_back(now_ms, slot, split.buyer);
        let voided = self.void_units(now_ms, slot, why);
        Ok(self.refunded(slot, kind, RefundState::Done, split, voided, None))
    }

    /// REF-3: no delivery ever succeeded and nothing was redeemed: the
    /// whole order amount, no code fee.
    fn refund_not_delivered(&mut self, now_ms: i64, slot: u32) -> Result<Refunded, Rejection> {
        self.check_refundable(now_ms, slot, false)?;
        self.check_no_request(slot)?;
        let v = &self.vouchers[slot as usize];
        if v.delivered || v.last_redemption != NO_REDEMPTION {
            return Err(not_allowed(
                "the code was delivered or redeemed: a not-delivered refund is no longer possible",
            ));
        }
        let all = v.escrow;
        self.apply_split(
            now_ms,
            slot,
            Split::agreed(all, all),
            RefundKind::NotDelivered,
            Unavailable::Refunded,
        )
    }

    /// The bounds of an agreed or requested amount: above zero, at most
    /// the unredeemed value.
    fn check_amount(&self, slot: u32, amount: Fen) -> Result<Fen, Rejection> {
        let g = self.unredeemed_value(slot);
        if amount <= Fen::ZERO {
            return Err(Rejection::new(
                ErrorCode::RefundAmountZero,
                "a refund pays the buyer more than 0.00",
            ));
        }
        if amount > g {
            return Err(Rejection::new(
                ErrorCode::RefundAboveRefundable,
                format!("{amount} yuan asked, {g} yuan still refundable"),
            ));
        }
        Ok(g)
    }

    /// REF-4: the agreed amount to the buyer, the rest to the seller.
    fn refund_agreed(
        &mut self,
        now_ms: i64,
        slot: u32,
        amount: Fen,
    ) -> Result<Refunded, Rejection> {
        self.check_refundable(now_ms, slot, false)?;
        self.check_no_request(slot)?;
        let g = self.check_amount(slot, amount)?;
        self.apply_split(
            now_ms,
            slot,
            Split::agreed(g, amount),
            RefundKind::Agreed,
            Unavailable::Refunded,
        )
    }

    /// REF-2: opens a manual refund request and locks the units until the
    /// seller decides or [`REFUND_DECISION_DAYS`] calendar days pass.
    fn refund_request(
        &mut self,
        now_ms: i64,
        slot: u32,
        amount: Option<Fen>,
    ) -> Result<Refunded, Rejection> {
        self.check_refundable(now_ms, slot, false)?;
        self.check_no_request(slot)?;
        if self.vouchers[slot as usize].terms.auto_refund {
            return Err(not_allowed(
                "the product's category refunds automatically (REF-1)",
            ));
        }
        let amount = amount.unwrap_or_else(|| self.unredeemed_value(slot));
        self.check_amount(slot, amount)?;
        let deadline = settle::calendar_days_later(now_ms, REFUND_DECISION_DAYS, &self.tz)
            .ok_or_else(|| Rejection::new(ErrorCode::BadRequest, "time out of range"))?;
        self.vouchers[slot as usize].request = Some((amount, deadline));
        self.refund_deadlines.insert((deadline, slot));
        Ok(self.refunded(
            slot,
            RefundKind::Manual,
            RefundState::Requested,
            Split::agreed(amount, amount),
            0,
            None,
        ))
    }

    /// REF-2: the seller approves (`reject` None) or rejects the open
    /// request; a rejection unlocks the units on a new code.
    fn refund_decide(
        &mut self,
        now_ms: i64,
        slot: u32,
        reject: Option<&mut Vec<Effect>>,
    ) -> Result<Refunded, Rejection> {
        let Some((amount, deadline)) = self.vouchers[slot as usize].request else {
            return Err(Rejection::new(
                ErrorCode::NotFound,
                "no open refund request for this order",
            ));
        };
        // At the deadline the request is approved (REF-2), whether or not
        // a tick ran yet: a rejection is too late.
        if reject.is_some() && now_ms >= deadline {
            return Err(not_allowed(
                "the 5-day decision deadline passed: the request is approved",
            ));
        }
        match reject {
            None => self.approve_request(now_ms, slot),
            Some(effects) => {
                let digits = self.vouchers[slot as usize].code_digits;
                let code = self.draw_code(digits, now_ms)?;
                self.refund_deadlines.remove(&(deadline, slot));
                self.vouchers[slot as usize].request = None;
                // Held back from a T+3 payout meanwhile: the seller's now.
                if self.vouchers[slot as usize].paid_out {
                    self.release_to_seller(now_ms, slot, amount, Reason::TPlus3Due);
                }
                self.replace_code(now_ms, slot, code, SendReason::Unlocked, effects);
                // Nothing moved: the amount asked stays with the order.
                let split = Split::agreed(Fen::ZERO, Fen::ZERO);
                Ok(self.refunded(
                    slot,
                    RefundKind::Manual,
                    RefundState::Rejected,
                    split,
                    0,
                    Some(code),
                ))
            }
        }
    }

    /// REF-2 approval, by the seller, the deadline or the expiry: the
    /// request's amount as REF-4.
    pub(super) fn approve_request(
        &mut self,
        now_ms: i64,
        slot: u32,
    ) -> Result<Refunded, Rejection> {
        let (amount, deadline) = self.vouchers[slot as usize]
            .request
            .take()
            .expect("an open request");
        self.refund_deadlines.remove(&(deadline, slot));
        // After a T+3 payout only the held amount is left in escrow: the
        // rest of the units' value already went to the seller.
        let g = if self.vouchers[slot as usize].paid_out {
            amount
        } else {
            self.unredeemed_value(slot)
        };
        let split = Split::agreed(g, amount);
        self.apply_split(
            now_ms,
            slot,
            split,
            RefundKind::Manual,
            Unavailable::Refunded,
        )
    }

    /// REF-2's deadline passed without a decision: approved.
    pub(super) fn approve_by_deadline(&mut self, now_ms: i64, slot: u32) {
        if self.vouchers[slot as usize].request.is_some() {
            self.approve_request(now_ms, slot)
                .expect("an open request is approvable");
        }
    }

    /// Moves the money of `split` out of the voucher's escrow and voids
    /// its unredeemed units; `refund_amount_zero` (nothing changes) when
    /// the buyer would get 0.00, unless it is the expiry.
    pub(super) fn apply_split(
        &mut self,
        now_ms: i64,
        slot: u32,
        split: Split,
        kind: RefundKind,
        why: Unavailable,
    ) -> Result<Refunded, Rejection> {
        if split.buyer.is_zero() && kind != RefundKind::Expiry {
            return Err(Rejection::new(
                ErrorCode::RefundAmountZero,
                format!(
                    "the refund would pay the buyer 0.00 (code fee {} yuan)",
                    split.code_fee
                ),
            ));
        }
        self.refund_to_buyer(now_ms, slot, split.buyer);
        self.release_to_seller(now_ms, slot, split.code_fee, Reason::CodeFee);
        self.release_to_seller(now_ms, slot, split.seller, Reason::RefundRemainder);
        let voided = self.void_units(now_ms, slot, why);
        Ok(self.refunded(slot, kind, RefundState::Done, split, voided, None))
    }

    /// Voids every unredeemed unit and the live code; the order is
    /// `unavailable` for `why`. Returns the units voided.
    pub(super) fn void_units(&mut self, now_ms: i64, slot: u32, why: Unavailable) -> u32 {
        let v = &mut self.vouchers[slot as usize];
        let units = v.units_remaining;
        let (code, until) = (v.live_code.take(), v.valid_until_ms);
        v.units_void += units;
        v.units_remaining = 0;
        v.closed = Some(why);
        if let Some(code) = code {
            self.retire(code, now_ms);
        }
        self.expiries.remove(&(until, slot));
        units
    }

    fn refunded(
        &self,
        slot: u32,
        kind: RefundKind,
        state: RefundState,
        split: Split,
        units_voided: u32,
        new_code: Option<Code>,
    ) -> Refunded {
        Refunded {
            order_id: self.vouchers[slot as usize].order_id.to_string(),
            kind,
            state,
            buyer_amount: split.buyer,
            code_fee: split.code_fee,
            seller_amount: split.seller,
            units_voided,
            refundable: self.refundable(slot),
            new_code,
            transfer: (state == RefundState::Done && split.buyer > Fen::ZERO)
                .then(|| self.transfer_count(slot)),
            replayed: false,
        }
    }
}
