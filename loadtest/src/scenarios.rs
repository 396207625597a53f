//! The scenarios: `replay` (real data), `flash-sale` (issue burst) and `pos`
//! (redeem storm, Zipf over vouchers, multi-unit).

use crate::data::{self, Source};
use crate::expiry::{self, AtExpiry};
use crate::model::{self, Model, ModelRedemption, ModelVoucher};
use crate::money;
use crate::report::{self, Stats};
use crate::runner::{send_issues, send_redeems, Pool, Sample};
use crate::words;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rust_decimal::Decimal;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use vouch_engine::command::{Issue, Lookup, Redeem, RequestId, Reverse};
use vouch_engine::validity::Validity;
use vouch_engine::{
    Bps, CategoryId, Code, Command, Fen, Outcome, OutletId, PosId, ProductId, ProviderId, SellerId,
    VerifierId,
};

/// Settings every scenario shares.
#[derive(Clone, Debug)]
pub struct Common {
    /// Server URL.
    pub target: vouch_protocol::Target,
    /// Credential token.
    pub token: String,
    /// CA file for QUIC.
    pub ca: Option<PathBuf>,
    /// Connections.
    pub connections: usize,
    /// Work items in flight per connection.
    pub depth: usize,
    /// Commands per batch frame (1 = single-command frames).
    pub batch: usize,
    /// Open-loop rate in work items (frames) per second; None = closed loop.
    pub rate: Option<f64>,
    /// Seed of every random choice of the run.
    pub seed: u64,
    /// Prefix of this run's order ids and POS ids; lets several runs share
    /// one server without colliding.
    pub run_id: u32,
    /// The webhook receiver's record file: audit deliveries at the end.
    pub delivery_record: Option<PathBuf>,
}

impl Common {
    fn prefix(&self) -> String {
        format!("{:x}:", self.run_id)
    }

    /// A POS id unique to this run: the run id in the high half.
    fn pos_id(&self, local: u64) -> PosId {
        PosId((u64::from(self.run_id) << 32) | (local & 0xffff_ffff))
    }

    /// A seller id of this run: the run id above the data's low 24 bits
    /// (of `local`), so several runs can share one server.
    fn seller_id(&self, local: SellerId) -> SellerId {
        SellerId((u64::from(self.run_id) << 24) | (local.0 & 0xff_ffff))
    }

    /// A product id of this run: the run id above the low 32 bits.
    fn product_id(&self, local: ProductId) -> ProductId {
        ProductId((u64::from(self.run_id) << 32) | (local.0 & 0xffff_ffff))
    }

    pub(crate) async fn pool(&self) -> anyhow::Result<Pool> {
        Pool::connect(
            &self.target,
            &self.token,
            self.ca.as_deref(),
            self.connections,
            self.depth,
            self.batch,
            self.rate,
        )
        .await
    }
}

/// POS devices per seller in the load tests.
const POS_PER_SELLER: u64 = 4;

/// POS `k` of `seller` in this run: unique across runs (run id in the high
/// half) and sellers (the seller's low 24 bits).
fn pos_for(common: &Common, seller: SellerId, k: u64) -> PosId {
    common.pos_id((seller.0 & 0xff_ffff) * POS_PER_SELLER + k)
}

/// An outlet id of `seller` (one per seller in the load tests).
fn outlet_of(seller: SellerId) -> OutletId {
    OutletId(seller.0 * 10 + 1)
}

/// The verifier id of `seller` (one per seller in the load tests).
fn verifier_of(seller: SellerId) -> VerifierId {
    VerifierId(seller.0 * 10 + 2)
}

/// Shared mutable state of a run.
#[derive(Default)]
struct Shared {
    model: Model,
    /// The first issue reply's code of every order (idempotent re-issue).
    first_codes: HashMap<String, Code>,
    /// Disagreements noticed while running (a retry that answered
    /// differently, an unexpected refusal).
    samples: Vec<String>,
    violations: u64,
    checks: u64,
    serial: u64,
    /// Totals of what was acknowledged, kept when the model is taken out
    /// for the audit.
    acknowledged: Option<Value>,
}

impl Shared {
    fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        self.checks += 1;
        if !ok {
            self.violations += 1;
            if self.samples.len() < 20 {
                self.samples.push(what());
            }
        }
    }
}

type SharedRef = Arc<Mutex<Shared>>;

/// What a running scenario has had acknowledged so far, kept outside the
/// scenario so that a run that fails half way (the server died) still
/// reports it.
#[derive(Clone, Default)]
pub struct Progress(SharedRef);

impl Progress {
    /// Totals of what the server acknowledged: `vouchers`, `units_issued`,
    /// `redemptions` and `units_redeemed` (not reversed), `reversals`.
    pub fn acknowledged(&self) -> Value {
        let s = lock(&self.0);
        if let Some(a) = &s.acknowledged {
            return a.clone();
        }
        let units_issued: u64 = s
            .model
            .vouchers
            .values()
            .map(|v| u64::from(v.units_total))
            .sum();
        let (mut redemptions, mut units_redeemed, mut reversals) = (0u64, 0u64, 0u64);
        for r in s.model.redemptions.values() {
            if r.reversed {
                reversals += 1;
            } else {
                redemptions += 1;
                units_redeemed += u64::from(r.units);
            }
        }
        json!({
            "vouchers": s.model.vouchers.len(),
            "units_issued": units_issued,
            "redemptions": redemptions,
            "units_redeemed": units_redeemed,
            "reversals": reversals,
        })
    }
}

fn lock(s: &SharedRef) -> std::sync::MutexGuard<'_, Shared> {
    s.lock().expect("shared state lock")
}

