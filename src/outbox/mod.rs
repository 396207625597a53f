//! The outbox (ORD-2): every message an effect asks for — the buyer's SMS
//! with a code, a redemption's success SMS — is a row of the `outbox`
//! column family, written in the same synced batch as the log record of
//! the change that made it, with a stable id ([`rows::MessageId`]). The
//! sender ([`send`]) delivers each at least once to the webhook configured
//! for its kind, signed, with retries and a failed-task list that staff
//! list and re-queue ([`staff`]).
//!
//! Layout: [`rows`] (keys and the message row), [`compose`] (the JSON body
//! and SMS text), [`send`] (dispatchers, HTTP, signing, backoff),
//! [`staff`] (the failed-task list, one message, re-queue, counts).

pub mod compose;
pub mod rows;
pub mod send;
pub mod staff;

use rows::{Kind, MessageId};
use vouch_engine::Effect;
use vouch_storage::OutboxPut;

/// Default attempts per message before it is parked as failed.
pub const ATTEMPTS_MAX_DEFAULT: u32 = 8;
/// Default attempts in flight per endpoint.
pub const CONCURRENCY_DEFAULT: usize = 16;
/// Default time an endpoint has to answer one attempt, ms.
pub const TIMEOUT_MS_DEFAULT: u64 = 5_000;
/// Default wait before the second attempt, ms (doubling after each).
pub const BACKOFF_BASE_MS_DEFAULT: u64 = 1_000;
/// Default longest wait between attempts, ms.
pub const BACKOFF_MAX_MS_DEFAULT: u64 = 300_000;

/// One webhook: where a kind of message is posted and the secret it is
/// signed with. `Debug` never shows the secret.
#[derive(Clone)]
pub struct Endpoint {
    /// `http://` or `https://` URL (https through rustls).
    pub url: reqwest::Url,
    /// HMAC-SHA256 key.
    pub secret: Vec<u8>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("url", &self.url.as_str())
            .field("secret", &"(hidden)")
            .finish()
    }
}

impl Endpoint {
    /// An endpoint from a URL and its secret.
    ///
    /// Errors: [`EndpointError::Url`] when the URL does not parse, is not
    /// http(s) or names no host or port 0; [`EndpointError::Secret`] when
    /// the secret is shorter than 16 bytes.
    pub fn new(url: &str, secret: &str) -> Result<Endpoint, EndpointError> {
        let bad = |why: String| EndpointError::Url(format!("webhook URL {url:?}: {why}"));
        let parsed = reqwest::Url::parse(url).map_err(|e| bad(e.to_string()))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(bad("not http:// or https://".into()));
        }
        if url.contains(":///") || parsed.host_str().is_none_or(str::is_empty) {
            return Err(bad("no host".into()));
        }
        if parsed.port() == Some(0) {
            return Err(bad("port 0".into()));
        }
        if secret.len() < 16 {
            return Err(EndpointError::Secret(
                "a webhook secret must be at least 16 bytes".into(),
            ));
        }
        Ok(Endpoint {
            url: parsed,
            secret: secret.as_bytes().to_vec(),
        })
    }
}

/// Why an endpoint was refused, in words.
#[derive(Debug, PartialEq, Eq)]
pub enum EndpointError {
    /// The URL.
    Url(String),
    /// The secret.
    Secret(String),
}

/// How the sender runs (`vouch serve --sms-webhook …`).
#[derive(Clone, Debug)]
pub struct OutboxConfig {
    /// The SMS gateway.
    pub sms: Option<Endpoint>,
    /// Code providers' notifications.
    pub provider: Option<Endpoint>,
    /// The payment system.
    pub payment: Option<Endpoint>,
    /// Attempts per message before it is parked as failed (≥ 1).
    pub attempts_max: u32,
    /// Attempts in flight per endpoint (≥ 1).
    pub concurrency: usize,
    /// Time an endpoint has to answer one attempt, ms.
    pub timeout_ms: u64,
    /// Wait before the second attempt, ms; doubles after each attempt.
    pub backoff_base_ms: u64,
    /// Longest wait between attempts, ms.
    pub backoff_max_ms: u64,
}

impl Default for OutboxConfig {
    fn default() -> OutboxConfig {
        OutboxConfig {
            sms: None,
            provider: None,
            payment: None,
            attempts_max: ATTEMPTS_MAX_DEFAULT,
            concurrency: CONCURRENCY_DEFAULT,
            timeout_ms: TIMEOUT_MS_DEFAULT,
            backoff_base_ms: BACKOFF_BASE_MS_DEFAULT,
            backoff_max_ms: BACKOFF_MAX_MS_DEFAULT,
        }
    }
}

impl OutboxConfig {
    /// The endpoint of `kind`, if configured.
    pub fn endpoint(&self, kind: Kind) -> Option<&Endpoint> {
        match kind {
            Kind::Sms => self.sms.as_ref(),
            Kind::Provider => self.provider.as_ref(),
            Kind::Payment => self.payment.as_ref(),
        }
    }

    /// Checks the numbers.
    ///
    /// Errors (in words): no attempt or no concurrency allowed, a zero
    /// timeout, or a backoff cap below its base.
    pub fn validate(&self) -> Result<(), String> {
        if self.attempts_max == 0 || self.concurrency == 0 || self.timeout_ms == 0 {
            return Err("webhook attempts, concurrency and timeout must each be at least 1".into());
        }
        if self.backoff_max_ms < self.backoff_base_ms {
            return Err("the webhook backoff cap is below its base".into());
        }
        Ok(())
    }
}

/// The outbox rows of one shard batch's effects: effect `i` of the batch
/// is message (`shard`, `first_seq + i`), where `first_seq` is the shard's
/// [`vouch_engine::Shard::effects_made`] before the batch.
pub fn rows_of(
    shard: u32,
    first_seq: u64,
    now_ms: i64,
    effects: impl ExactSizeIterator<Item = Effect>,
) -> Vec<OutboxPut> {
    let mut rows = Vec::with_capacity(effects.len() * 2);
    for (i, effect) in effects.into_iter().enumerate() {
        let id = MessageId {
            shard,
            seq: first_seq + i as u64,
        };
        if let Effect::RefundNotice {
            to,
            code_void: true,
            ..
        } = &effect
        {
            rows.push(OutboxPut {
                key: rows::withdrawal_key(&to.order_id),
                value: id.seq.to_be_bytes().to_vec(),
            });
        }
        rows.extend(rows::new_message(id, now_ms, effect));
    }
    rows
}
