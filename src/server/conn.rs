//! One connection (a TCP socket, TLS or plain, or a QUIC stream): the
//! handshake, frame decoding, the in-flight budgets, and every timeout
//! that keeps a client from holding the server's memory or slots (issue 7
//! item 5).

use super::auth::{authorize, login, Principal};
use super::route::{dispatch, flush, Requester};
use super::{limits, now_ms, Ctx, PrincipalBudget};
use crate::pipeline::{CatalogOp, ConnTx, Op, Origin, Permit};
use bytes::BytesMut;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use vouch_engine::catalog::LockKey;
use vouch_engine::{ErrorCode, Rejection};
use vouch_protocol::frame::{take_frame_limited, FrameError, FRAME_BYTES_MAX, HELLO_BYTES_MAX};
use vouch_protocol::frame::{Header, HEADER_BYTES, KIND_REQUEST};
use vouch_protocol::messages::decode_request;
use vouch_protocol::{Request, Response, WireError, PROTOCOL_VERSION};

/// In-flight budget of one connection, in request units (one per request
/// plus one per 64 KiB it may hold): 1,024 single-command requests, or
/// about 64 MiB of large frames. Beyond it the server stops reading.
pub const CONN_INFLIGHT_UNITS_MAX: u32 = 1_024;

/// In-flight budget of one tenant principal across all its connections,
/// in request units: 4,096 requests or about 256 MiB.
pub const PRINCIPAL_INFLIGHT_UNITS_MAX: u32 = 4_096;

/// In-flight budget of the whole server, in request units: 16,384
/// requests or about 1 GiB of requests and replies.
pub const SERVER_INFLIGHT_UNITS_MAX: u32 = 16_384;

/// Bytes one request unit stands for.
pub const REQUEST_UNIT_BYTES: u64 = 64 * 1024;

/// Bytes a reply may take per command of a batch, for the budget: an
/// issue reply with its code and window is under 64 bytes encoded.
pub const REPLY_BYTES_PER_COMMAND: u64 = 64;

/// How long a started frame may take to arrive whole, in ms; then the
/// connection is closed (slowloris, a declared 8 MiB frame never sent).
pub const FRAME_READ_TIMEOUT_MS: u64 = 10_000;

/// How long a logged-in connection with nothing in flight may stay
/// silent, in ms (default; `vouch serve --idle-timeout-s`). Clients
/// reconnect when they need to.
pub const IDLE_TIMEOUT_MS_DEFAULT: u64 = 300_000;

/// How long a write to the peer may make no progress, in ms; then the
/// connection is closed and its queued replies and permits dropped (a
/// client that does not read its replies).
pub const WRITE_STALL_TIMEOUT_MS: u64 = 10_000;

/// Buffer kept for reading; a larger one left by a large frame is
/// released once the frame is consumed.
const READ_BUFFER_BYTES: usize = 64 * 1024;

/// The request units of a frame of `body_bytes` carrying `commands`
/// commands: one, plus one per `REQUEST_UNIT_BYTES` of the request and its
/// replies. At most 1 + (8 MiB + 10,000 × 64 B) / 64 KiB = 138.
pub fn request_units(body_bytes: u32, commands: usize) -> u32 {
    let bytes = u64::from(body_bytes) + commands as u64 * REPLY_BYTES_PER_COMMAND;
    1 + (bytes / REQUEST_UNIT_BYTES) as u32
}

/// Where a connection came from.
pub(super) struct Peer {
    /// The transport peer's lockout key.
    pub key: LockKey,
    /// The peer's address, for the log.
    pub addr: std::net::SocketAddr,
    /// Its place among the connections waiting to log in (TCP); given up
    /// at login.
    pub preauth: Option<super::listen::PreAuth>,
    /// When the Hello must have arrived (the TLS handshake included).
    pub deadline: Instant,
    /// Set at login, for the QUIC connection this stream belongs to.
    pub logged_in: Option<Arc<std::sync::atomic::AtomicBool>>,
}

/// Why a connection ends early; sent as its last frame (correlation 0
/// unless a request caused it).
struct Close(u64, WireError);

impl Close {
    fn new(corr: u64, code: ErrorCode, message: impl Into<String>) -> Close {
        Close(corr, WireError::new(code, message))
    }
}

