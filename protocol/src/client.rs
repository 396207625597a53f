//! The async pipelined client. Many requests may be in flight on one
//! connection; a writer task coalesces outgoing frames and a reader task
//! matches responses to callers by correlation id.

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
    /// The server answered with a response of an unexpected kind.
    #[error("unexpected response: {0}")]
    Unexpected(String),
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Response>>>>;

/// A connected, authenticated client. Cheap to share behind an `Arc`; every
/// method may be called concurrently.
pub struct Client {
    tx: mpsc::UnboundedSender<(u64, Request, ())>,
    inflight: Arc<Semaphore>,
    pending: Pending,
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
        let fut = Self::connect_inner(target, token, ca);
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
    ) -> Result<Client, ClientError> {
        let cerr = |e: &dyn std::fmt::Display| ClientError::Connect(format!("{target}: {e}"));
        match target.transport {
            Transport::Tcp => {
                let s = tokio::net::TcpStream::connect(&target.addr)
                    .await
                    .map_err(|e| cerr(&e))?;
                s.set_nodelay(true).map_err(|e| cerr(&e))?;
                let (r, w) = s.into_split();
                Self::start(r, w, token, None, None).await
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
                let host = target
                    .addr
                    .rsplit_once(':')
                    .map(|(h, _)| h)
                    .unwrap_or("localhost");
                let host = host.trim_start_matches('[').trim_end_matches(']');
                let conn = endpoint
                    .connect(addr, host)
                    .map_err(|e| cerr(&e))?
                    .await
                    .map_err(|e| cerr(&e))?;
                let (w, r) = conn.open_bi().await.map_err(|e| cerr(&e))?;
                Self::start(r, w, token, Some(endpoint), Some(conn)).await
            }
        }
    }

    async fn start<R, W>(
        reader: R,
        writer: W,
        token: &str,
        endpoint: Option<quinn::Endpoint>,
        conn: Option<quinn::Connection>,
    ) -> Result<Client, ClientError>
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let pending: Pending = Arc::new(Mutex::new(HashMap::new()));
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(crate::io::write_loop(writer, rx));
        tokio::spawn(read_loop(reader, pending.clone()));
        let mut client = Client {
            tx,
            pending,
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

    /// Sends one request and waits for its response.
    ///
    /// Errors: [`ClientError::Closed`] when the connection is gone.
    pub async fn call(&self, request: Request) -> Result<Response, ClientError> {
        let _permit = self
            .inflight
            .acquire()
            .await
            .map_err(|_| ClientError::Closed)?;
        let corr = self.next.fetch_add(1, Ordering::Relaxed);
        let (otx, orx) = oneshot::channel();
        self.pending.lock().expect("pending lock").insert(corr, otx);
        if self.tx.send((corr, request, ())).is_err() {
            self.pending.lock().expect("pending lock").remove(&corr);
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
        let request = Request::Catalog {
            request_id,
            act_as,
            command,
        };
        match self.call(request).await? {
            Response::Catalog(r) => Ok(r),
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
                    let waiter = pending.lock().expect("pending lock").remove(&h.correlation);
                    match waiter {
                        Some(w) => {
                            let _ = w.send(resp);
                        }
                        None => {
                            // Correlation 0: a connection-level error before close.
                            if let Response::Error(_) = resp {
                                let all: Vec<_> =
                                    pending.lock().expect("pending lock").drain().collect();
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
    // Dropping the senders wakes every caller with `Closed`.
    pending.lock().expect("pending lock").clear();
}
