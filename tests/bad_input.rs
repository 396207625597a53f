//! Bad input over raw TCP sockets (DESIGN "Reliability": malformed or
//! oversized frames close that one connection with an error; invariant 7:
//! every limit is checked). After every bad connection an already-connected
//! good client still issues and looks up, the audit shows that nothing else
//! was written, and a restart shows the same state.
mod common;
mod helpers;

use common::Server;
use helpers::*;
use serde::Serialize;
use tempfile::TempDir;
use tokio::io::AsyncWriteExt;
use vouch_engine::code::CodeParseError;
use vouch_engine::command::{Issue, Lookup, Redeem, VoucherState};
use vouch_engine::{Code, Command, ErrorCode, OutletId, PosId, RequestId, VerifierId};
use vouch_protocol::client::ClientError;
use vouch_protocol::frame::{
    Header, BATCH_COMMANDS_MAX, FRAME_BYTES_MAX, HEADER_BYTES, KIND_REQUEST, KIND_RESPONSE,
};
use vouch_protocol::messages::encode_request;
use vouch_protocol::{Client, Request, PROTOCOL_VERSION};

const MOBILE: &str = "13655555678";
const L4: &str = "5678";

/// A server with a good client connected throughout, and the state the
/// server must hold.
struct Fixture {
    dir: TempDir,
    server: Server,
    good: Client,
    /// The code of a voucher with units left, which bad requests aim at.
    target_code: Code,
    /// What the audit must show.
    expected: Audit,
    issued: u32,
}

