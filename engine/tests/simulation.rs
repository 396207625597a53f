//! A seeded simulation of the engine (TigerBeetle's VOPR in miniature):
//! a workload generator drives shards through the workers' own batch path
//! (`ShardBatch`, routing and request-id claims as the server does) with
//! issues, repeats, redemptions (right, wrong, retried, conflicting),
//! reversals and time jumps, against a small reference model of every
//! order's units and codes. Every reply is checked against the model; the
//! shards' invariants are checked as it goes; at the end the log records
//! are replayed into fresh shards, which must hold the same state.
//!
//!
//! The money goes all the way: what reversal windows make payable reaches
//! a catalog as shard messages (delivered late, out of turn between shards
//! and twice), settlement runs per seller and cutoff take it, and payouts
//! are confirmed or failed — against a model of every payable line.
//!
//! `VOUCH_SIM_SEED` reruns one seed; `VOUCH_SIM_STEPS` sets the steps
//! (default 100,000). A failure prints the seed and the step.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, VecDeque};
use vouch_engine::catalog::{
    Account, Actor, Catalog, CatalogCommand, CatalogOutcome, PayoutState, SellerKind,
};
use vouch_engine::command::*;
use vouch_engine::engine::route;
use vouch_engine::log::{CatalogBatch, CatalogEntry, LogRecord, ShardBatch};
use vouch_engine::message::{ShardMessage, ShardMessageBody};
use vouch_engine::shard::{Caller, ShardAccount, TICK_DEADLINES_MAX};
use vouch_engine::validity::Validity;
use vouch_engine::{
    Code, Command, EngineConfig, ErrorCode, Fen, Outcome, OutletId, ProductId, Reply, SellerId,
    Shard, VerifierId,
};

/// 2026-11-29 12:00:00 +08:00 in unix ms.
const START: i64 = 1_795_924_800_000;
const SHARDS: u32 = 4;
const DAY_MS: i64 = 86_400_000;
/// Simulated time stays within this span (below the 90-day quarantine).
const SPAN_MS: i64 = 60 * DAY_MS;
const MOBILE: &str = "13800001234";

/// Sellers of the simulated orders.
const SELLERS: [SellerId; 3] = [SellerId(10), SellerId(11), SellerId(12)];

struct Order {
    id: String,
    seller: SellerId,
    units: u32,
    price: Fen,
    first_code: Code,
    remaining: u32,
    live: Option<Code>,
    until_ms: i64,
    reversals: u32,
    /// Refunded or expired: no units, no code (ORD-12 unavailable).
    closed: bool,
    /// Ever redeemed (REF-3 is then refused).
    redeemed: bool,
    /// Refunded (its codes then answer `voucher_refunded` to staff).
    refunded: bool,
}

/// A refund transfer to a buyer in the model (MON-7).
struct Transfer {
    order: usize,
    shard: usize,
    n: u16,
    amount: i64,
    state: TransferState,
}

struct Red {
    command: Redeem,
    order: usize,
    shard: u32,
    at_ms: i64,
    reply: Redeemed,
    reversed: bool,
}

struct Sim {
    rng: ChaCha8Rng,
    now: i64,
    dt_max: i64,
    jump_max: i64,
    /// Steps between full checks (each reads every voucher).
    check_every: u64,
    shards: Vec<Shard>,
    claims: BTreeMap<RequestId, u32>,
    records: Vec<Vec<u8>>,
    /// Each shard's latest batch time: every window end at or before it
    /// has been applied (the worker ticks before each batch).
    ticked: Vec<i64>,
    /// Per shard, validity ends not yet handled: (end, order).
    expiries: Vec<std::collections::BTreeSet<(i64, usize)>>,
    /// Per shard, money that left escrow for sellers other than by
    /// redemptions (the expiry of unused units, refund shares and code
    /// fees), and per seller.
    released_value: Vec<i64>,
    released_by_seller: BTreeMap<SellerId, i64>,
    /// Per shard, refunded to buyers.
    refunded_value: Vec<i64>,
    /// Refund steps done: (command, reply), for retries.
    refunds: Vec<(Refund, Refunded)>,
    /// Every refund transfer, in the order made.
    transfers: Vec<Transfer>,
    /// Per shard, refunds the payment system confirmed (left the platform).
    confirmed_value: Vec<i64>,
    orders: Vec<Order>,
    /// Live code → order, to check uniqueness at once.
    live: BTreeMap<Code, usize>,
    reds: Vec<Red>,
    serial: u64,
    window_ms: i64,
    step: u64,
    /// Outcomes seen, by name: the workload must reach every one.
    seen: BTreeMap<&'static str, u64>,
    money: Money,
}

/// The catalog side of the simulation and its model.
struct Money {
    catalog: Catalog,
    records: Vec<Vec<u8>>,
    /// Messages made by shards, not yet delivered (the server's channel).
    in_flight: VecDeque<ShardMessage>,
    /// Model of the catalog's payable lines: (seller, amount, booked at,
    /// settlement that holds it).
    lines: Vec<(SellerId, Fen, i64, Option<u64>)>,
    /// Model of settlements: (seller, total, state).
    settlements: Vec<(SellerId, Fen, PayoutState)>,
    /// (seller, cutoff) → settlement id.
    runs: BTreeMap<(SellerId, i64), u64>,
    serial: u64,
}

fn fresh_catalog() -> (Catalog, Vec<CatalogEntry>) {
    let tz = jiff::tz::TimeZone::get(&config().time_zone).unwrap();
    let mut catalog = Catalog::new(tz);
    let mut entries = Vec::new();
    for (i, id) in SELLERS.into_iter().enumerate() {
        let entry = CatalogEntry {
            actor: Actor::Staff,
            request_id: RequestId {
                source: 1,
                serial: i as u64 + 1,
            },
            command: CatalogCommand::CreateSeller {
                id,
                kind: SellerKind::Mall,
                self_issuing: false,
                group_buying_operator: false,
            },
        };
        let mut batch = CatalogBatch::new(START);
        assert!(batch.command(&mut catalog, &entry, &mut Vec::new()).logged);
        entries.push(entry);
    }
    (catalog, entries)
}

