//! Rule tests of the catalog: onboarding (ONB), publishing (PUB), code
//! providers (PRV-1, PRV-3), deposits as ledger accounts, and the role
//! matrix. Each test names the rule it proves.

use jiff::civil::date;
use jiff::tz::TimeZone;
use rust_decimal::Decimal;
use vouch_engine::catalog::*;
use vouch_engine::validity::Validity;
use vouch_engine::{Bps, Fen};
use vouch_engine::{CategoryId, OutletId, PosId, ProductId, ProviderId, SellerId, VerifierId};
use vouch_engine::{ErrorCode, RequestId};

/// 2026-11-29 12:00:00 +08:00 in unix ms.
const NOW: i64 = 1_795_924_800_000;
const FOOD: CategoryId = CategoryId(10);
const BREAD: CategoryId = CategoryId(11);
const NO_VOUCHERS: CategoryId = CategoryId(12);
const SELLER: SellerId = SellerId(500);
const OTHER: SellerId = SellerId(501);
const PROVIDER: ProviderId = ProviderId(70);

/// The outlet each test seller adds: 900 + its id.
fn outlet_of(seller: SellerId) -> OutletId {
    OutletId(900 + seller.0)
}

struct T {
    c: Catalog,
    serial: u64,
    events: Vec<CatalogEvent>,
}

fn yuan(s: &str) -> Fen {
    Fen::parse_price(s).unwrap()
}

/// Degrees of a coordinate.
fn deg(s: &str) -> Decimal {
    s.parse().unwrap()
}

/// A ratio given in percent.
fn percent(s: &str) -> Bps {
    Bps::from_percent(s.parse().unwrap()).unwrap()
}

impl T {
    fn new() -> T {
        let mut t = T {
            c: Catalog::new(TimeZone::get("Asia/Shanghai").unwrap()),
            serial: 0,
            events: Vec::new(),
        };
        t.ok(Actor::Staff, category(FOOD, None, true, "1000.00", None));
        t.ok(
            Actor::Staff,
            category(BREAD, Some(FOOD), true, "500.00", Some("80")),
        );
        t.ok(
            Actor::Staff,
            category(NO_VOUCHERS, Some(FOOD), false, "0", None),
        );
        t
    }

    fn run(&mut self, actor: Actor, cmd: CatalogCommand) -> CatalogReply {
        self.serial += 1;
        let rid = RequestId {
            source: 1,
            serial: self.serial,
        };
        self.c.apply(NOW, actor, rid, &cmd, &mut self.events)
    }

    fn ok(&mut self, actor: Actor, cmd: CatalogCommand) -> CatalogOutcome {
        let r = self.run(actor, cmd.clone());
        r.unwrap_or_else(|e| panic!("{cmd:?} by {actor:?} refused: {e}"))
    }

    fn err(&mut self, actor: Actor, cmd: CatalogCommand) -> ErrorCode {
        match self.run(actor, cmd.clone()) {
            Ok(o) => panic!("{cmd:?} by {actor:?} accepted: {o:?}"),
            Err(e) => e.code,
        }
    }

    /// A seller through ONB-2 with publish permission in BREAD, an outlet,
    /// a linked provider, and 5,000 yuan in its payment account.
    fn onboarded(&mut self, id: SellerId, self_issuing: bool, group_buying_operator: bool) {
        self.ok(
            Actor::Staff,
            CatalogCommand::CreateSeller {
                id,
                kind: SellerKind::Mall,
                self_issuing,
                group_buying_operator,
            },
        );
        let s = Actor::Seller(id);
        self.ok(s, CatalogCommand::AcceptAgreement);
        self.ok(s, bind(true, true));
        self.ok(
            s,
            CatalogCommand::ConfirmOnboarding {
                service_phone: "400-800-1234".into(),
                categories: vec![BREAD],
            },
        );
        self.ok(
            Actor::Staff,
            CatalogCommand::GrantPublishPermission {
                seller: id,
                category: BREAD,
            },
        );
        self.ok(s, outlet(outlet_of(id)));
        self.ok(
            s,
            CatalogCommand::TopUp {
                amount: yuan("5000.00"),
            },
        );
        if self
            .run(
                Actor::Staff,
                CatalogCommand::RegisterProvider {
                    id: PROVIDER,
                    name: "codes inc".into(),
                    code_digits: 10,
                },
            )
            .is_err()
        {
            // Registered by an earlier seller's set-up.
        }
        self.ok(
            Actor::Provider(PROVIDER),
            CatalogCommand::LinkSeller { seller: id },
        );
    }

    fn enable_t_plus_n(&mut self, seller: SellerId, category: CategoryId) {
        self.ok(
            Actor::Seller(seller),
            CatalogCommand::ApplyTPlusN { category },
        );
        self.ok(
            Actor::Staff,
            CatalogCommand::DecideTPlusN {
                seller,
                category,
                approve: true,
            },
        );
        self.ok(
            Actor::Seller(seller),
            CatalogCommand::ConfirmDepositFreeze { category },
        );
    }
}

fn category(
    id: CategoryId,
    parent: Option<CategoryId>,
    vouchers: bool,
    deposit: &str,
    min: Option<&str>,
) -> CatalogCommand {
    CatalogCommand::PutCategory {
        id,
        parent,
        name: format!("category {id}"),
        supports_vouchers: vouchers,
        deposit: yuan(deposit),
        min_expiry_refund_ratio: min.map(percent),
        supports_auto_refund: true,
    }
}

fn bind(freezing: bool, agreement: bool) -> CatalogCommand {
    CatalogCommand::BindPaymentAccount {
        account: "alipay:shop@example".into(),
        supports_freezing: freezing,
        accept_payment_agreement: agreement,
    }
}

fn outlet(id: OutletId) -> CatalogCommand {
    CatalogCommand::AddOutlet {
        id,
        name: "Bakery on Nanjing Road".into(),
        address: "Nanjing Road 1, Shanghai".into(),
        latitude: deg("31.2304"),
        longitude: deg("121.4737"),
    }
}

fn product(id: ProductId, seller: SellerId) -> ProductSpec {
    ProductSpec {
        id,
        category: BREAD,
        delivery: Delivery::EVoucher,
        validity: Validity::Fixed {
            start: date(2026, 12, 1),
            end: date(2026, 12, 31),
        },
        provider: Some(PROVIDER),
        outlets: vec![outlet_of(seller)],
        settlement: Settlement::PayOnRedemption,
        expiry_refund_ratio: None,
        merchant_code: "SKU-1".into(),
        group_buying: false,
    }
}

fn publish(p: ProductSpec) -> CatalogCommand {
    CatalogCommand::PublishProduct(p)
}

