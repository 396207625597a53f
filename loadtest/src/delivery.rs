//! The delivery audit (ORD-2, ORD-8): once the server's outbox has nothing
//! queued, what the webhook receiver accepted (its `--record` file) must
//! equal what the engine says: every voucher's live code reached its phone
//! in the latest code-carrying SMS of its order, every acknowledged
//! redemption produced its success SMS, every attempt was signed, and a
//! message id always carried the same body.

use crate::model::{Audit, Model};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};
use vouch_protocol::outbox::{OutboxRequest, OutboxStats, OutboxView};
use vouch_protocol::{Client, Request, Response};

/// Longest wait for the outbox to drain before the audit, ms.
pub const DRAIN_WAIT_MS_MAX: u64 = 600_000;

/// The server's outbox counts.
///
/// Errors: the request failed or was refused.
pub async fn stats(client: &Client) -> anyhow::Result<OutboxStats> {
    match client.call(Request::Outbox(OutboxRequest::Stats)).await? {
        Response::Outbox(Ok(OutboxView::Stats(s))) => Ok(s),
        Response::Outbox(Err(e)) | Response::Error(e) => anyhow::bail!("outbox stats refused: {e}"),
        other => anyhow::bail!(
            "unexpected reply to outbox stats (opcode {})",
            other.opcode()
        ),
    }
}

/// Waits until nothing is queued; the counts then.
///
/// Errors: still queued after [`DRAIN_WAIT_MS_MAX`], or a failed read.
pub async fn drained(client: &Client) -> anyhow::Result<OutboxStats> {
    let deadline = Instant::now() + Duration::from_millis(DRAIN_WAIT_MS_MAX);
    loop {
        let s = stats(client).await?;
        if s.queued == 0 {
            return Ok(s);
        }
        if Instant::now() > deadline {
            anyhow::bail!(
                "the outbox still has {} messages queued after {} s",
                s.queued,
                DRAIN_WAIT_MS_MAX / 1000
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One accepted message as the receiver recorded it.
struct Seen {
    shard: u32,
    seq: u64,
    body: Value,
}

/// What the record file says: accepted messages by order, attempts,
/// unsigned attempts, and ids accepted with two different bodies.
#[derive(Default)]
struct Record {
    by_order: HashMap<String, Vec<Seen>>,
    attempts: u64,
    unsigned: u64,
    duplicates: u64,
    changed_body: Vec<String>,
}

fn read_record(path: &Path) -> anyhow::Result<Record> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("reading the receiver's record {}: {e}", path.display()))?;
    let mut r = Record::default();
    let mut first: HashMap<String, Value> = HashMap::new();
    for line in text.lines() {
        let a: Value = serde_json::from_str(line)?;
        r.attempts += 1;
        r.unsigned += u64::from(a["verified"] != true);
        if a["status"] != 200 {
            continue;
        }
        let id = a["message_id"].as_str().unwrap_or_default().to_owned();
        if let Some(body) = first.get(&id) {
            r.duplicates += 1;
            if *body != a["body"] {
                r.changed_body.push(id);
            }
            continue;
        }
        let (shard, seq) = id
            .split_once('-')
            .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
            .unwrap_or((u32::MAX, 0));
        let order = a["body"]["order_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        first.insert(id, a["body"].clone());
        r.by_order.entry(order).or_default().push(Seen {
            shard,
            seq,
            body: a["body"].clone(),
        });
    }
    for seen in r.by_order.values_mut() {
        seen.sort_by_key(|s| (s.shard, s.seq));
    }
    Ok(r)
}

/// Audits deliveries against `model` (this run's vouchers, live codes and
/// acknowledged redemptions) once the outbox drained; returns the checks
/// and the summary for the report (`run.delivery`).
///
/// Errors: the outbox did not drain, or the record cannot be read.
pub async fn audit(
    client: &Client,
    model: &Model,
    record: &Path,
) -> anyhow::Result<(Audit, Value)> {
    let stats = drained(client).await?;
    let r = read_record(record)?;
    let mut a = Audit::default();
    a.check(r.unsigned == 0, || {
        format!("{} attempts failed the signature check", r.unsigned)
    });
    for id in &r.changed_body {
        a.check(false, || {
            format!("message {id} was accepted twice with different bodies")
        });
    }
    let mut redemptions: HashMap<&str, usize> = HashMap::new();
    for m in model.redemptions.values() {
        *redemptions.entry(m.order_id.as_str()).or_default() += 1;
    }
    let none = Vec::new();
    for (order, v) in &model.vouchers {
        let seen = r.by_order.get(order).unwrap_or(&none);
        if let Some(code) = v.code {
            let latest = seen.iter().rev().find(|s| s.body["code"].is_string());
            let to = latest.and_then(|s| s.body["mobile"].as_str()).unwrap_or("");
            let got = latest
                .and_then(|s| s.body["code"].as_str())
                .unwrap_or("none");
            a.check(got == code.to_string() && to.ends_with(&v.last4), || {
                format!("order {order}: live code {code} (phone …{}), latest SMS carried {got} to …{to}", v.last4)
            });
        }
        let redeemed = seen
            .iter()
            .filter(|s| s.body["event"] == "redeemed")
            .count();
        let expected = redemptions.get(order.as_str()).copied().unwrap_or(0);
        a.check(redeemed == expected, || {
            format!("order {order}: {expected} redemptions, {redeemed} success SMS delivered")
        });
    }
    let summary = json!({
        "written": stats.queued_total,
        "delivered": stats.delivered,
        "retried": stats.retried,
        "failed": stats.failed,
        "withdrawn": stats.withdrawn,
        "attempts": stats.attempts,
        "receiver_attempts": r.attempts,
        "receiver_duplicates": r.duplicates,
    });
    Ok((a, summary))
}
