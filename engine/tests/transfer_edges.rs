//! Edge cases found by trying to break MON-7 for refunds (refund transfers:
//! confirm, fail, retry; the work list; the catalog's taken-back money;
//! replay). Every step checks every shard invariant (MON-5 ledger check
//! included) through the shared helpers.

use std::panic::{catch_unwind, AssertUnwindSafe};

use vouch_engine::catalog::{Account, Catalog};
use vouch_engine::command::*;
use vouch_engine::log::{LogRecord, ShardBatch, ShardInput};
use vouch_engine::message::{ShardMessage, ShardMessageBody};
use vouch_engine::shard::{Caller, ShardAccount};
use vouch_engine::{Command, Engine, EngineConfig, ErrorCode, Fen, Outcome, Shard};

mod common;
use common::*;

const DAY: i64 = 86_400_000;

const ACCOUNTS: [ShardAccount; 6] = [
    ShardAccount::Buyers,
    ShardAccount::Escrow,
    ShardAccount::Pending,
    ShardAccount::Settlement,
    ShardAccount::Refunds,
    ShardAccount::RefundsFailed,
];

fn page(e: &mut Engine, shard: u32, failed: bool, after: u64, limit: u32) -> TransferPage {
    let c = Command::Transfers(ListTransfers {
        shard,
        failed,
        after,
        limit,
    });
    match e.apply(NOW, &c, &mut Vec::new()) {
        Ok(Outcome::Transfers(p)) => p,
        other => panic!("{other:?}"),
    }
}

fn balances(e: &Engine) -> Vec<i64> {
    ACCOUNTS.iter().map(|a| balance(e, *a)).collect()
}

fn after_sale(fen: i64) -> RefundAction {
    RefundAction::AfterSale {
        amount: Fen::new(fen),
        reason: "broken".into(),
    }
}

/// Steps on transfers that do not exist: transfer 0, u16::MAX, the next
/// number, an unknown order, an empty order id; each action. `not_found`,
/// no panic, nothing moves, and the request id stays free.
#[test]
fn mon_7_steps_on_unknown_transfers_are_not_found_and_change_nothing() {
    let mut e = engine_with(auto(None));
    issue_at(&mut e, NOW, "o-1", 1, 5_000);
    let before = balances(&e);
    let mut serial = 1_000;
    for action in [
        TransferAction::Confirm,
        TransferAction::Fail,
        TransferAction::Retry,
    ] {
        // No transfer yet at all.
        for (order, n) in [
            ("o-1", 1),
            ("o-1", 0),
            ("o-1", u16::MAX),
            ("nope", 1),
            ("", 1),
        ] {
            serial += 1;
            let r = catch_unwind(AssertUnwindSafe(|| {
                transfer_step(&mut e, NOW + 1, order, n, action, serial)
            }));
            assert_eq!(
                r.ok(),
                Some(Err(ErrorCode::NotFound)),
                "{order} #{n} {action:?}"
            );
        }
    }
    refund(&mut e, NOW + 2, "o-1", RefundAction::Automatic, 1).unwrap();
    let refunded = balances(&e);
    for action in [
        TransferAction::Confirm,
        TransferAction::Fail,
        TransferAction::Retry,
    ] {
        for n in [0, 2, 3, 256, 257, u16::MAX - 1, u16::MAX] {
            serial += 1;
            assert_eq!(
                transfer_step(&mut e, NOW + 3, "o-1", n, action, serial),
                Err(ErrorCode::NotFound),
                "#{n} {action:?}"
            );
        }
    }
    assert_eq!(balances(&e), refunded);
    assert_ne!(before, refunded);
    // A refused step binds nothing: its request id works for a real step.
    let t = transfer_step(&mut e, NOW + 4, "o-1", 1, TransferAction::Confirm, serial).unwrap();
    assert!(!t.replayed);
    assert_eq!(t.state, TransferState::Confirmed);
}

