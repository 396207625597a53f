//! The catalog served end to end: onboarding, T+N, providers, outlets,
//! verifiers, POS devices and products through the protocol, persisted,
//! surviving a SIGKILL and restart exactly as they were (issue 3's restart
//! test: every catalog read before equals the same read after).
mod common;
mod helpers;

use common::Server;
use jiff::civil::date;
use rust_decimal::Decimal;
use vouch_engine::catalog::*;
use vouch_engine::validity::Validity;
use vouch_engine::{CategoryId, OutletId, PosId, ProductId, ProviderId, SellerId, VerifierId};
use vouch_engine::{ErrorCode, RequestId};
use vouch_protocol::{Client, Target};

const SELLER: SellerId = SellerId(500);

struct Session<'a> {
    client: &'a Client,
    serial: u64,
}

impl Session<'_> {
    async fn run(&mut self, actor: Actor, command: CatalogCommand) -> Result<CatalogOutcome, u16> {
        self.serial += 1;
        let rid = RequestId {
            source: 42,
            serial: self.serial,
        };
        self.client
            .catalog(rid, Some(actor), command)
            .await
            .expect("connection")
            .map_err(|e| e.code)
    }
}

fn yuan(s: &str) -> vouch_engine::Fen {
    s.parse().unwrap()
}

fn percent(s: &str) -> vouch_engine::Bps {
    vouch_engine::Bps::from_percent(s.parse().unwrap()).unwrap()
}

fn bread_product(id: ProductId) -> ProductSpec {
    ProductSpec {
        id,
        category: CategoryId(11),
        delivery: Delivery::EVoucher,
        validity: Validity::Fixed {
            start: date(2099, 1, 1),
            end: date(2099, 12, 31),
        },
        provider: Some(ProviderId(70)),
        outlets: vec![OutletId(900)],
        settlement: Settlement::TPlus3,
        expiry_refund_ratio: Some(percent("90")),
        merchant_code: "BREAD-10".into(),
        group_buying: false,
    }
}

async fn onboard_and_publish(server: &Server, target: &Target) {
    let client = server.client(target).await;
    let mut s = Session {
        client: &client,
        serial: 0,
    };
    let seller = Actor::Seller(SELLER);
    let put = CatalogCommand::PutCategory {
        id: CategoryId(11),
        parent: None,
        name: "bread vouchers".into(),
        supports_vouchers: true,
        deposit: yuan("500.00"),
        min_expiry_refund_ratio: Some(percent("80")),
        supports_auto_refund: true,
    };
    s.run(Actor::Staff, put).await.unwrap();
    let create = CatalogCommand::CreateSeller {
        id: SELLER,
        kind: SellerKind::Mall,
        self_issuing: false,
        group_buying_operator: false,
    };
    s.run(Actor::Staff, create).await.unwrap();
    // Role matrix over the wire: a seller cannot create sellers.
    let as_seller = CatalogCommand::CreateSeller {
        id: SellerId(501),
        kind: SellerKind::Mall,
        self_issuing: false,
        group_buying_operator: false,
    };
    assert_eq!(
        s.run(seller, as_seller).await,
        Err(ErrorCode::NotPermitted.number())
    );
    s.run(seller, CatalogCommand::AcceptAgreement)
        .await
        .unwrap();
    let bind = CatalogCommand::BindPaymentAccount {
        account: "pay:500".into(),
        supports_freezing: true,
        accept_payment_agreement: true,
    };
    s.run(seller, bind).await.unwrap();
    let confirm = CatalogCommand::ConfirmOnboarding {
        service_phone: "400-800-0500".into(),
        categories: vec![CategoryId(11)],
    };
    assert_eq!(
        s.run(seller, confirm).await,
        Ok(CatalogOutcome::Onboarding(Onboarding::Enabled))
    );
    s.run(
        Actor::Staff,
        CatalogCommand::GrantPublishPermission {
            seller: SELLER,
            category: CategoryId(11),
        },
    )
    .await
    .unwrap();
    s.run(
        seller,
        CatalogCommand::TopUp {
            amount: yuan("800.00"),
        },
    )
    .await
    .unwrap();
    s.run(
        seller,
        CatalogCommand::ApplyTPlusN {
            category: CategoryId(11),
        },
    )
    .await
    .unwrap();
    s.run(
        Actor::Staff,
        CatalogCommand::DecideTPlusN {
            seller: SELLER,
            category: CategoryId(11),
            approve: true,
        },
    )
    .await
    .unwrap();
    let frozen = s
        .run(
            seller,
            CatalogCommand::ConfirmDepositFreeze {
                category: CategoryId(11),
            },
        )
        .await;
    assert_eq!(frozen, Ok(CatalogOutcome::TPlusN(TPlusN::Enabled)));
    s.run(
        Actor::Staff,
        CatalogCommand::RegisterProvider {
            id: ProviderId(70),
            name: "codes".into(),
            code_digits: 10,
        },
    )
    .await
    .unwrap();
    let outlet = CatalogCommand::AddOutlet {
        id: OutletId(900),
        name: "Bakery".into(),
        address: "Nanjing Road 1".into(),
        latitude: "31.23".parse::<Decimal>().unwrap(),
        longitude: "121.47".parse::<Decimal>().unwrap(),
    };
    s.run(seller, outlet).await.unwrap();
    assert_eq!(
        s.run(
            seller,
            CatalogCommand::PublishProduct(bread_product(ProductId(1)))
        )
        .await,
        Err(ErrorCode::ProviderNotLinked.number())
    );
    s.run(
        Actor::Provider(ProviderId(70)),
        CatalogCommand::LinkSeller { seller: SELLER },
    )
    .await
    .unwrap();
    s.run(
        seller,
        CatalogCommand::PublishProduct(bread_product(ProductId(1))),
    )
    .await
    .unwrap();
    let verifier = CatalogCommand::AddVerifier {
        id: VerifierId(41),
        real_name: true,
        parent: None,
        outlets: vec![OutletId(900)],
    };
    s.run(seller, verifier).await.unwrap();
    let device = CatalogCommand::RegisterDevice {
        pos_id: PosId(31),
        outlet: OutletId(900),
        check_method: CheckMethod::QrCode,
    };
    s.run(Actor::Provider(ProviderId(70)), device)
        .await
        .unwrap();
}

