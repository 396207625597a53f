//! MON-7 for buyers: a refund's money is in transit until the payment
//! system confirms it; a failed transfer goes back to the buyers' failed
//! account, still owed and still counted as refunded, until it is retried
//! as a new transfer. Refunds taken back from the seller (REF-5, and
//! REF-1 after a T+3 payout) travel the same way with their money held by
//! the catalog, moved by exactly-once shard messages.

use vouch_engine::catalog::{Account, Catalog};
use vouch_engine::command::*;
use vouch_engine::message::ShardMessageBody;
use vouch_engine::shard::ShardAccount;
use vouch_engine::{Command, Engine, ErrorCode, Fen, Outcome};

mod common;
use common::*;

const DAY: i64 = 86_400_000;

fn list(e: &mut Engine, failed: bool, limit: u32) -> Vec<(String, u16)> {
    let mut all = Vec::new();
    let mut after = 0;
    loop {
        let c = Command::Transfers(ListTransfers {
            shard: 0,
            failed,
            after,
            limit,
        });
        let Ok(Outcome::Transfers(page)) = e.apply(NOW, &c, &mut Vec::new()) else {
            panic!("a transfer page")
        };
        assert!(page.items.len() <= limit as usize);
        all.extend(page.items.into_iter().map(|t| (t.order_id, t.transfer)));
        match page.next {
            Some(n) => after = n,
            None => return all,
        }
    }
}

/// MON-7: REF-1 of 2 × 19.99 pays 38.98 as transfer 1, in transit; the
/// payment system's confirmation moves it out of the platform and nothing
/// else (the order was refunded when the refund was made). A second answer
/// is `refund_not_in_transit`; the same request again is a repeat.
#[test]
fn mon_7_a_refund_is_in_transit_until_the_payment_system_confirms_it() {
    let mut e = engine_with(auto(None));
    issue_at(&mut e, NOW, "o-1", 2, 1_999);
    let r = refund(&mut e, NOW + 1, "o-1", RefundAction::Automatic, 1).unwrap();
    assert_eq!((r.buyer_amount.fen(), r.transfer), (3_898, Some(1)));
    assert_eq!(balance(&e, ShardAccount::Refunds), 3_898);
    let before = order(&mut e, "o-1");
    assert_eq!(before.transfers.len(), 1);
    assert_eq!(
        (before.transfers[0].state, before.transfers[0].amount.fen()),
        (TransferState::InTransit, 3_898)
    );
    assert_eq!(list(&mut e, false, 10), [("o-1".to_string(), 1)]);

    let buyers = balance(&e, ShardAccount::Buyers);
    let done = transfer_step(&mut e, NOW + 2, "o-1", 1, TransferAction::Confirm, 50_001).unwrap();
    assert_eq!(
        (done.state, done.replayed),
        (TransferState::Confirmed, false)
    );
    assert_eq!(balance(&e, ShardAccount::Refunds), 0);
    assert_eq!(balance(&e, ShardAccount::Buyers), buyers + 3_898);
    assert!(list(&mut e, false, 10).is_empty());
    let after = order(&mut e, "o-1");
    assert_eq!(
        (after.refunded, after.refundable),
        (before.refunded, Fen::ZERO)
    );

    let again = transfer_step(&mut e, NOW + 3, "o-1", 1, TransferAction::Confirm, 50_001).unwrap();
    assert!(again.replayed, "the same request id is a repeat");
    let twice = transfer_step(&mut e, NOW + 3, "o-1", 1, TransferAction::Fail, 50_002);
    assert_eq!(twice, Err(ErrorCode::RefundNotInTransit));
    let retry = transfer_step(&mut e, NOW + 3, "o-1", 1, TransferAction::Retry, 50_003);
    assert_eq!(retry, Err(ErrorCode::RefundNotFailed));
    assert_eq!(balance(&e, ShardAccount::Buyers), buyers + 3_898);
}