/// Every step out of order: retry in transit, confirm/fail a failed or a
/// retried or a confirmed one, retry a confirmed one. Each is refused and
/// moves nothing; the buyer is paid exactly once.
#[test]
fn mon_7_out_of_order_steps_are_refused_and_pay_once() {
    let mut e = engine_with(auto(None));
    issue_at(&mut e, NOW, "o-1", 1, 5_000);
    refund(&mut e, NOW + 1, "o-1", RefundAction::Automatic, 1).unwrap();
    let buyers0 = balance(&e, ShardAccount::Buyers);
    let mut s = 10;
    let mut next = || {
        s += 1;
        s
    };
    use TransferAction::*;
    assert_eq!(
        transfer_step(&mut e, NOW + 2, "o-1", 1, Retry, next()),
        Err(ErrorCode::RefundNotFailed)
    );
    transfer_step(&mut e, NOW + 2, "o-1", 1, Fail, next()).unwrap();
    let b = balances(&e);
    for a in [Confirm, Fail] {
        assert_eq!(
            transfer_step(&mut e, NOW + 3, "o-1", 1, a, next()),
            Err(ErrorCode::RefundNotInTransit)
        );
    }
    assert_eq!(balances(&e), b);
    transfer_step(&mut e, NOW + 4, "o-1", 1, Retry, next()).unwrap();
    let b = balances(&e);
    // The retried one is neither in transit nor failed any more.
    for (a, code) in [
        (Confirm, ErrorCode::RefundNotInTransit),
        (Fail, ErrorCode::RefundNotInTransit),
        (Retry, ErrorCode::RefundNotFailed),
    ] {
        assert_eq!(
            transfer_step(&mut e, NOW + 5, "o-1", 1, a, next()),
            Err(code)
        );
    }
    assert_eq!(balances(&e), b);
    transfer_step(&mut e, NOW + 6, "o-1", 2, Confirm, next()).unwrap();
    for (a, code) in [
        (Confirm, ErrorCode::RefundNotInTransit),
        (Fail, ErrorCode::RefundNotInTransit),
        (Retry, ErrorCode::RefundNotFailed),
    ] {
        assert_eq!(
            transfer_step(&mut e, NOW + 7, "o-1", 2, a, next()),
            Err(code)
        );
        assert_eq!(
            transfer_step(&mut e, NOW + 7, "o-1", 1, a, next()),
            Err(code)
        );
    }
    assert_eq!(balance(&e, ShardAccount::Buyers), buyers0 + 4_900);
    assert_eq!(balance(&e, ShardAccount::Refunds), 0);
    assert_eq!(balance(&e, ShardAccount::RefundsFailed), 0);
    let o = order(&mut e, "o-1");
    assert_eq!(o.refunded, Fen::new(4_900));
    assert_eq!(o.refundable, Fen::ZERO);
    assert_eq!(o.transfers.len(), 2);
}

/// Request ids shared between redemptions, refund steps and transfer
/// steps, in both directions, and the same transfer-step id with other
/// content (another transfer, another order, another action): every reuse
/// is `request_conflict` and moves nothing; the exact repeat is a replay.
#[test]
fn mon_7_request_ids_are_shared_across_redemptions_refunds_and_transfers() {
    let mut e = engine_with(auto(None));
    let code = issue_at(&mut e, NOW, "o-1", 3, 1_000);
    issue_at(&mut e, NOW, "o-2", 1, 1_000);
    redeem(&mut e, NOW + 1, code, 1, 7).unwrap();
    refund(&mut e, NOW + 2, "o-1", RefundAction::Automatic, 8).unwrap();
    refund(&mut e, NOW + 2, "o-2", RefundAction::Automatic, 9).unwrap();
    let b = balances(&e);
    // A redemption's and a refund's ids are taken.
    for serial in [7, 8] {
        assert_eq!(
            transfer_step(&mut e, NOW + 3, "o-1", 1, TransferAction::Confirm, serial),
            Err(ErrorCode::RequestConflict),
            "id {serial}"
        );
    }
    assert_eq!(balances(&e), b);
    transfer_step(&mut e, NOW + 3, "o-1", 1, TransferAction::Fail, 20).unwrap();
    let b = balances(&e);
    // The same id with other content.
    for (o, n, a) in [
        ("o-1", 1, TransferAction::Retry),
        ("o-1", 1, TransferAction::Confirm),
        ("o-1", 2, TransferAction::Fail),
        ("o-2", 1, TransferAction::Fail),
    ] {
        assert_eq!(
            transfer_step(&mut e, NOW + 4, o, n, a, 20),
            Err(ErrorCode::RequestConflict),
            "{o} #{n} {a:?}"
        );
    }
    // A transfer step's id used by a refund step, a redemption, a reversal.
    assert_eq!(
        refund(&mut e, NOW + 4, "o-2", RefundAction::Automatic, 20),
        Err(ErrorCode::RequestConflict)
    );
    let code2 = issue_at(&mut e, NOW + 4, "o-3", 2, 1_000);
    let b3 = balances(&e);
    assert_eq!(
        redeem(&mut e, NOW + 4, code2, 1, 20).map(|_| ()),
        Err(ErrorCode::RequestConflict)
    );
    assert_eq!(
        reverse(&mut e, NOW + 4, code, 7, 20).map(|_| ()),
        Err(ErrorCode::RequestConflict)
    );
    assert_eq!(balances(&e), b3);
    assert_ne!(b, b3, "o-3 was issued");
    // The exact repeat: replayed, nothing again.
    let again = transfer_step(&mut e, NOW + 5, "o-1", 1, TransferAction::Fail, 20).unwrap();
    assert!(again.replayed);
    assert_eq!(again.state, TransferState::Failed);
    assert_eq!(balances(&e), b3);
    // A retry's repeat does not make a third transfer.
    let r1 = transfer_step(&mut e, NOW + 6, "o-1", 1, TransferAction::Retry, 21).unwrap();
    let r2 = transfer_step(&mut e, NOW + 7, "o-1", 1, TransferAction::Retry, 21).unwrap();
    assert_eq!((r1.transfer, r2.transfer, r2.replayed), (2, 2, true));
    assert_eq!(order(&mut e, "o-1").transfers.len(), 2);
}

