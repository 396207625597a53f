//! The async pipelined client. Many requests may be in flight on one
//! connection; a writer task coalesces outgoing frames and a reader task
//! matches responses to callers by correlation id.
//!
//! It never hangs (issue 7 item 6): every request has a deadline
//! ([`ClientOptions::request_timeout_ms`]), and a request past it closes
//! the client (the server is taken for dead); when the connection closes
//! or its peer dies, every pending request and every later one fails at
//! once with [`ClientError::Closed`]; over QUIC a dead server is noticed within
//! `QUIC_IDLE_TIMEOUT_MS`. The client never retries by itself: a caller
//! that retries a mutation after `Closed` or `Timeout` sends it again with
//! the same request id (or order id), which the server applies at most
//! once.

use crate::frame::{take_frame, KIND_RESPONSE};
use crate::messages::{decode_response, Limits, Request, Response, WireError, WireReply};
use crate::target::{Target, Transport};
use crate::PROTOCOL_VERSION;
use bytes::BytesMut;
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::sync::{mpsc, oneshot, Semaphore};
use vouch_engine::command::{Issue, Redeem};
use vouch_engine::Command;

/// How long connecting (and the handshake) may take, in ms.
pub const CONNECT_TIMEOUT_MS: u64 = 10_000;

/// How long a request may wait for its reply by default, in ms. A
/// 10,000-command batch on a busy server replies in well under a second;
/// 30 s leaves room for a long group commit without leaving a POS hanging.
pub const REQUEST_TIMEOUT_MS_DEFAULT: u64 = 30_000;

/// How a client behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientOptions {
    /// Deadline of each request, ms (1..).
    pub request_timeout_ms: u64,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            request_timeout_ms: REQUEST_TIMEOUT_MS_DEFAULT,
        }
    }
}

/// Requests in flight per connection; `call` waits for a reply beyond it.
/// Matches the server's per-connection limit, so the server never has to
/// stop reading from a well-behaved client.
pub const CLIENT_INFLIGHT_REQUESTS_MAX: usize = 1024;

/// Why a call failed as a whole.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Could not connect, or the handshake failed at the transport level.
    #[error("connect: {0}")]
    Connect(String),
    /// The server refused the request or the handshake with an error.
    #[error("server refused: {0}")]
    Refused(WireError),
    /// The connection closed before the response arrived. The request may or
    /// may not have been applied: retry with the same request id.
    #[error("connection closed")]
    Closed,
    /// No reply within the request deadline (ms). The request may or may
    /// not have been applied: retry with the same request id.
    #[error("no reply within {0} ms")]
    Timeout(u64),
    /// The server answered with a response of an unexpected kind.
    #[error("unexpected response: {0}")]
    Unexpected(String),
}

/// Callers waiting for replies, and whether the connection is gone.
#[derive(Default)]
struct Shared {
    pending: Mutex<HashMap<u64, oneshot::Sender<Response>>>,
    closed: std::sync::atomic::AtomicBool,
}

impl Shared {
    /// Marks the connection gone and wakes every waiting caller with
    /// `Closed` (their senders are dropped).
    fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.pending.lock().expect("pending lock").clear();
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }
}

type Pending = Arc<Shared>;

/// A connected, authenticated client. Cheap to share behind an `Arc`; every
/// method may be called concurrently.
pub struct Client {
    tx: mpsc::UnboundedSender<(u64, Request, ())>,
    inflight: Arc<Semaphore>,
    pending: Pending,
    options: ClientOptions,
    next: AtomicU64,
    shards: u32,
    limits: Limits,
    _endpoint: Option<quinn::Endpoint>,
    _conn: Option<quinn::Connection>,
}

impl Client {
    /// Connects to `target`, authenticates with `token`, and for QUIC
    /// trusts the certificates in the PEM file `ca`.
    ///
    /// Errors: [`ClientError::Connect`] for network, TLS or timeout failures
    /// (and a QUIC target without `ca`); [`ClientError::Refused`] when the
    /// server refuses the version or the token.
    pub async fn connect(
        target: &Target,
        token: &str,
        ca: Option<&Path>,
    ) -> Result<Client, ClientError> {
        Self::connect_with(target, token, ca, ClientOptions::default()).await
    }

