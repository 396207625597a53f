//! RPT-5, the reconciliation export: every ledger entry of a seller (or,
//! for staff, of the platform) in a time range, one row per entry with its
//! order, voucher, seller, reason, accounts, amount, state and settlement;
//! read page by page from each shard and the catalog, each request doing
//! bounded work.

use vouch_engine::catalog::{
    Actor, CatalogCommand as C, CatalogOutcome, CatalogQuery, CatalogView,
};
use vouch_engine::command::*;
use vouch_engine::ledger::Reason;
use vouch_engine::{Command, Engine, ErrorCode, Fen, Outcome, SellerId};

mod common;
use common::*;

/// Every row of shard `shard`'s ledger in `[from, until)`, of `seller`
/// when given, read `limit` at a time.
fn shard_rows(
    e: &mut Engine,
    shard: u32,
    seller: Option<SellerId>,
    range: (i64, i64),
    limit: u32,
) -> Vec<EntryRow> {
    let (mut rows, mut after) = (Vec::new(), 0);
    loop {
        let c = Command::Entries(ListEntries {
            shard,
            seller_id: seller,
            from_ms: range.0,
            until_ms: range.1,
            after,
            limit,
        });
        let Ok(Outcome::Entries(page)) = e.apply(NOW, &c, &mut Vec::new()) else {
            panic!("an entry page")
        };
        assert!(page.items.len() <= limit as usize);
        rows.extend(page.items);
        match page.next {
            Some(n) => after = n,
            None => return rows,
        }
    }
}

fn catalog_rows(
    w: &World,
    actor: Actor,
    seller: Option<SellerId>,
    range: (i64, i64),
) -> Result<Vec<EntryRow>, ErrorCode> {
    let (mut rows, mut after) = (Vec::new(), 0);
    loop {
        let q = CatalogQuery::Entries {
            seller,
            from_ms: range.0,
            until_ms: range.1,
            after,
            limit: 2,
        };
        let page = match w.catalog.read(actor, &q) {
            Ok(CatalogView::Entries(p)) => p,
            Ok(other) => panic!("{other:?}"),
            Err(r) => return Err(r.code),
        };
        rows.extend(page.items);
        match page.next {
            Some(n) => after = n,
            None => return Ok(rows),
        }
    }
}

/// (reason, debit, credit, fen, state) of each row.
fn shape(rows: &[EntryRow]) -> Vec<(Reason, &str, &str, i64, EntryState)> {
    rows.iter()
        .map(|r| {
            (
                r.reason,
                r.debit.as_str(),
                r.credit.as_str(),
                r.amount.fen(),
                r.state,
            )
        })
        .collect()
}

const ALL: (i64, i64) = (i64::MIN, i64::MAX);

/// RPT-5 for a shard: a redemption is pending inside its window and
/// posted after it; a reversed one is voided; each row names its order,
/// voucher and seller; a time range and a page of one give the same rows.
#[test]
fn rpt_5_shard_entries_show_order_seller_and_the_movements_state() {
    let mut w = World::new();
    w.sold_and_redeemed("o-1", 3);
    let shard = (0..2)
        .find(|s| !shard_rows(&mut w.engine, *s, None, ALL, 10).is_empty())
        .unwrap();
    let rows = shard_rows(&mut w.engine, shard, None, ALL, 10);
    use EntryState::*;
    assert_eq!(
        shape(&rows),
        vec![
            (Reason::Paid, "buyers", "escrow", 5_997, Posted),
            (Reason::Redeemed, "escrow", "pending", 5_997, Pending),
        ]
    );
    assert_eq!(rows[1].order_id.as_deref(), Some("o-1"));
    assert_eq!(rows[1].seller_id, Some(SELLER));
    assert_eq!(rows[1].ledger, LedgerName::Shard(shard));
    assert_eq!(
        (rows[0].id(), rows[1].id()),
        (format!("s{shard}-0"), format!("s{shard}-1"))
    );
    assert_eq!(rows[0].voucher, rows[1].voucher);
    assert_eq!(rows[1].at_ms, NOW);
    w.deliver(NOW + HOUR);
    let rows = shard_rows(&mut w.engine, shard, None, ALL, 1);
    assert_eq!(
        shape(&rows),
        vec![
            (Reason::Paid, "buyers", "escrow", 5_997, Posted),
            (Reason::Redeemed, "escrow", "pending", 5_997, Posted),
            (Reason::WindowEnded, "pending", "settlement", 5_997, Posted),
        ]
    );
    let later = shard_rows(&mut w.engine, shard, None, (NOW + 1, NOW + HOUR + 1), 10);
    assert_eq!(
        shape(&later),
        shape(&rows[2..]),
        "the range keeps only the window end"
    );
    let none = shard_rows(&mut w.engine, shard, Some(SellerId(99)), ALL, 10);
    assert!(none.is_empty(), "another seller's filter shows nothing");
}