fn config() -> EngineConfig {
    EngineConfig {
        shards: SHARDS,
        ..EngineConfig::default()
    }
}

fn fresh_shards() -> Vec<Shard> {
    (0..SHARDS)
        .map(|i| Shard::new(i, config(), [9; 32]).unwrap())
        .collect()
}

impl Sim {
    fn new(seed: u64, steps: u64) -> Sim {
        Sim {
            rng: ChaCha8Rng::seed_from_u64(seed),
            now: START,
            // Half the span in small steps, half in jumps (7 % of steps).
            dt_max: (SPAN_MS / steps.max(1) as i64).max(1),
            jump_max: (SPAN_MS * 100 / 7 / steps.max(1) as i64).max(1),
            check_every: (steps / 100).max(5_000),
            shards: fresh_shards(),
            claims: BTreeMap::new(),
            records: Vec::new(),
            ticked: vec![START; SHARDS as usize],
            expiries: vec![Default::default(); SHARDS as usize],
            released_value: vec![0; SHARDS as usize],
            released_by_seller: BTreeMap::new(),
            refunded_value: vec![0; SHARDS as usize],
            refunds: Vec::new(),
            transfers: Vec::new(),
            confirmed_value: vec![0; SHARDS as usize],
            orders: Vec::new(),
            live: BTreeMap::new(),
            reds: Vec::new(),
            serial: 0,
            window_ms: config().reversal_window_ms,
            step: 0,
            seen: BTreeMap::new(),
            money: Money {
                catalog: fresh_catalog().0,
                records: Vec::new(),
                in_flight: VecDeque::new(),
                lines: Vec::new(),
                settlements: Vec::new(),
                runs: BTreeMap::new(),
                serial: 100,
            },
        }
    }

    /// Routes and applies one command as the server does, logging what
    /// changed state as its own batch record.
    fn apply(&mut self, command: &Command) -> Reply {
        let rid = command.request_id();
        let index = rid
            .and_then(|r| self.claims.get(&r).copied())
            .unwrap_or_else(|| route(command, SHARDS));
        let mut batch = ShardBatch::new(self.now);
        // As the worker: due deadlines first (MON-6).
        let ticked = batch.tick(&mut self.shards[index as usize]);
        assert!(ticked < TICK_DEADLINES_MAX, "one tick did all");
        self.ticked[index as usize] = self.now;
        self.expire_model(index as usize);
        let shard = &mut self.shards[index as usize];
        let applied = batch.command(shard, Caller::Staff, command, &mut Vec::new());
        if let Some(r) = rid.filter(|r| shard.knows_request(r)) {
            self.claims.entry(r).or_insert(index);
        }
        if let Some(record) = batch.record(index) {
            self.records.push(record.encode());
        }
        self.money.in_flight.extend(shard.take_messages());
        applied.reply
    }

    /// REF-6 / SET-1 end in the model: at the shard's tick every order
    /// whose validity ended loses its unused units, whose money goes to
    /// the seller (the simulated product has no expiry refund).
    fn expire_model(&mut self, shard: usize) {
        while let Some(&(until, o)) = self.expiries[shard].first() {
            if until > self.now {
                break;
            }
            self.expiries[shard].pop_first();
            let order = &mut self.orders[o];
            if order.closed || order.remaining == 0 {
                continue;
            }
            let value = order.price.times(order.remaining).unwrap().fen();
            self.released_value[shard] += value;
            *self.released_by_seller.entry(order.seller).or_default() += value;
            order.remaining = 0;
            order.closed = true;
            if let Some(code) = order.live.take() {
                self.live.remove(&code);
            }
            self.saw("expired by the tick");
        }
    }

    /// REF-1, REF-3, REF-4 against the model (the simulated product has
    /// the default terms: automatic refund at 100 %).
    fn refund(&mut self, o: usize) {
        let order = &self.orders[o];
        let g = order.price.times(order.remaining).unwrap();
        let action = match self.rng.random_range(0..10) {
            0..=4 => RefundAction::Automatic,
            5..=6 => RefundAction::NotDelivered,
            _ => RefundAction::Agreed {
                // Up to a fifth above what is refundable.
                amount: Fen::new(self.rng.random_range(0..=g.fen() + g.fen() / 5 + 1)),
            },
        };
        let fee_of = |g: Fen| Fen::new(100).min(g);
        let closed = order.closed || order.until_ms <= self.now || order.remaining == 0;
        let expected: Result<(Fen, Fen, Fen), ErrorCode> = match &action {
            _ if closed => Err(ErrorCode::RefundNotAllowed),
            RefundAction::Automatic if g == fee_of(g) => Err(ErrorCode::RefundAmountZero),
            RefundAction::Automatic => Ok((g - fee_of(g), fee_of(g), Fen::ZERO)),
            RefundAction::NotDelivered if order.redeemed => Err(ErrorCode::RefundNotAllowed),
            RefundAction::NotDelivered if g.is_zero() => Err(ErrorCode::RefundAmountZero),
            RefundAction::NotDelivered => Ok((g, Fen::ZERO, Fen::ZERO)),
            RefundAction::Agreed { amount } if amount.is_zero() => Err(ErrorCode::RefundAmountZero),
            RefundAction::Agreed { amount } if *amount > g => Err(ErrorCode::RefundAboveRefundable),
            RefundAction::Agreed { amount } => Ok((*amount, Fen::ZERO, g - *amount)),
            _ => unreachable!("the simulation takes no REF-2 steps"),
        };
        let command = Refund {
            request_id: self.next_rid(),
            order_id: self.orders[o].id.clone(),
            action,
            seller_id: None,
        };
        let reply = self.apply(&Command::Refund(command.clone()));
        let (buyer, fee, rest) = match (expected, reply) {
            (Err(code), reply) => {
                assert_eq!(
                    reply.map_err(|r| r.code).err(),
                    Some(code),
                    "REF: {command:?}"
                );
                self.saw(code.name());
                return;
            }
            (Ok(want), Ok(Outcome::Refunded(r))) => {
                assert_eq!(
                    (r.buyer_amount, r.code_fee, r.seller_amount),
                    want,
                    "REF: {command:?}"
                );
                if let Some(n) = r.transfer {
                    assert!(
                        r.buyer_amount > Fen::ZERO,
                        "MON-7: a transfer carries money"
                    );
                    let shard = route(&Command::Refund(command.clone()), SHARDS) as usize;
                    self.transfers.push(Transfer {
                        order: o,
                        shard,
                        n,
                        amount: r.buyer_amount.fen(),
                        state: TransferState::InTransit,
                    });
                }
                self.refunds.push((command, r));
                want
            }
            (Ok(_), other) => panic!("REF: a refund succeeds, got {other:?}"),
        };
        let order = &mut self.orders[o];
        let shard = (order.first_code.value() % u64::from(SHARDS)) as usize;
        self.refunded_value[shard] += buyer.fen();
        self.released_value[shard] += (fee + rest).fen();
        *self.released_by_seller.entry(order.seller).or_default() += (fee + rest).fen();
        order.remaining = 0;
        order.closed = true;
        order.refunded = true;
        if let Some(code) = order.live.take() {
            self.live.remove(&code);
        }
        self.saw("refunded");
    }