/// Across shards: a request id bound to one shard by a refund step is a
/// conflict for a transfer step of an order in another shard (the engine
/// sends it to the shard that knows the id).
#[test]
fn mon_7_request_ids_conflict_across_shards() {
    let config = EngineConfig {
        shards: 2,
        ..EngineConfig::default()
    };
    let mut e = Engine::new(config, [9; 32]).unwrap();
    for f in product_facts(auto(None)) {
        e.note_fact(&f);
    }
    // Two orders in different shards.
    let shard_of = |o: &str| {
        vouch_engine::engine::route(&transfer_step_cmd(o, 1, TransferAction::Confirm, 0), 2)
    };
    let a = "o-a".to_string();
    let b = (0..100)
        .map(|i| format!("o-b{i}"))
        .find(|o| shard_of(o) != shard_of(&a))
        .unwrap();
    issue_at(&mut e, NOW, &a, 1, 1_000);
    issue_at(&mut e, NOW, &b, 1, 1_000);
    refund(&mut e, NOW + 1, &a, RefundAction::Automatic, 1).unwrap();
    refund(&mut e, NOW + 1, &b, RefundAction::Automatic, 2).unwrap();
    let before = balances(&e);
    assert_eq!(
        transfer_step(&mut e, NOW + 2, &b, 1, TransferAction::Confirm, 1),
        Err(ErrorCode::RequestConflict)
    );
    assert_eq!(balances(&e), before);
    transfer_step(&mut e, NOW + 2, &b, 1, TransferAction::Confirm, 3).unwrap();
    // Each shard's work list holds its own transfer only.
    let pa = page(&mut e, shard_of(&a), false, 0, 10);
    let pb = page(&mut e, shard_of(&b), false, 0, 10);
    assert_eq!(pa.items.len(), 1);
    assert_eq!(pa.items[0].order_id, a);
    assert!(pb.items.is_empty());
    // A shard number out of range (the server refuses it; the engine
    // routes it mod the count): no panic.
    let r = catch_unwind(AssertUnwindSafe(|| page(&mut e, u32::MAX, false, 0, 10)));
    assert!(r.is_ok());
}

