//! REF-5, the after-sale refund, across the shard and the catalog: after
//! the order's money reached the seller, the buyer asks, the seller
//! confirms, and the amount is taken back from the order's deposit; what
//! the deposit cannot cover is a receivable (with `deposit_short`, ONB-6)
//! netted from the seller's next settlement (SET-3), and a failed payout
//! undoes the netting (MON-7). Conservation holds after every step.

use vouch_engine::catalog::{
    Account, Actor, CatalogCommand as C, CatalogEvent, CatalogOutcome, PayoutState,
};
use vouch_engine::command::*;
use vouch_engine::{ErrorCode, Fen};

mod common;
use common::*;

fn after_sale(fen: i64) -> RefundAction {
    RefundAction::AfterSale {
        amount: Fen::new(fen),
        reason: "stale bread".into(),
    }
}

/// REF-5: before any money reached the seller there is nothing to take
/// back; afterwards the cap is what the seller received; one request at a
/// time; the seller's confirmation takes the amount from the deposit.
#[test]
fn ref_5_after_sale_refund_is_taken_back_from_the_deposit() {
    let mut w = World::new();
    w.sold_and_redeemed("o-1", 3);
    assert_eq!(
        w.step(NOW + 1, "o-1", after_sale(500), 1),
        Err(ErrorCode::RefundNotAllowed),
        "still pending"
    );
    w.deliver(NOW + HOUR);
    assert_eq!(w.balance(Account::Payable(SELLER)), 5_997);
    assert_eq!(
        w.step(NOW + HOUR, "o-1", after_sale(5_998), 2),
        Err(ErrorCode::RefundAboveRefundable)
    );
    assert_eq!(
        w.step(NOW + HOUR, "o-1", after_sale(0), 3),
        Err(ErrorCode::RefundAmountZero)
    );
    let open = w.step(NOW + HOUR, "o-1", after_sale(800), 4).unwrap();
    assert_eq!(
        (open.state, open.buyer_amount),
        (RefundState::Requested, Fen::new(800))
    );
    assert_eq!(
        w.step(NOW + HOUR, "o-1", after_sale(100), 5),
        Err(ErrorCode::RefundOpen)
    );
    let done = w
        .step(NOW + HOUR, "o-1", RefundAction::ConfirmAfterSale, 6)
        .unwrap();
    assert_eq!(
        (done.state, done.refundable),
        (RefundState::Done, Fen::new(5_197))
    );
    w.deliver(NOW + HOUR + 1);
    assert_eq!(w.balance(Account::Deposit(SELLER, CATEGORY)), 200);
    assert_eq!(w.balance(Account::RefundsInTransit), 800);
    assert_eq!(w.catalog.receivable(SELLER), Fen::ZERO);
    assert!(
        w.events
            .iter()
            .any(|e| matches!(e, CatalogEvent::DepositShort { seller: SELLER, .. })),
        "ONB-6: the deposit fell below its 10.00"
    );
    assert_eq!(
        w.step(NOW + HOUR, "o-1", RefundAction::ConfirmAfterSale, 7),
        Err(ErrorCode::NotFound)
    );
}

/// REF-5 beyond the deposit: the rest is owed (a receivable) and netted
/// from the next settlement; a failed payout undoes the netting and the
/// next run nets again; the buyer's refund never waited.
#[test]
fn ref_5_a_short_deposit_books_a_receivable_netted_from_the_next_settlement() {
    let mut w = World::new();
    w.sold_and_redeemed("o-1", 3);
    w.deliver(NOW + HOUR);
    w.step(NOW + HOUR, "o-1", after_sale(4_000), 1).unwrap();
    w.step(NOW + HOUR, "o-1", RefundAction::ConfirmAfterSale, 2)
        .unwrap();
    w.deliver(NOW + HOUR + 1);
    assert_eq!(w.balance(Account::Deposit(SELLER, CATEGORY)), 0);
    assert_eq!(
        w.balance(Account::RefundsInTransit),
        4_000,
        "the buyer is refunded at once"
    );
    assert_eq!(w.catalog.receivable(SELLER), Fen::new(3_000));
    let run = |w: &mut World, cutoff: i64| match w.catalog_cmd(
        Actor::Staff,
        C::RunSettlement {
            seller: SELLER,
            cutoff_ms: cutoff,
        },
    ) {
        Ok(CatalogOutcome::Settlement(s)) => s,
        other => panic!("{other:?}"),
    };
    let s = run(&mut w, NOW + HOUR + 1);
    assert_eq!(
        (s.total, s.netted, s.payout, s.state),
        (
            Fen::new(5_997),
            Fen::new(3_000),
            Fen::new(2_997),
            PayoutState::InTransit
        )
    );
    assert_eq!(w.catalog.receivable(SELLER), Fen::ZERO);
    assert_eq!(w.balance(Account::PayoutInTransit(SELLER)), 2_997);
    w.catalog_cmd(Actor::PaymentSystem, C::FailPayout { settlement: s.id })
        .unwrap();
    assert_eq!(w.catalog.receivable(SELLER), Fen::new(3_000), "owed again");
    assert_eq!(w.balance(Account::Payable(SELLER)), 5_997);
    w.clock = NOW + 2 * HOUR;
    let again = run(&mut w, NOW + 2 * HOUR);
    assert_eq!(
        (again.netted, again.payout),
        (Fen::new(3_000), Fen::new(2_997))
    );
    w.catalog_cmd(
        Actor::PaymentSystem,
        C::ConfirmPayout {
            settlement: again.id,
        },
    )
    .unwrap();
    assert_eq!(w.balance(Account::PayoutInTransit(SELLER)), 0);
    assert_eq!(w.balance(Account::Payable(SELLER)), 0);
}

/// REF-5's cap over several requests: the total taken back never exceeds
/// what the seller received for the order.
#[test]
fn ref_5_the_total_taken_back_never_exceeds_what_the_seller_received() {
    let mut w = World::new();
    w.sold_and_redeemed("o-1", 1);
    w.deliver(NOW + HOUR);
    w.step(NOW + HOUR, "o-1", after_sale(1_500), 1).unwrap();
    w.step(NOW + HOUR, "o-1", RefundAction::ConfirmAfterSale, 2)
        .unwrap();
    assert_eq!(
        w.step(NOW + HOUR, "o-1", after_sale(500), 3),
        Err(ErrorCode::RefundAboveRefundable)
    );
    let last = w.step(NOW + HOUR, "o-1", after_sale(499), 4).unwrap();
    assert_eq!(
        last.refundable,
        Fen::ZERO,
        "the open request's 4.99 is reserved for its confirmation"
    );
    let done = w
        .step(NOW + HOUR, "o-1", RefundAction::ConfirmAfterSale, 5)
        .unwrap();
    assert_eq!(done.refundable, Fen::ZERO);
    w.deliver(NOW + HOUR + 1);
    assert_eq!(w.balance(Account::RefundsInTransit), 1_999);
}
