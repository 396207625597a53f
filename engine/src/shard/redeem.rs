//! Redemption (ORD-7, ORD-8): k units of a live code; the rest moves to
//! a fresh code in the same atomic step; every redemption is logged
//! (ORD-10).

use super::*;

impl Shard {
    /// The reply to a retry of redemption `r`: its original reply, marked
    /// as a repeat.
    fn redeemed_reply(&self, r: &Redemption) -> Outcome {
        Outcome::Redeemed(Redeemed {
            order_id: self.vouchers[r.voucher as usize].order_id.to_string(),
            units: r.units,
            units_remaining: r.units_remaining_after,
            new_code: r.new_code,
            replayed: true,
        })
    }

    pub(super) fn redeem(
        &mut self,
        now_ms: i64,
        caller: Caller,
        c: &Redeem,
        effects: &mut Vec<Effect>,
    ) -> Reply {
        let fp = fingerprint(c);
        if let Some(&pos) = self.redemptions.get(&c.request_id) {
            let r = &self.log[pos as usize];
            if r.fingerprint != fp {
                return Err(Rejection::new(
                    ErrorCode::RequestConflict,
                    "request id already used with other content",
                ));
            }
            return Ok(self.redeemed_reply(r));
        }
        if self.reversals.contains_key(&c.request_id)
            || self.order_steps.contains_key(&c.request_id)
        {
            return Err(Rejection::new(
                ErrorCode::RequestConflict,
                "request id already used by a reversal, refund or extension",
            ));
        }
        if c.units == 0 {
            return Err(Rejection::new(
                ErrorCode::UnitsInvalid,
                "units must be at least 1",
            ));
        }
        let slot = self.check_redemption(now_ms, caller, c)?;
        let remaining = self.vouchers[slot as usize].units_remaining - c.units;
        let digits = self.vouchers[slot as usize].code_digits;
        // Draw before changing anything, so a full code space changes nothing.
        let new_code = if remaining > 0 {
            Some(self.draw_code(digits, now_ms)?)
        } else {
            None
        };
        Ok(self.commit_redemption(now_ms, slot, c, fp, new_code, effects))
    }

    /// Every ORD-7 check of a redemption, in order: the code and phone
    /// digits, then — only for callers of the voucher's own seller and
    /// staff — validity start, outlet, verifier, POS and units. To anyone
    /// else the voucher does not exist (`code_invalid`).
    fn check_redemption(&self, now_ms: i64, caller: Caller, c: &Redeem) -> Result<u32, Rejection> {
        check_last4(&c.phone_last4)?;
        let slot = self
            .find_live(now_ms, c.code, &c.phone_last4)
            .map_err(|r| self.refunded_or(r, caller, Who::of_redeem(c), c.code, &c.phone_last4))?;
        let v = &self.vouchers[slot as usize];
        if !self.entitled(caller, Who::of_redeem(c), v.seller_id) {
            return Err(Rejection::code_invalid(InvalidCodeReason::OtherSeller));
        }
        if now_ms < v.valid_from_ms {
            return Err(Rejection::new(
                ErrorCode::NotYetValid,
                "the voucher's validity has not started",
            ));
        }
        if v.request.is_some() {
            return Err(Rejection::new(
                ErrorCode::RefundOpen,
                "a refund request of this order is open: its units are locked until the seller decides (REF-2)",
            ));
        }
        self.check_place(v.product_id, v.seller_id, c)?;
        if c.units > v.units_remaining {
            return Err(Rejection::new(
                ErrorCode::UnitsInsufficient,
                format!("{} units asked, {} remain", c.units, v.units_remaining),
            ));
        }
        Ok(slot)
    }

    /// Applies a checked redemption: retires the code, moves the rest to
    /// `new_code`, writes the verification-log entry (ORD-10) and the
    /// buyer's notices (ORD-8).
    fn commit_redemption(
        &mut self,
        now_ms: i64,
        slot: u32,
        c: &Redeem,
        fp: u64,
        new_code: Option<Code>,
        effects: &mut Vec<Effect>,
    ) -> Outcome {
        self.retire(c.code, now_ms);
        let v = &mut self.vouchers[slot as usize];
        let remaining = v.units_remaining - c.units;
        v.units_remaining = remaining;
        v.live_code = new_code;
        if let Some(code) = new_code {
            v.code_digits = code.digits();
        }
        assert!(v.units_remaining <= v.units_total);
        let order_id = v.order_id.clone();
        let to = v.recipient();
        let prev = v.last_redemption;
        if let Some(code) = new_code {
            let fresh = self.live.insert(code, slot).is_none();
            assert!(fresh, "replacement code was already live");
            self.codes_used[usize::from(code.digits())] += 1;
        }
        let pos = u32::try_from(self.log.len())
            .ok()
            .filter(|p| *p != NO_REDEMPTION)
            .expect("fewer than 2^32 - 1 redemptions per shard");
        self.vouchers[slot as usize].last_redemption = pos;
        self.log.push(Redemption {
            request_id: c.request_id,
            voucher: slot,
            code: c.code,
            prev,
            units: c.units,
            at_ms: now_ms,
            outlet_id: c.outlet_id,
            verifier_id: c.verifier_id,
            pos_id: c.pos_id,
            fingerprint: fp,
            units_remaining_after: remaining,
            new_code,
            reversal: None,
            amount: Fen::ZERO,
            settled: false,
        });
        self.redemptions.insert(c.request_id, pos);
        self.hold_redeemed(now_ms, pos);
        // One SMS: what was redeemed, what is left and its new code (ORD-8).
        effects.push(Effect::RedemptionNotice {
            to,
            units: c.units,
            units_remaining: remaining,
            new_code,
        });
        Outcome::Redeemed(Redeemed {
            order_id: order_id.to_string(),
            units: c.units,
            units_remaining: remaining,
            new_code,
            replayed: false,
        })
    }
}
