//! Refunds (REF-1..4, REF-6), the order's states (ORD-12), extension
//! (ORD-6) and T+3 (SET-2) in the shards, with the worked numbers of
//! DOMAIN: MON-2's one rounding, the 1.00 code fee, refunds whose fee
//! swallows them, units void at once, deadlines in local calendar days.

use vouch_engine::command::*;
use vouch_engine::message::ProductTerms;
use vouch_engine::shard::ShardAccount;
use vouch_engine::{Code, Command, Engine, EngineConfig, ErrorCode, Fen, Outcome, SellerId};

mod common;
use common::*;

const DAY: i64 = 86_400_000;

fn engine_with(terms: ProductTerms) -> Engine {
    let config = EngineConfig {
        shards: 2,
        ..EngineConfig::default()
    };
    let mut e = Engine::new(config, [3; 32]).unwrap();
    for f in product_facts(terms) {
        e.note_fact(&f);
    }
    e
}

fn auto(ratio: Option<u16>) -> ProductTerms {
    auto_terms(ratio)
}

fn manual() -> ProductTerms {
    manual_terms()
}

/// Issues `units` at `price_fen` each; returns the code.
fn issue_at(e: &mut Engine, order: &str, units: u32, price_fen: i64) -> Code {
    let Command::Issue(mut c) = issue_cmd(order, units, 8) else {
        unreachable!()
    };
    c.unit_price = Fen::new(price_fen);
    match e.apply(NOW, &Command::Issue(c), &mut Vec::new()) {
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

fn refund(
    e: &mut Engine,
    now: i64,
    order: &str,
    action: RefundAction,
    serial: u64,
) -> Result<Refunded, ErrorCode> {
    let c = Command::Refund(Refund {
        request_id: rid(1_000 + serial),
        order_id: order.into(),
        action,
        seller_id: None,
    });
    let reply = e.apply(now, &c, &mut Vec::new());
    e.check_invariants();
    match reply {
        Ok(Outcome::Refunded(r)) => Ok(r),
        Ok(other) => panic!("{other:?}"),
        Err(r) => Err(r.code),
    }
}

fn order(e: &mut Engine, id: &str) -> OrderView {
    let c = Command::Order(OrderShow {
        order_id: id.into(),
        seller_id: None,
    });
    match e.apply(NOW, &c, &mut Vec::new()) {
        Ok(Outcome::Order(o)) => o,
        other => panic!("{other:?}"),
    }
}

fn balance(e: &Engine, account: ShardAccount) -> i64 {
    e.shards()
        .iter()
        .map(|s| s.ledger().balance(account).fen())
        .sum()
}

/// (buyer, code fee, seller) of a done refund, in fen.
fn money(r: &Refunded) -> (i64, i64, i64) {
    (
        r.buyer_amount.fen(),
        r.code_fee.fen(),
        r.seller_amount.fen(),
    )
}

/// REF-1 at 100 %: 3 × 19.99, one redeemed: G = 39.98, R = 39.98, the
/// buyer 38.98, the seller the 1.00 code fee; the two units are void at
/// once and the order is `unavailable` (refunded).
#[test]
fn ref_1_unexpired_auto_refund_formula() {
    let mut e = engine_with(auto(None));
    let code = issue_at(&mut e, "o-1", 3, 1_999);
    let r = redeem(&mut e, NOW, code, 1, 1);
    let done = refund(&mut e, NOW + 1, "o-1", RefundAction::Automatic, 1).unwrap();
    assert_eq!(money(&done), (3_898, 100, 0));
    assert_eq!(
        (done.units_voided, done.refundable, done.state),
        (2, Fen::ZERO, RefundState::Done)
    );
    assert_eq!(balance(&e, ShardAccount::Refunds), 3_898);
    let o = order(&mut e, "o-1");
    assert_eq!(
        (o.state, o.unavailable),
        (OrderState::Unavailable, Some(Unavailable::Refunded))
    );
    assert_eq!(
        (o.units_remaining, o.units_void, o.units_redeemed),
        (0, 2, 1)
    );
    let dead = e.apply(
        NOW + 2,
        &redeem_cmd(r.new_code.unwrap(), 1, 2),
        &mut Vec::new(),
    );
    assert_eq!(
        dead.unwrap_err().code,
        ErrorCode::VoucherRefunded,
        "refunded units are void; staff are told why (ORD-7)"
    );
    // ORD-7: to a caller not of the voucher's seller it is any invalid code.
    let Command::Redeem(mut stranger) = redeem_cmd(r.new_code.unwrap(), 1, 3) else {
        unreachable!()
    };
    (stranger.pos_id, stranger.verifier_id) = (None, vouch_engine::VerifierId(99));
    let hidden = e.apply_as(
        NOW + 2,
        vouch_engine::shard::Caller::Tenant,
        &Command::Redeem(stranger),
        &mut Vec::new(),
    );
    assert_eq!(hidden.unwrap_err().code, ErrorCode::CodeInvalid);
    assert_eq!(
        refund(&mut e, NOW + 3, "o-1", RefundAction::Automatic, 2),
        Err(ErrorCode::RefundNotAllowed)
    );
    let again = refund(&mut e, NOW + 3, "o-1", RefundAction::Automatic, 1).unwrap();
    assert!(
        again.replayed && money(&again) == money(&done),
        "a retry answers, refunds nothing"
    );
    assert_eq!(balance(&e, ShardAccount::Refunds), 3_898);
}

/// REF-1 with the product's ratio and MON-2: 39.98 at 85.5 % = 34.1829
/// → 34.18; the buyer 33.18, the seller 1.00 fee + 5.80 remainder. At
/// 50 %, 19.99 → 9.995 rounds half away from zero to 10.00.
#[test]
fn ref_1_ratio_rounds_once_half_away_from_zero() {
    let mut e = engine_with(auto(Some(8_550)));
    issue_at(&mut e, "o-1", 2, 1_999);
    let done = refund(&mut e, NOW, "o-1", RefundAction::Automatic, 1).unwrap();
    assert_eq!(money(&done), (3_318, 100, 580));
    let mut e = engine_with(auto(Some(5_000)));
    issue_at(&mut e, "o-2", 1, 1_999);
    let done = refund(&mut e, NOW, "o-2", RefundAction::Automatic, 1).unwrap();
    assert_eq!(money(&done), (900, 100, 999));
    assert_eq!(balance(&e, ShardAccount::Settlement), 1_099);
}

/// `refund_amount_zero`: 0.80 at 100 % is all code fee; nothing changes.
#[test]
fn ref_1_a_refund_the_fee_swallows_is_refused_and_changes_nothing() {
    let mut e = engine_with(auto(None));
    issue_at(&mut e, "o-1", 1, 80);
    let entries: usize = e.shards().iter().map(|s| s.ledger().entries().len()).sum();
    assert_eq!(
        refund(&mut e, NOW, "o-1", RefundAction::Automatic, 1),
        Err(ErrorCode::RefundAmountZero)
    );
    let after: usize = e.shards().iter().map(|s| s.ledger().entries().len()).sum();
    assert_eq!(after, entries);
    let o = order(&mut e, "o-1");
    assert_eq!(
        (o.state, o.units_remaining, o.refundable),
        (OrderState::Available, 1, Fen::new(80))
    );
}

/// REF-1 only where the category supports it; REF-2 only where it does not.
#[test]
fn ref_1_and_ref_2_follow_the_category() {
    let mut e = engine_with(manual());
    issue_at(&mut e, "o-1", 1, 1_999);
    assert_eq!(
        refund(&mut e, NOW, "o-1", RefundAction::Automatic, 1),
        Err(ErrorCode::RefundNotAllowed)
    );
    let mut e = engine_with(auto(None));
    issue_at(&mut e, "o-1", 1, 1_999);
    let request = RefundAction::Request { amount: None };
    assert_eq!(
        refund(&mut e, NOW, "o-1", request, 1),
        Err(ErrorCode::RefundNotAllowed)
    );
}

/// REF-2: a request locks the unredeemed units (redeeming them is
/// refused), one request per order, the seller approves as REF-4 with its
/// amount (no code fee).
#[test]
fn ref_2_a_request_locks_the_units_until_approved() {
    let mut e = engine_with(manual());
    let code = issue_at(&mut e, "o-1", 3, 1_999);
    let asked = RefundAction::Request {
        amount: Some(Fen::new(3_000)),
    };
    let open = refund(&mut e, NOW, "o-1", asked, 1).unwrap();
    assert_eq!(
        (open.state, open.buyer_amount),
        (RefundState::Requested, Fen::new(3_000))
    );
    let locked = e.apply(NOW + 1, &redeem_cmd(code, 1, 2), &mut Vec::new());
    assert_eq!(locked.unwrap_err().code, ErrorCode::RefundOpen);
    let second = RefundAction::Request { amount: None };
    assert_eq!(
        refund(&mut e, NOW + 1, "o-1", second, 2),
        Err(ErrorCode::RefundOpen)
    );
    let done = refund(&mut e, NOW + 2, "o-1", RefundAction::Approve, 3).unwrap();
    assert_eq!(money(&done), (3_000, 0, 2_997));
    assert_eq!((done.kind, done.units_voided), (RefundKind::Manual, 3));
}

/// REF-2: a rejection unlocks the units on a new code; the old one is void.
#[test]
fn ref_2_a_rejection_unlocks_the_units_on_a_new_code() {
    let mut e = engine_with(manual());
    let code = issue_at(&mut e, "o-1", 2, 1_999);
    refund(
        &mut e,
        NOW,
        "o-1",
        RefundAction::Request { amount: None },
        1,
    )
    .unwrap();
    let no = refund(&mut e, NOW + 1, "o-1", RefundAction::Reject, 2).unwrap();
    assert_eq!(no.state, RefundState::Rejected);
    let new = no.new_code.unwrap();
    assert_ne!(new, code);
    let old = e.apply(NOW + 2, &redeem_cmd(code, 1, 3), &mut Vec::new());
    assert_eq!(old.unwrap_err().code, ErrorCode::CodeInvalid);
    assert_eq!(redeem(&mut e, NOW + 2, new, 2, 4).units_remaining, 0);
    assert_eq!(
        refund(&mut e, NOW + 3, "o-1", RefundAction::Approve, 5),
        Err(ErrorCode::NotFound)
    );
    e.check_invariants();
}

/// REF-2: undecided for 5 calendar days, the request is approved by the
/// tick — not one millisecond before (2026-11-29 12:00 +08:00 → 12-04
/// 12:00 +08:00).
#[test]
fn ref_2_an_undecided_request_is_approved_after_five_calendar_days() {
    let mut e = engine_with(manual());
    issue_at(&mut e, "o-1", 2, 1_999);
    refund(
        &mut e,
        NOW,
        "o-1",
        RefundAction::Request { amount: None },
        1,
    )
    .unwrap();
    let deadline = NOW + 5 * DAY;
    assert_eq!(e.tick(deadline - 1), 0);
    assert!(order(&mut e, "o-1").refund_requested);
    assert_eq!(e.tick(deadline), 1);
    let o = order(&mut e, "o-1");
    assert_eq!(
        (o.state, o.refunded),
        (OrderState::Unavailable, Fen::new(3_998))
    );
    assert_eq!(e.tick(deadline + DAY), 0, "once");
    e.check_invariants();
}

/// REF-3: never delivered, nothing redeemed: the whole amount, no fee;
/// after a redemption it is no longer possible.
#[test]
fn ref_3_not_delivered_refunds_the_whole_order() {
    let mut e = engine_with(auto(Some(5_000)));
    issue_at(&mut e, "o-1", 2, 1_999);
    let done = refund(&mut e, NOW, "o-1", RefundAction::NotDelivered, 1).unwrap();
    assert_eq!(money(&done), (3_998, 0, 0));
    let code = issue_at(&mut e, "o-2", 2, 1_999);
    redeem(&mut e, NOW, code, 1, 1);
    assert_eq!(
        refund(&mut e, NOW, "o-2", RefundAction::NotDelivered, 2),
        Err(ErrorCode::RefundNotAllowed)
    );
}

/// REF-4: an agreed amount up to the unredeemed value; above it is
/// refused, zero pays nothing; the rest is the seller's.
#[test]
fn ref_4_an_agreed_refund_is_bounded_by_the_unredeemed_value() {
    let mut e = engine_with(manual());
    let code = issue_at(&mut e, "o-1", 3, 1_999);
    redeem(&mut e, NOW, code, 1, 1);
    let over = RefundAction::Agreed {
        amount: Fen::new(3_999),
    };
    assert_eq!(
        refund(&mut e, NOW, "o-1", over, 1),
        Err(ErrorCode::RefundAboveRefundable)
    );
    let zero = RefundAction::Agreed { amount: Fen::ZERO };
    assert_eq!(
        refund(&mut e, NOW, "o-1", zero, 2),
        Err(ErrorCode::RefundAmountZero)
    );
    let ok = RefundAction::Agreed {
        amount: Fen::new(2_500),
    };
    let done = refund(&mut e, NOW, "o-1", ok, 3).unwrap();
    assert_eq!(money(&done), (2_500, 0, 1_498));
    assert_eq!(order(&mut e, "o-1").units_void, 2);
}

/// REF-6 with expiry refund at 80 %: G = 39.98, R = 31.98, the buyer
/// 30.98, the seller the fee and 8.00; applied once, at the first tick
/// at the validity end; afterwards ORD-6 refuses to extend.
#[test]
fn ref_6_expiry_refunds_unused_units_once() {
    let mut e = engine_with(auto(Some(8_000)));
    issue_at(&mut e, "o-1", 2, 1_999);
    let until = order(&mut e, "o-1").valid_until_ms;
    assert_eq!(e.tick(until - 1), 0);
    assert_eq!(e.tick(until), 1);
    assert_eq!(e.tick(until + DAY), 0);
    let o = order(&mut e, "o-1");
    assert_eq!(
        (o.unavailable, o.refunded, o.to_seller),
        (Some(Unavailable::Expired), Fen::new(3_098), Fen::new(900))
    );
    let extend = Command::Extend(Extend {
        request_id: rid(9),
        order_id: "o-1".into(),
        valid_until_ms: until + 10 * DAY,
        seller_id: None,
    });
    let refused = e.apply(until + 1, &extend, &mut Vec::new());
    assert_eq!(refused.unwrap_err().code, ErrorCode::ValidityNotExtended);
    e.check_invariants();
}

/// REF-6 whose fee swallows it (0.90 at 100 %: the buyer 0.00, everything
/// the seller's), and SET-1 end without expiry refund (all to the seller).
#[test]
fn ref_6_small_or_without_expiry_refund_goes_to_the_seller() {
    let mut e = engine_with(auto(Some(10_000)));
    issue_at(&mut e, "o-1", 1, 90);
    e.tick(NOW + 31 * DAY);
    let o = order(&mut e, "o-1");
    assert_eq!(
        (o.refunded, o.to_seller, o.state),
        (Fen::ZERO, Fen::new(90), OrderState::Unavailable)
    );
    let mut e = engine_with(auto(None));
    let code = issue_at(&mut e, "o-2", 3, 1_999);
    redeem(&mut e, NOW, code, 1, 1);
    e.tick(NOW + 31 * DAY);
    let o = order(&mut e, "o-2");
    assert_eq!(
        (o.refunded, o.to_seller, o.escrow),
        (Fen::ZERO, Fen::new(3 * 1_999), Fen::ZERO)
    );
    assert_eq!(balance(&e, ShardAccount::Settlement), 3 * 1_999);
    e.check_invariants();
}

/// ORD-6: only later; the new end holds for redemption and expiry.
#[test]
fn ord_6_extend_validity_only_later() {
    let mut e = engine_with(auto(None));
    let code = issue_at(&mut e, "o-1", 2, 1_999);
    let until = order(&mut e, "o-1").valid_until_ms;
    let extend = |serial: u64, to: i64| {
        Command::Extend(Extend {
            request_id: rid(serial),
            order_id: "o-1".into(),
            valid_until_ms: to,
            seller_id: None,
        })
    };
    let same = e.apply(NOW, &extend(1, until), &mut Vec::new());
    assert_eq!(same.unwrap_err().code, ErrorCode::ValidityNotExtended);
    let Ok(Outcome::Extended(x)) = e.apply(NOW, &extend(2, until + 7 * DAY), &mut Vec::new())
    else {
        panic!()
    };
    assert_eq!(x.valid_until_ms, until + 7 * DAY);
    assert_eq!(
        e.tick(until + DAY),
        0,
        "the old end is no deadline any more"
    );
    assert_eq!(redeem(&mut e, until + DAY, code, 1, 3).units_remaining, 1);
    let other = Command::Extend(Extend {
        seller_id: Some(SellerId(11)),
        ..match extend(4, until + 9 * DAY) {
            Command::Extend(x) => x,
            _ => unreachable!(),
        }
    });
    let hidden = e.apply(NOW, &other, &mut Vec::new());
    assert_eq!(
        hidden.unwrap_err().code,
        ErrorCode::NotFound,
        "another seller's order does not exist"
    );
    e.check_invariants();
}

/// ORD-12: available while units remain, used when all are redeemed.
#[test]
fn ord_12_order_states() {
    let mut e = engine_with(auto(None));
    let code = issue_at(&mut e, "o-1", 1, 1_999);
    assert_eq!(order(&mut e, "o-1").state, OrderState::Available);
    redeem(&mut e, NOW, code, 1, 1);
    let o = order(&mut e, "o-1");
    assert_eq!(
        (o.state, o.unavailable, o.refundable),
        (OrderState::Used, None, Fen::ZERO)
    );
}

/// Every order of `state` (None: all) of `seller` across the shards, paged
/// `limit` at a time.
fn list(
    e: &mut Engine,
    seller: Option<SellerId>,
    state: Option<OrderState>,
    limit: u32,
) -> Vec<String> {
    let mut all = Vec::new();
    for shard in 0..2 {
        let mut from = 0;
        loop {
            let c = Command::Orders(ListOrders {
                shard,
                seller_id: seller,
                state,
                from,
                limit,
            });
            let Ok(Outcome::Orders(page)) = e.apply(NOW, &c, &mut Vec::new()) else {
                panic!("an order page")
            };
            assert!(page.items.len() <= limit as usize);
            assert!(page
                .items
                .iter()
                .all(|o| state.is_none_or(|s| o.state == s)));
            all.extend(page.items.into_iter().map(|o| o.order_id));
            match page.next {
                Some(n) => from = n,
                None => break,
            }
        }
    }
    all.sort();
    all
}

/// ORD-12 / RPT-2: the order list by state, for one seller or all, gives
/// each order once whatever the page size; another seller sees none.
#[test]
fn ord_12_orders_list_by_state() {
    let mut e = engine_with(auto(None));
    let codes: Vec<Code> = (0..6)
        .map(|i| issue_at(&mut e, &format!("o-{i}"), 1, 1_999))
        .collect();
    redeem(&mut e, NOW, codes[2], 1, 1);
    refund(&mut e, NOW + 1, "o-1", RefundAction::Automatic, 1).unwrap();
    refund(&mut e, NOW + 1, "o-4", RefundAction::Automatic, 2).unwrap();
    let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    for limit in [1, 2, 1_000] {
        assert_eq!(
            list(&mut e, None, Some(OrderState::Unavailable), limit),
            ids(&["o-1", "o-4"])
        );
        assert_eq!(
            list(
                &mut e,
                Some(SellerId(10)),
                Some(OrderState::Available),
                limit
            ),
            ids(&["o-0", "o-3", "o-5"])
        );
        assert_eq!(
            list(&mut e, None, Some(OrderState::Used), limit),
            ids(&["o-2"])
        );
    }
    assert_eq!(list(&mut e, None, None, 3).len(), 6);
    assert!(list(&mut e, Some(SellerId(11)), None, 10).is_empty());
}

/// SET-2: a T+3 order's redemptions move no money; its whole escrow goes
/// to the seller at the earlier of issue + 3 calendar days and the first
/// redemption's window end — once; afterwards an automatic refund is
/// taken back from the seller, not drawn from escrow.
#[test]
fn set_2_t_plus_3_pays_the_order_once_at_the_earlier_instant() {
    let t3 = ProductTerms {
        t_plus_3: true,
        ..auto(None)
    };
    let mut e = engine_with(t3);
    issue_at(&mut e, "quiet", 2, 1_999);
    assert_eq!(e.tick(NOW + 3 * DAY - 1), 0);
    assert_eq!(
        e.tick(NOW + 3 * DAY),
        1,
        "due exactly 3 calendar days after issue"
    );
    assert_eq!(order(&mut e, "quiet").to_seller, Fen::new(3_998));
    let code = issue_at(&mut e, "busy", 3, 1_999);
    redeem(&mut e, NOW + 10, code, 1, 1);
    assert_eq!(
        balance(&e, ShardAccount::Pending),
        0,
        "T+3 redemptions hold no money"
    );
    e.tick(NOW + 10 + HOUR);
    let o = order(&mut e, "busy");
    assert_eq!(
        (o.to_seller, o.escrow, o.refundable),
        (Fen::new(3 * 1_999), Fen::ZERO, Fen::ZERO)
    );
    assert_eq!(
        e.tick(NOW + 4 * DAY),
        0,
        "the 3-day deadline of a paid order does nothing"
    );
    // REF-1 after the payout: the buyer's part is taken back from the
    // seller (REF-5's mechanics), not drawn from the empty escrow.
    let back = refund(&mut e, NOW + 4 * DAY, "busy", RefundAction::Automatic, 1).unwrap();
    assert_eq!(
        (back.buyer_amount, back.units_voided),
        (Fen::new(2 * 1_999 - 100), 2)
    );
    let o = order(&mut e, "busy");
    assert_eq!(
        (o.taken_back, o.refunded, o.escrow),
        (Fen::new(3_898), Fen::ZERO, Fen::ZERO)
    );
    e.check_invariants();
}

/// SET-2 with the process in UTC: an order issued at local midnight
/// (Shanghai) is due exactly at local midnight 3 days later, whatever the
/// process's own zone (the engine reads only the platform zone).
#[test]
fn set_2_t_plus_3_due_exactly_at_local_midnight() {
    let t3 = ProductTerms {
        t_plus_3: true,
        ..auto(None)
    };
    let mut e = engine_with(t3);
    // 2026-11-30T00:00:00+08:00.
    let midnight = NOW + 12 * HOUR;
    let Command::Issue(c) = issue_cmd("m", 1, 8) else {
        unreachable!()
    };
    e.apply(midnight, &Command::Issue(c), &mut Vec::new())
        .unwrap();
    let due = "2026-12-03T00:00:00+08:00"
        .parse::<jiff::Timestamp>()
        .unwrap()
        .as_millisecond();
    assert_eq!(due, midnight + 3 * DAY);
    assert_eq!(e.tick(due - 1), 0);
    assert_eq!(e.tick(due), 1);
}
