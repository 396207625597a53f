//! Edge cases found by trying to break REF-5 (after-sale refunds: the shard's cap, the TakeBack
//! message, the catalog's deposit/receivable) and SET-3 netting, with the
//! catalog's and shards' invariants checked after every step and the
//! catalog's log replayed at the end.

use std::panic::{catch_unwind, AssertUnwindSafe};

use vouch_engine::catalog::{
    Account, Actor, Catalog, CatalogCommand as C, CatalogEvent, CatalogOutcome, CatalogQuery,
    CatalogView, PayoutState, SellerKind, SettlementView,
};
use vouch_engine::command::*;
use vouch_engine::log::{CatalogBatch, CatalogEntry, CatalogInput};
use vouch_engine::message::{CatalogFact, ProductTerms, ShardMessage, ShardMessageBody};
use vouch_engine::validity::Validity;
use vouch_engine::{
    Bps, CategoryId, Code, Command, Engine, EngineConfig, ErrorCode, Fen, Outcome, OutletId, PosId,
    ProductId, ProviderId, SellerId, VerifierId,
};

mod common;
use common::{HOUR, NOW};

const DAY: i64 = 24 * HOUR;
const A: SellerId = SellerId(10);
const B: SellerId = SellerId(12);
const GB: SellerId = SellerId(13);
const GHOST: SellerId = SellerId(99);
const CAT: CategoryId = CategoryId(11);
const PRICE: i64 = 1_999;

struct World {
    engine: Engine,
    catalog: Catalog,
    serial: u64,
    events: Vec<CatalogEvent>,
    clock: i64,
    records: Vec<(i64, Vec<CatalogInput>)>,
}

fn facts(seller: SellerId, product: u64, terms: ProductTerms) -> Vec<CatalogFact> {
    let outlet = OutletId(seller.0 * 10 + 3);
    vec![
        CatalogFact::Product {
            id: ProductId(product),
            seller,
            outlets: vec![outlet],
            code_digits: None,
            provider: Some(ProviderId(70)),
            validity: Validity::DaysFromIssue(30),
            listed: true,
            terms,
        },
        CatalogFact::Verifier {
            id: VerifierId(seller.0 * 10 + 4),
            seller,
            outlets: vec![outlet],
        },
        CatalogFact::Device {
            pos_id: PosId(900 + seller.0),
            seller,
            outlet,
            provider: ProviderId(70),
        },
    ]
}

fn pod(category: CategoryId) -> ProductTerms {
    ProductTerms {
        category,
        ..ProductTerms::default()
    }
}

fn after_sale(fen: i64) -> RefundAction {
    RefundAction::AfterSale {
        amount: Fen::new(fen),
        reason: "stale bread".into(),
    }
}

impl World {
    fn new() -> World {
        let config = EngineConfig {
            shards: 2,
            ..EngineConfig::default()
        };
        let mut w = World {
            engine: Engine::new(config, [7; 32]).unwrap(),
            catalog: Catalog::new(jiff::tz::TimeZone::get("Asia/Shanghai").unwrap()),
            serial: 0,
            events: Vec::new(),
            clock: NOW,
            records: Vec::new(),
        };
        w.cmd(
            Actor::Staff,
            C::PutCategory {
                id: CAT,
                parent: None,
                name: "bread".into(),
                supports_vouchers: true,
                deposit: Fen::new(1_000),
                min_expiry_refund_ratio: None,
                supports_auto_refund: true,
            },
        )
        .unwrap();
        for (s, gb) in [(A, false), (B, false), (GB, true)] {
            w.onboard(s, gb);
        }
        w.cmd(
            Actor::Seller(GB),
            C::FundGroupBuyingDeposit {
                amount: Fen::new(500),
            },
        )
        .unwrap();
        // Product 20: seller A pay-on-redemption; 21: A T+3 with 80 %
        // expiry refund; 22: seller B; 23: GB group-buying; 24: A in an
        // unknown category 0; 25: an unknown seller.
        let t3 = ProductTerms {
            t_plus_3: true,
            expiry_refund_ratio: Some(Bps::new(8_000).unwrap()),
            ..pod(CAT)
        };
        let gb = ProductTerms {
            group_buying: true,
            ..pod(CAT)
        };
        let all = [
            facts(A, 20, pod(CAT)),
            facts(A, 21, t3),
            facts(B, 22, pod(CAT)),
            facts(GB, 23, gb),
            facts(A, 24, pod(CategoryId(0))),
            facts(GHOST, 25, pod(CategoryId(77))),
        ];
        for f in all.iter().flatten() {
            w.engine.note_fact(f);
        }
        w
    }

    fn onboard(&mut self, s: SellerId, gb: bool) {
        let me = Actor::Seller(s);
        let steps = [
            (
                Actor::Staff,
                C::CreateSeller {
                    id: s,
                    kind: SellerKind::Mall,
                    self_issuing: false,
                    group_buying_operator: gb,
                },
            ),
            (me, C::AcceptAgreement),
            (
                me,
                C::BindPaymentAccount {
                    account: "pay".into(),
                    supports_freezing: true,
                    accept_payment_agreement: true,
                },
            ),
            (
                me,
                C::ConfirmOnboarding {
                    service_phone: "400".into(),
                    categories: vec![CAT],
                },
            ),
            (
                me,
                C::TopUp {
                    amount: Fen::new(50_000),
                },
            ),
            (me, C::ApplyTPlusN { category: CAT }),
            (
                Actor::Staff,
                C::DecideTPlusN {
                    seller: s,
                    category: CAT,
                    approve: true,
                },
            ),
            (me, C::ConfirmDepositFreeze { category: CAT }),
        ];
        for (actor, c) in steps {
            self.cmd(actor, c).unwrap();
        }
    }