fn last4(mobile: &str) -> String {
    mobile[mobile.len().saturating_sub(4)..].to_string()
}

/// Issues `orders` in frames of `pool.batch`. With `retry` false every
/// acknowledged voucher enters the model; with `retry` true each reply must
/// equal the first reply (same code) and nothing changes.
async fn issue_all(
    pool: &Pool,
    shared: &SharedRef,
    orders: Vec<Issue>,
    retry: bool,
) -> anyhow::Result<Stats> {
    let op = if retry { "issue_retry" } else { "issue" };
    let batch = pool.batch;
    let chunks: Vec<Vec<Issue>> = orders.chunks(batch).map(|c| c.to_vec()).collect();
    let shared = shared.clone();
    pool.run(op, &[op], chunks, move |client, chunk| {
        let shared = shared.clone();
        async move {
            let n = chunk.len() as u64;
            let replies = send_issues(&client, chunk.clone(), batch).await?;
            let mut ok = 0;
            let mut s = lock(&shared);
            for (issue, reply) in chunk.into_iter().zip(replies) {
                match reply {
                    Ok(Outcome::Issued(i)) if retry => {
                        let first = s.first_codes.get(&issue.order_id).copied();
                        let same = first == Some(i.code);
                        s.check(same, || {
                            format!(
                                "re-issue of {} gave {} not {}",
                                issue.order_id,
                                i.code,
                                words::code(first)
                            )
                        });
                        ok += u64::from(same);
                    }
                    Ok(Outcome::Issued(i)) => {
                        ok += 1;
                        s.first_codes.insert(issue.order_id.clone(), i.code);
                        s.model.vouchers.insert(
                            issue.order_id.clone(),
                            ModelVoucher {
                                units_total: i.units,
                                units_remaining: i.units,
                                code: Some(i.code),
                                last4: last4(&issue.mobile),
                            },
                        );
                    }
                    other => s.check(false, || {
                        format!("issue of {}: {}", issue.order_id, words::reply(&other))
                    }),
                }
            }
            Ok(vec![Sample { name: op, n, ok }])
        }
    })
    .await
}

/// The first replies (units remaining, new code) of redemptions that are
/// retried, by request id.
type OriginalReplies = HashMap<RequestId, (u32, Option<Code>)>;

/// One planned redemption of a voucher.
#[derive(Clone)]
struct Planned {
    order_id: String,
    redeem: Redeem,
}

/// What an acknowledged redemption answered.
struct Acked {
    planned: Planned,
    units_remaining: u32,
    new_code: Option<Code>,
}

/// Redeems `plan` (each voucher at most once) and updates the model from
/// the acknowledgements. With `retry`, every reply must instead equal the
/// recorded original reply and the model stays as it is.
async fn redeem_all(
    pool: &Pool,
    shared: &SharedRef,
    plan: Vec<Planned>,
    retry: Option<Arc<OriginalReplies>>,
) -> anyhow::Result<(Stats, Vec<Acked>)> {
    let op = if retry.is_some() {
        "redeem_retry"
    } else {
        "redeem"
    };
    let batch = pool.batch;
    let acked = Arc::new(Mutex::new(Vec::new()));
    let chunks: Vec<Vec<Planned>> = plan.chunks(batch).map(|c| c.to_vec()).collect();
    let (shared2, acked2) = (shared.clone(), acked.clone());
    let stats = pool
        .run(op, &[op], chunks, move |client, chunk| {
            let (shared, acked, retry) = (shared2.clone(), acked2.clone(), retry.clone());
            async move {
                let n = chunk.len() as u64;
                let redeems = chunk.iter().map(|p| p.redeem.clone()).collect();
                let replies = send_redeems(&client, redeems, batch).await?;
                let mut ok = 0;
                let mut s = lock(&shared);
                let mut a = acked.lock().expect("acked lock");
                for (p, reply) in chunk.into_iter().zip(replies) {
                    match (reply, &retry) {
                        (Ok(Outcome::Redeemed(r)), Some(original)) => {
                            let want = original.get(&p.redeem.request_id).copied();
                            let same = want == Some((r.units_remaining, r.new_code));
                            s.check(same, || {
                                format!(
                                    "retry of {} answered {} units left on {}, first {}",
                                    p.redeem.request_id,
                                    r.units_remaining,
                                    words::code(r.new_code),
                                    want.map_or("nothing".into(), |(u, c)| format!(
                                        "{u} units left on {}",
                                        words::code(c)
                                    ))
                                )
                            });
                            ok += u64::from(same);
                        }
                        (Ok(Outcome::Redeemed(r)), None) => {
                            ok += 1;
                            let v = s
                                .model
                                .vouchers
                                .get_mut(&p.order_id)
                                .expect("planned from the model");
                            v.units_remaining = r.units_remaining;
                            v.code = r.new_code;
                            s.model.redemptions.insert(
                                p.redeem.request_id,
                                ModelRedemption {
                                    order_id: p.order_id.clone(),
                                    units: r.units,
                                    reversed: false,
                                },
                            );
                            a.push(Acked {
                                planned: p,
                                units_remaining: r.units_remaining,
                                new_code: r.new_code,
                            });
                        }
                        (other, _) => s.check(false, || {
                            format!("{op} of {}: {}", p.order_id, words::reply(&other))
                        }),
                    }
                }
                Ok(vec![Sample { name: op, n, ok }])
            }
        })
        .await?;
    let acked = std::mem::take(&mut *acked.lock().expect("acked lock"));
    Ok((stats, acked))
}

