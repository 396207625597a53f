//! Staff's requests about the outbox (ORD-2) and what they answer: the
//! failed-task list, one message, a re-queue, and the counts.

use serde::{Deserialize, Serialize};

/// A staff request about the outbox.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OutboxRequest {
    /// The failed-task list: messages out of attempts, in id order, up to
    /// `limit` (at most [`OUTBOX_PAGE_MAX`]) after id `after`.
    Failed {
        /// Start after this message id (`SHARD-SEQ`); None from the start.
        after: Option<String>,
        /// Most messages in the page.
        limit: u32,
    },
    /// One message by id (`SHARD-SEQ`).
    Show {
        /// The message id.
        id: String,
    },
    /// Queues a failed message again for a new round of attempts.
    Retry {
        /// The message id.
        id: String,
    },
    /// Counts of messages by state and endpoint (scans every message row).
    Stats,
}

/// Most messages in one page of the failed-task list.
pub const OUTBOX_PAGE_MAX: u32 = 1_000;

/// One outbox message as staff see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxMessageView {
    /// `SHARD-SEQ`, the id receivers see.
    pub id: String,
    /// Endpoint: `sms`, `provider` or `payment`.
    pub kind: String,
    /// What it says, e.g. `code_issued`, `redeemed`.
    pub event: String,
    /// The order.
    pub order_id: String,
    /// When the change that asked for it was applied, unix ms.
    pub created_ms: i64,
    /// Attempts made so far (all rounds).
    pub attempts: u32,
    /// `queued`, `delivered`, `failed` or `withdrawn` (not sent: a later
    /// refund voided its code).
    pub state: String,
    /// For `queued`: the next attempt's time; otherwise when it was
    /// delivered or parked; unix ms.
    pub state_ms: i64,
    /// The last failed attempt, in words.
    pub last_error: Option<String>,
}

/// Message counts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxStats {
    /// Messages written.
    pub queued_total: u64,
    /// Waiting for an attempt now.
    pub queued: u64,
    /// Accepted by their endpoint.
    pub delivered: u64,
    /// Parked in the failed-task list.
    pub failed: u64,
    /// Not sent: a later refund voided the code they carry (REF-3).
    pub withdrawn: u64,
    /// Messages that needed more than one attempt.
    pub retried: u64,
    /// Attempts made, all messages.
    pub attempts: u64,
}

/// The answer to an [`OutboxRequest`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OutboxView {
    /// A page of the failed-task list; `next` continues it.
    Failed {
        /// The page.
        items: Vec<OutboxMessageView>,
        /// Give as `after` for the next page; None at the end.
        next: Option<String>,
    },
    /// One message.
    Message(OutboxMessageView),
    /// The message was queued again.
    Requeued(OutboxMessageView),
    /// The counts.
    Stats(OutboxStats),
}
