//! Issue 7 item 5 and 6 over real server processes: a client that never
//! reads, a partial frame and slowloris, thousands of idle connections, a
//! QUIC flood without a token, revocation closing connections, idle
//! timeouts, and a client library that never hangs when the server dies.
mod common;
mod helpers;

use common::Server;
use helpers::tenants::*;
use helpers::*;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use vouch_engine::catalog::CatalogCommand;
use vouch_engine::command::Lookup;
use vouch_engine::PosId;
use vouch_engine::{Code, Command, ErrorCode};
use vouch_protocol::client::{ClientError, ClientOptions};
use vouch_protocol::frame::{Header, FRAME_BYTES_MAX, KIND_REQUEST};
use vouch_protocol::{Client, Request, Response, PROTOCOL_VERSION};

const MOBILE: &str = "13700002468";

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("VmRSS line");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Waits until every thread of `pid` is in the stopped state: `kill -STOP`
/// returns before the kernel has stopped all threads, and a thread still
/// running could answer one more request.
fn wait_all_threads_stopped(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).unwrap();
        let all_stopped = tasks.flatten().all(|task| {
            let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
            // The state is the first field after the parenthesised name.
            let state = stat.rsplit(')').next().unwrap_or("").trim_start();
            state.starts_with('T') || state.starts_with('t')
        });
        if all_stopped {
            return;
        }
        assert!(Instant::now() < deadline, "server {pid} did not stop");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn lookup_cmd(code: Code) -> Command {
    Command::Lookup(Lookup {
        code,
        phone_last4: last4(MOBILE),
        verifier_id: None,
        pos_id: None,
    })
}

/// A client that sends requests the server refuses and never reads a
/// reply: the server stops reading it, its memory stays bounded, and it
/// serves everyone else meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inv_7_a_client_that_never_reads_cannot_grow_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let admin = server.client(&server.tcp_target()).await;
    let (_, _, device) = set_up(&admin).await;
    let code = issue(&admin, issue_cmd("n-1", 2, MOBILE)).await.code;
    let before = rss_kib(server.child.id());
    // A POS may not issue: each of these is refused (not_permitted).
    let refused = Request::IssueBatch(vec![issue_cmd("x", 1, MOBILE); 100]);
    let frame = request_frame(2, &refused);
    let mut raw = Raw::hello(&server.tcp, &device).await;
    let mut sent = 0usize;
    let deadline = Instant::now() + Duration::from_secs(6);
    while Instant::now() < deadline {
        let write = raw.stream.write_all(&frame);
        match tokio::time::timeout(Duration::from_millis(500), write).await {
            Ok(Ok(())) => sent += frame.len(),
            Ok(Err(_)) => break,
            // The server stopped reading: our writes no longer go through.
            Err(_) => break,
        }
    }
    // Everyone else is served meanwhile.
    let looked = as_looked_up(run(&admin, lookup_cmd(code)).await);
    assert_eq!(looked.units_remaining, 2);
    let grown_mib = rss_kib(server.child.id()).saturating_sub(before) / 1024;
    assert!(
        sent < 400 << 20,
        "the server kept reading: {} MiB sent",
        sent >> 20
    );
    assert!(
        grown_mib < 150,
        "server grew by {grown_mib} MiB after {} MiB of unread requests",
        sent >> 20
    );
}

