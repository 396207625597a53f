//! Limits and cross-shard idempotency over a real server process.
mod common;
mod helpers;

use common::Server;
use helpers::*;
use vouch_engine::PosId;
use vouch_engine::{Command, ErrorCode, RequestId};
use vouch_protocol::frame::{Header, HELLO_BYTES_MAX, KIND_REQUEST};

const MOBILE: &str = "13611112222";

#[tokio::test]
async fn inv_7_frame_larger_than_hello_limit_before_handshake_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let mut raw = Raw::connect(&server.tcp).await;
    let mut buf = bytes::BytesMut::new();
    Header {
        version: 1,
        kind: KIND_REQUEST,
        opcode: 1,
        body_bytes: HELLO_BYTES_MAX + 1,
        correlation: 9,
    }
    .put(&mut buf);
    raw.send(&buf).await;
    raw.expect_error_then_close(0, ErrorCode::FrameTooLarge)
        .await;
    // The server still serves a proper client.
    let client = server.client(&server.tcp_target()).await;
    issue(&client, issue_cmd("after-big-hello", 1, MOBILE)).await;
}

#[tokio::test]
async fn design_protocol_silent_connection_is_closed_after_handshake_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let mut raw = Raw::connect(&server.tcp).await;
    // Send nothing: after HANDSHAKE_TIMEOUT_MS the server says why and closes.
    raw.expect_error_then_close(0, ErrorCode::Unauthenticated)
        .await;
}

#[tokio::test]
async fn inv_4_request_id_reused_on_another_shards_code_is_a_conflict_also_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path());
    let client = server.client(&server.tcp_target()).await;
    let shards = u64::from(client.shards());
    assert!(shards > 1, "the default server has several shards");
    let a = issue(&client, issue_cmd("xs-a", 5, MOBILE)).await.code;
    let mut n = 0;
    let b = loop {
        let c = issue(&client, issue_cmd(&format!("xs-b{n}"), 5, MOBILE))
            .await
            .code;
        if c.value() % shards != a.value() % shards {
            break c;
        }
        n += 1;
    };
    let l4 = last4(MOBILE);
    let first = run(&client, Command::Redeem(redeem_cmd(PosId(7), 1, a, &l4, 1))).await;
    as_redeemed(first);
    let reuse = Command::Redeem(redeem_cmd(PosId(7), 1, b, &l4, 2));
    assert_rejected(
        &run(&client, reuse.clone()).await,
        ErrorCode::RequestConflict,
    );
    let left = as_looked_up(lookup(&client, b, &l4).await).units_remaining;
    assert_eq!(left, 5, "the other voucher lost nothing");
    drop(client);
    server.kill();
    let server = Server::start(dir.path());
    let client = server.client(&server.tcp_target()).await;
    // The binding of request id 7:1 to its shard is rebuilt from the log.
    assert_rejected(&run(&client, reuse).await, ErrorCode::RequestConflict);
    assert_eq!(
        as_looked_up(lookup(&client, b, &l4).await).units_remaining,
        5
    );
    let audit = audit(&client).await;
    let entries = audit.redemptions_of("xs-a");
    assert_eq!(entries.len(), 1);
    assert_eq!(
        entries[0].request_id,
        RequestId {
            source: 7,
            serial: 1
        }
    );
}
