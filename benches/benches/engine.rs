//! In-process engine benchmarks (DESIGN "Performance targets": redeem
//! ≤ 200 ns/op, issue incl. unique code ≤ 250 ns/op).
//!
//! Every benchmark runs against an [`Engine`] with the default configuration
//! (2 shards, driven from one thread) that was pre-filled with
//! [`PREFILL_VOUCHERS`] live vouchers, so its maps have a realistic size.
//! Pre-filling and building commands happen outside the timed loop: each
//! benchmark uses `iter_custom` and times only the `apply` calls (plus the
//! drop of the reply and effects, which the engine produces).
//!
//! Mutating benchmarks grow the engine's state (vouchers, verification log,
//! quarantined codes). To keep memory bounded, the state is rebuilt (outside
//! the timed loop) once it has taken [`OPS_PER_STATE_MAX`] mutations.
//!
//! - `issue`: issue one voucher for a new, unique order id, drawing a code.
//! - `redeem`: redeem 1 unit of a many-unit voucher; the voucher's code is
//!   replaced and the next redeem of it uses the new code from the reply.
//! - `redeem_full`: redeem all units of a voucher (no replacement code).
//! - `lookup`: look a live code up.
//! - `code_check_paths/*` (issue 7 item 4): a wrong guess of each kind —
//!   an unknown code, a replaced code, a live code with wrong last four
//!   digits, an expired code — against the same state. The four should
//!   take the same time: a stopwatch must not tell them apart.

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use std::collections::VecDeque;
use std::hint::black_box;
use std::time::{Duration, Instant};
use vouch_engine::command::{Issue, Lookup, Redeem};
use vouch_engine::limits::VOUCHER_UNITS_MAX;
use vouch_engine::validity::Validity;
use vouch_engine::{
    Code, Command, Effect, Engine, EngineConfig, Outcome, OutletId, PosId, ProductId, RequestId,
    SellerId, VerifierId,
};

/// 2026-11-29 12:00:00 +08:00 in unix ms; the clock of every command.
const NOW_MS: i64 = 1_764_388_800_000;
/// Live vouchers in the engine before measuring.
const PREFILL_VOUCHERS: u64 = 1_000_000;
/// Mutations one engine state takes before it is rebuilt.
const OPS_PER_STATE_MAX: u64 = 6_000_000;
/// Code length. 10 digits keeps the density far below the limit for the
/// whole run, so no benchmark is disturbed by code lengthening.
const CODE_DIGITS: u8 = 10;
const MOBILE: &str = "13800001234";
const LAST4: &str = "1234";
const SEED: [u8; 32] = [7; 32];

fn new_engine() -> Engine {
    Engine::new(EngineConfig::default(), SEED).expect("default config is valid")
}

fn issue_cmd(order: u64, units: u32) -> Command {
    Command::Issue(Issue {
        order_id: format!("ORD{order:016}"),
        seller_id: SellerId(10 + order % 1_000),
        product_id: ProductId(20 + order % 10_000),
        units,
        unit_price: vouch_engine::Fen::new(1999),
        mobile: MOBILE.into(),
        validity: Validity::DaysFromIssue(30),
        code_digits: CODE_DIGITS,
    })
}

fn redeem_cmd(units: u32) -> Command {
    Command::Redeem(Redeem {
        request_id: RequestId {
            source: 900,
            serial: 0,
        },
        code: Code::new(CODE_DIGITS, 0).expect("valid code"),
        phone_last4: LAST4.into(),
        units,
        outlet_id: OutletId(3),
        verifier_id: VerifierId(4),
        pos_id: Some(PosId(900)),
    })
}

fn issue(engine: &mut Engine, order: u64, units: u32, effects: &mut Vec<Effect>) -> Code {
    effects.clear();
    match engine.apply(NOW_MS, &issue_cmd(order, units), effects) {
        Ok(Outcome::Issued(i)) => i.code,
        other => panic!("issue of order {order} failed: {other:?}"),
    }
}

/// Deterministic Fisher–Yates shuffle (splitmix64), so that walking a list
/// of codes in order touches the engine's vouchers in random order.
fn shuffle<T>(items: &mut [T], seed: u64) {
    let mut state = seed;
    let mut next = || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    for i in (1..items.len()).rev() {
        let j = (next() % (i as u64 + 1)) as usize;
        items.swap(i, j);
    }
}

/// An engine with its live codes (in shuffled order) and counters.
struct State {
    engine: Engine,
    /// Live codes of the benchmark's vouchers, in random voucher order.
    codes: VecDeque<Code>,
    /// Next unused order number.
    next_order: u64,
    /// Next unused request serial.
    next_serial: u64,
    /// Position in `codes` of the next voucher to use, for benchmarks
    /// that cycle through them.
    cursor: usize,
    /// Mutations applied since the state was built.
    ops: u64,
}

