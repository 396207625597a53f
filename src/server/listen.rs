//! Accepting connections: a bounded place to wait for login (per peer
//! address too), TLS on TCP, QUIC connections counted like TCP sockets
//! before any token is shown, and the `recovering` answer while the log
//! replays. Connection slots (with a share kept for staff) are taken at
//! login, in `conn`.

use super::conn::{handle_conn, Peer};
use super::{Ctx, ServeOptions, TcpSecurity, HANDSHAKE_TIMEOUT_MS};
use super::{PREAUTH_CONNECTIONS_MAX, PREAUTH_PER_PEER_MAX};
use crate::data_dir::Paths;
use anyhow::Context;
use bytes::BytesMut;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::OwnedSemaphorePermit;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use vouch_engine::catalog::LockKey;
use vouch_engine::ErrorCode;
use vouch_protocol::{Response, WireError};

/// How long a TLS handshake on TCP may take, in ms.
const TLS_HANDSHAKE_TIMEOUT_MS: u64 = HANDSHAKE_TIMEOUT_MS;

/// Whether TCP on `addr` uses TLS: always with `Tls`, never with `Plain`,
/// and off loopback with `Auto`.
pub(super) fn wants_tls(opts: &ServeOptions, addr: SocketAddr) -> bool {
    match opts.tcp_security {
        TcpSecurity::Tls => true,
        TcpSecurity::Plain => false,
        TcpSecurity::Auto => !addr.ip().is_loopback(),
    }
}

/// The TLS acceptor of the data directory's certificate.
///
/// Errors: the certificate or key cannot be read.
pub(super) fn acceptor(paths: &Paths) -> anyhow::Result<TlsAcceptor> {
    let config =
        vouch_protocol::tls::tcp_server_config(&paths.cert, &paths.key).context("TLS for TCP")?;
    Ok(TlsAcceptor::from(config))
}

/// The TLS acceptor for TCP when TLS is wanted and the certificate
/// already exists (an existing data directory); a new data directory gets
/// its certificate during recovery, and its acceptor after.
pub(super) fn tcp_tls(
    opts: &ServeOptions,
    addr: SocketAddr,
) -> anyhow::Result<Option<TlsAcceptor>> {
    let paths = Paths::new(&opts.data_dir);
    if wants_tls(opts, addr) && paths.cert.exists() && paths.key.exists() {
        return Ok(Some(acceptor(&paths)?));
    }
    Ok(None)
}

/// Writes one error frame, then closes, within the handshake timeout.
async fn answer_and_close<W: AsyncWrite + Unpin>(mut w: W, code: ErrorCode, message: String) {
    let mut buf = BytesMut::new();
    let error = Response::Error(WireError::new(code, message));
    vouch_protocol::io::put_message(&mut buf, 0, &error);
    let write = async {
        let _ = w.write_all(&buf).await;
        let _ = w.shutdown().await;
    };
    let _ = tokio::time::timeout(Duration::from_millis(HANDSHAKE_TIMEOUT_MS), write).await;
}

/// The answer to every TCP connection while the log replays.
pub(super) struct Recovering {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Recovering {
    /// Stops answering (recovery is done); the listener serves on.
    pub(super) async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// Answers every TCP connection at once with a retryable `unavailable`
/// ("recovering") until stopped, so clients never wait on a socket nobody
/// reads (issue 7 item 5). Over TLS the answer follows the TLS handshake.
pub(super) fn answer_recovering(tcp: Arc<TcpListener>, tls: Option<TlsAcceptor>) -> Recovering {
    let (stop, mut stopped) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let mut answers = JoinSet::new();
        loop {
            tokio::select! {
                _ = &mut stopped => break,
                accepted = tcp.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    let tls = tls.clone();
                    answers.spawn(async move {
                        let msg = "recovering: the server is replaying its log; retry shortly".to_string();
                        match tls {
                            Some(tls) => {
                                let t = Duration::from_millis(TLS_HANDSHAKE_TIMEOUT_MS);
                                if let Ok(Ok(s)) = tokio::time::timeout(t, tls.accept(stream)).await {
                                    answer_and_close(s, ErrorCode::Unavailable, msg).await;
                                }
                            }
                            None => answer_and_close(stream, ErrorCode::Unavailable, msg).await,
                        }
                    });
                }
            }
            while answers.try_join_next().is_some() {}
        }
        // Answers already under way are finished, not cut off: a client
        // accepted during recovery always gets its `recovering` frame.
        while answers.join_next().await.is_some() {}
    });
    Recovering { stop, task }
}

