//! The money tests' shared steps (refunds, extension, ticks, balances):
//! each applies one command as staff on an [`Engine`], checks every
//! invariant after it and returns the outcome or the refusal's code.

use super::*;
use vouch_engine::command::*;
use vouch_engine::message::ProductTerms;
use vouch_engine::shard::ShardAccount;
use vouch_engine::{Code, Command, Engine, EngineConfig, ErrorCode, Fen, Outcome, PosId, SellerId};

/// One shard, so order commands and code commands meet in the same shard.
pub fn engine_with(terms: ProductTerms) -> Engine {
    let config = EngineConfig {
        shards: 1,
        ..EngineConfig::default()
    };
    let mut e = Engine::new(config, [9; 32]).unwrap();
    for f in product_facts(terms) {
        e.note_fact(&f);
    }
    e
}

/// REF-1 terms: see [`auto_terms`].
pub fn auto(ratio: Option<u16>) -> ProductTerms {
    auto_terms(ratio)
}

/// Terms without the automatic refund (REF-2 applies).
pub fn manual() -> ProductTerms {
    manual_terms()
}

/// `terms` settled T+3 (SET-2).
pub fn t3(terms: ProductTerms) -> ProductTerms {
    ProductTerms {
        t_plus_3: true,
        ..terms
    }
}

pub fn issue_at(e: &mut Engine, now: i64, order: &str, units: u32, price_fen: i64) -> Code {
    let Command::Issue(mut c) = issue_cmd(order, units, 8) else {
        unreachable!()
    };
    c.unit_price = Fen::new(price_fen);
    let r = e.apply(now, &Command::Issue(c), &mut Vec::new());
    e.check_invariants();
    match r {
        Ok(Outcome::Issued(i)) => i.code,
        other => panic!("{other:?}"),
    }
}

pub fn redeem(
    e: &mut Engine,
    now: i64,
    code: Code,
    units: u32,
    serial: u64,
) -> Result<Redeemed, ErrorCode> {
    let r = e.apply(now, &redeem_cmd(code, units, serial), &mut Vec::new());
    e.check_invariants();
    match r {
        Ok(Outcome::Redeemed(r)) => Ok(r),
        Ok(other) => panic!("{other:?}"),
        Err(r) => Err(r.code),
    }
}

pub fn reverse_cmd(code: Code, redemption: u64, serial: u64) -> Command {
    Command::Reverse(Reverse {
        request_id: rid(serial),
        code,
        redemption: rid(redemption),
        pos_id: Some(PosId(900)),
        verifier_id: None,
        seller_id: None,
    })
}

pub fn reverse(
    e: &mut Engine,
    now: i64,
    code: Code,
    redemption: u64,
    serial: u64,
) -> Result<Reversed, ErrorCode> {
    let r = e.apply(now, &reverse_cmd(code, redemption, serial), &mut Vec::new());
    e.check_invariants();
    match r {
        Ok(Outcome::Reversed(r)) => Ok(r),
        Ok(other) => panic!("{other:?}"),
        Err(r) => Err(r.code),
    }
}

pub fn refund_cmd(
    order: &str,
    action: RefundAction,
    serial: u64,
    seller: Option<SellerId>,
) -> Command {
    Command::Refund(Refund {
        request_id: rid(serial),
        order_id: order.into(),
        action,
        seller_id: seller,
    })
}

pub fn refund(
    e: &mut Engine,
    now: i64,
    order: &str,
    action: RefundAction,
    serial: u64,
) -> Result<Refunded, ErrorCode> {
    let r = e.apply(
        now,
        &refund_cmd(order, action, serial, None),
        &mut Vec::new(),
    );
    e.check_invariants();
    match r {
        Ok(Outcome::Refunded(r)) => Ok(r),
        Ok(other) => panic!("{other:?}"),
        Err(r) => Err(r.code),
    }
}

pub fn extend_cmd(order: &str, until: i64, serial: u64, seller: Option<SellerId>) -> Command {
    Command::Extend(Extend {
        request_id: rid(serial),
        order_id: order.into(),
        valid_until_ms: until,
        seller_id: seller,
    })
}

pub fn order(e: &mut Engine, id: &str) -> OrderView {
    let c = Command::Order(OrderShow {
        order_id: id.into(),
        seller_id: None,
    });
    match e.apply(NOW, &c, &mut Vec::new()) {
        Ok(Outcome::Order(o)) => o,
        other => panic!("{other:?}"),
    }
}

pub fn tick(e: &mut Engine, now: i64) -> usize {
    let n = e.tick(now);
    e.check_invariants();
    n
}

pub fn balance(e: &Engine, account: ShardAccount) -> i64 {
    e.shards()
        .iter()
        .map(|s| s.ledger().balance(account).fen())
        .sum()
}

/// A transfer step (MON-7) with request id `rid(serial)`.
pub fn transfer_step_cmd(
    order: &str,
    transfer: u16,
    action: TransferAction,
    serial: u64,
) -> Command {
    Command::TransferStep(TransferStep {
        request_id: rid(serial),
        order_id: order.into(),
        transfer,
        action,
    })
}

/// One transfer step, invariants checked after it (a panic in the engine
/// fails the test with its message).
pub fn transfer_step(
    e: &mut Engine,
    now: i64,
    order: &str,
    transfer: u16,
    action: TransferAction,
    serial: u64,
) -> Result<TransferView, ErrorCode> {
    let r = e.apply(
        now,
        &transfer_step_cmd(order, transfer, action, serial),
        &mut Vec::new(),
    );
    e.check_invariants();
    match r {
        Ok(Outcome::Transfer(t)) => Ok(t),
        Ok(other) => panic!("{other:?}"),
        Err(r) => Err(r.code),
    }
}