/// Reverses the given acknowledged redemptions, one command per frame, as
/// the POS that redeemed them.
async fn reverse_all(
    pool: &Pool,
    shared: &SharedRef,
    items: Vec<(Acked, RequestId)>,
) -> anyhow::Result<Stats> {
    let shared = shared.clone();
    pool.run(
        "reverse",
        &["reverse"],
        items,
        move |client, (acked, request_id)| {
            let shared = shared.clone();
            async move {
                let r = &acked.planned.redeem;
                let cmd = Command::Reverse(Reverse {
                    request_id,
                    // The code that was redeemed: still in quarantine, routes to the voucher.
                    code: r.code,
                    redemption: r.request_id,
                    pos_id: r.pos_id,
                    verifier_id: None,
                    seller_id: None,
                });
                let reply = client.command(cmd).await?;
                let mut s = lock(&shared);
                let ok = match reply {
                    Ok(Outcome::Reversed(rev)) => {
                        let order = acked.planned.order_id.clone();
                        if let Some(v) = s.model.vouchers.get_mut(&order) {
                            v.units_remaining = rev.units_remaining;
                            v.code = Some(rev.live_code);
                        }
                        if let Some(m) = s.model.redemptions.get_mut(&r.request_id) {
                            m.reversed = true;
                        }
                        true
                    }
                    other => {
                        s.check(false, || {
                            format!("reversal of {}: {}", r.request_id, words::reply(&other))
                        });
                        false
                    }
                };
                Ok(vec![Sample {
                    name: "reverse",
                    n: 1,
                    ok: u64::from(ok),
                }])
            }
        },
    )
    .await
}

/// Looks up the given vouchers' live codes and checks the remaining units.
async fn lookup_all(pool: &Pool, shared: &SharedRef, orders: Vec<String>) -> anyhow::Result<Stats> {
    let items: Vec<(String, Code, String, u32)> = {
        let s = lock(shared);
        orders
            .into_iter()
            .filter_map(|o| {
                let v = s.model.vouchers.get(&o)?;
                Some((o, v.code?, v.last4.clone(), v.units_remaining))
            })
            .collect()
    };
    let shared = shared.clone();
    pool.run("lookup", &["lookup"], items, move |client, (order, code, last4, remaining)| {
        let shared = shared.clone();
        async move {
            let reply = client.command(Command::Lookup(Lookup { code, phone_last4: last4, verifier_id: None, pos_id: None })).await?;
            let ok = matches!(&reply, Ok(Outcome::LookedUp(l)) if l.units_remaining == remaining && l.order_id == order);
            lock(&shared).check(ok, || format!("lookup of {order}: {}, model remaining {remaining}", words::reply(&reply)));
            Ok(vec![Sample { name: "lookup", n: 1, ok: u64::from(ok) }])
        }
    })
    .await
}

/// Plans one wave: for each voucher chosen by `choose` (order id, units
/// left → units to redeem or None), a redemption of its current code.
fn plan_wave(
    common: &Common,
    shared: &SharedRef,
    order_ids: &[String],
    mut choose: impl FnMut(&str, u32) -> Option<u32>,
    seller_of: &HashMap<String, SellerId>,
) -> Vec<Planned> {
    let mut s = lock(shared);
    let mut plan = Vec::new();
    for o in order_ids {
        let Some(v) = s.model.vouchers.get(o) else {
            continue;
        };
        let Some(code) = v.code else { continue };
        let Some(units) = choose(o, v.units_remaining) else {
            continue;
        };
        let last4 = v.last4.clone();
        let seller = seller_of.get(o).copied().unwrap_or(SellerId(0));
        s.serial += 1;
        let pos = pos_for(common, seller, s.serial % POS_PER_SELLER);
        plan.push(Planned {
            order_id: o.clone(),
            redeem: Redeem {
                request_id: RequestId {
                    source: pos.0,
                    serial: s.serial,
                },
                code,
                phone_last4: last4,
                units,
                outlet_id: outlet_of(seller),
                verifier_id: verifier_of(seller),
                pos_id: Some(pos),
            },
        });
    }
    plan
}

/// Retries a sample of a wave's acknowledged redemptions (same request
/// id, same old code) and reverses another sample; returns the stats.
async fn retry_and_reverse(
    pool: &Pool,
    shared: &SharedRef,
    acked: Vec<Acked>,
    rng: &mut ChaCha8Rng,
    retry_share: f64,
    reverse_share: f64,
) -> anyhow::Result<Stats> {
    let mut stats = Stats::default();
    let mut retries = Vec::new();
    let mut originals = HashMap::new();
    let mut reversals = Vec::new();
    // Replies arrive in any order; sample in request order so a seed
    // always picks the same redemptions.
    let mut acked = acked;
    acked.sort_by_key(|a| a.planned.redeem.request_id.serial);
    for a in acked {
        if rng.random_bool(retry_share) {
            originals.insert(a.planned.redeem.request_id, (a.units_remaining, a.new_code));
            retries.push(a.planned.clone());
        }
        if rng.random_bool(reverse_share) {
            let rid = {
                let mut s = lock(shared);
                s.serial += 1;
                RequestId {
                    source: a.planned.redeem.pos_id.map_or(0, |p| p.0),
                    serial: s.serial,
                }
            };
            reversals.push((a, rid));
        }
    }
    if !retries.is_empty() {
        let (st, _) = redeem_all(pool, shared, retries, Some(Arc::new(originals))).await?;
        stats.merge_with_active(st);
    }
    if !reversals.is_empty() {
        stats.merge_with_active(reverse_all(pool, shared, reversals).await?);
    }
    Ok(stats)
}