impl State {
    /// An engine pre-filled with `PREFILL_VOUCHERS` vouchers of `units` units.
    fn new(units: u32) -> State {
        let mut engine = new_engine();
        let mut effects = Vec::new();
        let mut codes: Vec<Code> = (0..PREFILL_VOUCHERS)
            .map(|order| issue(&mut engine, order, units, &mut effects))
            .collect();
        shuffle(&mut codes, 0x5eed);
        State {
            engine,
            codes: codes.into(),
            next_order: PREFILL_VOUCHERS,
            next_serial: 0,
            cursor: 0,
            ops: 0,
        }
    }

    /// Makes room for `iters` more mutations: rebuilds the state (dropping
    /// the old one first) when it has taken too many already.
    fn reserve(slot: &mut Option<State>, iters: u64, units: u32) -> &mut State {
        if slot
            .as_ref()
            .is_some_and(|s| s.ops > 0 && s.ops + iters > OPS_PER_STATE_MAX)
        {
            *slot = None;
        }
        let state = slot.get_or_insert_with(|| State::new(units));
        state.ops += iters;
        state
    }
}

/// The group every benchmark runs in: short runs, ops/s reported.
fn config(c: &mut Criterion) -> BenchmarkGroup<'_, WallTime> {
    let mut group = c.benchmark_group("engine");
    group
        .throughput(Throughput::Elements(1))
        .sample_size(20)
        .warm_up_time(Duration::from_secs(3))
        .measurement_time(Duration::from_secs(5));
    group
}

fn bench_issue(c: &mut Criterion) {
    let mut group = config(c);
    let units = 2;
    let mut slot = Some(State::new(units));
    group.bench_function("issue", |b| {
        b.iter_custom(|iters| {
            let state = State::reserve(&mut slot, iters, units);
            let first = state.next_order;
            state.next_order += iters;
            let commands: Vec<Command> = (first..state.next_order)
                .map(|order| issue_cmd(order, units))
                .collect();
            let engine = &mut state.engine;
            let mut effects = Vec::with_capacity(4);
            let start = Instant::now();
            for command in &commands {
                effects.clear();
                match engine.apply(NOW_MS, command, &mut effects) {
                    Ok(Outcome::Issued(issued)) => {
                        black_box(issued);
                    }
                    other => panic!("issue failed: {other:?}"),
                }
            }
            let elapsed = start.elapsed();
            drop(commands);
            elapsed
        })
    });
    drop(slot);
    group.finish();
}

fn bench_redeem(c: &mut Criterion) {
    let mut group = config(c);
    // 1 unit per redeem, round robin over 1 M vouchers: a state takes at
    // most OPS_PER_STATE_MAX / PREFILL_VOUCHERS units of each voucher.
    let units = VOUCHER_UNITS_MAX;
    assert!(OPS_PER_STATE_MAX / PREFILL_VOUCHERS + 1 < u64::from(units));
    let mut slot = Some(State::new(units));
    let mut command = redeem_cmd(1);
    group.bench_function("redeem", |b| {
        b.iter_custom(|iters| {
            let state = State::reserve(&mut slot, iters, units);
            let engine = &mut state.engine;
            let codes = state.codes.make_contiguous();
            let mut serial = state.next_serial;
            let mut i = state.cursor;
            let mut effects = Vec::with_capacity(4);
            let start = Instant::now();
            for _ in 0..iters {
                if let Command::Redeem(r) = &mut command {
                    r.code = codes[i];
                    r.request_id.serial = serial;
                }
                serial += 1;
                effects.clear();
                match engine.apply(NOW_MS, &command, &mut effects) {
                    Ok(Outcome::Redeemed(r)) => {
                        codes[i] = r.new_code.expect("units remain, so a new code");
                    }
                    other => panic!("redeem failed: {other:?}"),
                }
                i += 1;
                if i == codes.len() {
                    i = 0;
                }
            }
            let elapsed = start.elapsed();
            state.next_serial = serial;
            state.cursor = i;
            elapsed
        })
    });
    drop(slot);
    group.finish();
}

fn bench_redeem_full(c: &mut Criterion) {
    let mut group = config(c);
    // Every redeem uses a voucher up, so before each sample `iters` fresh
    // vouchers are issued (outside the timed loop) to keep 1 M live ones;
    // redeems take vouchers oldest first, so they are cold.
    let units = 3;
    let mut slot = Some(State::new(units));
    let mut command = redeem_cmd(units);
    group.bench_function("redeem_full", |b| {
        b.iter_custom(|iters| {
            // One issue plus one redeem per iteration.
            let state = State::reserve(&mut slot, 2 * iters, units);
            let mut effects = Vec::new();
            let first = state.next_order;
            state.next_order += iters;
            let mut fresh: Vec<Code> = (first..state.next_order)
                .map(|order| issue(&mut state.engine, order, units, &mut effects))
                .collect();
            shuffle(&mut fresh, first);
            state.codes.extend(fresh);
            let batch: Vec<Code> = state.codes.drain(..iters as usize).collect();
            let engine = &mut state.engine;
            let mut serial = state.next_serial;
            let start = Instant::now();
            for &code in &batch {
                if let Command::Redeem(r) = &mut command {
                    r.code = code;
                    r.request_id.serial = serial;
                }
                serial += 1;
                effects.clear();
                match engine.apply(NOW_MS, &command, &mut effects) {
                    Ok(Outcome::Redeemed(r)) if r.new_code.is_none() => {
                        black_box(r);
                    }
                    other => panic!("full redeem failed: {other:?}"),
                }
            }
            let elapsed = start.elapsed();
            state.next_serial = serial;
            elapsed
        })
    });
    drop(slot);
    group.finish();
}

