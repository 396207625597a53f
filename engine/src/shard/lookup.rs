//! Lookup (ORD-9) and the code check every lookup and redemption shares
//! (ORD-7: unknown, replaced, expired and wrong last-4 look the same).

use super::*;

/// Stands in for a voucher when a code is not live, so that an unknown
/// code goes through the same loads and comparisons as a live one. Its
/// last four bytes are no digits and its window ended before any `now`.
const NO_VOUCHER_LAST4: [u8; 4] = [0xff; 4];

/// Whether four phone digits equal, comparing every byte whatever the
/// first difference (issue 7 item 4: no early exit a stopwatch can see).
fn last4_equal(a: &[u8; 4], b: &[u8]) -> bool {
    b.len() == 4 && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Shard {
    /// Finds the voucher of a live code and checks phone digits and expiry.
    /// Every failure is the uniform `code_invalid` with a hidden reason.
    ///
    /// An unknown, a replaced or expired code and a live code with wrong
    /// last four digits take the same steps: both code maps are probed, one
    /// voucher is read, the digits are compared in full and the window is
    /// checked before the outcome is chosen (issue 7 item 4; measured in
    /// `benches/`, `code_check_paths`, BENCHMARKS.md).
    pub(super) fn find_live(&self, now_ms: i64, code: Code, last4: &str) -> Result<u32, Rejection> {
        let live = self.live.get(&code).copied();
        let retired = self.retired.get(&code).copied();
        // Every guess reads one voucher: the live code's, the replaced
        // code's, or one chosen by the code's value, so that an unknown
        // code costs the same memory access as a known one.
        let decoy = (code.value() % self.vouchers.len().max(1) as u64) as u32;
        let read = live.or(retired).unwrap_or(decoy);
        let (digits, until_ms, closed) = self
            .vouchers
            .get(read as usize)
            .map_or((&NO_VOUCHER_LAST4, i64::MIN, None), |v| {
                (&v.last4, v.valid_until_ms, v.closed)
            });
        let digits_match = last4_equal(digits, last4.as_bytes());
        let in_window = now_ms < until_ms;
        let reason = match (live, digits_match, in_window) {
            (Some(slot), true, true) => return Ok(slot),
            // A code retired by its voucher's expiry (REF-6) says so.
            (None, _, _) if retired.is_some() && closed == Some(Unavailable::Expired) => {
                InvalidCodeReason::Expired
            }
            (None, _, _) if retired.is_some() => InvalidCodeReason::Replaced,
            (None, _, _) => InvalidCodeReason::Unknown,
            (Some(_), false, _) => InvalidCodeReason::WrongPhoneDigits,
            (Some(_), true, false) => InvalidCodeReason::Expired,
        };
        Err(Rejection::code_invalid(reason))
    }

    /// ORD-7's refunded check: a retired code of a refunded voucher, with
    /// the right phone digits, is `voucher_refunded` to the voucher's own
    /// seller's callers and staff; `refused` (the uniform `code_invalid`)
    /// to everyone else and for every other code.
    pub(super) fn refunded_or(
        &self,
        refused: Rejection,
        caller: Caller,
        who: Who,
        code: Code,
        last4: &str,
    ) -> Rejection {
        if refused.reason != Some(InvalidCodeReason::Replaced) {
            return refused;
        }
        let Some(v) = self.retired.get(&code).map(|s| &self.vouchers[*s as usize]) else {
            return refused;
        };
        let refunded =
            v.closed == Some(Unavailable::Refunded) && last4_equal(&v.last4, last4.as_bytes());
        if refunded && self.entitled(caller, who, v.seller_id) {
            return Rejection::new(
                ErrorCode::VoucherRefunded,
                "the voucher was refunded: its code no longer works",
            );
        }
        refused
    }

    pub(super) fn lookup(&self, now_ms: i64, caller: Caller, c: &Lookup) -> Reply {
        check_last4(&c.phone_last4)?;
        let who = Who::of_lookup(c);
        let slot = self
            .find_live(now_ms, c.code, &c.phone_last4)
            .map_err(|r| self.refunded_or(r, caller, who, c.code, &c.phone_last4))?;
        let v = &self.vouchers[slot as usize];
        if !self.entitled(caller, who, v.seller_id) {
            return Err(Rejection::code_invalid(InvalidCodeReason::OtherSeller));
        }
        self.check_tenant(v.product_id, v.seller_id, c.verifier_id, c.pos_id)?;
        Ok(Outcome::LookedUp(LookedUp {
            order_id: v.order_id.to_string(),
            seller_id: v.seller_id,
            product_id: v.product_id,
            units_remaining: v.units_remaining,
            units_total: v.units_total,
            valid_from_ms: v.valid_from_ms,
            valid_until_ms: v.valid_until_ms,
        }))
    }
}