/// Audits and builds the report.
#[allow(clippy::too_many_arguments)]
async fn finish(
    scenario: &str,
    common: &Common,
    pool: &Pool,
    shared: &SharedRef,
    stats: &Stats,
    skipped: &BTreeMap<String, u64>,
    started: Instant,
    extra: Value,
) -> anyhow::Result<Value> {
    let duration = started.elapsed().as_secs_f64();
    // The run is over: take the state out of the lock before awaiting,
    // leaving what was acknowledged for a report if the audit fails.
    let acknowledged = Progress(shared.clone()).acknowledged();
    let s = std::mem::take(&mut *lock(shared));
    lock(shared).acknowledged = Some(acknowledged);
    let mut audit =
        model::audit(&pool.first(), &s.model, &common.prefix(), &HashSet::new()).await?;
    let mut extra = extra;
    if let Some(record) = &common.delivery_record {
        let (d, summary) = crate::delivery::audit(&pool.first(), &s.model, record).await?;
        audit.checked += d.checked;
        audit.violations += d.violations;
        audit.samples.extend(d.samples);
        extra["delivery"] = summary;
    }
    let mut samples = s.samples.clone();
    samples.extend(audit.samples.iter().cloned());
    samples.truncate(report::VIOLATION_SAMPLES_MAX);
    extra["violation_samples"] = json!(samples);
    extra["run_id"] = json!(format!("{:x}", common.run_id));
    extra["seed"] = json!(common.seed);
    extra["connections"] = json!(common.connections);
    extra["depth"] = json!(common.depth);
    extra["batch"] = json!(common.batch);
    Ok(report::report(
        scenario,
        &common.target.to_string(),
        duration,
        stats,
        skipped,
        s.checks + audit.checked,
        s.violations + audit.violations,
        extra,
    ))
}

/// `replay`: every usable row of the real data becomes a paid order and
/// gets a code; a deterministic schedule (seeded) then redeems part of the
/// vouchers in waves — several units at a time for multi-unit orders —
/// retries some redemptions with the same request id and the old code,
/// reverses some, looks some up, re-issues some orders, and audits.
///
/// Errors: the data could not be read or the connection failed.
pub async fn replay(
    common: &Common,
    progress: &Progress,
    data_dir: &std::path::Path,
    onboard: bool,
    restart: Option<&str>,
) -> anyhow::Result<Value> {
    let loaded = data::load(data_dir)?;
    let started = Instant::now();
    let mut pool = common.pool().await?;
    let shared = progress.0.clone();
    let mut stats = Stats::default();
    if onboard {
        let products = products_of(common, &loaded);
        stats.merge_with_active(onboard_and_publish(common, &pool, &shared, products).await?);
    }
    let orders = orders_of(common, &loaded, onboard);
    let retry_sample: Vec<Issue> = orders.issues.iter().step_by(50).cloned().collect();
    stats.merge_with_active(issue_all(&pool, &shared, orders.issues, false).await?);
    stats.merge_with_active(issue_all(&pool, &shared, retry_sample, true).await?);
    let all: Vec<String> = orders
        .single
        .iter()
        .chain(orders.multi.iter())
        .cloned()
        .collect();
    let waves = (&all[..], &orders.multi[..], &orders.seller_of);
    stats.merge_with_active(redeem_waves(common, &pool, &shared, waves).await?);
    let looked: Vec<String> = all.iter().step_by(40).cloned().collect();
    stats.merge_with_active(lookup_all(&pool, &shared, looked).await?);
    let mut money_totals = Value::Null;
    if onboard {
        let prefix = common.prefix();
        let cancellations = loaded
            .cancellations
            .iter()
            .map(|c| (format!("{prefix}{}", c.order_key), c.units))
            .collect();
        let books = (orders.books, &orders.expiring);
        let (st, totals) =
            money_phase(common, &mut pool, &shared, books, cancellations, restart).await?;
        stats.merge_with_active(st);
        money_totals = totals;
    }
    let files: serde_json::Map<String, Value> = loaded
        .files
        .iter()
        .map(|(name, u)| (name.clone(), json!({"rows": u.rows, "orders": u.orders})))
        .collect();
    let extra = json!({
        "orders": all.len(),
        "money": money_totals,
        "data": {
            "dir": data_dir.display().to_string(),
            "files": files,
            "absent": loaded.absent,
        },
    });
    finish(
        "replay",
        common,
        &pool,
        &shared,
        &stats,
        &loaded.skipped,
        started,
        extra,
    )
    .await
}

/// The replay's products: (seller, product, merchant key) of this run,
/// one per seller and product of the data.
fn products_of(common: &Common, loaded: &data::Loaded) -> Vec<(SellerId, ProductId, String)> {
    let mut products: Vec<(SellerId, ProductId, String)> = loaded
        .orders
        .iter()
        .map(|o| {
            (
                common.seller_id(o.seller_id),
                common.product_id(o.product_id),
                o.key.clone(),
            )
        })
        .collect();
    products.sort_by_key(|p| (p.0, p.1));
    products.dedup_by_key(|p| (p.0, p.1));
    products
}

/// The replay's orders and what the later steps need of them.
struct Orders {
    /// One issue per order, in data order.
    issues: Vec<Issue>,
    /// Order id → seller.
    seller_of: HashMap<String, SellerId>,
    /// Orders of the short-validity products (see `expiry`).
    expiring: HashMap<String, AtExpiry>,
    /// The client's books of every order.
    books: money::Books,
    /// Order ids of single-unit and of multi-unit orders.
    single: Vec<String>,
    multi: Vec<String>,
}

