//! `vouch outbox …` (staff, ORD-2): the failed-task list, one message, a
//! re-queue and the counts; and `vouch serve`'s webhook flags.

use super::outcome::print_refusal;
use super::time::Zone;
use super::ClientArgs;
use crate::outbox::{Endpoint, EndpointError, OutboxConfig};
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use std::process::ExitCode;
use vouch_protocol::outbox::{
    OutboxMessageView, OutboxRequest, OutboxStats, OutboxView, OUTBOX_PAGE_MAX,
};
use vouch_protocol::{Client, Request, Response};

/// `vouch outbox …`.
#[derive(Args)]
pub struct OutboxArgs {
    #[command(subcommand)]
    action: OutboxCmd,
    #[command(flatten)]
    pub(super) client: ClientArgs,
}

#[derive(Subcommand)]
enum OutboxCmd {
    /// Messages that ran out of attempts (the failed-task list), every
    /// page.
    Failed,
    /// One message: its endpoint, event, order, attempts and state.
    Show {
        /// Message id SHARD-SEQ (as receivers see it in x-vouch-message-id).
        id: String,
    },
    /// Queue a failed message again for a new round of attempts.
    Retry {
        /// Message id SHARD-SEQ.
        id: String,
    },
    /// Messages by state: written, queued, delivered, failed, retried.
    Stats,
}

impl OutboxArgs {
    /// The client flags and the first request.
    pub(super) fn build(self) -> (ClientArgs, OutboxRequest) {
        let r = match self.action {
            OutboxCmd::Failed => OutboxRequest::Failed {
                after: None,
                limit: OUTBOX_PAGE_MAX,
            },
            OutboxCmd::Show { id } => OutboxRequest::Show { id },
            OutboxCmd::Retry { id } => OutboxRequest::Retry { id },
            OutboxCmd::Stats => OutboxRequest::Stats,
        };
        (self.client, r)
    }
}

/// Sends `request` (every page of the failed-task list) and prints the
/// answer; the exit code: 0 answered, 1 refused, 2 connection failure.
pub(super) async fn run(
    client: &Client,
    request: OutboxRequest,
    json: bool,
    zone: &Zone,
) -> ExitCode {
    let mut items = Vec::new();
    let mut request = request;
    loop {
        let view = match client.call(Request::Outbox(request.clone())).await {
            Ok(Response::Outbox(Ok(v))) => v,
            Ok(Response::Outbox(Err(e)) | Response::Error(e)) => {
                print_refusal(&e, json);
                return ExitCode::from(1);
            }
            Ok(other) => {
                eprintln!(
                    "error: unexpected reply to an outbox request ({})",
                    other.opcode()
                );
                return ExitCode::from(2);
            }
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        };
        match view {
            OutboxView::Failed { items: page, next } => {
                items.extend(page);
                match (next, &request) {
                    (Some(after), OutboxRequest::Failed { limit, .. }) => {
                        request = OutboxRequest::Failed {
                            after: Some(after),
                            limit: *limit,
                        };
                    }
                    _ => {
                        print(failed(&items, zone), json);
                        return ExitCode::SUCCESS;
                    }
                }
            }
            OutboxView::Message(m) => return done(message(&m, "outbox_message", zone), json),
            OutboxView::Requeued(m) => return done(message(&m, "outbox_requeued", zone), json),
            OutboxView::Stats(s) => return done(stats(&s), json),
        }
    }
}

fn done(shown: (Value, String), json: bool) -> ExitCode {
    print(shown, json);
    ExitCode::SUCCESS
}

fn print((v, text): (Value, String), json: bool) {
    if json {
        println!("{v}");
    } else {
        println!("{text}");
    }
}

/// One message in words: `3-17 sms code_issued for order o-1: delivered
/// 2026-12-03 10:00:01 +08:00 after 2 attempts`.
fn line(m: &OutboxMessageView, zone: &Zone) -> String {
    let when = zone.instant(m.state_ms);
    let state = match m.state.as_str() {
        "queued" => format!("queued, next attempt {when}"),
        other => format!("{other} {when}"),
    };
    let attempts = vouch_engine::words::count(u64::from(m.attempts), "attempt", "attempts");
    let mut s = format!(
        "{} {} {} for order {}: {state} after {attempts}",
        m.id, m.kind, m.event, m.order_id
    );
    if let Some(e) = &m.last_error {
        s.push_str(&format!("; last error: {e}"));
    }
    s
}

fn message_json(m: &OutboxMessageView, zone: &Zone) -> Value {
    let mut v = serde_json::to_value(m).unwrap_or_default();
    v["created_at"] = json!(zone.instant(m.created_ms));
    v["state_at"] = json!(zone.instant(m.state_ms));
    v
}

fn message(m: &OutboxMessageView, outcome: &str, zone: &Zone) -> (Value, String) {
    let mut v = message_json(m, zone);
    v["ok"] = json!(true);
    v["outcome"] = json!(outcome);
    let prefix = if outcome == "outbox_requeued" {
        "queued again: "
    } else {
        ""
    };
    (v, format!("{prefix}{}", line(m, zone)))
}