    fn cmd(&mut self, actor: Actor, c: C) -> Result<CatalogOutcome, ErrorCode> {
        self.serial += 1;
        let entry = CatalogEntry {
            actor,
            request_id: RequestId {
                source: 1,
                serial: self.serial,
            },
            command: c,
        };
        let mut batch = CatalogBatch::new(self.clock);
        let applied = batch.command(&mut self.catalog, &entry, &mut self.events);
        self.keep(batch);
        self.catalog.check_invariants().unwrap();
        applied.reply.map_err(|r| r.code)
    }

    fn keep(&mut self, batch: CatalogBatch) {
        if let Some(vouch_engine::log::LogRecord::Catalog { now_ms, inputs }) = batch.record() {
            self.records.push((now_ms, inputs));
        }
    }

    fn bal(&self, a: Account) -> i64 {
        self.catalog.balance(a).fen()
    }

    /// Ticks the shards at `now` and delivers every message at `now`.
    fn deliver(&mut self, now: i64) -> Vec<ShardMessage> {
        self.engine.tick(now);
        self.engine.check_invariants();
        self.clock = self.clock.max(now);
        let mut batch = CatalogBatch::new(self.clock);
        let mut all = Vec::new();
        for i in 0..2 {
            for m in self.engine.shard_mut(i).take_messages() {
                assert_eq!(
                    batch.message(&mut self.catalog, &m, &mut self.events),
                    Ok(true),
                    "{m:?}"
                );
                all.push(m);
            }
        }
        self.keep(batch);
        self.catalog.check_invariants().unwrap();
        self.engine.check_invariants();
        all
    }

    fn issue(&mut self, order: &str, seller: SellerId, product: u64, units: u32, at: i64) -> Code {
        let c = Command::Issue(Issue {
            order_id: order.into(),
            seller_id: seller,
            product_id: ProductId(product),
            units,
            unit_price: Fen::new(PRICE),
            mobile: "13800001234".into(),
            validity: Validity::DaysFromIssue(30),
            code_digits: 8,
        });
        let r = self.engine.apply(at, &c, &mut Vec::new());
        self.engine.check_invariants();
        match r {
            Ok(Outcome::Issued(i)) => i.code,
            other => panic!("issue {order}: {other:?}"),
        }
    }

    /// Redeems `units` of `code` at `at`; returns (request id, live code).
    fn redeem(&mut self, seller: SellerId, code: Code, units: u32, at: i64) -> (RequestId, Code) {
        self.serial += 1;
        let request_id = RequestId {
            source: 900 + seller.0,
            serial: self.serial,
        };
        let c = Command::Redeem(Redeem {
            request_id,
            code,
            phone_last4: "1234".into(),
            units,
            outlet_id: OutletId(seller.0 * 10 + 3),
            verifier_id: VerifierId(seller.0 * 10 + 4),
            pos_id: Some(PosId(900 + seller.0)),
        });
        let r = self.engine.apply(at, &c, &mut Vec::new());
        self.engine.check_invariants();
        match r {
            Ok(Outcome::Redeemed(r)) => (request_id, r.new_code.unwrap_or(code)),
            other => panic!("redeem: {other:?}"),
        }
    }

    fn reverse(&mut self, seller: SellerId, code: Code, redemption: RequestId, at: i64) {
        self.serial += 1;
        let c = Command::Reverse(Reverse {
            request_id: RequestId {
                source: 900 + seller.0,
                serial: self.serial,
            },
            code,
            redemption,
            pos_id: Some(PosId(900 + seller.0)),
            verifier_id: None,
            seller_id: None,
        });
        let r = self.engine.apply(at, &c, &mut Vec::new());
        self.engine.check_invariants();
        assert!(matches!(r, Ok(Outcome::Reversed(_))), "{r:?}");
    }

    fn refund(
        &mut self,
        now: i64,
        order: &str,
        action: RefundAction,
    ) -> Result<Refunded, ErrorCode> {
        self.serial += 1;
        let c = Command::Refund(Refund {
            request_id: RequestId {
                source: 5,
                serial: self.serial,
            },
            order_id: order.into(),
            action,
            seller_id: None,
        });
        let r = self.engine.apply(now, &c, &mut Vec::new());
        self.engine.check_invariants();
        match r {
            Ok(Outcome::Refunded(r)) => Ok(r),
            Ok(other) => panic!("{other:?}"),
            Err(r) => Err(r.code),
        }
    }

    /// Requests and confirms an after-sale refund of `fen`.
    fn take(&mut self, now: i64, order: &str, fen: i64) -> Result<Refunded, ErrorCode> {
        self.refund(now, order, after_sale(fen))?;
        self.refund(now, order, RefundAction::ConfirmAfterSale)
    }