/// The retry cap: fail and retry one refund until the order has had
/// ORDER_TRANSFERS_MAX − 2 transfers (room for an after-sale confirmation
/// and the closing refund); the next retry is `refund_not_allowed`,
/// the money stays failed and owed (listed as failed), nothing moves.
#[test]
fn mon_7_retries_stop_at_the_cap_and_the_money_stays_owed() {
    let mut e = engine_with(auto(None));
    issue_at(&mut e, NOW, "o-1", 1, 5_000);
    refund(&mut e, NOW + 1, "o-1", RefundAction::Automatic, 1).unwrap();
    let mut serial = 100;
    let mut n = 1u16;
    loop {
        serial += 2;
        transfer_step(&mut e, NOW + 2, "o-1", n, TransferAction::Fail, serial).unwrap();
        match transfer_step(&mut e, NOW + 2, "o-1", n, TransferAction::Retry, serial + 1) {
            Ok(t) => {
                assert_eq!(t.transfer, n + 1);
                n = t.transfer;
            }
            Err(code) => {
                assert_eq!(code, ErrorCode::RefundNotAllowed);
                break;
            }
        }
    }
    assert_eq!(n, ORDER_TRANSFERS_MAX - 2);
    assert_eq!(balance(&e, ShardAccount::RefundsFailed), 4_900);
    assert_eq!(balance(&e, ShardAccount::Refunds), 0);
    let failed = page(&mut e, 0, true, 0, 10);
    assert_eq!(failed.items.len(), 1);
    assert_eq!(failed.items[0].transfer, ORDER_TRANSFERS_MAX - 2);
    let o = order(&mut e, "o-1");
    assert_eq!(o.transfers.len(), ORDER_TRANSFERS_MAX as usize - 2);
    assert_eq!(o.refunded, Fen::new(4_900));
    assert_eq!(o.refundable, Fen::ZERO);
    // Still refused, however often.
    for i in 0..3 {
        assert_eq!(
            transfer_step(&mut e, NOW + 3, "o-1", n, TransferAction::Retry, 10_000 + i),
            Err(ErrorCode::RefundNotAllowed)
        );
    }
}

/// The cap again, reached by retries of an after-sale transfer on a T+3
/// order: a later REF-1 (taken back, REF-5's last sentence) must not make
/// the order's transfers exceed ORDER_TRANSFERS_MAX ("most transfers one
/// order may have").
#[test]
fn mon_7_ref_1_after_the_retry_cap_keeps_the_order_within_the_cap() {
    let mut e = engine_with(t3(auto(None)));
    issue_at(&mut e, NOW, "o-1", 3, 3_000);
    tick(&mut e, NOW + 4 * DAY);
    let at = NOW + 4 * DAY;
    refund(&mut e, at, "o-1", after_sale(1), 1).unwrap();
    refund(&mut e, at, "o-1", RefundAction::ConfirmAfterSale, 2).unwrap();
    let mut serial = 100;
    let mut n = 1u16;
    loop {
        serial += 2;
        transfer_step(&mut e, at, "o-1", n, TransferAction::Fail, serial).unwrap();
        match transfer_step(&mut e, at, "o-1", n, TransferAction::Retry, serial + 1) {
            Ok(t) => n = t.transfer,
            Err(_) => break,
        }
    }
    assert_eq!(n, ORDER_TRANSFERS_MAX - 2);
    let r = refund(&mut e, at, "o-1", RefundAction::Automatic, 3);
    let o = order(&mut e, "o-1");
    assert!(
        o.transfers.len() <= ORDER_TRANSFERS_MAX as usize,
        "REF-1 after the cap made transfer {} ({r:?})",
        o.transfers.len()
    );
}

/// The same through an after-sale request opened before the retries and
/// confirmed after them.
#[test]
fn mon_7_after_sale_confirmed_after_the_retry_cap_keeps_the_order_within_the_cap() {
    let mut e = engine_with(t3(auto(None)));
    issue_at(&mut e, NOW, "o-1", 3, 3_000);
    tick(&mut e, NOW + 4 * DAY);
    let at = NOW + 4 * DAY;
    refund(&mut e, at, "o-1", after_sale(1), 1).unwrap();
    refund(&mut e, at, "o-1", RefundAction::ConfirmAfterSale, 2).unwrap();
    refund(&mut e, at, "o-1", after_sale(1), 3).unwrap();
    let mut serial = 100;
    let mut n = 1u16;
    loop {
        serial += 2;
        transfer_step(&mut e, at, "o-1", n, TransferAction::Fail, serial).unwrap();
        match transfer_step(&mut e, at, "o-1", n, TransferAction::Retry, serial + 1) {
            Ok(t) => n = t.transfer,
            Err(_) => break,
        }
    }
    let r = refund(&mut e, at, "o-1", RefundAction::ConfirmAfterSale, 4);
    let o = order(&mut e, "o-1");
    assert!(
        o.transfers.len() <= ORDER_TRANSFERS_MAX as usize,
        "after-sale confirmed after the cap made transfer {} ({r:?})",
        o.transfers.len()
    );
}