    /// MON-7 against the model: the payment system confirms or fails a
    /// transfer, or a failed one is retried as a new transfer; a step that
    /// does not fit the transfer's state is refused and changes nothing.
    fn transfer_step(&mut self) {
        let k = self.rng.random_range(0..self.transfers.len());
        let action = match self.rng.random_range(0..4) {
            0 | 1 => TransferAction::Confirm,
            2 => TransferAction::Fail,
            _ => TransferAction::Retry,
        };
        let t = &self.transfers[k];
        let expected = match (action, t.state) {
            (TransferAction::Retry, TransferState::Failed) => Ok(TransferState::InTransit),
            (TransferAction::Retry, _) => Err(ErrorCode::RefundNotFailed),
            (_, TransferState::InTransit) if action == TransferAction::Confirm => {
                Ok(TransferState::Confirmed)
            }
            (_, TransferState::InTransit) => Ok(TransferState::Failed),
            _ => Err(ErrorCode::RefundNotInTransit),
        };
        let (order, shard, amount, n) = (t.order, t.shard, t.amount, t.n);
        let command = Command::TransferStep(TransferStep {
            request_id: self.next_rid(),
            order_id: self.orders[order].id.clone(),
            transfer: n,
            action,
        });
        let view = match (expected, self.apply(&command)) {
            (Err(code), reply) => {
                assert_eq!(
                    reply.map_err(|r| r.code).err(),
                    Some(code),
                    "MON-7: {command:?}"
                );
                self.saw(code.name());
                return;
            }
            (Ok(state), Ok(Outcome::Transfer(v))) => {
                assert_eq!(
                    (v.state, v.amount.fen()),
                    (state, amount),
                    "MON-7: {command:?}"
                );
                v
            }
            (Ok(_), other) => panic!("MON-7: {command:?} answers {other:?}"),
        };
        match action {
            TransferAction::Confirm => self.confirmed_value[shard] += amount,
            TransferAction::Fail => {}
            TransferAction::Retry => {
                assert_eq!(view.retry_of, Some(n));
                self.transfers.push(Transfer {
                    order,
                    shard,
                    n: view.transfer,
                    amount,
                    state: TransferState::InTransit,
                });
            }
        }
        self.transfers[k].state = match action {
            TransferAction::Retry => TransferState::Retried,
            _ => view.state,
        };
        self.saw(match action {
            TransferAction::Confirm => "refund transfer confirmed",
            TransferAction::Fail => "refund transfer failed",
            TransferAction::Retry => "refund transfer retried",
        });
    }

    /// Invariant 4 for refunds: a retry answers the original reply and
    /// moves nothing.
    fn refund_again(&mut self) {
        let k = self.rng.random_range(0..self.refunds.len());
        let (command, first) = self.refunds[k].clone();
        let Ok(Outcome::Refunded(r)) = self.apply(&Command::Refund(command)) else {
            panic!("a refund retry answers")
        };
        assert!(r.replayed);
        assert_eq!(
            Refunded {
                replayed: false,
                ..r
            },
            first
        );
        self.saw("refund retried");
    }

    /// ORD-6 against the model: only later, never after the validity end.
    fn extend(&mut self, o: usize) {
        let order = &self.orders[o];
        let later = self.rng.random_bool(0.8);
        let until = if later {
            order.until_ms + self.rng.random_range(1..=10 * DAY_MS)
        } else {
            order.until_ms - self.rng.random_range(0..=DAY_MS)
        };
        let ok = later && !order.closed && order.until_ms > self.now;
        let order_id = order.id.clone();
        let command = Extend {
            request_id: self.next_rid(),
            order_id,
            valid_until_ms: until,
            seller_id: None,
        };
        let reply = self.apply(&Command::Extend(command));
        if !ok {
            assert_eq!(
                reply.map_err(|r| r.code).err(),
                Some(ErrorCode::ValidityNotExtended)
            );
            self.saw("validity_not_extended");
            return;
        }
        let Ok(Outcome::Extended(x)) = reply else {
            panic!("ORD-6: a later end is taken, got {reply:?}")
        };
        assert_eq!(x.valid_until_ms, until);
        let order = &mut self.orders[o];
        let shard = (order.first_code.value() % u64::from(SHARDS)) as usize;
        self.expiries[shard].remove(&(order.until_ms, o));
        self.expiries[shard].insert((until, o));
        order.until_ms = until;
        self.saw("extended");
    }

    fn saw(&mut self, what: &'static str) {
        *self.seen.entry(what).or_default() += 1;
    }

    fn issue_cmd(order: &Order) -> Command {
        Command::Issue(Issue {
            order_id: order.id.clone(),
            seller_id: order.seller,
            product_id: ProductId(20),
            units: order.units,
            unit_price: order.price,
            mobile: MOBILE.into(),
            validity: Validity::DaysFromIssue(30),
            code_digits: 8,
        })
    }

