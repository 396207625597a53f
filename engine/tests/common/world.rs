//! A world of one T+N seller across two voucher shards and the catalog,
//! with messages delivered by hand: the REF-5 and RPT-5 tests share it.

use super::*;
use vouch_engine::catalog::{
    Account, Actor, Catalog, CatalogCommand as C, CatalogEvent, CatalogOutcome, SellerKind,
};
use vouch_engine::command::*;
use vouch_engine::log::CatalogBatch;
use vouch_engine::message::ProductTerms;
use vouch_engine::{
    CategoryId, Code, Command, Engine, EngineConfig, ErrorCode, Fen, Outcome, SellerId,
};

pub const SELLER: SellerId = SellerId(10);
pub const CATEGORY: CategoryId = CategoryId(11);

pub struct World {
    pub engine: Engine,
    pub catalog: Catalog,
    pub serial: u64,
    pub events: Vec<CatalogEvent>,
    /// The catalog's time: the latest delivery's.
    pub clock: i64,
}

impl World {
    /// Seller 10 onboarded with T+N in category 11 and its 10.00 deposit
    /// frozen; product 20 of the category in the shards.
    pub fn new() -> World {
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

    pub fn catalog_cmd(&mut self, actor: Actor, c: C) -> Result<CatalogOutcome, ErrorCode> {
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

    pub fn balance(&self, a: Account) -> i64 {
        self.catalog.balance(a).fen()
    }

    /// Ticks the shards at `now` and delivers every message.
    pub fn deliver(&mut self, now: i64) {
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

    pub fn step(
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

    /// REF-5: an after-sale refund of `fen` for `order` requested and
    /// confirmed at `now` (request ids `serial` and `serial + 1`), its
    /// take-back delivered to the catalog at `now + 1`.
    pub fn take_back(&mut self, now: i64, order: &str, fen: i64, serial: u64) {
        let after_sale = RefundAction::AfterSale {
            amount: Fen::new(fen),
            reason: "stale bread".into(),
        };
        self.step(now, order, after_sale, serial).unwrap();
        self.step(now, order, RefundAction::ConfirmAfterSale, serial + 1)
            .unwrap();
        self.deliver(now + 1);
    }

    pub fn sold_and_redeemed(&mut self, order: &str, units: u32) -> Code {
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