    fn order(&mut self, id: &str) -> OrderView {
        let c = Command::Order(OrderShow {
            order_id: id.into(),
            seller_id: None,
        });
        match self.engine.apply(self.clock, &c, &mut Vec::new()) {
            Ok(Outcome::Order(o)) => o,
            other => panic!("{other:?}"),
        }
    }

    fn run(&mut self, seller: SellerId, cutoff: i64) -> SettlementView {
        match self.cmd(
            Actor::Staff,
            C::RunSettlement {
                seller,
                cutoff_ms: cutoff,
            },
        ) {
            Ok(CatalogOutcome::Settlement(s)) => s,
            other => panic!("{other:?}"),
        }
    }

    fn decide(&mut self, id: u64, confirm: bool) -> Result<SettlementView, ErrorCode> {
        let c = if confirm {
            C::ConfirmPayout { settlement: id }
        } else {
            C::FailPayout { settlement: id }
        };
        match self.cmd(Actor::PaymentSystem, c)? {
            CatalogOutcome::Settlement(s) => Ok(s),
            other => panic!("{other:?}"),
        }
    }

    fn settlements(&self) -> Vec<SettlementView> {
        let q = CatalogQuery::Settlements {
            seller: None,
            after: None,
            limit: 1_000,
        };
        match self.catalog.read(Actor::Staff, &q) {
            Ok(CatalogView::Settlements(v)) => v,
            other => panic!("{other:?}"),
        }
    }

    /// Replays every catalog record into an empty catalog: the same ledger,
    /// receivables, settlements and marks.
    fn replay_check(&self) {
        let mut again = Catalog::new(jiff::tz::TimeZone::get("Asia/Shanghai").unwrap());
        for (now, inputs) in &self.records {
            CatalogBatch::replay(&mut again, *now, inputs, &mut Vec::new()).unwrap();
            again.check_invariants().unwrap();
        }
        assert_eq!(again.ledger(), self.catalog.ledger(), "replayed ledger");
        for s in [A, B, GB, GHOST] {
            assert_eq!(again.receivable(s), self.catalog.receivable(s));
        }
        for i in 0..2 {
            assert_eq!(again.shard_mark(i), self.catalog.shard_mark(i));
        }
        let q = CatalogQuery::Settlements {
            seller: None,
            after: None,
            limit: 1_000,
        };
        assert_eq!(
            format!("{:?}", again.read(Actor::Staff, &q)),
            format!("{:?}", self.catalog.read(Actor::Staff, &q))
        );
    }

    /// The shard side's REF-5 cap for an order: taken back ≤ to_seller
    /// (what the seller received), and the buyer never gets more than paid.
    fn check_cap(&mut self, order: &str) {
        let o = self.order(order);
        assert!(
            o.taken_back <= o.to_seller,
            "REF-5: {order} taken back {} > received {}",
            o.taken_back,
            o.to_seller
        );
        assert!(
            o.refunded + o.taken_back <= o.paid,
            "MON-5: {order} buyer got {} + {} of {} paid",
            o.refunded,
            o.taken_back,
            o.paid
        );
    }
}

/// Several requests around a reversal inside the window and an automatic
/// refund: the cap follows what the seller actually received.
#[test]
fn ref_5_cap_across_reversals_window_and_refund() {
    let mut w = World::new();
    let code = w.issue("o-1", A, 20, 3, NOW);
    let (_, code) = w.redeem(A, code, 1, NOW);
    let (r2, code) = w.redeem(A, code, 1, NOW + 10 * 60_000);
    assert_eq!(
        w.refund(NOW + 1, "o-1", after_sale(1)),
        Err(ErrorCode::RefundNotAllowed)
    );
    w.reverse(A, code, r2, NOW + 20 * 60_000);
    w.deliver(NOW + HOUR);
    w.check_cap("o-1");
    // Only the first unit reached the seller.
    assert_eq!(
        w.refund(NOW + HOUR, "o-1", after_sale(PRICE + 1)),
        Err(ErrorCode::RefundAboveRefundable)
    );
    w.take(NOW + HOUR, "o-1", 1_000).unwrap();
    w.deliver(NOW + HOUR + 1);
    w.take(NOW + HOUR + 1, "o-1", 999).unwrap();
    w.deliver(NOW + HOUR + 2);
    assert_eq!(
        w.refund(NOW + HOUR + 2, "o-1", after_sale(1)),
        Err(ErrorCode::RefundAboveRefundable)
    );
    // The reversed redemption's window end gives the seller nothing.
    w.deliver(NOW + 2 * HOUR);
    assert_eq!(
        w.refund(NOW + 2 * HOUR, "o-1", after_sale(1)),
        Err(ErrorCode::RefundAboveRefundable)
    );
    // REF-1 of the two left: the seller keeps the 1.00 code fee.
    let r = w
        .refund(NOW + 2 * HOUR, "o-1", RefundAction::Automatic)
        .unwrap();
    assert_eq!(r.buyer_amount, Fen::new(2 * PRICE - 100));
    w.deliver(NOW + 2 * HOUR + 1);
    w.check_cap("o-1");
    assert_eq!(
        w.refund(NOW + 2 * HOUR + 1, "o-1", after_sale(101)),
        Err(ErrorCode::RefundAboveRefundable)
    );
    w.take(NOW + 2 * HOUR + 1, "o-1", 100).unwrap();
    w.deliver(NOW + 2 * HOUR + 2);
    w.check_cap("o-1");
    let o = w.order("o-1");
    assert_eq!(o.taken_back, Fen::new(PRICE + 100));
    assert_eq!(w.bal(Account::RefundsInTransit), PRICE + 100);
    w.replay_check();
}

