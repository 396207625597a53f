//! The sender: one dispatcher task per configured endpoint takes due
//! messages from the queue rows, posts each (signed) with at most
//! `concurrency` in flight, and records the outcome: delivered, queued
//! again after a backoff with jitter, or parked in the failed-task list
//! once out of attempts.
//!
//! It reads and writes only the outbox column family, on its own tasks:
//! the shards never wait for it (delivery never slows redemption). Its
//! writes are not synced; a crash may forget that a message was
//! delivered, and it is then sent again with the same id (at least once).

use super::compose;
use super::rows::{self, Entry, Kind, MessageId, State};
use super::{Endpoint, OutboxConfig};
use crate::pipeline::{DeliveryReport, ToShard};
use hmac::{Hmac, Mac};
use jiff::tz::TimeZone;
use rand::Rng;
use sha2::Sha256;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Notify};
use vouch_storage::OutboxStore;

/// Header carrying the message id (the same on every attempt).
pub const HEADER_MESSAGE_ID: &str = "x-vouch-message-id";
/// Header carrying the attempt's unix time in seconds (signed with the body).
pub const HEADER_TIMESTAMP: &str = "x-vouch-timestamp";
/// Header carrying `v1=` and the hex HMAC-SHA256 of `TIMESTAMP.BODY`.
pub const HEADER_SIGNATURE: &str = "x-vouch-signature";
/// Header carrying the attempt number, from 1.
pub const HEADER_ATTEMPT: &str = "x-vouch-attempt";

/// Longest the dispatcher sleeps without looking at the queue, ms (a row
/// written by staff's retry is seen within this).
const IDLE_POLL_MS: u64 = 1_000;

/// The signature header's value for `body` sent at `timestamp_s`:
/// `v1=` and the lowercase hex of HMAC-SHA256(secret, "TIMESTAMP.BODY").
pub fn signature(secret: &[u8], timestamp_s: i64, body: &[u8]) -> String {
    let ts = timestamp_s.to_string();
    format!("v1={}", hmac_hex(secret, &[ts.as_bytes(), b".", body]))
}

/// Lowercase hex of HMAC-SHA256(secret, the concatenation of `parts`).
fn hmac_hex(secret: &[u8], parts: &[&[u8]]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    for p in parts {
        mac.update(p);
    }
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The wait before attempt `attempts + 1`, ms: `base · 2^(attempts-1)`,
/// capped at `max`, then a uniform jitter down to half of it (so a fleet of
/// failed messages does not retry in step).
pub fn backoff_ms(cfg: &OutboxConfig, attempts: u32, rng: &mut impl Rng) -> u64 {
    let exp = cfg
        .backoff_base_ms
        .saturating_mul(1u64 << attempts.saturating_sub(1).min(30));
    let full = exp.min(cfg.backoff_max_ms).max(1);
    rng.random_range(full / 2..=full)
}

/// Wakes the dispatchers when new messages are durable.
#[derive(Clone, Default)]
pub struct Wake {
    kinds: Arc<[Notify; 3]>,
}

impl Wake {
    /// Wakes the dispatcher of `kind` (no-op when none runs).
    pub fn kind(&self, kind: Kind) {
        self.kinds[usize::from(kind.byte())].notify_one();
    }
}

/// Starts one dispatcher per configured endpoint on the current runtime;
/// they run until `stop` turns true.
pub fn start(
    store: OutboxStore,
    cfg: Arc<OutboxConfig>,
    tz: TimeZone,
    shards: Arc<Vec<ToShard>>,
    wake: Wake,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(cfg.timeout_ms))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("the HTTP client builds with rustls");
    for kind in Kind::ALL {
        if let Some(endpoint) = cfg.endpoint(kind).cloned() {
            let d = Dispatcher {
                kind,
                store: store.clone(),
                cfg: cfg.clone(),
                endpoint: Arc::new(endpoint),
                client: client.clone(),
                tz: tz.clone(),
                shards: shards.clone(),
            };
            tokio::spawn(d.run(wake.clone(), stop.clone()));
        }
    }
}

