//! The shard's deadlines (MON-6) and what they settle: reversal-window
//! ends (SET-1), T+3 payouts (SET-2), validity ends (REF-6) and REF-2
//! decision deadlines. One logged tick applies every due deadline in
//! deadline order, at most [`TICK_DEADLINES_MAX`], each exactly once.

use super::money::TICK_DEADLINES_MAX;
use super::*;
use crate::ledger::Reason;

/// Calendar days after issue at which a T+3 order is paid (SET-2).
pub const T_PLUS_DAYS: i64 = 3;

/// One due deadline, in the order ties are applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Due {
    /// A redemption's reversal window ended (log position).
    Window(u32),
    /// A T+3 order is due (voucher slot).
    TPlus3(u32),
    /// A REF-2 request was not decided in time (voucher slot).
    RefundDeadline(u32),
    /// A validity ended (voucher slot).
    Expiry(u32),
}

impl Shard {
    /// The earliest deadline not yet applied, unix ms.
    pub fn next_deadline_ms(&self) -> Option<i64> {
        [
            self.window_ends.front().map(|(t, _)| *t),
            self.t3_due.first().map(|(t, _)| *t),
            self.refund_deadlines.first().map(|(t, _)| *t),
            self.expiries.first().map(|(t, _)| *t),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The earliest deadline at or before `now_ms`, and its instant.
    fn next_due(&self, now_ms: i64) -> Option<(i64, Due)> {
        [
            self.window_ends.front().map(|&(t, p)| (t, Due::Window(p))),
            self.t3_due.first().map(|&(t, s)| (t, Due::TPlus3(s))),
            self.refund_deadlines
                .first()
                .map(|&(t, s)| (t, Due::RefundDeadline(s))),
            self.expiries.first().map(|&(t, s)| (t, Due::Expiry(s))),
        ]
        .into_iter()
        .flatten()
        .filter(|(t, _)| *t <= now_ms)
        .min()
    }

    /// The shard's time input (MON-6): applies, in deadline order, every
    /// deadline at or before `now_ms` — at most [`TICK_DEADLINES_MAX`].
    /// Returns how many it applied (0: nothing changed). What became
    /// payable goes to the catalog as messages ([`Shard::take_messages`]).
    pub fn tick(&mut self, now_ms: i64) -> usize {
        self.clock_floor_ms = self.clock_floor_ms.max(now_ms);
        let mut applied = 0;
        while applied < TICK_DEADLINES_MAX {
            let Some((at, due)) = self.next_due(now_ms) else {
                break;
            };
            match due {
                Due::Window(pos) => {
                    self.window_ends.pop_front();
                    self.settle_redemption(now_ms, pos);
                }
                Due::TPlus3(slot) => {
                    self.t3_due.remove(&(at, slot));
                    self.pay_t_plus_3(now_ms, slot);
                }
                Due::RefundDeadline(slot) => {
                    self.refund_deadlines.remove(&(at, slot));
                    self.approve_by_deadline(now_ms, slot);
                }
                Due::Expiry(slot) => {
                    self.expiries.remove(&(at, slot));
                    self.expire(now_ms, slot);
                }
            }
            applied += 1;
        }
        self.send_payables(now_ms);
        applied
    }

    /// SET-1: an unreversed redemption's money becomes the seller's; for a
    /// T+3 order the first one's window end is its payout (SET-2).
    fn settle_redemption(&mut self, now_ms: i64, pos: u32) {
        let r = &mut self.log[pos as usize];
        if r.reversed() {
            return;
        }
        r.settled = true;
        let (amount, slot) = (r.amount, r.voucher);
        self.make_payable(
            now_ms,
            ShardAccount::Pending,
            slot,
            amount,
            Reason::WindowEnded,
        );
        if self.vouchers[slot as usize].terms.t_plus_3 {
            self.pay_t_plus_3(now_ms, slot);
        }
    }

    /// SET-2: a T+3 order's remaining escrow goes to the seller, once.
    pub(super) fn pay_t_plus_3(&mut self, now_ms: i64, slot: u32) {
        let v = &mut self.vouchers[slot as usize];
        if v.paid_out {
            return;
        }
        v.paid_out = true;
        // An open REF-2 request's amount stays held for its decision: the
        // buyer gets it on approval, the seller on rejection.
        let held = v.request.map_or(Fen::ZERO, |(a, _)| a);
        let (amount, due) = (v.escrow - held, v.issued_at_ms);
        if let Some(due) = self.t_plus_3_due_ms(due) {
            self.t3_due.remove(&(due, slot));
        }
        self.release_to_seller(now_ms, slot, amount, Reason::TPlus3Due);
    }

    /// SET-2's payout instant has passed for voucher `slot` at `now_ms`
    /// (paid, or due and not yet ticked): 3 calendar days after issue, or
    /// its first unreversed redemption's window end.
    pub(super) fn t_plus_3_passed(&self, now_ms: i64, slot: u32) -> bool {
        let v = &self.vouchers[slot as usize];
        if !v.terms.t_plus_3 || v.paid_out {
            return v.paid_out;
        }
        if self
            .t_plus_3_due_ms(v.issued_at_ms)
            .is_some_and(|due| now_ms >= due)
        {
            return true;
        }
        let window = self.config.reversal_window_ms;
        let mut pos = v.last_redemption;
        while pos != NO_REDEMPTION {
            let r = &self.log[pos as usize];
            if !r.reversed() && now_ms >= r.at_ms.saturating_add(window) {
                return true;
            }
            pos = r.prev;
        }
        false
    }

    /// SET-2's due instant of an order issued at `issued_at_ms`: 3
    /// calendar days later in the platform time zone. None outside the
    /// calendar's range.
    pub(super) fn t_plus_3_due_ms(&self, issued_at_ms: i64) -> Option<i64> {
        calendar_days_later(issued_at_ms, T_PLUS_DAYS, &self.tz)
    }
}

/// `days` calendar days after `at_ms` in `tz` (the same local time of
/// day), unix ms. None outside the calendar's range.
pub(super) fn calendar_days_later(at_ms: i64, days: i64, tz: &TimeZone) -> Option<i64> {
    let at = jiff::Timestamp::from_millisecond(at_ms).ok()?;
    let later = at
        .to_zoned(tz.clone())
        .checked_add(jiff::Span::new().days(days))
        .ok()?;
    Some(later.timestamp().as_millisecond())
}