/// Every row of the data as an order of this run (with the data's raw
/// seller and product ids when the catalog is not used).
fn orders_of(common: &Common, loaded: &data::Loaded, onboard: bool) -> Orders {
    let prefix = common.prefix();
    let mut out = Orders {
        issues: Vec::new(),
        seller_of: HashMap::new(),
        expiring: HashMap::new(),
        books: money::Books::new(),
        single: Vec::new(),
        multi: Vec::new(),
    };
    for o in &loaded.orders {
        let order_id = format!("{prefix}{}", o.key);
        let (seller, product) = if onboard {
            (
                common.seller_id(o.seller_id),
                common.product_id(o.product_id),
            )
        } else {
            (o.seller_id, o.product_id)
        };
        out.seller_of.insert(order_id.clone(), seller);
        let at = expiry::short_product(o.product_id).filter(|_| onboard);
        if let Some(at) = at {
            out.expiring.insert(order_id.clone(), at);
        }
        let price = Fen::from_yuan(o.unit_price).expect("admitted prices are whole fen");
        let ratio = match at {
            Some(AtExpiry::Refund(r)) => r,
            _ => Bps::FULL,
        };
        out.books.insert(
            order_id.clone(),
            money::OrderBook::new(seller, price, o.units, ratio),
        );
        if o.units > 1 {
            out.multi.push(order_id.clone());
        } else {
            out.single.push(order_id.clone());
        }
        out.issues.push(Issue {
            order_id,
            seller_id: seller,
            product_id: product,
            units: o.units,
            unit_price: price,
            mobile: o.mobile.clone(),
            validity: Validity::DaysFromIssue(30),
            code_digits: match o.source {
                Source::O2o => 8,
                Source::Cdnow => 9,
                Source::Retail => 10,
            },
        });
    }
    out
}

/// Three waves of redemptions (seeded): 60 % of single-unit vouchers and
/// part of every multi-unit one in the first, more of the multi-unit ones
/// after, half of the last redeemers taking everything left; some retried
/// with the same request id, some reversed.
async fn redeem_waves(
    common: &Common,
    pool: &Pool,
    shared: &SharedRef,
    (all, multi, seller_of): (&[String], &[String], &HashMap<String, SellerId>),
) -> anyhow::Result<Stats> {
    let mut rng = ChaCha8Rng::seed_from_u64(common.seed);
    let mut stats = Stats::default();
    for wave in 0..3 {
        let plan = plan_wave(
            common,
            shared,
            if wave == 0 { all } else { multi },
            |_, left| {
                if left == 1 {
                    return rng.random_bool(0.6).then_some(1);
                }
                if !rng.random_bool(0.7) {
                    return None;
                }
                // Last wave: half of the redeemers take everything left.
                if wave == 2 && rng.random_bool(0.5) {
                    return Some(left);
                }
                Some(rng.random_range(1..=left.div_ceil(2)))
            },
            seller_of,
        );
        let (st, acked) = redeem_all(pool, shared, plan, None).await?;
        stats.merge_with_active(st);
        stats
            .merge_with_active(retry_and_reverse(pool, shared, acked, &mut rng, 0.05, 0.03).await?);
    }
    Ok(stats)
}

/// The replay's money (see `money` and `expiry`): refunds, settlement and
/// payouts; then, with a restart command, the restart, the expiry and a
/// second settlement (the pool is connected again). Returns the
/// statistics and the money totals.
///
/// Errors: the connection failed or the restart did.
async fn money_phase(
    common: &Common,
    pool: &mut Pool,
    shared: &SharedRef,
    (books, expiring): (money::Books, &HashMap<String, AtExpiry>),
    cancellations: Vec<(String, u32)>,
    restart: Option<&str>,
) -> anyhow::Result<(Stats, Value)> {
    let serials = money::Serials {
        source: (u64::from(common.run_id) << 32) | 0xffff_fffd,
        next: 1,
    };
    let payment = payment_system(common, pool).await?;
    let inputs = money_inputs(shared, books, cancellations, serials, payment);
    let mut out = money::run(pool, inputs).await?;
    void_in_model(shared, &out.refunded);
    if let Some(command) = restart {
        let before = money::server_now_ms(&pool.first()).await?;
        *pool = expiry::restart(common, command).await?;
        let expired = expiry::run(common, pool, (expiring, before), &mut out).await?;
        void_in_model(shared, expired.iter());
    }
    let mut s = lock(shared);
    s.checks += out.findings.checked;
    s.violations += out.findings.violations;
    s.samples.extend(out.findings.samples);
    Ok((out.stats, out.totals))
}

/// In the model: the orders' unredeemed units are void (refunded or
/// expired), their codes dead.
fn void_in_model<'a>(shared: &SharedRef, orders: impl IntoIterator<Item = &'a String>) {
    let mut s = lock(shared);
    for id in orders {
        if let Some(v) = s.model.vouchers.get_mut(id) {
            v.units_remaining = 0;
            v.code = None;
        }
    }
}

/// The money steps' inputs from the model: the books of acknowledged
/// orders, units left and redeemed (not reversed) per order.
fn money_inputs(
    shared: &SharedRef,
    mut books: money::Books,
    cancellations: Vec<(String, u32)>,
    serials: money::Serials,
    payment: money::PaymentSystem,
) -> money::Inputs {
    let s = lock(shared);
    books.retain(|id, _| s.model.vouchers.contains_key(id));
    let left = s
        .model
        .vouchers
        .iter()
        .map(|(id, v)| (id.clone(), v.units_remaining))
        .collect();
    let mut redeemed: HashMap<String, u32> = HashMap::new();
    for r in s.model.redemptions.values().filter(|r| !r.reversed) {
        *redeemed.entry(r.order_id.clone()).or_default() += r.units;
    }
    money::Inputs {
        books,
        cancellations,
        left,
        redeemed,
        serials,
        payment,
    }
}

