//! The client's model of what it got acknowledged, and the end-of-run audit
//! against the server's state (DESIGN: `invariants {checked, violations}`).

use crate::words;
use std::collections::{HashMap, HashSet};
use vouch_engine::command::{
    AuditRedemptions, AuditVouchers, RedemptionEntry, RequestId, VoucherState,
};
use vouch_engine::{Code, Command, Outcome};
use vouch_protocol::Client;

/// Page size of audit reads.
pub const AUDIT_PAGE_ITEMS: u32 = 1_000;

/// One voucher as the client believes it is.
#[derive(Clone, Debug)]
pub struct ModelVoucher {
    /// Units bought.
    pub units_total: u32,
    /// Units left.
    pub units_remaining: u32,
    /// Current live code (None when used up).
    pub code: Option<Code>,
    /// Last four phone digits.
    pub last4: String,
}

/// One acknowledged redemption.
#[derive(Clone, Debug)]
pub struct ModelRedemption {
    /// Full order id.
    pub order_id: String,
    /// Units.
    pub units: u32,
    /// Whether an acknowledged reversal undid it.
    pub reversed: bool,
}

/// Everything acknowledged in this run.
#[derive(Default)]
pub struct Model {
    /// By full order id.
    pub vouchers: HashMap<String, ModelVoucher>,
    /// By request id.
    pub redemptions: HashMap<RequestId, ModelRedemption>,
}

/// Result of an audit.
#[derive(Debug, Default)]
pub struct Audit {
    /// Individual checks made.
    pub checked: u64,
    /// Checks that failed.
    pub violations: u64,
    /// The first failures, for people.
    pub samples: Vec<String>,
}

impl Audit {
    /// Counts one check; a failed one is a violation, described by `what`.
    pub fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        self.checked += 1;
        if !ok {
            self.violations += 1;
            if self.samples.len() < crate::report::VIOLATION_SAMPLES_MAX {
                self.samples.push(what());
            }
        }
    }
}

async fn fetch_all(client: &Client) -> anyhow::Result<(Vec<VoucherState>, Vec<RedemptionEntry>)> {
    let mut vouchers = Vec::new();
    let mut redemptions = Vec::new();
    for shard in 0..client.shards() {
        let mut from = Some(0);
        while let Some(f) = from {
            let cmd = Command::AuditVouchers(AuditVouchers {
                shard,
                from: f,
                limit: AUDIT_PAGE_ITEMS,
            });
            match client.command(cmd).await? {
                Ok(Outcome::Vouchers { items, next }) => {
                    vouchers.extend(items);
                    from = next;
                }
                other => anyhow::bail!("audit vouchers of shard {shard}: {}", words::reply(&other)),
            }
        }
        let mut from = Some(0);
        while let Some(f) = from {
            let cmd = Command::AuditRedemptions(AuditRedemptions {
                shard,
                from: f,
                limit: AUDIT_PAGE_ITEMS,
            });
            match client.command(cmd).await? {
                Ok(Outcome::Redemptions { items, next }) => {
                    redemptions.extend(items);
                    from = next;
                }
                other => anyhow::bail!(
                    "audit redemptions of shard {shard}: {}",
                    words::reply(&other)
                ),
            }
        }
    }
    Ok((vouchers, redemptions))
}

/// Reads the whole server state and checks it against `model`. Vouchers
/// whose order id starts with `prefix` must match the model exactly; every
/// voucher on the server must satisfy the engine's invariants.
///
/// Checks: units conserved per voucher (total = remaining + redeemed, and,
/// for this run's vouchers, redeemed = the verification log's non-reversed
/// units — other runs may still be changing theirs while the pages are read); exactly one live
/// code per voucher with units left, none for used-up ones; no live code
/// shared by two vouchers; every acknowledged issue present with the
/// model's units and live code; every acknowledged redemption present with
/// its units and reversal state; no voucher of this run that the client
/// never had acknowledged... unless it was in doubt (`in_doubt`).
///
/// Errors: the audit reads failed.
pub async fn audit(
    client: &Client,
    model: &Model,
    prefix: &str,
    in_doubt: &HashSet<String>,
) -> anyhow::Result<Audit> {
    let (vouchers, redemptions) = fetch_all(client).await?;
    let mut a = Audit::default();
    let mut net: HashMap<&str, u64> = HashMap::new();
    let mut log: HashMap<RequestId, &RedemptionEntry> = HashMap::new();
    for r in &redemptions {
        if !r.reversed {
            *net.entry(r.order_id.as_str()).or_default() += u64::from(r.units);
        }
        a.check(log.insert(r.request_id, r).is_none(), || {
            format!(
                "request id {} appears twice in the verification log",
                r.request_id
            )
        });
    }
    let mut live_codes: HashMap<Code, &str> = HashMap::new();
    let mut seen_orders: HashSet<&str> = HashSet::new();
    for v in &vouchers {
        let id = v.order_id.as_str();
        a.check(seen_orders.insert(id), || {
            format!("order {id} has two vouchers")
        });
        a.check(
            v.units_total == v.units_remaining + v.units_redeemed + v.units_void,
            || {
                format!(
                    "order {id}: total {} != remaining {} + redeemed {} + void {}",
                    v.units_total, v.units_remaining, v.units_redeemed, v.units_void
                )
            },
        );
        a.check(v.live_code.is_some() == (v.units_remaining > 0), || {
            format!(
                "order {id}: remaining {} with live code {}",
                v.units_remaining,
                words::code(v.live_code)
            )
        });
        if let Some(c) = v.live_code {
            let prev = live_codes.insert(c, id);
            a.check(prev.is_none(), || {
                format!("live code {c} shared by {id} and {}", prev.unwrap_or("?"))
            });
        }
        // Vouchers and the verification log are read page by page, at
        // different moments: other runs may still be redeeming their own
        // vouchers, so the cross-check is exact only for this run's.
        if id.starts_with(prefix) {
            let logged = net.get(id).copied().unwrap_or(0);
            a.check(u64::from(v.units_redeemed) == logged, || {
                format!(
                    "order {id}: redeemed {} but verification log says {logged}",
                    v.units_redeemed
                )
            });
        }
        match model.vouchers.get(id) {
            Some(m) => a.check(
                m.units_total == v.units_total
                    && m.units_remaining == v.units_remaining
                    && m.code == v.live_code,
                || {
                    format!(
                        "order {id}: server total/remaining/code {}/{}/{}, client model {}/{}/{}",
                        v.units_total,
                        v.units_remaining,
                        words::code(v.live_code),
                        m.units_total,
                        m.units_remaining,
                        words::code(m.code)
                    )
                },
            ),
            None if id.starts_with(prefix) => a.check(in_doubt.contains(id), || {
                format!("order {id} exists but was never acknowledged")
            }),
            None => {}
        }
    }
    for (id, _) in model.vouchers.iter() {
        a.check(seen_orders.contains(id.as_str()), || {
            format!("acknowledged order {id} is missing")
        });
    }
    for (rid, m) in &model.redemptions {
        match log.get(rid) {
            Some(e) => a.check(
                e.order_id == m.order_id && e.units == m.units && e.reversed == m.reversed,
                || {
                    format!(
                        "redemption {rid}: server {}/{}/{} vs model {}/{}/{}",
                        e.order_id, e.units, e.reversed, m.order_id, m.units, m.reversed
                    )
                },
            ),
            None => a.check(false, || {
                format!("acknowledged redemption {rid} is missing")
            }),
        }
    }
    Ok(a)
}