/// A request opened before more money reached the seller, confirmed later;
/// a second request while one is open; a confirm without a request.
#[test]
fn ref_5_open_request_blocks_and_confirm_twice_is_not_found() {
    let mut w = World::new();
    let code = w.issue("o-1", A, 20, 2, NOW);
    let (_, code) = w.redeem(A, code, 1, NOW);
    w.deliver(NOW + HOUR);
    w.refund(NOW + HOUR, "o-1", after_sale(PRICE)).unwrap();
    w.redeem(A, code, 1, NOW + HOUR);
    w.deliver(NOW + 2 * HOUR);
    assert_eq!(
        w.refund(NOW + 2 * HOUR, "o-1", after_sale(1)),
        Err(ErrorCode::RefundOpen)
    );
    w.refund(NOW + 2 * HOUR, "o-1", RefundAction::ConfirmAfterSale)
        .unwrap();
    assert_eq!(
        w.refund(NOW + 2 * HOUR, "o-1", RefundAction::ConfirmAfterSale),
        Err(ErrorCode::NotFound)
    );
    w.take(NOW + 2 * HOUR, "o-1", PRICE).unwrap();
    assert_eq!(
        w.refund(NOW + 2 * HOUR, "o-1", after_sale(1)),
        Err(ErrorCode::RefundAboveRefundable)
    );
    w.deliver(NOW + 2 * HOUR + 1);
    w.check_cap("o-1");
    // 2 × 19.99 from a 10.00 deposit: 10.00 from it, 29.98 owed.
    assert_eq!(w.bal(Account::Deposit(A, CAT)), 0);
    assert_eq!(w.catalog.receivable(A), Fen::new(2 * PRICE - 1_000));
    w.replay_check();
}

/// After-sale on orders refunded (not delivered), refunded (REF-1), expired
/// and fully redeemed, with bad reasons and amounts: no panic, the cap.
#[test]
fn ref_5_after_sale_on_refunded_expired_and_used_orders() {
    let mut w = World::new();
    // REF-1 at 100 %: the seller got the 1.00 fee only.
    w.issue("o-ref", A, 20, 2, NOW);
    w.refund(NOW, "o-ref", RefundAction::Automatic).unwrap();
    w.deliver(NOW + 1);
    assert_eq!(
        w.refund(NOW + 1, "o-ref", after_sale(101)),
        Err(ErrorCode::RefundAboveRefundable)
    );
    w.check_cap("o-ref");
    // Expired without expiry refund: all to the seller.
    w.issue("o-exp", A, 20, 2, NOW);
    // Fully redeemed.
    let code = w.issue("o-used", A, 20, 2, NOW);
    w.redeem(A, code, 2, NOW);
    w.deliver(NOW + 31 * DAY);
    for (order, got) in [("o-exp", 2 * PRICE), ("o-used", 2 * PRICE)] {
        assert_eq!(
            w.refund(NOW + 31 * DAY, order, after_sale(got + 1)),
            Err(ErrorCode::RefundAboveRefundable),
            "{order}"
        );
        for bad in [after_sale(-5), after_sale(i64::MAX), after_sale(i64::MIN)] {
            let r = catch_unwind(AssertUnwindSafe(|| w.refund(NOW + 31 * DAY, order, bad)));
            assert!(r.is_ok(), "panic on a client amount");
            assert!(r.unwrap().is_err());
        }
        let empty = RefundAction::AfterSale {
            amount: Fen::new(1),
            reason: "   ".into(),
        };
        assert_eq!(
            w.refund(NOW + 31 * DAY, order, empty),
            Err(ErrorCode::BadRequest)
        );
        let long = RefundAction::AfterSale {
            amount: Fen::new(1),
            reason: "é".repeat(10_000),
        };
        assert_eq!(
            w.refund(NOW + 31 * DAY, order, long),
            Err(ErrorCode::BadRequest)
        );
        w.take(NOW + 31 * DAY, order, got).unwrap();
        w.check_cap(order);
    }
    // Not delivered (REF-3): the seller got nothing.
    w.issue("o-nd", A, 20, 1, NOW + 31 * DAY);
    let _ = w.refund(NOW + 31 * DAY, "o-nd", RefundAction::NotDelivered);
    w.deliver(NOW + 31 * DAY + 1);
    assert_eq!(
        w.refund(NOW + 31 * DAY + 1, "o-nd", after_sale(1)),
        Err(ErrorCode::RefundNotAllowed)
    );
    w.replay_check();
}