/// Everything staff can read of the catalog: every kind of entity.
async fn everything(server: &Server, target: &Target) -> Vec<CatalogView> {
    let client = server.client(target).await;
    let queries = [
        CatalogQuery::Categories(Page::first()),
        CatalogQuery::Seller { id: Some(SELLER) },
        CatalogQuery::Providers(Page::first()),
        CatalogQuery::Outlets {
            seller: None,
            page: Page::first(),
        },
        CatalogQuery::Verifiers {
            seller: None,
            page: Page::first(),
        },
        CatalogQuery::Devices(Page::first()),
        CatalogQuery::Products {
            seller: None,
            page: Page::first(),
        },
    ];
    let mut out = Vec::new();
    for q in queries {
        let view = client
            .catalog_read(None, q.clone())
            .await
            .expect("connection");
        out.push(view.unwrap_or_else(|e| panic!("{q:?}: {e}")));
    }
    out
}

async fn check_after_restart(server: &Server, target: &Target) {
    let client = server.client(target).await;
    let mut s = Session {
        client: &client,
        serial: 1000,
    };
    let seller = Actor::Seller(SELLER);
    // The product, the seller's state and the balances survived.
    assert_eq!(
        s.run(
            seller,
            CatalogCommand::PublishProduct(bread_product(ProductId(1)))
        )
        .await,
        Err(ErrorCode::AlreadyExists.number())
    );
    s.run(
        seller,
        CatalogCommand::PublishProduct(bread_product(ProductId(2))),
    )
    .await
    .unwrap();
    // 800 topped up, 500 frozen: 300 left, plus 1.
    assert_eq!(
        s.run(
            seller,
            CatalogCommand::TopUp {
                amount: yuan("1.00")
            }
        )
        .await,
        Ok(CatalogOutcome::Balance(yuan("301.00")))
    );
    let deduct = CatalogCommand::DeductDeposit {
        seller: SELLER,
        category: CategoryId(11),
        amount: yuan("0.01"),
    };
    assert_eq!(
        s.run(Actor::Staff, deduct).await,
        Ok(CatalogOutcome::Balance(yuan("499.99")))
    );
    // Now short (ONB-6): new T+3 products are refused.
    assert_eq!(
        s.run(
            seller,
            CatalogCommand::PublishProduct(bread_product(ProductId(3)))
        )
        .await,
        Err(ErrorCode::DepositShort.number())
    );
    // A retry of a request from before the restart returns its original reply.
    let retry = client
        .catalog(
            RequestId {
                source: 42,
                serial: 1,
            },
            Some(Actor::Staff),
            CatalogCommand::PutCategory {
                id: CategoryId(11),
                parent: None,
                name: "bread vouchers".into(),
                supports_vouchers: true,
                deposit: yuan("500.00"),
                min_expiry_refund_ratio: Some(percent("80")),
                supports_auto_refund: true,
            },
        )
        .await
        .unwrap();
    assert_eq!(retry, Ok(CatalogOutcome::Done));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pub_9_publishing_api_over_tcp_validates_and_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path());
    onboard_and_publish(&server, &server.tcp_target()).await;
    let before = everything(&server, &server.tcp_target()).await;
    server.kill();
    let server = Server::start(dir.path());
    // Issue 3's restart test: everything created is still there, as it was.
    let after = everything(&server, &server.tcp_target()).await;
    assert_eq!(before, after);
    let CatalogView::Seller(seller) = &after[1] else {
        panic!("{:?}", after[1])
    };
    assert_eq!(seller.deposits, vec![(CategoryId(11), yuan("500.00"))]);
    assert_eq!(seller.payment_balance, yuan("300.00"));
    assert_eq!(seller.t_plus_n, vec![(CategoryId(11), TPlusN::Enabled)]);
    let counts: Vec<usize> = after
        .iter()
        .map(|v| match v {
            CatalogView::Categories(x) => x.len(),
            CatalogView::Seller(_) => 1,
            CatalogView::Providers(x) => x.len(),
            CatalogView::Outlets(x) => x.len(),
            CatalogView::Verifiers(x) => x.len(),
            CatalogView::Devices(x) => x.len(),
            CatalogView::Products(x) => x.len(),
            CatalogView::Lockouts(x) => x.len(),
            CatalogView::Tokens(x) => x.len(),
            CatalogView::Settlements(x) => x.len(),
            CatalogView::Statement(x) => x.lines.len(),
            CatalogView::Entries(x) => x.items.len(),
        })
        .collect();
    // Providers: the platform's own and 70.
    assert_eq!(counts, [1, 1, 2, 1, 1, 1, 1]);
    check_after_restart(&server, &server.tcp_target()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pub_9_publishing_api_over_quic_validates_and_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path());
    onboard_and_publish(&server, &server.quic_target()).await;
    server.kill();
    let server = Server::start(dir.path());
    check_after_restart(&server, &server.quic_target()).await;
}