impl Fixture {
    /// Starts a server, connects the good client, issues a voucher and
    /// redeems one unit of it, so that there is state to protect.
    async fn start() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let server = Server::start(dir.path());
        let good = server.client(&server.tcp_target()).await;
        let code = issue(&good, issue_cmd("base", 5, MOBILE)).await.code;
        let r =
            as_redeemed(run(&good, Command::Redeem(redeem_cmd(PosId(1), 1, code, L4, 1))).await);
        let target_code = r.new_code.expect("units remain");
        let expected = audit(&good).await;
        assert_eq!(expected.vouchers.len(), 1);
        assert_eq!(expected.redemptions.len(), 1);
        Fixture {
            dir,
            server,
            good,
            target_code,
            expected,
            issued: 0,
        }
    }

    fn addr(&self) -> String {
        self.server.tcp.clone()
    }

    fn token(&self) -> String {
        self.server.token()
    }

    /// After a bad connection: nothing was written, and the good client
    /// still issues and looks up.
    async fn check(&mut self, after: &str) {
        assert_eq!(
            audit(&self.good).await,
            self.expected,
            "after {after}: nothing was written"
        );
        self.issued += 1;
        let order = format!("good-{}", self.issued);
        let issued = issue(&self.good, issue_cmd(&order, 2, MOBILE)).await;
        let l = as_looked_up(lookup(&self.good, issued.code, L4).await);
        assert_eq!(
            (l.order_id.as_str(), l.units_remaining),
            (order.as_str(), 2),
            "after {after}"
        );
        self.expected.vouchers.insert(
            order.clone(),
            VoucherState {
                order_id: order,
                units_total: 2,
                units_remaining: 2,
                units_redeemed: 0,
                units_void: 0,
                live_code: Some(issued.code),
            },
        );
        assert_eq!(audit(&self.good).await, self.expected, "after {after}");
        let base = as_looked_up(lookup(&self.good, self.target_code, L4).await);
        assert_eq!(
            base.units_remaining, 4,
            "after {after}: the base voucher is untouched"
        );
    }

    /// Kills the server, starts it again on the same directory, and
    /// compares the recovered state.
    async fn restart_and_compare(self) {
        let Fixture {
            dir,
            mut server,
            good,
            expected,
            ..
        } = self;
        drop(good);
        server.kill();
        let server = Server::start(dir.path());
        let client = server.client(&server.tcp_target()).await;
        assert_eq!(
            audit(&client).await,
            expected,
            "the restart shows the same state"
        );
    }

    fn issue_request(&self, order: &str) -> Request {
        Request::issue(issue_cmd(order, 1, MOBILE))
    }

    fn redeem_request(&self, serial: u64) -> Request {
        Request::redeem(redeem_cmd(PosId(2), serial, self.target_code, L4, 1))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn design_reliability_malformed_frame_closes_only_that_connection() {
    let mut fx = Fixture::start().await;
    let garbage = [
        0xffu8, 0xfe, 0x00, 0x13, 0x37, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    ];

    // Garbage body with a valid header, before the handshake.
    let mut raw = Raw::connect(&fx.addr()).await;
    raw.send(&raw_frame(PROTOCOL_VERSION, KIND_REQUEST, 1, 5, &garbage))
        .await;
    raw.expect_error_then_close(5, ErrorCode::MalformedFrame)
        .await;
    fx.check("garbage before hello").await;

    // Garbage body after the handshake, with the issue opcode.
    let mut raw = Raw::hello(&fx.addr(), &fx.token()).await;
    raw.send(&raw_frame(PROTOCOL_VERSION, KIND_REQUEST, 2, 6, &garbage))
        .await;
    raw.expect_error_then_close(6, ErrorCode::MalformedFrame)
        .await;
    fx.check("garbage after hello").await;

    // A valid issue body under the lookup opcode: refused, not applied.
    let issue = fx.issue_request("smuggled-1");
    let body = encode_request(&issue);
    let mut raw = Raw::hello(&fx.addr(), &fx.token()).await;
    raw.send(&raw_frame(PROTOCOL_VERSION, KIND_REQUEST, 3, 7, &body))
        .await;
    raw.expect_error_then_close(7, ErrorCode::MalformedFrame)
        .await;
    fx.check("opcode not matching the body").await;

    // A valid redeem body with trailing bytes cut off.
    let body = encode_request(&fx.redeem_request(1));
    let mut raw = Raw::hello(&fx.addr(), &fx.token()).await;
    raw.send(&raw_frame(
        PROTOCOL_VERSION,
        KIND_REQUEST,
        4,
        8,
        &body[..body.len() - 2],
    ))
    .await;
    raw.expect_error_then_close(8, ErrorCode::MalformedFrame)
        .await;
    fx.check("short redeem body").await;

    // An unknown frame kind, and a response frame sent by a client.
    let mut raw = Raw::hello(&fx.addr(), &fx.token()).await;
    raw.send(&raw_frame(
        PROTOCOL_VERSION,
        9,
        2,
        9,
        &encode_request(&fx.issue_request("smuggled-2")),
    ))
    .await;
    raw.expect_error_then_close(0, ErrorCode::MalformedFrame)
        .await;
    fx.check("unknown frame kind").await;
    let mut raw = Raw::hello(&fx.addr(), &fx.token()).await;
    let body = encode_request(&fx.issue_request("smuggled-3"));
    raw.send(&raw_frame(PROTOCOL_VERSION, KIND_RESPONSE, 2, 10, &body))
        .await;
    raw.expect_error_then_close(10, ErrorCode::MalformedFrame)
        .await;
    fx.check("response frame from a client").await;

    // An empty body.
    let mut raw = Raw::hello(&fx.addr(), &fx.token()).await;
    raw.send(&raw_frame(PROTOCOL_VERSION, KIND_REQUEST, 2, 11, &[]))
        .await;
    raw.expect_error_then_close(11, ErrorCode::MalformedFrame)
        .await;
    fx.check("empty body").await;

    fx.restart_and_compare().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn design_reliability_truncated_frame_then_close_writes_nothing() {
    let mut fx = Fixture::start().await;

    // Half a header, then close: the server closes too, without a frame.
    let mut raw = Raw::connect(&fx.addr()).await;
    let hello = request_frame(
        1,
        &Request::Hello {
            version: PROTOCOL_VERSION,
            token: fx.token(),
        },
    );
    raw.send(&hello[..HEADER_BYTES / 2]).await;
    raw.stream.shutdown().await.unwrap();
    raw.expect_closed().await;
    fx.check("half a header").await;

    // A whole issue frame but its last byte, then close.
    let mut raw = Raw::hello(&fx.addr(), &fx.token()).await;
    let frame = request_frame(2, &fx.issue_request("truncated-1"));
    raw.send(&frame[..frame.len() - 1]).await;
    raw.stream.shutdown().await.unwrap();
    raw.expect_closed().await;
    fx.check("truncated issue frame").await;

    // A redeem frame with only its header, then close.
    let mut raw = Raw::hello(&fx.addr(), &fx.token()).await;
    let frame = request_frame(3, &fx.redeem_request(1));
    raw.send(&frame[..HEADER_BYTES]).await;
    raw.stream.shutdown().await.unwrap();
    raw.expect_closed().await;
    fx.check("redeem header without body").await;

    fx.restart_and_compare().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inv_7_oversized_frame_is_refused_with_frame_too_large() {
    let mut fx = Fixture::start().await;
    let oversized = |body_bytes: u32| {
        let mut buf = bytes::BytesMut::new();
        Header {
            version: PROTOCOL_VERSION,
            kind: KIND_REQUEST,
            opcode: 2,
            body_bytes,
            correlation: 4,
        }
        .put(&mut buf);
        buf.to_vec()
    };

    // Before the handshake: one byte over the limit, only the header sent.
    let mut raw = Raw::connect(&fx.addr()).await;
    raw.send(&oversized(FRAME_BYTES_MAX + 1)).await;
    raw.expect_error_then_close(0, ErrorCode::FrameTooLarge)
        .await;
    fx.check("oversized frame before hello").await;

    // After the handshake: the largest declarable length.
    let mut raw = Raw::hello(&fx.addr(), &fx.token()).await;
    raw.send(&oversized(u32::MAX)).await;
    raw.expect_error_then_close(0, ErrorCode::FrameTooLarge)
        .await;
    fx.check("u32::MAX frame after hello").await;

    // Exactly at the limit the frame is read whole; its garbage body is
    // then a malformed frame, not a too-large one.
    let mut raw = Raw::hello(&fx.addr(), &fx.token()).await;
    let body = vec![0xffu8; FRAME_BYTES_MAX as usize];
    raw.send(&raw_frame(PROTOCOL_VERSION, KIND_REQUEST, 2, 5, &body))
        .await;
    raw.expect_error_then_close(5, ErrorCode::MalformedFrame)
        .await;
    fx.check("frame at the limit").await;

    fx.restart_and_compare().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn design_protocol_unknown_version_is_refused_with_unsupported_version() {
    let mut fx = Fixture::start().await;
    let token = fx.token();
    let hello = |version: u8| Request::Hello {
        version,
        token: token.clone(),
    };

    // A header of another version, with a well-formed Hello.
    for header_version in [0u8, PROTOCOL_VERSION + 1, u8::MAX] {
        let mut raw = Raw::connect(&fx.addr()).await;
        let body = encode_request(&hello(PROTOCOL_VERSION));
        raw.send(&raw_frame(header_version, KIND_REQUEST, 1, 3, &body))
            .await;
        raw.expect_error_then_close(3, ErrorCode::UnsupportedVersion)
            .await;
        fx.check("header of another version").await;
    }

    // A Hello asking for another version.
    let mut raw = Raw::connect(&fx.addr()).await;
    raw.send(&request_frame(4, &hello(PROTOCOL_VERSION + 1)))
        .await;
    raw.expect_error_then_close(4, ErrorCode::UnsupportedVersion)
        .await;
    fx.check("hello of another version").await;

    // After the handshake, a request frame of another version.
    let mut raw = Raw::hello(&fx.addr(), &fx.token()).await;
    let body = encode_request(&fx.redeem_request(1));
    raw.send(&raw_frame(PROTOCOL_VERSION + 1, KIND_REQUEST, 4, 5, &body))
        .await;
    raw.expect_error_then_close(5, ErrorCode::UnsupportedVersion)
        .await;
    fx.check("request of another version").await;

    fx.restart_and_compare().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn design_protocol_bad_token_is_unauthenticated() {
    let mut fx = Fixture::start().await;
    let token = fx.token();

    // Through the client, on both transports.
    for target in [fx.server.tcp_target(), fx.server.quic_target()] {
        match Client::connect(&target, "not-the-token", Some(&fx.server.ca())).await {
            Err(ClientError::Refused(e)) => {
                assert_eq!(
                    (e.code, e.name.as_str()),
                    (101, "unauthenticated"),
                    "{target}"
                );
            }
            Err(other) => panic!("{target}: expected unauthenticated, got {other}"),
            Ok(_) => panic!("{target}: a bad token was accepted"),
        }
        fx.check("client with a bad token").await;
    }

    // On raw sockets: empty, almost right, and right-with-extra tokens.
    let almost = format!("{}x", &token[..token.len() - 1]);
    for bad in [String::new(), almost, format!("{token}x")] {
        let mut raw = Raw::connect(&fx.addr()).await;
        let hello = Request::Hello {
            version: PROTOCOL_VERSION,
            token: bad,
        };
        raw.send(&request_frame(6, &hello)).await;
        raw.expect_error_then_close(6, ErrorCode::Unauthenticated)
            .await;
        fx.check("raw hello with a bad token").await;
    }

    fx.restart_and_compare().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn design_protocol_request_before_hello_is_unauthenticated() {
    let mut fx = Fixture::start().await;
    let firsts = [
        fx.issue_request("before-hello-1"),
        fx.redeem_request(1),
        Request::IssueBatch(vec![issue_cmd("before-hello-2", 1, MOBILE)]),
        Request::RedeemBatch(vec![redeem_cmd(PosId(2), 2, fx.target_code, L4, 1)]),
        Request::Info,
    ];
    for first in firsts {
        let mut raw = Raw::connect(&fx.addr()).await;
        raw.send(&request_frame(9, &first)).await;
        raw.expect_error_then_close(9, ErrorCode::Unauthenticated)
            .await;
        fx.check("a request before hello").await;
    }
    fx.restart_and_compare().await;
}

// Look-alikes of the wire types whose code is a bare (digits, value) pair,
// so that a client can put codes on the wire that `Code` refuses. Variant
// order must match `Request` and `Command` (postcard encodes the index).

#[derive(Serialize)]
struct RawCode {
    digits: u8,
    value: u64,
}

#[derive(Serialize)]
struct RawLookup {
    code: RawCode,
    phone_last4: String,
    verifier_id: Option<VerifierId>,
    pos_id: Option<PosId>,
}

#[derive(Serialize)]
struct RawRedeem {
    request_id: RequestId,
    code: RawCode,
    phone_last4: String,
    units: u32,
    outlet_id: OutletId,
    verifier_id: VerifierId,
    pos_id: Option<PosId>,
}

#[derive(Serialize)]
#[allow(dead_code)]
enum RawCommand {
    Issue(Issue),
    Lookup(RawLookup),
    Redeem(RawRedeem),
}

#[derive(Serialize)]
#[allow(dead_code)]
enum RawRequest {
    Hello { version: u8, token: String },
    Command(RawCommand),
    IssueBatch(Vec<Issue>),
    RedeemBatch(Vec<RawRedeem>),
}

fn raw_code(c: Code) -> RawCode {
    RawCode {
        digits: c.digits(),
        value: c.value(),
    }
}

fn raw_redeem(r: &Redeem, code: RawCode) -> RawRedeem {
    RawRedeem {
        request_id: r.request_id,
        code,
        phone_last4: r.phone_last4.clone(),
        units: r.units,
        outlet_id: r.outlet_id,
        verifier_id: r.verifier_id,
        pos_id: r.pos_id,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ord_3_malformed_codes_are_refused_by_parser_and_decoder() {
    // Client side: only 6..=11 ASCII digits parse.
    assert_eq!("12345".parse::<Code>(), Err(CodeParseError::Length(5)));
    assert_eq!(
        "123456789012".parse::<Code>(),
        Err(CodeParseError::Length(12))
    );
    assert_eq!("12a456".parse::<Code>(), Err(CodeParseError::NotDigit));
    assert_eq!(
        "１２３４５６".parse::<Code>(),
        Err(CodeParseError::NotDigit)
    );
    assert_eq!("+123456".parse::<Code>(), Err(CodeParseError::NotDigit));
    assert_eq!("".parse::<Code>(), Err(CodeParseError::Length(0)));
    assert!(Code::new(5, 12_345).is_none());
    assert!(Code::new(12, 1).is_none());
    assert!(Code::new(6, 1_000_000).is_none());

    let mut fx = Fixture::start().await;
    let good = redeem_cmd(PosId(3), 1, fx.target_code, L4, 1);

    // The look-alikes encode valid codes exactly like the real types.
    let lookalike = RawRequest::Command(RawCommand::Lookup(RawLookup {
        code: raw_code(fx.target_code),
        phone_last4: L4.into(),
        verifier_id: None,
        pos_id: None,
    }));
    let real = Request::lookup(Lookup {
        code: fx.target_code,
        phone_last4: L4.into(),
        verifier_id: None,
        pos_id: None,
    });
    assert_eq!(
        postcard::to_allocvec(&lookalike).unwrap(),
        encode_request(&real)
    );
    let lookalike = RawRequest::RedeemBatch(vec![raw_redeem(&good, raw_code(fx.target_code))]);
    let real = Request::RedeemBatch(vec![good.clone()]);
    assert_eq!(
        postcard::to_allocvec(&lookalike).unwrap(),
        encode_request(&real)
    );

    // Server side: 5 and 12 digits, and a value too long for its length
    // (the wire's form of a non-digit code), are undecodable.
    let bad_codes = [
        (5u8, 12_345u64),
        (12, 1),
        (12, 123_456_789_012),
        (6, 1_000_000),
        (0, 0),
    ];
    for (digits, value) in bad_codes {
        let what = format!("a code of {digits} digits, value {value}");
        let lookup = RawRequest::Command(RawCommand::Lookup(RawLookup {
            code: RawCode { digits, value },
            phone_last4: L4.into(),
            verifier_id: None,
            pos_id: None,
        }));
        let mut raw = Raw::hello(&fx.addr(), &fx.token()).await;
        raw.send(&raw_frame(
            PROTOCOL_VERSION,
            KIND_REQUEST,
            3,
            20,
            &postcard::to_allocvec(&lookup).unwrap(),
        ))
        .await;
        raw.expect_error_then_close(20, ErrorCode::MalformedFrame)
            .await;
        fx.check(&format!("lookup of {what}")).await;

        let redeem = RawRequest::Command(RawCommand::Redeem(raw_redeem(
            &good,
            RawCode { digits, value },
        )));
        let mut raw = Raw::hello(&fx.addr(), &fx.token()).await;
        raw.send(&raw_frame(
            PROTOCOL_VERSION,
            KIND_REQUEST,
            4,
            21,
            &postcard::to_allocvec(&redeem).unwrap(),
        ))
        .await;
        raw.expect_error_then_close(21, ErrorCode::MalformedFrame)
            .await;
        fx.check(&format!("redeem of {what}")).await;
    }

    // One bad code spoils the whole batch frame: the good item beside it
    // is not applied either.
    let batch = RawRequest::RedeemBatch(vec![
        raw_redeem(&good, raw_code(fx.target_code)),
        raw_redeem(
            &redeem_cmd(PosId(3), 2, fx.target_code, L4, 1),
            RawCode {
                digits: 12,
                value: 7,
            },
        ),
    ]);
    let mut raw = Raw::hello(&fx.addr(), &fx.token()).await;
    raw.send(&raw_frame(
        PROTOCOL_VERSION,
        KIND_REQUEST,
        9,
        22,
        &postcard::to_allocvec(&batch).unwrap(),
    ))
    .await;
    raw.expect_error_then_close(22, ErrorCode::MalformedFrame)
        .await;
    fx.check("a redeem batch with one bad code").await;

    fx.restart_and_compare().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inv_7_batch_over_limit_is_refused_with_batch_too_large() {
    let mut fx = Fixture::start().await;
    let batcher = fx.server.client(&fx.server.tcp_target()).await;
    assert_eq!(
        batcher.limits().batch_commands_max as usize,
        BATCH_COMMANDS_MAX
    );
    assert_eq!(batcher.limits().frame_bytes_max, FRAME_BYTES_MAX);
    let too_many = BATCH_COMMANDS_MAX + 1;

    let issues: Vec<Issue> = (0..too_many)
        .map(|i| issue_cmd(&format!("over-{i}"), 1, MOBILE))
        .collect();
    match batcher.issue_batch(issues).await {
        Err(ClientError::Refused(e)) => {
            assert_eq!((e.code, e.name.as_str()), (104, "batch_too_large"))
        }
        other => panic!("expected batch_too_large, got {other:?}"),
    }
    fx.check("an issue batch over the limit").await;

    let redeems: Vec<Redeem> = (0..too_many as u64)
        .map(|i| redeem_cmd(PosId(4), i, fx.target_code, L4, 1))
        .collect();
    match batcher.redeem_batch(redeems).await {
        Err(ClientError::Refused(e)) => {
            assert_eq!((e.code, e.name.as_str()), (104, "batch_too_large"))
        }
        other => panic!("expected batch_too_large, got {other:?}"),
    }
    fx.check("a redeem batch over the limit").await;

    // The same on a raw socket.
    let mut raw = Raw::hello(&fx.addr(), &fx.token()).await;
    let issues: Vec<Issue> = (0..too_many)
        .map(|i| issue_cmd(&format!("raw-over-{i}"), 1, MOBILE))
        .collect();
    raw.send(&request_frame(30, &Request::IssueBatch(issues)))
        .await;
    match raw.read().await {
        Some((h, vouch_protocol::Response::Error(e))) => {
            assert_eq!(h.correlation, 30);
            assert_eq!((e.code, e.name.as_str()), (104, "batch_too_large"));
        }
        other => panic!("expected batch_too_large, got {other:?}"),
    }
    drop(raw);
    fx.check("a raw issue batch over the limit").await;

    // Exactly at the limit a batch is served: wrong phone digits make
    // every item a refusal, so it still writes nothing.
    let redeems: Vec<Redeem> = (0..BATCH_COMMANDS_MAX as u64)
        .map(|i| redeem_cmd(PosId(5), i, fx.target_code, "0000", 1))
        .collect();
    let replies = batcher.redeem_batch(redeems).await.unwrap();
    assert_eq!(replies.len(), BATCH_COMMANDS_MAX);
    for r in &replies {
        assert_rejected(r, ErrorCode::CodeInvalid);
    }
    fx.check("a redeem batch at the limit").await;

    fx.restart_and_compare().await;
}

/// A connection logs in once: a second Hello, even with another token, is
/// refused and the connection keeps its identity (break-it finding).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn design_protocol_a_second_hello_is_refused() {
    let fx = Fixture::start().await;
    let mut raw = Raw::hello(&fx.addr(), &fx.token()).await;
    let again = Request::Hello {
        version: PROTOCOL_VERSION,
        token: "not-a-token".into(),
    };
    raw.send(&request_frame(5, &again)).await;
    match raw.read().await {
        Some((h, vouch_protocol::Response::Error(e))) => {
            assert_eq!(h.correlation, 5);
            assert_eq!(e.code, ErrorCode::BadRequest.number(), "{e:?}");
        }
        other => panic!("expected bad_request, got {other:?}"),
    }
    raw.send(&request_frame(6, &Request::Info)).await;
    match raw.read().await {
        Some((h, vouch_protocol::Response::Info { .. })) => assert_eq!(h.correlation, 6),
        other => panic!("the connection still serves, got {other:?}"),
    }
}
