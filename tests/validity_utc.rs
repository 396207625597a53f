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

/// REF-6 / SET-1 end through a restart with the rehearsal clock: a voucher
/// valid through tomorrow (UTC dates) is live, and after a clean stop and a
/// start with the server's clock 4 days ahead, Info reports that clock, the
/// shard's tick expires the voucher (its units void, the order unavailable
/// because it expired) and its code answers like an unknown one.
#[tokio::test]
async fn ref_6_a_restart_with_the_rehearsal_clock_ahead_expires_vouchers() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = common::Server::start(dir.path());
    let client = server.client(&server.tcp_target()).await;
    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    let issue = Issue {
        order_id: "ahead-1".into(),
        seller_id: SellerId(1),
        product_id: ProductId(1),
        units: 2,
        unit_price: vouch_engine::Fen::new(250),
        mobile: "13800002222".into(),
        validity: Validity::Fixed {
            start: today.yesterday().unwrap(),
            end: today.tomorrow().unwrap(),
        },
        code_digits: 8,
    };
    let Ok(Outcome::Issued(i)) = client.command(Command::Issue(issue)).await.unwrap() else {
        panic!("issue refused")
    };
    drop(client);
    assert!(server.terminate(), "clean stop");
    let ahead_s: i64 = 4 * 86_400;
    let mut server = common::Server::start_with(
        dir.path(),
        &["--rehearsal-clock-ahead-s", &ahead_s.to_string()],
    );
    let client = server.client(&server.tcp_target()).await;
    let wall = jiff::Timestamp::now().as_millisecond();
    let Ok(vouch_protocol::Response::Info { now_ms, .. }) =
        client.call(vouch_protocol::Request::Info).await
    else {
        panic!("no Info")
    };
    assert!(
        (now_ms - wall - ahead_s * 1000).abs() < 60_000,
        "the server's clock is {} ms ahead",
        now_ms - wall
    );
    assert!(now_ms > i.valid_until_ms);
    let show = || async {
        let c = Command::Order(vouch_engine::command::OrderShow {
            order_id: "ahead-1".into(),
            seller_id: None,
        });
        match client.command(c).await.unwrap() {
            Ok(Outcome::Order(o)) => o,
            other => panic!("order show: {other:?}"),
        }
    };
    let mut order = show().await;
    for _ in 0..100 {
        if order.unavailable.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        order = show().await;
    }
    assert_eq!(
        order.unavailable,
        Some(vouch_engine::command::Unavailable::Expired)
    );
    assert_eq!((order.units_remaining, order.units_void), (0, 2));
    assert_eq!(order.escrow, vouch_engine::Fen::ZERO);
    let lookup = |code| {
        Command::Lookup(vouch_engine::command::Lookup {
            code,
            phone_last4: "2222".into(),
            verifier_id: None,
            pos_id: None,
        })
    };
    let expired = client.command(lookup(i.code)).await.unwrap();
    // Staff (the admin token) are told why: the validity ended.
    let why = expired
        .as_ref()
        .err()
        .map(|e| e.message.clone())
        .unwrap_or_default();
    assert!(why.contains("validity has ended"), "{why}");
    let other = vouch_engine::Code::new(i.code.digits(), i.code.value() ^ 1).unwrap();
    let unknown = client.command(lookup(other)).await.unwrap();
    let name = |r: Result<Outcome, vouch_protocol::WireError>| r.map_err(|e| e.name);
    assert!(expired.is_err(), "{expired:?}");
    assert_eq!(
        name(expired),
        name(unknown),
        "an expired code answers like an unknown one"
    );
    drop(client);
    assert!(server.terminate(), "clean stop");
    refuses_a_start_without_the_clock_ahead(dir.path());
}

/// After a run with the rehearsal clock ahead, a start without it is
/// refused with what to do: the data directory's time would otherwise
/// stand still (reversal windows never closing) until the wall clock
/// caught up.
fn refuses_a_start_without_the_clock_ahead(data_dir: &std::path::Path) {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_vouch"))
        .args([
            "serve",
            "--listen-tcp",
            "127.0.0.1:0",
            "--listen-quic",
            "off",
            "--data-dir",
        ])
        .arg(data_dir)
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the server started instead of refusing");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(
        err.contains("start it with --rehearsal-clock-ahead-s 345"),
        "{err}"
    );
}

/// The rehearsal clock is bounded: more than a leap year ahead, or
/// behind, is refused at start with a clear error.
#[test]
fn the_rehearsal_clock_ahead_is_bounded() {
    for bad in ["31622401", "-1", "1e3"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_vouch"))
            .args(["serve", &format!("--rehearsal-clock-ahead-s={bad}")])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--rehearsal-clock-ahead-s"), "{bad}: {err}");
    }
}
