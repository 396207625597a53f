//! Request builders, reply unpacking and the server-state audit shared by
//! the integration tests that drive a real server (`tcp_quic`,
//! `concurrency`, `bad_input`). Each test binary declares `mod common;`
//! (the server harness) and `mod helpers;` (this file).
#![allow(dead_code)]

pub mod tenants;

use std::collections::BTreeMap;
use vouch_engine::command::{
    AuditRedemptions, AuditVouchers, Issue, Issued, LookedUp, Lookup, Redeem, Redeemed,
    RedemptionEntry, Reverse, Reversed, VoucherState,
};
use vouch_engine::limits::AUDIT_PAGE_ITEMS_MAX;
use vouch_engine::validity::Validity;
use vouch_engine::{
    Code, Command, ErrorCode, Outcome, OutletId, PosId, ProductId, RequestId, SellerId, VerifierId,
};
use vouch_protocol::{Client, WireReply};

/// Outlet and verifier every test redemption uses.
pub const OUTLET: OutletId = OutletId(31);
/// See [`OUTLET`].
pub const VERIFIER: VerifierId = VerifierId(41);
/// Seller of every test voucher.
pub const SELLER: SellerId = SellerId(7);

/// An issue of `units` units for `order_id`, 9-digit code, valid 30 days.
pub fn issue_cmd(order_id: &str, units: u32, mobile: &str) -> Issue {
    Issue {
        order_id: order_id.into(),
        seller_id: SELLER,
        product_id: ProductId(11),
        units,
        unit_price: vouch_engine::Fen::new(1250),
        mobile: mobile.into(),
        validity: Validity::DaysFromIssue(30),
        code_digits: 9,
    }
}

/// The last four digits of `mobile`.
pub fn last4(mobile: &str) -> String {
    mobile[mobile.len() - 4..].to_string()
}

/// A redemption of `units` units of `code` by POS `pos`, request serial `serial`.
pub fn redeem_cmd(pos: PosId, serial: u64, code: Code, last4: &str, units: u32) -> Redeem {
    Redeem {
        request_id: RequestId {
            source: pos.0,
            serial,
        },
        code,
        phone_last4: last4.into(),
        units,
        outlet_id: OUTLET,
        verifier_id: VERIFIER,
        pos_id: Some(pos),
    }
}

/// A reversal (by the POS that redeemed) of the redemption `redemption`.
pub fn reverse_cmd(pos: PosId, serial: u64, code: Code, redemption: RequestId) -> Reverse {
    Reverse {
        request_id: RequestId {
            source: pos.0,
            serial,
        },
        code,
        redemption,
        pos_id: Some(pos),
        verifier_id: None,
        seller_id: None,
    }
}

/// Runs one command; panics when the request failed as a whole.
pub async fn run(client: &Client, command: Command) -> WireReply {
    client
        .command(command)
        .await
        .expect("request failed as a whole")
}

/// Unpacks an `Issued` reply.
pub fn as_issued(reply: WireReply) -> Issued {
    match reply {
        Ok(Outcome::Issued(i)) => i,
        other => panic!("expected Issued, got {other:?}"),
    }
}

/// Unpacks a `LookedUp` reply.
pub fn as_looked_up(reply: WireReply) -> LookedUp {
    match reply {
        Ok(Outcome::LookedUp(l)) => l,
        other => panic!("expected LookedUp, got {other:?}"),
    }
}

/// Unpacks a `Redeemed` reply.
pub fn as_redeemed(reply: WireReply) -> Redeemed {
    match reply {
        Ok(Outcome::Redeemed(r)) => r,
        other => panic!("expected Redeemed, got {other:?}"),
    }
}

/// Unpacks a `Reversed` reply.
pub fn as_reversed(reply: WireReply) -> Reversed {
    match reply {
        Ok(Outcome::Reversed(r)) => r,
        other => panic!("expected Reversed, got {other:?}"),
    }
}

/// Asserts that `reply` is the error `code`, by number and by name.
pub fn assert_rejected(reply: &WireReply, code: ErrorCode) {
    match reply {
        Err(e) => {
            assert_eq!(e.code, code.number(), "error number of {e}");
            assert_eq!(e.name, code.name(), "error name of {e}");
            assert!(!e.message.is_empty(), "error {e} has a message");
        }
        Ok(o) => panic!("expected {code}, got {o:?}"),
    }
}

