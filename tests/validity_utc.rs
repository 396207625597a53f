//! PUB-3 end to end: the server process runs with TZ=UTC, yet validity ends
//! at 23:59:59 in the platform zone (Asia/Shanghai by default).
mod common;

use jiff::civil::date;
use vouch_engine::command::Issue;
use vouch_engine::validity::Validity;
use vouch_engine::{Command, Outcome};
use vouch_engine::{ProductId, SellerId};

#[tokio::test]
async fn pub_3_validity_ends_at_shanghai_midnight_with_server_in_utc() {
    // The child inherits the environment: the server process runs in UTC.
    std::env::set_var("TZ", "UTC");
    let dir = tempfile::tempdir().unwrap();
    let server = common::Server::start(dir.path());
    let client = server.client(&server.tcp_target()).await;
    let end = date(2099, 6, 30);
    let issue = Issue {
        order_id: "utc-1".into(),
        seller_id: SellerId(1),
        product_id: ProductId(1),
        units: 1,
        unit_price: vouch_engine::Fen::new(100),
        mobile: "13800001111".into(),
        validity: Validity::Fixed {
            start: date(2026, 1, 1),
            end,
        },
        code_digits: 8,
    };
    let Ok(Outcome::Issued(i)) = client.command(Command::Issue(issue)).await.unwrap() else {
        panic!("issue refused")
    };
    // 2099-07-01 00:00:00 +08:00 = 2099-06-30 16:00:00 UTC: the first
    // expired instant. 23:59:59 local on the end date is one second before.
    let midnight: i64 = "2099-06-30T16:00:00Z"
        .parse::<jiff::Timestamp>()
        .unwrap()
        .as_millisecond();
    assert_eq!(i.valid_until_ms, midnight);
    let start: i64 = "2025-12-31T16:00:00Z"
        .parse::<jiff::Timestamp>()
        .unwrap()
        .as_millisecond();
    assert_eq!(i.valid_from_ms, start);
}
