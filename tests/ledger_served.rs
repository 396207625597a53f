//! RPT-5 over a real server, through the CLI: `vouch ledger export --csv`
//! writes a header with the stable columns and one row per ledger entry;
//! a seller's token exports only its own entries (another seller's are
//! never shown, and asking for them is refused), staff the platform's; the
//! front end may not export; a time range and `--json` behave.
mod common;
mod helpers;

use common::Server;
use helpers::*;
use std::path::Path;
use vouch_engine::catalog::{Actor, CatalogCommand, SellerKind};
use vouch_engine::{PosId, SellerId};

/// Runs the CLI against `server` with the token in `token_file`.
fn export(server: &Server, token_file: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vouch"))
        .args(["ledger", "export"])
        .args(args)
        .arg("--server")
        .arg(format!("tcp://{}", server.tcp))
        .arg("--token-file")
        .arg(token_file)
        .arg("--ca")
        .arg(server.ca())
        .output()
        .expect("run vouch");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The CSV's rows as (reason, debit, credit, amount, state, seller).
fn rows(csv: &str) -> Vec<Vec<String>> {
    let mut r = csv::Reader::from_reader(csv.as_bytes());
    let header: Vec<String> = r.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(
        header,
        [
            "entry_id",
            "instant",
            "order_id",
            "voucher",
            "seller_id",
            "reason",
            "debit_account",
            "credit_account",
            "amount",
            "state",
            "settlement_id"
        ]
    );
    r.records()
        .map(|rec| rec.unwrap().iter().map(String::from).collect())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpt_5_ledger_export_over_a_real_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let admin = server.client(&server.tcp_target()).await;
    for (serial, id) in [(1, SELLER), (2, SellerId(8))] {
        let create = CatalogCommand::CreateSeller {
            id,
            kind: SellerKind::Mall,
            self_issuing: false,
            group_buying_operator: false,
        };
        tenants::catalog(&admin, serial, None, create).await;
    }
    let mut files = Vec::new();
    for (serial, actor) in [
        (10, Actor::Seller(SELLER)),
        (11, Actor::Seller(SellerId(8))),
        (12, Actor::FrontEnd),
    ] {
        let token = tenants::token_for(&admin, serial, actor).await;
        let file = dir.path().join(format!("t{serial}.token"));
        std::fs::write(&file, token).unwrap();
        files.push(file);
    }
    let staff = dir.path().join("admin.token");
    let mobile = "13800001234";
    let issued = issue(&admin, issue_cmd("x-1", 3, mobile)).await;
    let redeem = redeem_cmd(PosId(1), 1, issued.code, &last4(mobile), 1);
    as_redeemed(run(&admin, vouch_engine::Command::Redeem(redeem)).await);

    let (code, out, err) = export(&server, &files[0], &["--csv"]);
    assert_eq!(code, Some(0), "{err}");
    let mine = rows(&out);
    let shape: Vec<(&str, &str, &str, &str, &str, &str, &str)> = mine
        .iter()
        .map(|r| (&*r[2], &*r[4], &*r[5], &*r[6], &*r[7], &*r[8], &*r[9]))
        .collect();
    assert_eq!(
        shape,
        [
            ("x-1", "7", "paid", "buyers", "escrow", "37.50", "posted"),
            ("x-1", "7", "redeemed", "escrow", "pending", "12.50", "pending"),
        ]
    );
    assert!(
        mine[0][0].starts_with('s') && mine[0][3].starts_with('v'),
        "{mine:?}"
    );
    assert!(
        mine[0][1].ends_with("+08:00"),
        "local instants: {}",
        mine[0][1]
    );
    let (_, all, _) = export(&server, &staff, &["--csv"]);
    assert_eq!(
        rows(&all),
        mine,
        "staff sees the same entries: no other seller has any"
    );
    let (code, theirs, _) = export(&server, &files[1], &["--csv"]);
    assert_eq!(
        (code, rows(&theirs).len()),
        (Some(0), 0),
        "seller 8 sees none of them"
    );
    let (code, out, _) = export(&server, &files[1], &["--csv", "--seller", "7"]);
    assert_eq!(out, "", "a refusal writes no CSV, not even the header");
    assert_eq!(
        code,
        Some(1),
        "asking for another seller's entries is refused"
    );
    let (code, out, _) = export(&server, &files[2], &["--json"]);
    assert_eq!(code, Some(1), "the front end may not export: {out}");
    let refusal: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(refusal["ok"], false);
    let (code, out, _) = export(&server, &staff, &["--json", "--seller", "7"]);
    assert_eq!(code, Some(0));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (v["ok"].as_bool(), v["count"].as_u64()),
        (Some(true), Some(2))
    );
    assert_eq!(v["items"][1]["state"], "pending");
    let (_, later, _) = export(&server, &staff, &["--csv", "--from", "2100-01-01"]);
    assert_eq!(rows(&later).len(), 0, "nothing after 2100");
    let (_, through, _) = export(&server, &staff, &["--csv", "--until", "2100-01-01"]);
    assert_eq!(rows(&through).len(), 2);
    let (code, _, err) = export(&server, &staff, &["--csv", "--from", "yesterday"]);
    assert_eq!(code, Some(2), "a bad bound is a usage error");
    assert!(err.contains("RFC 3339"), "{err}");
}