#[test]
fn onb_2_steps_in_order_enable_publishing_at_once() {
    let mut t = T::new();
    t.ok(
        Actor::Staff,
        CatalogCommand::CreateSeller {
            id: SELLER,
            kind: SellerKind::Marketplace,
            self_issuing: false,
            group_buying_operator: false,
        },
    );
    let s = Actor::Seller(SELLER);
    // Out of order: payment before agreement, confirm before payment.
    assert_eq!(
        t.err(s, bind(true, true)),
        ErrorCode::OnboardingStepOutOfOrder
    );
    let confirm = CatalogCommand::ConfirmOnboarding {
        service_phone: "400-1".into(),
        categories: vec![BREAD],
    };
    assert_eq!(
        t.err(s, confirm.clone()),
        ErrorCode::OnboardingStepOutOfOrder
    );
    assert_eq!(
        t.ok(s, CatalogCommand::AcceptAgreement),
        CatalogOutcome::Onboarding(Onboarding::AgreementAccepted)
    );
    assert_eq!(
        t.err(s, CatalogCommand::AcceptAgreement),
        ErrorCode::OnboardingStepOutOfOrder
    );
    assert_eq!(
        t.err(s, bind(false, true)),
        ErrorCode::PaymentAccountCannotFreeze
    );
    assert_eq!(
        t.err(s, bind(true, false)),
        ErrorCode::PaymentAccountCannotFreeze
    );
    assert_eq!(
        t.ok(s, bind(true, true)),
        CatalogOutcome::Onboarding(Onboarding::PaymentBound)
    );
    // Only categories that support vouchers may be asked for.
    let bad = CatalogCommand::ConfirmOnboarding {
        service_phone: "400-1".into(),
        categories: vec![NO_VOUCHERS],
    };
    assert_eq!(t.err(s, bad), ErrorCode::CategoryNotForVouchers);
    assert_eq!(
        t.ok(s, confirm),
        CatalogOutcome::Onboarding(Onboarding::Enabled)
    );
    assert_eq!(t.c.seller_state(SELLER).unwrap().0, Onboarding::Enabled);
}

#[test]
fn onb_1_pub_1_publishing_needs_staff_granted_permission() {
    let mut t = T::new();
    t.onboarded(SELLER, false, false);
    let mut p = product(ProductId(1), SELLER);
    p.category = FOOD;
    assert_eq!(
        t.err(Actor::Seller(SELLER), publish(p.clone())),
        ErrorCode::CategoryNotPermitted
    );
    t.ok(
        Actor::Staff,
        CatalogCommand::GrantPublishPermission {
            seller: SELLER,
            category: FOOD,
        },
    );
    t.ok(Actor::Seller(SELLER), publish(p));
    assert_eq!(
        t.c.product_listed(Actor::Seller(SELLER), ProductId(1)),
        Some(true)
    );
    // A category without vouchers can never be granted.
    let grant = CatalogCommand::GrantPublishPermission {
        seller: SELLER,
        category: NO_VOUCHERS,
    };
    assert_eq!(
        t.err(Actor::Staff, grant),
        ErrorCode::CategoryNotForVouchers
    );
}

#[test]
fn onb_3_self_issuing_seller_needs_no_provider() {
    let mut t = T::new();
    t.onboarded(SELLER, true, false);
    t.onboarded(OTHER, false, false);
    let mut mine = product(ProductId(1), SELLER);
    mine.provider = None;
    t.ok(Actor::Seller(SELLER), publish(mine));
    let mut theirs = product(ProductId(2), OTHER);
    theirs.provider = None;
    assert_eq!(
        t.err(Actor::Seller(OTHER), publish(theirs)),
        ErrorCode::ProviderRequired
    );
}

#[test]
fn onb_4_t_plus_n_apply_approve_notice_confirm_freezes_deposit() {
    let mut t = T::new();
    t.onboarded(SELLER, false, false);
    let s = Actor::Seller(SELLER);
    // Staff cannot decide what nobody applied for; the seller cannot confirm yet.
    let approve = CatalogCommand::DecideTPlusN {
        seller: SELLER,
        category: BREAD,
        approve: true,
    };
    assert_eq!(
        t.err(Actor::Staff, approve.clone()),
        ErrorCode::TPlusNNotPending
    );
    assert_eq!(
        t.err(s, CatalogCommand::ConfirmDepositFreeze { category: BREAD }),
        ErrorCode::TPlusNNotPending
    );
    t.ok(s, CatalogCommand::ApplyTPlusN { category: BREAD });
    let reject = CatalogCommand::DecideTPlusN {
        seller: SELLER,
        category: BREAD,
        approve: false,
    };
    assert_eq!(
        t.ok(Actor::Staff, reject),
        CatalogOutcome::TPlusN(TPlusN::Rejected)
    );
    t.ok(s, CatalogCommand::ApplyTPlusN { category: BREAD });
    let notice = t.ok(Actor::Staff, approve);
    assert_eq!(
        notice,
        CatalogOutcome::TPlusN(TPlusN::FreezeNotice {
            amount: yuan("500.00")
        })
    );
    assert!(t.events.contains(&CatalogEvent::FreezeNotice {
        seller: SELLER,
        category: BREAD,
        amount: yuan("500.00")
    }));
    // Nothing is frozen before the seller confirms.
    assert_eq!(t.c.balance(Account::Deposit(SELLER, BREAD)), Fen::ZERO);
    t.ok(s, CatalogCommand::ConfirmDepositFreeze { category: BREAD });
    assert_eq!(t.c.balance(Account::Deposit(SELLER, BREAD)), yuan("500.00"));
    assert_eq!(t.c.balance(Account::Payment(SELLER)), yuan("4500.00"));
    assert_eq!(t.c.check_invariants(), Ok(()));
}

#[test]
fn onb_4_freeze_needs_the_money_in_the_payment_account() {
    let mut t = T::new();
    t.ok(
        Actor::Staff,
        category(CategoryId(20), None, true, "9000.00", None),
    );
    t.onboarded(SELLER, false, false);
    let s = Actor::Seller(SELLER);
    t.ok(
        s,
        CatalogCommand::ApplyTPlusN {
            category: CategoryId(20),
        },
    );
    t.ok(
        Actor::Staff,
        CatalogCommand::DecideTPlusN {
            seller: SELLER,
            category: CategoryId(20),
            approve: true,
        },
    );
    assert_eq!(
        t.err(
            s,
            CatalogCommand::ConfirmDepositFreeze {
                category: CategoryId(20)
            }
        ),
        ErrorCode::InsufficientBalance
    );
    assert_eq!(
        t.c.balance(Account::Payment(SELLER)),
        yuan("5000.00"),
        "nothing moved"
    );
    t.ok(
        s,
        CatalogCommand::TopUp {
            amount: yuan("4000.00"),
        },
    );
    t.ok(
        s,
        CatalogCommand::ConfirmDepositFreeze {
            category: CategoryId(20),
        },
    );
    assert_eq!(
        t.c.balance(Account::Deposit(SELLER, CategoryId(20))),
        yuan("9000.00")
    );
}

#[test]
fn pub_6_t_plus_3_needs_enabled_t_plus_n() {
    let mut t = T::new();
    t.onboarded(SELLER, false, false);
    let mut p = product(ProductId(1), SELLER);
    p.settlement = Settlement::TPlus3;
    assert_eq!(
        t.err(Actor::Seller(SELLER), publish(p.clone())),
        ErrorCode::TPlusNNotEnabled
    );
    t.enable_t_plus_n(SELLER, BREAD);
    t.ok(Actor::Seller(SELLER), publish(p));
}

