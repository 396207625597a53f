//! Credentials that fit the hand and a voucher's history (issue 8 items
//! 6–8), over the wire against a real server: a POS or verifier token fills
//! in its own id, a verifier reverses its own redemption, repeats say so,
//! the seller reads its voucher's history and nobody else can, staff see
//! why a code is refused, and staff list tokens and revoke by principal.
mod common;
mod helpers;

use common::Server;
use helpers::tenants::*;
use helpers::*;
use vouch_engine::catalog::*;
use vouch_engine::command::{History, HistoryEvent, Redeem, Reverse};
use vouch_engine::{CategoryId, OutletId, PosId, SellerId, VerifierId};
use vouch_engine::{Code, Command, ErrorCode, Outcome};
use vouch_protocol::Client;

const MOBILE: &str = "13900008765";

fn history_of(code: Code) -> Command {
    Command::History(History {
        code,
        seller_id: None,
        from: 0,
        limit: 100,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_8_tokens_fill_in_their_ids_history_for_the_seller_only() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let target = server.tcp_target();
    let ca = server.ca();
    let admin = server.client(&target).await;
    let (seller_token, _front, device_token) = set_up(&admin).await;
    let verifier = CatalogCommand::AddVerifier {
        id: VerifierId(41),
        real_name: true,
        parent: None,
        outlets: vec![OutletId(900)],
    };
    catalog(&admin, 50, Some(Actor::Seller(SellerId(500))), verifier).await;
    let create = CatalogCommand::CreateSeller {
        id: SellerId(501),
        kind: SellerKind::Marketplace,
        self_issuing: false,
        group_buying_operator: false,
    };
    catalog(&admin, 51, None, create).await;
    let verifier_token = token_for(&admin, 52, Actor::Verifier(VerifierId(41))).await;
    let other_seller_token = token_for(&admin, 53, Actor::Seller(SellerId(501))).await;
    let connect = |token: String| {
        let (target, ca) = (target.clone(), ca.clone());
        async move { Client::connect(&target, &token, Some(&ca)).await.unwrap() }
    };
    let device = connect(device_token.clone()).await;
    let verifier = connect(verifier_token.clone()).await;
    let seller = connect(seller_token.clone()).await;
    let other_seller = connect(other_seller_token.clone()).await;

    let mut order = issue_cmd("cred-1", 4, MOBILE);
    order.seller_id = SellerId(500);
    let issued = issue(&admin, order).await;
    let l4 = last4(MOBILE);

    // The POS names no POS id: its token's id is filled in.
    let by_pos = Redeem {
        request_id: rid_of(&device_token, 1),
        code: issued.code,
        phone_last4: l4.clone(),
        units: 1,
        outlet_id: OutletId(900),
        verifier_id: VerifierId(41),
        pos_id: None,
    };
    let first = as_redeemed(run(&device, Command::Redeem(by_pos.clone())).await);
    assert!(!first.replayed);
    let again = as_redeemed(run(&device, Command::Redeem(by_pos)).await);
    assert!(again.replayed, "a retry says it is a repeat");
    assert_eq!(
        (again.units_remaining, again.new_code),
        (first.units_remaining, first.new_code)
    );
    let second = first.new_code.unwrap();

    // The verifier account names itself by leaving its id out (0), then
    // reverses its own redemption naming no one.
    let by_verifier = Redeem {
        request_id: rid_of(&verifier_token, 1),
        code: second,
        phone_last4: l4.clone(),
        units: 1,
        outlet_id: OutletId(900),
        verifier_id: VerifierId(0),
        pos_id: None,
    };
    let taken = as_redeemed(run(&verifier, Command::Redeem(by_verifier)).await);
    let third = taken.new_code.unwrap();
    let undo = Reverse {
        request_id: rid_of(&verifier_token, 2),
        code: third,
        redemption: rid_of(&verifier_token, 1),
        pos_id: None,
        verifier_id: None,
        seller_id: None,
    };
    let back = as_reversed(run(&verifier, Command::Reverse(undo)).await);
    assert_eq!((back.units, back.units_remaining), (1, 3));

    // The seller reads the history by the first, long-replaced code.
    let h = match run(&seller, history_of(issued.code)).await {
        Ok(Outcome::History(h)) => h,
        other => panic!("seller's history refused: {other:?}"),
    };
    assert_eq!((h.order_id.as_str(), h.units_remaining), ("cred-1", 3));
    let kinds: Vec<(&str, Option<VerifierId>, Option<PosId>)> = h
        .events
        .iter()
        .map(|e| match e {
            HistoryEvent::Issued { .. } => ("issued", None, None),
            HistoryEvent::Redeemed {
                verifier_id,
                pos_id,
                ..
            } => ("redeemed", Some(*verifier_id), *pos_id),
            HistoryEvent::Reversed { .. } => ("reversed", None, None),
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("issued", None, None),
            ("redeemed", Some(VerifierId(41)), Some(PosId(31))),
            ("redeemed", Some(VerifierId(41)), None),
            ("reversed", None, None),
        ]
    );
    // Another seller, a verifier and a POS get the unknown-code reply.
    let unknown = Code::new(8, 99_999_999).unwrap();
    let refusal = |reply: Result<Outcome, vouch_protocol::WireError>| reply.unwrap_err();
    let none = refusal(run(&other_seller, history_of(unknown)).await);
    for client in [&other_seller, &verifier, &device] {
        let got = refusal(run(client, history_of(issued.code)).await);
        assert_eq!(got.code, ErrorCode::CodeInvalid.number());
        assert_eq!(got.message, none.message, "no oracle");
    }

    // Staff see why the old code is refused; the POS gets the uniform reply.
    let old = |serial| {
        let mut r = redeem_cmd(PosId(31), serial, issued.code, &l4, 1);
        r.outlet_id = OutletId(900);
        r.verifier_id = VerifierId(41);
        r
    };
    let staff_view = refusal(run(&admin, Command::Redeem(old(90))).await);
    assert!(
        staff_view
            .message
            .contains("for staff: the code was used up or replaced"),
        "{}",
        staff_view.message
    );
    let mut pos_try = old(3);
    pos_try.request_id = rid_of(&device_token, 3);
    let tenant_view = refusal(run(&device, Command::Redeem(pos_try)).await);
    assert_eq!(tenant_view.code, ErrorCode::CodeInvalid.number());
    assert!(
        !tenant_view.message.contains("staff"),
        "{}",
        tenant_view.message
    );

    // Staff list tokens without secrets, then revoke the POS by principal.
    let list = CatalogQuery::Tokens {
        after: None,
        limit: 100,
    };
    let Ok(CatalogView::Tokens(items)) = admin.catalog_read(None, list.clone()).await.unwrap()
    else {
        panic!("token list refused")
    };
    let device_id = rid_of(&device_token, 0).source;
    assert!(items.iter().any(|t| t.id == device_id
        && t.principal == Actor::Device(PosId(31))
        && t.revoked_at_ms.is_none()));
    let denied = seller.catalog_read(None, list.clone()).await.unwrap();
    assert_eq!(denied.unwrap_err().code, ErrorCode::NotPermitted.number());
    let revoke = CatalogCommand::RevokeToken {
        which: TokenRef::Principal(Actor::Device(PosId(31))),
    };
    let outcome = catalog(&admin, 60, None, revoke).await;
    assert_eq!(outcome, CatalogOutcome::TokensRevoked(vec![device_id]));
    assert!(
        device.command(history_of(third)).await.is_err(),
        "the revoked POS's connection is closed"
    );
    let Ok(CatalogView::Tokens(items)) = admin.catalog_read(None, list).await.unwrap() else {
        panic!("token list refused")
    };
    let listed = items.iter().find(|t| t.id == device_id).unwrap();
    assert!(listed.revoked_at_ms.is_some(), "listed as revoked");
}

/// Break-it findings: a token that revokes itself gets its reply before its
/// connection closes; the admin token's hash cannot be registered for a
/// principal; a retried catalog command says it is a repeat.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_8_self_revocation_is_answered_and_the_admin_token_is_not_registrable() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let target = server.tcp_target();
    let admin = server.client(&target).await;
    let staff_token = token_for(&admin, 1, Actor::Staff).await;
    let staff = Client::connect(&target, &staff_token, Some(&server.ca()))
        .await
        .unwrap();
    let own_id = rid_of(&staff_token, 0).source;
    let revoke = CatalogCommand::RevokeToken {
        which: TokenRef::Principal(Actor::Staff),
    };
    let reply = staff
        .catalog(rid_of(&staff_token, 1), None, revoke)
        .await
        .expect("the reply arrives before the connection closes");
    assert_eq!(reply, Ok(CatalogOutcome::TokensRevoked(vec![own_id])));
    assert!(staff
        .command(history_of(Code::new(8, 1).unwrap()))
        .await
        .is_err());

    let admin_hash = vouch::server::token_hash(&server.token());
    let steal = CatalogCommand::IssueToken {
        token_hash: admin_hash,
        actor: Actor::FrontEnd,
    };
    let rid = vouch_engine::RequestId {
        source: 77,
        serial: 2,
    };
    refused_with(
        admin.catalog(rid, None, steal).await,
        ErrorCode::AlreadyExists,
    );

    let put = CatalogCommand::PutCategory {
        id: CategoryId(5),
        parent: None,
        name: "c".into(),
        supports_vouchers: true,
        deposit: "0".parse().unwrap(),
        min_expiry_refund_ratio: None,
        supports_auto_refund: false,
    };
    let rid = vouch_engine::RequestId {
        source: 77,
        serial: 3,
    };
    let first = admin.catalog_marked(rid, None, put.clone()).await.unwrap();
    let again = admin.catalog_marked(rid, None, put).await.unwrap();
    assert_eq!(first, Ok((CatalogOutcome::Done, false)));
    assert_eq!(again, Ok((CatalogOutcome::Done, true)), "the retry says so");
}