/// T+3: once paid out, the cap is the whole order; taken in pieces.
#[test]
fn ref_5_t3_order_cap_counts_every_take_back() {
    let mut w = World::new();
    w.issue("o-t3", A, 21, 2, NOW);
    assert_eq!(
        w.refund(NOW + 1, "o-t3", after_sale(1)),
        Err(ErrorCode::RefundNotAllowed)
    );
    w.deliver(NOW + 3 * DAY);
    w.take(NOW + 3 * DAY, "o-t3", 3_000).unwrap();
    assert_eq!(
        w.refund(NOW + 3 * DAY, "o-t3", after_sale(2 * PRICE - 3_000 + 1)),
        Err(ErrorCode::RefundAboveRefundable)
    );
    w.take(NOW + 3 * DAY, "o-t3", 2 * PRICE - 3_000).unwrap();
    w.deliver(NOW + 3 * DAY + 1);
    w.check_cap("o-t3");
    w.deliver(NOW + 31 * DAY);
    w.check_cap("o-t3");
    w.replay_check();
}

/// REF-5 last sentence / SET-2: "REF-1 and REF-6 after a T+3 payout take
/// the money back the same way, automatically". REF-6 of a T+3 order with
/// an 80 % expiry refund: the buyer gets round(39.98 × 80 %) − 1.00 = 30.98,
/// taken back from the seller.
#[test]
fn ref_6_after_t3_payout_takes_back_the_expiry_refund() {
    let mut w = World::new();
    w.issue("o-t3", A, 21, 2, NOW);
    w.deliver(NOW + 3 * DAY);
    let rit = w.bal(Account::RefundsInTransit);
    w.deliver(NOW + 31 * DAY);
    let o = w.order("o-t3");
    assert_eq!(
        (o.refunded + o.taken_back).fen(),
        3_098,
        "REF-6 after T+3: the buyer's expiry refund is taken back from the seller: {o:?}"
    );
    assert_eq!(w.bal(Account::RefundsInTransit) - rit, 3_098);
}

/// REF-5 last sentence / SET-2: REF-1 after a T+3 payout is taken back
/// from the seller automatically (not refused).
#[test]
fn ref_1_after_t3_payout_takes_back_automatically() {
    let mut w = World::new();
    w.issue("o-t3", A, 21, 2, NOW);
    w.deliver(NOW + 3 * DAY);
    let r = w.refund(NOW + 3 * DAY, "o-t3", RefundAction::Automatic);
    // REF-1 with the product's 80 %: round(39.98 × 0.8) − 1.00 = 30.98.
    assert_eq!(r.map(|r| r.buyer_amount), Ok(Fen::new(3_098)));
}

/// After-sale on orders whose category (0) or seller (99) the catalog does
/// not know: no panic, invariants hold, what is owed is booked.
#[test]
fn ref_5_takeback_for_unknown_category_and_seller() {
    let mut w = World::new();
    let c1 = w.issue("o-cat0", A, 24, 1, NOW);
    w.redeem(A, c1, 1, NOW);
    let c2 = w.issue("o-ghost", GHOST, 25, 1, NOW);
    w.redeem(GHOST, c2, 1, NOW);
    w.deliver(NOW + HOUR);
    w.take(NOW + HOUR, "o-cat0", PRICE).unwrap();
    w.take(NOW + HOUR, "o-ghost", PRICE).unwrap();
    w.deliver(NOW + HOUR + 1);
    w.check_cap("o-cat0");
    w.check_cap("o-ghost");
    assert_eq!(
        w.bal(Account::Deposit(A, CAT)),
        1_000,
        "another category's deposit untouched"
    );
    assert_eq!(w.catalog.receivable(A), Fen::new(PRICE));
    assert_eq!(w.catalog.receivable(GHOST), Fen::new(PRICE));
    let s = w.run(A, NOW + HOUR + 1);
    assert_eq!(
        (s.total, s.netted, s.payout),
        (Fen::new(PRICE), Fen::new(PRICE), Fen::ZERO)
    );
    assert_eq!(s.state, PayoutState::NothingToPay);
    assert_eq!(
        w.cmd(
            Actor::Staff,
            C::RunSettlement {
                seller: GHOST,
                cutoff_ms: NOW + HOUR + 1
            }
        )
        .map(|_| ()),
        Err(ErrorCode::NotFound)
    );
    w.replay_check();
}

/// ONB-5: a group-buying order is taken from the group-buying deposit (not
/// the voucher deposit); REF-5/ONB-6: a deposit that cannot cover it raises
/// `deposit_short`.
#[test]
fn ref_5_group_buying_takeback_uses_its_deposit_and_raises_deposit_short() {
    let mut w = World::new();
    let code = w.issue("o-gb", GB, 23, 1, NOW);
    w.redeem(GB, code, 1, NOW);
    w.deliver(NOW + HOUR);
    w.take(NOW + HOUR, "o-gb", 300).unwrap();
    w.deliver(NOW + HOUR + 1);
    assert_eq!(w.bal(Account::GroupBuyingDeposit(GB)), 200);
    assert_eq!(w.bal(Account::Deposit(GB, CAT)), 1_000);
    w.take(NOW + HOUR + 1, "o-gb", 1_000).unwrap();
    w.deliver(NOW + HOUR + 2);
    assert_eq!(w.bal(Account::GroupBuyingDeposit(GB)), 0);
    assert_eq!(w.bal(Account::Deposit(GB, CAT)), 1_000);
    assert_eq!(w.catalog.receivable(GB), Fen::new(800));
    w.replay_check();
    assert!(
        w.events
            .iter()
            .any(|e| matches!(e, CatalogEvent::DepositShort { seller: GB, .. })),
        "REF-5: the group-buying deposit could not cover the after-sale refund: deposit_short"
    );
}