/// A place among the connections waiting to log in: the pre-login
/// budget and the peer's share of it. Dropped at login or close.
pub(super) struct PreAuth {
    _permit: OwnedSemaphorePermit,
    peer: LockKey,
    peers: Arc<dashmap::DashMap<LockKey, usize, foldhash::fast::RandomState>>,
}

impl Drop for PreAuth {
    fn drop(&mut self) {
        if let dashmap::Entry::Occupied(mut e) = self.peers.entry(self.peer) {
            *e.get_mut() -= 1;
            if *e.get() == 0 {
                e.remove();
            }
        }
    }
}

/// A place for a new connection of `peer` before it logs in; None when
/// the server or the peer has too many waiting.
fn take_preauth(ctx: &Ctx, peer: LockKey) -> Option<PreAuth> {
    let permit = ctx.preauth.clone().try_acquire_owned().ok()?;
    let mut waiting = ctx.preauth_peers.entry(peer).or_insert(0);
    if *waiting >= PREAUTH_PER_PEER_MAX {
        return None;
    }
    *waiting += 1;
    drop(waiting);
    Some(PreAuth {
        _permit: permit,
        peer,
        peers: ctx.preauth_peers.clone(),
    })
}

fn refusal() -> String {
    format!("server at its limit of connections waiting to log in ({PREAUTH_CONNECTIONS_MAX}, {PREAUTH_PER_PEER_MAX} per address); retry later")
}

fn warn_refused(addr: SocketAddr) {
    if let Some(skipped) = super::REFUSED_LOG.allow() {
        tracing::warn!(peer = %addr, skipped, "too many connections waiting to log in; refusing");
    }
}

/// Accepts TCP connections until shutdown, each on a slot, with TLS when
/// `tls` is set.
pub(super) async fn tcp_loop(tcp: Arc<TcpListener>, tls: Option<TlsAcceptor>, ctx: Arc<Ctx>) {
    let mut conns = JoinSet::new();
    let mut stop = ctx.stop.clone();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            accepted = tcp.accept() => {
                let Ok((stream, addr)) = accepted else { continue };
                let Some(preauth) = take_preauth(&ctx, LockKey::peer(addr.ip())) else {
                    warn_refused(addr);
                    conns.spawn(answer_and_close(stream, ErrorCode::Unavailable, refusal()));
                    continue;
                };
                let _ = stream.set_nodelay(true);
                conns.spawn(serve_tcp(stream, addr, preauth, tls.clone(), ctx.clone()));
            }
        }
        while conns.try_join_next().is_some() {}
    }
    while conns.join_next().await.is_some() {}
}

async fn serve_tcp(
    stream: TcpStream,
    addr: SocketAddr,
    preauth: PreAuth,
    tls: Option<TlsAcceptor>,
    ctx: Arc<Ctx>,
) {
    // The TLS handshake and the Hello share one deadline.
    let deadline = tokio::time::Instant::now() + Duration::from_millis(HANDSHAKE_TIMEOUT_MS);
    let peer = Peer {
        key: LockKey::peer(addr.ip()),
        addr,
        preauth: Some(preauth),
        deadline,
        logged_in: None,
    };
    match tls {
        None => {
            let (r, w) = stream.into_split();
            handle_conn(r, w, ctx, peer).await;
        }
        Some(tls) => match tokio::time::timeout_at(deadline, tls.accept(stream)).await {
            Ok(Ok(s)) => {
                let (r, w) = tokio::io::split(s);
                handle_conn(r, w, ctx, peer).await;
            }
            _ => tracing::debug!(peer = %addr, "TLS handshake failed or timed out"),
        },
    }
}

