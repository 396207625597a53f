//! MON-7 for refunds: every refund that pays the buyer is a transfer,
//! numbered per order, in transit until the payment system confirms or
//! fails it; a failed one waits, owed to the buyer, until it is retried as
//! a new transfer.
//!
//! ```text
//!                      escrow source (shard)          taken back (catalog)
//! sent (refund)        escrow → refunds               deposit/receivable → refunds in transit
//! confirm              refunds → buyers               refunds in transit → outside
//! fail                 refunds → refunds failed       refunds in transit → refunds failed
//! retry (new transfer) refunds failed → refunds       refunds failed → refunds in transit
//! ```
//! Money taken back from the seller is held by the catalog, so for those
//! transfers the shard keeps the record and sends each answer to the
//! catalog as a [`ShardMessageBody::TransferNumbered`] message, applied exactly
//! once like every shard message. None of these steps changes what counts
//! as refunded: the money left the order when the refund was made.

use super::*;
use crate::command::{
    ListTransfers, TransferAction, TransferPage, TransferSource, TransferState, TransferStep,
    TransferView, ORDER_TRANSFERS_MAX, TRANSFERS_PAGE_ITEMS_MAX,
};
use crate::ledger::Reason;
use crate::message::{ShardMessage, ShardMessageBody};

/// One refund transfer of a voucher.
#[derive(Clone, Debug)]
pub(super) struct Transfer {
    pub(super) amount: Fen,
    pub(super) source: TransferSource,
    pub(super) state: TransferState,
    pub(super) sent_at_ms: i64,
    pub(super) retry_of: Option<u16>,
    pub(super) retried_as: Option<u16>,
}

/// A transfer's key: (voucher slot, number within the order).
pub(super) type TransferKey = (u32, u16);

/// The paging cursor of a key: above every key before it.
fn cursor(key: TransferKey) -> u64 {
    (u64::from(key.0) << 16) | u64::from(key.1)
}

impl Shard {
    /// How many transfers voucher `slot` has had.
    pub(super) fn transfer_count(&self, slot: u32) -> u16 {
        self.transfers
            .range((slot, 0)..=(slot, u16::MAX))
            .next_back()
            .map_or(0, |(k, _)| k.1)
    }

    /// Records a new transfer of `amount` (> 0) to voucher `slot`'s buyer,
    /// in transit; its money was already moved by the caller. Returns its
    /// number.
    pub(super) fn send_transfer(
        &mut self,
        now_ms: i64,
        slot: u32,
        amount: Fen,
        source: TransferSource,
        retry_of: Option<u16>,
    ) -> u16 {
        debug_assert!(amount > Fen::ZERO);
        let n = self.transfer_count(slot) + 1;
        let t = Transfer {
            amount,
            source,
            state: TransferState::InTransit,
            sent_at_ms: now_ms,
            retry_of,
            retried_as: None,
        };
        self.transfers.insert((slot, n), t);
        self.transfers_open.insert((false, slot, n));
        n
    }

    /// [`Command::TransferStep`]: the payment system confirms or fails a
    /// transfer in transit, or a failed one is retried.
    ///
    /// Errors: `not_found` for an unknown order or transfer;
    /// `refund_not_in_transit` to confirm or fail one that is not in
    /// transit; `refund_not_failed` to retry one that did not fail (or was
    /// retried); `refund_not_allowed` for a retry beyond
    /// `ORDER_TRANSFERS_MAX`; `request_conflict` for a reused request id.
    pub(super) fn transfer_step(&mut self, now_ms: i64, c: &TransferStep) -> Reply {
        let fp = fingerprint(&("transfer", c));
        if let Some(reply) = self.order_step_retry(&c.request_id, fp) {
            return reply;
        }
        let slot = self.order_slot(&c.order_id, None)?;
        let key = (slot, c.transfer);
        let Some(t) = self.transfers.get(&key) else {
            return Err(Rejection::new(
                ErrorCode::NotFound,
                format!("refund transfer {} of order {}", c.transfer, c.order_id),
            ));
        };
        let shown = match c.action {
            TransferAction::Confirm | TransferAction::Fail => {
                if t.state != TransferState::InTransit {
                    return Err(Rejection::new(
                        ErrorCode::RefundNotInTransit,
                        format!(
                            "refund transfer {} is {}, not in transit",
                            c.transfer, t.state
                        ),
                    ));
                }
                self.answer_transfer(now_ms, key, c.action == TransferAction::Confirm)
            }
            TransferAction::Retry => self.retry_transfer(now_ms, key)?,
        };
        let reply = Outcome::Transfer(self.transfer_view(shown));
        Ok(self.remember_step(c.request_id, fp, reply))
    }