#[test]
fn onb_5_group_buying_operator_uses_its_group_buying_deposit() {
    let mut t = T::new();
    t.onboarded(SELLER, false, true);
    t.onboarded(OTHER, false, false);
    let mut p = product(ProductId(1), SELLER);
    p.settlement = Settlement::TPlus3;
    p.group_buying = true;
    // No group-buying deposit yet and no T+N: refused.
    assert_eq!(
        t.err(Actor::Seller(SELLER), publish(p.clone())),
        ErrorCode::TPlusNNotEnabled
    );
    // A group-buying deposit below the category's deposit amount (BREAD:
    // 500.00) does not guarantee the orders.
    let fund = |amount| CatalogCommand::FundGroupBuyingDeposit {
        amount: yuan(amount),
    };
    t.ok(Actor::Seller(SELLER), fund("0.01"));
    assert_eq!(
        t.err(Actor::Seller(SELLER), publish(p.clone())),
        ErrorCode::TPlusNNotEnabled
    );
    t.ok(Actor::Seller(SELLER), fund("499.99"));
    t.ok(Actor::Seller(SELLER), publish(p.clone()));
    // Its other (non-group-buying) T+3 products still need the voucher deposit.
    let mut other = product(ProductId(2), SELLER);
    other.settlement = Settlement::TPlus3;
    assert_eq!(
        t.err(Actor::Seller(SELLER), publish(other)),
        ErrorCode::TPlusNNotEnabled
    );
    // Only operators publish group-buying products or fund that deposit.
    let mut q = product(ProductId(3), OTHER);
    q.group_buying = true;
    assert_eq!(
        t.err(Actor::Seller(OTHER), publish(q)),
        ErrorCode::GroupBuyingNotAllowed
    );
    let fund = CatalogCommand::FundGroupBuyingDeposit {
        amount: yuan("1.00"),
    };
    assert_eq!(
        t.err(Actor::Seller(OTHER), fund),
        ErrorCode::GroupBuyingNotAllowed
    );
}

#[test]
fn onb_6_short_deposit_raises_event_and_blocks_new_t_plus_3_products() {
    let mut t = T::new();
    t.onboarded(SELLER, false, false);
    t.enable_t_plus_n(SELLER, BREAD);
    let mut p = product(ProductId(1), SELLER);
    p.settlement = Settlement::TPlus3;
    t.ok(Actor::Seller(SELLER), publish(p.clone()));
    let deduct = CatalogCommand::DeductDeposit {
        seller: SELLER,
        category: BREAD,
        amount: yuan("120.50"),
    };
    assert_eq!(
        t.ok(Actor::Staff, deduct),
        CatalogOutcome::Balance(yuan("379.50"))
    );
    let short = CatalogEvent::DepositShort {
        seller: SELLER,
        category: BREAD,
        balance: yuan("379.50"),
        required: yuan("500.00"),
    };
    assert_eq!(t.events.iter().filter(|e| **e == short).count(), 1);
    // Existing product unaffected; a new T+3 product is refused while short.
    assert_eq!(
        t.c.product_listed(Actor::Seller(SELLER), ProductId(1)),
        Some(true)
    );
    p.id = ProductId(2);
    assert_eq!(
        t.err(Actor::Seller(SELLER), publish(p.clone())),
        ErrorCode::DepositShort
    );
    // Pay-on-redemption products are not affected.
    let mut q = product(ProductId(3), SELLER);
    q.settlement = Settlement::PayOnRedemption;
    t.ok(Actor::Seller(SELLER), publish(q));
    t.ok(
        Actor::Seller(SELLER),
        CatalogCommand::TopUpDeposit {
            category: BREAD,
            amount: yuan("120.50"),
        },
    );
    t.ok(Actor::Seller(SELLER), publish(p));
    assert_eq!(t.c.check_invariants(), Ok(()));
}

#[test]
fn pub_2_delivery_e_voucher_or_also_mail() {
    let mut t = T::new();
    t.onboarded(SELLER, false, false);
    let mut p = product(ProductId(1), SELLER);
    p.delivery = Delivery::EVoucherOrMail;
    t.ok(Actor::Seller(SELLER), publish(p));
    t.ok(
        Actor::Seller(SELLER),
        publish(product(ProductId(2), SELLER)),
    );
}

#[test]
fn pub_3_ended_validity_refused_and_tick_delists_at_end() {
    let mut t = T::new();
    t.onboarded(SELLER, false, false);
    let mut past = product(ProductId(1), SELLER);
    past.validity = Validity::Fixed {
        start: date(2026, 1, 1),
        end: date(2026, 11, 28),
    };
    assert_eq!(
        t.err(Actor::Seller(SELLER), publish(past)),
        ErrorCode::ValidityInvalid
    );
    t.ok(
        Actor::Seller(SELLER),
        publish(product(ProductId(2), SELLER)),
    );
    let mut rolling = product(ProductId(3), SELLER);
    rolling.validity = Validity::DaysFromIssue(30);
    t.ok(Actor::Seller(SELLER), publish(rolling));
    // 2026-12-31 23:59:59 +08:00 is still listed; 2027-01-01 00:00 is not.
    let end: i64 = "2026-12-31T16:00:00Z"
        .parse::<jiff::Timestamp>()
        .unwrap()
        .as_millisecond();
    let mut ev = Vec::new();
    let tick = |c: &mut Catalog, at: i64, _serial: u64, ev: &mut Vec<CatalogEvent>| {
        c.apply_system(at, &SystemInput::Tick, ev).unwrap()
    };
    assert_eq!(
        tick(&mut t.c, end - 1000, 1, &mut ev),
        CatalogOutcome::Ticked {
            delisted: vec![],
            lockouts_ended: 0
        }
    );
    assert_eq!(
        tick(&mut t.c, end, 2, &mut ev),
        CatalogOutcome::Ticked {
            delisted: vec![ProductId(2)],
            lockouts_ended: 0
        }
    );
    // Staff are told, and the shards learn it is no longer for sale.
    assert_eq!(
        ev[0],
        CatalogEvent::ProductDelisted {
            product: ProductId(2)
        }
    );
    assert!(
        matches!(
            &ev[1..],
            [CatalogEvent::Fact(
                vouch_engine::message::CatalogFact::Product {
                    id: ProductId(2),
                    listed: false,
                    ..
                }
            )]
        ),
        "{ev:?}"
    );
    assert_eq!(
        t.c.product_listed(Actor::Seller(SELLER), ProductId(2)),
        Some(false)
    );
    assert_eq!(
        t.c.product_listed(Actor::Seller(SELLER), ProductId(3)),
        Some(true),
        "N-days validity has no end"
    );
}

#[test]
fn pub_4_prv_1_provider_selectable_only_after_it_imported_the_seller() {
    let mut t = T::new();
    t.onboarded(SELLER, false, false);
    t.ok(
        Actor::Staff,
        CatalogCommand::RegisterProvider {
            id: ProviderId(71),
            name: "tickets ltd".into(),
            code_digits: 8,
        },
    );
    let mut p = product(ProductId(1), SELLER);
    p.provider = Some(ProviderId(71));
    assert_eq!(
        t.err(Actor::Seller(SELLER), publish(p.clone())),
        ErrorCode::ProviderNotLinked
    );
    t.ok(
        Actor::Provider(ProviderId(71)),
        CatalogCommand::LinkSeller { seller: SELLER },
    );
    t.ok(Actor::Seller(SELLER), publish(p));
    // PRV-1: a provider cannot import a seller that has not onboarded.
    t.ok(
        Actor::Staff,
        CatalogCommand::CreateSeller {
            id: SellerId(777),
            kind: SellerKind::Mall,
            self_issuing: false,
            group_buying_operator: false,
        },
    );
    assert_eq!(
        t.err(
            Actor::Provider(ProviderId(71)),
            CatalogCommand::LinkSeller {
                seller: SellerId(777)
            }
        ),
        ErrorCode::SellerNotOnboarded
    );
}

#[test]
fn pub_5_outlets_must_be_the_sellers_own() {
    let mut t = T::new();
    t.onboarded(SELLER, false, false);
    t.onboarded(OTHER, false, false);
    let mut p = product(ProductId(1), SELLER);
    p.outlets = vec![outlet_of(OTHER)];
    assert_eq!(
        t.err(Actor::Seller(SELLER), publish(p.clone())),
        ErrorCode::NotFound
    );
    p.outlets = vec![];
    assert_eq!(
        t.err(Actor::Seller(SELLER), publish(p)),
        ErrorCode::BadRequest
    );
    let far = CatalogCommand::AddOutlet {
        id: OutletId(5),
        name: "x".into(),
        address: "y".into(),
        latitude: deg("91"),
        longitude: deg("0"),
    };
    assert_eq!(t.err(Actor::Seller(SELLER), far), ErrorCode::BadRequest);
}

