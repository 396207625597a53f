//! Principals and credentials (issue 3 item 6): tokens issued by staff,
//! stored hashed, revocable, surviving restart; the role matrix over the
//! wire binds POS, verifier and seller to the authenticated identity.
mod common;
mod helpers;

use common::Server;
use helpers::*;
use rust_decimal::Decimal;
use vouch_engine::catalog::*;
use vouch_engine::{Command, ErrorCode, RequestId};
use vouch_protocol::client::ClientError;
use vouch_protocol::Client;

const MOBILE: &str = "13900004321";

async fn catalog(
    client: &Client,
    serial: u64,
    act_as: Option<Actor>,
    command: CatalogCommand,
) -> CatalogOutcome {
    let rid = RequestId { source: 77, serial };
    client
        .catalog(rid, act_as, command)
        .await
        .expect("connection")
        .unwrap_or_else(|e| panic!("catalog command refused: {e}"))
}

/// A request id of the token `token` (its request-id source).
fn rid_of(token: &str, serial: u64) -> RequestId {
    let source = vouch::server::token_source(&vouch::server::token_hash(token));
    RequestId { source, serial }
}

/// A redemption by POS `pos` whose token is `token`, at outlet 900.
fn redeem_by(token: &str, pos: u64, serial: u64, code: vouch_engine::Code, l4: &str) -> Command {
    let mut r = redeem_cmd(pos, serial, code, l4, 1);
    r.request_id = rid_of(token, serial);
    r.outlet_id = 900;
    Command::Redeem(r)
}

fn refused_with(result: Result<impl std::fmt::Debug, ClientError>, code: ErrorCode) {
    match result {
        Err(ClientError::Refused(e)) => assert_eq!(e.code, code.number(), "{e}"),
        other => panic!("expected {code}, got {other:?}"),
    }
}