/// A frame that never arrives whole — a declared 8 MiB body with 1 MiB
/// sent, or a header dribbled a byte at a time — is timed out and the
/// connection closed; the server serves on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inv_7_partial_frames_and_slowloris_are_timed_out() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let token = server.token();
    let mut big = Raw::hello(&server.tcp, &token).await;
    let mut buf = bytes::BytesMut::new();
    Header {
        version: PROTOCOL_VERSION,
        kind: KIND_REQUEST,
        opcode: 1,
        body_bytes: FRAME_BYTES_MAX,
        correlation: 5,
    }
    .put(&mut buf);
    big.send(&buf).await;
    big.send(&vec![0u8; 1 << 20]).await;
    let mut slow = Raw::hello(&server.tcp, &token).await;
    let started = Instant::now();
    let dribble = tokio::spawn(async move {
        let mut header = bytes::BytesMut::new();
        Header {
            version: PROTOCOL_VERSION,
            kind: KIND_REQUEST,
            opcode: 10,
            body_bytes: 0,
            correlation: 6,
        }
        .put(&mut header);
        for b in &header[..15] {
            if slow.stream.write_all(&[*b]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(900)).await;
        }
        slow
    });
    big.expect_error_then_close(0, ErrorCode::MalformedFrame)
        .await;
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(9) && waited < Duration::from_secs(20),
        "closed after {waited:?}"
    );
    let mut slow = dribble.await.unwrap();
    slow.expect_error_then_close(0, ErrorCode::MalformedFrame)
        .await;
    let client = server.client(&server.tcp_target()).await;
    issue(&client, issue_cmd("after", 1, MOBILE)).await;
}

/// Thousands of idle logged-in connections: one credential holds at most
/// its cap, tenants together at most the slots not kept for staff; staff
/// still connect and revoke, and the revoked token's connections close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inv_7_idle_connections_cannot_lock_staff_out_and_revoking_closes_them() {
    // Thousands of sockets on each side.
    let _ = rlimit::increase_nofile_limit(65_536);
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let target = server.tcp_target();
    let admin = server.client(&target).await;
    set_up(&admin).await;
    let per_token = vouch::server::PRINCIPAL_CONNECTIONS_MAX;
    let tokens_needed = vouch::server::CONNECTIONS_MAX.div_ceil(per_token) + 1;
    let mut tokens = Vec::new();
    for i in 0..tokens_needed as u64 {
        tokens.push(device_with_token(&admin, 200 + 2 * i, PosId(40 + i)).await);
    }
    // One token: its cap, then refused.
    let mut held = Vec::new();
    let mut refused = 0;
    for token in &tokens {
        for _ in 0..=per_token {
            match tokio::time::timeout(Duration::from_secs(10), Raw::try_hello(&server.tcp, token))
                .await
                .expect("login answered")
            {
                Ok(raw) => held.push((token.clone(), raw)),
                Err(code) => {
                    assert_eq!(code, ErrorCode::Unavailable.number());
                    refused += 1;
                }
            }
        }
    }
    let general = vouch::server::CONNECTIONS_MAX - vouch::server::STAFF_CONNECTIONS_RESERVED;
    // The admin's one connection holds a general slot too.
    assert_eq!(held.len(), general - 1, "tenants hold every general slot");
    assert!(refused > tokens.len(), "{refused} refusals");
    // Staff still connect (on a kept slot) and revoke the first token.
    let staff = server.client(&target).await;
    let revoke = CatalogCommand::RevokeToken {
        which: vouch_engine::catalog::TokenRef::Hash(vouch::server::token_hash(&tokens[0])),
    };
    catalog(&staff, 900, None, revoke).await;
    let mut closed = 0;
    for (token, raw) in held.iter_mut().filter(|(t, _)| *t == tokens[0]) {
        let _ = token;
        raw.expect_error_then_close(0, ErrorCode::Unauthenticated)
            .await;
        closed += 1;
    }
    assert_eq!(
        closed, per_token,
        "every connection of the revoked token closed"
    );
    // Another token's connections are still open and served.
    let (_, other) = held.iter_mut().find(|(t, _)| *t == tokens[1]).unwrap();
    other.send(&request_frame(9, &Request::Info)).await;
    assert!(matches!(
        other.read().await,
        Some((_, Response::Info { .. }))
    ));
}

