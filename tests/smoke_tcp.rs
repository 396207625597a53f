//! A first end-to-end check over a real server process.
mod common;

use vouch_engine::command::{Issue, Lookup};
use vouch_engine::validity::Validity;
use vouch_engine::{Command, Outcome};
use vouch_engine::{ProductId, SellerId};

#[tokio::test]
async fn ord_2_issue_then_lookup_over_tcp_and_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = common::Server::start(dir.path());
    let client = server.client(&server.tcp_target()).await;
    let issue = Issue {
        order_id: "smoke-1".into(),
        seller_id: SellerId(1),
        product_id: ProductId(2),
        units: 4,
        unit_price: vouch_engine::Fen::new(990),
        mobile: "13912345678".into(),
        validity: Validity::DaysFromIssue(10),
        code_digits: 9,
    };
    let Ok(Outcome::Issued(issued)) = client.command(Command::Issue(issue)).await.unwrap() else {
        panic!("issue refused")
    };
    assert_eq!(issued.code.digits(), 9);
    drop(client);
    server.kill();
    let server = common::Server::start(dir.path());
    let client = server.client(&server.tcp_target()).await;
    let look = Lookup {
        code: issued.code,
        phone_last4: "5678".into(),
        verifier_id: None,
        pos_id: None,
    };
    let Ok(Outcome::LookedUp(l)) = client.command(Command::Lookup(look)).await.unwrap() else {
        panic!("lookup refused")
    };
    assert_eq!((l.units_remaining, l.units_total), (4, 4));
}