/// A new token of the payment system (issued by staff through the run's
/// own connection) and a connection with it, with its request-id source:
/// only it may confirm refunds to buyers (MON-7).
///
/// Errors: the token was refused or the connection failed.
async fn payment_system(common: &Common, pool: &Pool) -> anyhow::Result<money::PaymentSystem> {
    use rand::RngCore;
    use sha2::Digest;
    let mut raw = [0u8; 24];
    rand::rng().fill_bytes(&mut raw);
    let token: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    let token_hash: [u8; 32] = sha2::Sha256::digest(token.as_bytes()).into();
    let rid = RequestId {
        source: (u64::from(common.run_id) << 32) | 0xffff_fffc,
        serial: 1,
    };
    let issue = vouch_engine::catalog::CatalogCommand::IssueToken {
        token_hash,
        actor: vouch_engine::catalog::Actor::PaymentSystem,
    };
    if let Err(e) = pool
        .first()
        .catalog(rid, Some(vouch_engine::catalog::Actor::Staff), issue)
        .await?
    {
        anyhow::bail!("issuing the payment system's token: {}", e.message);
    }
    let client =
        vouch_protocol::Client::connect(&common.target, &token, common.ca.as_deref()).await?;
    let source = vouch_engine::catalog::token_source(&token_hash);
    Ok(money::PaymentSystem {
        token,
        client: Arc::new(client),
        serials: money::Serials { source, next: 1 },
    })
}

/// Sellers the synthetic scenarios onboard, and products per seller.
const SYNTHETIC_SELLERS: u64 = 20;
const SYNTHETIC_PRODUCTS_PER_SELLER: u64 = 5;

/// Order `i` of a synthetic scenario: seller and product of this run (see
/// [`onboard_synthetic`]), a phone number from `i`.
fn synthetic_issue(common: &Common, prefix: &str, i: u64, units: u32) -> Issue {
    let seller = i % SYNTHETIC_SELLERS;
    let product = seller * SYNTHETIC_PRODUCTS_PER_SELLER
        + (i / SYNTHETIC_SELLERS) % SYNTHETIC_PRODUCTS_PER_SELLER;
    Issue {
        order_id: format!("{prefix}f:{i}"),
        seller_id: common.seller_id(SellerId(seller + 1)),
        product_id: common.product_id(ProductId(product + 1)),
        units,
        unit_price: Fen::new(990),
        mobile: format!("13{:09}", i % 1_000_000_000),
        validity: Validity::DaysFromIssue(30),
        code_digits: 8,
    }
}

/// Onboards the synthetic scenarios' sellers and publishes their products
/// through the catalog, so they run on any server — also one whose catalog
/// already holds other sellers' products.
async fn onboard_synthetic(
    common: &Common,
    pool: &Pool,
    shared: &SharedRef,
) -> anyhow::Result<Stats> {
    let products = (0..SYNTHETIC_SELLERS * SYNTHETIC_PRODUCTS_PER_SELLER)
        .map(|i| {
            let issue = synthetic_issue(common, "", i, 1);
            (issue.seller_id, issue.product_id, format!("synthetic {i}"))
        })
        .collect();
    onboard_and_publish(common, pool, shared, products).await
}

/// `flash-sale`: `orders` paid orders issued as fast as the server takes
/// them, then audited.
///
/// Errors: the connection failed.
pub async fn flash_sale(
    common: &Common,
    progress: &Progress,
    orders: u64,
) -> anyhow::Result<Value> {
    let started = Instant::now();
    let pool = common.pool().await?;
    let shared = progress.0.clone();
    let prefix = common.prefix();
    let mut stats = onboard_synthetic(common, &pool, &shared).await?;
    let issues: Vec<Issue> = (0..orders)
        .map(|i| synthetic_issue(common, &prefix, i, 1))
        .collect();
    stats.merge_with_active(issue_all(&pool, &shared, issues, false).await?);
    finish(
        "flash-sale",
        common,
        &pool,
        &shared,
        &stats,
        &BTreeMap::new(),
        started,
        json!({"orders": orders}),
    )
    .await
}

/// `pos`: `vouchers` vouchers of `units` units each, then `redeems`
/// redemptions of 1–3 units, vouchers drawn by Zipf (exponent `zipf_s`)
/// in waves where each voucher appears at most once (a POS cannot redeem
/// the same code twice at the same moment), then audited.
///
/// Errors: the connection failed.
pub async fn pos(
    common: &Common,
    progress: &Progress,
    vouchers: u64,
    units: u32,
    redeems: u64,
    zipf_s: f64,
) -> anyhow::Result<Value> {
    let started = Instant::now();
    let pool = common.pool().await?;
    let shared = progress.0.clone();
    let prefix = common.prefix();
    let mut stats = onboard_synthetic(common, &pool, &shared).await?;
    let issues: Vec<Issue> = (0..vouchers)
        .map(|i| synthetic_issue(common, &prefix, i, units))
        .collect();
    let order_ids: Vec<String> = issues.iter().map(|i| i.order_id.clone()).collect();
    let seller_of: HashMap<String, SellerId> = issues
        .iter()
        .map(|i| (i.order_id.clone(), i.seller_id))
        .collect();
    stats.merge_with_active(issue_all(&pool, &shared, issues, false).await?);
    stats.merge_with_active(
        redeem_storm(
            common, &pool, &shared, &order_ids, &seller_of, redeems, zipf_s,
        )
        .await?,
    );
    let extra =
        json!({"vouchers": vouchers, "units": units, "redeems_planned": redeems, "zipf_s": zipf_s});
    finish(
        "pos",
        common,
        &pool,
        &shared,
        &stats,
        &BTreeMap::new(),
        started,
        extra,
    )
    .await
}