struct Conn {
    ctx: Arc<Ctx>,
    tx: ConnTx,
    peer: Peer,
    principal: Option<Principal>,
    budget: Arc<Semaphore>,
    principal_budget: Option<Arc<PrincipalBudget>>,
    _principal_slot: Option<OwnedSemaphorePermit>,
    /// The connection slot taken at login.
    _slot: Option<OwnedSemaphorePermit>,
    /// The budget a started frame's declared body holds while it arrives,
    /// so a partial frame is paid for like a whole one.
    partial: Option<Permit>,
    // Ops decoded from what one read delivered, per shard: sent as one
    // queue message per shard, so pipelined single-command frames cost one
    // channel send per read instead of one per command.
    pending: Vec<Vec<Op>>,
    pending_catalog: Vec<CatalogOp>,
}

impl Conn {
    /// A connection not logged in yet, replying through `tx`.
    fn new(ctx: Arc<Ctx>, tx: ConnTx, peer: Peer) -> Conn {
        Conn {
            pending: (0..ctx.shards).map(|_| Vec::new()).collect(),
            pending_catalog: Vec::new(),
            ctx,
            tx,
            peer,
            principal: None,
            budget: Arc::new(Semaphore::new(CONN_INFLIGHT_UNITS_MAX as usize)),
            principal_budget: None,
            _principal_slot: None,
            _slot: None,
            partial: None,
        }
    }
}

/// Serves one connection until it closes.
pub(super) async fn handle_conn<R, W>(mut reader: R, writer: W, ctx: Arc<Ctx>, peer: Peer)
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (tx, rx) = mpsc::unbounded_channel();
    let stall = Some(Duration::from_millis(WRITE_STALL_TIMEOUT_MS));
    let mut writer_task = tokio::spawn(vouch_protocol::io::write_loop(writer, rx, stall));
    let handshake_deadline = peer.deadline;
    let idle = Duration::from_millis(ctx.idle_timeout_ms);
    let mut conn = Conn::new(ctx, tx, peer);
    let mut buf = BytesMut::with_capacity(READ_BUFFER_BYTES);
    let mut stop = conn.ctx.stop.clone();
    let mut revoked = conn.ctx.revoked.subscribe();
    let mut last_activity = Instant::now();
    let mut partial_since: Option<Instant> = None;
    let mut writer_done = false;
    // A revoked token's connection reads no more, and closes once the
    // replies it is owed (its own revocation's among them) are written.
    let mut revoked_close: Option<Close> = None;
    let closed = loop {
        if revoked_close.is_some() && conn.idle() {
            break revoked_close;
        }
        if revoked_close.is_none() {
            if let Err(close) = conn.take_frames(&mut buf).await {
                break Some(close);
            }
        }
        if !conn.flush().await {
            break None;
        }
        if buf.is_empty() {
            partial_since = None;
            if buf.capacity() > 2 * READ_BUFFER_BYTES {
                buf = BytesMut::with_capacity(READ_BUFFER_BYTES);
            }
        } else {
            partial_since.get_or_insert_with(Instant::now);
        }
        if *stop.borrow() {
            break None;
        }
        let authenticated = conn.principal.is_some();
        let frame_deadline =
            partial_since.map(|t| t + Duration::from_millis(FRAME_READ_TIMEOUT_MS));
        let idle_deadline = last_activity + idle;
        tokio::select! {
            read = reader.read_buf(&mut buf), if revoked_close.is_none() => match read {
                Ok(0) | Err(_) => break None,
                Ok(_) => last_activity = Instant::now(),
            },
            _ = stop.changed() => break None,
            _ = &mut writer_task => {
                writer_done = true;
                tracing::debug!(peer = %conn.peer.addr, "the peer stopped reading or is gone");
                break None;
            }
            _ = revoked.changed(), if revoked_close.is_none() => {
                if let Err(close) = conn.check_token() {
                    revoked_close = Some(close);
                }
            }
            _ = tokio::time::sleep(Duration::from_millis(REVOKED_DRAIN_POLL_MS)), if revoked_close.is_some() => {}
            _ = tokio::time::sleep_until(handshake_deadline), if !authenticated => {
                break Some(Close::new(0, ErrorCode::Unauthenticated, "no Hello within the handshake timeout"));
            }
            _ = sleep_until_some(frame_deadline), if frame_deadline.is_some() => {
                let msg = format!("a frame did not arrive whole within {} s", FRAME_READ_TIMEOUT_MS / 1000);
                break Some(Close::new(0, ErrorCode::MalformedFrame, msg));
            }
            _ = tokio::time::sleep_until(idle_deadline), if authenticated => {
                // Waiting for its replies is not idle: look again later.
                if !conn.idle() {
                    last_activity = Instant::now();
                    continue;
                }
                let msg = format!("idle for {} s; reconnect when needed", idle.as_secs());
                break Some(Close::new(0, ErrorCode::Unavailable, msg));
            }
        }
    };
    if let Some(Close(corr, error)) = closed {
        tracing::debug!(peer = %conn.peer.addr, %error, "closing connection");
        let _ = conn.tx.send((corr, Response::Error(error), None));
    }
    // Requests accepted before the connection ended are still applied.
    let _ = conn.flush().await;
    drop(conn);
    if !writer_done {
        let _ = writer_task.await;
    }
}

