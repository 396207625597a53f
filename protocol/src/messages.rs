//! Request and response messages. Bodies are postcard; the header's opcode
//! is the variant number, checked against the body on decode.

use serde::{Deserialize, Serialize};
use vouch_engine::catalog::{Actor, CatalogCommand, CatalogOutcome, CatalogQuery, CatalogView};
use vouch_engine::command::{AuditRedemptions, AuditVouchers, Issue, Lookup, Redeem, Reverse};
use vouch_engine::{Command, ErrorCode, Outcome, Rejection, RequestId};

/// A request from a client.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Request {
    /// First frame of a connection: protocol version and credential token.
    Hello {
        /// The client's protocol version.
        version: u8,
        /// The credential token (e.g. the contents of `admin.token`).
        token: String,
    },
    /// One engine command (issue, lookup, redeem, reverse, history,
    /// audit, refund, extend, order).
    Command(Command),
    /// Up to `BATCH_COMMANDS_MAX` issues; replies in the same order.
    IssueBatch(Vec<Issue>),
    /// Up to `BATCH_COMMANDS_MAX` redemptions; replies in the same order.
    RedeemBatch(Vec<Redeem>),
    /// Server facts: shard count and limits.
    Info,
    /// A catalog command (ONB, PUB, PRV). `act_as` names the principal the
    /// command runs for; only the admin token may set it (it acts for
    /// anyone), and without it the admin runs as staff.
    Catalog {
        /// Client request id (idempotency).
        request_id: RequestId,
        /// The principal to act as.
        act_as: Option<Actor>,
        /// The command.
        command: CatalogCommand,
    },
    /// A catalog read (changes nothing). `act_as` as for `Catalog`.
    CatalogRead {
        /// The principal to read as.
        act_as: Option<Actor>,
        /// The read.
        query: CatalogQuery,
    },
    /// A staff request about the outbox (ORD-2).
    Outbox(crate::outbox::OutboxRequest),
}

impl Request {
    /// The header opcode of this request.
    pub fn opcode(&self) -> u16 {
        match self {
            Request::Hello { .. } => 1,
            Request::Command(Command::Issue(_)) => 2,
            Request::Command(Command::Lookup(_)) => 3,
            Request::Command(Command::Redeem(_)) => 4,
            Request::Command(Command::Reverse(_)) => 5,
            Request::Command(Command::AuditVouchers(_)) => 6,
            Request::Command(Command::AuditRedemptions(_)) => 7,
            Request::IssueBatch(_) => 8,
            Request::RedeemBatch(_) => 9,
            Request::Info => 10,
            Request::Catalog { .. } => 11,
            // 12 was the catalog fact (protocol 2); facts never travel.
            Request::CatalogRead { .. } => 13,
            Request::Command(Command::History(_)) => 14,
            Request::Command(Command::Refund(_)) => 15,
            Request::Command(Command::Extend(_)) => 16,
            Request::Command(Command::Order(_)) => 17,
            Request::Command(Command::TransferStep(_)) => 18,
            Request::Command(Command::Transfers(_)) => 19,
            Request::Command(Command::Orders(_)) => 20,
            Request::Command(Command::Entries(_)) => 21,
            Request::Outbox(_) => 22,
        }
    }

    /// Convenience constructors.
    pub fn issue(c: Issue) -> Request {
        Request::Command(Command::Issue(c))
    }
    /// See [`Request::issue`].
    pub fn lookup(c: Lookup) -> Request {
        Request::Command(Command::Lookup(c))
    }
    /// See [`Request::issue`].
    pub fn redeem(c: Redeem) -> Request {
        Request::Command(Command::Redeem(c))
    }
    /// See [`Request::issue`].
    pub fn reverse(c: Reverse) -> Request {
        Request::Command(Command::Reverse(c))
    }
    /// See [`Request::issue`].
    pub fn audit_vouchers(c: AuditVouchers) -> Request {
        Request::Command(Command::AuditVouchers(c))
    }
    /// See [`Request::issue`].
    pub fn audit_redemptions(c: AuditRedemptions) -> Request {
        Request::Command(Command::AuditRedemptions(c))
    }
}

/// An error as it travels: stable number, stable name, human message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireError {
    /// Stable number (see [`ErrorCode`]).
    pub code: u16,
    /// Stable snake_case name.
    pub name: String,
    /// Human message.
    pub message: String,
    /// For `locked_out` (107): ms until the lockout ends.
    pub retry_after_ms: Option<u64>,
}

impl WireError {
    /// From a stable code and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> WireError {
        WireError {
            code: code.number(),
            name: code.name().into(),
            message: message.into(),
            retry_after_ms: None,
        }
    }
}

