//! Settlement over a real server (SET-1, SET-3, MON-7, RPT-4): redeemed
//! money becomes payable when the reversal window ends, reaches the
//! catalog without anyone asking, a staff run pays it out in transit, the
//! payment system's own token confirms the payout, the statement shows what
//! it took — in the CLI's JSON — and all of it survives a restart.
mod common;
mod helpers;

use common::Server;
use helpers::*;
use std::process::Command as Process;
use std::time::{Duration, Instant};
use vouch_engine::catalog::{Actor, CatalogCommand, CatalogQuery, CatalogView, SellerKind};
use vouch_engine::{Command, Fen, PosId};
use vouch_protocol::Client;

fn vouch(server: &Server, token_file: &std::path::Path, args: &[&str]) -> (i32, serde_json::Value) {
    let out = Process::new(env!("CARGO_BIN_EXE_vouch"))
        .args(args)
        .args(["--json", "--server", &format!("tcp://{}", server.tcp)])
        .arg("--token-file")
        .arg(token_file)
        .output()
        .expect("run vouch");
    let text = String::from_utf8_lossy(&out.stdout);
    let json = serde_json::from_str(text.trim())
        .unwrap_or_else(|e| panic!("{args:?} printed {text:?}: {e}"));
    (out.status.code().unwrap_or(-1), json)
}

/// Seller `SELLER`'s payable balance and payouts in transit, fen.
async fn seller_money(client: &Client) -> (i64, i64) {
    let query = CatalogQuery::Seller { id: Some(SELLER) };
    match client.catalog_read(None, query).await.unwrap() {
        Ok(CatalogView::Seller(s)) => (s.payable.fen(), s.payout_in_transit.fen()),
        other => panic!("{other:?}"),
    }
}

/// Waits until the seller's payable balance is `fen` (the shards' ticks
/// run every second; the catalog books what they hand over at once).
async fn wait_payable(client: &Client, fen: i64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while seller_money(client).await.0 != fen {
        assert!(Instant::now() < deadline, "payable never reached {fen} fen");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_3_payable_money_is_settled_confirmed_and_stated_over_the_wire() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_with(dir.path(), &["--reversal-window-s", "1"]);
    let admin = server.client(&server.tcp_target()).await;
    let create = CatalogCommand::CreateSeller {
        id: SELLER,
        kind: SellerKind::Mall,
        self_issuing: false,
        group_buying_operator: false,
    };
    tenants::catalog(&admin, 1, None, create).await;
    let pos = PosId(900);
    let mut serial = 0;
    for (order, units) in [("s-1", 2), ("s-2", 1)] {
        let issued = issue(&admin, issue_cmd(order, 3, "13800001234")).await;
        serial += 1;
        let r = run(
            &admin,
            Command::Redeem(redeem_cmd(pos, serial, issued.code, "1234", units)),
        )
        .await;
        as_redeemed(r);
    }
    // 3 units × 12.50, payable once the 1 s windows end.
    wait_payable(&admin, 3_750).await;
    let admin_token = dir.path().join("admin.token");
    let (code, run) = vouch(
        &server,
        &admin_token,
        &[
            "settlement",
            "run",
            "--seller",
            &SELLER.to_string(),
            "--cutoff",
            "now",
            "--request-id",
            "1:2",
        ],
    );
    assert_eq!(code, 0, "{run}");
    assert_eq!(run["outcome"], "settlement");
    let detail = &run["detail"];
    assert_eq!(
        (
            detail["id"].as_u64(),
            detail["total"].as_str(),
            detail["state"].as_str()
        ),
        (Some(1), Some("37.50"), Some("in_transit")),
        "{run}"
    );
    assert!(
        detail["cutoff"].as_str().unwrap().ends_with("+08:00"),
        "{run}"
    );
    assert_eq!(seller_money(&admin).await, (0, 3_750));
    // MON-7: only the payment system's own token decides the payout.
    let (code, refused) = vouch(
        &server,
        &admin_token,
        &["payout", "confirm", "1", "--request-id", "1:3"],
    );
    assert_eq!(
        (code, refused["ok"].as_bool()),
        (0, Some(true)),
        "the admin acts as the payment system: {refused}"
    );
    let (code, again) = vouch(
        &server,
        &admin_token,
        &["payout", "fail", "1", "--request-id", "1:4"],
    );
    assert_eq!(
        (code, again["error"]["name"].as_str()),
        (1, Some("payout_not_in_transit")),
        "{again}"
    );
    let token = tenants::token_for(&admin, 5, Actor::Seller(SELLER)).await;
    let seller_file = dir.path().join("seller.token");
    std::fs::write(&seller_file, &token).unwrap();
    let source = vouch::server::token_source(&vouch::server::token_hash(&token));
    let rid = format!("{source}:1");
    let (code, denied) = vouch(
        &server,
        &seller_file,
        &["payout", "confirm", "1", "--request-id", &rid],
    );
    assert_eq!(
        (code, denied["error"]["name"].as_str()),
        (1, Some("not_permitted")),
        "{denied}"
    );
    // RPT-4: the seller reads its statement; lines add up to the total.
    let (code, st) = vouch(&server, &seller_file, &["statement", "show", "1"]);
    assert_eq!(code, 0, "{st}");
    let lines = st["statement"]["lines"].as_array().unwrap();
    let sum: i64 = lines
        .iter()
        .map(|l| l["amount"].as_str().unwrap().parse::<Fen>().unwrap().fen())
        .sum();
    assert_eq!(sum, 3_750, "{st}");
    assert!(lines.iter().all(|l| l["reason"] == "window_ended"), "{st}");
    assert_eq!(st["statement"]["settlement"]["state"], "confirmed");
    server.terminate();
    let server = Server::start(dir.path());
    let admin = server.client(&server.tcp_target()).await;
    assert_eq!(
        seller_money(&admin).await,
        (0, 0),
        "confirmed and paid out, after a restart"
    );
    let (code, list) = vouch(&server, &admin_token, &["settlement", "list"]);
    assert_eq!(code, 0);
    assert_eq!(list["items"][0]["state"], "confirmed", "{list}");
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
}
