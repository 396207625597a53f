//! Settlement rules in a shard (SET-1, MON-3..MON-6): money moves with the
//! units it pays for, the reversal window holds it, the shard's tick makes
//! it the seller's, each deadline once.

use vouch_engine::command::*;
use vouch_engine::shard::ShardAccount;
use vouch_engine::validity::Validity;
use vouch_engine::{Code, Command, Engine, EngineConfig, ErrorCode, Fen, Outcome};
use vouch_engine::{PosId, ProductId, SellerId};

mod common;
use common::*;

const SELLER: SellerId = SellerId(10);

fn engine() -> Engine {
    let config = EngineConfig {
        shards: 2,
        ..EngineConfig::default()
    };
    Engine::new(config, [5; 32]).unwrap()
}

/// Issues `units` at 19.99 yuan each; returns the code.
fn issue(e: &mut Engine, order: &str, units: u32) -> Code {
    match e.apply(NOW, &issue_cmd(order, units, 8), &mut Vec::new()) {
        Ok(Outcome::Issued(i)) => i.code,
        other => panic!("{other:?}"),
    }
}

fn redeem(e: &mut Engine, now: i64, code: Code, units: u32, serial: u64) -> Redeemed {
    match e.apply(now, &redeem_cmd(code, units, serial), &mut Vec::new()) {
        Ok(Outcome::Redeemed(r)) => r,
        other => panic!("{other:?}"),
    }
}

fn reverse(
    e: &mut Engine,
    now: i64,
    code: Code,
    redemption: u64,
    serial: u64,
) -> Result<Reversed, ErrorCode> {
    let command = Command::Reverse(Reverse {
        request_id: rid(serial),
        code,
        redemption: rid(redemption),
        pos_id: Some(PosId(900)),
        verifier_id: None,
        seller_id: None,
    });
    match e.apply(now, &command, &mut Vec::new()) {
        Ok(Outcome::Reversed(r)) => Ok(r),
        Ok(other) => panic!("{other:?}"),
        Err(r) => Err(r.code),
    }
}

/// The balance of `account` summed over every shard, fen.
fn balance(e: &Engine, account: ShardAccount) -> i64 {
    e.shards()
        .iter()
        .map(|s| s.ledger().balance(account).fen())
        .sum()
}

/// SET-1 with MON-4: issuing 3 × 19.99 puts 59.97 in escrow; redeeming 2
/// moves 39.98 to pending; one millisecond before the window's end nothing
/// is due, at its end the tick pays it to the seller, and from then on the
/// redemption cannot be reversed.
#[test]
fn set_1_redeemed_money_is_pending_for_the_window_then_payable() {
    let mut e = engine();
    let code = issue(&mut e, "o-1", 3);
    assert_eq!(balance(&e, ShardAccount::Buyers), -5_997);
    assert_eq!(balance(&e, ShardAccount::Escrow), 5_997);
    let r = redeem(&mut e, NOW, code, 2, 1);
    assert_eq!(balance(&e, ShardAccount::Escrow), 1_999);
    assert_eq!(balance(&e, ShardAccount::Pending), 3_998);
    assert_eq!(e.tick(NOW + HOUR - 1), 0, "nothing is due before the end");
    assert_eq!(balance(&e, ShardAccount::Pending), 3_998);
    assert_eq!(e.tick(NOW + HOUR), 1);
    assert_eq!(balance(&e, ShardAccount::Pending), 0);
    assert_eq!(balance(&e, ShardAccount::Settlement), 3_998);
    let live = r.new_code.unwrap();
    assert_eq!(
        reverse(&mut e, NOW + HOUR, live, 1, 2),
        Err(ErrorCode::ReversalWindowClosed)
    );
    e.check_invariants();
}

