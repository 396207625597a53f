//! The replay's money (issue 9): retail cancellations become refunds, then
//! every seller is settled and its payouts confirmed as the payment system,
//! and the audit checks the money to the fen against the client's books.
//!
//! Decisions of this replay: a cancellation covering every unit still
//! unredeemed is the automatic refund (REF-1; the replay's category allows
//! it), one covering part of them an agreed refund (REF-4) of those units'
//! value (every unredeemed unit is void either way, REF); a cancellation of
//! an order with nothing left is skipped (`refund_nothing_left`).

use crate::report::Stats;
use crate::runner::{Pool, Sample};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use vouch_engine::catalog::SETTLEMENTS_PAGE_ITEMS_MAX;
use vouch_engine::catalog::{
    Actor, CatalogCommand as C, CatalogOutcome, CatalogQuery as Q, CatalogView, PayoutState,
    SettlementView, STATEMENT_PAGE_LINES_MAX,
};
use vouch_engine::command::{
    ListTransfers, OrderShow, Refund, RefundAction, RequestId, TransferAction, TransferState,
    TransferStep, Unavailable, TRANSFERS_PAGE_ITEMS_MAX,
};
use vouch_engine::{Bps, Command, ErrorCode, Fen, Outcome, SellerId};
use vouch_protocol::Client;

/// The code fee (REF-1).
const CODE_FEE: Fen = Fen::YUAN;

/// How long the audit waits for the shards' payable money to reach the
/// catalog beyond the reversal window (ticks run every second).
pub const PAYABLE_WAIT_MS: u64 = 30_000;

/// The longest reversal window the audit waits for: with a longer one
/// (the server's default hour) the redemptions' money is still pending at
/// the end of a run, and only the refunds' shares are settled.
pub const WAIT_FOR_WINDOW_MS_MAX: i64 = 60_000;

/// The client's books of one order.
#[derive(Clone, Debug)]
pub struct OrderBook {
    /// Seller.
    pub seller: SellerId,
    /// Unit price.
    pub price: Fen,
    /// Units bought.
    pub units: u32,
    /// Refunded to the buyer.
    pub refunded: Fen,
    /// Code fee kept.
    pub code_fee: Fen,
    /// The rest of a refund the seller got.
    pub refund_rest: Fen,
    /// Unused units' money the seller got at expiry without expiry
    /// refund (SET-1 end).
    pub expired: Fen,
    /// The product's refund ratio (PUB-7; REF-1 and REF-6 use it), 100 %
    /// when it has none.
    pub ratio: Bps,
}

/// MON-2 as the client works it out: round(`g` × `ratio` / 10,000), half
/// away from zero (amounts here are never negative).
pub fn share(g: Fen, ratio: Bps) -> Fen {
    let x = i128::from(g.fen()) * i128::from(ratio.get());
    Fen::positive(((x + 5_000) / 10_000) as i64).unwrap_or(Fen::ZERO)
}

/// REF-1 and REF-6 as the client works them out: R = round(G × r), the
/// fee min(1.00, R); (buyer R − fee, fee, the seller G − R).
pub fn automatic_split(g: Fen, ratio: Bps) -> (Fen, Fen, Fen) {
    let r = share(g, ratio);
    let fee = CODE_FEE.min(r);
    (r - fee, fee, g - r)
}

impl OrderBook {
    /// The books of an order of `units` at `price` of `seller`, its
    /// product's refund ratio `ratio`: nothing refunded or expired yet.
    pub fn new(seller: SellerId, price: Fen, units: u32, ratio: Bps) -> OrderBook {
        OrderBook {
            seller,
            price,
            units,
            refunded: Fen::ZERO,
            code_fee: Fen::ZERO,
            refund_rest: Fen::ZERO,
            expired: Fen::ZERO,
            ratio,
        }
    }
}

/// Request ids of one source, serial after serial, so that no step of
/// the run reuses one (a reused id would answer the earlier step).
#[derive(Clone, Copy, Debug)]
pub struct Serials {
    /// The request-id source.
    pub source: u64,
    /// The next serial.
    pub next: u64,
}

impl Serials {
    /// The next request id.
    pub fn take(&mut self) -> RequestId {
        self.next += 1;
        RequestId {
            source: self.source,
            serial: self.next - 1,
        }
    }
}

/// The payment system as the run acts for it (MON-7): its token (to
/// connect again after a server restart), a connection, its request ids.
pub struct PaymentSystem {
    /// Its token.
    pub token: String,
    /// A connection with that token.
    pub client: Arc<Client>,
    /// Its request ids.
    pub serials: Serials,
}