/// Netting: a receivable above the run's total nets the total (nothing to
/// pay), the rest is netted from later runs; another seller's lines are
/// never netted; the same cutoff again moves nothing.
#[test]
fn set_3_netting_above_total_several_sellers_same_cutoff() {
    let mut w = World::new();
    for (o, s, p) in [("a-1", A, 20), ("a-2", A, 20), ("b-1", B, 22)] {
        let c = w.issue(o, s, p, 3, NOW);
        w.redeem(s, c, 3, NOW);
    }
    w.deliver(NOW + HOUR);
    // A owes 2 × 59.97 − 10.00 = 109.94.
    w.take(NOW + HOUR, "a-1", 3 * PRICE).unwrap();
    w.take(NOW + HOUR, "a-2", 3 * PRICE).unwrap();
    w.deliver(NOW + HOUR + 1);
    let owed = 6 * PRICE - 1_000;
    assert_eq!(w.catalog.receivable(A), Fen::new(owed));
    assert_eq!(w.catalog.receivable(B), Fen::ZERO);
    let cut = NOW + HOUR + 1;
    let sa = w.run(A, cut);
    assert_eq!(
        (sa.total, sa.netted, sa.payout, sa.state),
        (
            Fen::new(6 * PRICE),
            Fen::new(owed),
            Fen::new(1_000),
            PayoutState::InTransit
        )
    );
    assert_eq!(w.catalog.receivable(A), Fen::ZERO);
    let sb = w.run(B, cut);
    assert_eq!((sb.netted, sb.payout), (Fen::ZERO, Fen::new(3 * PRICE)));
    let ledger = w.catalog.ledger().len();
    assert_eq!(w.run(A, cut), sa);
    assert_eq!(w.run(B, cut), sb);
    assert_eq!(
        w.catalog.ledger().len(),
        ledger,
        "the same cutoff moves nothing"
    );
    w.decide(sa.id, true).unwrap();
    assert_eq!(w.decide(sa.id, false), Err(ErrorCode::PayoutNotInTransit));
    w.decide(sb.id, true).unwrap();
    w.replay_check();
}

/// Netting when the receivable exceeds the total: what is left owed is
/// netted from the next runs until paid off.
#[test]
fn set_3_receivable_exceeding_total_is_netted_over_several_runs() {
    let mut w = World::new();
    let c = w.issue("a-1", A, 20, 3, NOW);
    w.redeem(A, c, 3, NOW);
    w.deliver(NOW + HOUR);
    // Pay out o-1 first so the receivable exceeds what is payable later.
    let s1 = w.run(A, NOW + HOUR);
    assert_eq!(s1.total, Fen::ZERO, "booked at the cutoff: not before it");
    w.clock = NOW + HOUR + 1;
    let s1 = w.run(A, NOW + HOUR + 1);
    w.decide(s1.id, true).unwrap();
    w.take(NOW + HOUR + 1, "a-1", 3 * PRICE).unwrap();
    w.deliver(NOW + HOUR + 2);
    let owed = 3 * PRICE - 1_000;
    assert_eq!(w.catalog.receivable(A), Fen::new(owed));
    let c = w.issue("a-2", A, 20, 1, NOW + HOUR + 2);
    w.redeem(A, c, 1, NOW + HOUR + 2);
    w.deliver(NOW + 3 * HOUR);
    w.clock = NOW + 3 * HOUR + 1;
    let s2 = w.run(A, NOW + 3 * HOUR + 1);
    assert_eq!(
        (s2.total, s2.netted, s2.payout, s2.state),
        (
            Fen::new(PRICE),
            Fen::new(PRICE),
            Fen::ZERO,
            PayoutState::NothingToPay
        )
    );
    assert_eq!(w.catalog.receivable(A), Fen::new(owed - PRICE));
    let c = w.issue("a-3", A, 20, 3, NOW + 3 * HOUR);
    w.redeem(A, c, 3, NOW + 3 * HOUR);
    w.deliver(NOW + 5 * HOUR);
    w.clock = NOW + 5 * HOUR + 1;
    let s3 = w.run(A, NOW + 5 * HOUR + 1);
    assert_eq!(s3.netted, Fen::new(owed - PRICE));
    assert_eq!(s3.payout, Fen::new(3 * PRICE - (owed - PRICE)));
    assert_eq!(w.catalog.receivable(A), Fen::ZERO);
    w.decide(s3.id, true).unwrap();
    assert_eq!(w.bal(Account::Payable(A)), 0);
    w.replay_check();
}