fn bench_lookup(c: &mut Criterion) {
    let mut group = config(c);
    let mut state = State::new(2);
    let codes = state.codes.make_contiguous().to_vec();
    let mut command = Command::Lookup(Lookup {
        code: codes[0],
        phone_last4: LAST4.into(),
        verifier_id: None,
        pos_id: None,
    });
    let mut i = 0;
    group.bench_function("lookup", |b| {
        b.iter_custom(|iters| {
            let engine = &mut state.engine;
            let mut effects = Vec::new();
            let start = Instant::now();
            for _ in 0..iters {
                if let Command::Lookup(l) = &mut command {
                    l.code = codes[i];
                }
                match engine.apply(NOW_MS, &command, &mut effects) {
                    Ok(Outcome::LookedUp(looked_up)) => {
                        black_box(looked_up);
                    }
                    other => panic!("lookup failed: {other:?}"),
                }
                i += 1;
                if i == codes.len() {
                    i = 0;
                }
            }
            start.elapsed()
        })
    });
    drop(state);
    group.finish();
}

/// Wrong guesses of each kind, each against its own pool of codes so that
/// caches treat them alike: unknown codes, replaced codes (redeemed
/// partly, now in quarantine), live codes with wrong digits, and live
/// codes looked up after their validity ended.
fn bench_code_check_paths(c: &mut Criterion) {
    let mut group = c.benchmark_group("code_check_paths");
    group.measurement_time(Duration::from_secs(3));
    group.throughput(Throughput::Elements(1));
    let mut state = State::new(2);
    let live: Vec<Code> = state.codes.make_contiguous().to_vec();
    let n = live.len() / 3;
    let mut effects = Vec::new();
    let mut replaced = Vec::with_capacity(n);
    for (serial, code) in live[..n].iter().enumerate() {
        let mut cmd = redeem_cmd(1);
        if let Command::Redeem(r) = &mut cmd {
            r.code = *code;
            r.request_id = RequestId {
                source: 77,
                serial: serial as u64,
            };
        }
        match state.engine.apply(NOW_MS, &cmd, &mut effects) {
            Ok(Outcome::Redeemed(_)) => replaced.push(*code),
            other => panic!("redeem failed: {other:?}"),
        }
        effects.clear();
    }
    let space = 10u64.pow(u32::from(CODE_DIGITS));
    let unknown: Vec<Code> = live[..n]
        .iter()
        .map(|c| Code::new(CODE_DIGITS, (c.value() + 2) % space).expect("in the space"))
        .filter(|code| {
            let probe = Command::Lookup(Lookup {
                code: *code,
                phone_last4: LAST4.into(),
                verifier_id: None,
                pos_id: None,
            });
            state.engine.apply(NOW_MS, &probe, &mut effects).is_err()
        })
        .collect();
    let mut unknown = unknown;
    let mut wrong_digits: Vec<Code> = live[n..2 * n].to_vec();
    let mut expired: Vec<Code> = live[2 * n..3 * n].to_vec();
    // Random order in every pool, so no pool walks memory in order.
    for (i, pool) in [&mut unknown, &mut replaced, &mut wrong_digits, &mut expired]
        .into_iter()
        .enumerate()
    {
        shuffle(pool, 11 + i as u64);
    }
    let later_ms = NOW_MS + 400 * 86_400_000;
    let cases: [(&str, &[Code], &str, i64); 4] = [
        ("unknown", &unknown, LAST4, NOW_MS),
        ("replaced", &replaced, LAST4, NOW_MS),
        ("wrong_last4", &wrong_digits, "0000", NOW_MS),
        ("expired", &expired, LAST4, later_ms),
    ];
    for (name, codes, last4, now) in cases {
        let mut command = Command::Lookup(Lookup {
            code: codes[0],
            phone_last4: last4.into(),
            verifier_id: None,
            pos_id: None,
        });
        let mut i = 0;
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let engine = &mut state.engine;
                let start = Instant::now();
                for _ in 0..iters {
                    if let Command::Lookup(l) = &mut command {
                        l.code = codes[i];
                    }
                    match engine.apply(now, &command, &mut effects) {
                        Err(r) => {
                            black_box(r);
                        }
                        other => panic!("{name}: a wrong guess was answered: {other:?}"),
                    }
                    i = (i + 1) % codes.len();
                }
                start.elapsed()
            })
        });
    }
    drop(state);
    group.finish();
}

criterion_group!(
    benches,
    bench_issue,
    bench_redeem,
    bench_redeem_full,
    bench_lookup,
    bench_code_check_paths
);
criterion_main!(benches);