    fn issue_new(&mut self) {
        let mut order = Order {
            id: format!("o-{}", self.orders.len()),
            seller: SELLERS[self.rng.random_range(0..SELLERS.len())],
            units: self.rng.random_range(1..=5),
            // Some below the 1.00 code fee (REF-1's refund_amount_zero).
            price: Fen::new(if self.rng.random_bool(0.1) {
                self.rng.random_range(0..=150)
            } else {
                self.rng.random_range(0..50_000)
            }),
            first_code: Code::new(8, 0).unwrap(),
            remaining: 0,
            live: None,
            until_ms: 0,
            reversals: 0,
            closed: false,
            redeemed: false,
            refunded: false,
        };
        let Ok(Outcome::Issued(i)) = self.apply(&Self::issue_cmd(&order)) else {
            panic!("a new order is issued")
        };
        assert!(!i.replayed && i.units == order.units && i.units_remaining == order.units);
        assert_eq!(i.live_code, Some(i.code));
        assert!(
            self.live.insert(i.code, self.orders.len()).is_none(),
            "ORD-3: a live code is unique"
        );
        assert_eq!(
            route(&lookup(i.code, "1234"), SHARDS),
            i.code.value() as u32 % SHARDS
        );
        order.first_code = i.code;
        order.remaining = order.units;
        order.live = Some(i.code);
        order.until_ms = i.valid_until_ms;
        assert!(order.until_ms > self.now + 29 * DAY_MS);
        let shard = (i.code.value() % u64::from(SHARDS)) as usize;
        self.expiries[shard].insert((order.until_ms, self.orders.len()));
        self.orders.push(order);
        self.saw("issued");
    }

    fn issue_again(&mut self, o: usize) {
        let reply = self.apply(&Self::issue_cmd(&self.orders[o]));
        let order = &self.orders[o];
        let Ok(Outcome::Issued(i)) = reply else {
            panic!("ORD-1: a repeat answers, got {reply:?}")
        };
        assert!(i.replayed, "ORD-1: marked as a repeat");
        assert_eq!(
            (i.code, i.live_code, i.units_remaining),
            (order.first_code, order.live, order.remaining)
        );
        self.saw("issue repeated");
    }

    fn next_rid(&mut self) -> RequestId {
        self.serial += 1;
        RequestId {
            source: 77,
            serial: self.serial,
        }
    }

    fn redeem(&mut self, o: usize, wrong_digits: bool, extra: bool) {
        let request_id = self.next_rid();
        let order = &self.orders[o];
        let Some(code) = order.live else { return };
        let remaining = order.remaining;
        let expired = self.now >= order.until_ms;
        let units = if extra {
            remaining + 1
        } else {
            self.rng.random_range(1..=remaining)
        };
        let command = Redeem {
            request_id,
            code,
            phone_last4: if wrong_digits { "9999" } else { "1234" }.into(),
            units,
            outlet_id: OutletId(3),
            verifier_id: VerifierId(self.rng.random_range(1..=3)),
            pos_id: None,
        };
        let reply = self.apply(&Command::Redeem(command.clone()));
        if wrong_digits || expired {
            assert_eq!(
                reply.map_err(|r| r.code).err(),
                Some(ErrorCode::CodeInvalid)
            );
            self.saw(if expired { "expired" } else { "wrong digits" });
            return;
        }
        if extra {
            assert_eq!(
                reply.map_err(|r| r.code).err(),
                Some(ErrorCode::UnitsInsufficient)
            );
            self.saw("too many units");
            return;
        }
        let Ok(Outcome::Redeemed(r)) = reply else {
            panic!("ORD-7: a valid redemption succeeds, got {reply:?}")
        };
        let left = remaining - units;
        assert_eq!(
            (r.units, r.units_remaining, r.replayed),
            (units, left, false)
        );
        assert_eq!(
            r.new_code.is_some(),
            left > 0,
            "ORD-8: the rest get a fresh code"
        );
        assert_ne!(r.new_code, Some(code), "ORD-8: the old code dies");
        self.live.remove(&code);
        if let Some(new) = r.new_code {
            assert!(self.live.insert(new, o).is_none(), "ORD-3: unique");
        }
        let order = &mut self.orders[o];
        order.remaining = left;
        order.live = r.new_code;
        order.redeemed = true;
        self.saw(if left > 0 {
            "redeemed in part"
        } else {
            "redeemed in full"
        });
        let shard = route(&Command::Redeem(command.clone()), SHARDS);
        self.reds.push(Red {
            command,
            order: o,
            shard,
            at_ms: self.now,
            reply: r,
            reversed: false,
        });
    }

    fn redeem_dead_code(&mut self, k: usize) {
        let red = &self.reds[k];
        let old = red.command.code;
        // Still live when the reversal gave the units back onto it, or when
        // another order drew it (not within the 90-day quarantine).
        if self.live.contains_key(&old) {
            return;
        }
        let mut command = red.command.clone();
        // ORD-7: staff (the simulation's caller) are told a refunded
        // voucher's code is refunded; any other dead code is invalid.
        let expected = if self.orders[red.order].refunded {
            ErrorCode::VoucherRefunded
        } else {
            ErrorCode::CodeInvalid
        };
        command.units = 1;
        command.request_id = self.next_rid();
        let reply = self.apply(&Command::Redeem(command));
        assert_eq!(
            reply.map_err(|r| r.code).err(),
            Some(expected),
            "a replaced code redeems nothing"
        );
        self.saw("dead code");
    }

    fn retry(&mut self, k: usize, conflicting: bool) {
        let red = &self.reds[k];
        let mut command = red.command.clone();
        if conflicting {
            command.units += 1;
        }
        let expected = red.reply.clone();
        let reply = self.apply(&Command::Redeem(command));
        if conflicting {
            assert_eq!(
                reply.map_err(|r| r.code).err(),
                Some(ErrorCode::RequestConflict)
            );
            self.saw("conflict");
            return;
        }
        let Ok(Outcome::Redeemed(r)) = reply else {
            panic!("invariant 4: a retry answers, got {reply:?}")
        };
        assert!(r.replayed);
        assert_eq!(
            (r.units, r.units_remaining),
            (expected.units, expected.units_remaining)
        );
        self.saw("retried");
    }