/// MON-7: a failed transfer's money is owed to the buyer (refunds
/// failed), still counts as refunded (nothing is refundable again), and a
/// retry sends it as transfer 2; the failed one is `retried` and cannot be
/// retried twice. Unknown transfers and orders are `not_found`.
#[test]
fn mon_7_a_failed_refund_is_owed_until_retried_as_a_new_transfer() {
    let mut e = engine_with(auto(None));
    issue_at(&mut e, NOW, "o-1", 1, 5_000);
    refund(&mut e, NOW + 1, "o-1", RefundAction::Automatic, 1).unwrap();
    let failed = transfer_step(&mut e, NOW + 2, "o-1", 1, TransferAction::Fail, 50_001).unwrap();
    assert_eq!(failed.state, TransferState::Failed);
    assert_eq!(balance(&e, ShardAccount::Refunds), 0);
    assert_eq!(balance(&e, ShardAccount::RefundsFailed), 4_900);
    assert_eq!(order(&mut e, "o-1").refundable, Fen::ZERO);
    let again = refund(&mut e, NOW + 3, "o-1", RefundAction::Automatic, 2);
    assert_eq!(
        again,
        Err(ErrorCode::RefundNotAllowed),
        "refunded once only"
    );
    assert_eq!(list(&mut e, true, 10), [("o-1".to_string(), 1)]);

    let retried = transfer_step(&mut e, NOW + 4, "o-1", 1, TransferAction::Retry, 50_002).unwrap();
    assert_eq!(
        (retried.transfer, retried.retry_of, retried.state),
        (2, Some(1), TransferState::InTransit)
    );
    assert_eq!(balance(&e, ShardAccount::RefundsFailed), 0);
    assert_eq!(balance(&e, ShardAccount::Refunds), 4_900);
    let first = &order(&mut e, "o-1").transfers[0];
    assert_eq!(
        (first.state, first.retried_as),
        (TransferState::Retried, Some(2))
    );
    assert_eq!(
        transfer_step(&mut e, NOW + 5, "o-1", 1, TransferAction::Retry, 50_003),
        Err(ErrorCode::RefundNotFailed)
    );
    assert!(list(&mut e, true, 10).is_empty());
    transfer_step(&mut e, NOW + 6, "o-1", 2, TransferAction::Confirm, 50_004).unwrap();
    assert_eq!(balance(&e, ShardAccount::Refunds), 0);
    assert_eq!(
        transfer_step(&mut e, NOW + 7, "o-1", 3, TransferAction::Confirm, 50_005),
        Err(ErrorCode::NotFound)
    );
    assert_eq!(
        transfer_step(&mut e, NOW + 7, "o-2", 1, TransferAction::Confirm, 50_006),
        Err(ErrorCode::NotFound)
    );
}

/// MON-7: a request id already used by a refund step conflicts with a
/// transfer step, and a transfer step's id with different content
/// conflicts; neither changes anything.
#[test]
fn mon_7_transfer_steps_are_idempotent_by_request_id() {
    let mut e = engine_with(auto(None));
    issue_at(&mut e, NOW, "o-1", 1, 5_000);
    refund(&mut e, NOW + 1, "o-1", RefundAction::Automatic, 1).unwrap();
    let c = Command::TransferStep(TransferStep {
        request_id: rid(1),
        order_id: "o-1".into(),
        transfer: 1,
        action: TransferAction::Confirm,
    });
    let reused = e.apply(NOW + 2, &c, &mut Vec::new()).unwrap_err();
    assert_eq!(reused.code, ErrorCode::RequestConflict);
    transfer_step(&mut e, NOW + 2, "o-1", 1, TransferAction::Fail, 50_001).unwrap();
    let other = transfer_step(&mut e, NOW + 3, "o-1", 1, TransferAction::Confirm, 50_001);
    assert_eq!(other, Err(ErrorCode::RequestConflict));
    assert_eq!(balance(&e, ShardAccount::RefundsFailed), 4_900);
}