    /// Confirms or fails transfer `key` (in transit); returns it.
    fn answer_transfer(&mut self, now_ms: i64, key: TransferKey, confirmed: bool) -> TransferKey {
        let t = self.transfers.get_mut(&key).expect("checked");
        t.state = if confirmed {
            TransferState::Confirmed
        } else {
            TransferState::Failed
        };
        let (amount, source) = (t.amount, t.source);
        self.transfers_open.remove(&(false, key.0, key.1));
        if !confirmed {
            self.transfers_open.insert((true, key.0, key.1));
        }
        let (to, reason) = if confirmed {
            (ShardAccount::Buyers, Reason::RefundConfirmed)
        } else {
            (ShardAccount::RefundsFailed, Reason::RefundFailed)
        };
        self.move_transfer(
            now_ms,
            key,
            source,
            ShardAccount::Refunds,
            to,
            amount,
            reason,
        );
        key
    }

    /// Sends failed transfer `key`'s money again as a new transfer;
    /// returns the new one.
    fn retry_transfer(&mut self, now_ms: i64, key: TransferKey) -> Result<TransferKey, Rejection> {
        let t = &self.transfers[&key];
        if t.state != TransferState::Failed {
            return Err(Rejection::new(
                ErrorCode::RefundNotFailed,
                format!(
                    "refund transfer {} is {}: only a failed one is retried",
                    key.1, t.state
                ),
            ));
        }
        if self.transfer_count(key.0) >= ORDER_TRANSFERS_MAX - 2 {
            return Err(Rejection::new(
                ErrorCode::RefundNotAllowed,
                format!("the order has had {ORDER_TRANSFERS_MAX} refund transfers: staff pay it outside vouch"),
            ));
        }
        let (amount, source) = (t.amount, t.source);
        let n = self.send_transfer(now_ms, key.0, amount, source, Some(key.1));
        let t = self.transfers.get_mut(&key).expect("checked");
        t.state = TransferState::Retried;
        t.retried_as = Some(n);
        self.transfers_open.remove(&(true, key.0, key.1));
        let (from, to) = (ShardAccount::RefundsFailed, ShardAccount::Refunds);
        self.move_transfer(
            now_ms,
            (key.0, n),
            source,
            from,
            to,
            amount,
            Reason::RefundRetried,
        );
        Ok((key.0, n))
    }

    /// Moves a transfer's money where it is held: in this shard's ledger,
    /// or by a message to the catalog for money taken back.
    #[allow(clippy::too_many_arguments)]
    fn move_transfer(
        &mut self,
        now_ms: i64,
        key: TransferKey,
        source: TransferSource,
        from: ShardAccount,
        to: ShardAccount,
        amount: Fen,
        reason: Reason,
    ) {
        match source {
            TransferSource::Escrow => {
                let link = money::EntryLink::of(key.0, u32::from(key.1));
                money::post(&mut self.ledger, from, to, amount, reason, now_ms, link)
            }
            TransferSource::TakenBack => {
                let v = &self.vouchers[key.0 as usize];
                let retry_of = self.transfers.get(&key).and_then(|t| t.retry_of);
                let body = ShardMessageBody::TransferNumbered {
                    seller: v.seller_id,
                    order_id: v.order_id.to_string(),
                    reason,
                    amount,
                    transfer: key.1,
                    retry_of: retry_of.filter(|_| reason == Reason::RefundRetried),
                };
                self.messages_sent += 1;
                self.outbox.push(ShardMessage {
                    shard: self.index,
                    seq: self.messages_sent,
                    at_ms: now_ms,
                    body,
                });
            }
        }
    }