/// SET-1: a reversal inside the window returns the pending money to
/// escrow; its window end later changes nothing, and nothing is payable.
#[test]
fn set_1_a_reversal_inside_the_window_returns_the_money_to_escrow() {
    let mut e = engine();
    let code = issue(&mut e, "o-1", 3);
    let r = redeem(&mut e, NOW, code, 1, 1);
    let back = reverse(&mut e, NOW + HOUR - 1, r.new_code.unwrap(), 1, 2).unwrap();
    assert_eq!(back.units_remaining, 3);
    assert_eq!(balance(&e, ShardAccount::Escrow), 5_997);
    assert_eq!(balance(&e, ShardAccount::Pending), 0);
    e.tick(NOW + 2 * HOUR);
    assert_eq!(balance(&e, ShardAccount::Settlement), 0);
    e.check_invariants();
}

/// MON-6: each deadline applies once however often ticks run, in deadline
/// order; a late tick applies every deadline that passed.
#[test]
fn mon_6_each_window_end_applies_once_in_order() {
    let mut e = engine();
    let code = issue(&mut e, "o-1", 4);
    let first = redeem(&mut e, NOW, code, 1, 1);
    let second = redeem(&mut e, NOW + 10, first.new_code.unwrap(), 1, 2);
    redeem(&mut e, NOW + 20, second.new_code.unwrap(), 1, 3);
    assert_eq!(e.tick(NOW + HOUR + 10), 2, "the first two are due");
    assert_eq!(e.tick(NOW + HOUR + 10), 0, "and applied once");
    assert_eq!(balance(&e, ShardAccount::Settlement), 2 * 1_999);
    assert_eq!(e.tick(NOW + 10 * HOUR), 1);
    assert_eq!(e.tick(NOW + 10 * HOUR), 0);
    assert_eq!(balance(&e, ShardAccount::Settlement), 3 * 1_999);
    assert_eq!(balance(&e, ShardAccount::Escrow), 1_999);
    e.check_invariants();
}

/// MON-3: every movement is one entry, linked to its voucher, with its
/// reason; a free voucher moves no money at all.
#[test]
fn mon_3_entries_have_reasons_and_free_vouchers_write_none() {
    use vouch_engine::ledger::Reason;
    let mut e = engine();
    let code = issue(&mut e, "o-1", 2);
    let r = redeem(&mut e, NOW, code, 1, 1);
    reverse(&mut e, NOW + 1, r.new_code.unwrap(), 1, 2).unwrap();
    let reasons: Vec<Reason> = e
        .shards()
        .iter()
        .flat_map(|s| s.ledger().entries().iter().map(|x| x.reason))
        .collect();
    assert_eq!(
        reasons,
        vec![Reason::Paid, Reason::Redeemed, Reason::Reversed]
    );
    let free = Command::Issue(Issue {
        order_id: "free".into(),
        seller_id: SELLER,
        product_id: ProductId(20),
        units: 1,
        unit_price: Fen::ZERO,
        mobile: "13800001234".into(),
        validity: Validity::DaysFromIssue(30),
        code_digits: 8,
    });
    e.apply(NOW, &free, &mut Vec::new()).unwrap();
    let entries: usize = e.shards().iter().map(|s| s.ledger().entries().len()).sum();
    assert_eq!(entries, 3, "zero amounts are never written");
    e.check_invariants();
}

/// MON-6 when a restart's clock is behind the log: a redemption at an
/// earlier `now` still queues its window end in order (never before the
/// previous end), so no money is stranded in pending, and every end
/// applies once.
#[test]
fn mon_6_a_clock_behind_the_log_strands_no_money() {
    let mut e = engine();
    let a = issue(&mut e, "o-1", 2);
    let first = redeem(&mut e, NOW + 2 * HOUR, a, 1, 1);
    // The same voucher's shard, at an earlier time.
    redeem(&mut e, NOW, first.new_code.unwrap(), 1, 2);
    assert_eq!(balance(&e, ShardAccount::Pending), 2 * 1_999);
    assert_eq!(e.tick(NOW + 3 * HOUR), 2);
    assert_eq!(balance(&e, ShardAccount::Settlement), 2 * 1_999);
    assert_eq!(e.tick(NOW + 3 * HOUR), 0);
    e.check_invariants();
}