#[test]
fn pub_7_expiry_refund_ratio_bounds_and_category_minimum() {
    let mut t = T::new();
    t.onboarded(SELLER, false, false);
    let with = |id: ProductId, r: &str| {
        let mut p = product(id, SELLER);
        p.expiry_refund_ratio = Some(percent(r));
        publish(p)
    };
    // A ratio is 0.01 %..=100 % by its type (MON-1): 0 and 100.01 % cannot
    // be written, not even as JSON.
    assert!(Bps::from_percent("0".parse().unwrap()).is_err());
    assert!(Bps::from_percent("100.01".parse().unwrap()).is_err());
    let mut json = serde_json::to_value(publish(product(ProductId(1), SELLER))).unwrap();
    json["publish_product"]["expiry_refund_ratio"] = 0.into();
    assert!(serde_json::from_value::<CatalogCommand>(json).is_err());
    // BREAD's minimum is 80 %.
    assert_eq!(
        t.err(Actor::Seller(SELLER), with(ProductId(1), "79.99")),
        ErrorCode::RefundRatioBelowCategoryMinimum
    );
    t.ok(Actor::Seller(SELLER), with(ProductId(1), "80"));
    t.ok(Actor::Seller(SELLER), with(ProductId(2), "100"));
}

#[test]
fn pub_8_prv_4_merchant_code_is_required_bounded_and_the_providers_ticket_type() {
    let mut t = T::new();
    t.onboarded(SELLER, false, false);
    let mut p = product(ProductId(1), SELLER);
    p.merchant_code = String::new();
    assert_eq!(
        t.err(Actor::Seller(SELLER), publish(p.clone())),
        ErrorCode::BadRequest
    );
    p.merchant_code = "T".repeat(TEXT_BYTES_MAX + 1);
    assert_eq!(
        t.err(Actor::Seller(SELLER), publish(p.clone())),
        ErrorCode::BadRequest
    );
    p.merchant_code = "TICKET-TYPE-42".into();
    t.ok(Actor::Seller(SELLER), publish(p));
    // PRV-4: the product's provider reads it with that merchant code as its
    // ticket type.
    let read = t.c.read(
        Actor::Provider(PROVIDER),
        &CatalogQuery::Product { id: ProductId(1) },
    );
    let Ok(CatalogView::Products(v)) = read else {
        panic!("{read:?}")
    };
    assert_eq!(v[0].spec.merchant_code, "TICKET-TYPE-42");
    assert_eq!(v[0].spec.provider, Some(PROVIDER));
}

#[test]
fn prv_3_devices_register_at_linked_sellers_outlets_only() {
    let mut t = T::new();
    t.onboarded(SELLER, false, false);
    t.ok(
        Actor::Staff,
        CatalogCommand::RegisterProvider {
            id: ProviderId(72),
            name: "pos co".into(),
            code_digits: 8,
        },
    );
    let device = CatalogCommand::RegisterDevice {
        pos_id: PosId(1),
        outlet: outlet_of(SELLER),
        check_method: CheckMethod::Code,
    };
    assert_eq!(
        t.err(Actor::Provider(ProviderId(72)), device.clone()),
        ErrorCode::ProviderNotLinked
    );
    t.ok(Actor::Provider(PROVIDER), device.clone());
    assert_eq!(
        t.err(Actor::Provider(PROVIDER), device),
        ErrorCode::AlreadyExists
    );
}

#[test]
fn inv_4_catalog_retry_returns_original_reply_and_never_tops_up_twice() {
    let mut t = T::new();
    t.onboarded(SELLER, false, false);
    let rid = RequestId {
        source: 9,
        serial: 1,
    };
    let top = CatalogCommand::TopUp {
        amount: yuan("10.00"),
    };
    let mut ev = Vec::new();
    let first =
        t.c.apply(NOW, Actor::Seller(SELLER), rid, &top, &mut ev)
            .unwrap();
    let again =
        t.c.apply(NOW, Actor::Seller(SELLER), rid, &top, &mut ev)
            .unwrap();
    assert_eq!(first, again);
    assert_eq!(t.c.balance(Account::Payment(SELLER)), yuan("5010.00"));
    let other = CatalogCommand::TopUp {
        amount: yuan("11.00"),
    };
    let conflict =
        t.c.apply(NOW, Actor::Seller(SELLER), rid, &other, &mut ev)
            .unwrap_err();
    assert_eq!(conflict.code, ErrorCode::RequestConflict);
    assert_eq!(
        t.err(
            Actor::Seller(SELLER),
            CatalogCommand::TopUp {
                amount: Fen::new(100_000_000_001)
            }
        ),
        ErrorCode::BadRequest
    );
    assert_eq!(
        t.err(
            Actor::Seller(SELLER),
            CatalogCommand::TopUp {
                amount: Fen::new(-500)
            }
        ),
        ErrorCode::BadRequest
    );
}

#[test]
fn role_matrix_every_command_by_every_actor() {
    let p = product(ProductId(1), SELLER);
    let commands = vec![
        category(CategoryId(99), None, true, "1.00", None),
        CatalogCommand::CreateSeller {
            id: SellerId(1),
            kind: SellerKind::Mall,
            self_issuing: false,
            group_buying_operator: false,
        },
        CatalogCommand::AcceptAgreement,
        bind(true, true),
        CatalogCommand::ConfirmOnboarding {
            service_phone: "1".into(),
            categories: vec![],
        },
        CatalogCommand::GrantPublishPermission {
            seller: SellerId(1),
            category: BREAD,
        },
        CatalogCommand::TopUp { amount: yuan("1") },
        CatalogCommand::ApplyTPlusN { category: BREAD },
        CatalogCommand::DecideTPlusN {
            seller: SellerId(1),
            category: BREAD,
            approve: true,
        },
        CatalogCommand::ConfirmDepositFreeze { category: BREAD },
        CatalogCommand::DeductDeposit {
            seller: SellerId(1),
            category: BREAD,
            amount: yuan("1"),
        },
        CatalogCommand::TopUpDeposit {
            category: BREAD,
            amount: yuan("1"),
        },
        CatalogCommand::FundGroupBuyingDeposit { amount: yuan("1") },
        CatalogCommand::RegisterProvider {
            id: ProviderId(1),
            name: "p".into(),
            code_digits: 8,
        },
        CatalogCommand::LinkSeller {
            seller: SellerId(1),
        },
        outlet(OutletId(1)),
        CatalogCommand::AddVerifier {
            id: VerifierId(1),
            real_name: true,
            parent: None,
            outlets: vec![],
        },
        CatalogCommand::RegisterDevice {
            pos_id: PosId(1),
            outlet: OutletId(1),
            check_method: CheckMethod::QrCode,
        },
        publish(p),
        CatalogCommand::DelistProduct { id: ProductId(1) },
        CatalogCommand::IssueToken {
            token_hash: [1; 32],
            actor: Actor::FrontEnd,
        },
        CatalogCommand::RevokeToken {
            which: TokenRef::Hash([1; 32]),
        },
        CatalogCommand::LiftLockout {
            key: LockKey::Outlet(OutletId(1)),
        },
        CatalogCommand::RunSettlement {
            seller: SellerId(1),
            cutoff_ms: 0,
        },
        CatalogCommand::ConfirmPayout { settlement: 1 },
        CatalogCommand::FailPayout { settlement: 1 },
    ];
    let staff_only = [0, 1, 5, 8, 10, 13, 20, 21, 22, 23];
    let seller_only = [2, 3, 4, 6, 7, 9, 11, 12, 15, 16, 18, 19];
    let provider_only = [14, 17];
    let payment_system_only = [24, 25];
    for (i, c) in commands.iter().enumerate() {
        let expect = |a: Actor| match a {
            Actor::Staff => staff_only.contains(&i),
            Actor::Seller(_) => seller_only.contains(&i),
            Actor::Provider(_) => provider_only.contains(&i),
            Actor::PaymentSystem => payment_system_only.contains(&i),
            // The system's inputs are not commands (`SystemInput`).
            Actor::System => false,
            Actor::Verifier(_) | Actor::Device(_) | Actor::FrontEnd => false,
        };
        for a in [
            Actor::Staff,
            Actor::Seller(SellerId(5)),
            Actor::Provider(ProviderId(5)),
            Actor::Verifier(VerifierId(5)),
            Actor::Device(PosId(5)),
            Actor::FrontEnd,
            Actor::System,
            Actor::PaymentSystem,
        ] {
            assert_eq!(c.allowed(a), expect(a), "command {i} {c:?} by {a:?}");
            if !expect(a) {
                let mut t = T::new();
                assert_eq!(
                    t.err(a, c.clone()),
                    ErrorCode::NotPermitted,
                    "command {i} by {a:?}"
                );
            }
        }
    }
}