    fn reverse(&mut self, k: usize) {
        let request_id = self.next_rid();
        let red = &self.reds[k];
        let order = &self.orders[red.order];
        let command = Reverse {
            request_id,
            code: red.command.code,
            redemption: red.command.request_id,
            pos_id: None,
            verifier_id: Some(red.command.verifier_id),
            seller_id: None,
        };
        let window_open = self.now < red.at_ms + self.window_ms;
        let expected_error = if red.reversed {
            Some(ErrorCode::AlreadyReversed)
        } else if order.closed || order.until_ms <= self.now {
            // Refunded, or the validity ended: units never come back.
            Some(ErrorCode::ReversalNotPermitted)
        } else if !window_open {
            Some(ErrorCode::ReversalWindowClosed)
        } else if order.reversals >= vouch_engine::limits::VOUCHER_REVERSALS_MAX as u32 {
            Some(ErrorCode::ReversalNotPermitted)
        } else {
            None
        };
        let (units, live_before, o) = (red.command.units, order.live, red.order);
        let reply = self.apply(&Command::Reverse(command));
        if let Some(code) = expected_error {
            assert_eq!(reply.map_err(|r| r.code).err(), Some(code));
            self.saw(code.name());
            return;
        }
        let Ok(Outcome::Reversed(r)) = reply else {
            panic!("a reversal inside the window succeeds, got {reply:?}")
        };
        match live_before {
            Some(live) => assert_eq!(r.live_code, live, "units go back onto the live code"),
            None => assert!(self.live.insert(r.live_code, o).is_none(), "ORD-3: unique"),
        }
        let order = &mut self.orders[o];
        assert_eq!(
            (r.units, r.units_remaining),
            (units, order.remaining + units)
        );
        order.remaining += units;
        order.live = Some(r.live_code);
        order.reversals += 1;
        self.reds[k].reversed = true;
        self.saw(if live_before.is_some() {
            "reversed"
        } else {
            "reversed onto a new code"
        });
    }

    /// Delivers some messages in flight, a random shard's first each
    /// time (shards race each other; one shard's stay in order), and now
    /// and then one already applied again, which must change nothing.
    fn deliver(&mut self) {
        let mut batch = CatalogBatch::new(self.now);
        for _ in 0..self.rng.random_range(1..=8) {
            let shard = self.rng.random_range(0..SHARDS);
            let Some(at) = self.money.in_flight.iter().position(|m| m.shard == shard) else {
                continue;
            };
            let m = self.money.in_flight.remove(at).unwrap();
            assert_eq!(
                batch.message(&mut self.money.catalog, &m, &mut Vec::new()),
                Ok(true)
            );
            let ShardMessageBody::Payable { seller, amount, .. } = m.body else {
                panic!("the simulation takes no after-sale refunds")
            };
            self.money.lines.push((seller, amount, self.now, None));
            if self.rng.random_bool(0.2) {
                assert_eq!(
                    batch.message(&mut self.money.catalog, &m, &mut Vec::new()),
                    Ok(false)
                );
                self.saw("message repeated");
            }
            self.saw("message applied");
        }
        if let Some(record) = batch.record() {
            self.money.records.push(record.encode());
        }
    }

    fn catalog_cmd(&mut self, actor: Actor, command: CatalogCommand) -> CatalogOutcome {
        self.money.serial += 1;
        let entry = CatalogEntry {
            actor,
            request_id: RequestId {
                source: 1,
                serial: self.money.serial,
            },
            command,
        };
        let mut batch = CatalogBatch::new(self.now);
        let applied = batch.command(&mut self.money.catalog, &entry, &mut Vec::new());
        if let Some(record) = batch.record() {
            self.money.records.push(record.encode());
        }
        applied.reply.unwrap_or_else(|e| panic!("{e}"))
    }

    /// SET-3 against the model: a run takes the seller's open lines
    /// booked before the cutoff; the same seller and cutoff again is the
    /// same settlement.
    fn settle(&mut self) {
        let seller = SELLERS[self.rng.random_range(0..SELLERS.len())];
        let earlier = self.money.runs.keys().rfind(|(s, _)| *s == seller).copied();
        let lines = self.money.lines.len();
        let cutoff_ms = match earlier {
            Some((_, c)) if self.rng.random_bool(0.2) => c,
            // Exactly a line's booking instant: that line stays out.
            _ if lines > 0 && self.rng.random_bool(0.3) => {
                self.money.lines[self.rng.random_range(0..lines)].2
            }
            _ => self.now - self.rng.random_range(0..2 * DAY_MS),
        };
        let known = self.money.runs.get(&(seller, cutoff_ms)).copied();
        let s = match self.catalog_cmd(
            Actor::Staff,
            CatalogCommand::RunSettlement { seller, cutoff_ms },
        ) {
            CatalogOutcome::Settlement(s) => s,
            other => panic!("{other:?}"),
        };
        if let Some(id) = known {
            let (_, total, state) = self.money.settlements[(id - 1) as usize];
            assert_eq!(
                (s.id, s.total, s.state),
                (id, total, state),
                "SET-3: a rerun is the same"
            );
            self.saw("settlement rerun");
            return;
        }
        let id = self.money.settlements.len() as u64 + 1;
        let mut total = Fen::ZERO;
        for line in self.money.lines.iter_mut() {
            if line.0 == seller && line.2 < cutoff_ms && line.3.is_none() {
                line.3 = Some(id);
                total += line.1;
            }
        }
        let state = if total.is_zero() {
            PayoutState::NothingToPay
        } else {
            PayoutState::InTransit
        };
        assert_eq!(
            (s.id, s.total, s.state),
            (id, total, state),
            "SET-3: the run takes the open lines before its cutoff"
        );
        self.money.settlements.push((seller, total, state));
        self.money.runs.insert((seller, cutoff_ms), id);
        self.saw(if total.is_zero() {
            "nothing to pay"
        } else {
            "payout sent"
        });
    }

