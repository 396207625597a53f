//! The audit pages: every voucher and every verification-log entry, for
//! staff and the load tool's end-of-run check.

use super::*;

impl Shard {
    pub(super) fn audit_vouchers(&self, c: &AuditVouchers) -> Outcome {
        let limit = c.limit.min(AUDIT_PAGE_ITEMS_MAX) as usize;
        let from = (c.from as usize).min(self.vouchers.len());
        let end = (from + limit).min(self.vouchers.len());
        let items = self.vouchers[from..end]
            .iter()
            .map(|v| VoucherState {
                order_id: v.order_id.to_string(),
                units_total: v.units_total,
                units_remaining: v.units_remaining,
                units_redeemed: v.units_total - v.units_remaining - v.units_void,
                units_void: v.units_void,
                live_code: v.live_code,
            })
            .collect();
        let next = (end < self.vouchers.len()).then_some(end as u32);
        Outcome::Vouchers { items, next }
    }

    pub(super) fn audit_redemptions(&self, c: &AuditRedemptions) -> Outcome {
        let limit = c.limit.min(AUDIT_PAGE_ITEMS_MAX) as usize;
        let from = (c.from as usize).min(self.log.len());
        let end = (from + limit).min(self.log.len());
        let items = self.log[from..end]
            .iter()
            .map(|r| RedemptionEntry {
                request_id: r.request_id,
                order_id: self.vouchers[r.voucher as usize].order_id.to_string(),
                units: r.units,
                at_ms: r.at_ms,
                outlet_id: r.outlet_id,
                verifier_id: r.verifier_id,
                pos_id: r.pos_id,
                reversed: r.reversed(),
            })
            .collect();
        let next = (end < self.log.len()).then_some(end as u32);
        Outcome::Redemptions { items, next }
    }
}
