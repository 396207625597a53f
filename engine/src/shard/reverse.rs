//! Reversal (冲正) of a redemption: once, within the window, by the POS
//! or verifier account that redeemed it, or by the voucher's seller; its
//! pending money returns to the voucher's escrow (SET-1).

use super::*;

fn redemption_unknown() -> Rejection {
    Rejection::new(
        ErrorCode::RedemptionUnknown,
        "no redemption with that request id on this code's voucher",
    )
}

impl Shard {
    pub(super) fn reverse(
        &mut self,
        now_ms: i64,
        caller: Caller,
        c: &Reverse,
        effects: &mut Vec<Effect>,
    ) -> Reply {
        let fp = fingerprint(c);
        if let Some(r) = self.reversals.get(&c.request_id) {
            if r.fingerprint != fp {
                return Err(Rejection::new(
                    ErrorCode::RequestConflict,
                    "request id already used with other content",
                ));
            }
            return Ok(Outcome::Reversed(Reversed {
                replayed: true,
                ..r.reply.clone()
            }));
        }
        if self.redemptions.contains_key(&c.request_id)
            || self.order_steps.contains_key(&c.request_id)
        {
            return Err(Rejection::new(
                ErrorCode::RequestConflict,
                "request id already used by a redemption, refund or extension",
            ));
        }
        let pos = self.check_reversal(now_ms, caller, c)?;
        let v = &self.vouchers[self.log[pos as usize].voucher as usize];
        let digits = v.code_digits;
        let new_code = match v.live_code {
            Some(_) => None,
            None => Some(self.draw_code(digits, now_ms)?),
        };
        Ok(self.commit_reversal(now_ms, pos, c, fp, new_code, effects))
    }

    /// The checks of a reversal; the redemption's position in the log.
    /// The redemption must be of the named code's voucher; to a caller
    /// not of that voucher's seller (nor staff) every other outcome is the
    /// same `redemption_unknown` (no oracle, ORD-7).
    fn check_reversal(&self, now_ms: i64, caller: Caller, c: &Reverse) -> Result<u32, Rejection> {
        let &pos = self
            .redemptions
            .get(&c.redemption)
            .ok_or_else(redemption_unknown)?;
        let r = &self.log[pos as usize];
        let code_slot = self.live.get(&c.code).or_else(|| self.retired.get(&c.code));
        if code_slot != Some(&r.voucher) {
            return Err(redemption_unknown());
        }
        let v = &self.vouchers[r.voucher as usize];
        if !self.entitled(caller, Who::of_reverse(c), v.seller_id) {
            return Err(redemption_unknown());
        }
        if r.reversed() {
            return Err(Rejection::new(
                ErrorCode::AlreadyReversed,
                "that redemption was already reversed",
            ));
        }
        if v.request.is_some() {
            return Err(Rejection::new(
                ErrorCode::RefundOpen,
                "a refund request of this order is open: its units are locked (REF-2)",
            ));
        }
        if v.closed.is_some() || now_ms >= v.valid_until_ms {
            return Err(Rejection::new(
                ErrorCode::ReversalNotPermitted,
                "the order was refunded or its validity ended: its units cannot come back",
            ));
        }
        let by_pos = c.pos_id.is_some() && c.pos_id == r.pos_id;
        let by_verifier = c.pos_id.is_none() && c.verifier_id == Some(r.verifier_id);
        let by_seller = c.seller_id == Some(v.seller_id);
        if !by_pos && !by_verifier && !by_seller {
            return Err(Rejection::new(
                ErrorCode::ReversalNotPermitted,
                "only the POS or verifier account that redeemed, or the voucher's seller, may reverse",
            ));
        }
        // The window is [at, at + window): at its end the money becomes
        // payable to the seller (SET-1), whether or not a tick ran yet.
        if r.settled || now_ms >= r.at_ms.saturating_add(self.config.reversal_window_ms) {
            return Err(Rejection::new(
                ErrorCode::ReversalWindowClosed,
                "the reversal window of this redemption has closed: its money is the seller's",
            ));
        }
        if v.reversals >= VOUCHER_REVERSALS_MAX {
            return Err(Rejection::new(
                ErrorCode::ReversalNotPermitted,
                format!(
                    "this voucher has had {VOUCHER_REVERSALS_MAX} reversals, the most one voucher may have"
                ),
            ));
        }
        Ok(pos)
    }

    /// Applies a checked reversal: the units go back onto the live code,
    /// or onto `new_code` when the voucher was used up.
    fn commit_reversal(
        &mut self,
        now_ms: i64,
        pos: u32,
        c: &Reverse,
        fp: u64,
        new_code: Option<Code>,
        effects: &mut Vec<Effect>,
    ) -> Outcome {
        self.return_reversed(now_ms, pos);
        let r = &mut self.log[pos as usize];
        r.reversal = Some(ReversalMark {
            request_id: c.request_id,
            at_ms: now_ms,
            new_code,
        });
        let (slot, units) = (r.voucher, r.units);
        let v = &mut self.vouchers[slot as usize];
        v.units_remaining += units;
        v.reversals += 1;
        assert!(
            v.units_remaining <= v.units_total,
            "reversal exceeds units bought"
        );
        if let Some(code) = new_code {
            v.live_code = Some(code);
            v.code_digits = code.digits();
        }
        let live_code = v.live_code.expect("voucher with units has a live code");
        let reply = Reversed {
            order_id: v.order_id.to_string(),
            units,
            units_remaining: v.units_remaining,
            live_code,
            replayed: false,
        };
        if let Some(code) = new_code {
            effects.push(Effect::SendCode {
                to: v.recipient(),
                code,
                units: v.units_remaining,
                reason: SendReason::Reversal,
            });
            let fresh = self.live.insert(code, slot).is_none();
            assert!(fresh, "reversal code was already live");
            self.codes_used[usize::from(code.digits())] += 1;
        }
        self.reversals.insert(
            c.request_id,
            Reversal {
                fingerprint: fp,
                reply: reply.clone(),
            },
        );
        Outcome::Reversed(reply)
    }
}