async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// How often a revoked token's connection looks whether its last replies
/// are written, in ms.
const REVOKED_DRAIN_POLL_MS: u64 = 5;

impl Conn {
    /// Whether nothing is in flight on this connection.
    fn idle(&self) -> bool {
        self.budget.available_permits() == CONN_INFLIGHT_UNITS_MAX as usize
    }

    async fn flush(&mut self) -> bool {
        flush(&self.ctx, &mut self.pending, &mut self.pending_catalog).await
    }

    /// Closes the connection when its token was revoked.
    fn check_token(&self) -> Result<(), Close> {
        match self.principal {
            Some(Principal::Token(_, hash)) if !self.ctx.tokens.contains_key(&hash) => {
                Err(Close::new(0, ErrorCode::Unauthenticated, "token revoked"))
            }
            _ => Ok(()),
        }
    }

    /// Handles every whole frame in `buf`.
    async fn take_frames(&mut self, buf: &mut BytesMut) -> Result<(), Close> {
        loop {
            let limit = if self.principal.is_some() {
                FRAME_BYTES_MAX
            } else {
                HELLO_BYTES_MAX
            };
            let (header, body) = match take_frame_limited(buf, limit) {
                Ok(Some(f)) => {
                    self.partial = None;
                    f
                }
                Ok(None) => return self.hold_partial(buf).await,
                Err(e) => {
                    let code = match e {
                        FrameError::TooLarge(_) => ErrorCode::FrameTooLarge,
                        _ => ErrorCode::MalformedFrame,
                    };
                    return Err(Close::new(0, code, e.to_string()));
                }
            };
            let request = decode(&header, &body)?;
            match self.principal {
                None => self.hello(header.correlation, request)?,
                Some(principal) => {
                    self.request(principal, &header, request).await?;
                }
            }
        }
    }

    /// Charges a started frame's declared body to the budgets while it
    /// arrives (once per frame); meanwhile a budget that is short stops
    /// the reading.
    async fn hold_partial(&mut self, buf: &BytesMut) -> Result<(), Close> {
        if self.principal.is_none() || self.partial.is_some() || buf.len() < HEADER_BYTES {
            return Ok(());
        }
        let declared = u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
        match self.acquire(request_units(declared, 0)).await {
            Some(permit) => {
                self.partial = Some(permit);
                Ok(())
            }
            None => Err(Close::new(
                0,
                ErrorCode::Unavailable,
                "server is shutting down",
            )),
        }
    }

