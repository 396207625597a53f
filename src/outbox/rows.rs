//! The outbox's rows in its column family: one message row per message and
//! the indexes the sender and staff read.
//!
//! Keys (big-endian numbers, so key order is time and id order):
//! - `m` id → [`Entry`] (postcard): the message and its delivery state;
//! - `q` kind due_ms id → empty: queued for delivery at `due_ms`;
//! - `f` id → empty: parked in the failed-task list.
//!
//! An id is 12 bytes: the source (the shard) then the effect's number in
//! that shard ([`vouch_engine::Shard::effects_made`]), so it is the same
//! live and after recovery.

use serde::{Deserialize, Serialize};
use vouch_engine::Effect;
use vouch_storage::{OutboxChange, OutboxPut};

/// A message's stable id: the shard that made it and its effect number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MessageId {
    /// The shard.
    pub shard: u32,
    /// The effect's number in the shard, from 0.
    pub seq: u64,
}

impl MessageId {
    /// The 12 key bytes.
    pub fn bytes(self) -> [u8; 12] {
        let mut b = [0u8; 12];
        b[..4].copy_from_slice(&self.shard.to_be_bytes());
        b[4..].copy_from_slice(&self.seq.to_be_bytes());
        b
    }

    /// Reads 12 key bytes; None when `b` is shorter.
    pub fn from_bytes(b: &[u8]) -> Option<MessageId> {
        let shard = u32::from_be_bytes(b.get(..4)?.try_into().ok()?);
        let seq = u64::from_be_bytes(b.get(4..12)?.try_into().ok()?);
        Some(MessageId { shard, seq })
    }
}

impl std::fmt::Display for MessageId {
    /// `SHARD-SEQ`, e.g. `3-1207`: the form the CLI takes and receivers see
    /// in the `x-vouch-message-id` header.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.shard, self.seq)
    }
}

impl std::str::FromStr for MessageId {
    type Err = String;

    /// Reads `SHARD-SEQ`.
    fn from_str(s: &str) -> Result<MessageId, String> {
        let bad = || format!("message id {s:?} is not SHARD-SEQ (e.g. 3-1207)");
        let (a, b) = s.split_once('-').ok_or_else(bad)?;
        Ok(MessageId {
            shard: a.parse().map_err(|_| bad())?,
            seq: b.parse().map_err(|_| bad())?,
        })
    }
}

/// Which endpoint a message goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Kind {
    /// The SMS gateway: messages to the buyer's phone.
    Sms,
    /// The code provider of the voucher's product (PRV).
    Provider,
    /// The payment system (payouts, buyer refunds in transit).
    Payment,
}

impl Kind {
    /// Every kind, in key order.
    pub const ALL: [Kind; 3] = [Kind::Sms, Kind::Provider, Kind::Payment];

    /// Its key byte.
    pub fn byte(self) -> u8 {
        match self {
            Kind::Sms => 0,
            Kind::Provider => 1,
            Kind::Payment => 2,
        }
    }

    /// Its name in flags, JSON and the CLI.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Sms => "sms",
            Kind::Provider => "provider",
            Kind::Payment => "payment",
        }
    }
}

/// Where a message stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum State {
    /// Waiting for its next attempt at `due_ms` (unix ms).
    Queued {
        /// When the next attempt may start, unix ms.
        due_ms: i64,
    },
    /// The endpoint accepted it (a 2xx answer) at `at_ms`.
    Delivered {
        /// Unix ms.
        at_ms: i64,
    },
    /// Out of attempts: parked in the failed-task list at `at_ms`.
    Failed {
        /// Unix ms.
        at_ms: i64,
    },
    /// Not sent: a later refund voided the code it carries (REF-3).
    Withdrawn {
        /// Unix ms.
        at_ms: i64,
    },
}

/// One message row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Its endpoint.
    pub kind: Kind,
    /// When the change that asked for it was applied, unix ms.
    pub created_ms: i64,
    /// What to say.
    pub effect: Effect,
    /// Attempts made so far, every round.
    pub attempts: u32,
    /// Attempts made before staff last queued it again: the current
    /// round's attempts are `attempts - round_start`.
    pub round_start: u32,
    /// Where it stands.
    pub state: State,
    /// The last failed attempt, in words (an HTTP status, a timeout).
    pub last_error: Option<String>,
}

/// Key of a message row.
pub fn message_key(id: MessageId) -> Vec<u8> {
    let mut k = vec![b'm'];
    k.extend_from_slice(&id.bytes());
    k
}

/// Prefix of the queue rows of `kind`.
pub fn queue_prefix(kind: Kind) -> Vec<u8> {
    vec![b'q', kind.byte()]
}

