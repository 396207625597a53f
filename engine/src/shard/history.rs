//! A voucher's history (ORD-10, issue 8): issue, redemptions, reversals
//! and code replacements, for staff and the voucher's seller.

use super::*;

/// The one refusal of a history read: unknown code, another seller's
/// voucher and a caller without rights read the same (ORD-7).
fn unknown(reason: InvalidCodeReason) -> Rejection {
    Rejection {
        message: "no voucher with this code that you may see".into(),
        ..Rejection::code_invalid(reason)
    }
}

impl Shard {
    pub(super) fn history(&self, caller: Caller, c: &History) -> Reply {
        let slot = self
            .live
            .get(&c.code)
            .or_else(|| self.retired.get(&c.code))
            .copied()
            .ok_or_else(|| unknown(InvalidCodeReason::Unknown))?;
        let v = &self.vouchers[slot as usize];
        let who = c.seller_id.map_or(Who::Nobody, Who::Seller);
        if !self.entitled(caller, who, v.seller_id) {
            return Err(unknown(InvalidCodeReason::OtherSeller));
        }
        let events = self.events_of(slot);
        let limit = c.limit.clamp(1, AUDIT_PAGE_ITEMS_MAX) as usize;
        let from = (c.from as usize).min(events.len());
        let end = (from + limit).min(events.len());
        Ok(Outcome::History(VoucherHistory {
            order_id: v.order_id.to_string(),
            seller_id: v.seller_id,
            product_id: v.product_id,
            units_total: v.units_total,
            units_remaining: v.units_remaining,
            live_code: v.live_code,
            valid_from_ms: v.valid_from_ms,
            valid_until_ms: v.valid_until_ms,
            next: (end < events.len()).then_some(end as u32),
            events: events[from..end].to_vec(),
        }))
    }

    /// Every event of voucher `slot`, oldest first (a reversal after its
    /// redemption; times within a shard never run backwards).
    fn events_of(&self, slot: u32) -> Vec<HistoryEvent> {
        let v = &self.vouchers[slot as usize];
        let mut chain = Vec::new();
        let mut pos = v.last_redemption;
        while pos != NO_REDEMPTION {
            chain.push(pos);
            pos = self.log[pos as usize].prev;
        }
        let mut events = vec![HistoryEvent::Issued {
            at_ms: v.issued_at_ms,
            code: v.issued_code,
            units: v.units_total,
        }];
        for &pos in chain.iter().rev() {
            let r = &self.log[pos as usize];
            events.push(HistoryEvent::Redeemed {
                at_ms: r.at_ms,
                request_id: r.request_id,
                code: r.code,
                units: r.units,
                units_remaining: r.units_remaining_after,
                outlet_id: r.outlet_id,
                verifier_id: r.verifier_id,
                pos_id: r.pos_id,
                new_code: r.new_code,
            });
            if let Some(m) = r.reversal {
                events.push(HistoryEvent::Reversed {
                    at_ms: m.at_ms,
                    request_id: m.request_id,
                    redemption: r.request_id,
                    units: r.units,
                    new_code: m.new_code,
                });
            }
        }
        events.sort_by_key(HistoryEvent::at_ms);
        events
    }
}
