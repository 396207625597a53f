//! The end of validity (REF-6, SET-1 end) and its extension (ORD-6).

use super::*;
use crate::command::{Extend, Extended, RefundKind};
use crate::ledger::Reason;

/// The latest validity end an extension may set: 10 years after now, ms.
pub const EXTEND_SPAN_MS_MAX: i64 = 3_650 * 86_400_000;

impl Shard {
    /// REF-6 at the first tick after the validity end, once per voucher:
    /// an open REF-2 request is approved (the buyer asked in time);
    /// otherwise unused units are refunded by the product's expiry refund
    /// ratio or, without expiry refund, their money goes to the seller
    /// (SET-1). The code is void; the order is `unavailable`.
    pub(super) fn expire(&mut self, now_ms: i64, slot: u32) {
        let v = &self.vouchers[slot as usize];
        if v.closed.is_some() || v.units_remaining == 0 {
            return;
        }
        if v.request.is_some() {
            self.approve_request(now_ms, slot)
                .expect("an open request is approvable");
            return;
        }
        let (ratio, paid_out) = (v.terms.expiry_refund_ratio, v.paid_out);
        let g = self.unredeemed_value(slot);
        match ratio {
            // Under T+3 the money is already the seller's: the buyer's
            // expiry refund is taken back from it (REF-5's mechanics).
            Some(r) if paid_out => {
                let split = refund::Split::expiry(g, r);
                self.apply_taken_back(
                    now_ms,
                    slot,
                    split,
                    RefundKind::Expiry,
                    Unavailable::Expired,
                )
                .expect("an expiry is never refused");
            }
            None if paid_out => {
                self.void_units(now_ms, slot, Unavailable::Expired);
            }
            Some(r) => {
                let split = refund::Split::expiry(g, r);
                self.apply_split(
                    now_ms,
                    slot,
                    split,
                    RefundKind::Expiry,
                    Unavailable::Expired,
                )
                .expect("an expiry is never refused");
            }
            None => {
                self.release_to_seller(now_ms, slot, g, Reason::Expired);
                self.void_units(now_ms, slot, Unavailable::Expired);
            }
        }
    }

    /// [`Command::Extend`] (ORD-6): the seller moves one order's validity
    /// end later.
    ///
    /// Errors: `not_found` (unknown order, another seller's);
    /// `validity_not_extended` when the new end is not later, the validity
    /// already ended or the order is closed; `bad_request` for an end more
    /// than [`EXTEND_SPAN_MS_MAX`] away.
    pub(super) fn extend(&mut self, now_ms: i64, c: &Extend) -> Reply {
        // Tagged: an extension never matches a refund step's fingerprint.
        let fp = fingerprint(&("extend", c));
        if let Some(reply) = self.order_step_retry(&c.request_id, fp) {
            return reply;
        }
        let slot = self.order_slot(&c.order_id, c.seller_id)?;
        let v = &self.vouchers[slot as usize];
        let refuse = |why: &str| Err(Rejection::new(ErrorCode::ValidityNotExtended, why));
        if v.closed.is_some() || now_ms >= v.valid_until_ms {
            return refuse("the order's validity has ended or the order is closed");
        }
        if c.valid_until_ms <= v.valid_until_ms {
            return refuse("a validity end can only move later");
        }
        if c.valid_until_ms > now_ms.saturating_add(EXTEND_SPAN_MS_MAX) {
            return Err(Rejection::new(
                ErrorCode::BadRequest,
                "a validity end at most 10 years ahead",
            ));
        }
        let old = v.valid_until_ms;
        self.expiries.remove(&(old, slot));
        self.expiries.insert((c.valid_until_ms, slot));
        let v = &mut self.vouchers[slot as usize];
        v.valid_until_ms = c.valid_until_ms;
        let reply = Outcome::Extended(Extended {
            order_id: v.order_id.to_string(),
            valid_from_ms: v.valid_from_ms,
            valid_until_ms: v.valid_until_ms,
            replayed: false,
        });
        Ok(self.remember_step(c.request_id, fp, reply))
    }
}
