//! Issue 7 item 5: while a restart replays its log, the TCP port answers
//! at once with a retryable `unavailable` ("recovering") instead of
//! holding connections nobody reads.
mod common;
mod helpers;

use common::Server;
use helpers::*;
use std::process::{Command as Process, Stdio};
use std::time::{Duration, Instant};
use vouch_engine::ErrorCode;
use vouch_protocol::Response;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inv_3_connections_during_recovery_are_answered_recovering() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path());
    let client = server.client(&server.tcp_target()).await;
    // Enough log to take a noticeable time to replay.
    for batch in 0..40 {
        let orders = (0..10_000)
            .map(|i| issue_cmd(&format!("r-{batch}-{i}"), 1, "13800005555"))
            .collect();
        let replies = client.issue_batch(orders).await.unwrap();
        assert!(replies.iter().all(|r| r.is_ok()));
    }
    drop(client);
    server.kill();
    // The same port again, so a client can knock during recovery.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut child = Process::new(env!("CARGO_BIN_EXE_vouch"))
        .arg("serve")
        .arg("--data-dir")
        .arg(dir.path())
        .args(["--listen-tcp", &addr, "--listen-quic", "off"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let token = server.token();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut recovering = 0;
    loop {
        assert!(Instant::now() < deadline, "never served");
        let Ok(stream) = tokio::net::TcpStream::connect(&addr).await else {
            tokio::time::sleep(Duration::from_millis(2)).await;
            continue;
        };
        let mut raw = Raw {
            stream,
            buf: bytes::BytesMut::new(),
        };
        // A recovering server answers before it is asked.
        let started = Instant::now();
        if let Ok(answer) = tokio::time::timeout(Duration::from_millis(300), raw.read()).await {
            match answer {
                Some((_, Response::Error(e))) => {
                    assert_eq!(e.code, ErrorCode::Unavailable.number(), "{e}");
                    assert!(e.message.contains("recovering"), "{e}");
                    assert!(
                        started.elapsed() < Duration::from_secs(1),
                        "answered at once"
                    );
                    recovering += 1;
                    continue;
                }
                other => panic!("{other:?}"),
            }
        }
        let hello = vouch_protocol::Request::Hello {
            version: vouch_protocol::PROTOCOL_VERSION,
            token: token.clone(),
        };
        raw.send(&request_frame(1, &hello)).await;
        match raw.read().await {
            Some((_, Response::Hello { .. })) => break,
            other => panic!("{other:?}"),
        }
    }
    assert!(recovering > 0, "no connection came during recovery");
    let _ = child.kill();
    let _ = child.wait();
}
