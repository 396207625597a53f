//! Principals and credentials (issue 3 item 6): tokens issued by staff,
//! stored hashed, revocable, surviving restart; the role matrix over the
//! wire binds POS, verifier and seller to the authenticated identity.
mod common;
mod helpers;

use common::Server;
use helpers::tenants::*;
use helpers::*;
use rust_decimal::Decimal;
use vouch_engine::catalog::*;
use vouch_engine::{CategoryId, OutletId, PosId, ProductId, ProviderId, SellerId, VerifierId};
use vouch_engine::{Command, ErrorCode, RequestId};
use vouch_protocol::client::ClientError;
use vouch_protocol::Client;

const MOBILE: &str = "13900004321";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_matrix_tokens_bind_principals_and_survive_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path());
    let target = server.tcp_target();
    let admin = server.client(&target).await;
    let (seller_token, front_token, device_token) = set_up(&admin).await;
    let ca = server.ca();

    // The front end issues vouchers; the seller may not.
    let front = Client::connect(&target, &front_token, Some(&ca))
        .await
        .unwrap();
    let mut order = issue_cmd("p-1", 5, MOBILE);
    order.seller_id = SellerId(500);
    let issued = as_issued(run(&front, Command::Issue(order)).await);
    let seller = Client::connect(&target, &seller_token, Some(&ca))
        .await
        .unwrap();
    refused_with(
        seller
            .command(Command::Issue(issue_cmd("p-2", 1, MOBILE)))
            .await,
        ErrorCode::NotPermitted,
    );

    // A seller runs its own catalog commands, never another's, and no audit.
    let top = CatalogCommand::TopUp {
        amount: "10.00".parse().unwrap(),
    };
    let rid = rid_of(&seller_token, 1);
    assert!(seller
        .catalog(rid, None, top.clone())
        .await
        .unwrap()
        .is_ok());
    refused_with(
        seller
            .catalog(
                rid_of(&seller_token, 2),
                Some(Actor::Seller(SellerId(501))),
                top.clone(),
            )
            .await,
        ErrorCode::NotPermitted,
    );
    // Request ids belong to the token: another source is refused, so no
    // tenant can take, block or probe another's ids.
    refused_with(
        seller
            .catalog(
                RequestId {
                    source: 5,
                    serial: 9,
                },
                None,
                top,
            )
            .await,
        ErrorCode::NotPermitted,
    );
    let audit = Command::AuditVouchers(vouch_engine::command::AuditVouchers {
        shard: 0,
        from: 0,
        limit: 10,
    });
    refused_with(seller.command(audit).await, ErrorCode::NotPermitted);
    let staff_only = CatalogCommand::RegisterProvider {
        id: ProviderId(71),
        name: "x".into(),
        code_digits: 8,
    };
    let denied = seller
        .catalog(rid_of(&seller_token, 3), None, staff_only)
        .await
        .unwrap();
    assert_eq!(denied.unwrap_err().code, ErrorCode::NotPermitted.number());

    // POS 31 redeems as itself only.
    let device = Client::connect(&target, &device_token, Some(&ca))
        .await
        .unwrap();
    let l4 = last4(MOBILE);
    let mut as_other_pos = redeem_cmd(PosId(32), 1, issued.code, &l4, 1);
    as_other_pos.request_id = rid_of(&device_token, 1);
    refused_with(
        device.command(Command::Redeem(as_other_pos)).await,
        ErrorCode::NotPermitted,
    );
    let mine = as_redeemed(
        run(
            &device,
            redeem_by(&device_token, PosId(31), 1, issued.code, &l4),
        )
        .await,
    );
    assert_eq!(mine.units_remaining, 4);

    // Revocation: the POS's next request is refused, and it cannot reconnect.
    let hash = vouch::server::token_hash(&device_token);
    catalog(
        &admin,
        100,
        None,
        CatalogCommand::RevokeToken {
            which: vouch_engine::catalog::TokenRef::Hash(hash),
        },
    )
    .await;
    let code = mine.new_code.unwrap();
    assert!(device
        .command(redeem_by(&device_token, PosId(31), 2, code, &l4))
        .await
        .is_err());
    refused_with(
        Client::connect(&target, &device_token, Some(&ca))
            .await
            .map(|_| ()),
        ErrorCode::Unauthenticated,
    );
    assert_eq!(
        as_looked_up(lookup(&admin, code, &l4).await).units_remaining,
        4,
        "the revoked POS redeemed nothing"
    );

    // After a restart the registered tokens still work; the revoked one does not.
    drop((admin, front, seller, device));
    server.kill();
    let server = Server::start(dir.path());
    let target = server.tcp_target();
    let seller = Client::connect(&target, &seller_token, Some(&ca))
        .await
        .unwrap();
    let rid = rid_of(&seller_token, 4);
    let bal = seller
        .catalog(
            rid,
            None,
            CatalogCommand::TopUp {
                amount: "1.00".parse().unwrap(),
            },
        )
        .await
        .unwrap();
    assert_eq!(bal, Ok(CatalogOutcome::Balance("11.00".parse().unwrap())));
    refused_with(
        Client::connect(&target, &device_token, Some(&ca))
            .await
            .map(|_| ()),
        ErrorCode::Unauthenticated,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ord_7_redemption_checks_outlet_verifier_and_device_against_the_catalog() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path());
    let target = server.tcp_target();
    let admin = server.client(&target).await;
    let (_, _, device_token) = set_up(&admin).await;
    let seller = Some(Actor::Seller(SellerId(500)));
    let deg = |s: &str| s.parse::<Decimal>().unwrap();
    let grant = CatalogCommand::GrantPublishPermission {
        seller: SellerId(500),
        category: CategoryId(11),
    };
    catalog(&admin, 200, None, grant).await;
    let second_outlet = CatalogCommand::AddOutlet {
        id: OutletId(901),
        name: "o2".into(),
        address: "a2".into(),
        latitude: deg("31"),
        longitude: deg("121"),
    };
    catalog(&admin, 201, seller, second_outlet).await;
    let v41 = CatalogCommand::AddVerifier {
        id: VerifierId(41),
        real_name: true,
        parent: None,
        outlets: vec![OutletId(900)],
    };
    catalog(&admin, 202, seller, v41).await;
    let v43 = CatalogCommand::AddVerifier {
        id: VerifierId(43),
        real_name: true,
        parent: None,
        outlets: vec![OutletId(901)],
    };
    catalog(&admin, 203, seller, v43).await;
    let product = ProductSpec {
        id: ProductId(1),
        category: CategoryId(11),
        delivery: Delivery::EVoucher,
        validity: vouch_engine::validity::Validity::DaysFromIssue(30),
        provider: Some(ProviderId(70)),
        outlets: vec![OutletId(900)],
        settlement: Settlement::PayOnRedemption,
        expiry_refund_ratio: None,
        merchant_code: "SKU".into(),
        group_buying: false,
    };
    catalog(&admin, 204, seller, CatalogCommand::PublishProduct(product)).await;
    let mut order = issue_cmd("ck-1", 5, MOBILE);
    order.seller_id = SellerId(500);
    order.product_id = ProductId(1);
    let issued = as_issued(run(&admin, Command::Issue(order)).await);
    let l4 = last4(MOBILE);
    let at = |outlet: u64, verifier: u64, serial: u64, code| {
        let mut r = redeem_cmd(PosId(31), serial, code, &l4, 1);
        r.request_id = rid_of(&device_token, serial);
        r.outlet_id = OutletId(outlet);
        r.verifier_id = VerifierId(verifier);
        Command::Redeem(r)
    };
    let device = Client::connect(&target, &device_token, Some(&server.ca()))
        .await
        .unwrap();
    assert_rejected(
        &run(&device, at(901, 41, 1, issued.code)).await,
        ErrorCode::OutletNotAllowed,
    );
    assert_rejected(
        &run(&device, at(900, 43, 2, issued.code)).await,
        ErrorCode::VerifierNotAuthorized,
    );
    let ok = as_redeemed(run(&device, at(900, 41, 3, issued.code)).await);
    assert_eq!(ok.units_remaining, 4);
    // The checks hold after a restart too (facts rebuilt from the log).
    drop((admin, device));
    server.kill();
    let server = Server::start(dir.path());
    let target = server.tcp_target();
    let device = Client::connect(&target, &device_token, Some(&server.ca()))
        .await
        .unwrap();
    let code = ok.new_code.unwrap();
    assert_rejected(
        &run(&device, at(901, 41, 4, code)).await,
        ErrorCode::OutletNotAllowed,
    );
    assert_eq!(
        as_redeemed(run(&device, at(900, 41, 5, code)).await).units_remaining,
        3
    );
}