/// After-sale refunds repeated until the after-sale cap (half the transfer
/// cap): the next request is `refund_not_allowed`; every transfer is in
/// transit, listed once across pages, and the money is conserved.
#[test]
fn mon_7_after_sale_refunds_repeated_up_to_the_cap() {
    let mut e = engine_with(t3(auto(None)));
    issue_at(&mut e, NOW, "o-1", 1, 50_000);
    tick(&mut e, NOW + 4 * DAY);
    let at = NOW + 4 * DAY;
    let mut count = 0u16;
    let mut serial = 10;
    let last = loop {
        serial += 2;
        match refund(&mut e, at, "o-1", after_sale(1), serial) {
            Ok(_) => {
                let done = refund(
                    &mut e,
                    at,
                    "o-1",
                    RefundAction::ConfirmAfterSale,
                    serial + 1,
                )
                .unwrap();
                count += 1;
                assert_eq!(done.transfer, Some(count));
            }
            Err(code) => break code,
        }
    };
    assert_eq!(last, ErrorCode::RefundNotAllowed);
    assert_eq!(count, ORDER_TRANSFERS_MAX / 2);
    let o = order(&mut e, "o-1");
    assert_eq!(o.taken_back, Fen::new(i64::from(count)));
    // Paged in pieces: each once, in order.
    let mut seen = Vec::new();
    let mut after = 0;
    loop {
        let p = page(&mut e, 0, false, after, 7);
        assert!(p.items.len() <= 7);
        seen.extend(p.items.iter().map(|t| t.transfer));
        match p.next {
            Some(n) => after = n,
            None => break,
        }
    }
    assert_eq!(seen, (1..=count).collect::<Vec<_>>());
}

/// Paging cursors from a client: u64::MAX, cursors whose high bits are
/// beyond any slot, cursors pointing between items or at a transfer
/// number 0 or u16::MAX, limit 0 and u32::MAX. No panic; a page never
/// exceeds its limit (limit 0 is treated as 1) or the page maximum; a
/// cursor never repeats an item before it.
#[test]
fn mon_7_paging_cursors_from_a_client_do_not_panic() {
    let mut e = engine_with(auto(None));
    for i in 0..5 {
        let id = format!("o-{i}");
        issue_at(&mut e, NOW, &id, 1, 1_000 + i);
        refund(&mut e, NOW + 1, &id, RefundAction::Automatic, i as u64).unwrap();
    }
    let all = page(&mut e, 0, false, 0, 1_000);
    assert_eq!(all.items.len(), 5);
    assert_eq!(all.next, None);
    for after in [
        u64::MAX,
        u64::MAX - 1,
        1 << 48,
        (u64::from(u32::MAX) << 16) | 0xFFFF,
        (1 << 63) | 1,
    ] {
        let p = catch_unwind(AssertUnwindSafe(|| page(&mut e, 0, false, after, 10)))
            .unwrap_or_else(|_| panic!("after = {after}"));
        assert!(p.items.is_empty(), "after = {after}: {p:?}");
        assert_eq!(p.next, None);
    }
    // Limit 0 and u32::MAX.
    let p = page(&mut e, 0, false, 0, 0);
    assert!(p.items.len() <= 1);
    let p = page(&mut e, 0, false, 0, u32::MAX);
    assert_eq!(p.items.len(), 5);
    // A cursor at (slot 2, 0) and (slot 2, u16::MAX): from slot 2's
    // transfer 1, and from slot 3.
    let p = page(&mut e, 0, false, 2 << 16, 10);
    assert_eq!(p.items.first().map(|t| t.order_id.as_str()), Some("o-2"));
    let p = page(&mut e, 0, false, (2 << 16) | 0xFFFF, 10);
    assert_eq!(p.items.first().map(|t| t.order_id.as_str()), Some("o-3"));
    assert_eq!(p.items.len(), 2);
    // The failed list is empty whatever the cursor.
    for after in [0, 2 << 16, u64::MAX] {
        assert!(page(&mut e, 0, true, after, 10).items.is_empty());
    }
}