/// A failed payout undoes its netting; a new receivable arrives; a new run
/// nets both; an older in-transit run failing after a newer run netted.
#[test]
fn mon_7_failed_payout_then_new_receivable_then_new_run() {
    let mut w = World::new();
    for o in ["a-1", "a-2", "a-3"] {
        let c = w.issue(o, A, 20, 3, NOW);
        w.redeem(A, c, 3, NOW);
    }
    w.deliver(NOW + HOUR);
    w.take(NOW + HOUR, "a-1", 3_000).unwrap(); // 10.00 deposit, 20.00 owed
    w.deliver(NOW + HOUR + 1);
    assert_eq!(w.catalog.receivable(A), Fen::new(2_000));
    let s1 = w.run(A, NOW + HOUR + 1);
    assert_eq!(
        (s1.total, s1.netted),
        (Fen::new(9 * PRICE), Fen::new(2_000))
    );
    // A new receivable while s1 is in transit.
    w.take(NOW + HOUR + 1, "a-2", 1_500).unwrap();
    w.deliver(NOW + HOUR + 2);
    assert_eq!(w.catalog.receivable(A), Fen::new(1_500));
    // New payable lines and a run netting the new receivable.
    let c = w.issue("a-4", A, 20, 1, NOW + HOUR + 2);
    w.redeem(A, c, 1, NOW + HOUR + 2);
    w.deliver(NOW + 3 * HOUR);
    w.clock = NOW + 3 * HOUR + 1;
    let s2 = w.run(A, NOW + 3 * HOUR + 1);
    assert_eq!(
        (s2.total, s2.netted, s2.payout),
        (Fen::new(PRICE), Fen::new(1_500), Fen::new(PRICE - 1_500))
    );
    assert_eq!(w.catalog.receivable(A), Fen::ZERO);
    // The older one fails: its netting comes back owed; its lines reopen.
    w.decide(s1.id, false).unwrap();
    assert_eq!(w.catalog.receivable(A), Fen::new(2_000));
    assert_eq!(w.bal(Account::Payable(A)), 9 * PRICE);
    // Same cutoff as s1 again: the failed settlement, nothing moves.
    let n = w.catalog.ledger().len();
    let again = w.run(A, NOW + HOUR + 1);
    assert_eq!((again.id, again.state), (s1.id, PayoutState::Failed));
    assert_eq!(w.catalog.ledger().len(), n);
    // s2 fails too; one more receivable; a new run takes everything.
    w.decide(s2.id, false).unwrap();
    assert_eq!(w.catalog.receivable(A), Fen::new(3_500));
    w.take(NOW + 3 * HOUR, "a-3", 500).unwrap();
    w.deliver(NOW + 3 * HOUR + 1);
    assert_eq!(w.catalog.receivable(A), Fen::new(4_000));
    w.clock = NOW + 4 * HOUR;
    let s3 = w.run(A, NOW + 4 * HOUR);
    assert_eq!(
        (s3.total, s3.netted, s3.payout),
        (
            Fen::new(10 * PRICE),
            Fen::new(4_000),
            Fen::new(10 * PRICE - 4_000)
        )
    );
    assert_eq!(w.decide(s1.id, true), Err(ErrorCode::PayoutNotInTransit));
    w.decide(s3.id, true).unwrap();
    assert_eq!(w.bal(Account::Payable(A)), 0);
    assert_eq!(w.bal(Account::PayoutInTransit(A)), 0);
    assert_eq!(w.catalog.receivable(A), Fen::ZERO);
    // The seller got exactly paid − taken back from payable (+ deposit).
    let paid_out: i64 = w
        .settlements()
        .iter()
        .filter(|s| s.state == PayoutState::Confirmed)
        .map(|s| s.payout.fen())
        .sum();
    assert_eq!(paid_out + 5_000 - 1_000, 10 * PRICE);
    w.replay_check();
}

/// The daily run at the same cutoff after netting, and SET-3's statements
/// stay consistent.
#[test]
fn set_3_daily_settle_same_cutoff_after_netting() {
    use vouch_engine::catalog::SystemInput;
    let mut w = World::new();
    let c = w.issue("a-1", A, 20, 1, NOW);
    w.redeem(A, c, 1, NOW);
    let c = w.issue("b-1", B, 22, 1, NOW);
    w.redeem(B, c, 1, NOW);
    w.deliver(NOW + HOUR);
    w.take(NOW + HOUR, "a-1", 1_500).unwrap();
    w.deliver(NOW + HOUR + 1);
    w.clock = NOW + 2 * HOUR;
    let mut batch = CatalogBatch::new(w.clock);
    let first = batch.system(
        &mut w.catalog,
        &SystemInput::Settle {
            cutoff_ms: NOW + 2 * HOUR,
        },
        &mut w.events,
    );
    let again = batch.system(
        &mut w.catalog,
        &SystemInput::Settle {
            cutoff_ms: NOW + 2 * HOUR,
        },
        &mut w.events,
    );
    w.keep(batch);
    w.catalog.check_invariants().unwrap();
    assert!(matches!(first.reply, Ok(CatalogOutcome::Settled(ref v)) if v.len() == 2));
    assert_eq!(again.reply, Ok(CatalogOutcome::Settled(vec![])));
    assert_eq!(w.catalog.receivable(A), Fen::ZERO);
    let a = w.run(A, NOW + 2 * HOUR);
    assert_eq!((a.netted, a.payout), (Fen::new(500), Fen::new(PRICE - 500)));
    w.decide(a.id, false).unwrap();
    // After the failure the daily run at the same cutoff changes nothing;
    // a later one settles again.
    let mut batch = CatalogBatch::new(w.clock);
    let same = batch.system(
        &mut w.catalog,
        &SystemInput::Settle {
            cutoff_ms: NOW + 2 * HOUR,
        },
        &mut w.events,
    );
    assert_eq!(same.reply, Ok(CatalogOutcome::Settled(vec![])));
    w.clock = NOW + 3 * HOUR;
    let mut batch2 = CatalogBatch::new(w.clock);
    let later = batch2.system(
        &mut w.catalog,
        &SystemInput::Settle {
            cutoff_ms: NOW + 3 * HOUR,
        },
        &mut w.events,
    );
    assert!(matches!(later.reply, Ok(CatalogOutcome::Settled(ref v)) if v.len() == 1));
    w.keep(batch);
    w.keep(batch2);
    w.catalog.check_invariants().unwrap();
    let s = w.settlements().last().cloned().unwrap();
    assert_eq!((s.netted, s.payout), (Fen::new(500), Fen::new(PRICE - 500)));
    w.replay_check();
}