    /// Transfer `key` as shown.
    pub(super) fn transfer_view(&self, key: TransferKey) -> TransferView {
        let t = &self.transfers[&key];
        let v = &self.vouchers[key.0 as usize];
        TransferView {
            order_id: v.order_id.to_string(),
            seller_id: v.seller_id,
            transfer: key.1,
            amount: t.amount,
            source: t.source,
            state: t.state,
            sent_at_ms: t.sent_at_ms,
            retry_of: t.retry_of,
            retried_as: t.retried_as,
            replayed: false,
        }
    }

    /// Every transfer of voucher `slot`, in order.
    pub(super) fn transfers_of(&self, slot: u32) -> Vec<TransferView> {
        self.transfers
            .range((slot, 0)..=(slot, u16::MAX))
            .map(|(k, _)| self.transfer_view(*k))
            .collect()
    }

    /// [`Command::Transfers`]: one page of the transfers in transit (or
    /// failed), by voucher then number.
    pub(super) fn list_transfers(&self, c: &ListTransfers) -> Outcome {
        let limit = c.limit.clamp(1, TRANSFERS_PAGE_ITEMS_MAX) as usize;
        let (slot, n) = (
            (c.after >> 16).min(u64::from(u32::MAX)) as u32,
            c.after as u16,
        );
        let start = (c.failed, slot, n.saturating_add(1));
        let mut keys = self
            .transfers_open
            .range(start..)
            .take_while(|k| k.0 == c.failed)
            .take(limit + 1)
            .map(|k| (k.1, k.2))
            .collect::<Vec<_>>();
        let next = (keys.len() > limit).then(|| {
            keys.truncate(limit);
            cursor(*keys.last().expect("limit ≥ 1"))
        });
        Outcome::Transfers(TransferPage {
            items: keys.into_iter().map(|k| self.transfer_view(k)).collect(),
            next,
        })
    }

    /// MON-5 and MON-7 for transfers: `refunds` holds the escrow
    /// transfers in transit, `refunds failed` the failed ones; each
    /// voucher's first transfers (not retries) add up to what it refunded
    /// out of escrow and what was taken back for it. Panics with the
    /// broken rule.
    pub(super) fn check_transfers(&self) {
        let mut sent = vec![(Fen::ZERO, Fen::ZERO); self.vouchers.len()];
        let (mut in_transit, mut failed) = (Fen::ZERO, Fen::ZERO);
        for (&(slot, n), t) in &self.transfers {
            let open = (
                t.state == TransferState::InTransit,
                t.state == TransferState::Failed,
            );
            assert_eq!(
                self.transfers_open.contains(&(false, slot, n)),
                open.0,
                "MON-7: open set"
            );
            assert_eq!(
                self.transfers_open.contains(&(true, slot, n)),
                open.1,
                "MON-7: failed set"
            );
            let escrow = t.source == TransferSource::Escrow;
            if escrow && open.0 {
                in_transit += t.amount;
            }
            if escrow && open.1 {
                failed += t.amount;
            }
            if t.retry_of.is_none() {
                let s = &mut sent[slot as usize];
                if escrow {
                    s.0 += t.amount;
                } else {
                    s.1 += t.amount;
                }
            }
        }
        assert!(
            self.transfers_open
                .iter()
                .all(|k| self.transfers.contains_key(&(k.1, k.2))),
            "MON-7: an open transfer that does not exist"
        );
        for (v, (refunded, taken)) in self.vouchers.iter().zip(sent) {
            assert_eq!(
                v.refunded, refunded,
                "MON-7: order {} refund transfers",
                v.order_id
            );
            assert_eq!(
                v.taken_back, taken,
                "MON-7: order {} taken-back transfers",
                v.order_id
            );
        }
        let balance = |a| self.ledger.balance(a);
        assert_eq!(
            balance(ShardAccount::Refunds),
            in_transit,
            "MON-7: refunds in transit"
        );
        assert_eq!(
            balance(ShardAccount::RefundsFailed),
            failed,
            "MON-7: refunds failed"
        );
    }
}