/// QUIC connections without a token wait among the bounded connections
/// not logged in (at most `PREAUTH_PER_PEER_MAX` per address) and are
/// closed when they log in on no stream within the handshake timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inv_7_quic_connections_without_a_token_are_bounded_and_closed() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let quic: std::net::SocketAddr = server.quic.as_ref().unwrap().parse().unwrap();
    let config = vouch_protocol::tls::client_config(&server.ca()).unwrap();
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(config);
    let started = Instant::now();
    let mut conns = Vec::new();
    let mut refused = 0;
    for _ in 0..300 {
        match endpoint.connect(quic, "127.0.0.1").unwrap().await {
            Ok(c) => conns.push(c),
            Err(_) => refused += 1,
        }
    }
    let per_peer = vouch::server::PREAUTH_PER_PEER_MAX;
    assert_eq!(conns.len(), per_peer, "{refused} refused");
    for c in &conns {
        let reason = tokio::time::timeout(Duration::from_secs(15), c.closed())
            .await
            .expect("the server closes a connection that never logs in");
        assert!(
            matches!(reason, quinn::ConnectionError::ApplicationClosed(_)),
            "{reason:?}"
        );
    }
    assert!(started.elapsed() < Duration::from_secs(10));
    // Then a client with a token is served.
    let client = server.client(&server.quic_target()).await;
    issue(&client, issue_cmd("q-1", 1, MOBILE)).await;
}

/// A logged-in connection with nothing in flight is closed after the idle
/// timeout; the client sees it closed and fails at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inv_7_idle_connections_time_out() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &["--idle-timeout-s", "1"]);
    let client = server.client(&server.tcp_target()).await;
    issue(&client, issue_cmd("i-1", 1, MOBILE)).await;
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert!(client.is_closed());
    let started = Instant::now();
    let r = client.command(lookup_cmd(Code::new(8, 1).unwrap())).await;
    assert!(matches!(r, Err(ClientError::Closed)), "{r:?}");
    assert!(started.elapsed() < Duration::from_millis(100));
}

/// The client library never hangs: with the server stopped, a request
/// fails at its deadline; after a SIGKILL every pending request fails
/// within about a second, over TCP and QUIC, and every later one at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_requests_fail_within_their_deadline_when_the_server_dies() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path());
    let token = server.token();
    let ca = server.ca();
    let connect = |target, ms| {
        let (token, ca) = (token.clone(), ca.clone());
        async move {
            let options = ClientOptions {
                request_timeout_ms: ms,
            };
            std::sync::Arc::new(
                Client::connect_with(&target, &token, Some(&ca), options)
                    .await
                    .unwrap(),
            )
        }
    };
    let short = connect(server.tcp_target(), 1_000).await;
    let tcp = connect(server.tcp_target(), 30_000).await;
    let quic = connect(server.quic_target(), 30_000).await;
    let code = issue(&tcp, issue_cmd("d-1", 1, MOBILE)).await.code;
    let pid = server.child.id().to_string();
    let signal = |sig: &str| {
        let ok = std::process::Command::new("kill")
            .args([sig, &pid])
            .status()
            .unwrap();
        assert!(ok.success());
    };
    signal("-STOP");
    wait_all_threads_stopped(server.child.id());
    // Requests pending on a stopped server.
    let mut pending = Vec::new();
    for client in [&tcp, &quic] {
        for _ in 0..50 {
            let c = client.clone();
            pending.push(tokio::spawn(
                async move { c.command(lookup_cmd(code)).await },
            ));
        }
    }
    // Stopped: a request with a 1 s deadline fails at its deadline.
    let started = Instant::now();
    let r = short.command(lookup_cmd(code)).await;
    assert!(matches!(r, Err(ClientError::Timeout(1_000))), "{r:?}");
    assert!(started.elapsed() < Duration::from_millis(1_500));
    assert!(
        short.is_closed(),
        "a request past its deadline closes the client"
    );
    assert!(pending.iter().all(|p| !p.is_finished()));
    // Killed: every pending request fails, well within its deadline.
    signal("-KILL");
    let killed = Instant::now();
    for p in pending {
        let r = p.await.unwrap();
        assert!(matches!(r, Err(ClientError::Closed)), "{r:?}");
    }
    let waited = killed.elapsed();
    assert!(waited < Duration::from_millis(2_500), "{waited:?}");
    // And every later request fails at once.
    for client in [&tcp, &quic] {
        let started = Instant::now();
        let r = client.command(lookup_cmd(code)).await;
        assert!(matches!(r, Err(ClientError::Closed)), "{r:?}");
        assert!(started.elapsed() < Duration::from_millis(100));
    }
    let _ = server.child.wait();
}