/// A failed transfer still counts as refunded for every cap: no second
/// refund of any kind while it waits, and the after-sale cap is unchanged.
#[test]
fn mon_7_a_failed_transfer_counts_as_refunded_for_every_cap() {
    let mut e = engine_with(t3(auto(None)));
    issue_at(&mut e, NOW, "o-1", 2, 3_000);
    tick(&mut e, NOW + 4 * DAY);
    let at = NOW + 4 * DAY;
    refund(&mut e, at, "o-1", after_sale(6_000), 1).unwrap();
    refund(&mut e, at, "o-1", RefundAction::ConfirmAfterSale, 2).unwrap();
    transfer_step(&mut e, at, "o-1", 1, TransferAction::Fail, 3).unwrap();
    assert_eq!(
        refund(&mut e, at, "o-1", after_sale(1), 4),
        Err(ErrorCode::RefundAboveRefundable)
    );
    assert_eq!(
        refund(&mut e, at, "o-1", RefundAction::Automatic, 5),
        Err(ErrorCode::RefundAmountZero)
    );
    transfer_step(&mut e, at, "o-1", 1, TransferAction::Retry, 6).unwrap();
    transfer_step(&mut e, at, "o-1", 2, TransferAction::Confirm, 7).unwrap();
    assert_eq!(
        refund(&mut e, at, "o-1", after_sale(1), 8),
        Err(ErrorCode::RefundAboveRefundable)
    );
    assert_eq!(order(&mut e, "o-1").taken_back, Fen::new(6_000));
}

/// REF-5's cap with MON-7: an after-sale request is open (25.00 of a
/// 60.00 T+3 order that was paid out) when the buyer's REF-1 takes back
/// 59.00; confirming the request then takes back 25.00 more: 84.00 refunded
/// for a 60.00 order. The total taken back must never exceed what the
/// seller received (REF-5), nor what the buyer paid (REF-7).
#[test]
fn mon_7_an_open_after_sale_and_ref_1_never_take_back_more_than_received() {
    let mut e = engine_with(t3(auto(None)));
    issue_at(&mut e, NOW, "o-1", 2, 3_000);
    tick(&mut e, NOW + 4 * DAY);
    let at = NOW + 4 * DAY;
    refund(&mut e, at, "o-1", after_sale(2_500), 1).unwrap();
    let r1 = refund(&mut e, at, "o-1", RefundAction::Automatic, 2);
    let confirm = refund(&mut e, at, "o-1", RefundAction::ConfirmAfterSale, 3);
    let o = order(&mut e, "o-1");
    let sent: i64 = o
        .transfers
        .iter()
        .filter(|t| t.retry_of.is_none())
        .map(|t| t.amount.fen())
        .sum();
    assert!(
        o.taken_back <= o.paid && sent <= o.paid.fen(),
        "taken back {} (transfers {sent}) of a {} order: REF-1 {r1:?}, confirm {confirm:?}",
        o.taken_back,
        o.paid
    );
}

/// The same with REF-6: the expiry takes back its refund while an
/// after-sale request is open; the confirmation must stay within the cap.
#[test]
fn mon_7_an_open_after_sale_and_the_expiry_never_take_back_more_than_received() {
    let mut e = engine_with(t3(auto(Some(8_000))));
    issue_at(&mut e, NOW, "o-1", 2, 3_000);
    tick(&mut e, NOW + 4 * DAY);
    refund(&mut e, NOW + 4 * DAY, "o-1", after_sale(2_500), 1).unwrap();
    tick(&mut e, NOW + 31 * DAY);
    let confirm = refund(
        &mut e,
        NOW + 31 * DAY,
        "o-1",
        RefundAction::ConfirmAfterSale,
        3,
    );
    let o = order(&mut e, "o-1");
    assert!(
        o.taken_back <= o.paid,
        "taken back {} of a {} order: confirm {confirm:?}, transfers {:?}",
        o.taken_back,
        o.paid,
        o.transfers
    );
}

