//! Drawing codes (ORD-3: uniform, never sequential, density-limited per
//! length) and retiring them into quarantine (invariant 5).

use super::Shard;
use crate::code::{space, Code};
use crate::error::{ErrorCode, Rejection};
use crate::limits::*;
use rand::Rng;

impl Shard {
    pub(super) fn release_quarantine(&mut self, now_ms: i64) {
        for _ in 0..QUARANTINE_RELEASE_PER_APPLY_MAX {
            match self.quarantine.front() {
                Some(&(at, code))
                    if at.saturating_add(self.config.code_quarantine_ms) <= now_ms =>
                {
                    self.quarantine.pop_front();
                    let removed = self.retired.remove(&code);
                    assert!(
                        removed.is_some(),
                        "quarantined code missing from retired set"
                    );
                    self.codes_used[usize::from(code.digits())] -= 1;
                }
                _ => break,
            }
        }
    }

    /// Draws a free code in this shard, starting at `digits` and lengthening
    /// when a length is at its density limit. First releases quarantined
    /// codes that are due at `now_ms`. Only commands that succeed or fail
    /// with `code_space_exhausted` draw, and both kinds are logged, so the
    /// releases happen at the same points on replay.
    pub(super) fn draw_code(&mut self, digits: u8, now_ms: i64) -> Result<Code, Rejection> {
        self.release_quarantine(now_ms);
        let shards = u64::from(self.config.shards);
        for len in digits..=CODE_DIGITS_MAX {
            let per_shard = space(len) / shards;
            let cap = per_shard * self.config.code_density_ppm / 1_000_000;
            if self.codes_used[usize::from(len)] >= cap {
                continue;
            }
            for _ in 0..CODE_DRAW_ATTEMPTS_MAX {
                let r = self.rng.random_range(0..per_shard);
                let code = Code::new(len, r * shards + u64::from(self.index))
                    .expect("drawn value is inside the code space");
                if !self.live.contains_key(&code) && !self.retired.contains_key(&code) {
                    return Ok(code);
                }
            }
        }
        Err(Rejection::new(
            ErrorCode::CodeSpaceExhausted,
            "no free code at any length up to 11 digits",
        ))
    }

    /// Gives voucher `slot` the fresh `code` (drawn by the caller), retiring
    /// its live one, and asks for the code message.
    pub(super) fn replace_code(
        &mut self,
        now_ms: i64,
        slot: u32,
        code: Code,
        reason: crate::command::SendReason,
        effects: &mut Vec<crate::command::Effect>,
    ) {
        if let Some(old) = self.vouchers[slot as usize].live_code {
            self.retire(old, now_ms);
        }
        let v = &mut self.vouchers[slot as usize];
        v.live_code = Some(code);
        v.code_digits = code.digits();
        let fresh = self.live.insert(code, slot).is_none();
        assert!(fresh, "a drawn code was already live");
        self.codes_used[usize::from(code.digits())] += 1;
        effects.push(crate::command::Effect::SendCode {
            to: v.recipient(),
            code,
            units: v.units_remaining,
            reason,
        });
    }

    /// Moves a live code to quarantine. The caller sets the voucher's new
    /// live code.
    pub(super) fn retire(&mut self, code: Code, now_ms: i64) {
        let slot = self.live.remove(&code).expect("retired code was live");
        self.retired.insert(code, slot);
        self.quarantine.push_back((now_ms, code));
    }
}
