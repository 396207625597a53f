//! Issue 7 item 2 over a real server: a POS token guessing codes is
//! locked out at the configured count, over TCP and QUIC; the lockout
//! holds on new connections and after a restart, is listed for staff and
//! lifted by staff; a POS of the same outlet that made no mistakes goes on.
mod common;
mod helpers;

use common::Server;
use helpers::tenants::*;
use helpers::*;
use std::sync::Arc;
use vouch_engine::catalog::{Actor, CatalogQuery, CatalogView, LockKey};
use vouch_engine::command::Lookup;
use vouch_engine::{Code, Command, ErrorCode};
use vouch_engine::{OutletId, PosId, SellerId};
use vouch_protocol::client::ClientError;
use vouch_protocol::Client;

const MOBILE: &str = "13900007788";
/// The configured principal limit of these tests (the default is 20).
const LIMIT: u32 = 25;

fn lookup_cmd(code: Code, last4: &str) -> Command {
    Command::Lookup(Lookup {
        code,
        phone_last4: last4.into(),
        verifier_id: None,
        pos_id: None,
    })
}

/// The stable error of a reply or of a whole refusal.
fn error_of(r: &Result<vouch_protocol::WireReply, ClientError>) -> Option<u16> {
    match r {
        Ok(Ok(_)) => None,
        Ok(Err(e)) | Err(ClientError::Refused(e)) => Some(e.code),
        Err(e) => panic!("request failed as a whole: {e}"),
    }
}

fn start(dir: &std::path::Path) -> Server {
    let limit = format!("{LIMIT}:86400:3600");
    Server::start_with(dir, &["--lockout-principal", &limit])
}

async fn lockouts(admin: &Client) -> Vec<LockKey> {
    let query = CatalogQuery::Lockouts {
        after: None,
        limit: 100,
    };
    match admin.catalog_read(None, query).await.unwrap() {
        Ok(CatalogView::Lockouts(v)) => v.iter().map(|l| l.key).collect(),
        other => panic!("{other:?}"),
    }
}