/// The payment system's work list pages through every transfer in
/// transit once, in order, whatever the page size.
#[test]
fn mon_7_the_transfers_in_transit_page_through_once() {
    let mut e = engine_with(auto(None));
    for i in 0..7 {
        let id = format!("o-{i}");
        issue_at(&mut e, NOW, &id, 1, 1_000 + i);
        refund(&mut e, NOW + 1, &id, RefundAction::Automatic, i as u64).unwrap();
    }
    transfer_step(&mut e, NOW + 2, "o-3", 1, TransferAction::Fail, 50_001).unwrap();
    let whole = list(&mut e, false, 1_000);
    assert_eq!(whole.len(), 6);
    for limit in [1, 2, 5] {
        assert_eq!(list(&mut e, false, limit), whole, "page size {limit}");
    }
    assert_eq!(list(&mut e, true, 1), [("o-3".to_string(), 1)]);
}

/// MON-7 with REF-5: an after-sale refund after a T+3 payout is taken back
/// by the catalog; its transfer's confirmation (and a failure and retry)
/// reach the catalog as messages that move the money there, exactly once.
#[test]
fn mon_7_taken_back_refunds_move_in_the_catalog() {
    let mut e = engine_with(t3(auto(None)));
    issue_at(&mut e, NOW, "o-1", 2, 3_000);
    tick(&mut e, NOW + 4 * DAY);
    assert!(order(&mut e, "o-1").escrow.is_zero(), "paid out under T+3");
    let after_sale = RefundAction::AfterSale {
        amount: Fen::new(2_500),
        reason: "stale".into(),
    };
    refund(&mut e, NOW + 4 * DAY, "o-1", after_sale, 1).unwrap();
    let done = refund(
        &mut e,
        NOW + 4 * DAY,
        "o-1",
        RefundAction::ConfirmAfterSale,
        2,
    )
    .unwrap();
    assert_eq!(done.transfer, Some(1));
    let t = &order(&mut e, "o-1").transfers[0];
    assert_eq!(
        (t.source, t.state),
        (TransferSource::TakenBack, TransferState::InTransit)
    );

    let mut catalog = Catalog::new(jiff::tz::TimeZone::get("Asia/Shanghai").unwrap());
    let deliver = |e: &mut Engine, catalog: &mut Catalog| {
        let messages = e.shard_mut(0).take_messages();
        for m in &messages {
            assert!(catalog
                .apply_message(NOW + 5 * DAY, m, &mut Vec::new())
                .unwrap());
            assert!(!catalog
                .apply_message(NOW + 5 * DAY, m, &mut Vec::new())
                .unwrap());
        }
        catalog.check_invariants().unwrap();
        messages
    };
    deliver(&mut e, &mut catalog);
    assert_eq!(catalog.balance(Account::RefundsInTransit).fen(), 2_500);

    transfer_step(
        &mut e,
        NOW + 5 * DAY,
        "o-1",
        1,
        TransferAction::Fail,
        50_001,
    )
    .unwrap();
    let sent = deliver(&mut e, &mut catalog);
    assert!(matches!(
        sent[..],
        [vouch_engine::message::ShardMessage {
            body: ShardMessageBody::TransferNumbered { .. },
            ..
        }]
    ));
    assert_eq!(catalog.balance(Account::RefundsInTransit).fen(), 0);
    assert_eq!(catalog.balance(Account::RefundsFailed).fen(), 2_500);
    transfer_step(
        &mut e,
        NOW + 5 * DAY,
        "o-1",
        1,
        TransferAction::Retry,
        50_002,
    )
    .unwrap();
    transfer_step(
        &mut e,
        NOW + 5 * DAY,
        "o-1",
        2,
        TransferAction::Confirm,
        50_003,
    )
    .unwrap();
    let outside = catalog.balance(Account::External).fen();
    deliver(&mut e, &mut catalog);
    assert_eq!(catalog.balance(Account::RefundsFailed).fen(), 0);
    assert_eq!(catalog.balance(Account::RefundsInTransit).fen(), 0);
    assert_eq!(catalog.balance(Account::External).fen(), outside + 2_500);
    assert_eq!(
        balance(&e, ShardAccount::Refunds),
        0,
        "the shard held none of it"
    );
}