/// Redemptions of 1–3 units, vouchers drawn by Zipf (exponent `zipf_s`)
/// over `order_ids`, in waves where each voucher appears at most once (a
/// POS cannot redeem the same code twice at the same moment).
async fn redeem_storm(
    common: &Common,
    pool: &Pool,
    shared: &SharedRef,
    order_ids: &[String],
    seller_of: &HashMap<String, SellerId>,
    redeems: u64,
    zipf_s: f64,
) -> anyhow::Result<Stats> {
    let mut stats = Stats::default();
    let mut rng = ChaCha8Rng::seed_from_u64(common.seed);
    let zipf = rand_distr::Zipf::new(order_ids.len() as f64, zipf_s)
        .map_err(|e| anyhow::anyhow!("zipf: {e}"))?;
    let wave_max = (order_ids.len() as u64 / 4).max(1);
    let mut done = 0u64;
    let mut stalled = 0;
    while done < redeems && stalled < 3 {
        let want = wave_max.min(redeems - done);
        let mut chosen = Vec::new();
        let mut taken = HashSet::new();
        {
            let s = lock(shared);
            let mut attempts = 0;
            while (chosen.len() as u64) < want && attempts < want * 20 {
                attempts += 1;
                let i = (rng.sample(zipf) as u64)
                    .saturating_sub(1)
                    .min(order_ids.len() as u64 - 1) as usize;
                let o = &order_ids[i];
                let live = s
                    .model
                    .vouchers
                    .get(o)
                    .is_some_and(|v| v.units_remaining > 0);
                if live && taken.insert(i) {
                    chosen.push(o.clone());
                }
            }
        }
        if chosen.is_empty() {
            stalled += 1;
            continue;
        }
        let plan = plan_wave(
            common,
            shared,
            &chosen,
            |_, left| Some(rng.random_range(1..=left.min(3))),
            seller_of,
        );
        done += plan.len() as u64;
        let (st, _) = redeem_all(pool, shared, plan, None).await?;
        stats.merge_with_active(st);
    }
    Ok(stats)
}

/// `mixed`: `vouchers` base vouchers of `units` units are issued first; then,
/// all at the same time, `orders` new orders are issued (a flash sale),
/// `redeems` redemptions storm 90 % of the base vouchers (Zipf), and the
/// other 10 % are looked up `lookups` times in total; then audited.
///
/// Errors: the connection failed.
pub async fn mixed(
    common: &Common,
    progress: &Progress,
    vouchers: u64,
    units: u32,
    orders: u64,
    redeems: u64,
    lookups: u64,
) -> anyhow::Result<Value> {
    let started = Instant::now();
    let pool = common.pool().await?;
    let shared = progress.0.clone();
    let prefix = common.prefix();
    let mut stats = onboard_synthetic(common, &pool, &shared).await?;
    let base: Vec<Issue> = (0..vouchers.max(10))
        .map(|i| synthetic_issue(common, &prefix, i, units))
        .collect();
    let seller_of: HashMap<String, SellerId> = base
        .iter()
        .map(|i| (i.order_id.clone(), i.seller_id))
        .collect();
    let ids: Vec<String> = base.iter().map(|i| i.order_id.clone()).collect();
    let split = ids.len() * 9 / 10;
    let (storm_ids, lookup_ids) = ids.split_at(split);
    let lookup_list: Vec<String> = lookup_ids
        .iter()
        .cycle()
        .take(lookups as usize)
        .cloned()
        .collect();
    stats.merge_with_active(issue_all(&pool, &shared, base, false).await?);
    let new_orders: Vec<Issue> = (0..orders)
        .map(|i| synthetic_issue(common, &format!("{prefix}m"), i, 1))
        .collect();
    let (issued, stormed, looked) = tokio::join!(
        issue_all(&pool, &shared, new_orders, false),
        redeem_storm(common, &pool, &shared, storm_ids, &seller_of, redeems, 1.0),
        lookup_all(&pool, &shared, lookup_list),
    );
    stats.merge_with_active(issued?);
    stats.merge_with_active(stormed?);
    stats.merge_with_active(looked?);
    let extra = json!({"vouchers": vouchers, "units": units, "orders": orders, "redeems_planned": redeems, "lookups": lookups});
    finish(
        "mixed",
        common,
        &pool,
        &shared,
        &stats,
        &BTreeMap::new(),
        started,
        extra,
    )
    .await
}

