//! Crash tests that really crash (STYLE 8, like sled's): DESIGN invariant 3
//! and the promise "kill -9 at any moment, then restart: every acked
//! operation is present, nothing unacked is half-applied, and the unit
//! invariants hold".
//!
//! Each test runs the real `vouch serve` binary on 127.0.0.1 and a fresh data
//! directory, drives load from several concurrent client tasks (one POS each:
//! issue batches of multi-unit vouchers, redeem units of the current code,
//! reverse own redemptions, and re-send already acknowledged requests with
//! the same request id / order id), SIGKILLs the server after a random delay
//! and restarts it on the same directory, [`KILL_CYCLES`] times.
//!
//! The clients keep a model of every acknowledged operation (its reply
//! arrived before the kill). An operation whose reply never arrived is
//! "unknown" and freezes its voucher. After each restart a few unknown
//! operations are retried with the same id (both "was applied" and "was not
//! applied" must answer with a success that fits the model); the rest are
//! resolved from the audit, which then binds for good: an unknown operation
//! found applied must stay applied, one found absent must never appear.
//! After every restart the server's audit (every shard, every page) is
//! checked against the model and against the unit invariants, and every live
//! code is looked up.
//!
//! The run is driven by a seeded RNG; the seed is printed and a failure can
//! be replayed (as far as timing allows) with `VOUCH_CRASH_SEED=<seed>`.
mod common;

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinSet;
use vouch_engine::command::{
    AuditRedemptions, AuditVouchers, Issue, Issued, Lookup, Redeem, Redeemed, RedemptionEntry,
    Reverse, Reversed, VoucherState,
};
use vouch_engine::validity::Validity;
use vouch_engine::{Code, Command, Outcome, RequestId};
use vouch_engine::{OutletId, PosId, ProductId, SellerId, VerifierId};
use vouch_protocol::client::ClientError;
use vouch_protocol::{Client, Target, WireReply};

/// SIGKILLs per test (each followed by a restart and a full check).
const KILL_CYCLES: u32 = 20;
/// Concurrent client tasks (POS devices), each on its own connection.
const CLIENT_TASKS: u64 = 4;
/// Shortest delay between the start of the load and the kill, in ms.
const KILL_DELAY_MS_MIN: f64 = 3.0;
/// Longest delay between the start of the load and the kill, in ms. Delays
/// are log-uniform in between, so short and long runs are both common.
const KILL_DELAY_MS_MAX: f64 = 300.0;
/// Most new vouchers or redemptions per request (before a duplicate is added).
const BATCH_ITEMS_MAX: usize = 4;
/// Most units bought per voucher.
const VOUCHER_UNITS_MAX: u32 = 6;
/// Most units redeemed per redemption.
const REDEEM_UNITS_MAX: u32 = 3;
/// Vouchers and redemptions a client task picks its next operation from
/// (the most recent ones), so choosing stays O(1) as the model grows.
const WORKING_SET_MAX: usize = 64;
/// Unknown operations retried with their original id after each restart.
const UNKNOWN_RETRIES_PER_RESTART: usize = 8;
/// Page size of the audit reads.
const AUDIT_PAGE_ITEMS: u32 = 10_000;
/// Lookups in flight at once during the check.
const LOOKUPS_IN_FLIGHT_MAX: usize = 256;
/// Environment variable that fixes the seed.
const SEED_ENV: &str = "VOUCH_CRASH_SEED";

