//! REF-5, the after-sale refund: once the order's money was paid to the
//! seller, the buyer asks for an amount with a reason; when the seller
//! confirms, the amount is taken back from the seller through the catalog
//! (the order's deposit, else a receivable netted from the next
//! settlements) by a [`ShardMessageBody::TakeBackNumbered`] message, applied
//! exactly once like every shard message. The total taken back never
//! exceeds what the seller received for the order.

use super::*;
use crate::command::{
    RefundKind, RefundState, Refunded, TransferSource, ORDER_TRANSFERS_MAX, REFUND_REASON_BYTES_MAX,
};
use crate::message::{ShardMessage, ShardMessageBody};

impl Shard {
    /// What the seller received for voucher `slot`: its redemptions whose
    /// reversal window ended, refund shares, the T+3 payout and the
    /// expiry's money.
    pub(super) fn seller_received(&self, slot: u32) -> Fen {
        let v = &self.vouchers[slot as usize];
        let mut got = v.released;
        let mut pos = v.last_redemption;
        while pos != NO_REDEMPTION {
            let r = &self.log[pos as usize];
            if r.settled && !r.reversed() {
                got += r.amount;
            }
            pos = r.prev;
        }
        got
    }

    /// REF-5's cap: received less already taken back, and less an open
    /// after-sale request's amount (reserved for its confirmation: a REF-1
    /// or the expiry meanwhile takes back only the rest, so every
    /// take-back together stays within what the seller received).
    pub(super) fn after_sale_refundable(&self, slot: u32) -> Fen {
        let v = &self.vouchers[slot as usize];
        self.seller_received(slot) - v.taken_back - v.after_sale.unwrap_or(Fen::ZERO)
    }

    /// [`RefundAction::AfterSale`](crate::command::RefundAction): opens the
    /// request.
    ///
    /// Errors: `bad_request` for an empty or long reason;
    /// `refund_amount_zero`; `refund_not_allowed` before any money reached
    /// the seller; `refund_open` while another is open;
    /// `refund_above_refundable` above the cap.
    pub(super) fn after_sale_request(
        &mut self,
        slot: u32,
        amount: Fen,
        reason: &str,
    ) -> Result<Refunded, Rejection> {
        if reason.trim().is_empty() || reason.len() > REFUND_REASON_BYTES_MAX {
            return Err(Rejection::new(
                ErrorCode::BadRequest,
                format!("an after-sale reason is 1..={REFUND_REASON_BYTES_MAX} bytes"),
            ));
        }
        if amount <= Fen::ZERO {
            return Err(Rejection::new(
                ErrorCode::RefundAmountZero,
                "a refund pays the buyer more than 0.00",
            ));
        }
        let cap = self.after_sale_refundable(slot);
        if self.seller_received(slot).is_zero() {
            return Err(Rejection::new(
                ErrorCode::RefundNotAllowed,
                "none of the order's money was paid to the seller yet: an unexpired refund applies",
            ));
        }
        if self.vouchers[slot as usize].after_sale.is_some() {
            return Err(Rejection::new(
                ErrorCode::RefundOpen,
                "an after-sale request of this order is open",
            ));
        }
        if self.transfer_count(slot) >= ORDER_TRANSFERS_MAX / 2 {
            return Err(Rejection::new(
                ErrorCode::RefundNotAllowed,
                "the order has had too many refunds: staff handle further ones outside vouch",
            ));
        }
        if amount > cap {
            return Err(Rejection::new(
                ErrorCode::RefundAboveRefundable,
                format!("{amount} yuan asked, {cap} yuan may still be taken back from the seller"),
            ));
        }
        self.vouchers[slot as usize].after_sale = Some(amount);
        Ok(self.after_sale_reply(slot, RefundState::Requested, amount))
    }

    /// [`RefundAction::ConfirmAfterSale`](crate::command::RefundAction):
    /// the seller confirms; the amount is taken back through the catalog.
    ///
    /// Errors: `not_found` without an open request.
    pub(super) fn after_sale_confirm(
        &mut self,
        now_ms: i64,
        slot: u32,
    ) -> Result<Refunded, Rejection> {
        let Some(amount) = self.vouchers[slot as usize].after_sale else {
            return Err(Rejection::new(
                ErrorCode::NotFound,
                "no open after-sale request for this order",
            ));
        };
        self.vouchers[slot as usize].after_sale = None;
        self.take_back(now_ms, slot, amount);
        Ok(self.after_sale_reply(slot, RefundState::Done, amount))
    }

    /// Takes `amount` (> 0) back from the seller of voucher `slot` for its
    /// buyer through the catalog: a [`ShardMessageBody::TakeBackNumbered`]
    /// message (REF-5; also REF-1 and REF-6 after a T+3 payout).
    pub(super) fn take_back(&mut self, now_ms: i64, slot: u32, amount: Fen) {
        if amount.is_zero() {
            return;
        }
        let transfer = self.send_transfer(now_ms, slot, amount, TransferSource::TakenBack, None);
        let v = &mut self.vouchers[slot as usize];
        v.taken_back += amount;
        let body = ShardMessageBody::TakeBackNumbered {
            seller: v.seller_id,
            category: v.terms.category,
            group_buying: v.terms.group_buying,
            amount,
            order_id: v.order_id.to_string(),
            transfer,
        };
        self.messages_sent += 1;
        self.outbox.push(ShardMessage {
            shard: self.index,
            seq: self.messages_sent,
            at_ms: now_ms,
            body,
        });
    }

    fn after_sale_reply(&self, slot: u32, state: RefundState, amount: Fen) -> Refunded {
        Refunded {
            order_id: self.vouchers[slot as usize].order_id.to_string(),
            kind: RefundKind::AfterSale,
            state,
            buyer_amount: amount,
            code_fee: Fen::ZERO,
            seller_amount: Fen::ZERO,
            units_voided: 0,
            refundable: self.after_sale_refundable(slot),
            new_code: None,
            transfer: (state == RefundState::Done).then(|| self.transfer_count(slot)),
            replayed: false,
        }
    }
}