    /// The handshake: the token names the principal; unknown tokens are
    /// counted against the peer address and logged; a locked-out tenant,
    /// a tenant on a staff slot, or one over its connection cap is refused.
    fn hello(&mut self, corr: u64, request: Request) -> Result<(), Close> {
        let Request::Hello { version, token } = request else {
            return Err(Close::new(
                corr,
                ErrorCode::Unauthenticated,
                "the first frame must be Hello",
            ));
        };
        if version != PROTOCOL_VERSION {
            let msg = format!(
                "protocol version {version} not supported; this server speaks {PROTOCOL_VERSION}"
            );
            return Err(Close::new(corr, ErrorCode::UnsupportedVersion, msg));
        }
        let now = now_ms();
        let ctx = self.ctx.clone();
        let principal = login(&token, &ctx.admin_token, &ctx.tokens);
        // A locked-out peer learns nothing about the token it sent: every
        // login but staff's is refused alike.
        if !principal.is_some_and(|p| p.is_staff()) {
            if let Some(until) = ctx.guard.locked_until(now, &[self.peer.key]) {
                return Err(locked_out(corr, now, until));
            }
        }
        let Some(principal) = principal else {
            if let Some(skipped) = super::LOGIN_LOG.allow() {
                tracing::warn!(peer = %self.peer.addr, skipped, "login refused: unknown token");
            }
            ctx.guard.failure(now, &[self.peer.key]);
            return Err(Close::new(
                corr,
                ErrorCode::Unauthenticated,
                "unknown token",
            ));
        };
        if !principal.is_staff() {
            self.admit_tenant(corr, now, principal)?;
        }
        self._slot = Some(self.take_slot(corr, principal.is_staff())?);
        self.peer.preauth = None;
        if let Some(flag) = &self.peer.logged_in {
            flag.store(true, Ordering::Release);
        }
        self.principal = Some(principal);
        let hello = Response::Hello {
            version: PROTOCOL_VERSION,
            limits: limits(),
            shards: ctx.shards,
        };
        let _ = self.tx.send((corr, hello, None));
        Ok(())
    }

    /// The checks of a tenant's login: not locked out, under its
    /// principal's connection cap.
    fn admit_tenant(&mut self, corr: u64, now: i64, principal: Principal) -> Result<(), Close> {
        let actor = principal.actor().expect("a tenant has an actor");
        let keys = [self.peer.key, LockKey::Principal(actor)];
        if let Some(until) = self.ctx.guard.locked_until(now, &keys) {
            return Err(locked_out(corr, now, until));
        }
        let budget = self.ctx.principal_budget(actor);
        let Ok(slot) = budget.conns.clone().try_acquire_owned() else {
            let msg = format!(
                "this credential already has {} open connections",
                super::PRINCIPAL_CONNECTIONS_MAX
            );
            return Err(Close::new(corr, ErrorCode::Unavailable, msg));
        };
        self._principal_slot = Some(slot);
        self.principal_budget = Some(budget);
        Ok(())
    }

    /// A connection slot at login: a general one, or for staff one of
    /// those kept for them.
    fn take_slot(&self, corr: u64, staff: bool) -> Result<OwnedSemaphorePermit, Close> {
        let general = self.ctx.conns.clone().try_acquire_owned();
        match general {
            Ok(slot) => Ok(slot),
            Err(_) if staff => self
                .ctx
                .staff_conns
                .clone()
                .try_acquire_owned()
                .map_err(|_| {
                    Close::new(
                        corr,
                        ErrorCode::Unavailable,
                        "every connection slot, staff's included, is taken; retry later",
                    )
                }),
            Err(_) => {
                if let Some(skipped) = super::REFUSED_LOG.allow() {
                    tracing::warn!(peer = %self.peer.addr, skipped, "connection limit reached; refusing a login");
                }
                let msg = format!(
                    "server at its connection limit ({}; the rest are kept for staff); retry later",
                    super::CONNECTIONS_MAX
                );
                Err(Close::new(corr, ErrorCode::Unavailable, msg))
            }
        }
    }