/// Issues and unpacks.
pub async fn issue(client: &Client, c: Issue) -> Issued {
    as_issued(run(client, Command::Issue(c)).await)
}

/// Looks a code up.
pub async fn lookup(client: &Client, code: Code, last4: &str) -> WireReply {
    run(
        client,
        Command::Lookup(Lookup {
            code,
            phone_last4: last4.into(),
            verifier_id: None,
            pos_id: None,
        }),
    )
    .await
}

/// Everything the audit commands show, over every shard and page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Audit {
    /// Every voucher, by order id.
    pub vouchers: BTreeMap<String, VoucherState>,
    /// The verification logs of all shards, shard by shard in log order.
    pub redemptions: Vec<RedemptionEntry>,
}

impl Audit {
    /// The voucher of `order_id`; panics when the server has none.
    pub fn voucher(&self, order_id: &str) -> &VoucherState {
        self.vouchers
            .get(order_id)
            .unwrap_or_else(|| panic!("audit has no voucher {order_id}"))
    }

    /// The verification-log entries of `order_id`.
    pub fn redemptions_of(&self, order_id: &str) -> Vec<&RedemptionEntry> {
        self.redemptions
            .iter()
            .filter(|r| r.order_id == order_id)
            .collect()
    }
}

/// Reads every voucher and every verification-log entry of every shard.
pub async fn audit(client: &Client) -> Audit {
    let mut vouchers = BTreeMap::new();
    let mut redemptions = Vec::new();
    for shard in 0..client.shards() {
        let mut from = Some(0);
        while let Some(f) = from {
            let page = AuditVouchers {
                shard,
                from: f,
                limit: AUDIT_PAGE_ITEMS_MAX,
            };
            match run(client, Command::AuditVouchers(page)).await {
                Ok(Outcome::Vouchers { items, next }) => {
                    for v in items {
                        let dup = vouchers.insert(v.order_id.clone(), v);
                        assert!(dup.is_none(), "one voucher per order id");
                    }
                    from = next;
                }
                other => panic!("expected Vouchers, got {other:?}"),
            }
        }
        let mut from = Some(0);
        while let Some(f) = from {
            let page = AuditRedemptions {
                shard,
                from: f,
                limit: AUDIT_PAGE_ITEMS_MAX,
            };
            match run(client, Command::AuditRedemptions(page)).await {
                Ok(Outcome::Redemptions { items, next }) => {
                    redemptions.extend(items);
                    from = next;
                }
                other => panic!("expected Redemptions, got {other:?}"),
            }
        }
    }
    Audit {
        vouchers,
        redemptions,
    }
}

// ---- Raw frames on a plain TCP socket, for tests that bypass the client ----

use bytes::BytesMut;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use vouch_protocol::frame::{put_frame, take_frame, Header, KIND_REQUEST, KIND_RESPONSE};
use vouch_protocol::messages::{decode_response, encode_request};
use vouch_protocol::{Request, Response, PROTOCOL_VERSION};

/// Upper bound on waiting for a server reply or close on a raw socket. It
/// only turns a hang into a failure; no test relies on it elapsing.
pub const RAW_IO_GUARD: Duration = Duration::from_secs(30);

/// One hand-made frame: header fields as given, then `body`.
pub fn raw_frame(version: u8, kind: u8, opcode: u16, corr: u64, body: &[u8]) -> Vec<u8> {
    let mut buf = BytesMut::new();
    put_frame(&mut buf, version, kind, opcode, corr, body);
    buf.to_vec()
}

/// A well-formed request frame for `request`.
pub fn request_frame(corr: u64, request: &Request) -> Vec<u8> {
    raw_frame(
        PROTOCOL_VERSION,
        KIND_REQUEST,
        request.opcode(),
        corr,
        &encode_request(request),
    )
}

/// A raw socket to `addr` (`host:port`) with its read buffer.
pub struct Raw {
    /// The socket.
    pub stream: TcpStream,
    /// Bytes read but not yet taken as frames.
    pub buf: BytesMut,
}