/// A product published just before a stop reaches the shards' logs only
/// when they next run a batch; on restart the server logs the facts a shard
/// lacks before serving. Without that, a voucher issued after the restart
/// (with the product's code length and validity) would replay differently
/// after the next restart, and its acknowledged redemption would be lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inv_3_catalog_facts_of_a_product_published_just_before_a_stop_survive_two_restarts() {
    use vouch_engine::Command;
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path());
    onboard_and_publish(&server, &server.tcp_target()).await;
    {
        let client = server.client(&server.tcp_target()).await;
        let mut s = Session {
            client: &client,
            serial: 500,
        };
        let mut spec = bread_product(ProductId(5));
        spec.validity = Validity::DaysFromIssue(30);
        spec.settlement = Settlement::PayOnRedemption;
        let publish = CatalogCommand::PublishProduct(spec);
        s.run(Actor::Seller(SELLER), publish).await.unwrap();
    }
    // No shard has run a batch since: the facts are in no shard's log yet.
    server.kill();
    let mut server = Server::start(dir.path());
    let admin = server.client(&server.tcp_target()).await;
    let mut order = helpers::issue_cmd("late-1", 3, "13900001234");
    order.seller_id = SELLER;
    order.product_id = ProductId(5);
    order.code_digits = 6;
    order.validity = Validity::DaysFromIssue(1);
    let issued = helpers::as_issued(helpers::run(&admin, Command::Issue(order)).await);
    assert_eq!(issued.code.digits(), 10, "provider 70's code length");
    let mut redeem = helpers::redeem_cmd(PosId(31), 1, issued.code, "1234", 1);
    redeem.outlet_id = OutletId(900);
    redeem.verifier_id = VerifierId(41);
    let redeemed = helpers::as_redeemed(helpers::run(&admin, Command::Redeem(redeem)).await);
    let new_code = redeemed.new_code.expect("units left");
    drop(admin);
    server.kill();
    let server = Server::start(dir.path());
    let admin = server.client(&server.tcp_target()).await;
    let looked = helpers::as_looked_up(helpers::lookup(&admin, new_code, "1234").await);
    assert_eq!(
        looked.units_remaining, 2,
        "the acknowledged redemption survived"
    );
    assert_eq!(looked.valid_until_ms, issued.valid_until_ms);
}