/// Waits until the catalog lists exactly `expected`: a lockout takes
/// effect at once and is recorded a moment later.
async fn wait_for_lockouts(admin: &Client, expected: &[LockKey]) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let listed = lockouts(admin).await;
        if listed == expected {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "listed {listed:?}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lockout_a_guessing_pos_is_locked_out_everywhere_until_staff_lift_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path());
    let tcp = server.tcp_target();
    let quic = server.quic_target();
    let ca = server.ca();
    let admin = server.client(&tcp).await;
    let (_seller, _front, guesser) = set_up(&admin).await;
    let careful = device_with_token(&admin, 100, PosId(32)).await;
    // A voucher of seller 500 (a product the catalog does not know, so its
    // POS redeem it at their own outlet 900).
    let mut order = issue_cmd("g-1", 5, MOBILE);
    order.seller_id = SellerId(500);
    let code = issue(&admin, order).await.code;
    let l4 = last4(MOBILE);
    let wrong = move |i: u64| Code::new(8, (code.value() + 1 + 2 * i) % 100_000_000).unwrap();

    // Two TCP and two QUIC connections of the guessing POS.
    let mut clients = Vec::new();
    for target in [&tcp, &tcp, &quic, &quic] {
        clients.push(Arc::new(
            Client::connect(target, &guesser, Some(&ca)).await.unwrap(),
        ));
    }
    // Guesses one after another: the LIMIT-th failure trips the lockout.
    for i in 0..u64::from(LIMIT) {
        let r = clients[i as usize % 4]
            .command(lookup_cmd(wrong(i), &l4))
            .await;
        assert_eq!(error_of(&r), Some(2), "guess {i}: {r:?}");
    }
    // From then on even the right code is refused, on every connection.
    for c in &clients {
        let r = c.command(lookup_cmd(code, &l4)).await;
        assert_eq!(error_of(&r), Some(ErrorCode::LockedOut.number()), "{r:?}");
        let Ok(Err(e)) = &r else { unreachable!() };
        assert!(e.retry_after_ms.is_some_and(|ms| ms > 3_500_000), "{e:?}");
    }
    // 10,000 more guesses over the four connections: every one is
    // refused as locked out.
    let mut tasks = Vec::new();
    for i in 0..10_000u64 {
        let c = clients[i as usize % 4].clone();
        tasks.push(tokio::spawn(async move {
            error_of(&c.command(lookup_cmd(wrong(100 + i), "0000")).await)
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), Some(ErrorCode::LockedOut.number()));
    }
    // A new connection, TCP or QUIC, is refused at login.
    for target in [&tcp, &quic] {
        match Client::connect(target, &guesser, Some(&ca)).await {
            Err(ClientError::Refused(e)) => {
                assert_eq!(e.code, ErrorCode::LockedOut.number());
                assert!(e.retry_after_ms.is_some(), "{e:?}");
            }
            other => panic!(
                "a locked-out POS logged in on {target}: {:?}",
                other.is_ok()
            ),
        }
    }
    let quic_admin = Arc::new(server.client(&quic).await);
    // POS 32 of the same outlet made no mistakes: it looks up and redeems.
    let other = Client::connect(&quic, &careful, Some(&ca)).await.unwrap();
    let looked = as_looked_up(run(&other, lookup_cmd(code, &l4)).await);
    assert_eq!(looked.units_remaining, 5);
    let mut r = redeem_cmd(PosId(32), 1, code, &l4, 1);
    r.request_id = rid_of(&careful, 1);
    r.outlet_id = OutletId(900);
    let code = as_redeemed(run(&other, Command::Redeem(r)).await)
        .new_code
        .unwrap();
    // Only the guessing POS is listed.
    wait_for_lockouts(&quic_admin, &[LockKey::Principal(Actor::Device(PosId(31)))]).await;
    clients.clear();
    drop((admin, other, quic_admin));

    // After a SIGKILL and a restart the lockout holds.
    server.kill();
    let server = start(dir.path());
    let tcp = server.tcp_target();
    let admin = server.client(&tcp).await;
    assert_eq!(
        lockouts(&admin).await,
        [LockKey::Principal(Actor::Device(PosId(31)))]
    );
    match Client::connect(&tcp, &guesser, Some(&ca)).await {
        Err(ClientError::Refused(e)) => assert_eq!(e.code, ErrorCode::LockedOut.number()),
        other => panic!(
            "locked-out POS logged in after restart: {:?}",
            other.is_ok()
        ),
    }

    // Staff lift it with the CLI; the POS works again at once.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vouch"))
        .args(["lockout", "lift", "--pos", "31", "--request-id", "77:900"])
        .args(["--server", &tcp.to_string(), "--json"])
        .arg("--token-file")
        .arg(server.data_dir.join("admin.token"))
        .arg("--ca")
        .arg(&ca)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(lockouts(&admin).await.is_empty());
    let pos = Client::connect(&tcp, &guesser, Some(&ca)).await.unwrap();
    let looked = as_looked_up(run(&pos, lookup_cmd(code, &l4)).await);
    assert_eq!(looked.units_remaining, 4);
    // Locked out again; a retry of the earlier lift (same request id) is
    // its original reply and lifts nothing.
    for i in 0..u64::from(LIMIT) {
        let r = pos.command(lookup_cmd(wrong(20_000 + i), &l4)).await;
        assert_eq!(error_of(&r), Some(2), "guess {i}: {r:?}");
    }
    let lift = vouch_engine::catalog::CatalogCommand::LiftLockout {
        key: LockKey::Principal(Actor::Device(PosId(31))),
    };
    let retry = admin
        .catalog(
            vouch_engine::RequestId {
                source: 77,
                serial: 900,
            },
            None,
            lift,
        )
        .await
        .unwrap();
    assert!(retry.is_ok(), "{retry:?}");
    let r = pos.command(lookup_cmd(code, &l4)).await;
    assert_eq!(error_of(&r), Some(ErrorCode::LockedOut.number()), "{r:?}");
    wait_for_lockouts(&admin, &[LockKey::Principal(Actor::Device(PosId(31)))]).await;
}

/// Failed logins count against the peer address: past the limit every
/// login but staff's is refused alike (valid token or not), until staff
/// lift the peer's lockout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lockout_failed_logins_lock_the_peer_out_but_never_staff() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &["--lockout-peer", "5:3600:3600"]);
    let tcp = server.tcp_target();
    let ca = server.ca();
    let admin = server.client(&tcp).await;
    let (seller, _, _) = set_up(&admin).await;
    for i in 0..5 {
        match Client::connect(&tcp, &format!("not-a-token-{i}"), Some(&ca)).await {
            Err(ClientError::Refused(e)) => {
                assert_eq!(e.code, ErrorCode::Unauthenticated.number())
            }
            other => panic!("a bad token logged in: {:?}", other.is_ok()),
        }
    }
    for token in ["not-a-token-9", seller.as_str()] {
        match Client::connect(&tcp, token, Some(&ca)).await {
            Err(ClientError::Refused(e)) => assert_eq!(e.code, ErrorCode::LockedOut.number()),
            other => panic!("a locked-out peer logged in: {:?}", other.is_ok()),
        }
    }
    let staff = server.client(&tcp).await;
    let peer = LockKey::peer("127.0.0.1".parse().unwrap());
    wait_for_lockouts(&staff, &[peer]).await;
    let lift = vouch_engine::catalog::CatalogCommand::LiftLockout { key: peer };
    catalog(&staff, 500, None, lift).await;
    Client::connect(&tcp, &seller, Some(&ca))
        .await
        .expect("the seller logs in again");
}