/// Every order's books, by order id.
pub type Books = HashMap<String, OrderBook>;

/// A refund to send and what it must give: (buyer, fee, seller) or the
/// refusal.
#[derive(Clone, Debug)]
pub struct PlannedRefund {
    /// Order id.
    pub order_id: String,
    /// Its request id.
    pub request_id: RequestId,
    /// The step.
    pub action: RefundAction,
    /// Units still unredeemed when planned (all of them become void).
    pub units_left: u32,
    /// The expected split, or the expected refusal.
    pub expect: Result<(Fen, Fen, Fen), ErrorCode>,
}

/// The refund of a cancellation of `cancelled` units of an order with
/// `left` units unredeemed at `price` and refund ratio `ratio` (see the
/// module docs); None when nothing is left.
pub fn plan(
    order_id: &str,
    request_id: RequestId,
    (left, price, ratio): (u32, Fen, Bps),
    cancelled: u32,
) -> Option<PlannedRefund> {
    if left == 0 {
        return None;
    }
    let g = price.times(left).expect("bounded");
    let (action, expect) = if cancelled >= left {
        let split = automatic_split(g, ratio);
        let expect = if split.0.is_zero() {
            Err(ErrorCode::RefundAmountZero)
        } else {
            Ok(split)
        };
        (RefundAction::Automatic, expect)
    } else {
        let a = price.times(cancelled).expect("bounded");
        let expect = if a.is_zero() {
            Err(ErrorCode::RefundAmountZero)
        } else {
            Ok((a, Fen::ZERO, g - a))
        };
        (RefundAction::Agreed { amount: a }, expect)
    };
    Some(PlannedRefund {
        order_id: order_id.to_string(),
        request_id,
        action,
        units_left: left,
        expect,
    })
}

/// What the money steps found: checks made, violations, their first
/// samples.
#[derive(Default, Debug)]
pub struct Findings {
    /// Checks made.
    pub checked: u64,
    /// Checks failed.
    pub violations: u64,
    /// The first failures, in words.
    pub samples: Vec<String>,
}