fn failed(items: &[OutboxMessageView], zone: &Zone) -> (Value, String) {
    let mut text = match items.len() {
        0 => "no failed messages".to_string(),
        n => format!(
            "{}:",
            vouch_engine::words::count(n as u64, "failed message", "failed messages")
        ),
    };
    for m in items {
        text.push_str(&format!("\n  {}", line(m, zone)));
    }
    let list: Vec<Value> = items.iter().map(|m| message_json(m, zone)).collect();
    (
        json!({"ok": true, "outcome": "outbox_failed", "count": list.len(), "items": list}),
        text,
    )
}

fn stats(s: &OutboxStats) -> (Value, String) {
    let mut v = serde_json::to_value(s).unwrap_or_default();
    v["ok"] = json!(true);
    v["outcome"] = json!("outbox_stats");
    let text = format!(
        "messages: {} written, {} queued, {} delivered, {} failed, {} withdrawn; {} needed more than one attempt ({} attempts in all)",
        s.queued_total, s.queued, s.delivered, s.failed, s.withdrawn, s.retried, s.attempts
    );
    (v, text)
}

/// `vouch serve`'s webhook flags (ORD-2). Secrets come from the
/// environment (never a flag, so they stay out of process lists) and are
/// never printed.
#[derive(Args, Debug)]
pub struct WebhookArgs {
    /// URL the buyer SMS messages are posted to (the SMS gateway); its
    /// secret is read from VOUCH_SMS_WEBHOOK_SECRET.
    #[arg(long)]
    sms_webhook: Option<String>,
    /// URL the code-provider notifications are posted to; secret from
    /// VOUCH_PROVIDER_WEBHOOK_SECRET.
    #[arg(long)]
    provider_webhook: Option<String>,
    /// URL the payment-system requests are posted to; secret from
    /// VOUCH_PAYMENT_WEBHOOK_SECRET.
    #[arg(long)]
    payment_webhook: Option<String>,
    /// Attempts per message before it is parked in the failed-task list
    /// (1..=100).
    #[arg(long, default_value_t = crate::outbox::ATTEMPTS_MAX_DEFAULT,
          value_parser = clap::value_parser!(u32).range(1..=100))]
    webhook_attempts_max: u32,
    /// Attempts in flight per endpoint (1..=1024).
    #[arg(long, default_value_t = crate::outbox::CONCURRENCY_DEFAULT as u64,
          value_parser = clap::value_parser!(u64).range(1..=1024))]
    webhook_concurrency: u64,
    /// Time an endpoint has to answer one attempt, ms (1..=600000).
    #[arg(long, default_value_t = crate::outbox::TIMEOUT_MS_DEFAULT,
          value_parser = clap::value_parser!(u64).range(1..=600_000))]
    webhook_timeout_ms: u64,
    /// Wait before the second attempt, ms; it doubles after each failed
    /// attempt, with jitter (1..=3600000).
    #[arg(long, default_value_t = crate::outbox::BACKOFF_BASE_MS_DEFAULT,
          value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    webhook_backoff_ms: u64,
    /// Longest wait between attempts, ms (1..=86400000).
    #[arg(long, default_value_t = crate::outbox::BACKOFF_MAX_MS_DEFAULT,
          value_parser = clap::value_parser!(u64).range(1..=86_400_000))]
    webhook_backoff_max_ms: u64,
}

impl WebhookArgs {
    /// The sender's configuration, secrets read from the environment.
    ///
    /// Errors (in words): a URL that does not parse, a configured endpoint
    /// whose secret is missing or shorter than 16 bytes.
    pub fn config(&self) -> Result<OutboxConfig, String> {
        let endpoint = |url: &Option<String>, var: &str| -> Result<Option<Endpoint>, String> {
            let Some(url) = url else { return Ok(None) };
            let secret = std::env::var(var).map_err(|_| {
                format!("webhook {url}: set its secret in {var} (16 bytes or more)")
            })?;
            Endpoint::new(url, &secret).map(Some).map_err(|e| match e {
                EndpointError::Secret(m) => format!("{m} ({var})"),
                EndpointError::Url(m) => m,
            })
        };
        let cfg = OutboxConfig {
            sms: endpoint(&self.sms_webhook, "VOUCH_SMS_WEBHOOK_SECRET")?,
            provider: endpoint(&self.provider_webhook, "VOUCH_PROVIDER_WEBHOOK_SECRET")?,
            payment: endpoint(&self.payment_webhook, "VOUCH_PAYMENT_WEBHOOK_SECRET")?,
            attempts_max: self.webhook_attempts_max,
            concurrency: self.webhook_concurrency as usize,
            timeout_ms: self.webhook_timeout_ms,
            backoff_base_ms: self.webhook_backoff_ms,
            backoff_max_ms: self.webhook_backoff_max_ms,
        };
        cfg.validate()?;
        Ok(cfg)
    }
}
