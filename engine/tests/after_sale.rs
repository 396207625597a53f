//! REF-5, the after-sale refund, across the shard and the catalog: after
//! the order's money reached the seller, the buyer asks, the seller
//! confirms, and the amount is taken back from the order's deposit; what
//! the deposit cannot cover is a receivable (with `deposit_short`, ONB-6)
//! netted from the seller's next settlement (SET-3), and a failed payout
//! undoes the netting (MON-7). Conservation holds after every step.

use vouch_engine::catalog::{
    Account, Actor, Catalog, CatalogCommand as C, CatalogEvent, CatalogOutcome, PayoutState,
    SellerKind,
};
use vouch_engine::command::*;
use vouch_engine::log::CatalogBatch;
use vouch_engine::message::ProductTerms;
use vouch_engine::{
    CategoryId, Code, Command, Engine, EngineConfig, ErrorCode, Fen, Outcome, SellerId,
};

mod common;
use common::*;

const SELLER: SellerId = SellerId(10);
const CATEGORY: CategoryId = CategoryId(11);

struct World {
    engine: Engine,
    catalog: Catalog,
    serial: u64,
    events: Vec<CatalogEvent>,
    /// The catalog's time: the latest delivery's.
    clock: i64,
}

impl World {
    /// Seller 10 onboarded with T+N in category 11 and its 10.00 deposit
    /// frozen; product 20 of the category in the shards.
    fn new() -> World {
        let config = EngineConfig {
            shards: 2,
            ..EngineConfig::default()
        };
        let mut w = World {
            engine: Engine::new(config, [4; 32]).unwrap(),
            catalog: Catalog::new(jiff::tz::TimeZone::get("Asia/Shanghai").unwrap()),
            serial: 0,
            events: Vec::new(),
            clock: NOW,
        };
        let me = Actor::Seller(SELLER);
        let steps = [
            (
                Actor::Staff,
                C::PutCategory {
                    id: CATEGORY,
                    parent: None,
                    name: "bread".into(),
                    supports_vouchers: true,
                    deposit: Fen::new(1_000),
                    min_expiry_refund_ratio: None,
                    supports_auto_refund: true,
                },
            ),
            (
                Actor::Staff,
                C::CreateSeller {
                    id: SELLER,
                    kind: SellerKind::Mall,
                    self_issuing: false,
                    group_buying_operator: false,
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
                    categories: vec![CATEGORY],
                },
            ),
            (
                me,
                C::TopUp {
                    amount: Fen::new(50_000),
                },
            ),
            (me, C::ApplyTPlusN { category: CATEGORY }),
            (
                Actor::Staff,
                C::DecideTPlusN {
                    seller: SELLER,
                    category: CATEGORY,
                    approve: true,
                },
            ),
            (me, C::ConfirmDepositFreeze { category: CATEGORY }),
        ];
        for (actor, c) in steps {
            w.catalog_cmd(actor, c).unwrap();
        }
        let terms = ProductTerms {
            category: CATEGORY,
            ..ProductTerms::default()
        };
        for f in product_facts(terms) {
            w.engine.note_fact(&f);
        }
        assert_eq!(w.balance(Account::Deposit(SELLER, CATEGORY)), 1_000);
        w
    }

    fn catalog_cmd(&mut self, actor: Actor, c: C) -> Result<CatalogOutcome, ErrorCode> {
        self.serial += 1;
        let rid = RequestId {
            source: 1,
            serial: self.serial,
        };
        let reply = self
            .catalog
            .apply(self.clock, actor, rid, &c, &mut self.events);
        self.catalog.check_invariants().unwrap();
        reply.map_err(|r| r.code)
    }

    fn balance(&self, a: Account) -> i64 {
        self.catalog.balance(a).fen()
    }

    /// Ticks the shards at `now` and delivers every message.
    fn deliver(&mut self, now: i64) {
        self.engine.tick(now);
        self.clock = now;
        let mut batch = CatalogBatch::new(now);
        for i in 0..2 {
            for m in self.engine.shard_mut(i).take_messages() {
                assert_eq!(
                    batch.message(&mut self.catalog, &m, &mut self.events),
                    Ok(true)
                );
            }
        }
        self.catalog.check_invariants().unwrap();
        self.engine.check_invariants();
    }

    fn step(
        &mut self,
        now: i64,
        order: &str,
        action: RefundAction,
        serial: u64,
    ) -> Result<Refunded, ErrorCode> {
        let c = Command::Refund(Refund {
            request_id: rid(5_000 + serial),
            order_id: order.into(),
            action,
            seller_id: None,
        });
        match self.engine.apply(now, &c, &mut Vec::new()) {
            Ok(Outcome::Refunded(r)) => Ok(r),
            Ok(other) => panic!("{other:?}"),
            Err(r) => Err(r.code),
        }
    }

    fn sold_and_redeemed(&mut self, order: &str, units: u32) -> Code {
        let Ok(Outcome::Issued(i)) =
            self.engine
                .apply(NOW, &issue_cmd(order, units, 8), &mut Vec::new())
        else {
            panic!("issue")
        };
        self.serial += 1;
        let Ok(Outcome::Redeemed(r)) = self.engine.apply(
            NOW,
            &redeem_cmd(i.code, units, self.serial),
            &mut Vec::new(),
        ) else {
            panic!("redeem")
        };
        assert_eq!(r.units_remaining, 0);
        i.code
    }
}

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
