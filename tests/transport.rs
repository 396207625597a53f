//! Issue 7 item 7 and the start-up checks: TLS on TCP (tcps://), refused
//! plain clients, and limit settings refused at start with a clear
//! message.
mod common;
mod helpers;

use common::Server;
use helpers::*;
use std::process::Command as Process;

const MOBILE: &str = "13500001357";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn design_tls_on_tcp_serves_tcps_clients_and_refuses_plain_ones() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &["--tcp-tls"]);
    assert!(server.tcp_tls, "the server announces tcps");
    let target = server.tcp_target();
    assert_eq!(target.to_string(), format!("tcps://{}", server.tcp));
    let client = server.client(&target).await;
    let issued = issue(&client, issue_cmd("t-1", 2, MOBILE)).await;
    let looked = as_looked_up(lookup(&client, issued.code, &last4(MOBILE)).await);
    assert_eq!(looked.units_remaining, 2);
    // A plain client gets no Hello from a TLS listener.
    let plain: vouch_protocol::Target = format!("tcp://{}", server.tcp).parse().unwrap();
    let refused = vouch_protocol::Client::connect(&plain, &server.token(), None).await;
    assert!(refused.is_err(), "a plain client logged in over TLS");
    // The CLI speaks tcps:// too.
    let out = Process::new(env!("CARGO_BIN_EXE_vouch"))
        .args([
            "lookup",
            &issued.code.to_string(),
            "--last4",
            &last4(MOBILE),
        ])
        .args(["--server", &target.to_string(), "--json"])
        .arg("--token-file")
        .arg(server.data_dir.join("admin.token"))
        .arg("--ca")
        .arg(server.ca())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(v["units_remaining"], 2, "{v}");
}

/// Bad limit settings are refused at start, naming what is wrong, and
/// nothing is created.
#[test]
fn design_limits_bad_lockout_and_density_settings_are_refused_at_start() {
    let cases: [(&[&str], &str); 6] = [
        (&["--lockout-principal", "0:60:60"], "failures must be"),
        (&["--lockout-peer", "10:60"], "FAILURES:WINDOW_S:LOCKOUT_S"),
        (
            &["--lockout-outlet", "10:60:99999999999"],
            "lockout must be",
        ),
        (&["--lockout-principal", "x:60:60"], "not a whole number"),
        (&["--lockout-keys-max", "5"], "lockout keys must be"),
        (&["--code-density-ppm", "20000"], "code density must be"),
    ];
    for (flags, message) in cases {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let out = Process::new(env!("CARGO_BIN_EXE_vouch"))
            .arg("serve")
            .arg("--data-dir")
            .arg(&data)
            .args(["--listen-tcp", "127.0.0.1:0", "--listen-quic", "off"])
            .args(flags)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flags:?}: {stderr}");
        assert!(stderr.contains(message), "{flags:?}: {stderr}");
        assert!(!data.exists(), "{flags:?} created the data directory");
    }
}