/// Seller 500 onboarded with outlet 900, provider 70 linked, POS 31 of
/// provider 70 at outlet 900, and tokens for seller, front end and POS.
async fn set_up(admin: &Client) -> (String, String, String) {
    let yuan = |s: &str| s.parse::<Decimal>().unwrap();
    let seller = Some(Actor::Seller(500));
    let mut n = 0;
    let mut next = || {
        n += 1;
        n
    };
    let put = CatalogCommand::PutCategory {
        id: 11,
        parent: None,
        name: "bread".into(),
        supports_vouchers: true,
        deposit: yuan("500.00"),
        min_expiry_refund_ratio: None,
        supports_auto_refund: true,
    };
    catalog(admin, next(), None, put).await;
    let create = CatalogCommand::CreateSeller {
        id: 500,
        kind: SellerKind::Marketplace,
        self_issuing: false,
        group_buying_operator: false,
    };
    catalog(admin, next(), None, create).await;
    catalog(admin, next(), seller, CatalogCommand::AcceptAgreement).await;
    let bind = CatalogCommand::BindPaymentAccount {
        account: "p".into(),
        supports_freezing: true,
        accept_payment_agreement: true,
    };
    catalog(admin, next(), seller, bind).await;
    let confirm = CatalogCommand::ConfirmOnboarding {
        service_phone: "400".into(),
        categories: vec![11],
    };
    catalog(admin, next(), seller, confirm).await;
    let outlet = CatalogCommand::AddOutlet {
        id: 900,
        name: "o".into(),
        address: "a".into(),
        latitude: yuan("31"),
        longitude: yuan("121"),
    };
    catalog(admin, next(), seller, outlet).await;
    catalog(
        admin,
        next(),
        None,
        CatalogCommand::RegisterProvider {
            id: 70,
            name: "p".into(),
            code_digits: 8,
        },
    )
    .await;
    catalog(
        admin,
        next(),
        Some(Actor::Provider(70)),
        CatalogCommand::LinkSeller { seller: 500 },
    )
    .await;
    let device = CatalogCommand::RegisterDevice {
        pos_id: 31,
        outlet: 900,
        check_method: CheckMethod::Code,
    };
    catalog(admin, next(), Some(Actor::Provider(70)), device).await;
    let mut tokens = Vec::new();
    for (i, actor) in [Actor::Seller(500), Actor::FrontEnd, Actor::Device(31)]
        .into_iter()
        .enumerate()
    {
        let token = format!("test-token-{i}-{}", "x".repeat(20));
        let hash = vouch::server::token_hash(&token);
        catalog(
            admin,
            next(),
            None,
            CatalogCommand::IssueToken {
                token_hash: hash,
                actor,
            },
        )
        .await;
        tokens.push(token);
    }
    (tokens[0].clone(), tokens[1].clone(), tokens[2].clone())
}

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
    order.seller_id = 500;
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
                Some(Actor::Seller(501)),
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
        id: 71,
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
    let mut as_other_pos = redeem_cmd(32, 1, issued.code, &l4, 1);
    as_other_pos.request_id = rid_of(&device_token, 1);
    refused_with(
        device.command(Command::Redeem(as_other_pos)).await,
        ErrorCode::NotPermitted,
    );
    let mine = as_redeemed(run(&device, redeem_by(&device_token, 31, 1, issued.code, &l4)).await);
    assert_eq!(mine.units_remaining, 4);

    // Revocation: the POS's next request is refused, and it cannot reconnect.
    let hash = vouch::server::token_hash(&device_token);
    catalog(
        &admin,
        100,
        None,
        CatalogCommand::RevokeToken { token_hash: hash },
    )
    .await;
    let code = mine.new_code.unwrap();
    assert!(device
        .command(redeem_by(&device_token, 31, 2, code, &l4))
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
    let seller = Some(Actor::Seller(500));
    let yuan = |s: &str| s.parse::<Decimal>().unwrap();
    let grant = CatalogCommand::GrantPublishPermission {
        seller: 500,
        category: 11,
    };
    catalog(&admin, 200, None, grant).await;
    let second_outlet = CatalogCommand::AddOutlet {
        id: 901,
        name: "o2".into(),
        address: "a2".into(),
        latitude: yuan("31"),
        longitude: yuan("121"),
    };
    catalog(&admin, 201, seller, second_outlet).await;
    let v41 = CatalogCommand::AddVerifier {
        id: 41,
        real_name: true,
        parent: None,
        outlets: vec![900],
    };
    catalog(&admin, 202, seller, v41).await;
    let v43 = CatalogCommand::AddVerifier {
        id: 43,
        real_name: true,
        parent: None,
        outlets: vec![901],
    };
    catalog(&admin, 203, seller, v43).await;
    let product = ProductSpec {
        id: 1,
        category: 11,
        delivery: Delivery::EVoucher,
        validity: vouch_engine::validity::Validity::DaysFromIssue(30),
        provider: Some(70),
        outlets: vec![900],
        settlement: Settlement::PayOnRedemption,
        expiry_refund_ratio: None,
        merchant_code: "SKU".into(),
        group_buying: false,
    };
    catalog(&admin, 204, seller, CatalogCommand::PublishProduct(product)).await;
    let mut order = issue_cmd("ck-1", 5, MOBILE);
    order.seller_id = 500;
    order.product_id = 1;
    let issued = as_issued(run(&admin, Command::Issue(order)).await);
    let l4 = last4(MOBILE);
    let at = |outlet: u64, verifier: u64, serial: u64, code| {
        let mut r = redeem_cmd(31, serial, code, &l4, 1);
        r.request_id = rid_of(&device_token, serial);
        r.outlet_id = outlet;
        r.verifier_id = verifier;
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
    let yuan = |s: &str| s.parse::<Decimal>().unwrap();
    // Seller 600, onboarded by the admin acting for it, with outlet 960,
    // verifier 61 and product 2 on the platform's own provider.
    let other = Some(Actor::Seller(600));
    let mut serial = 300;
    let mut next = || {
        serial += 1;
        serial
    };
    for (act_as, command) in [
        (
            None,
            CatalogCommand::CreateSeller {
                id: 600,
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
                categories: vec![11],
            },
        ),
        (
            None,
            CatalogCommand::GrantPublishPermission {
                seller: 600,
                category: 11,
            },
        ),
        (
            None,
            CatalogCommand::GrantPublishPermission {
                seller: 500,
                category: 11,
            },
        ),
        (
            other,
            CatalogCommand::AddOutlet {
                id: 960,
                name: "o600".into(),
                address: "a600".into(),
                latitude: yuan("30"),
                longitude: yuan("120"),
            },
        ),
        (
            other,
            CatalogCommand::AddVerifier {
                id: 61,
                real_name: true,
                parent: None,
                outlets: vec![960],
            },
        ),
    ] {
        catalog(&admin, next(), act_as, command).await;
    }
    let product = |id, outlet, provider| ProductSpec {
        id,
        category: 11,
        delivery: Delivery::EVoucher,
        validity: vouch_engine::validity::Validity::DaysFromIssue(30),
        provider: Some(provider),
        outlets: vec![outlet],
        settlement: Settlement::PayOnRedemption,
        expiry_refund_ratio: None,
        merchant_code: "SKU".into(),
        group_buying: false,
    };
    let seller_500 = Some(Actor::Seller(500));
    let publish = CatalogCommand::PublishProduct(product(1, 900, 70));
    catalog(&admin, next(), seller_500, publish).await;
    let publish = CatalogCommand::PublishProduct(product(2, 960, PLATFORM_PROVIDER));
    catalog(&admin, next(), other, publish).await;
    let verifier_token = "test-token-verifier-61-xxxxxxxxxxxx";
    let other_token = "test-token-seller-600-xxxxxxxxxxxxx";
    for (token, actor) in [
        (verifier_token, Actor::Verifier(61)),
        (other_token, Actor::Seller(600)),
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
    order.seller_id = 500;
    order.product_id = 1;
    let issued = as_issued(run(&front, Command::Issue(order)).await);
    let l4 = last4(MOBILE);

    // Verifier 61 of seller 600: no lookup, no redemption of seller 500's code.
    let verifier = Client::connect(&target, verifier_token, Some(&server.ca()))
        .await
        .unwrap();
    let look = Command::Lookup(vouch_engine::command::Lookup {
        code: issued.code,
        phone_last4: l4.clone(),
        verifier_id: None,
        pos_id: None,
    });
    assert_rejected(
        &run(&verifier, look).await,
        ErrorCode::VerifierNotAuthorized,
    );
    let mut redeem = redeem_cmd(0, 1, issued.code, &l4, 1);
    redeem.request_id = rid_of(verifier_token, 1);
    redeem.verifier_id = 61;
    redeem.pos_id = None;
    redeem.outlet_id = 900;
    assert_rejected(
        &run(&verifier, Command::Redeem(redeem)).await,
        ErrorCode::VerifierNotAuthorized,
    );
    assert_eq!(
        as_looked_up(lookup(&admin, issued.code, &l4).await).units_remaining,
        3,
        "nothing was redeemed"
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
        let page = Page::first();
        let products = |seller| CatalogQuery::Products { seller, page };
        let ids = |view| match view {
            Ok(CatalogView::Products(v)) => v.iter().map(|p| p.spec.id).collect::<Vec<_>>(),
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
            .catalog_read(None, products(Some(500)))
            .await
            .unwrap();
        assert_eq!(refused.unwrap_err().code, ErrorCode::NotPermitted.number());
        let hidden = theirs
            .catalog_read(None, CatalogQuery::Product { id: 1 })
            .await
            .unwrap();
        assert_eq!(hidden.unwrap_err().code, ErrorCode::NotFound.number());
        let account = theirs
            .catalog_read(None, CatalogQuery::Seller { id: Some(500) })
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
        assert_eq!((own.id, own.onboarding), (600, Onboarding::Enabled));
        assert_eq!(own.service_phone.as_deref(), Some("401"));
        // A token cannot read as another principal.
        refused_with(
            theirs
                .catalog_read(Some(Actor::Seller(500)), products(None))
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
