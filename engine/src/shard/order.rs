//! The order on top of its voucher (ORD-12, RPT-2): finding it by order id
//! for its seller, its state and its one still-refundable figure, and the
//! replies to retried order steps (invariant 4).

use super::*;
use crate::command::{
    ListOrders, OrderPage, OrderShow, OrderState, OrderSummary, OrderView, ORDERS_PAGE_ITEMS_MAX,
    ORDERS_SCAN_MAX,
};

impl Shard {
    /// The voucher of `order_id` as `seller` may see it: None sees every
    /// order (front end, staff); another seller's is `not_found`, like an
    /// unknown one (no oracle).
    pub(super) fn order_slot(
        &self,
        order_id: &str,
        seller: Option<SellerId>,
    ) -> Result<u32, Rejection> {
        self.by_order
            .get(order_id)
            .copied()
            .filter(|slot| seller.is_none_or(|s| self.vouchers[*slot as usize].seller_id == s))
            .ok_or_else(|| Rejection::new(ErrorCode::NotFound, format!("order {order_id}")))
    }

    /// The value of the voucher's unredeemed units: what refunds draw on.
    pub(super) fn unredeemed_value(&self, slot: u32) -> Fen {
        let v = &self.vouchers[slot as usize];
        v.unit_price
            .times(v.units_remaining)
            .expect("bounded price × units")
    }

    /// The order's one still-refundable figure (REF): the unredeemed value
    /// while the order is open and its money still held; 0 once refunded,
    /// expired or paid to the seller under T+3.
    pub(super) fn refundable(&self, slot: u32) -> Fen {
        let v = &self.vouchers[slot as usize];
        if v.closed.is_some() || v.paid_out {
            Fen::ZERO
        } else {
            self.unredeemed_value(slot)
        }
    }

    /// ORD-12's state of voucher `slot`.
    fn order_state(&self, slot: u32) -> OrderState {
        let v = &self.vouchers[slot as usize];
        match (v.closed, v.units_remaining) {
            (Some(_), _) => OrderState::Unavailable,
            (None, 0) => OrderState::Used,
            (None, _) => OrderState::Available,
        }
    }

    /// [`Command::Orders`]: one page of orders from position `from`, of
    /// one seller and state when given; looks at most at
    /// `ORDERS_SCAN_MAX` vouchers.
    pub(super) fn list_orders(&self, c: &ListOrders) -> Outcome {
        let limit = c.limit.clamp(1, ORDERS_PAGE_ITEMS_MAX) as usize;
        let end = (self.vouchers.len() as u64).min(u64::from(c.from) + u64::from(ORDERS_SCAN_MAX));
        let (mut items, mut slot) = (Vec::new(), c.from);
        while u64::from(slot) < end && items.len() < limit {
            let v = &self.vouchers[slot as usize];
            let state = self.order_state(slot);
            if c.seller_id.is_none_or(|s| s == v.seller_id) && c.state.is_none_or(|s| s == state) {
                items.push(OrderSummary {
                    order_id: v.order_id.to_string(),
                    seller_id: v.seller_id,
                    product_id: v.product_id,
                    state,
                    unavailable: v.closed,
                    units_total: v.units_total,
                    units_remaining: v.units_remaining,
                    paid: v.unit_price.times(v.units_total).expect("bounded"),
                    refundable: self.refundable(slot),
                    valid_until_ms: v.valid_until_ms,
                });
            }
            slot += 1;
        }
        let next = ((slot as usize) < self.vouchers.len()).then_some(slot);
        Outcome::Orders(OrderPage { items, next })
    }

    /// [`Command::Order`]: one order's state and money.
    ///
    /// Errors: `not_found` for an unknown order or another seller's.
    pub(super) fn order(&self, c: &OrderShow) -> Reply {
        let slot = self.order_slot(&c.order_id, c.seller_id)?;
        let v = &self.vouchers[slot as usize];
        let paid = v.unit_price.times(v.units_total).expect("bounded");
        let redeemed = v.units_total - v.units_remaining - v.units_void;
        Ok(Outcome::Order(OrderView {
            order_id: v.order_id.to_string(),
            seller_id: v.seller_id,
            product_id: v.product_id,
            state: self.order_state(slot),
            unavailable: v.closed,
            units_total: v.units_total,
            units_remaining: v.units_remaining,
            units_redeemed: redeemed,
            units_void: v.units_void,
            after_sale_requested: v.after_sale.is_some(),
            taken_back: v.taken_back,
            refund_requested: v.request.is_some(),
            delivered: v.delivered,
            valid_from_ms: v.valid_from_ms,
            valid_until_ms: v.valid_until_ms,
            paid,
            refunded: v.refunded,
            to_seller: paid - v.escrow - v.refunded,
            escrow: v.escrow,
            refundable: self.refundable(slot),
            transfers: self.transfers_of(slot),
        }))
    }

    /// Keeps order step `rid`'s reply for its retries (invariant 4) and
    /// returns it.
    pub(super) fn remember_step(
        &mut self,
        rid: RequestId,
        fingerprint: u64,
        reply: Outcome,
    ) -> Outcome {
        let step = OrderStep {
            fingerprint,
            reply: reply.clone(),
        };
        self.order_steps.insert(rid, step);
        reply
    }

    /// The reply to a retry of order step `rid` (its original reply,
    /// marked as a repeat), `request_conflict` for other content; None
    /// when `rid` is new.
    pub(super) fn order_step_retry(&self, rid: &RequestId, fp: u64) -> Option<Reply> {
        if self.redemptions.contains_key(rid) || self.reversals.contains_key(rid) {
            return Some(Err(Rejection::new(
                ErrorCode::RequestConflict,
                "request id already used by a redemption or reversal",
            )));
        }
        let step = self.order_steps.get(rid)?;
        if step.fingerprint != fp {
            return Some(Err(Rejection::new(
                ErrorCode::RequestConflict,
                "request id already used with other content",
            )));
        }
        Some(Ok(match step.reply.clone() {
            Outcome::Refunded(r) => Outcome::Refunded(crate::command::Refunded {
                replayed: true,
                ..r
            }),
            Outcome::Extended(x) => Outcome::Extended(crate::command::Extended {
                replayed: true,
                ..x
            }),
            Outcome::Transfer(t) => Outcome::Transfer(crate::command::TransferView {
                replayed: true,
                ..t
            }),
            other => other,
        }))
    }
}