/// Onboards every seller of `products` (seller, product, merchant code)
/// through the catalog and publishes every product, as the admin acting
/// for each principal (issue 3's replay): a category and a code provider
/// for the run; per seller the ONB-2 steps, publish permission, one outlet,
/// one verifier for it, the provider's link and `POS_PER_SELLER` POS
/// devices; then the products (pay-on-redemption, one year from issue).
/// Every refusal is a violation.
async fn onboard_and_publish(
    common: &Common,
    pool: &Pool,
    shared: &SharedRef,
    products: Vec<(SellerId, ProductId, String)>,
) -> anyhow::Result<Stats> {
    use vouch_engine::catalog::{Actor, CatalogCommand as C};
    let run = u64::from(common.run_id);
    // High ids that hand-made catalog entries do not use: PutCategory
    // replaces a category of the same id.
    let category = CategoryId((run << 32) | 0xffff_fffe);
    let provider = ProviderId((run << 32) | 1);
    let source = (run << 32) | 0xffff_ffff;
    let serial = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let next_rid = {
        let serial = serial.clone();
        move || RequestId {
            source,
            serial: serial.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        }
    };
    let setup = [
        C::PutCategory {
            id: category,
            parent: None,
            name: format!("load test {run:x} vouchers"),
            supports_vouchers: true,
            deposit: Fen::ZERO,
            min_expiry_refund_ratio: None,
            supports_auto_refund: true,
        },
        C::RegisterProvider {
            id: provider,
            name: format!("load test {run:x} codes"),
            code_digits: 8,
        },
    ];
    let client = pool.first();
    for c in setup {
        let reply = client
            .catalog(next_rid(), Some(Actor::Staff), c.clone())
            .await?;
        lock(shared).check(reply.is_ok(), || {
            format!("{}: {}", words::command_name(&c), words::reply(&reply))
        });
    }
    let mut sellers: Vec<SellerId> = products.iter().map(|p| p.0).collect();
    sellers.sort_unstable();
    sellers.dedup();
    let shared2 = shared.clone();
    let rid = next_rid.clone();
    let common2 = common.clone();
    let mut stats = pool
        .run("onboard", &["onboard"], sellers, move |client, seller| {
            let (shared, rid, common) = (shared2.clone(), rid.clone(), common2.clone());
            async move {
                let steps = onboarding_steps(&common, seller, category, provider);
                let mut ok = true;
                for (actor, c) in steps {
                    let reply = client.catalog(rid(), actor, c.clone()).await?;
                    if reply.is_err() {
                        ok = false;
                        lock(&shared).check(false, || {
                            format!(
                                "onboarding {seller}: {}: {}",
                                words::command_name(&c),
                                words::reply(&reply)
                            )
                        });
                        break;
                    }
                }
                Ok(vec![Sample {
                    name: "onboard",
                    n: 1,
                    ok: u64::from(ok),
                }])
            }
        })
        .await?;
    let shared2 = shared.clone();
    let rid = next_rid.clone();
    let now_ms = money::server_now_ms(&client).await?;
    stats.merge_with_active(
        pool.run(
            "publish",
            &["publish"],
            products,
            move |client, (seller, product, key)| {
                let (shared, rid) = (shared2.clone(), rid.clone());
                async move {
                    let spec = replay_product((seller, product, &key), category, provider, now_ms);
                    let reply = client
                        .catalog(rid(), Some(Actor::Seller(seller)), C::PublishProduct(spec))
                        .await?;
                    let ok = reply.is_ok();
                    lock(&shared).check(ok, || {
                        format!("publishing {product} of {seller}: {}", words::reply(&reply))
                    });
                    Ok(vec![Sample {
                        name: "publish",
                        n: 1,
                        ok: u64::from(ok),
                    }])
                }
            },
        )
        .await?,
    );
    Ok(stats)
}

/// The catalog steps that onboard replay seller `seller` (as staff, the
/// seller itself and the run's code provider): account, agreement,
/// payment account, onboarding, publish permission, an outlet, a verifier,
/// the provider link and its POS devices.
fn onboarding_steps(
    common: &Common,
    seller: SellerId,
    category: CategoryId,
    provider: ProviderId,
) -> Vec<(
    Option<vouch_engine::catalog::Actor>,
    vouch_engine::catalog::CatalogCommand,
)> {
    use vouch_engine::catalog::{Actor, CatalogCommand as C, CheckMethod, SellerKind};
    let me = Some(Actor::Seller(seller));
    let outlet = outlet_of(seller);
    let mut steps = vec![
        (
            None,
            C::CreateSeller {
                id: seller,
                kind: SellerKind::Marketplace,
                self_issuing: false,
                group_buying_operator: false,
            },
        ),
        (me, C::AcceptAgreement),
        (
            me,
            C::BindPaymentAccount {
                account: format!("pay:{seller}"),
                supports_freezing: true,
                accept_payment_agreement: true,
            },
        ),
        (
            me,
            C::ConfirmOnboarding {
                service_phone: "400-000-0000".into(),
                categories: vec![category],
            },
        ),
        (None, C::GrantPublishPermission { seller, category }),
        (
            me,
            C::AddOutlet {
                id: outlet,
                name: format!("outlet of {seller}"),
                address: "replay".into(),
                latitude: Decimal::ZERO,
                longitude: Decimal::ZERO,
            },
        ),
        (
            me,
            C::AddVerifier {
                id: verifier_of(seller),
                real_name: true,
                parent: None,
                outlets: vec![outlet],
            },
        ),
        (Some(Actor::Provider(provider)), C::LinkSeller { seller }),
    ];
    for k in 0..POS_PER_SELLER {
        let device = C::RegisterDevice {
            pos_id: pos_for(common, seller, k),
            outlet,
            check_method: CheckMethod::Code,
        };
        steps.push((Some(Actor::Provider(provider)), device));
    }
    steps
}

/// Replay product `product` of `seller` with merchant key `key`: a
/// year's validity, or (one product in eight, see `expiry`) a validity
/// ending tomorrow, half of those with an expiry refund ratio.
fn replay_product(
    (seller, product, key): (SellerId, ProductId, &str),
    category: CategoryId,
    provider: ProviderId,
    now_ms: i64,
) -> vouch_engine::catalog::ProductSpec {
    use vouch_engine::catalog::{Delivery, ProductSpec, Settlement};
    let short = expiry::short_product(product);
    ProductSpec {
        id: product,
        category,
        delivery: Delivery::EVoucher,
        validity: match short {
            Some(_) => expiry::short_validity(now_ms),
            None => Validity::DaysFromIssue(365),
        },
        provider: Some(provider),
        outlets: vec![outlet_of(seller)],
        settlement: Settlement::PayOnRedemption,
        expiry_refund_ratio: match short {
            Some(AtExpiry::Refund(r)) => Some(r),
            _ => None,
        },
        merchant_code: key.chars().take(64).collect(),
        group_buying: false,
    }
}