#[derive(Clone, Copy, Debug)]
enum Transport {
    Tcp,
    Quic,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inv_3_acknowledged_operations_survive_sigkill_tcp() {
    acknowledged_operations_survive_sigkill(Transport::Tcp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inv_3_acknowledged_operations_survive_sigkill_quic() {
    acknowledged_operations_survive_sigkill(Transport::Quic).await;
}

// ---------------------------------------------------------------------------
// The client's model.

/// The one operation of a voucher whose reply never arrived. A voucher with
/// a pending operation gets no new operations until it is resolved.
#[derive(Clone, Debug)]
enum Pending {
    Issue,
    Redeem(Redeem),
    Reverse(Reverse),
}

struct ReversalModel {
    cmd: Reverse,
    /// The original reply; None when the reversal was found in the audit.
    reply: Option<Reversed>,
}

struct RedemptionModel {
    cmd: Redeem,
    /// The original reply; None when the redemption was found in the audit.
    reply: Option<Redeemed>,
    reversal: Option<ReversalModel>,
    /// An unknown reversal of it was found absent: it must stay unreversed
    /// and is never reversed again.
    reversal_dropped: bool,
}

struct VoucherModel {
    issue: Issue,
    /// The original issue reply; None while unknown or when the voucher was
    /// found in the audit.
    issued: Option<Issued>,
    /// Known to exist on the server.
    exists: bool,
    units_remaining: u32,
    live_code: Option<Code>,
    redemptions: Vec<RedemptionModel>,
    pending: Option<Pending>,
}

impl VoucherModel {
    fn new(issue: Issue) -> VoucherModel {
        VoucherModel {
            issue,
            issued: None,
            exists: false,
            units_remaining: 0,
            live_code: None,
            redemptions: Vec::new(),
            pending: Some(Pending::Issue),
        }
    }

    fn last4(&self) -> String {
        let m = &self.issue.mobile;
        m[m.len() - 4..].to_string()
    }

    fn redemption_index(&self, id: RequestId) -> Option<usize> {
        self.redemptions.iter().position(|r| r.cmd.request_id == id)
    }

    /// Folds an issue reply (first reply, or a retry of an unknown issue).
    fn fold_issued(&mut self, at: &str, i: &Issued) {
        let order = &self.issue.order_id;
        assert!(
            matches!(self.pending, Some(Pending::Issue)),
            "{at} {order}: issue reply for a voucher without a pending issue"
        );
        assert_eq!(i.units, self.issue.units, "{at} {order}: issued units");
        assert!(i.valid_until_ms > i.valid_from_ms, "{at} {order}: window");
        self.exists = true;
        self.issued = Some(i.clone());
        self.units_remaining = i.units;
        self.live_code = Some(i.code);
        self.pending = None;
    }

    /// Folds a redemption reply (first reply, or a retry of an unknown one).
    fn fold_redeemed(&mut self, at: &str, cmd: &Redeem, d: &Redeemed) {
        let order = &self.issue.order_id;
        assert_eq!(d.order_id, *order, "{at} {order}: redeemed order id");
        assert_eq!(d.units, cmd.units, "{at} {order}: redeemed units");
        assert!(
            cmd.units <= self.units_remaining,
            "{at} {order}: model units"
        );
        assert_eq!(
            d.units_remaining,
            self.units_remaining - cmd.units,
            "{at} {order}: units left after redeeming {} of {}",
            cmd.units,
            self.units_remaining
        );
        assert_eq!(
            d.new_code.is_some(),
            d.units_remaining > 0,
            "{at} {order}: a new code exactly when units remain ({d:?})"
        );
        assert_ne!(
            d.new_code,
            Some(cmd.code),
            "{at} {order}: code not replaced"
        );
        self.units_remaining = d.units_remaining;
        self.live_code = d.new_code;
        self.redemptions.push(RedemptionModel {
            cmd: cmd.clone(),
            reply: Some(d.clone()),
            reversal: None,
            reversal_dropped: false,
        });
        self.pending = None;
    }

    /// Folds a reversal reply (first reply, or a retry of an unknown one).
    fn fold_reversed(&mut self, at: &str, cmd: &Reverse, x: &Reversed) {
        let order = self.issue.order_id.clone();
        let i = self
            .redemption_index(cmd.redemption)
            .unwrap_or_else(|| panic!("{at} {order}: reversal of an unknown redemption"));
        let units = self.redemptions[i].cmd.units;
        assert_eq!(x.order_id, order, "{at} {order}: reversed order id");
        assert_eq!(x.units, units, "{at} {order}: reversed units");
        assert_eq!(
            x.units_remaining,
            self.units_remaining + units,
            "{at} {order}: units left after a reversal"
        );
        if let Some(live) = self.live_code {
            assert_eq!(
                x.live_code, live,
                "{at} {order}: live code kept by a reversal"
            );
        }
        self.units_remaining = x.units_remaining;
        self.live_code = Some(x.live_code);
        self.redemptions[i].reversal = Some(ReversalModel {
            cmd: cmd.clone(),
            reply: Some(x.clone()),
        });
        self.pending = None;
    }
}

#[derive(Default)]
struct Stats {
    issues_acked: u64,
    redemptions_acked: u64,
    reversals_acked: u64,
    retries_checked: u64,
}

/// What one client task (one POS) knows. Its vouchers are its own, so no two
/// tasks ever touch the same voucher.
struct ClientModel {
    task: u64,
    pos_id: PosId,
    next_serial: u64,
    next_order: u64,
    vouchers: BTreeMap<String, VoucherModel>,
    recent_vouchers: VecDeque<String>,
    recent_redemptions: VecDeque<(String, RequestId)>,
    /// Unknown issues found absent: these order ids must never appear.
    dropped_orders: HashSet<String>,
    /// Unknown redemptions found absent: these must never appear.
    dropped_redemptions: HashSet<RequestId>,
    stats: Stats,
}

impl ClientModel {
    fn new(task: u64) -> ClientModel {
        ClientModel {
            task,
            pos_id: PosId(500 + task),
            next_serial: 1,
            next_order: 1,
            vouchers: BTreeMap::new(),
            recent_vouchers: VecDeque::new(),
            recent_redemptions: VecDeque::new(),
            dropped_orders: HashSet::new(),
            dropped_redemptions: HashSet::new(),
            stats: Stats::default(),
        }
    }

    fn request_id(&mut self) -> RequestId {
        let serial = self.next_serial;
        self.next_serial += 1;
        RequestId {
            source: self.pos_id.0,
            serial,
        }
    }

    fn remember_voucher(&mut self, order: &str) {
        self.recent_vouchers.push_back(order.to_string());
        if self.recent_vouchers.len() > WORKING_SET_MAX {
            self.recent_vouchers.pop_front();
        }
    }

    fn remember_redemption(&mut self, order: &str, id: RequestId) {
        self.recent_redemptions.push_back((order.to_string(), id));
        if self.recent_redemptions.len() > WORKING_SET_MAX {
            self.recent_redemptions.pop_front();
        }
    }

    fn pending_count(&self) -> usize {
        self.vouchers
            .values()
            .filter(|v| v.pending.is_some())
            .count()
    }
}

// ---------------------------------------------------------------------------
// Load: one client task.

/// Awaits a request unless the server is killed first. `None` means the
/// reply did not arrive: the operation's outcome is unknown.
async fn until_killed<T>(
    killed: &mut watch::Receiver<bool>,
    request: impl Future<Output = Result<T, ClientError>>,
) -> Option<T> {
    let result = tokio::select! {
        biased;
        r = request => r,
        _ = killed.wait_for(|k| *k) => return None,
    };
    match result {
        Ok(v) => Some(v),
        Err(ClientError::Closed) => None,
        Err(e) => panic!("request failed as a whole: {e}"),
    }
}

#[derive(PartialEq, Eq)]
enum Step {
    /// The operation was acknowledged.
    Done,
    /// Nothing eligible for this kind of operation.
    Skipped,
    /// The reply did not arrive (killed): stop this task.
    Gone,
}

struct Driver {
    m: ClientModel,
    client: Client,
    killed: watch::Receiver<bool>,
    rng: StdRng,
    at: String,
}

/// A retried redemption or reversal: its reply says it is a repeat and is
/// otherwise the original reply.
fn assert_retry_repeats(reply: &WireReply, original: &WireReply, what: &str) {
    assert!(
        matches!(reply, Ok(Outcome::Redeemed(d)) if d.replayed)
            || matches!(reply, Ok(Outcome::Reversed(d)) if d.replayed),
        "{what}: a retry says it is a repeat: {reply:?}"
    );
    let first = |r: &WireReply| r.as_ref().map(Outcome::as_first).map_err(Clone::clone);
    assert_eq!(first(reply), first(original), "{what}");
}

fn expect_issued(at: &str, reply: &WireReply) -> Issued {
    match reply {
        Ok(Outcome::Issued(i)) => i.clone(),
        other => panic!("{at} issue refused: {other:?}"),
    }
}

fn expect_redeemed(at: &str, cmd: &Redeem, reply: &WireReply) -> Redeemed {
    match reply {
        Ok(Outcome::Redeemed(d)) => d.clone(),
        other => panic!("{at} redeem {cmd:?} refused: {other:?}"),
    }
}

fn expect_reversed(at: &str, cmd: &Reverse, reply: &WireReply) -> Reversed {
    match reply {
        Ok(Outcome::Reversed(x)) => x.clone(),
        other => panic!("{at} reverse {cmd:?} refused: {other:?}"),
    }
}

impl Driver {
    async fn run(mut self) -> ClientModel {
        loop {
            let killed = *self.killed.borrow();
            if killed {
                break;
            }
            let step = match self.rng.random_range(0..100u32) {
                0..25 => self.issue_step().await,
                25..65 => self.redeem_step().await,
                65..80 => self.reverse_step().await,
                _ => self.retry_step().await,
            };
            let step = match step {
                Step::Skipped => self.issue_step().await,
                s => s,
            };
            if step == Step::Gone {
                break;
            }
        }
        self.m
    }

    /// Issues 1..=BATCH_ITEMS_MAX new vouchers, sometimes with one order
    /// repeated in the same batch (an in-flight retry).
    async fn issue_step(&mut self) -> Step {
        let n = self.rng.random_range(1..=BATCH_ITEMS_MAX);
        let mut batch = Vec::with_capacity(n + 1);
        for _ in 0..n {
            let order_id = format!("c{}-o{}", self.m.task, self.m.next_order);
            self.m.next_order += 1;
            let issue = Issue {
                order_id: order_id.clone(),
                seller_id: SellerId(70 + self.m.task),
                product_id: ProductId(self.rng.random_range(1..=3)),
                units: self.rng.random_range(1..=VOUCHER_UNITS_MAX),
                unit_price: vouch_engine::Fen::new(self.rng.random_range(0..100_000)),
                mobile: format!("13{:09}", self.rng.random_range(0..1_000_000_000u64)),
                validity: Validity::DaysFromIssue(30),
                code_digits: self.rng.random_range(6..=9),
            };
            self.m
                .vouchers
                .insert(order_id, VoucherModel::new(issue.clone()));
            batch.push(issue);
        }
        let dup = self
            .rng
            .random_bool(0.2)
            .then(|| self.rng.random_range(0..batch.len()));
        if let Some(i) = dup {
            batch.push(batch[i].clone());
        }
        let client = &self.client;
        let replies = if batch.len() == 1 && self.rng.random_bool(0.5) {
            let c = Command::Issue(batch[0].clone());
            until_killed(&mut self.killed, async {
                Ok(vec![client.command(c).await?])
            })
            .await
        } else {
            until_killed(&mut self.killed, client.issue_batch(batch.clone())).await
        };
        let Some(replies) = replies else {
            return Step::Gone;
        };
        let at = &self.at;
        assert_eq!(replies.len(), batch.len(), "{at} issue batch reply length");
        for (issue, reply) in batch.iter().zip(&replies).take(n) {
            let issued = expect_issued(at, reply);
            let v = self
                .m
                .vouchers
                .get_mut(&issue.order_id)
                .expect("just inserted");
            v.fold_issued(at, &issued);
            self.m.stats.issues_acked += 1;
        }
        if let Some(i) = dup {
            assert_eq!(
                replies[n].as_ref().map(Outcome::as_first),
                replies[i].as_ref().map(Outcome::as_first),
                "{at} issue repeated in one batch"
            );
        }
        for issue in batch.iter().take(n) {
            self.m.remember_voucher(&issue.order_id);
        }
        Step::Done
    }

    /// Redeems some units of the current code of up to BATCH_ITEMS_MAX
    /// vouchers, sometimes with one redemption repeated in the batch.
    async fn redeem_step(&mut self) -> Step {
        let eligible: Vec<String> = self
            .m
            .recent_vouchers
            .iter()
            .filter(|o| {
                matches!(self.m.vouchers.get(*o),
                    Some(v) if v.exists && v.pending.is_none() && v.units_remaining > 0)
            })
            .cloned()
            .collect::<BTreeSet<String>>()
            .into_iter()
            .collect();
        if eligible.is_empty() {
            return Step::Skipped;
        }
        let n = self.rng.random_range(1..=BATCH_ITEMS_MAX);
        let chosen: Vec<String> = eligible
            .choose_multiple(&mut self.rng, n)
            .cloned()
            .collect();
        let mut batch = Vec::with_capacity(chosen.len() + 1);
        for order in &chosen {
            let request_id = self.m.request_id();
            let v = self.m.vouchers.get_mut(order).expect("eligible");
            let units = self
                .rng
                .random_range(1..=v.units_remaining.min(REDEEM_UNITS_MAX));
            let r = Redeem {
                request_id,
                code: v.live_code.expect("units left, so a live code"),
                phone_last4: v.last4(),
                units,
                outlet_id: OutletId(30 + self.m.task),
                verifier_id: VerifierId(900 + self.m.task),
                pos_id: Some(self.m.pos_id),
            };
            v.pending = Some(Pending::Redeem(r.clone()));
            batch.push(r);
        }
        let n = batch.len();
        let dup = self
            .rng
            .random_bool(0.2)
            .then(|| self.rng.random_range(0..n));
        if let Some(i) = dup {
            batch.push(batch[i].clone());
        }
        let client = &self.client;
        let replies = if batch.len() == 1 && self.rng.random_bool(0.5) {
            let c = Command::Redeem(batch[0].clone());
            until_killed(&mut self.killed, async {
                Ok(vec![client.command(c).await?])
            })
            .await
        } else {
            until_killed(&mut self.killed, client.redeem_batch(batch.clone())).await
        };
        let Some(replies) = replies else {
            return Step::Gone;
        };
        let at = &self.at;
        assert_eq!(replies.len(), batch.len(), "{at} redeem batch reply length");
        for (order, (r, reply)) in chosen.iter().zip(batch.iter().zip(&replies)) {
            let d = expect_redeemed(at, r, reply);
            let v = self.m.vouchers.get_mut(order).expect("eligible");
            v.fold_redeemed(at, r, &d);
            self.m.stats.redemptions_acked += 1;
            self.m.remember_redemption(order, r.request_id);
        }
        if let Some(i) = dup {
            assert_eq!(
                replies[n].as_ref().map(Outcome::as_first),
                replies[i].as_ref().map(Outcome::as_first),
                "{at} redemption repeated in one batch"
            );
        }
        Step::Done
    }

    /// Reverses one of this POS's redemptions, by the redeemed code or the
    /// current one; sometimes sends the same reversal twice concurrently.
    async fn reverse_step(&mut self) -> Step {
        let eligible: Vec<(String, RequestId)> = self
            .m
            .recent_redemptions
            .iter()
            .filter(|(o, id)| match self.m.vouchers.get(o) {
                Some(v) if v.exists && v.pending.is_none() => v
                    .redemption_index(*id)
                    .map(|i| &v.redemptions[i])
                    .is_some_and(|r| r.reversal.is_none() && !r.reversal_dropped),
                _ => false,
            })
            .cloned()
            .collect();
        let Some((order, id)) = eligible.choose(&mut self.rng).cloned() else {
            return Step::Skipped;
        };
        let request_id = self.m.request_id();
        let by_live_code = self.rng.random_bool(0.5);
        let v = self.m.vouchers.get_mut(&order).expect("eligible");
        let r = &v.redemptions[v.redemption_index(id).expect("eligible")];
        let code = match v.live_code {
            Some(live) if by_live_code => live,
            _ => r.cmd.code,
        };
        let rv = Reverse {
            request_id,
            code,
            redemption: id,
            pos_id: Some(self.m.pos_id),
            verifier_id: None,
            seller_id: None,
        };
        v.pending = Some(Pending::Reverse(rv.clone()));
        let twice = self.rng.random_bool(0.2);
        let client = &self.client;
        let c = Command::Reverse(rv.clone());
        let replies = until_killed(&mut self.killed, async {
            if twice {
                let (a, b) = tokio::join!(client.command(c.clone()), client.command(c));
                Ok(vec![a?, b?])
            } else {
                Ok(vec![client.command(c).await?])
            }
        })
        .await;
        let Some(replies) = replies else {
            return Step::Gone;
        };
        let at = &self.at;
        let x = expect_reversed(at, &rv, &replies[0]);
        if twice {
            assert_eq!(
                replies[1].as_ref().map(Outcome::as_first),
                replies[0].as_ref().map(Outcome::as_first),
                "{at} reversal sent twice concurrently"
            );
        }
        let v = self.m.vouchers.get_mut(&order).expect("eligible");
        v.fold_reversed(at, &rv, &x);
        self.m.stats.reversals_acked += 1;
        Step::Done
    }

    /// Re-sends an acknowledged issue, redemption or reversal with the same
    /// id and content: the reply must be the original one, even when the
    /// code it names has since been replaced.
    async fn retry_step(&mut self) -> Step {
        let client = &self.client;
        let at = &self.at;
        let m = &self.m;
        match self.rng.random_range(0..3u32) {
            0 => {
                let eligible: Vec<&VoucherModel> = m
                    .recent_vouchers
                    .iter()
                    .filter_map(|o| m.vouchers.get(o))
                    .filter(|v| v.issued.is_some())
                    .collect();
                let Some(v) = eligible.choose(&mut self.rng) else {
                    return Step::Skipped;
                };
                let original = Ok(Outcome::Issued(v.issued.clone().expect("filtered")));
                let c = Command::Issue(v.issue.clone());
                let Some(reply) = until_killed(&mut self.killed, client.command(c)).await else {
                    return Step::Gone;
                };
                let reply = reply.map(|o| o.as_first());
                let original = original.map(|o: Outcome| o.as_first());
                assert_eq!(reply, original, "{at} retried issue {}", v.issue.order_id);
            }
            1 => {
                let eligible: Vec<&RedemptionModel> = m
                    .recent_redemptions
                    .iter()
                    .filter_map(|(o, id)| {
                        let v = m.vouchers.get(o)?;
                        v.redemption_index(*id).map(|i| &v.redemptions[i])
                    })
                    .filter(|r| r.reply.is_some())
                    .collect();
                let Some(r) = eligible.choose(&mut self.rng) else {
                    return Step::Skipped;
                };
                let original = Ok(Outcome::Redeemed(r.reply.clone().expect("filtered")));
                let reply = if self.rng.random_bool(0.5) {
                    let c = Command::Redeem(r.cmd.clone());
                    until_killed(&mut self.killed, client.command(c)).await
                } else {
                    let batch = vec![r.cmd.clone()];
                    until_killed(&mut self.killed, client.redeem_batch(batch))
                        .await
                        .map(|mut replies| {
                            assert_eq!(replies.len(), 1, "{at} batch of one");
                            replies.remove(0)
                        })
                };
                let Some(reply) = reply else {
                    return Step::Gone;
                };
                assert_retry_repeats(
                    &reply,
                    &original,
                    &format!("{at} retried redemption {:?}", r.cmd),
                );
            }
            _ => {
                let eligible: Vec<&ReversalModel> = m
                    .recent_redemptions
                    .iter()
                    .filter_map(|(o, id)| {
                        let v = m.vouchers.get(o)?;
                        v.redemption_index(*id)
                            .and_then(|i| v.redemptions[i].reversal.as_ref())
                    })
                    .filter(|x| x.reply.is_some())
                    .collect();
                let Some(x) = eligible.choose(&mut self.rng) else {
                    return Step::Skipped;
                };
                let original = Ok(Outcome::Reversed(x.reply.clone().expect("filtered")));
                let c = Command::Reverse(x.cmd.clone());
                let Some(reply) = until_killed(&mut self.killed, client.command(c)).await else {
                    return Step::Gone;
                };
                assert_retry_repeats(
                    &reply,
                    &original,
                    &format!("{at} retried reversal {:?}", x.cmd),
                );
            }
        }
        self.m.stats.retries_checked += 1;
        Step::Done
    }
}

// ---------------------------------------------------------------------------
// The audit.

struct Audit {
    shards: u32,
    /// Order id → (shard, state).
    vouchers: HashMap<String, (u32, VoucherState)>,
    /// Request id → (shard, entry).
    log: HashMap<RequestId, (u32, RedemptionEntry)>,
}

/// Reads every page of both audits of every shard.
async fn fetch_audit(client: &Client, at: &str) -> Audit {
    let shards = client.shards();
    assert!(shards >= 1, "{at} server announced no shards");
    let mut audit = Audit {
        shards,
        vouchers: HashMap::new(),
        log: HashMap::new(),
    };
    for shard in 0..shards {
        let mut from = 0;
        loop {
            let page = AuditVouchers {
                shard,
                from,
                limit: AUDIT_PAGE_ITEMS,
            };
            let reply = client
                .command(Command::AuditVouchers(page))
                .await
                .unwrap_or_else(|e| panic!("{at} audit vouchers: {e}"));
            let Ok(Outcome::Vouchers { items, next }) = reply else {
                panic!("{at} audit vouchers refused: {reply:?}");
            };
            for v in items {
                let order = v.order_id.clone();
                if let Some((s, old)) = audit.vouchers.insert(order.clone(), (shard, v)) {
                    panic!("{at} order {order} twice in the audit (shard {s}: {old:?})");
                }
            }
            match next {
                Some(n) => {
                    assert!(n > from, "{at} audit page does not advance");
                    from = n;
                }
                None => break,
            }
        }
        let mut from = 0;
        loop {
            let page = AuditRedemptions {
                shard,
                from,
                limit: AUDIT_PAGE_ITEMS,
            };
            let reply = client
                .command(Command::AuditRedemptions(page))
                .await
                .unwrap_or_else(|e| panic!("{at} audit redemptions: {e}"));
            let Ok(Outcome::Redemptions { items, next }) = reply else {
                panic!("{at} audit redemptions refused: {reply:?}");
            };
            for e in items {
                let id = e.request_id;
                if let Some((s, old)) = audit.log.insert(id, (shard, e)) {
                    panic!(
                        "{at} request {id:?} twice in the verification log (shard {s}: {old:?})"
                    );
                }
            }
            match next {
                Some(n) => {
                    assert!(n > from, "{at} audit page does not advance");
                    from = n;
                }
                None => break,
            }
        }
    }
    audit
}

/// The server's own invariants, from the audit alone: units add up, the
/// verification log explains the redeemed units, one live code per voucher
/// with units left and none otherwise, no code shared, a code lives in its
/// voucher's shard.
fn check_audit_invariants(audit: &Audit, at: &str) {
    let mut net: HashMap<&str, u64> = HashMap::new();
    for (id, (shard, e)) in &audit.log {
        let Some((vshard, _)) = audit.vouchers.get(&e.order_id) else {
            panic!("{at} log entry {id:?} names unknown order {}", e.order_id);
        };
        assert_eq!(
            shard, vshard,
            "{at} log entry {id:?} outside its voucher's shard"
        );
        assert!(e.units > 0, "{at} log entry {id:?} of zero units");
        if !e.reversed {
            *net.entry(e.order_id.as_str()).or_default() += u64::from(e.units);
        }
    }
    let mut live: HashMap<Code, &str> = HashMap::new();
    for (order, (shard, v)) in &audit.vouchers {
        assert_eq!(
            v.units_total,
            v.units_remaining + v.units_redeemed,
            "{at} {order}: total = remaining + redeemed ({v:?})"
        );
        assert_eq!(
            u64::from(v.units_redeemed),
            net.get(order.as_str()).copied().unwrap_or(0),
            "{at} {order}: redeemed units = non-reversed log entries ({v:?})"
        );
        assert_eq!(
            v.live_code.is_some(),
            v.units_remaining > 0,
            "{at} {order}: a live code exactly when units remain ({v:?})"
        );
        if let Some(code) = v.live_code {
            assert_eq!(
                code.value() % u64::from(audit.shards),
                u64::from(*shard),
                "{at} {order}: live code outside its voucher's shard"
            );
            if let Some(other) = live.insert(code, order) {
                panic!("{at} live code {code:?} shared by {order} and {other}");
            }
        }
    }
}

/// Every acknowledged fact of the model is in the audit, nothing outside the
/// model is, and vouchers without a pending operation match exactly.
fn check_model(models: &[ClientModel], audit: &Audit, at: &str) {
    let mut allowed_orders: HashSet<&str> = HashSet::new();
    let mut allowed_log: HashSet<RequestId> = HashSet::new();
    let mut retired: Vec<(Code, &str)> = Vec::new();
    for m in models {
        for order in &m.dropped_orders {
            assert!(
                !audit.vouchers.contains_key(order),
                "{at} {order}: issue found absent after an earlier crash has appeared"
            );
        }
        for id in &m.dropped_redemptions {
            assert!(
                !audit.log.contains_key(id),
                "{at} redemption {id:?} found absent after an earlier crash has appeared"
            );
        }
        for (order, v) in &m.vouchers {
            allowed_orders.insert(order);
            if let Some(Pending::Redeem(r)) = &v.pending {
                allowed_log.insert(r.request_id);
            }
            if !v.exists {
                continue;
            }
            let Some((_, a)) = audit.vouchers.get(order) else {
                panic!(
                    "{at} {order}: acknowledged issue of {} units is missing",
                    v.issue.units
                );
            };
            assert_eq!(a.units_total, v.issue.units, "{at} {order}: units total");
            if v.pending.is_none() {
                assert_eq!(
                    (a.units_remaining, a.live_code),
                    (v.units_remaining, v.live_code),
                    "{at} {order}: units left and live code (audit vs acknowledged)"
                );
            }
            let open_reversal = match &v.pending {
                Some(Pending::Reverse(rv)) => Some(rv.redemption),
                _ => None,
            };
            for r in &v.redemptions {
                let id = r.cmd.request_id;
                allowed_log.insert(id);
                retired.push((r.cmd.code, order));
                let Some((_, e)) = audit.log.get(&id) else {
                    panic!(
                        "{at} {order}: acknowledged redemption {id:?} of {} units is missing",
                        r.cmd.units
                    );
                };
                assert_eq!(
                    (&e.order_id, e.units, e.pos_id, e.outlet_id, e.verifier_id),
                    (
                        order,
                        r.cmd.units,
                        r.cmd.pos_id,
                        r.cmd.outlet_id,
                        r.cmd.verifier_id
                    ),
                    "{at} {order}: redemption {id:?} in the log"
                );
                if open_reversal != Some(id) {
                    assert_eq!(
                        e.reversed,
                        r.reversal.is_some(),
                        "{at} {order}: reversed flag of {id:?} (acknowledged reversal: {})",
                        r.reversal.is_some()
                    );
                }
            }
        }
    }
    for order in audit.vouchers.keys() {
        assert!(
            allowed_orders.contains(order.as_str()),
            "{at} voucher {order} in the audit was never sent"
        );
    }
    for id in audit.log.keys() {
        assert!(
            allowed_log.contains(id),
            "{at} redemption {id:?} in the log is neither acknowledged nor pending"
        );
    }
    // A redeemed code is retired and quarantined: it is nobody's live code.
    let live: HashMap<Code, &str> = audit
        .vouchers
        .iter()
        .filter_map(|(o, (_, v))| v.live_code.map(|c| (c, o.as_str())))
        .collect();
    for (code, order) in retired {
        if let Some(holder) = live.get(&code) {
            panic!("{at} {order}: redeemed code {code:?} is live again (held by {holder})");
        }
    }
}

#[derive(Default)]
struct Totals {
    unknown_at_kill: u64,
    resolved_by_retry: u64,
    found_applied: u64,
    found_absent: u64,
    vouchers_checked: u64,
    log_entries_checked: u64,
    lookups_checked: u64,
}

/// Resolves every pending operation from the audit. From now on the
/// outcome binds: applied stays applied, absent stays absent.
fn resolve_from_audit(models: &mut [ClientModel], audit: &Audit, at: &str, totals: &mut Totals) {
    for m in models.iter_mut() {
        let mut remove = Vec::new();
        for (order, v) in m.vouchers.iter_mut() {
            let Some(pending) = v.pending.take() else {
                continue;
            };
            let a = audit.vouchers.get(order).map(|(_, a)| a);
            match pending {
                Pending::Issue => match a {
                    Some(a) => {
                        assert_eq!(
                            (a.units_total, a.units_remaining, a.units_redeemed),
                            (v.issue.units, v.issue.units, 0),
                            "{at} {order}: unknown issue found applied"
                        );
                        v.exists = true;
                        v.units_remaining = a.units_remaining;
                        v.live_code = a.live_code;
                        totals.found_applied += 1;
                    }
                    None => {
                        remove.push(order.clone());
                        totals.found_absent += 1;
                    }
                },
                Pending::Redeem(r) => {
                    let a = a.unwrap_or_else(|| panic!("{at} {order}: voucher missing"));
                    match audit.log.get(&r.request_id) {
                        Some((_, e)) => {
                            assert!(
                                e.units == r.units && !e.reversed,
                                "{at} {order}: unknown redemption {r:?} found as {e:?}"
                            );
                            assert_eq!(
                                a.units_remaining + r.units,
                                v.units_remaining,
                                "{at} {order}: units left after an unknown redemption"
                            );
                            assert_ne!(a.live_code, Some(r.code), "{at} {order}: code kept");
                            v.units_remaining = a.units_remaining;
                            v.live_code = a.live_code;
                            m.recent_redemptions
                                .push_back((order.clone(), r.request_id));
                            v.redemptions.push(RedemptionModel {
                                cmd: r,
                                reply: None,
                                reversal: None,
                                reversal_dropped: false,
                            });
                            totals.found_applied += 1;
                        }
                        None => {
                            assert_eq!(
                                (a.units_remaining, a.live_code),
                                (v.units_remaining, Some(r.code)),
                                "{at} {order}: unknown redemption {r:?} absent from the log, \
                                 yet the voucher changed"
                            );
                            m.dropped_redemptions.insert(r.request_id);
                            totals.found_absent += 1;
                        }
                    }
                }
                Pending::Reverse(rv) => {
                    let a = a.unwrap_or_else(|| panic!("{at} {order}: voucher missing"));
                    let i = v
                        .redemption_index(rv.redemption)
                        .unwrap_or_else(|| panic!("{at} {order}: reversal of unknown"));
                    let (_, e) = audit
                        .log
                        .get(&rv.redemption)
                        .unwrap_or_else(|| panic!("{at} {order}: reversed redemption missing"));
                    let units = v.redemptions[i].cmd.units;
                    if e.reversed {
                        assert_eq!(
                            a.units_remaining,
                            v.units_remaining + units,
                            "{at} {order}: units left after an unknown reversal"
                        );
                        if v.live_code.is_some() {
                            assert_eq!(a.live_code, v.live_code, "{at} {order}: live code");
                        }
                        v.units_remaining = a.units_remaining;
                        v.live_code = a.live_code;
                        v.redemptions[i].reversal = Some(ReversalModel {
                            cmd: rv,
                            reply: None,
                        });
                        totals.found_applied += 1;
                    } else {
                        assert_eq!(
                            (a.units_remaining, a.live_code),
                            (v.units_remaining, v.live_code),
                            "{at} {order}: unknown reversal absent, yet the voucher changed"
                        );
                        v.redemptions[i].reversal_dropped = true;
                        totals.found_absent += 1;
                    }
                }
            }
        }
        for order in remove {
            m.vouchers.remove(&order);
            m.dropped_orders.insert(order);
        }
        while m.recent_redemptions.len() > WORKING_SET_MAX {
            m.recent_redemptions.pop_front();
        }
    }
}

/// Retries a few unknown operations with their original id. Whether or not
/// the first attempt was applied, the answer is a success that continues
/// the model exactly.
async fn retry_unknown(
    client: &Client,
    models: &mut [ClientModel],
    rng: &mut StdRng,
    at: &str,
    totals: &mut Totals,
) {
    let pending: Vec<(usize, String)> = models
        .iter()
        .enumerate()
        .flat_map(|(i, m)| {
            m.vouchers
                .iter()
                .filter(|(_, v)| v.pending.is_some())
                .map(move |(o, _)| (i, o.clone()))
        })
        .collect();
    let chosen: Vec<(usize, String)> = pending
        .choose_multiple(rng, UNKNOWN_RETRIES_PER_RESTART)
        .cloned()
        .collect();
    for (i, order) in chosen {
        let m = &mut models[i];
        let v = m.vouchers.get_mut(&order).expect("pending voucher");
        let pending = v.pending.clone().expect("pending");
        let command = match &pending {
            Pending::Issue => Command::Issue(v.issue.clone()),
            Pending::Redeem(r) => Command::Redeem(r.clone()),
            Pending::Reverse(rv) => Command::Reverse(rv.clone()),
        };
        let reply = client
            .command(command)
            .await
            .unwrap_or_else(|e| panic!("{at} retry of unknown {pending:?}: {e}"));
        let at = format!("{at} retry of unknown operation on {order}:");
        match &pending {
            Pending::Issue => {
                let issued = expect_issued(&at, &reply);
                v.fold_issued(&at, &issued);
                m.remember_voucher(&order);
            }
            Pending::Redeem(r) => {
                let d = expect_redeemed(&at, r, &reply);
                v.fold_redeemed(&at, r, &d);
                m.remember_redemption(&order, r.request_id);
            }
            Pending::Reverse(rv) => {
                let x = expect_reversed(&at, rv, &reply);
                v.fold_reversed(&at, rv, &x);
            }
        }
        totals.resolved_by_retry += 1;
    }
}

/// Every live code answers Lookup with the phone's last four digits and the
/// model's units.
async fn check_lookups(client: &Arc<Client>, models: &[ClientModel], at: &str) -> u64 {
    let mut todo: Vec<(String, Lookup, u32, u32)> = Vec::new();
    for m in models {
        for (order, v) in &m.vouchers {
            if let Some(code) = v.live_code {
                let look = Lookup {
                    code,
                    phone_last4: v.last4(),
                    verifier_id: None,
                    pos_id: None,
                };
                todo.push((order.clone(), look, v.units_remaining, v.issue.units));
            }
        }
    }
    let count = todo.len() as u64;
    while !todo.is_empty() {
        let chunk: Vec<_> = todo
            .drain(..todo.len().min(LOOKUPS_IN_FLIGHT_MAX))
            .collect();
        let mut set = JoinSet::new();
        for (order, look, remaining, total) in chunk {
            let client = client.clone();
            let at = at.to_string();
            set.spawn(async move {
                let reply = client
                    .command(Command::Lookup(look.clone()))
                    .await
                    .unwrap_or_else(|e| panic!("{at} lookup: {e}"));
                let Ok(Outcome::LookedUp(l)) = reply else {
                    panic!("{at} {order}: live code {look:?} refused: {reply:?}");
                };
                assert_eq!(
                    (l.order_id.as_str(), l.units_remaining, l.units_total),
                    (order.as_str(), remaining, total),
                    "{at} {order}: lookup of the live code"
                );
            });
        }
        while let Some(done) = set.join_next().await {
            if let Err(e) = done {
                std::panic::resume_unwind(e.into_panic());
            }
        }
    }
    count
}

/// After a restart: check the audit against the invariants and the model,
/// retry some unknown operations and check again, resolve the rest from the
/// audit, check exactly, and look every live code up.
async fn recover_and_check(
    client: &Arc<Client>,
    models: &mut [ClientModel],
    rng: &mut StdRng,
    at: &str,
    totals: &mut Totals,
) {
    // First what was acknowledged before the kill, untouched by retries.
    let audit = fetch_audit(client, at).await;
    check_audit_invariants(&audit, at);
    check_model(models, &audit, at);
    retry_unknown(client, models, rng, at, totals).await;
    let audit = fetch_audit(client, at).await;
    check_audit_invariants(&audit, at);
    check_model(models, &audit, at);
    resolve_from_audit(models, &audit, at, totals);
    check_model(models, &audit, at);
    for m in models.iter() {
        assert_eq!(
            m.pending_count(),
            0,
            "{at} every unknown operation resolved"
        );
    }
    totals.vouchers_checked = audit.vouchers.len() as u64;
    totals.log_entries_checked = audit.log.len() as u64;
    totals.lookups_checked += check_lookups(client, models, at).await;
}

// ---------------------------------------------------------------------------
// The test body.

fn target(server: &common::Server, transport: Transport) -> Target {
    match transport {
        Transport::Tcp => server.tcp_target(),
        Transport::Quic => server.quic_target(),
    }
}

fn seed() -> u64 {
    match std::env::var(SEED_ENV) {
        Ok(s) => s
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("{SEED_ENV}={s:?} is not a u64: {e}")),
        Err(_) => rand::random(),
    }
}

async fn acknowledged_operations_survive_sigkill(transport: Transport) {
    let seed = seed();
    println!("crash test {transport:?}: seed {seed} (replay with {SEED_ENV}={seed})");
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().expect("temp dir");
    let mut models: Vec<ClientModel> = (0..CLIENT_TASKS).map(ClientModel::new).collect();
    let mut totals = Totals::default();
    for cycle in 0..=KILL_CYCLES {
        let at = format!("[{transport:?} seed {seed}, after kill {cycle}]");
        let mut server = tokio::task::block_in_place(|| common::Server::start(dir.path()));
        let target = target(&server, transport);
        let checker = Arc::new(server.client(&target).await);
        if cycle > 0 {
            recover_and_check(&checker, &mut models, &mut rng, &at, &mut totals).await;
        }
        if cycle == KILL_CYCLES {
            break;
        }
        let at = format!("[{transport:?} seed {seed}, load {}]", cycle + 1);
        let (kill_tx, kill_rx) = watch::channel(false);
        let mut tasks = Vec::new();
        for m in models.drain(..) {
            let driver = Driver {
                client: server.client(&target).await,
                killed: kill_rx.clone(),
                rng: StdRng::seed_from_u64(rng.random()),
                at: format!("{at} client {}:", m.task),
                m,
            };
            tasks.push(tokio::spawn(driver.run()));
        }
        let delay_ms = rng
            .random_range(KILL_DELAY_MS_MIN.ln()..KILL_DELAY_MS_MAX.ln())
            .exp();
        tokio::time::sleep(Duration::from_micros((delay_ms * 1000.0) as u64)).await;
        let exited = server.child.try_wait().expect("poll the server");
        assert!(
            exited.is_none(),
            "{at} server exited on its own: {exited:?}"
        );
        tokio::task::block_in_place(|| server.kill());
        kill_tx.send(true).expect("client tasks listen");
        for task in tasks {
            let m = task
                .await
                .unwrap_or_else(|e| panic!("{at} client task failed: {e}"));
            totals.unknown_at_kill += m.pending_count() as u64;
            models.push(m);
        }
        drop(checker);
    }
    let (mut issues, mut redemptions, mut reversals, mut retries) = (0, 0, 0, 0);
    for m in &models {
        issues += m.stats.issues_acked;
        redemptions += m.stats.redemptions_acked;
        reversals += m.stats.reversals_acked;
        retries += m.stats.retries_checked;
    }
    assert!(issues > 0 && redemptions > 0, "the load did something");
    println!(
        "crash test {transport:?} seed {seed}: {KILL_CYCLES} SIGKILLs survived; acknowledged \
         {issues} issues, {redemptions} redemptions, {reversals} reversals, {retries} \
         idempotent retries; {} unknown at kill ({} resolved by retry, {} found applied, {} \
         found absent); final audit {} vouchers, {} log entries; {} lookups",
        totals.unknown_at_kill,
        totals.resolved_by_retry,
        totals.found_applied,
        totals.found_absent,
        totals.vouchers_checked,
        totals.log_entries_checked,
        totals.lookups_checked,
    );
}