#[test]
fn tenant_a_seller_never_sees_or_changes_another_sellers_products() {
    let mut t = T::new();
    t.onboarded(SELLER, false, false);
    t.onboarded(OTHER, false, false);
    t.ok(
        Actor::Seller(SELLER),
        publish(product(ProductId(1), SELLER)),
    );
    assert_eq!(t.c.product_listed(Actor::Seller(OTHER), ProductId(1)), None);
    assert_eq!(
        t.err(
            Actor::Seller(OTHER),
            CatalogCommand::DelistProduct { id: ProductId(1) }
        ),
        ErrorCode::NotFound
    );
    assert_eq!(
        t.c.product_listed(Actor::Seller(SELLER), ProductId(1)),
        Some(true)
    );
    // A verifier may only be bound to the seller's own outlets.
    let v = CatalogCommand::AddVerifier {
        id: VerifierId(3),
        real_name: true,
        parent: None,
        outlets: vec![outlet_of(SELLER)],
    };
    assert_eq!(t.err(Actor::Seller(OTHER), v.clone()), ErrorCode::NotFound);
    t.ok(Actor::Seller(SELLER), v);
}

#[test]
fn principals_tokens_are_registered_by_hash_for_existing_principals_and_revocable() {
    let mut t = T::new();
    t.onboarded(SELLER, false, false);
    let issue = |hash: u8, actor| CatalogCommand::IssueToken {
        token_hash: [hash; 32],
        actor,
    };
    assert_eq!(
        t.err(Actor::Staff, issue(1, Actor::Seller(SellerId(999)))),
        ErrorCode::NotFound
    );
    assert_eq!(
        t.err(Actor::Staff, issue(1, Actor::Device(PosId(4)))),
        ErrorCode::NotFound
    );
    t.ok(Actor::Staff, issue(1, Actor::Seller(SELLER)));
    assert_eq!(
        t.err(Actor::Staff, issue(1, Actor::FrontEnd)),
        ErrorCode::AlreadyExists
    );
    assert_eq!(t.c.token_actor(&[1; 32]), Some(Actor::Seller(SELLER)));
    assert_eq!(
        t.err(Actor::Seller(SELLER), issue(2, Actor::Staff)),
        ErrorCode::NotPermitted
    );
    t.ok(
        Actor::Staff,
        CatalogCommand::RevokeToken {
            which: TokenRef::Hash([1; 32]),
        },
    );
    assert_eq!(t.c.token_actor(&[1; 32]), None);
    assert_eq!(
        t.err(
            Actor::Staff,
            CatalogCommand::RevokeToken {
                which: TokenRef::Hash([1; 32])
            }
        ),
        ErrorCode::NotFound
    );
}

/// A token hash whose request-id source (its id) is `id`.
fn hash_with_id(id: u8) -> [u8; 32] {
    let mut h = [0xee; 32];
    h[..8].copy_from_slice(&u64::from(id).to_be_bytes());
    h
}

#[test]
fn principals_tokens_are_listed_without_secrets_and_revoked_by_id_or_principal() {
    let mut t = T::new();
    t.onboarded(SELLER, false, false);
    for (id, actor) in [
        (1, Actor::Seller(SELLER)),
        (2, Actor::Seller(SELLER)),
        (3, Actor::FrontEnd),
    ] {
        let token_hash = hash_with_id(id);
        t.ok(
            Actor::Staff,
            CatalogCommand::IssueToken { token_hash, actor },
        );
    }
    let revoke = |which| CatalogCommand::RevokeToken { which };
    // Every active token of the seller at once, each one an event.
    t.events.clear();
    let out = t.ok(
        Actor::Staff,
        revoke(TokenRef::Principal(Actor::Seller(SELLER))),
    );
    assert_eq!(out, CatalogOutcome::TokensRevoked(vec![1, 2]));
    let revoked: Vec<u64> = t
        .events
        .iter()
        .filter_map(|e| match e {
            CatalogEvent::TokenRevoked { id, .. } => Some(*id),
            _ => None,
        })
        .collect();
    assert_eq!(revoked, vec![1, 2]);
    assert_eq!(t.c.token_actor(&hash_with_id(1)), None);
    assert_eq!(t.c.token_actor(&hash_with_id(3)), Some(Actor::FrontEnd));
    // By id; a second revocation finds nothing active.
    let out = t.ok(Actor::Staff, revoke(TokenRef::Id(3)));
    assert_eq!(out, CatalogOutcome::TokensRevoked(vec![3]));
    assert_eq!(
        t.err(Actor::Staff, revoke(TokenRef::Id(3))),
        ErrorCode::NotFound
    );
    assert_eq!(
        t.err(Actor::Seller(SELLER), revoke(TokenRef::Id(1))),
        ErrorCode::NotPermitted
    );
    // The list keeps revoked tokens (never revived), without secrets.
    let list = |after, limit| CatalogQuery::Tokens { after, limit };
    let Ok(CatalogView::Tokens(items)) = t.c.read(Actor::Staff, &list(None, 10)) else {
        panic!("token list refused");
    };
    let seen: Vec<(u64, Actor, Option<i64>)> = items
        .iter()
        .map(|v| (v.id, v.principal, v.revoked_at_ms))
        .collect();
    assert_eq!(
        seen,
        vec![
            (1, Actor::Seller(SELLER), Some(NOW)),
            (2, Actor::Seller(SELLER), Some(NOW)),
            (3, Actor::FrontEnd, Some(NOW)),
        ]
    );
    let Ok(CatalogView::Tokens(page)) = t.c.read(Actor::Staff, &list(Some(1), 1)) else {
        panic!("token page refused");
    };
    assert_eq!(page.iter().map(|v| v.id).collect::<Vec<_>>(), vec![2]);
    assert_eq!(
        t.c.read(Actor::Seller(SELLER), &list(None, 10))
            .unwrap_err()
            .code,
        ErrorCode::NotPermitted
    );
    assert_eq!(
        t.c.read(Actor::Staff, &list(None, 0)).unwrap_err().code,
        ErrorCode::BadRequest
    );
    let again = CatalogCommand::IssueToken {
        token_hash: hash_with_id(1),
        actor: Actor::FrontEnd,
    };
    assert_eq!(t.err(Actor::Staff, again), ErrorCode::AlreadyExists);
}