/// Binds QUIC on `addr` and accepts connections into `listeners`; the
/// endpoint, for closing at shutdown.
///
/// Errors: a bad address, the certificate, or the bind.
pub(super) fn quic(
    addr: &str,
    paths: &Paths,
    ctx: Arc<Ctx>,
    listeners: &mut JoinSet<()>,
) -> anyhow::Result<quinn::Endpoint> {
    let addr: SocketAddr = addr
        .parse()
        .with_context(|| format!("QUIC address {addr}"))?;
    let config = vouch_protocol::tls::server_config(&paths.cert, &paths.key)?;
    let endpoint =
        quinn::Endpoint::server(config, addr).with_context(|| format!("binding QUIC {addr}"))?;
    println!("listening quic {}", endpoint.local_addr()?);
    listeners.spawn(quic_loop(endpoint.clone(), ctx));
    Ok(endpoint)
}

/// Accepts QUIC connections until shutdown. Each takes a connection slot
/// before its handshake (a full server refuses it at once), like a TCP
/// socket.
async fn quic_loop(endpoint: quinn::Endpoint, ctx: Arc<Ctx>) {
    let mut conns = JoinSet::new();
    let mut stop = ctx.stop.clone();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            incoming = endpoint.accept() => {
                let Some(incoming) = incoming else { break };
                let addr = incoming.remote_address();
                let Some(preauth) = take_preauth(&ctx, LockKey::peer(addr.ip())) else {
                    warn_refused(addr);
                    incoming.refuse();
                    continue;
                };
                conns.spawn(serve_quic(incoming, preauth, ctx.clone()));
            }
        }
        while conns.try_join_next().is_some() {}
    }
    while conns.join_next().await.is_some() {}
}

/// Serves one QUIC connection: its streams (at most `QUIC_STREAMS_MAX`
/// at once) are protocol connections, each taking a connection slot when
/// it logs in. The QUIC connection waits among those not logged in until
/// one of its streams logs in, and is closed when none has within the
/// handshake timeout, or when its last stream ends.
async fn serve_quic(incoming: quinn::Incoming, preauth: PreAuth, ctx: Arc<Ctx>) {
    let addr = incoming.remote_address();
    let deadline = tokio::time::Instant::now() + Duration::from_millis(HANDSHAKE_TIMEOUT_MS);
    let Ok(Ok(conn)) = tokio::time::timeout_at(deadline, incoming).await else {
        return;
    };
    let logged_in = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut preauth = Some(preauth);
    let mut streams = JoinSet::new();
    let mut stop = ctx.stop.clone();
    loop {
        if *stop.borrow() {
            break;
        }
        let waiting = preauth.is_some();
        let (w, r) = tokio::select! {
            s = conn.accept_bi() => match s {
                Ok(pair) => pair,
                Err(_) => break,
            },
            _ = stop.changed() => break,
            _ = tokio::time::sleep_until(deadline), if waiting => {
                if logged_in.load(std::sync::atomic::Ordering::Acquire) {
                    preauth = None;
                    continue;
                }
                conn.close(0u32.into(), b"no login within the handshake timeout");
                break;
            }
            Some(_) = streams.join_next(), if !streams.is_empty() => {
                if logged_in.load(std::sync::atomic::Ordering::Acquire) {
                    preauth = None;
                }
                if streams.is_empty() && preauth.is_none() {
                    conn.close(0u32.into(), b"no stream left");
                    break;
                }
                continue;
            }
        };
        let peer = Peer {
            key: LockKey::peer(addr.ip()),
            addr,
            preauth: None,
            deadline: tokio::time::Instant::now() + Duration::from_millis(HANDSHAKE_TIMEOUT_MS),
            logged_in: Some(logged_in.clone()),
        };
        streams.spawn(serve_stream(r, w, ctx.clone(), peer));
    }
    while streams.join_next().await.is_some() {}
}

async fn serve_stream<R, W>(r: R, w: W, ctx: Arc<Ctx>, peer: Peer)
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    handle_conn(r, w, ctx, peer).await;
}