/// The catalog's side of taken-back transfers: messages applied twice are
/// no-ops, a message ahead of its predecessor is refused and changes
/// nothing, then the whole stream in order lands every balance; a forged
/// confirmation larger than what is in transit is refused, not a panic.
#[test]
fn mon_7_catalog_transfer_messages_twice_and_out_of_order() {
    let mut e = engine_with(t3(auto(None)));
    issue_at(&mut e, NOW, "o-1", 2, 3_000);
    tick(&mut e, NOW + 4 * DAY);
    let at = NOW + 4 * DAY;
    refund(&mut e, at, "o-1", after_sale(2_500), 1).unwrap();
    refund(&mut e, at, "o-1", RefundAction::ConfirmAfterSale, 2).unwrap();
    transfer_step(&mut e, at, "o-1", 1, TransferAction::Fail, 3).unwrap();
    transfer_step(&mut e, at, "o-1", 1, TransferAction::Retry, 4).unwrap();
    transfer_step(&mut e, at, "o-1", 2, TransferAction::Confirm, 5).unwrap();
    let messages = e.shard_mut(0).take_messages();
    let transfers = messages
        .iter()
        .filter(|m| matches!(m.body, ShardMessageBody::TransferNumbered { .. }))
        .count();
    assert_eq!(transfers, 3, "fail, retry, confirm: {messages:?}");
    let mut catalog = Catalog::new(jiff::tz::TimeZone::get("Asia/Shanghai").unwrap());
    let later = at + 1;
    let ext0 = catalog.balance(Account::External);
    // Out of order: the last first.
    let last = messages.last().unwrap();
    let r = catalog.apply_message(later, last, &mut Vec::new());
    assert!(r.is_err(), "{r:?}");
    catalog.check_invariants().unwrap();
    assert_eq!(catalog.balance(Account::RefundsInTransit), Fen::ZERO);
    for m in &messages {
        assert_eq!(catalog.apply_message(later, m, &mut Vec::new()), Ok(true));
        assert_eq!(catalog.apply_message(later, m, &mut Vec::new()), Ok(false));
        catalog.check_invariants().unwrap();
    }
    // Everything again, in reverse: nothing.
    for m in messages.iter().rev() {
        assert_eq!(catalog.apply_message(later, m, &mut Vec::new()), Ok(false));
    }
    assert_eq!(catalog.balance(Account::RefundsInTransit), Fen::ZERO);
    assert_eq!(catalog.balance(Account::RefundsFailed), Fen::ZERO);
    assert_eq!(
        (catalog.balance(Account::External) - ext0).fen(),
        2_500,
        "the buyer got 25.00 once"
    );
    // A forged next message: confirm more than is in transit.
    let forged = ShardMessage {
        shard: 0,
        seq: last.seq + 1,
        at_ms: later,
        body: ShardMessageBody::Transfer {
            seller: vouch_engine::SellerId(10),
            order_id: "o-1".into(),
            reason: vouch_engine::ledger::Reason::RefundConfirmed,
            amount: Fen::new(1),
        },
    };
    let r = catch_unwind(AssertUnwindSafe(|| {
        catalog.apply_message(later, &forged, &mut Vec::new())
    }));
    assert!(matches!(r, Ok(Err(_))), "{r:?}");
    catalog.check_invariants().unwrap();
}

// ---- replay -------------------------------------------------------------

enum In {
    Cmd(Command),
    Tick,
}

fn new_shard() -> Shard {
    let config = EngineConfig {
        shards: 1,
        ..EngineConfig::default()
    };
    Shard::new(0, config, [5; 32]).unwrap()
}

/// Runs `batches` through the live path (ShardBatch), returning the log
/// records and the shard.
fn run_live(
    terms: vouch_engine::message::ProductTerms,
    batches: Vec<(i64, Vec<In>)>,
) -> (Shard, Vec<LogRecord>) {
    let mut s = new_shard();
    let mut records = Vec::new();
    let mut first = true;
    for (now, inputs) in batches {
        let mut b = ShardBatch::new(now);
        if first {
            for f in product_facts(terms) {
                b.fact(&mut s, f);
            }
            first = false;
        }
        for i in inputs {
            match i {
                In::Tick => {
                    b.tick(&mut s);
                }
                In::Cmd(c) => {
                    b.command(&mut s, Caller::Staff, &c, &mut Vec::new());
                }
            }
            s.check_invariants();
        }
        if let Some(r) = b.record(0) {
            records.push(r);
        }
    }
    (s, records)
}

fn state(s: &mut Shard, orders: &[&str]) -> String {
    let mut out = String::new();
    for o in orders {
        let c = Command::Order(OrderShow {
            order_id: (*o).into(),
            seller_id: None,
        });
        out += &format!("{:?}\n", s.apply(NOW, &c, &mut Vec::new()));
    }
    for failed in [false, true] {
        let c = Command::Transfers(ListTransfers {
            shard: 0,
            failed,
            after: 0,
            limit: 1_000,
        });
        out += &format!("{:?}\n", s.apply(NOW, &c, &mut Vec::new()));
    }
    out += &format!("{:?}\n", s.ledger().entries());
    for a in ACCOUNTS {
        out += &format!("{a:?} {}\n", s.ledger().balance(a).fen());
    }
    out += &format!("sent {}\n", s.messages_sent());
    out
}