#[test]
fn pub_4_platform_provider_is_selectable_by_every_onboarded_seller_without_import() {
    let mut t = T::new();
    t.onboarded(SELLER, false, false);
    let mut p = product(ProductId(1), SELLER);
    p.provider = Some(PLATFORM_PROVIDER);
    t.ok(Actor::Seller(SELLER), publish(p));
    let Ok(CatalogView::Products(v)) = t.c.read(
        Actor::Seller(SELLER),
        &CatalogQuery::Product { id: ProductId(1) },
    ) else {
        panic!("product 1 not readable by its seller")
    };
    assert_eq!(v[0].code_digits, Some(PLATFORM_CODE_DIGITS));
    // It cannot be registered again, and it serves POS devices at every
    // onboarded seller's outlets without an import (PRV-3).
    assert_eq!(
        t.err(
            Actor::Staff,
            CatalogCommand::RegisterProvider {
                id: PLATFORM_PROVIDER,
                name: "again".into(),
                code_digits: 9,
            }
        ),
        ErrorCode::AlreadyExists
    );
    t.ok(
        Actor::Provider(PLATFORM_PROVIDER),
        CatalogCommand::RegisterDevice {
            pos_id: PosId(1),
            outlet: outlet_of(SELLER),
            check_method: CheckMethod::Code,
        },
    );
    // A third-party provider still needs the import.
    t.ok(
        Actor::Staff,
        CatalogCommand::RegisterProvider {
            id: ProviderId(72),
            name: "other codes".into(),
            code_digits: 9,
        },
    );
    let mut q = product(ProductId(2), SELLER);
    q.provider = Some(ProviderId(72));
    assert_eq!(
        t.err(Actor::Seller(SELLER), publish(q)),
        ErrorCode::ProviderNotLinked
    );
}

/// Every read × every principal kind: allowed or `not_permitted` as the
/// read matrix says.
#[test]
fn role_matrix_every_read_by_every_actor() {
    let t = T::new();
    type Rule = fn(Actor) -> bool;
    let staff_seller: Rule = |a| matches!(a, Actor::Staff | Actor::System | Actor::Seller(_));
    let not_verifier: Rule = |a| !matches!(a, Actor::Verifier(_) | Actor::Device(_));
    let rows: Vec<(CatalogQuery, Rule)> = vec![
        (CatalogQuery::Categories(Page::first()), |_| true),
        (CatalogQuery::Seller { id: Some(SELLER) }, staff_seller),
        (
            CatalogQuery::Verifiers {
                seller: None,
                page: Page::first(),
            },
            staff_seller,
        ),
        (
            CatalogQuery::Lockouts {
                after: None,
                limit: 10,
            },
            staff_seller,
        ),
        (CatalogQuery::Providers(Page::first()), |a| {
            matches!(
                a,
                Actor::Staff | Actor::System | Actor::Seller(_) | Actor::Provider(_)
            )
        }),
        (CatalogQuery::Devices(Page::first()), |a| {
            matches!(
                a,
                Actor::Staff | Actor::System | Actor::Seller(_) | Actor::Provider(_)
            )
        }),
        (
            CatalogQuery::Outlets {
                seller: None,
                page: Page::first(),
            },
            not_verifier,
        ),
        (
            CatalogQuery::Products {
                seller: None,
                page: Page::first(),
            },
            not_verifier,
        ),
    ];
    let actors = [
        Actor::Staff,
        Actor::System,
        Actor::FrontEnd,
        Actor::Seller(SELLER),
        Actor::Provider(PROVIDER),
        Actor::Verifier(VerifierId(3)),
        Actor::Device(PosId(4)),
    ];
    for (query, allowed) in &rows {
        for actor in actors {
            let got = t.c.read(actor, query);
            assert_eq!(
                query.allowed(actor),
                allowed(actor),
                "{query:?} by {actor:?}"
            );
            match got {
                // A seller asking for a seller id other than its own, or a
                // missing seller, is refused after the matrix.
                Err(e) if allowed(actor) => assert_ne!(
                    e.code,
                    ErrorCode::NotPermitted,
                    "{query:?} by {actor:?}: {e}"
                ),
                Err(e) => assert_eq!(e.code, ErrorCode::NotPermitted),
                Ok(_) => assert!(allowed(actor), "{query:?} by {actor:?} answered"),
            }
        }
    }
}