impl Findings {
    /// Counts one check.
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

type Shared = Arc<Mutex<(Books, Findings, Vec<String>)>>;

/// Sends every planned refund; each reply must be the planned split or
/// refusal. Returns the statistics, and the orders refunded (their units
/// are void).
pub async fn refund_all(
    pool: &Pool,
    books: &mut Books,
    findings: &mut Findings,
    plans: Vec<PlannedRefund>,
) -> anyhow::Result<(Stats, Vec<String>)> {
    let shared: Shared = Arc::new(Mutex::new((
        std::mem::take(books),
        Findings::default(),
        Vec::new(),
    )));
    let s2 = shared.clone();
    let stats = pool
        .run("refund", &["refund"], plans, move |client, p| {
            let shared = s2.clone();
            async move {
                let c = Refund {
                    request_id: p.request_id,
                    order_id: p.order_id.clone(),
                    action: p.action.clone(),
                    seller_id: None,
                };
                let reply = client.command(Command::Refund(c)).await?;
                let ok = note_refund(&shared, &p, reply);
                Ok(vec![Sample {
                    name: "refund",
                    n: 1,
                    ok: u64::from(ok),
                }])
            }
        })
        .await?;
    let (b, f, refunded) = std::mem::take(&mut *shared.lock().expect("lock"));
    *books = b;
    findings.checked += f.checked;
    findings.violations += f.violations;
    findings.samples.extend(f.samples);
    Ok((stats, refunded))
}

fn note_refund(
    shared: &Shared,
    p: &PlannedRefund,
    reply: Result<Outcome, vouch_protocol::WireError>,
) -> bool {
    let mut s = shared.lock().expect("lock");
    let (books, findings, refunded) = &mut *s;
    match (&p.expect, reply) {
        (Err(code), Err(e)) => {
            findings.check(e.code == code.number(), || {
                format!("refund of {}: {} instead of {code}", p.order_id, e.name)
            });
            false
        }
        (Ok(want), Ok(Outcome::Refunded(r))) => {
            let got = (r.buyer_amount, r.code_fee, r.seller_amount);
            findings.check(got == *want && r.units_voided == p.units_left, || {
                format!(
                    "refund of {}: {r} instead of {want:?} and {} units void",
                    p.order_id, p.units_left
                )
            });
            if let Some(b) = books.get_mut(&p.order_id) {
                (b.refunded, b.code_fee, b.refund_rest) = got;
            }
            refunded.push(p.order_id.clone());
            true
        }
        (want, other) => {
            findings.check(false, || {
                format!("refund of {}: {other:?} instead of {want:?}", p.order_id)
            });
            false
        }
    }
}

/// Σ over `sellers` of payable + in transit, fen.
async fn seller_money(client: &Client, sellers: &[SellerId]) -> anyhow::Result<i64> {
    let mut sum = 0;
    for s in sellers {
        if let Ok(CatalogView::Seller(v)) = client
            .catalog_read(Some(Actor::Staff), Q::Seller { id: Some(*s) })
            .await?
        {
            sum += (v.payable + v.payout_in_transit).fen();
        }
    }
    Ok(sum)
}

/// Waits until the sellers' payable money reaches `want` fen (every
/// reversal window ended and the shards handed it over), at most
/// [`PAYABLE_WAIT_MS`] beyond the reversal window. Returns what it saw
/// last.
pub async fn wait_payable(
    client: &Client,
    sellers: &[SellerId],
    want: i64,
    window_ms: i64,
) -> anyhow::Result<i64> {
    let wait = PAYABLE_WAIT_MS + window_ms.clamp(0, WAIT_FOR_WINDOW_MS_MAX) as u64;
    let deadline = Instant::now() + Duration::from_millis(wait);
    loop {
        let seen = seller_money(client, sellers).await?;
        if seen == want || Instant::now() >= deadline {
            return Ok(seen);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Every settlement after id `after` (all sellers), in id order.
///
/// Errors: the connection failed or the page was refused.
async fn settlements_after(client: &Client, mut after: u64) -> anyhow::Result<Vec<SettlementView>> {
    let mut out = Vec::new();
    loop {
        let q = Q::Settlements {
            seller: None,
            after: Some(after),
            limit: SETTLEMENTS_PAGE_ITEMS_MAX,
        };
        let page = match client.catalog_read(Some(Actor::Staff), q).await? {
            Ok(CatalogView::Settlements(page)) => page,
            other => anyhow::bail!("settlements after {after}: {other:?}"),
        };
        let Some(last) = page.last().map(|s| s.id) else {
            return Ok(out);
        };
        out.extend(page);
        after = last;
    }
}

/// Runs settlement for every seller at `cutoff_ms` (staff) and confirms
/// every payout in transit (as the payment system), also those the
/// server's daily run (SET-3) made meanwhile. Returns every settlement of
/// these sellers made since the call began, as confirmed.
///
/// Errors: the connection failed.
pub async fn settle_all(
    client: &Client,
    sellers: &[SellerId],
    cutoff_ms: i64,
    serials: &mut Serials,
    findings: &mut Findings,
) -> anyhow::Result<Vec<SettlementView>> {
    let before = settlements_after(client, 0)
        .await?
        .last()
        .map_or(0, |s| s.id);
    for seller in sellers {
        let run = client
            .catalog(
                serials.take(),
                Some(Actor::Staff),
                C::RunSettlement {
                    seller: *seller,
                    cutoff_ms,
                },
            )
            .await?;
        if !matches!(run, Ok(CatalogOutcome::Settlement(_))) {
            findings.check(false, || format!("settlement of seller {seller}: {run:?}"));
        }
    }
    let ours: std::collections::HashSet<SellerId> = sellers.iter().copied().collect();
    let mut out = Vec::new();
    for s in settlements_after(client, before).await? {
        if !ours.contains(&s.seller) {
            continue; // another run's seller
        }
        match s.state {
            PayoutState::InTransit => {}
            PayoutState::NothingToPay => continue,
            other => {
                findings.check(false, || format!("payout {}: {other}", s.id));
                continue;
            }
        }
        let confirm = client
            .catalog(
                serials.take(),
                Some(Actor::PaymentSystem),
                C::ConfirmPayout { settlement: s.id },
            )
            .await?;
        match confirm {
            Ok(CatalogOutcome::Settlement(done)) => {
                findings.check(done.state == PayoutState::Confirmed, || {
                    format!("payout {}: {}", s.id, done.state)
                });
                out.push(done);
            }
            other => findings.check(false, || format!("confirming payout {}: {other:?}", s.id)),
        }
    }
    Ok(out)
}

/// MON-7: the payment system confirms every refund transfer in transit of
/// this run's orders (others may share the server), shard by shard; each
/// must be for the amount booked. Returns the fen confirmed.
pub async fn confirm_refunds(
    payment: &mut PaymentSystem,
    books: &Books,
    findings: &mut Findings,
) -> anyhow::Result<Fen> {
    let client = payment.client.clone();
    let mut confirmed = Fen::ZERO;
    for shard in 0..client.shards() {
        let mut after = 0;
        loop {
            let list = ListTransfers {
                shard,
                failed: false,
                after,
                limit: TRANSFERS_PAGE_ITEMS_MAX,
            };
            let page = match client.command(Command::Transfers(list)).await? {
                Ok(Outcome::Transfers(p)) => p,
                other => {
                    findings.check(false, || {
                        format!("refund transfers of shard {shard}: {other:?}")
                    });
                    break;
                }
            };
            for t in page.items {
                let Some(booked) = books.get(&t.order_id).map(|b| b.refunded) else {
                    continue; // another run's order
                };
                findings.check(booked == t.amount, || {
                    format!("{t}: the books say {booked} yuan")
                });
                let step = TransferStep {
                    request_id: payment.serials.take(),
                    order_id: t.order_id.clone(),
                    transfer: t.transfer,
                    action: TransferAction::Confirm,
                };
                let reply = client.command(Command::TransferStep(step)).await?;
                let ok = matches!(&reply, Ok(Outcome::Transfer(d)) if d.state == TransferState::Confirmed);
                findings.check(ok, || format!("confirming {t}: {reply:?}"));
                if ok {
                    confirmed += t.amount;
                }
            }
            match page.next {
                Some(next) if next > after => after = next,
                _ => break,
            }
        }
    }
    Ok(confirmed)
}

/// RPT-4: each statement's lines add up to its settlement's total.
pub async fn check_statements(
    client: &Client,
    settlements: &[SettlementView],
    findings: &mut Findings,
) -> anyhow::Result<()> {
    for s in settlements {
        let (mut sum, mut offset) = (Fen::ZERO, 0u32);
        loop {
            let q = Q::Statement {
                settlement: s.id,
                offset,
                limit: STATEMENT_PAGE_LINES_MAX,
            };
            let Ok(CatalogView::Statement(st)) = client.catalog_read(Some(Actor::Staff), q).await?
            else {
                findings.check(false, || format!("statement {} unreadable", s.id));
                break;
            };
            sum += st.lines.iter().map(|l| l.amount).sum::<Fen>();
            if st.lines.len() < STATEMENT_PAGE_LINES_MAX as usize {
                break;
            }
            offset += STATEMENT_PAGE_LINES_MAX;
        }
        findings.check(sum == s.total, || {
            format!("statement {}: lines {sum} ≠ total {}", s.id, s.total)
        });
    }
    Ok(())
}

/// REF-7 per order, from the server's order view against the books: paid
/// = units × price; refunded as booked; paid = refunded + to the seller +
/// held; held = the unredeemed units' value (`left` from the model); the
/// orders in `expired` read `unavailable` because they expired (REF-6).
pub async fn check_orders(
    pool: &Pool,
    books: &Books,
    left: &HashMap<String, u32>,
    expired: &std::collections::HashSet<String>,
) -> anyhow::Result<(Stats, Findings)> {
    let shared = Arc::new(Mutex::new(Findings::default()));
    let items: Vec<(String, OrderBook, u32, bool)> = books
        .iter()
        .map(|(id, b)| {
            let units = left.get(id).copied().unwrap_or(0);
            (id.clone(), b.clone(), units, expired.contains(id))
        })
        .collect();
    let s2 = shared.clone();
    let stats = pool
        .run("order", &["order"], items, move |client, (id, b, left, expired)| {
            let shared = s2.clone();
            async move {
                let c = Command::Order(OrderShow { order_id: id.clone(), seller_id: None });
                let reply = client.command(c).await?;
                let mut f = shared.lock().expect("lock");
                let ok = match reply {
                    Ok(Outcome::Order(o)) => {
                        let paid = b.price.times(b.units).expect("bounded");
                        let held = b.price.times(left).expect("bounded");
                        f.check(
                            o.paid == paid && o.refunded == b.refunded && o.paid == o.refunded + o.to_seller + o.escrow && o.escrow == held,
                            || format!("order {id}: paid {} refunded {} to seller {} held {}; books: paid {paid} refunded {} held {held}", o.paid, o.refunded, o.to_seller, o.escrow, b.refunded),
                        );
                        if expired {
                            f.check(o.unavailable == Some(Unavailable::Expired), || {
                                format!("order {id}: {} instead of expired", o.state)
                            });
                        }
                        true
                    }
                    other => {
                        f.check(false, || format!("order {id}: {other:?}"));
                        false
                    }
                };
                Ok(vec![Sample { name: "order", n: 1, ok: u64::from(ok) }])
            }
        })
        .await?;
    let f = std::mem::take(&mut *shared.lock().expect("lock"));
    Ok((stats, f))
}

/// The money totals of a run, for the report: paid, refunded, code fees,
/// what sellers earned and what was settled, in yuan.
pub fn totals(books: &Books, earned: Fen, settled: &[SettlementView]) -> Value {
    let paid: Fen = books
        .values()
        .map(|b| b.price.times(b.units).expect("bounded"))
        .sum();
    let refunded: Fen = books.values().map(|b| b.refunded).sum();
    let fees: Fen = books.values().map(|b| b.code_fee).sum();
    let expired: Fen = books.values().map(|b| b.expired).sum();
    let refunds = books.values().filter(|b| !b.refunded.is_zero()).count();
    let by_seller: BTreeMap<SellerId, Fen> = settled.iter().fold(BTreeMap::new(), |mut m, s| {
        *m.entry(s.seller).or_default() += s.total;
        m
    });
    let settled_total: Fen = by_seller.values().copied().sum();
    json!({
        "paid": paid, "refunded": refunded, "refunds": refunds, "code_fees": fees,
        "expired_to_sellers": expired,
        "earned_by_sellers": earned, "settled": settled_total, "payouts": settled.len(),
        "sellers_paid": by_seller.len(),
    })
}

/// What the replay hands the money steps: its books, the cancellations as
/// (order id, units), and the model's units left and redemptions.
pub struct Inputs {
    /// Every acknowledged order's books.
    pub books: Books,
    /// Cancellations in file order: (order id, units).
    pub cancellations: Vec<(String, u32)>,
    /// Units left per order (the client's model).
    pub left: HashMap<String, u32>,
    /// Units redeemed and not reversed per order (the client's model).
    pub redeemed: HashMap<String, u32>,
    /// Request ids of the run's refunds and catalog commands.
    pub serials: Serials,
    /// The payment system: it confirms the refunds in transit (MON-7).
    pub payment: PaymentSystem,
}

/// The outcome of the money steps, and what a later money step (the
/// expiry after a restart) goes on from.
pub struct Outputs {
    /// Statistics of the refunds and order reads.
    pub stats: Stats,
    /// Checks and violations.
    pub findings: Findings,
    /// Orders whose unredeemed units became void.
    pub refunded: Vec<String>,
    /// The totals for the report.
    pub totals: Value,
    /// The books as they stand.
    pub books: Books,
    /// Units left per order as they stand.
    pub left: HashMap<String, u32>,
    /// Every settlement made and confirmed.
    pub settled: Vec<SettlementView>,
    /// What the sellers earned (redeemed, refund shares, expiry).
    pub earned: Fen,
    /// The run's request ids, from where they stand.
    pub serials: Serials,
    /// The payment system.
    pub payment: PaymentSystem,
}

/// Refunds the cancellations, waits for the sellers' money, settles and
/// confirms every payout, and audits the money (see the module docs).
///
/// Errors: the connection failed.
pub async fn run(pool: &Pool, mut inputs: Inputs) -> anyhow::Result<Outputs> {
    let mut findings = Findings::default();
    let mut left = inputs.left.clone();
    let plans = plan_all(&inputs, &mut left);
    let (stats, refunded) = refund_all(pool, &mut inputs.books, &mut findings, plans).await?;
    let shares: Fen = inputs
        .books
        .values()
        .map(|b| b.code_fee + b.refund_rest)
        .sum();
    let redeemed: Fen = inputs
        .books
        .iter()
        .map(|(id, b)| {
            let units = inputs.redeemed.get(id).copied().unwrap_or(0);
            b.price.times(units).expect("bounded")
        })
        .sum();
    let earned = shares + redeemed;
    // With a long reversal window only the refunds' shares are payable by
    // the end of the run; the redemptions' money is still pending.
    let window_ms = reversal_window_ms(&pool.first()).await?;
    let payable = if window_ms <= WAIT_FOR_WINDOW_MS_MAX {
        earned
    } else {
        shares
    };
    let mut out = Outputs {
        stats,
        findings,
        refunded,
        totals: Value::Null,
        books: inputs.books,
        left,
        settled: Vec::new(),
        earned,
        serials: inputs.serials,
        payment: inputs.payment,
    };
    let booked: Fen = out.books.values().map(|b| b.refunded).sum();
    settle_and_audit(pool, &mut out, payable, booked, &Default::default()).await?;
    Ok(out)
}

/// The refunds of the cancellations (see [`plan`]); `left` loses the
/// units each refund voids.
fn plan_all(inputs: &Inputs, left: &mut HashMap<String, u32>) -> Vec<PlannedRefund> {
    let mut plans = Vec::new();
    for (i, (order_id, units)) in inputs.cancellations.iter().enumerate() {
        let Some(b) = inputs.books.get(order_id) else {
            continue;
        };
        let rid = RequestId {
            source: inputs.serials.source,
            serial: 1_000_000 + i as u64,
        };
        let units_left = left.get(order_id).copied().unwrap_or(0);
        if let Some(p) = plan(order_id, rid, (units_left, b.price, b.ratio), *units) {
            if p.expect.is_ok() {
                left.insert(order_id.clone(), 0);
            }
            plans.push(p);
        }
    }
    plans
}

/// Waits until the sellers' money reaches `payable`, settles every seller
/// at the server's now and confirms the payouts, checks the statements,
/// confirms the refunds in transit (they must add up to `refunds`), reads
/// every order back (`expired` must read expired), and updates the
/// totals.
///
/// Errors: the connection failed.
pub async fn settle_and_audit(
    pool: &Pool,
    out: &mut Outputs,
    payable: Fen,
    refunds: Fen,
    expired: &std::collections::HashSet<String>,
) -> anyhow::Result<()> {
    let client = pool.first();
    let findings = &mut out.findings;
    let window_ms = reversal_window_ms(&client).await?;
    let mut sellers: Vec<SellerId> = out.books.values().map(|b| b.seller).collect();
    sellers.sort_unstable();
    sellers.dedup();
    let seen = wait_payable(&client, &sellers, payable.fen(), window_ms).await?;
    findings.check(seen == payable.fen(), || {
        format!("sellers' payable money {seen} fen, books say {payable} yuan")
    });
    tokio::time::sleep(Duration::from_millis(5)).await;
    let cutoff = server_now_ms(&client).await?;
    let settled = settle_all(&client, &sellers, cutoff, &mut out.serials, findings).await?;
    let total: Fen = settled.iter().map(|s| s.total).sum();
    findings.check(total == payable, || {
        format!("settled {total} yuan, sellers' payable money {payable}")
    });
    let after = seller_money(&client, &sellers).await?;
    findings.check(after == 0, || {
        format!("{after} fen still payable or in transit after every payout")
    });
    check_statements(&client, &settled, findings).await?;
    let confirmed = confirm_refunds(&mut out.payment, &out.books, findings).await?;
    findings.check(confirmed == refunds, || {
        format!("refunds confirmed {confirmed} yuan, the books refunded {refunds}")
    });
    let (order_stats, f) = check_orders(pool, &out.books, &out.left, expired).await?;
    out.stats.merge_with_active(order_stats);
    out.findings.checked += f.checked;
    out.findings.violations += f.violations;
    out.findings.samples.extend(f.samples);
    out.settled.extend(settled);
    out.totals = totals(&out.books, out.earned, &out.settled);
    Ok(())
}

/// The server's reversal window and clock (`Info`), ms: redeemed money
/// is payable that long after a redemption; settlement cutoffs must not
/// be after the clock, which a rehearsal runs ahead of this machine's.
///
/// Errors: the request failed or the answer is not `Info`.
async fn info_ms(client: &Client) -> anyhow::Result<(i64, i64)> {
    match client.call(vouch_protocol::Request::Info).await? {
        vouch_protocol::Response::Info {
            reversal_window_ms,
            now_ms,
            ..
        } => Ok((reversal_window_ms, now_ms)),
        other => anyhow::bail!("Info answered {other:?}"),
    }
}

/// The server's clock, unix ms (see [`info_ms`]).
///
/// Errors: the request failed or the answer is not `Info`.
pub async fn server_now_ms(client: &Client) -> anyhow::Result<i64> {
    Ok(info_ms(client).await?.1)
}

/// The server's reversal window, ms (see [`info_ms`]).
///
/// Errors: the request failed or the answer is not `Info`.
async fn reversal_window_ms(client: &Client) -> anyhow::Result<i64> {
    Ok(info_ms(client).await?.0)
}