/// RPT-5: a reversed redemption's entry is voided, its reversal posted.
#[test]
fn rpt_5_a_reversed_redemption_is_voided() {
    let mut e = engine_with(auto(None));
    let code = issue_at(&mut e, NOW, "o-1", 2, 1_000);
    redeem(&mut e, NOW + 1, code, 1, 1).unwrap();
    reverse(&mut e, NOW + 2, code, 1, 2).unwrap();
    use EntryState::*;
    assert_eq!(
        shape(&shard_rows(&mut e, 0, None, ALL, 10)),
        vec![
            (Reason::Paid, "buyers", "escrow", 2_000, Posted),
            (Reason::Redeemed, "escrow", "pending", 1_000, Voided),
            (Reason::Reversed, "pending", "escrow", 1_000, Posted),
        ]
    );
}

/// RPT-5 with MON-7: a refund (REF-1 of 2 × 19.99: 38.98 to the buyer,
/// the 1.00 code fee to the seller) is pending while in transit, voided
/// when the payment system fails it, and its retry is pending again.
#[test]
fn rpt_5_a_refund_in_transit_is_pending_and_a_failed_one_voided() {
    let mut e = engine_with(auto(None));
    issue_at(&mut e, NOW, "o-1", 2, 1_999);
    refund(&mut e, NOW + 1, "o-1", RefundAction::Automatic, 1).unwrap();
    let state = |e: &mut Engine| shard_rows(e, 0, None, ALL, 10)[1].state;
    assert_eq!(state(&mut e), EntryState::Pending);
    transfer_step(&mut e, NOW + 2, "o-1", 1, TransferAction::Fail, 50_001).unwrap();
    transfer_step(&mut e, NOW + 3, "o-1", 1, TransferAction::Retry, 50_002).unwrap();
    use EntryState::*;
    assert_eq!(
        shape(&shard_rows(&mut e, 0, None, ALL, 10)),
        vec![
            (Reason::Paid, "buyers", "escrow", 3_998, Posted),
            (Reason::Refunded, "escrow", "refunds", 3_898, Voided),
            (Reason::CodeFee, "escrow", "settlement", 100, Posted),
            (
                Reason::RefundFailed,
                "refunds",
                "refunds_failed",
                3_898,
                Posted
            ),
            (
                Reason::RefundRetried,
                "refunds_failed",
                "refunds",
                3_898,
                Pending
            ),
        ]
    );
}

/// RPT-5 for the catalog: the payable line booked from a shard carries
/// the settlement that took it; the payout is pending in transit and
/// voided when failed; a seller reads only its own entries, staff any.
#[test]
fn rpt_5_catalog_entries_carry_the_settlement_and_the_payouts_state() {
    let mut w = World::new();
    w.sold_and_redeemed("o-1", 3);
    w.deliver(NOW + HOUR);
    w.clock = NOW + HOUR + 1;
    let Ok(CatalogOutcome::Settlement(s)) = w.catalog_cmd(
        Actor::Staff,
        C::RunSettlement {
            seller: SELLER,
            cutoff_ms: NOW + HOUR + 1,
        },
    ) else {
        panic!("settlement")
    };
    let since = (NOW + HOUR, i64::MAX);
    let rows = catalog_rows(&w, Actor::Seller(SELLER), None, since).unwrap();
    use EntryState::*;
    assert_eq!(
        shape(&rows),
        vec![
            (Reason::WindowEnded, "from_shards", "payable", 5_997, Posted),
            (
                Reason::PayoutSent,
                "payable",
                "payout_in_transit",
                5_997,
                Pending
            ),
        ]
    );
    assert!(rows
        .iter()
        .all(|r| r.settlement == Some(s.id) && r.seller_id == Some(SELLER)));
    assert!(rows.iter().all(|r| r.ledger == LedgerName::Catalog));
    w.catalog_cmd(Actor::PaymentSystem, C::FailPayout { settlement: s.id })
        .unwrap();
    let rows = catalog_rows(&w, Actor::Staff, Some(SELLER), since).unwrap();
    assert_eq!(
        shape(&rows),
        vec![
            (Reason::WindowEnded, "from_shards", "payable", 5_997, Posted),
            (
                Reason::PayoutSent,
                "payable",
                "payout_in_transit",
                5_997,
                Voided
            ),
            (
                Reason::PayoutFailed,
                "payout_in_transit",
                "payable",
                5_997,
                Posted
            ),
        ]
    );
    assert_eq!(
        rows[0].settlement, None,
        "a failed payout gives its line back"
    );
    let everything = catalog_rows(&w, Actor::Staff, None, ALL).unwrap();
    assert_eq!(everything.len(), w.catalog.ledger().len());
    let total: Fen = everything.iter().map(|r| r.amount).sum();
    let ledger: Fen = w.catalog.ledger().iter().map(|e| e.amount).sum();
    assert_eq!(total, ledger);
    assert_eq!(
        catalog_rows(&w, Actor::Seller(SELLER), Some(SellerId(99)), ALL),
        Err(ErrorCode::NotPermitted)
    );
    assert_eq!(
        catalog_rows(&w, Actor::Seller(SellerId(99)), None, ALL).unwrap(),
        vec![],
        "another seller sees none of these"
    );
    for actor in [
        Actor::FrontEnd,
        Actor::PaymentSystem,
        Actor::Provider(vouch_engine::ProviderId(1)),
    ] {
        assert_eq!(
            catalog_rows(&w, actor, None, ALL),
            Err(ErrorCode::NotPermitted),
            "{actor}"
        );
    }
}

