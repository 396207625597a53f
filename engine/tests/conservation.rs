//! MON-4 and REF-7: the money model's accounts, and money conserved per
//! order through redemption, the window's end, refunds and a take-back.

use vouch_engine::catalog::{Account, Actor, CatalogCommand as C, CatalogOutcome};
use vouch_engine::command::*;
use vouch_engine::shard::ShardAccount;
use vouch_engine::{ErrorCode, Fen};

mod common;
use common::*;

/// REF-7 per order: paid = refunded + to the seller + escrow, and the
/// still-refundable figure never lets a refund exceed what is left.
fn assert_conserved(o: &OrderView) {
    assert_eq!(
        o.paid,
        o.refunded + o.to_seller + o.escrow,
        "REF-7 for {}: {o:?}",
        o.order_id
    );
    assert!(o.refundable <= o.paid - o.refunded, "{o:?}");
}

/// REF-7: an order of 4 × 19.99 (79.96) redeemed by 1, its window ended,
/// then refunded automatically (REF-1: 59.97 unredeemed, 58.97 to the buyer
/// after the 1.00 code fee): at every step paid equals refunded plus to
/// the seller plus escrow, to the fen; nothing is left to refund afterwards
/// and a second refund changes nothing.
#[test]
fn ref_7_money_is_conserved_per_order_through_redemption_and_refund() {
    let mut e = engine_with(auto(None));
    let code = issue_at(&mut e, NOW, "o-1", 4, 1_999);
    let o = order(&mut e, "o-1");
    assert_eq!((o.paid, o.escrow), (Fen::new(7_996), Fen::new(7_996)));
    assert_conserved(&o);
    redeem(&mut e, NOW, code, 1, 1).unwrap();
    assert_conserved(&order(&mut e, "o-1"));
    tick(&mut e, NOW + HOUR);
    let o = order(&mut e, "o-1");
    assert_eq!((o.to_seller, o.escrow), (Fen::new(1_999), Fen::new(5_997)));
    assert_conserved(&o);
    let r = refund(&mut e, NOW + HOUR, "o-1", RefundAction::Automatic, 2).unwrap();
    assert_eq!(
        (r.buyer_amount, r.code_fee, r.seller_amount),
        (Fen::new(5_897), Fen::new(100), Fen::ZERO)
    );
    let o = order(&mut e, "o-1");
    assert_eq!(
        (o.refunded, o.to_seller, o.escrow, o.refundable),
        (Fen::new(5_897), Fen::new(2_099), Fen::ZERO, Fen::ZERO)
    );
    assert_conserved(&o);
    let before: usize = e.shards().iter().map(|s| s.ledger().entries().len()).sum();
    assert!(refund(&mut e, NOW + HOUR, "o-1", RefundAction::Automatic, 3).is_err());
    let after: usize = e.shards().iter().map(|s| s.ledger().entries().len()).sum();
    assert_eq!(before, after, "a refused refund writes nothing");
    assert_conserved(&order(&mut e, "o-1"));
}

/// MON-4: each account of the money model holds its money as the order
/// moves. 3 × 19.99 paid (buyers −59.97, escrow 59.97), redeemed and its
/// window ended (pending, then the seller's payable 59.97 in the catalog);
/// an after-sale refund of 15.00 (REF-5) comes 10.00 from the seller's
/// deposit and 5.00 as the seller's receivable into refunds in transit; the
/// settlement nets the 5.00 and sends 54.97 as a payout in transit.
#[test]
fn mon_4_each_account_holds_its_money() {
    let mut w = World::new();
    let Ok(vouch_engine::Outcome::Issued(i)) =
        w.engine
            .apply(NOW, &issue_cmd("o-1", 3, 8), &mut Vec::new())
    else {
        panic!("issue")
    };
    let shard = |w: &World, a| -> i64 {
        w.engine
            .shards()
            .iter()
            .map(|s| s.ledger().balance(a).fen())
            .sum()
    };
    assert_eq!(shard(&w, ShardAccount::Buyers), -5_997);
    assert_eq!(shard(&w, ShardAccount::Escrow), 5_997);
    let redeemed = w
        .engine
        .apply(NOW, &redeem_cmd(i.code, 3, 1), &mut Vec::new());
    assert!(redeemed.is_ok(), "{redeemed:?}");
    assert_eq!(shard(&w, ShardAccount::Escrow), 0);
    assert_eq!(shard(&w, ShardAccount::Pending), 5_997);
    w.deliver(NOW + HOUR);
    assert_eq!(shard(&w, ShardAccount::Pending), 0);
    assert_eq!(w.balance(Account::Payable(SELLER)), 5_997);
    let deposit = w.balance(Account::Deposit(SELLER, CATEGORY));
    assert_eq!(deposit, 1_000);
    w.take_back(NOW + HOUR, "o-1", 1_500, 1);
    assert_eq!(w.balance(Account::Deposit(SELLER, CATEGORY)), 0);
    assert_eq!(w.catalog.receivable(SELLER), Fen::new(500));
    assert_eq!(w.balance(Account::RefundsInTransit), 1_500);
    let run = C::RunSettlement {
        seller: SELLER,
        cutoff_ms: NOW + HOUR + 1,
    };
    let Ok(CatalogOutcome::Settlement(s)) = w.catalog_cmd(Actor::Staff, run) else {
        panic!("settlement")
    };
    assert_eq!((s.netted, s.payout), (Fen::new(500), Fen::new(5_497)));
    assert_eq!(w.balance(Account::Payable(SELLER)), 0);
    assert_eq!(w.balance(Account::PayoutInTransit(SELLER)), 5_497);
    assert_eq!(w.catalog.receivable(SELLER), Fen::ZERO);
    assert_eq!(
        w.step(NOW + HOUR, "o-1", RefundAction::ConfirmAfterSale, 3),
        Err(ErrorCode::NotFound)
    );
    w.engine.check_invariants();
    w.catalog.check_invariants().unwrap();
}