/// Duplicate and out-of-order TakeBack messages: a repeat changes nothing,
/// a gap is refused and changes nothing.
#[test]
fn mon_5_duplicate_and_out_of_order_takebacks() {
    let mut w = World::new();
    let c = w.issue("a-1", A, 20, 3, NOW);
    w.redeem(A, c, 3, NOW);
    w.deliver(NOW + HOUR);
    w.take(NOW + HOUR, "a-1", 700).unwrap();
    w.take(NOW + HOUR, "a-1", 600).unwrap();
    let mut msgs: Vec<ShardMessage> = (0..2)
        .flat_map(|i| w.engine.shard_mut(i).take_messages())
        .collect();
    assert_eq!(msgs.len(), 2);
    assert!(msgs
        .iter()
        .all(|m| matches!(m.body, ShardMessageBody::TakeBackNumbered { .. })));
    let second = msgs.pop().unwrap();
    let first = msgs.pop().unwrap();
    let before = w.catalog.ledger().to_vec();
    let mut batch = CatalogBatch::new(w.clock);
    assert!(
        batch
            .message(&mut w.catalog, &second, &mut w.events)
            .is_err(),
        "a gap is refused"
    );
    assert_eq!(
        w.catalog.ledger(),
        &before[..],
        "a refused gap changes nothing"
    );
    assert_eq!(
        batch.message(&mut w.catalog, &first, &mut w.events),
        Ok(true)
    );
    assert_eq!(
        batch.message(&mut w.catalog, &first, &mut w.events),
        Ok(false)
    );
    assert_eq!(
        batch.message(&mut w.catalog, &second, &mut w.events),
        Ok(true)
    );
    let n = w.catalog.ledger().len();
    assert_eq!(
        batch.message(&mut w.catalog, &first, &mut w.events),
        Ok(false)
    );
    assert_eq!(
        batch.message(&mut w.catalog, &second, &mut w.events),
        Ok(false)
    );
    assert_eq!(w.catalog.ledger().len(), n);
    w.keep(batch);
    w.catalog.check_invariants().unwrap();
    assert_eq!(w.bal(Account::Deposit(A, CAT)), 0);
    assert_eq!(w.catalog.receivable(A), Fen::new(300));
    assert_eq!(w.bal(Account::RefundsInTransit), 1_300);
    w.replay_check();
}

/// Hardening: a malformed TakeBack (negative amount) is refused, not a
/// panic (apply_message promises `bad_request` for "an amount the ledger
/// cannot hold").
#[test]
fn mon_3_a_negative_takeback_is_refused_not_a_panic() {
    let mut w = World::new();
    let m = ShardMessage {
        shard: 50,
        seq: 1,
        at_ms: NOW,
        body: ShardMessageBody::TakeBack {
            seller: A,
            category: CAT,
            group_buying: false,
            amount: Fen::new(-5),
            order_id: "x".into(),
        },
    };
    let r = catch_unwind(AssertUnwindSafe(|| {
        w.catalog
            .apply_message(NOW, &m, &mut Vec::new())
            .map_err(|e| e.code)
    }));
    assert!(
        r.is_ok(),
        "apply_message panicked on a negative TakeBack amount"
    );
    assert!(r.unwrap().is_err());
}

/// Hardening: a refused TakeBack changes nothing ("Errors: ... nothing
/// changes"): an amount overflowing refunds-in-transit after the deposit
/// part was moved.
#[test]
fn mon_3_a_refused_takeback_changes_nothing() {
    let mut w = World::new();
    let ok = ShardMessage {
        shard: 51,
        seq: 1,
        at_ms: NOW,
        body: ShardMessageBody::TakeBack {
            seller: B,
            category: CAT,
            group_buying: false,
            amount: Fen::new(500),
            order_id: "x".into(),
        },
    };
    assert_eq!(w.catalog.apply_message(NOW, &ok, &mut Vec::new()), Ok(true));
    let huge = ShardMessage {
        seq: 2,
        body: ShardMessageBody::TakeBack {
            seller: A,
            category: CAT,
            group_buying: false,
            amount: Fen::new(i64::MAX),
            order_id: "y".into(),
        },
        ..ok.clone()
    };
    let before = w.catalog.ledger().to_vec();
    let r = catch_unwind(AssertUnwindSafe(|| {
        w.catalog
            .apply_message(NOW, &huge, &mut Vec::new())
            .map_err(|e| e.code)
    }));
    assert!(r.is_ok(), "panic");
    if r.unwrap().is_err() {
        assert_eq!(
            w.catalog.ledger(),
            &before[..],
            "a refused message moved money"
        );
        assert_eq!(w.bal(Account::Deposit(A, CAT)), 1_000);
    }
}