/// RPT-5: a page limit outside 1..=1000 or a range that ends before it
/// starts is `bad_request`.
#[test]
fn rpt_5_bad_pages_and_ranges_are_refused() {
    let mut e = engine_with(auto(None));
    issue_at(&mut e, NOW, "o-1", 1, 100);
    for (limit, from, until) in [(0, 0, 1), (ENTRIES_PAGE_ITEMS_MAX + 1, 0, 1), (10, 5, 4)] {
        let c = Command::Entries(ListEntries {
            shard: 0,
            seller_id: None,
            from_ms: from,
            until_ms: until,
            after: 0,
            limit,
        });
        let r = e.apply(NOW, &c, &mut Vec::new());
        assert_eq!(
            r.map_err(|r| r.code),
            Err(ErrorCode::BadRequest),
            "{limit} {from} {until}"
        );
    }
    let c = Command::Entries(ListEntries {
        shard: 0,
        seller_id: None,
        from_ms: 0,
        until_ms: 1,
        after: u64::MAX,
        limit: 10,
    });
    let Ok(Outcome::Entries(page)) = e.apply(NOW, &c, &mut Vec::new()) else {
        panic!("a page")
    };
    assert_eq!(
        (page.items.len(), page.next),
        (0, None),
        "a cursor past the end"
    );
}

/// RPT-5 with REF-5 and MON-7: the catalog's rows of money taken back
/// from a seller (15.00 after sale: 10.00 from the deposit, 5.00 owed)
/// show the state of the buyer's transfer in the order's shard — pending
/// in transit, voided once the payment system failed it, the retry
/// pending and then posted once confirmed.
#[test]
fn rpt_5_taken_back_refunds_show_their_transfers_state() {
    let mut w = World::new();
    w.sold_and_redeemed("o-1", 3);
    w.deliver(NOW + HOUR);
    w.take_back(NOW + HOUR, "o-1", 1_500, 1);
    let rows = |w: &World| {
        let rows = catalog_rows(w, Actor::Staff, Some(SELLER), ALL).unwrap();
        let of_order = rows
            .into_iter()
            .filter(|r| r.order_id.as_deref() == Some("o-1"));
        of_order
            .map(|r| (r.reason, r.amount.fen(), r.state))
            .collect::<Vec<_>>()
    };
    use EntryState::*;
    let taken = [
        (Reason::AfterSaleRefund, 1_000, Pending),
        (Reason::ReceivableBooked, 500, Pending),
    ];
    assert_eq!(rows(&w), taken);
    let step = |w: &mut World, n, action, serial| {
        let c = transfer_step_cmd("o-1", n, action, serial);
        assert!(w.engine.apply(NOW + HOUR + 2, &c, &mut Vec::new()).is_ok());
        w.deliver(NOW + HOUR + 2);
    };
    step(&mut w, 1, TransferAction::Fail, 50_101);
    let failed = [
        (Reason::AfterSaleRefund, 1_000, Voided),
        (Reason::ReceivableBooked, 500, Voided),
        (Reason::RefundFailed, 1_500, Posted),
    ];
    assert_eq!(rows(&w), failed);
    step(&mut w, 1, TransferAction::Retry, 50_102);
    assert_eq!(rows(&w)[3], (Reason::RefundRetried, 1_500, Pending));
    step(&mut w, 2, TransferAction::Confirm, 50_103);
    assert_eq!(
        rows(&w)[3..],
        [
            (Reason::RefundRetried, 1_500, Posted),
            (Reason::RefundConfirmed, 1_500, Posted)
        ]
    );
}