    /// MON-7 against the model: confirm or fail a settlement's payout.
    fn decide_payout(&mut self) {
        let n = self.money.settlements.len() as u64;
        if n == 0 {
            return;
        }
        let id = self.rng.random_range(1..=n);
        let confirm = self.rng.random_bool(0.7);
        let command = if confirm {
            CatalogCommand::ConfirmPayout { settlement: id }
        } else {
            CatalogCommand::FailPayout { settlement: id }
        };
        let state = self.money.settlements[(id - 1) as usize].2;
        if state != PayoutState::InTransit {
            let refused = self.money.catalog.apply(
                self.now,
                Actor::PaymentSystem,
                RequestId {
                    source: 2,
                    serial: self.step,
                },
                &command,
                &mut Vec::new(),
            );
            assert_eq!(
                refused.map_err(|r| r.code).err(),
                Some(ErrorCode::PayoutNotInTransit)
            );
            self.saw("payout_not_in_transit");
            return;
        }
        let CatalogOutcome::Settlement(s) = self.catalog_cmd(Actor::PaymentSystem, command) else {
            panic!("a payout in transit is decided")
        };
        let next = if confirm {
            PayoutState::Confirmed
        } else {
            PayoutState::Failed
        };
        assert_eq!(s.state, next);
        self.money.settlements[(id - 1) as usize].2 = next;
        if !confirm {
            for line in self.money.lines.iter_mut().filter(|l| l.3 == Some(id)) {
                line.3 = None;
            }
        }
        self.saw(if confirm {
            "payout confirmed"
        } else {
            "payout failed"
        });
    }

    /// MON-5 across the state machines, per seller: what the shards made
    /// payable = in flight + payable in the catalog + in transit + paid
    /// out; and the catalog's own books.
    fn check_settlement(&self) {
        self.money.catalog.check_invariants().unwrap();
        let mut handed: BTreeMap<SellerId, i64> = BTreeMap::new();
        for r in self
            .reds
            .iter()
            .filter(|r| !r.reversed && r.at_ms + self.window_ms <= self.ticked[r.shard as usize])
        {
            let o = &self.orders[r.order];
            *handed.entry(o.seller).or_default() += o.price.times(r.command.units).unwrap().fen();
        }
        for (seller, value) in &self.released_by_seller {
            *handed.entry(*seller).or_default() += value;
        }
        for seller in SELLERS {
            let in_flight: i64 = self
                .money
                .in_flight
                .iter()
                .map(|m| match m.body {
                    ShardMessageBody::Payable {
                        seller: s, amount, ..
                    } if s == seller => amount.fen(),
                    _ => 0,
                })
                .sum();
            let paid: i64 = self
                .money
                .settlements
                .iter()
                .filter(|(s, _, st)| *s == seller && *st == PayoutState::Confirmed)
                .map(|(_, t, _)| t.fen())
                .sum();
            let c = &self.money.catalog;
            let booked = c.balance(Account::Payable(seller)).fen()
                + c.balance(Account::PayoutInTransit(seller)).fen();
            assert_eq!(
                handed.get(&seller).copied().unwrap_or(0),
                in_flight + booked + paid,
                "MON-5: seller {seller}'s money"
            );
            let open: i64 = self
                .money
                .lines
                .iter()
                .filter(|l| l.0 == seller && l.3.is_none())
                .map(|l| l.1.fen())
                .sum();
            assert_eq!(
                c.balance(Account::Payable(seller)).fen(),
                open,
                "SET-3: seller {seller}'s open lines"
            );
        }
    }

    fn one_step(&mut self) {
        self.step += 1;
        self.now += self.rng.random_range(0..=self.dt_max);
        let n = self.orders.len();
        let k = self.reds.len();
        let pick = self.rng.random_range(0..109);
        let o = self.rng.random_range(0..n.max(1));
        let r = self.rng.random_range(0..k.max(1));
        // Recent redemptions mostly, so that many reversals fall inside the
        // window.
        let recent = if self.rng.random_bool(0.7) {
            k.saturating_sub(1 + self.rng.random_range(0..k.clamp(1, 20)))
        } else {
            r
        };
        match pick {
            0..=24 => self.issue_new(),
            25..=29 if n > 0 => self.issue_again(o),
            30..=59 if n > 0 => self.redeem(o, false, false),
            60..=62 if n > 0 => self.redeem(o, true, false),
            63..=65 if n > 0 => self.redeem(o, false, true),
            66..=70 if k > 0 => self.redeem_dead_code(r),
            71..=78 if k > 0 => self.retry(r, false),
            79..=80 if k > 0 => self.retry(r, true),
            81..=92 if k > 0 => self.reverse(recent),
            93 if n > 0 => self.refund(o),
            94 if !self.refunds.is_empty() => self.refund_again(),
            95..=96 => self.deliver(),
            97 => self.settle(),
            98 => self.decide_payout(),
            99 if n > 0 => self.extend(o),
            100..=101 if !self.transfers.is_empty() => self.transfer_step(),
            _ => {
                let jump = self.rng.random_range(0..=self.jump_max);
                self.now += jump;
            }
        }
        if self.step.is_multiple_of(self.check_every) {
            self.check();
        }
    }

    /// The shards' invariants, and the model's units against theirs.
    fn check(&mut self) {
        for s in &self.shards {
            s.check_invariants();
        }
        let total: u64 = self.orders.iter().map(|o| u64::from(o.remaining)).sum();
        let engine: u64 = audit(&mut self.shards, self.now)
            .0
            .iter()
            .map(|v| u64::from(v.units_remaining))
            .sum();
        assert_eq!(engine, total, "units remaining, engine vs model");
        self.check_money();
        self.check_settlement();
    }

