//! The catalog's CLI subcommands against a real server (issue 3 item 8):
//! each prints one JSON object with `--json`, exits 1 on a refusal with the
//! stable error name.
mod common;

use common::Server;
use std::process::Command;

fn vouch(server: &Server, args: &[&str]) -> (i32, serde_json::Value) {
    vouch_with(server, &server.data_dir.join("admin.token"), args)
}

fn vouch_with(
    server: &Server,
    token_file: &std::path::Path,
    args: &[&str],
) -> (i32, serde_json::Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_vouch"))
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

#[test]
fn pub_9_cli_onboards_a_seller_and_publishes_with_the_same_validation() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let steps: &[&[&str]] = &[
        &[
            "category",
            "put",
            "--id",
            "11",
            "--name",
            "bread",
            "--supports-vouchers",
            "--deposit",
            "500",
            "--request-id",
            "1:1",
        ],
        &[
            "seller",
            "create",
            "--id",
            "500",
            "--kind",
            "marketplace",
            "--request-id",
            "1:2",
        ],
        &[
            "seller",
            "accept-agreement",
            "--seller",
            "500",
            "--request-id",
            "1:3",
        ],
        &[
            "seller",
            "bind-payment",
            "--seller",
            "500",
            "--account",
            "pay",
            "--supports-freezing",
            "--accept-payment-agreement",
            "--request-id",
            "1:4",
        ],
        &[
            "seller",
            "confirm",
            "--seller",
            "500",
            "--service-phone",
            "400-1",
            "--categories",
            "11",
            "--request-id",
            "1:5",
        ],
        &[
            "seller",
            "grant",
            "--seller",
            "500",
            "--category",
            "11",
            "--request-id",
            "1:6",
        ],
        &[
            "outlet",
            "add",
            "--seller",
            "500",
            "--id",
            "900",
            "--name",
            "Bakery",
            "--address",
            "Road 1",
            "--latitude",
            "31.2",
            "--longitude",
            "121.4",
            "--request-id",
            "1:7",
        ],
        &[
            "provider",
            "register",
            "--id",
            "70",
            "--name",
            "codes",
            "--request-id",
            "1:8",
        ],
    ];
    for args in steps {
        let (code, json) = vouch(&server, args);
        assert_eq!(
            (code, &json["ok"]),
            (0, &serde_json::Value::Bool(true)),
            "{args:?}: {json}"
        );
    }
    let publish = [
        "product",
        "publish",
        "--seller",
        "500",
        "--id",
        "1",
        "--category",
        "11",
        "--provider",
        "70",
        "--outlets",
        "900",
        "--merchant-code",
        "SKU-1",
        "--request-id",
        "1:9",
    ];
    // PUB-4: the provider has not imported the seller yet.
    let (code, json) = vouch(&server, &publish);
    assert_eq!(code, 1);
    assert_eq!(json["error"]["name"], "provider_not_linked");
    let (code, _) = vouch(
        &server,
        &[
            "provider",
            "link",
            "--provider",
            "70",
            "--seller",
            "500",
            "--request-id",
            "1:10",
        ],
    );
    assert_eq!(code, 0);
    let mut again = publish.to_vec();
    let last = again.len() - 1;
    again[last] = "1:11";
    let (code, json) = vouch(&server, &again);
    assert_eq!((code, json["ok"].as_bool()), (0, Some(true)), "{json}");
    // PUB-6: T+3 without T+N is refused with its own error.
    let t3 = [
        "product",
        "publish",
        "--seller",
        "500",
        "--id",
        "2",
        "--category",
        "11",
        "--provider",
        "70",
        "--outlets",
        "900",
        "--merchant-code",
        "SKU-2",
        "--t-plus-3",
        "--request-id",
        "1:12",
    ];
    let (code, json) = vouch(&server, &t3);
    assert_eq!(
        (code, json["error"]["name"].as_str()),
        (1, Some("t_plus_n_not_enabled"))
    );
    // A catalog command without a request id is a usage error (exit 2).
    let (code, json) = vouch(
        &server,
        &["seller", "top-up", "--seller", "500", "--amount", "5"],
    );
    assert_eq!((code, json["error"]["kind"].as_str()), (2, Some("usage")));

    // Reads: staff see the product and the seller's account.
    let (code, json) = vouch(&server, &["product", "list"]);
    assert_eq!(code, 0, "{json}");
    let items = json["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{json}");
    assert_eq!(items[0]["spec"]["id"], 1);
    assert_eq!(items[0]["listed"], true);
    let (code, json) = vouch(&server, &["seller", "show", "--seller", "500"]);
    assert_eq!(code, 0, "{json}");
    assert_eq!(json["seller"]["onboarding"], "enabled");
    // The seller's own token: its request ids take the token's source when
    // only a serial is given; it reads its own data, never staff's view.
    let (code, json) = vouch(
        &server,
        &[
            "token",
            "issue",
            "--for",
            "seller:500",
            "--request-id",
            "1:13",
        ],
    );
    assert_eq!(code, 0, "{json}");
    let token_file = dir.path().join("seller.token");
    std::fs::write(&token_file, json["token"].as_str().unwrap()).unwrap();
    let (code, json) = vouch_with(
        &server,
        &token_file,
        &[
            "seller",
            "top-up",
            "--seller",
            "500",
            "--amount",
            "7.50",
            "--request-id",
            "1",
        ],
    );
    assert_eq!(
        (code, &json["outcome"], &json["detail"]["balance"]),
        (0, &serde_json::json!("balance"), &serde_json::json!("7.50")),
        "{json}"
    );
    let (code, json) = vouch_with(&server, &token_file, &["seller", "show"]);
    assert_eq!(
        (code, &json["seller"]["payment_balance"]),
        (0, &serde_json::json!("7.50")),
        "{json}"
    );
    let (code, json) = vouch_with(&server, &token_file, &["product", "show", "--id", "1"]);
    assert_eq!(
        (code, &json["items"][0]["spec"]["merchant_code"]),
        (0, &serde_json::json!("SKU-1")),
        "{json}"
    );
    // Staff-only commands and other request-id sources are refused (exit 1).
    let (code, json) = vouch_with(&server, &token_file, &["category", "list"]);
    assert_eq!(code, 0, "everyone reads categories: {json}");
    let (code, json) = vouch_with(
        &server,
        &token_file,
        &[
            "seller",
            "top-up",
            "--seller",
            "500",
            "--amount",
            "1",
            "--request-id",
            "1:2",
        ],
    );
    assert_eq!(
        (code, json["error"]["name"].as_str()),
        (1, Some("not_permitted")),
        "{json}"
    );
}