/// Issue 3's cross-tenant reads: a seller reading another's products,
/// outlets, verifiers or account is refused; each principal sees only its
/// tenant's part.
#[test]
fn tenant_reads_show_each_principal_only_its_own_data() {
    let mut t = T::new();
    t.onboarded(SELLER, false, false);
    t.onboarded(OTHER, false, false);
    t.ok(
        Actor::Seller(SELLER),
        publish(product(ProductId(1), SELLER)),
    );
    t.ok(Actor::Seller(OTHER), publish(product(ProductId(2), OTHER)));
    let mut own = product(ProductId(3), OTHER);
    own.provider = Some(PLATFORM_PROVIDER);
    t.ok(Actor::Seller(OTHER), publish(own));
    t.ok(
        Actor::Seller(OTHER),
        CatalogCommand::DelistProduct { id: ProductId(2) },
    );
    for (id, seller) in [(VerifierId(31), SELLER), (VerifierId(32), OTHER)] {
        t.ok(
            Actor::Seller(seller),
            CatalogCommand::AddVerifier {
                id,
                real_name: true,
                parent: None,
                outlets: vec![outlet_of(seller)],
            },
        );
    }
    let products = |t: &T, actor, seller| -> Result<Vec<u64>, ErrorCode> {
        match t.c.read(
            actor,
            &CatalogQuery::Products {
                seller,
                page: Page::first(),
            },
        ) {
            Ok(CatalogView::Products(v)) => Ok(v.iter().map(|p| p.spec.id.0).collect()),
            Ok(other) => panic!("{other:?}"),
            Err(e) => Err(e.code),
        }
    };
    assert_eq!(products(&t, Actor::Seller(SELLER), None), Ok(vec![1]));
    assert_eq!(products(&t, Actor::Seller(OTHER), None), Ok(vec![2, 3]));
    assert_eq!(
        products(&t, Actor::Seller(OTHER), Some(SELLER)),
        Err(ErrorCode::NotPermitted)
    );
    assert_eq!(products(&t, Actor::Staff, None), Ok(vec![1, 2, 3]));
    assert_eq!(products(&t, Actor::Staff, Some(OTHER)), Ok(vec![2, 3]));
    // The provider sees the products that chose it; the front end the
    // listed ones only (2 was delisted).
    assert_eq!(
        products(&t, Actor::Provider(PROVIDER), None),
        Ok(vec![1, 2])
    );
    // A provider naming a seller it does not serve is refused.
    t.ok(
        Actor::Staff,
        CatalogCommand::RegisterProvider {
            id: ProviderId(72),
            name: "unlinked".into(),
            code_digits: 9,
        },
    );
    assert_eq!(
        products(&t, Actor::Provider(ProviderId(72)), Some(SELLER)),
        Err(ErrorCode::NotPermitted)
    );
    assert_eq!(products(&t, Actor::FrontEnd, None), Ok(vec![1, 3]));
    // One product of another tenant looks like none at all.
    let one = |actor, id| {
        t.c.read(actor, &CatalogQuery::Product { id })
            .map_err(|e| e.code)
    };
    assert_eq!(
        one(Actor::Seller(SELLER), ProductId(2)),
        Err(ErrorCode::NotFound)
    );
    assert_eq!(
        one(Actor::Seller(SELLER), ProductId(99)),
        Err(ErrorCode::NotFound)
    );
    assert!(one(Actor::Seller(OTHER), ProductId(2)).is_ok());
    // Accounts: a seller reads its own (None = itself), never another's.
    let account = |actor, id| match t.c.read(actor, &CatalogQuery::Seller { id }) {
        Ok(CatalogView::Seller(s)) => Ok(s),
        Ok(other) => panic!("{other:?}"),
        Err(e) => Err(e.code),
    };
    let mine = account(Actor::Seller(SELLER), None).unwrap();
    assert_eq!(mine.id, SELLER);
    assert_eq!(mine.payment_balance, yuan("5000.00"));
    assert_eq!(mine.onboarding, Onboarding::Enabled);
    assert_eq!(mine.permitted, vec![BREAD]);
    assert_eq!(mine.categories_wanted, vec![BREAD]);
    assert_eq!(mine.service_phone.as_deref(), Some("400-800-1234"));
    assert_eq!(
        account(Actor::Seller(SELLER), Some(OTHER)),
        Err(ErrorCode::NotPermitted)
    );
    assert_eq!(account(Actor::Staff, Some(OTHER)).unwrap().id, OTHER);
    // Outlets and verifiers: own only for sellers.
    let outlets = |actor, seller| match t.c.read(
        actor,
        &CatalogQuery::Outlets {
            seller,
            page: Page::first(),
        },
    ) {
        Ok(CatalogView::Outlets(v)) => Ok(v.iter().map(|o| o.id).collect::<Vec<_>>()),
        Ok(other) => panic!("{other:?}"),
        Err(e) => Err(e.code),
    };
    assert_eq!(
        outlets(Actor::Seller(SELLER), None),
        Ok(vec![outlet_of(SELLER)])
    );
    assert_eq!(
        outlets(Actor::Seller(SELLER), Some(OTHER)),
        Err(ErrorCode::NotPermitted)
    );
    assert_eq!(
        outlets(Actor::FrontEnd, None),
        Ok(vec![outlet_of(SELLER), outlet_of(OTHER)])
    );
    let verifiers = |actor| match t.c.read(
        actor,
        &CatalogQuery::Verifiers {
            seller: None,
            page: Page::first(),
        },
    ) {
        Ok(CatalogView::Verifiers(v)) => v.iter().map(|v| v.id.0).collect::<Vec<_>>(),
        other => panic!("{other:?}"),
    };
    assert_eq!(verifiers(Actor::Seller(SELLER)), vec![31]);
    assert_eq!(verifiers(Actor::Seller(OTHER)), vec![32]);
    assert_eq!(verifiers(Actor::Staff), vec![31, 32]);
    // A seller sees the providers it may select, and only its own link.
    let Ok(CatalogView::Providers(v)) = t.c.read(
        Actor::Seller(SELLER),
        &CatalogQuery::Providers(Page::first()),
    ) else {
        panic!()
    };
    let seen: Vec<(ProviderId, Vec<SellerId>)> =
        v.iter().map(|p| (p.id, p.sellers.clone())).collect();
    assert_eq!(
        seen,
        vec![(PLATFORM_PROVIDER, vec![]), (PROVIDER, vec![SELLER])]
    );
}

#[test]
fn reads_page_in_id_order_and_refuse_bad_limits() {
    let mut t = T::new();
    t.onboarded(SELLER, false, false);
    for id in 1..=5 {
        t.ok(
            Actor::Seller(SELLER),
            publish(product(ProductId(id), SELLER)),
        );
    }
    let read = |after, limit| match t.c.read(
        Actor::Seller(SELLER),
        &CatalogQuery::Products {
            seller: None,
            page: Page { after, limit },
        },
    ) {
        Ok(CatalogView::Products(v)) => Ok(v.iter().map(|p| p.spec.id.0).collect::<Vec<_>>()),
        Ok(other) => panic!("{other:?}"),
        Err(e) => Err(e.code),
    };
    assert_eq!(read(None, 2), Ok(vec![1, 2]));
    assert_eq!(read(Some(ProductId(2)), 2), Ok(vec![3, 4]));
    assert_eq!(read(Some(ProductId(4)), 2), Ok(vec![5]));
    assert_eq!(read(Some(ProductId(5)), 2), Ok(vec![]));
    assert_eq!(read(None, 0), Err(ErrorCode::BadRequest));
    assert_eq!(
        read(None, READ_PAGE_ITEMS_MAX + 1),
        Err(ErrorCode::BadRequest)
    );
}

#[test]
fn category_tree_refuses_a_cycle() {
    let mut t = T::new();
    // BREAD's parent is FOOD: making FOOD a child of BREAD is a cycle.
    assert_eq!(
        t.err(Actor::Staff, category(FOOD, Some(BREAD), true, "0", None)),
        ErrorCode::BadRequest
    );
    let Ok(CatalogView::Categories(v)) = t.c.read(
        Actor::Seller(SELLER),
        &CatalogQuery::Categories(Page::first()),
    ) else {
        panic!()
    };
    let tree: Vec<(CategoryId, Option<CategoryId>)> = v.iter().map(|c| (c.id, c.parent)).collect();
    assert_eq!(
        tree,
        vec![(FOOD, None), (BREAD, Some(FOOD)), (NO_VOUCHERS, Some(FOOD))]
    );
}

#[test]
fn onb_6_raising_a_category_deposit_makes_its_t_plus_n_sellers_short() {
    let mut t = T::new();
    t.onboarded(SELLER, false, false);
    t.enable_t_plus_n(SELLER, BREAD);
    t.events.clear();
    // BREAD's deposit goes from 500.00 to 800.00: the frozen 500.00 is short.
    t.ok(
        Actor::Staff,
        category(BREAD, Some(FOOD), true, "800", Some("80")),
    );
    assert_eq!(
        t.events,
        vec![CatalogEvent::DepositShort {
            seller: SELLER,
            category: BREAD,
            balance: yuan("500.00"),
            required: yuan("800.00"),
        }]
    );
    let mut p = product(ProductId(1), SELLER);
    p.settlement = Settlement::TPlus3;
    assert_eq!(
        t.err(Actor::Seller(SELLER), publish(p.clone())),
        ErrorCode::DepositShort
    );
    t.ok(
        Actor::Seller(SELLER),
        CatalogCommand::TopUpDeposit {
            category: BREAD,
            amount: yuan("300"),
        },
    );
    t.ok(Actor::Seller(SELLER), publish(p));
}