/// Key of a queue row.
pub fn queue_key(kind: Kind, due_ms: i64, id: MessageId) -> Vec<u8> {
    let mut k = queue_prefix(kind);
    // Times before 1970 never occur; clamp so the order stays numeric.
    k.extend_from_slice(&(due_ms.max(0) as u64).to_be_bytes());
    k.extend_from_slice(&id.bytes());
    k
}

/// Reads a queue key back: (due_ms, id).
pub fn parse_queue_key(k: &[u8]) -> Option<(i64, MessageId)> {
    let due = u64::from_be_bytes(k.get(2..10)?.try_into().ok()?);
    Some((
        i64::try_from(due).ok()?,
        MessageId::from_bytes(k.get(10..)?)?,
    ))
}

/// Prefix of the failed-task list.
pub const FAILED_PREFIX: &[u8] = b"f";

/// Key of a failed-task row.
pub fn failed_key(id: MessageId) -> Vec<u8> {
    let mut k = FAILED_PREFIX.to_vec();
    k.extend_from_slice(&id.bytes());
    k
}

/// Which endpoint an effect's message goes to.
pub fn kind_of(effect: &Effect) -> Kind {
    match effect {
        Effect::SendCode { .. } | Effect::RedemptionNotice { .. } | Effect::RefundNotice { .. } => {
            Kind::Sms
        }
    }
}

/// Key of an order's withdrawal row: its value is the SEQ (8 bytes,
/// big-endian) of the refund message that voided the order's code; code
/// messages of the order with a lower SEQ are not sent any more. An order
/// lives in one shard, so SEQs of its messages are in apply order.
pub fn withdrawal_key(order_id: &str) -> Vec<u8> {
    let mut k = vec![b'x'];
    k.extend_from_slice(order_id.as_bytes());
    k
}

impl Entry {
    /// The row bytes.
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("outbox entries always serialize")
    }

    /// Reads row bytes.
    ///
    /// Errors: the bytes are not an entry of this build (in words).
    pub fn decode(b: &[u8]) -> Result<Entry, String> {
        postcard::from_bytes(b).map_err(|e| format!("outbox row is malformed: {e}"))
    }
}

/// The rows of a new message, queued now: its message row and queue row,
/// for the same synced batch as the log record that made it.
pub fn new_message(id: MessageId, now_ms: i64, effect: Effect) -> [OutboxPut; 2] {
    let kind = kind_of(&effect);
    let entry = Entry {
        kind,
        created_ms: now_ms,
        effect,
        attempts: 0,
        round_start: 0,
        state: State::Queued { due_ms: now_ms },
        last_error: None,
    };
    [
        OutboxPut {
            key: message_key(id),
            value: entry.encode(),
        },
        OutboxPut {
            key: queue_key(kind, now_ms, id),
            value: Vec::new(),
        },
    ]
}

/// The changes that move message `id` from `old` (its row as read) to
/// `new`: the message row, and the queue and failed rows that follow from
/// the two states.
pub fn transition(id: MessageId, old: &Entry, new: &Entry) -> Vec<OutboxChange> {
    let mut changes = vec![OutboxChange::Put(OutboxPut {
        key: message_key(id),
        value: new.encode(),
    })];
    match old.state {
        State::Queued { due_ms } => {
            changes.push(OutboxChange::Delete(queue_key(old.kind, due_ms, id)))
        }
        State::Failed { .. } => changes.push(OutboxChange::Delete(failed_key(id))),
        State::Delivered { .. } | State::Withdrawn { .. } => {}
    }
    match new.state {
        State::Queued { due_ms } => changes.push(OutboxChange::Put(OutboxPut {
            key: queue_key(new.kind, due_ms, id),
            value: Vec::new(),
        })),
        State::Failed { .. } => changes.push(OutboxChange::Put(OutboxPut {
            key: failed_key(id),
            value: Vec::new(),
        })),
        State::Delivered { .. } | State::Withdrawn { .. } => {}
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ord_2_message_ids_and_queue_keys_read_back_in_order() {
        let a = MessageId { shard: 1, seq: 9 };
        let b = MessageId { shard: 0, seq: 10 };
        assert_eq!("1-9".parse::<MessageId>().unwrap(), a);
        assert_eq!(a.to_string(), "1-9");
        assert!("1_9".parse::<MessageId>().is_err());
        let (ka, kb) = (queue_key(Kind::Sms, 500, a), queue_key(Kind::Sms, 499, b));
        assert!(kb < ka, "earlier due first, whatever the id");
        assert_eq!(parse_queue_key(&ka), Some((500, a)));
        assert!(ka.starts_with(&queue_prefix(Kind::Sms)));
        assert!(!ka.starts_with(&queue_prefix(Kind::Provider)));
    }
}