    /// MON-5 and SET-1 against the model, per shard: buyers paid every
    /// order's price; redeemed money is pending inside its window and the
    /// seller's after it (once a batch ran past it); the rest is escrow.
    fn check_money(&self) {
        let zero = || vec![0i64; SHARDS as usize];
        let (mut paid, mut pending, mut payable) = (zero(), zero(), zero());
        for o in &self.orders {
            let shard = route(&lookup(o.first_code, "1234"), SHARDS) as usize;
            paid[shard] += o.price.times(o.units).unwrap().fen();
        }
        for r in self.reds.iter().filter(|r| !r.reversed) {
            let amount = self.orders[r.order]
                .price
                .times(r.command.units)
                .unwrap()
                .fen();
            let s = r.shard as usize;
            if r.at_ms + self.window_ms <= self.ticked[s] {
                payable[s] += amount;
            } else {
                pending[s] += amount;
            }
        }
        for (s, value) in self.released_value.iter().enumerate() {
            payable[s] += value;
        }
        let (mut in_transit, mut failed) = (zero(), zero());
        for t in &self.transfers {
            match t.state {
                TransferState::InTransit => in_transit[t.shard] += t.amount,
                TransferState::Failed => failed[t.shard] += t.amount,
                _ => {}
            }
        }
        for (i, shard) in self.shards.iter().enumerate() {
            let balance = |a| shard.ledger().balance(a).fen();
            assert_eq!(
                balance(ShardAccount::Refunds),
                in_transit[i],
                "shard {i} refunds in transit"
            );
            assert_eq!(
                balance(ShardAccount::RefundsFailed),
                failed[i],
                "shard {i} refunds failed"
            );
            assert_eq!(
                in_transit[i] + failed[i] + self.confirmed_value[i],
                self.refunded_value[i],
                "shard {i}: every refund is in transit, failed or confirmed"
            );
        }
        for (i, shard) in self.shards.iter().enumerate() {
            let l = shard.ledger();
            let balance = |a| l.balance(a).fen();
            assert_eq!(
                balance(ShardAccount::Buyers),
                self.confirmed_value[i] - paid[i],
                "shard {i} buyers"
            );
            assert_eq!(
                balance(ShardAccount::Pending),
                pending[i],
                "shard {i} pending"
            );
            assert_eq!(
                balance(ShardAccount::Settlement),
                payable[i],
                "shard {i} payable"
            );
            assert_eq!(
                balance(ShardAccount::Escrow),
                paid[i] - pending[i] - payable[i] - self.refunded_value[i],
                "shard {i} escrow"
            );
        }
    }
}

fn lookup(code: Code, last4: &str) -> Command {
    Command::Lookup(Lookup {
        code,
        phone_last4: last4.into(),
        verifier_id: None,
        pos_id: None,
    })
}

/// Every voucher and every verification log entry of the shards.
fn audit(shards: &mut [Shard], now: i64) -> (Vec<VoucherState>, Vec<RedemptionEntry>) {
    let (mut vouchers, mut redemptions) = (Vec::new(), Vec::new());
    for (i, s) in shards.iter_mut().enumerate() {
        let mut from = Some(0);
        while let Some(f) = from {
            let page = AuditVouchers {
                shard: i as u32,
                from: f,
                limit: 1_000,
            };
            let Ok(Outcome::Vouchers { items, next }) =
                s.apply(now, &Command::AuditVouchers(page), &mut Vec::new())
            else {
                panic!("audit")
            };
            vouchers.extend(items);
            from = next;
        }
        let mut from = Some(0);
        while let Some(f) = from {
            let page = AuditRedemptions {
                shard: i as u32,
                from: f,
                limit: 1_000,
            };
            let Ok(Outcome::Redemptions { items, next }) =
                s.apply(now, &Command::AuditRedemptions(page), &mut Vec::new())
            else {
                panic!("audit")
            };
            redemptions.extend(items);
            from = next;
        }
    }
    (vouchers, redemptions)
}

/// Replays every catalog record into a fresh catalog (with the sellers).
fn replayed_catalog(records: &[Vec<u8>]) -> Catalog {
    let (mut catalog, _) = fresh_catalog();
    for bytes in records {
        let LogRecord::Catalog { now_ms, inputs } = LogRecord::decode(bytes).unwrap() else {
            panic!("only catalog records")
        };
        CatalogBatch::replay(&mut catalog, now_ms, &inputs, &mut Vec::new()).unwrap();
    }
    catalog.check_invariants().unwrap();
    catalog
}

/// Replays every record into fresh shards (decoding each), as recovery.
fn replayed(records: &[Vec<u8>]) -> Vec<Shard> {
    let mut shards = fresh_shards();
    for bytes in records {
        let LogRecord::Shard {
            shard,
            now_ms,
            inputs,
        } = LogRecord::decode(bytes).unwrap()
        else {
            panic!("only shard records")
        };
        ShardBatch::replay(
            &mut shards[shard as usize],
            now_ms,
            &inputs,
            &mut Vec::new(),
            |_, _| {},
        )
        .unwrap();
    }
    shards
}

/// Every row of an export read, page by page from position 0.
fn export_rows(mut read: impl FnMut(u64) -> EntryPage) -> Vec<EntryRow> {
    let (mut rows, mut after) = (Vec::new(), 0);
    loop {
        let page = read(after);
        rows.extend(page.items);
        match page.next {
            Some(n) => after = n,
            None => return rows,
        }
    }
}

/// Σ fen of the pending rows of `reasons`.
fn pending_fen(rows: &[EntryRow], reasons: &[vouch_engine::ledger::Reason]) -> i64 {
    rows.iter()
        .filter(|r| r.state == EntryState::Pending && reasons.contains(&r.reason))
        .map(|r| r.amount.fen())
        .sum()
}