impl From<&Rejection> for WireError {
    /// Drops the hidden reason of `code_invalid` (DESIGN "code guessing").
    fn from(r: &Rejection) -> WireError {
        WireError {
            retry_after_ms: r.retry_after_ms,
            ..WireError::new(r.code, r.message.clone())
        }
    }
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.name, self.code, self.message)
    }
}

impl std::error::Error for WireError {}

/// One command's reply as it travels.
pub type WireReply = Result<Outcome, WireError>;

/// Limits the server announces in its handshake reply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Largest frame body, bytes.
    pub frame_bytes_max: u32,
    /// Most commands per batch frame.
    pub batch_commands_max: u32,
    /// Most requests in flight per connection before the server stops reading.
    pub inflight_requests_max: u32,
}

/// A response from the server.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Response {
    /// Handshake accepted.
    Hello {
        /// The server's protocol version.
        version: u8,
        /// The server's limits.
        limits: Limits,
        /// Engine shard count (audit pages are per shard).
        shards: u32,
    },
    /// Reply to one command.
    Reply(WireReply),
    /// Replies to a batch, in request order.
    Batch(Vec<WireReply>),
    /// Reply to `Info`.
    Info {
        /// Engine shard count.
        shards: u32,
        /// The server's limits.
        limits: Limits,
        /// The data directory's reversal window, ms (SET-1): redeemed
        /// money is payable to sellers this long after the redemption.
        reversal_window_ms: i64,
        /// The server's clock when it answered, unix ms: what its
        /// deadlines and settlement cutoffs are compared with (ahead of
        /// the wall clock in a rehearsal, `vouch serve
        /// --rehearsal-clock-ahead-s`).
        now_ms: i64,
    },
    /// Reply to a catalog command.
    Catalog(Result<CatalogOutcome, WireError>),
    /// Reply to a catalog read.
    CatalogView(Result<CatalogView, WireError>),
    /// Reply to a retried catalog command (a request id already applied):
    /// its original outcome; nothing was applied again (issue 8 item 6).
    CatalogReplayed(CatalogOutcome),
    /// Reply to an outbox request.
    Outbox(Result<crate::outbox::OutboxView, WireError>),
    /// The request failed as a whole. After a frame-level error
    /// (`malformed_frame`, `frame_too_large`, `unsupported_version`,
    /// `unauthenticated`) the server closes the connection; after
    /// `batch_too_large`, `bad_request` or `unavailable` it stays open.
    Error(WireError),
}

impl Response {
    /// The header opcode of this response.
    pub fn opcode(&self) -> u16 {
        match self {
            Response::Hello { .. } => 1,
            Response::Reply(_) => 2,
            Response::Batch(_) => 3,
            Response::Info { .. } => 4,
            Response::Error(_) => 5,
            Response::Catalog(_) => 6,
            Response::CatalogView(_) => 7,
            Response::CatalogReplayed(_) => 8,
            Response::Outbox(_) => 9,
        }
    }
}

/// Why a body did not decode.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// postcard could not decode the body.
    #[error("undecodable body: {0}")]
    Body(#[from] postcard::Error),
    /// Bytes follow a complete body.
    #[error("{0} bytes after the end of the body")]
    TrailingBytes(usize),
    /// The header opcode does not match the body.
    #[error("opcode {header} does not match body opcode {body}")]
    Opcode {
        /// Opcode in the header.
        header: u16,
        /// Opcode of the decoded body.
        body: u16,
    },
}

/// Encodes a request body.
pub fn encode_request(r: &Request) -> Vec<u8> {
    postcard::to_allocvec(r).expect("requests always serialize")
}

/// Encodes a response body.
pub fn encode_response(r: &Response) -> Vec<u8> {
    postcard::to_allocvec(r).expect("responses always serialize")
}

/// Decodes a request body and checks it against the header opcode.
///
/// Errors: [`DecodeError`].
pub fn decode_request(opcode: u16, body: &[u8]) -> Result<Request, DecodeError> {
    let (r, rest): (Request, _) = postcard::take_from_bytes(body)?;
    if !rest.is_empty() {
        return Err(DecodeError::TrailingBytes(rest.len()));
    }
    if r.opcode() != opcode {
        return Err(DecodeError::Opcode {
            header: opcode,
            body: r.opcode(),
        });
    }
    Ok(r)
}

/// Decodes a response body and checks it against the header opcode.
///
/// Errors: [`DecodeError`].
pub fn decode_response(opcode: u16, body: &[u8]) -> Result<Response, DecodeError> {
    let r: Response = postcard::from_bytes(body)?;
    if r.opcode() != opcode {
        return Err(DecodeError::Opcode {
            header: opcode,
            body: r.opcode(),
        });
    }
    Ok(r)
}