impl Raw {
    /// Connects, without a handshake.
    pub async fn connect(addr: &str) -> Raw {
        let stream = TcpStream::connect(addr).await.expect("raw connect");
        Raw {
            stream,
            buf: BytesMut::new(),
        }
    }

    /// Connects and completes the handshake with `token`.
    pub async fn hello(addr: &str, token: &str) -> Raw {
        match Raw::try_hello(addr, token).await {
            Ok(raw) => raw,
            Err(code) => panic!("expected a Hello response, got error {code}"),
        }
    }

    /// Connects and sends a Hello with `token`: the connection when the
    /// server accepts it, else the error number it answered with.
    pub async fn try_hello(addr: &str, token: &str) -> Result<Raw, u16> {
        let mut raw = Raw::connect(addr).await;
        let hello = Request::Hello {
            version: PROTOCOL_VERSION,
            token: token.into(),
        };
        raw.send(&request_frame(1, &hello)).await;
        match raw.read().await {
            Some((_, Response::Hello { .. })) => Ok(raw),
            Some((_, Response::Error(e))) => Err(e.code),
            other => panic!("expected Hello or an error, got {other:?}"),
        }
    }

    /// Writes bytes.
    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("raw write");
    }

    /// Reads the next response frame; None when the server closed the
    /// connection (cleanly or by reset) between frames.
    pub async fn read(&mut self) -> Option<(Header, Response)> {
        let read = async {
            loop {
                if let Some((h, body)) =
                    take_frame(&mut self.buf).expect("server frames are well-formed")
                {
                    assert_eq!(h.kind, KIND_RESPONSE, "server sends responses");
                    assert_eq!(h.version, PROTOCOL_VERSION, "server speaks its version");
                    let resp = decode_response(h.opcode, &body).expect("server bodies decode");
                    return Some((h, resp));
                }
                match self.stream.read_buf(&mut self.buf).await {
                    Ok(0) => {
                        assert!(
                            self.buf.is_empty(),
                            "server closed in the middle of a frame"
                        );
                        return None;
                    }
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return None,
                    Err(e) => panic!("raw read: {e}"),
                }
            }
        };
        tokio::time::timeout(RAW_IO_GUARD, read)
            .await
            .expect("the server answers or closes")
    }

    /// Asserts that the server closes the connection without another frame.
    pub async fn expect_closed(&mut self) {
        if let Some(frame) = self.read().await {
            panic!("expected the server to close, got {frame:?}");
        }
    }

    /// Asserts that the next frame is the error `code` for correlation id
    /// `corr`, and that the server then closes the connection.
    pub async fn expect_error_then_close(&mut self, corr: u64, code: ErrorCode) {
        match self.read().await {
            Some((h, Response::Error(e))) => {
                assert_eq!(h.correlation, corr, "correlation id of {e}");
                assert_eq!(e.code, code.number(), "error number of {e}");
                assert_eq!(e.name, code.name(), "error name of {e}");
                assert!(!e.message.is_empty(), "error {e} has a message");
            }
            other => panic!("expected error {code}, got {other:?}"),
        }
        self.expect_closed().await;
    }
}

/// A reply as the first application of its command gave it: a repeat's
/// `replayed` cleared (see `Outcome::as_first`), for comparing a retry
/// with the original reply.
pub fn first_reply(reply: &WireReply) -> WireReply {
    reply.as_ref().map(Outcome::as_first).map_err(Clone::clone)
}

/// [`first_reply`] of an issue reply.
pub fn first_issued(i: &Issued) -> Issued {
    as_issued(Ok(Outcome::Issued(i.clone()).as_first()))
}

/// [`first_reply`] of a redemption reply.
pub fn first_redeemed(r: &Redeemed) -> Redeemed {
    as_redeemed(Ok(Outcome::Redeemed(r.clone()).as_first()))
}

/// [`first_reply`] of a reversal reply.
pub fn first_reversed(r: &Reversed) -> Reversed {
    as_reversed(Ok(Outcome::Reversed(r.clone()).as_first()))
}
