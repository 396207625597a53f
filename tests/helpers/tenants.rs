//! A catalog set up over the wire for tests of principals and tenants:
//! seller 500 onboarded with outlet 900, provider 70 linked, POS devices,
//! and tokens.
#![allow(dead_code)]

use super::redeem_cmd;
use rust_decimal::Decimal;
use vouch_engine::catalog::*;
use vouch_engine::{CategoryId, OutletId, PosId, ProviderId, SellerId};
use vouch_engine::{Command, ErrorCode, RequestId};
use vouch_protocol::client::ClientError;
use vouch_protocol::Client;

pub async fn catalog(
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
pub fn rid_of(token: &str, serial: u64) -> RequestId {
    let source = vouch::server::token_source(&vouch::server::token_hash(token));
    RequestId { source, serial }
}

/// A redemption by POS `pos` whose token is `token`, at outlet 900.
pub fn redeem_by(
    token: &str,
    pos: PosId,
    serial: u64,
    code: vouch_engine::Code,
    l4: &str,
) -> Command {
    let mut r = redeem_cmd(pos, serial, code, l4, 1);
    r.request_id = rid_of(token, serial);
    r.outlet_id = OutletId(900);
    Command::Redeem(r)
}

pub fn refused_with(result: Result<impl std::fmt::Debug, ClientError>, code: ErrorCode) {
    match result {
        Err(ClientError::Refused(e)) => assert_eq!(e.code, code.number(), "{e}"),
        other => panic!("expected {code}, got {other:?}"),
    }
}

/// Seller 500 onboarded with outlet 900, provider 70 linked, POS 31 of
/// provider 70 at outlet 900, and tokens for seller, front end and POS.
pub async fn set_up(admin: &Client) -> (String, String, String) {
    let yuan = |s: &str| s.parse::<vouch_engine::Fen>().unwrap();
    let seller = Some(Actor::Seller(SellerId(500)));
    let mut n = 0;
    let mut next = || {
        n += 1;
        n
    };
    let put = CatalogCommand::PutCategory {
        id: CategoryId(11),
        parent: None,
        name: "bread".into(),
        supports_vouchers: true,
        deposit: yuan("500.00"),
        min_expiry_refund_ratio: None,
        supports_auto_refund: true,
    };
    catalog(admin, next(), None, put).await;
    let create = CatalogCommand::CreateSeller {
        id: SellerId(500),
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
        categories: vec![CategoryId(11)],
    };
    catalog(admin, next(), seller, confirm).await;
    let outlet = CatalogCommand::AddOutlet {
        id: OutletId(900),
        name: "o".into(),
        address: "a".into(),
        latitude: Decimal::from(31),
        longitude: Decimal::from(121),
    };
    catalog(admin, next(), seller, outlet).await;
    catalog(
        admin,
        next(),
        None,
        CatalogCommand::RegisterProvider {
            id: ProviderId(70),
            name: "p".into(),
            code_digits: 8,
        },
    )
    .await;
    catalog(
        admin,
        next(),
        Some(Actor::Provider(ProviderId(70))),
        CatalogCommand::LinkSeller {
            seller: SellerId(500),
        },
    )
    .await;
    let device = CatalogCommand::RegisterDevice {
        pos_id: PosId(31),
        outlet: OutletId(900),
        check_method: CheckMethod::Code,
    };
    catalog(admin, next(), Some(Actor::Provider(ProviderId(70))), device).await;
    let mut tokens = Vec::new();
    for (i, actor) in [
        Actor::Seller(SellerId(500)),
        Actor::FrontEnd,
        Actor::Device(PosId(31)),
    ]
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

/// Issues a token for `actor` (staff's `IssueToken`, request serial
/// `serial` of source 77) and returns it.
pub async fn token_for(admin: &Client, serial: u64, actor: Actor) -> String {
    let token = format!("test-token-{serial}-{actor:?}-{}", "y".repeat(16)).replace(['(', ')'], "");
    let command = CatalogCommand::IssueToken {
        token_hash: vouch::server::token_hash(&token),
        actor,
    };
    catalog(admin, serial, None, command).await;
    token
}

/// Registers POS `pos_id` of provider 70 at outlet 900 (serial `serial`)
/// and returns a token for it (serial `serial + 1`).
pub async fn device_with_token(admin: &Client, serial: u64, pos_id: PosId) -> String {
    let device = CatalogCommand::RegisterDevice {
        pos_id,
        outlet: OutletId(900),
        check_method: CheckMethod::Code,
    };
    catalog(admin, serial, Some(Actor::Provider(ProviderId(70))), device).await;
    token_for(admin, serial + 1, Actor::Device(pos_id)).await
}