struct Dispatcher {
    kind: Kind,
    store: OutboxStore,
    cfg: Arc<OutboxConfig>,
    endpoint: Arc<Endpoint>,
    client: reqwest::Client,
    tz: TimeZone,
    /// Where deliveries of codes are reported (ORD-2), by shard.
    shards: Arc<Vec<ToShard>>,
}

impl Dispatcher {
    async fn run(self, wake: Wake, mut stop: tokio::sync::watch::Receiver<bool>) {
        let this = Arc::new(self);
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<MessageId>();
        let mut inflight: HashSet<MessageId> = HashSet::new();
        let notify = &wake.kinds[usize::from(this.kind.byte())];
        loop {
            let now = crate::clock::now_ms();
            let next_due = match this.start_due(now, &mut inflight, &done_tx) {
                Ok(d) => d,
                Err(e) => {
                    tracing::error!(kind = this.kind.name(), "outbox read failed: {e}");
                    None
                }
            };
            let wait_ms = next_due
                .map(|d| (d - now).clamp(1, IDLE_POLL_MS as i64) as u64)
                .unwrap_or(IDLE_POLL_MS);
            tokio::select! {
                _ = notify.notified() => {}
                Some(id) = done_rx.recv() => { inflight.remove(&id); }
                _ = tokio::time::sleep(Duration::from_millis(wait_ms)) => {}
                _ = stop.changed() => return,
            }
            while let Ok(id) = done_rx.try_recv() {
                inflight.remove(&id);
            }
        }
    }

    /// Starts an attempt for each due message not in flight, up to the
    /// concurrency limit; returns when the next queued one is due.
    fn start_due(
        self: &Arc<Self>,
        now: i64,
        inflight: &mut HashSet<MessageId>,
        done: &mpsc::UnboundedSender<MessageId>,
    ) -> Result<Option<i64>, vouch_storage::StorageError> {
        let free = self.cfg.concurrency.saturating_sub(inflight.len());
        if free == 0 {
            return Ok(None);
        }
        let prefix = rows::queue_prefix(self.kind);
        let rows = self.store.scan(&prefix, &prefix, free + inflight.len())?;
        for (key, _) in rows {
            let Some((due, id)) = rows::parse_queue_key(&key) else {
                continue;
            };
            if due > now {
                return Ok(Some(due));
            }
            if inflight.len() >= self.cfg.concurrency || !inflight.insert(id) {
                continue;
            }
            let (this, done) = (self.clone(), done.clone());
            tokio::spawn(async move {
                if let Err(e) = this.attempt(id).await {
                    tracing::error!(message = %id, "outbox write failed: {e}");
                }
                let _ = done.send(id);
            });
        }
        Ok(None)
    }