    /// One request after the handshake: it takes its permit first, so
    /// every reply — refusals too — holds one until it is written.
    async fn request(
        &mut self,
        principal: Principal,
        header: &Header,
        mut request: Request,
    ) -> Result<(), Close> {
        let corr = header.correlation;
        let units = match &request {
            Request::IssueBatch(items) => request_units(header.body_bytes, items.len()),
            Request::RedeemBatch(items) => request_units(header.body_bytes, items.len()),
            // A catalog page may be as large as a frame.
            Request::CatalogRead { .. } | Request::Outbox(_) => request_units(FRAME_BYTES_MAX, 0),
            _ => request_units(header.body_bytes, 1),
        };
        let Some(permit) = self.acquire(units).await else {
            return Err(Close::new(
                0,
                ErrorCode::Unavailable,
                "server is shutting down",
            ));
        };
        let refuse = |tx: &ConnTx, error: WireError, permit: Permit| {
            let _ = tx.send((corr, Response::Error(error), Some(permit)));
        };
        if self.ctx.draining.load(Ordering::Relaxed) {
            let error = WireError::new(ErrorCode::Unavailable, "server is shutting down");
            refuse(&self.tx, error, permit);
            return Ok(());
        }
        self.check_token()?;
        if matches!(request, Request::Hello { .. }) {
            let msg = "this connection is logged in already; a connection logs in once";
            refuse(&self.tx, WireError::new(ErrorCode::BadRequest, msg), permit);
            return Ok(());
        }
        if let Err(e) = authorize(principal, &mut request) {
            refuse(&self.tx, e, permit);
            return Ok(());
        }
        // The admin token is no registered token: its hash may not be
        // registered for a principal (it would be listed and "revoked" in
        // vain while the admin token kept working).
        if let Request::Catalog {
            command: vouch_engine::catalog::CatalogCommand::IssueToken { token_hash, .. },
            ..
        } = &request
        {
            if *token_hash == self.ctx.admin_token_hash {
                let msg = "that token is already in use (it is the admin token)";
                refuse(
                    &self.tx,
                    WireError::new(ErrorCode::AlreadyExists, msg),
                    permit,
                );
                return Ok(());
            }
        }
        let origin = Origin {
            caller: principal.caller(),
            actor: principal.actor(),
            peer: self.peer.key,
        };
        let from = Requester {
            corr,
            origin,
            tx: &self.tx,
        };
        dispatch(
            &self.ctx,
            request,
            from,
            permit,
            &mut self.pending,
            &mut self.pending_catalog,
        );
        Ok(())
    }

    /// Takes `units` of the connection's, the principal's and the
    /// server's budgets. When one is short, what is pending is handed on
    /// first (its replies free budget), then it waits: meanwhile nothing
    /// more is read from this connection. None when the server stops.
    async fn acquire(&mut self, units: u32) -> Option<Permit> {
        let principal = self.principal_budget.as_ref().map(|b| b.units.clone());
        let server = self.ctx.inflight.clone();
        let quick = (
            self.budget.clone().try_acquire_many_owned(units),
            principal
                .clone()
                .map(|p| p.try_acquire_many_owned(units))
                .transpose(),
            server.clone().try_acquire_many_owned(units),
        );
        if let (Ok(conn), Ok(principal), Ok(server)) = quick {
            return Some(Permit {
                conn,
                principal,
                server,
            });
        }
        if !self.flush().await {
            return None;
        }
        let conn = self.budget.clone().acquire_many_owned(units).await.ok()?;
        let principal = match principal {
            Some(p) => Some(p.acquire_many_owned(units).await.ok()?),
            None => None,
        };
        let server = server.acquire_many_owned(units).await.ok()?;
        Some(Permit {
            conn,
            principal,
            server,
        })
    }
}

/// The `locked_out` close of a login, until `until` (unix ms).
fn locked_out(corr: u64, now: i64, until: i64) -> Close {
    let r = Rejection::locked_out((until - now).max(1) as u64);
    Close(corr, WireError::from(&r))
}

/// Checks a frame's kind and version and decodes its request.
fn decode(header: &Header, body: &[u8]) -> Result<Request, Close> {
    let corr = header.correlation;
    if header.kind != KIND_REQUEST {
        return Err(Close::new(
            corr,
            ErrorCode::MalformedFrame,
            "expected a request frame",
        ));
    }
    if header.version != PROTOCOL_VERSION {
        let msg = format!(
            "protocol version {} not supported; this server speaks {PROTOCOL_VERSION}",
            header.version
        );
        return Err(Close::new(corr, ErrorCode::UnsupportedVersion, msg));
    }
    decode_request(header.opcode, body)
        .map_err(|e| Close::new(corr, ErrorCode::MalformedFrame, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inv_7_request_units_grow_with_bytes_and_fit_every_budget() {
        assert_eq!(request_units(40, 1), 1);
        assert_eq!(request_units(64 * 1024, 1), 2);
        let largest = request_units(FRAME_BYTES_MAX, 10_000);
        assert_eq!(largest, 1 + ((8 << 20) + 640_000) / (64 * 1024));
        assert!(largest < CONN_INFLIGHT_UNITS_MAX);
    }
}