#[test]
fn onb_2_confirm_names_categories_once_and_top_up_needs_a_bound_payment_account() {
    let mut t = T::new();
    t.ok(
        Actor::Staff,
        CatalogCommand::CreateSeller {
            id: SELLER,
            kind: SellerKind::Marketplace,
            self_issuing: false,
            group_buying_operator: false,
        },
    );
    let s = Actor::Seller(SELLER);
    let top_up = CatalogCommand::TopUp { amount: yuan("5") };
    assert_eq!(
        t.err(s, top_up.clone()),
        ErrorCode::OnboardingStepOutOfOrder
    );
    t.ok(s, CatalogCommand::AcceptAgreement);
    t.ok(s, bind(true, true));
    // Amounts are kept in fen: 5 → 5.00.
    assert_eq!(t.ok(s, top_up), CatalogOutcome::Balance(yuan("5.00")));
    for categories in [vec![], vec![BREAD, BREAD]] {
        let confirm = CatalogCommand::ConfirmOnboarding {
            service_phone: "400".into(),
            categories,
        };
        assert_eq!(t.err(s, confirm), ErrorCode::BadRequest);
    }
    // Blank, invisible or direction-changing text is refused.
    for phone in [
        "   ",
        "\u{200B}",
        "400\u{202E}008",
        "\u{3164}",
        "\u{FEFF}400",
        "\u{E0041}\u{E0042}",
        "400\u{2028}",
        "\u{E000}",
        "400\u{E0100}",
        "\u{1D173}",
    ] {
        let confirm = CatalogCommand::ConfirmOnboarding {
            service_phone: phone.into(),
            categories: vec![BREAD],
        };
        assert_eq!(t.err(s, confirm), ErrorCode::BadRequest, "{phone:?}");
    }
    // Ordinary text in any script is fine.
    let confirm = CatalogCommand::ConfirmOnboarding {
        service_phone: "客服 400-800-1234 转 8".into(),
        categories: vec![BREAD],
    };
    assert_eq!(
        t.ok(s, confirm),
        CatalogOutcome::Onboarding(Onboarding::Enabled)
    );
}

#[test]
fn ord_7_verifier_accounts_and_sub_accounts_must_be_real_name() {
    let mut t = T::new();
    t.onboarded(SELLER, false, false);
    let verifier = |id, real_name, parent| CatalogCommand::AddVerifier {
        id,
        real_name,
        parent,
        outlets: vec![outlet_of(SELLER)],
    };
    assert_eq!(
        t.err(Actor::Seller(SELLER), verifier(VerifierId(1), false, None)),
        ErrorCode::VerifierNotRealName
    );
    t.ok(Actor::Seller(SELLER), verifier(VerifierId(1), true, None));
    assert_eq!(
        t.err(
            Actor::Seller(SELLER),
            verifier(VerifierId(2), false, Some(VerifierId(1)))
        ),
        ErrorCode::VerifierNotRealName
    );
    t.ok(
        Actor::Seller(SELLER),
        verifier(VerifierId(2), true, Some(VerifierId(1))),
    );
    // An outlet named twice is refused.
    let twice = CatalogCommand::AddVerifier {
        id: VerifierId(3),
        real_name: true,
        parent: None,
        outlets: vec![outlet_of(SELLER), outlet_of(SELLER)],
    };
    assert_eq!(t.err(Actor::Seller(SELLER), twice), ErrorCode::BadRequest);
}

#[test]
fn pub_9_publishing_api_refuses_misspelt_fields_in_json() {
    let good = r#"{"put_category":{"id":22,"parent":null,"name":"n","supports_vouchers":true,"deposit":"0","min_expiry_refund_ratio":null,"supports_auto_refund":false}}"#;
    assert!(serde_json::from_str::<CatalogCommand>(good).is_ok());
    let misspelt = good.replace("\"parent\"", "\"parnet\"");
    let err = serde_json::from_str::<CatalogCommand>(&misspelt).unwrap_err();
    assert!(err.to_string().contains("parnet"), "{err}");
}

#[test]
fn onb_6_a_deposit_without_t_plus_n_is_never_short() {
    let mut t = T::new();
    t.onboarded(SELLER, false, false);
    t.events.clear();
    t.ok(
        Actor::Seller(SELLER),
        CatalogCommand::TopUpDeposit {
            category: BREAD,
            amount: yuan("1"),
        },
    );
    assert_eq!(t.events, vec![], "no T+N in BREAD: nothing is required");
    let Ok(CatalogView::Seller(s)) =
        t.c.read(Actor::Seller(SELLER), &CatalogQuery::Seller { id: None })
    else {
        panic!()
    };
    assert_eq!(s.deposit_short, Vec::<CategoryId>::new());
    assert_eq!(s.deposits, vec![(BREAD, yuan("1.00"))]);
}

/// PUB-3's tick is the server's own input, not a client command: no
/// client can send one (`tick` is not a catalog command, even as JSON),
/// and running it again only delists what is due by then.
#[test]
fn pub_3_the_tick_is_the_systems_input_not_a_command() {
    let mut t = T::new();
    t.onboarded(SELLER, false, false);
    assert!(serde_json::from_str::<CatalogCommand>(r#""tick""#).is_err());
    for _ in 0..2 {
        let tick = t.c.apply_system(NOW, &SystemInput::Tick, &mut t.events);
        assert_eq!(
            tick,
            Ok(CatalogOutcome::Ticked {
                delisted: vec![],
                lockouts_ended: 0
            })
        );
    }
}

/// Issue 7: lockouts are recorded by the system, listed for staff (all)
/// and for a seller (its POS, verifiers and outlets only, never peers),
/// lifted by staff, and dropped by the tick once ended.
#[test]
fn lockouts_recorded_listed_per_tenant_lifted_and_dropped_when_ended() {
    let mut t = T::new();
    t.onboarded(SELLER, false, false);
    t.onboarded(OTHER, false, false);
    let own_outlet = outlet_of(SELLER);
    t.ok(
        Actor::Provider(PROVIDER),
        CatalogCommand::RegisterDevice {
            pos_id: PosId(31),
            outlet: own_outlet,
            check_method: CheckMethod::Code,
        },
    );
    let peer = LockKey::peer("10.1.2.3".parse().unwrap());
    let keys = [
        LockKey::Principal(Actor::Device(PosId(31))),
        LockKey::Outlet(own_outlet),
        LockKey::Outlet(outlet_of(OTHER)),
        peer,
    ];
    for key in keys {
        let lock = SystemInput::LockOut {
            key,
            until_ms: NOW + 3_600_000,
            failures: 20,
        };
        t.c.apply_system(NOW, &lock, &mut t.events).unwrap();
    }
    let list = |t: &T, actor| match t.c.read(
        actor,
        &CatalogQuery::Lockouts {
            after: None,
            limit: 100,
        },
    ) {
        Ok(CatalogView::Lockouts(v)) => v.iter().map(|l| l.key).collect::<Vec<_>>(),
        other => panic!("{other:?}"),
    };
    assert_eq!(list(&t, Actor::Staff).len(), 4);
    let mine = list(&t, Actor::Seller(SELLER));
    assert_eq!(
        mine,
        [keys[0], keys[1]],
        "the seller sees its POS and its outlet, not the other's nor peers"
    );
    let bad = SystemInput::LockOut {
        key: keys[0],
        until_ms: NOW,
        failures: 1,
    };
    assert_eq!(
        t.c.apply_system(NOW, &bad, &mut t.events)
            .map_err(|r| r.code),
        Err(ErrorCode::BadRequest)
    );
    t.ok(Actor::Staff, CatalogCommand::LiftLockout { key: keys[0] });
    assert_eq!(
        t.err(Actor::Staff, CatalogCommand::LiftLockout { key: keys[0] }),
        ErrorCode::NotFound
    );
    assert_eq!(list(&t, Actor::Seller(SELLER)), [keys[1]]);
    // An hour later the tick drops the ended ones.
    let tick =
        t.c.apply_system(NOW + 3_600_000, &SystemInput::Tick, &mut Vec::new());
    assert_eq!(
        tick,
        Ok(CatalogOutcome::Ticked {
            delisted: vec![],
            lockouts_ended: 3
        })
    );
    assert!(list(&t, Actor::Staff).is_empty());
}