    /// [`Client::connect`] with `options`.
    ///
    /// Errors: as [`Client::connect`].
    pub async fn connect_with(
        target: &Target,
        token: &str,
        ca: Option<&Path>,
        options: ClientOptions,
    ) -> Result<Client, ClientError> {
        let fut = Self::connect_inner(target, token, ca, options);
        match tokio::time::timeout(Duration::from_millis(CONNECT_TIMEOUT_MS), fut).await {
            Ok(r) => r,
            Err(_) => Err(ClientError::Connect(format!(
                "timed out connecting to {target}"
            ))),
        }
    }

    async fn connect_inner(
        target: &Target,
        token: &str,
        ca: Option<&Path>,
        options: ClientOptions,
    ) -> Result<Client, ClientError> {
        let cerr = |e: &dyn std::fmt::Display| ClientError::Connect(format!("{target}: {e}"));
        match target.transport {
            Transport::Tcp => {
                let s = tokio::net::TcpStream::connect(&target.addr)
                    .await
                    .map_err(|e| cerr(&e))?;
                s.set_nodelay(true).map_err(|e| cerr(&e))?;
                let (r, w) = s.into_split();
                Self::start(r, w, token, None, None, options).await
            }
            Transport::Tcps => {
                let ca = ca.ok_or_else(|| cerr(&"TLS needs a CA file (--ca)"))?;
                let config = crate::tls::tcp_client_config(ca).map_err(|e| cerr(&e))?;
                let name = rustls::pki_types::ServerName::try_from(target.host().to_string())
                    .map_err(|e| cerr(&e))?;
                let s = tokio::net::TcpStream::connect(&target.addr)
                    .await
                    .map_err(|e| cerr(&e))?;
                s.set_nodelay(true).map_err(|e| cerr(&e))?;
                let tls = tokio_rustls::TlsConnector::from(config)
                    .connect(name, s)
                    .await
                    .map_err(|e| cerr(&e))?;
                let (r, w) = tokio::io::split(tls);
                Self::start(r, w, token, None, None, options).await
            }
            Transport::Quic => {
                let ca = ca.ok_or_else(|| cerr(&"QUIC needs a CA file (--ca)"))?;
                let config = crate::tls::client_config(ca).map_err(|e| cerr(&e))?;
                let addr = tokio::net::lookup_host(&target.addr)
                    .await
                    .map_err(|e| cerr(&e))?
                    .next()
                    .ok_or_else(|| cerr(&"address did not resolve"))?;
                let bind: std::net::SocketAddr = if addr.is_ipv4() {
                    "0.0.0.0:0".parse().expect("literal")
                } else {
                    "[::]:0".parse().expect("literal")
                };
                let mut endpoint = quinn::Endpoint::client(bind).map_err(|e| cerr(&e))?;
                endpoint.set_default_client_config(config);
                let host = target.host();
                let conn = endpoint
                    .connect(addr, host)
                    .map_err(|e| cerr(&e))?
                    .await
                    .map_err(|e| cerr(&e))?;
                let (w, r) = conn.open_bi().await.map_err(|e| cerr(&e))?;
                Self::start(r, w, token, Some(endpoint), Some(conn), options).await
            }
        }
    }