/// RPT-5 against the ledgers: the export has one row per entry, and
/// what it calls pending is exactly what the accounts hold waiting — the
/// shards' `pending` (redemptions in their window) and `refunds` (in
/// transit), the catalog's payouts in transit.
fn check_export(shards: &mut [Shard], catalog: &Catalog) {
    use vouch_engine::ledger::Reason;
    for s in shards.iter_mut() {
        let shard = s.index();
        let rows = export_rows(|after| {
            let c = Command::Entries(ListEntries {
                shard,
                seller_id: None,
                from_ms: i64::MIN,
                until_ms: i64::MAX,
                after,
                limit: ENTRIES_PAGE_ITEMS_MAX,
            });
            let Ok(Outcome::Entries(page)) = s.apply(START, &c, &mut Vec::new()) else {
                panic!("an entry page")
            };
            page
        });
        assert_eq!(
            rows.len(),
            s.ledger().entries().len(),
            "RPT-5: shard {shard} rows"
        );
        let balance = |a| s.ledger().balance(a).fen();
        assert_eq!(
            pending_fen(&rows, &[Reason::Redeemed]),
            balance(ShardAccount::Pending),
            "RPT-5: shard {shard} pending redemptions"
        );
        assert_eq!(
            pending_fen(&rows, &[Reason::Refunded, Reason::RefundRetried]),
            balance(ShardAccount::Refunds),
            "RPT-5: shard {shard} refunds in transit"
        );
    }
    let rows = export_rows(|after| {
        let q = vouch_engine::catalog::CatalogQuery::Entries {
            seller: None,
            from_ms: i64::MIN,
            until_ms: i64::MAX,
            after,
            limit: ENTRIES_PAGE_ITEMS_MAX,
        };
        match catalog.read(vouch_engine::catalog::Actor::Staff, &q) {
            Ok(vouch_engine::catalog::CatalogView::Entries(page)) => page,
            other => panic!("{other:?}"),
        }
    });
    assert_eq!(rows.len(), catalog.ledger().len(), "RPT-5: catalog rows");
    let in_transit: i64 = rows
        .iter()
        .map(|r| {
            let fen = r.amount.fen();
            i64::from(r.credit == "payout_in_transit") * fen
                - i64::from(r.debit == "payout_in_transit") * fen
        })
        .sum();
    assert_eq!(
        pending_fen(&rows, &[Reason::PayoutSent]),
        in_transit,
        "RPT-5: payouts in transit"
    );
    let taken_back = [
        Reason::AfterSaleRefund,
        Reason::ReceivableBooked,
        Reason::RefundRetried,
    ];
    assert_eq!(
        pending_fen(&rows, &taken_back),
        catalog
            .balance(vouch_engine::catalog::Account::RefundsInTransit)
            .fen(),
        "RPT-5: refunds taken back in transit"
    );
}

/// Every transfer of `shard` in transit, then every failed one.
fn open_transfers(shard: &mut Shard) -> Vec<TransferView> {
    let mut all = Vec::new();
    for failed in [false, true] {
        let mut after = 0;
        loop {
            let c = Command::Transfers(ListTransfers {
                shard: shard.index(),
                failed,
                after,
                limit: TRANSFERS_PAGE_ITEMS_MAX,
            });
            let Ok(Outcome::Transfers(page)) = shard.apply(START, &c, &mut Vec::new()) else {
                panic!("a transfer page")
            };
            all.extend(page.items);
            match page.next {
                Some(n) => after = n,
                None => break,
            }
        }
    }
    all
}

fn run(seed: u64, steps: u64) {
    let mut sim = Sim::new(seed, steps);
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        for _ in 0..steps {
            sim.one_step();
        }
        sim.check();
        check_export(&mut sim.shards, &sim.money.catalog);
        let mut again = replayed(&sim.records);
        for s in &again {
            s.check_invariants();
        }
        assert!(
            audit(&mut again, sim.now) == audit(&mut sim.shards, sim.now),
            "invariant 1: replaying the log rebuilds the same state"
        );
        for (a, b) in again.iter_mut().zip(sim.shards.iter_mut()) {
            assert!(
                a.ledger().entries() == b.ledger().entries(),
                "invariant 1: shard ledgers"
            );
            assert!(
                open_transfers(a) == open_transfers(b),
                "invariant 1: refund transfers"
            );
        }
        let catalog = replayed_catalog(&sim.money.records);
        assert!(
            catalog.ledger() == sim.money.catalog.ledger(),
            "invariant 1: replaying the catalog's log rebuilds its ledger"
        );
        // What replay makes again and the catalog has not applied is what
        // was in flight: recovery sends exactly that (exactly once).
        let unsent: Vec<ShardMessage> = again
            .iter_mut()
            .flat_map(|s| {
                let mark = catalog.shard_mark(s.index());
                s.take_messages().into_iter().filter(move |m| m.seq > mark)
            })
            .collect();
        let mut in_flight: Vec<ShardMessage> = sim.money.in_flight.iter().cloned().collect();
        in_flight.sort_by_key(|m| (m.shard, m.seq));
        assert!(
            unsent == in_flight,
            "recovery resends exactly the messages in flight"
        );
        sim.reds.len()
    }));
    match outcome {
        Ok(redemptions) => {
            println!("after {steps} steps: {:?}", sim.seen);
            assert!(redemptions > steps as usize / 10, "the workload redeems");
            if steps >= 100_000 {
                for what in [
                    "issued",
                    "issue repeated",
                    "expired by the tick",
                    "wrong digits",
                    "too many units",
                    "redeemed in part",
                    "redeemed in full",
                    "dead code",
                    "conflict",
                    "retried",
                    "already_reversed",
                    "reversal_window_closed",
                    "reversed",
                    "reversed onto a new code",
                    "message applied",
                    "message repeated",
                    "payout sent",
                    "nothing to pay",
                    "settlement rerun",
                    "payout confirmed",
                    "payout failed",
                    "payout_not_in_transit",
                    "refunded",
                    "refund retried",
                    "refund_not_allowed",
                    "refund_amount_zero",
                    "refund_above_refundable",
                    "extended",
                    "validity_not_extended",
                    "refund transfer confirmed",
                    "refund transfer failed",
                    "refund transfer retried",
                    "refund_not_in_transit",
                    "refund_not_failed",
                ] {
                    assert!(
                        sim.seen.contains_key(what),
                        "the workload never reached {what}"
                    );
                }
            }
        }
        Err(e) => {
            eprintln!(
                "simulation failed: VOUCH_SIM_SEED={seed} VOUCH_SIM_STEPS={steps} (step {})",
                sim.step
            );
            std::panic::resume_unwind(e)
        }
    }
}

/// A new seed when none is given: the only use of the clock, printed first.
#[allow(clippy::disallowed_methods)]
fn clock_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// The simulation, 100,000 steps by default; see the module docs.
#[test]
fn sim_units_codes_and_replay_hold_under_a_random_workload() {
    let steps = std::env::var("VOUCH_SIM_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let seed = std::env::var("VOUCH_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(clock_seed);
    println!("simulation seed {seed}, {steps} steps");
    run(seed, steps);
}