/// Issue 3's cross-tenant attempts over the wire: a seller reading
/// another's products, outlets or account, and a verifier of seller B
/// looking up or redeeming a code of seller A, are all refused; each sees
/// its own, also after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_never_read_or_redeem_another_sellers_data_over_the_wire() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path());
    let target = server.tcp_target();
    let admin = server.client(&target).await;
    let (seller_token, front_token, _) = set_up(&admin).await;
    let deg = |s: &str| s.parse::<Decimal>().unwrap();
    // Seller 600, onboarded by the admin acting for it, with outlet 960,
    // verifier 61 and product 2 on the platform's own provider.
    let other = Some(Actor::Seller(SellerId(600)));
    let mut serial = 300;
    let mut next = || {
        serial += 1;
        serial
    };
    for (act_as, command) in [
        (
            None,
            CatalogCommand::CreateSeller {
                id: SellerId(600),
                kind: SellerKind::Mall,
                self_issuing: false,
                group_buying_operator: false,
            },
        ),
        (other, CatalogCommand::AcceptAgreement),
        (
            other,
            CatalogCommand::BindPaymentAccount {
                account: "q".into(),
                supports_freezing: true,
                accept_payment_agreement: true,
            },
        ),
        (
            other,
            CatalogCommand::ConfirmOnboarding {
                service_phone: "401".into(),
                categories: vec![CategoryId(11)],
            },
        ),
        (
            None,
            CatalogCommand::GrantPublishPermission {
                seller: SellerId(600),
                category: CategoryId(11),
            },
        ),
        (
            None,
            CatalogCommand::GrantPublishPermission {
                seller: SellerId(500),
                category: CategoryId(11),
            },
        ),
        (
            other,
            CatalogCommand::AddOutlet {
                id: OutletId(960),
                name: "o600".into(),
                address: "a600".into(),
                latitude: deg("30"),
                longitude: deg("120"),
            },
        ),
        (
            other,
            CatalogCommand::AddVerifier {
                id: VerifierId(61),
                real_name: true,
                parent: None,
                outlets: vec![OutletId(960)],
            },
        ),
    ] {
        catalog(&admin, next(), act_as, command).await;
    }
    let product = |id: ProductId, outlet: OutletId, provider: ProviderId| ProductSpec {
        id,
        category: CategoryId(11),
        delivery: Delivery::EVoucher,
        validity: vouch_engine::validity::Validity::DaysFromIssue(30),
        provider: Some(provider),
        outlets: vec![outlet],
        settlement: Settlement::PayOnRedemption,
        expiry_refund_ratio: None,
        merchant_code: "SKU".into(),
        group_buying: false,
    };
    let seller_500 = Some(Actor::Seller(SellerId(500)));
    let publish =
        CatalogCommand::PublishProduct(product(ProductId(1), OutletId(900), ProviderId(70)));
    catalog(&admin, next(), seller_500, publish).await;
    let publish =
        CatalogCommand::PublishProduct(product(ProductId(2), OutletId(960), PLATFORM_PROVIDER));
    catalog(&admin, next(), other, publish).await;
    let verifier_token = "test-token-verifier-61-xxxxxxxxxxxx";
    let other_token = "test-token-seller-600-xxxxxxxxxxxxx";
    for (token, actor) in [
        (verifier_token, Actor::Verifier(VerifierId(61))),
        (other_token, Actor::Seller(SellerId(600))),
    ] {
        let command = CatalogCommand::IssueToken {
            token_hash: vouch::server::token_hash(token),
            actor,
        };
        catalog(&admin, next(), None, command).await;
    }
    // A voucher of seller 500's product 1.
    let front = Client::connect(&target, &front_token, Some(&server.ca()))
        .await
        .unwrap();
    let mut order = issue_cmd("t-1", 3, MOBILE);
    order.seller_id = SellerId(500);
    order.product_id = ProductId(1);
    let issued = as_issued(run(&front, Command::Issue(order)).await);
    let l4 = last4(MOBILE);

    // A redemption of one unit by seller 500's verifier 51 on POS 31, so
    // that there is a redemption for others to try to reverse.
    let add_verifier = CatalogCommand::AddVerifier {
        id: VerifierId(51),
        real_name: true,
        parent: None,
        outlets: vec![OutletId(900)],
    };
    catalog(
        &admin,
        next(),
        Some(Actor::Seller(SellerId(500))),
        add_verifier,
    )
    .await;
    let device = CatalogCommand::RegisterDevice {
        pos_id: PosId(62),
        outlet: OutletId(960),
        check_method: CheckMethod::Code,
    };
    catalog(
        &admin,
        next(),
        Some(Actor::Provider(PLATFORM_PROVIDER)),
        device,
    )
    .await;
    let device_token = token_for(&admin, next(), Actor::Device(PosId(62))).await;
    let provider_token = token_for(&admin, next(), Actor::Provider(ProviderId(70))).await;
    let redemption = RequestId {
        source: 31,
        serial: 1,
    };
    let mut first = redeem_cmd(PosId(31), 1, issued.code, &l4, 1);
    first.request_id = redemption;
    first.verifier_id = VerifierId(51);
    first.outlet_id = OutletId(900);
    let live = as_redeemed(run(&admin, Command::Redeem(first)).await)
        .new_code
        .expect("2 units left");
    let unknown = vouch_engine::Code::new(8, (live.value() + 2) % 100_000_000).unwrap();

    // Issue 7 item 1: to seller 600's verifier 61, POS 62, seller token and
    // to provider 70, the right code and last four get exactly the reply
    // of an unknown code — on lookups, redemptions and reversals.
    let ca = server.ca();
    let callers = [
        (verifier_token.to_string(), Actor::Verifier(VerifierId(61))),
        (device_token, Actor::Device(PosId(62))),
        (other_token.to_string(), Actor::Seller(SellerId(600))),
        (provider_token, Actor::Provider(ProviderId(70))),
    ];
    for (token, actor) in &callers {
        let client = Client::connect(&target, token, Some(&ca)).await.unwrap();
        let look = |code| {
            Command::Lookup(vouch_engine::command::Lookup {
                code,
                phone_last4: l4.clone(),
                verifier_id: None,
                pos_id: None,
            })
        };
        let redeem = |code| {
            let mut r = redeem_cmd(PosId(0), 1, code, &l4, 1);
            r.request_id = rid_of(token, 1);
            r.outlet_id = OutletId(960);
            (r.verifier_id, r.pos_id) = match actor {
                Actor::Device(p) => (VerifierId(61), Some(*p)),
                _ => (VerifierId(61), None),
            };
            Command::Redeem(r)
        };
        let reverse = |code| {
            Command::Reverse(vouch_engine::command::Reverse {
                request_id: rid_of(token, 2),
                code,
                redemption,
                pos_id: matches!(actor, Actor::Device(_)).then_some(PosId(62)),
                verifier_id: None,
                seller_id: matches!(actor, Actor::Seller(_)).then_some(SellerId(600)),
            })
        };
        for (what, right, none) in [
            ("lookup", look(live), look(unknown)),
            ("redeem", redeem(live), redeem(unknown)),
            ("reverse", reverse(live), reverse(unknown)),
        ] {
            let right = client.command(right).await;
            let none = client.command(none).await;
            assert_eq!(
                format!("{right:?}"),
                format!("{none:?}"),
                "{what} by {actor:?}"
            );
            let refused = match &right {
                Ok(Err(e)) => e.code,
                Err(ClientError::Refused(e)) => e.code,
                other => panic!("{what} by {actor:?} was not refused: {other:?}"),
            };
            assert!(
                [
                    ErrorCode::CodeInvalid,
                    ErrorCode::RedemptionUnknown,
                    ErrorCode::NotPermitted
                ]
                .map(|c| c.number())
                .contains(&refused),
                "{what} by {actor:?}: {right:?}"
            );
        }
    }
    let verifier = Client::connect(&target, verifier_token, Some(&ca))
        .await
        .unwrap();
    assert_eq!(
        as_looked_up(lookup(&admin, live, &l4).await).units_remaining,
        2,
        "nothing more was redeemed"
    );

    // Reads: each seller sees its own, never the other's.
    for round in 0..2 {
        let target = server.tcp_target();
        let ca = server.ca();
        let mine = Client::connect(&target, &seller_token, Some(&ca))
            .await
            .unwrap();
        let theirs = Client::connect(&target, other_token, Some(&ca))
            .await
            .unwrap();
        let products = |seller| CatalogQuery::Products {
            seller,
            page: Page::first(),
        };
        let ids = |view| match view {
            Ok(CatalogView::Products(v)) => v.iter().map(|p| p.spec.id.0).collect::<Vec<_>>(),
            other => panic!("round {round}: {other:?}"),
        };
        assert_eq!(
            ids(mine.catalog_read(None, products(None)).await.unwrap()),
            [1]
        );
        assert_eq!(
            ids(theirs.catalog_read(None, products(None)).await.unwrap()),
            [2]
        );
        let refused = theirs
            .catalog_read(None, products(Some(SellerId(500))))
            .await
            .unwrap();
        assert_eq!(refused.unwrap_err().code, ErrorCode::NotPermitted.number());
        let hidden = theirs
            .catalog_read(None, CatalogQuery::Product { id: ProductId(1) })
            .await
            .unwrap();
        assert_eq!(hidden.unwrap_err().code, ErrorCode::NotFound.number());
        let account = theirs
            .catalog_read(
                None,
                CatalogQuery::Seller {
                    id: Some(SellerId(500)),
                },
            )
            .await
            .unwrap();
        assert_eq!(account.unwrap_err().code, ErrorCode::NotPermitted.number());
        let Ok(CatalogView::Seller(own)) = theirs
            .catalog_read(None, CatalogQuery::Seller { id: None })
            .await
            .unwrap()
        else {
            panic!("round {round}: seller 600 cannot read its account");
        };
        assert_eq!(
            (own.id, own.onboarding),
            (SellerId(600), Onboarding::Enabled)
        );
        assert_eq!(own.service_phone.as_deref(), Some("401"));
        // A token cannot read as another principal.
        refused_with(
            theirs
                .catalog_read(Some(Actor::Seller(SellerId(500))), products(None))
                .await,
            ErrorCode::NotPermitted,
        );
        // Staff (the admin) sees both.
        let admin = server.client(&target).await;
        assert_eq!(
            ids(admin.catalog_read(None, products(None)).await.unwrap()),
            [1, 2]
        );
        if round == 0 {
            drop((admin, mine, theirs));
            server.kill();
            server = Server::start(dir.path());
        }
    }
    drop(verifier);
}