    /// One attempt at message `id`, and its outcome recorded.
    async fn attempt(&self, id: MessageId) -> Result<(), vouch_storage::StorageError> {
        let Some(raw) = self.store.get(&rows::message_key(id))? else {
            return Ok(());
        };
        let old = match Entry::decode(&raw) {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(message = %id, "{e}");
                return Ok(());
            }
        };
        if !matches!(old.state, State::Queued { .. }) {
            return Ok(());
        }
        if self.withdrawn(id, &old)? {
            let new = Entry {
                state: State::Withdrawn {
                    at_ms: crate::clock::now_ms(),
                },
                ..old.clone()
            };
            return self.store.write(&rows::transition(id, &old, &new), false);
        }
        let body = compose::body(id, &old, &self.tz);
        let attempt = old.attempts + 1;
        let outcome = self.post(id, attempt, body).await;
        let now = crate::clock::now_ms();
        let mut new = old.clone();
        new.attempts = attempt;
        match outcome {
            Ok(()) => {
                if !self.report_delivery(id, &old).await {
                    // Stopping: it stays queued and is sent again later.
                    return Ok(());
                }
                new.state = State::Delivered { at_ms: now };
            }
            Err(why) => {
                tracing::debug!(message = %id, attempt, "delivery failed: {why}");
                new.last_error = Some(why);
                new.state = if attempt - old.round_start >= self.cfg.attempts_max {
                    tracing::warn!(message = %id, attempt, "out of attempts: parked in the failed-task list");
                    State::Failed { at_ms: now }
                } else {
                    let wait = backoff_ms(&self.cfg, attempt, &mut rand::rng());
                    State::Queued {
                        due_ms: now + wait as i64,
                    }
                };
            }
        }
        self.store.write(&rows::transition(id, &old, &new), false)
    }

    /// Whether a later refund voided the code this code message sends.
    /// A redemption's success SMS always goes (ORD-8: one per redemption);
    /// the refund SMS after it says the code no longer works.
    fn withdrawn(&self, id: MessageId, e: &Entry) -> Result<bool, vouch_storage::StorageError> {
        if !matches!(e.effect, vouch_engine::Effect::SendCode { .. }) {
            return Ok(false);
        }
        let key = rows::withdrawal_key(&e.effect.recipient().order_id);
        Ok(self.store.get(&key)?.is_some_and(|v| {
            let seq = v.try_into().map(u64::from_be_bytes).unwrap_or(0);
            seq > id.seq
        }))
    }

    /// Tells the order's shard that a code reached its buyer (ORD-2) and
    /// waits until that is durable; true at once for a message without a
    /// code. False when the server is stopping.
    async fn report_delivery(&self, id: MessageId, entry: &Entry) -> bool {
        if entry.effect.code().is_none() {
            return true;
        }
        let Some(shard) = self.shards.get(id.shard as usize) else {
            return true;
        };
        let (done, durable) = tokio::sync::oneshot::channel();
        let delivered = vouch_engine::message::CodeDelivered {
            order_id: entry.effect.recipient().order_id.to_string(),
            message_seq: id.seq,
        };
        shard.send(DeliveryReport { delivered, done }) && durable.await.is_ok()
    }

    /// Posts `body`; Ok on a 2xx answer, else the failure in words.
    async fn post(&self, id: MessageId, attempt: u32, body: Vec<u8>) -> Result<(), String> {
        // The receiver checks it against its own clock: the wall clock,
        // also in a rehearsal running ahead.
        let ts = crate::clock::wall_ms().div_euclid(1000);
        let sig = signature(&self.endpoint.secret, ts, &body);
        let reply = self
            .client
            .post(self.endpoint.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(HEADER_MESSAGE_ID, id.to_string())
            .header(HEADER_TIMESTAMP, ts.to_string())
            .header(HEADER_SIGNATURE, sig)
            .header(HEADER_ATTEMPT, attempt.to_string())
            .body(body)
            .send()
            .await;
        match reply {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => Err(format!(
                "the endpoint answered HTTP {}",
                r.status().as_u16()
            )),
            Err(e) if e.is_timeout() => Err(format!("no answer within {} ms", self.cfg.timeout_ms)),
            Err(e) if e.is_connect() => Err(format!(
                "could not connect to the endpoint ({})",
                std::error::Error::source(&e)
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "no detail".into())
            )),
            // Without the URL: its query may hold a credential.
            Err(e) => Err(format!("the request failed: {}", e.without_url())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ord_2_signature_is_hmac_sha256_of_timestamp_and_body() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            hmac_hex(b"Jefe", &[b"what do ya ", b"want for nothing?"]),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let sig = signature(b"Jefe", 0, b"what do ya want for nothing?");
        assert_eq!(
            sig,
            format!(
                "v1={}",
                hmac_hex(b"Jefe", &[b"0.what do ya want for nothing?"])
            )
        );
        assert_ne!(sig, signature(b"Jefe", 1, b"what do ya want for nothing?"));
        assert_ne!(sig, signature(b"Jeff", 0, b"what do ya want for nothing?"));
    }

    #[test]
    fn ord_2_backoff_doubles_up_to_the_cap_with_jitter() {
        let cfg = OutboxConfig {
            backoff_base_ms: 100,
            backoff_max_ms: 1_000,
            ..OutboxConfig::default()
        };
        let mut rng = rand::rng();
        for _ in 0..100 {
            let first = backoff_ms(&cfg, 1, &mut rng);
            assert!((50..=100).contains(&first), "{first}");
            let third = backoff_ms(&cfg, 3, &mut rng);
            assert!((200..=400).contains(&third), "{third}");
            let late = backoff_ms(&cfg, 40, &mut rng);
            assert!((500..=1_000).contains(&late), "{late}");
        }
    }
}