    async fn start<R, W>(
        reader: R,
        writer: W,
        token: &str,
        endpoint: Option<quinn::Endpoint>,
        conn: Option<quinn::Connection>,
        options: ClientOptions,
    ) -> Result<Client, ClientError>
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let pending: Pending = Arc::new(Shared::default());
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = pending.clone();
        tokio::spawn(async move {
            crate::io::write_loop(writer, rx, None).await;
            shared.close();
        });
        tokio::spawn(read_loop(reader, pending.clone()));
        let mut client = Client {
            tx,
            pending,
            options,
            inflight: Arc::new(Semaphore::new(CLIENT_INFLIGHT_REQUESTS_MAX)),
            next: AtomicU64::new(1),
            shards: 0,
            limits: Limits {
                frame_bytes_max: 0,
                batch_commands_max: 0,
                inflight_requests_max: 0,
            },
            _endpoint: endpoint,
            _conn: conn,
        };
        let hello = Request::Hello {
            version: PROTOCOL_VERSION,
            token: token.to_string(),
        };
        match client.call(hello).await? {
            Response::Hello { shards, limits, .. } => {
                client.shards = shards;
                client.limits = limits;
                Ok(client)
            }
            Response::Error(e) => Err(ClientError::Refused(e)),
            other => Err(ClientError::Unexpected(format!("{other:?}"))),
        }
    }

    /// The server's engine shard count (audit pages are per shard).
    pub fn shards(&self) -> u32 {
        self.shards
    }

    /// The limits the server announced.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Whether the connection is gone (every call fails at once).
    pub fn is_closed(&self) -> bool {
        self.pending.is_closed()
    }

    /// Sends one request and waits for its response, at most the request
    /// deadline (waiting for an in-flight slot included).
    ///
    /// Errors: [`ClientError::Closed`] when the connection is gone or goes
    /// while waiting; [`ClientError::Timeout`] past the deadline.
    pub async fn call(&self, request: Request) -> Result<Response, ClientError> {
        let ms = self.options.request_timeout_ms;
        let corr = self.next.fetch_add(1, Ordering::Relaxed);
        match tokio::time::timeout(Duration::from_millis(ms), self.call_inner(corr, request)).await
        {
            Ok(r) => r,
            Err(_) => {
                // No reply within the deadline: the connection is taken for
                // dead (a stopped or unreachable server sends nothing, not
                // even a reset), so every pending and later request fails
                // at once instead of waiting out its own deadline.
                self.pending.close();
                Err(ClientError::Timeout(ms))
            }
        }
    }

    async fn call_inner(&self, corr: u64, request: Request) -> Result<Response, ClientError> {
        if self.pending.is_closed() {
            return Err(ClientError::Closed);
        }
        let _permit = self
            .inflight
            .acquire()
            .await
            .map_err(|_| ClientError::Closed)?;
        let (otx, orx) = oneshot::channel();
        self.pending
            .pending
            .lock()
            .expect("pending lock")
            .insert(corr, otx);
        // Closed after the check above: the reader may have cleared the
        // map before this insert, so nobody would ever answer.
        if self.pending.is_closed() || self.tx.send((corr, request, ())).is_err() {
            self.pending
                .pending
                .lock()
                .expect("pending lock")
                .remove(&corr);
            return Err(ClientError::Closed);
        }
        orx.await.map_err(|_| ClientError::Closed)
    }

    /// Runs one engine command; the inner result is the command's own reply.
    ///
    /// Errors: [`ClientError`] when the request failed as a whole.
    pub async fn command(&self, command: Command) -> Result<WireReply, ClientError> {
        match self.call(Request::Command(command)).await? {
            Response::Reply(r) => Ok(r),
            Response::Error(e) => Err(ClientError::Refused(e)),
            other => Err(ClientError::Unexpected(format!("{other:?}"))),
        }
    }

    /// Runs a catalog command as `act_as` (admin token only; None = staff).
    /// The inner result is the command's own reply.
    ///
    /// Errors: [`ClientError`] when the request failed as a whole.
    pub async fn catalog(
        &self,
        request_id: vouch_engine::RequestId,
        act_as: Option<vouch_engine::catalog::Actor>,
        command: vouch_engine::catalog::CatalogCommand,
    ) -> Result<Result<vouch_engine::catalog::CatalogOutcome, WireError>, ClientError> {
        let reply = self.catalog_marked(request_id, act_as, command).await?;
        Ok(reply.map(|(outcome, _replayed)| outcome))
    }

    /// [`Client::catalog`], also telling whether the outcome answers a
    /// retry of a request id already applied (`true`: nothing was applied
    /// again).
    ///
    /// Errors: [`ClientError`] when the request failed as a whole.
    pub async fn catalog_marked(
        &self,
        request_id: vouch_engine::RequestId,
        act_as: Option<vouch_engine::catalog::Actor>,
        command: vouch_engine::catalog::CatalogCommand,
    ) -> Result<Result<(vouch_engine::catalog::CatalogOutcome, bool), WireError>, ClientError> {
        let request = Request::Catalog {
            request_id,
            act_as,
            command,
        };
        match self.call(request).await? {
            Response::Catalog(r) => Ok(r.map(|o| (o, false))),
            Response::CatalogReplayed(o) => Ok(Ok((o, true))),
            Response::Error(e) => Err(ClientError::Refused(e)),
            other => Err(ClientError::Unexpected(format!("{other:?}"))),
        }
    }

    /// Runs a catalog read as `act_as` (admin token only; None = staff, or
    /// the token's own principal). The inner result is the read's reply.
    ///
    /// Errors: [`ClientError`] when the request failed as a whole.
    pub async fn catalog_read(
        &self,
        act_as: Option<vouch_engine::catalog::Actor>,
        query: vouch_engine::catalog::CatalogQuery,
    ) -> Result<Result<vouch_engine::catalog::CatalogView, WireError>, ClientError> {
        match self.call(Request::CatalogRead { act_as, query }).await? {
            Response::CatalogView(r) => Ok(r),
            Response::Error(e) => Err(ClientError::Refused(e)),
            other => Err(ClientError::Unexpected(format!("{other:?}"))),
        }
    }

    /// Issues a batch; replies in request order.
    ///
    /// Errors: [`ClientError`] when the batch failed as a whole.
    pub async fn issue_batch(&self, batch: Vec<Issue>) -> Result<Vec<WireReply>, ClientError> {
        self.batch(Request::IssueBatch(batch)).await
    }

    /// Redeems a batch; replies in request order.
    ///
    /// Errors: [`ClientError`] when the batch failed as a whole.
    pub async fn redeem_batch(&self, batch: Vec<Redeem>) -> Result<Vec<WireReply>, ClientError> {
        self.batch(Request::RedeemBatch(batch)).await
    }

    async fn batch(&self, request: Request) -> Result<Vec<WireReply>, ClientError> {
        match self.call(request).await? {
            Response::Batch(r) => Ok(r),
            Response::Error(e) => Err(ClientError::Refused(e)),
            other => Err(ClientError::Unexpected(format!("{other:?}"))),
        }
    }
}

async fn read_loop<R: AsyncRead + Unpin>(mut r: R, pending: Pending) {
    let mut buf = BytesMut::with_capacity(64 * 1024);
    'outer: loop {
        loop {
            match take_frame(&mut buf) {
                Ok(Some((h, body))) => {
                    if h.kind != KIND_RESPONSE {
                        break 'outer;
                    }
                    let Ok(resp) = decode_response(h.opcode, &body) else {
                        break 'outer;
                    };
                    let waiter = pending
                        .pending
                        .lock()
                        .expect("pending lock")
                        .remove(&h.correlation);
                    match waiter {
                        Some(w) => {
                            let _ = w.send(resp);
                        }
                        None => {
                            // Correlation 0: a connection-level error before close.
                            if let Response::Error(_) = resp {
                                let all: Vec<_> = pending
                                    .pending
                                    .lock()
                                    .expect("pending lock")
                                    .drain()
                                    .collect();
                                for (_, w) in all {
                                    let _ = w.send(resp.clone());
                                }
                            }
                        }
                    }
                }
                Ok(None) => break,
                Err(_) => break 'outer,
            }
        }
        match r.read_buf(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    // Dropping the senders wakes every caller with `Closed`, and every
    // later call fails at once.
    pending.close();
}