/// Replaying the log of a shard that made, failed, retried and confirmed
/// refund transfers (escrow and taken back, with repeats and refused steps
/// in the live batches, which are not logged) rebuilds the same transfers,
/// ledger, work lists and catalog messages.
#[test]
fn mon_7_replaying_the_log_rebuilds_identical_transfers() {
    use TransferAction::*;
    let tr = |o: &str, n: u16, a: TransferAction, s: u64| In::Cmd(transfer_step_cmd(o, n, a, s));
    let rf = |o: &str, a: RefundAction, s: u64| In::Cmd(refund_cmd(o, a, s, None));
    let batches = vec![
        (
            NOW,
            vec![
                In::Cmd(issue_cmd("o-1", 2, 8)),
                In::Cmd(issue_cmd("o-2", 1, 8)),
                In::Cmd(issue_cmd("o-t", 2, 8)),
                In::Cmd(issue_cmd("o-r", 2, 8)),
            ],
        ),
        (
            NOW + 10,
            vec![
                rf("o-1", RefundAction::Automatic, 1),
                rf("o-2", RefundAction::Automatic, 2),
                tr("o-1", 1, Fail, 3),
                tr("o-1", 1, Fail, 3),    // repeat
                tr("o-1", 1, Confirm, 4), // refused
                tr("o-1", 0, Retry, 5),   // not found
                tr("o-1", 1, Retry, 6),
                tr("o-2", 1, Confirm, 7),
            ],
        ),
        (
            NOW + 20,
            vec![
                tr("o-1", 2, Fail, 8),
                tr("o-1", 2, Retry, 9),
                tr("o-1", 3, Confirm, 10),
                tr("o-1", 3, Confirm, 10),
            ],
        ),
        // "o-t" is paid out under T+3 (the tick); "o-r" (same terms) too.
        (NOW + 4 * DAY, vec![In::Tick]),
        (
            NOW + 4 * DAY + 1,
            vec![
                rf("o-t", after_sale(1_000), 11),
                rf("o-t", RefundAction::ConfirmAfterSale, 12),
                tr("o-t", 1, Fail, 13),
                tr("o-t", 1, Retry, 14),
                rf("o-t", after_sale(500), 15),
                rf("o-t", RefundAction::ConfirmAfterSale, 16),
                tr("o-t", 2, Confirm, 17),
                tr("o-t", 3, Fail, 18),
                rf("o-t", RefundAction::Automatic, 19),
                tr("o-t", 4, Confirm, 20),
                rf("o-r", RefundAction::Automatic, 21),
                tr("o-r", 1, Fail, 22),
            ],
        ),
        (NOW + 40 * DAY, vec![In::Tick, tr("o-r", 1, Retry, 23)]),
    ];
    let orders = ["o-1", "o-2", "o-t", "o-r"];
    let (mut live, records) = run_live(t3(auto(None)), batches);
    let live_messages = live.take_messages();
    let live_state = state(&mut live, &orders);
    assert!(live_state.contains("Retried"), "{live_state}");

    // Through the bytes, as recovery reads them.
    let mut replayed = new_shard();
    for r in &records {
        let r = LogRecord::decode(&r.encode()).unwrap();
        let LogRecord::Shard { now_ms, inputs, .. } = r else {
            panic!("a shard record")
        };
        assert!(inputs
            .iter()
            .all(|i| !matches!(i, ShardInput::Command(Command::Transfers(_)))));
        ShardBatch::replay(&mut replayed, now_ms, &inputs, &mut Vec::new(), |s, _| {
            s.check_invariants()
        })
        .unwrap();
    }
    replayed.check_invariants();
    let replayed_messages = replayed.take_messages();
    assert_eq!(replayed_messages, live_messages);
    assert_eq!(state(&mut replayed, &orders), live_state);
    // The repeats and refusals were not logged: 3 + 3 + 6 + 1 transfer steps.
    let logged_steps = records
        .iter()
        .flat_map(|r| match r {
            LogRecord::Shard { inputs, .. } => inputs.clone(),
            _ => vec![],
        })
        .filter(|i| matches!(i, ShardInput::Command(Command::TransferStep(_))))
        .count();
    assert_eq!(logged_steps, 13);
}
