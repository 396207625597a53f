//! The server: TCP and QUIC listeners, one task per connection, the
//! handshake, routing to shard workers, and graceful shutdown.

use crate::data_dir;
use crate::data_dir::CatalogEntry;
use crate::pipeline::{self, Gather, Op, ReplyTo, Stats};
use crate::pipeline::{CatalogOp, CatalogWork, ConnTx, TokenMap};
use anyhow::Context;
use bytes::BytesMut;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use vouch_engine::catalog::Actor;
use vouch_engine::engine::route;
use vouch_engine::RequestId;
use vouch_engine::{Command, EngineConfig, ErrorCode};
use vouch_protocol::frame::{
    take_frame_limited, BATCH_COMMANDS_MAX, FRAME_BYTES_MAX, HELLO_BYTES_MAX, KIND_REQUEST,
};
use vouch_protocol::messages::{decode_request, Limits};
use vouch_protocol::{Request, Response, WireError, PROTOCOL_VERSION};
use vouch_storage::group_commit::GroupCommit;

/// Most open connections (TCP plus QUIC streams); more are closed at once.
pub const CONNECTIONS_MAX: usize = 4_096;

/// Most requests in flight per connection; the server stops reading from a
/// connection that has this many replies outstanding.
pub const INFLIGHT_REQUESTS_MAX: usize = 1_024;

/// How long a new connection may take to send its Hello, in ms; then it
/// is closed, so idle sockets cannot hold connection slots.
pub const HANDSHAKE_TIMEOUT_MS: u64 = 5_000;

/// How long shutdown waits for connections to finish their in-flight
/// requests, in ms. Every acknowledged write is durable either way.
pub const SHUTDOWN_DRAIN_MS: u64 = 10_000;

/// How `vouch serve` runs.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// Data directory.
    pub data_dir: PathBuf,
    /// TCP listen address, e.g. `127.0.0.1:7700` (port 0 picks one).
    pub listen_tcp: String,
    /// QUIC listen address; None disables QUIC.
    pub listen_quic: Option<String>,
    /// Settings for a new data directory (ignored for an existing one).
    pub new_config: EngineConfig,
}

struct Ctx {
    shard_txs: Vec<mpsc::Sender<Vec<Op>>>,
    catalog_tx: mpsc::Sender<Vec<CatalogOp>>,
    /// SHA-256 of each registered token → its principal; kept current by
    /// the catalog worker after each durable batch.
    tokens: Arc<TokenMap>,
    /// Request id → the shard of its first use (see `Engine`'s docs).
    claims: Arc<pipeline::Claims>,
    shards: u32,
    admin_token: String,
    draining: AtomicBool,
    conns: Arc<Semaphore>,
    stop: tokio::sync::watch::Receiver<bool>,
}

/// Queues an error response that holds no in-flight permit.
fn send_error(tx: &ConnTx, corr: u64, code: ErrorCode, message: impl Into<String>) {
    send(tx, (corr, Response::Error(WireError::new(code, message))));
}

/// Queues a response that holds no in-flight permit.
fn send(tx: &ConnTx, (corr, response): (u64, Response)) {
    let _ = tx.send((corr, response, None));
}

fn limits() -> Limits {
    Limits {
        frame_bytes_max: FRAME_BYTES_MAX,
        batch_commands_max: BATCH_COMMANDS_MAX as u32,
        inflight_requests_max: INFLIGHT_REQUESTS_MAX as u32,
    }
}

/// Runs the server until SIGINT or SIGTERM, then drains and exits.
///
/// On start it prints one line per listener, `listening tcp ADDR` and
/// `listening quic ADDR`, then `ready`, to standard output (scripts and
/// tests wait for `ready`).
///
/// Errors: the data directory cannot be opened or recovered; an address
/// cannot be bound; the storage failed during shutdown.
pub async fn serve(opts: ServeOptions) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    // Bind first: a busy port fails at once, not after a long recovery.
    let tcp = tokio::net::TcpListener::bind(&opts.listen_tcp)
        .await
        .with_context(|| format!("binding TCP {}", opts.listen_tcp))?;
    let opened = data_dir::open(&opts.data_dir, &opts.new_config)?;
    let paths = data_dir::Paths::new(&opts.data_dir);
    if opened.created {
        println!("created data directory {}", opts.data_dir.display());
    } else if opened.config != opts.new_config {
        println!(
            "note: {} keeps the settings it was created with ({} shards, time zone {}, reversal window {} s); --shards, --time-zone and --reversal-window-s apply to new data directories only",
            opts.data_dir.display(),
            opened.config.shards,
            opened.config.time_zone,
            opened.config.reversal_window_ms / 1000
        );
    }
    println!("admin token: {}", paths.admin_token.display());
    println!("development certificate: {}", paths.cert.display());
    let vouchers: usize = opened.shards.iter().map(|s| s.voucher_count()).sum();
    println!(
        "recovered {} log records, {} vouchers in {} ms",
        opened.records_replayed,
        vouchers,
        started.elapsed().as_millis()
    );
    let gc = GroupCommit::start(opened.storage, |e| {
        eprintln!("FATAL: storage write failed, stopping without acknowledging: {e}");
        std::process::exit(70);
    });
    let stats = Arc::new(Stats::default());
    let claims: Arc<pipeline::Claims> = Arc::new(
        opened
            .claims
            .into_iter()
            .map(|(rid, shard)| (rid, pipeline::Claim { shard, inflight: 0 }))
            .collect(),
    );
    let mut shard_txs = Vec::new();
    let mut workers = Vec::new();
    let mut fact_txs = Vec::new();
    for shard in opened.shards {
        let (tx, rx) = mpsc::channel(pipeline::SHARD_QUEUE_MESSAGES_MAX);
        shard_txs.push(tx);
        // Catalog facts: a few per catalog change, so unbounded is safe.
        let (fact_tx, fact_rx) = crossbeam_channel::unbounded();
        fact_txs.push(fact_tx);
        let commit = gc.sender();
        let stats = stats.clone();
        let claims = claims.clone();
        workers.push(
            std::thread::Builder::new()
                .name(format!("vouch-shard-{}", shard.index()))
                .spawn(move || pipeline::run_worker(shard, rx, fact_rx, commit, stats, claims))?,
        );
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (catalog_tx, catalog_rx) = mpsc::channel(pipeline::SHARD_QUEUE_MESSAGES_MAX);
    let tokens: Arc<TokenMap> = Arc::new(opened.catalog.tokens().map(|(h, a)| (*h, *a)).collect());
    {
        let commit = gc.sender();
        let catalog = opened.catalog;
        let tokens = tokens.clone();
        workers.push(
            std::thread::Builder::new()
                .name("vouch-catalog".into())
                .spawn(move || {
                    pipeline::run_catalog_worker(catalog, catalog_rx, commit, tokens, fact_txs)
                })?,
        );
    }
    let ctx = Arc::new(Ctx {
        shard_txs,
        catalog_tx,
        tokens,
        claims,
        shards: opened.config.shards,
        admin_token: opened.admin_token,
        draining: AtomicBool::new(false),
        conns: Arc::new(Semaphore::new(CONNECTIONS_MAX)),
        stop: stop_rx.clone(),
    });
    println!("listening tcp {}", tcp.local_addr()?);
    let mut listeners = JoinSet::new();
    {
        let ctx = ctx.clone();
        let mut stop = stop_rx.clone();
        listeners.spawn(async move {
            let mut conns = JoinSet::new();
            loop {
                tokio::select! {
                    _ = stop.changed() => break,
                    accepted = tcp.accept() => {
                        let Ok((stream, peer)) = accepted else { continue };
                        let Ok(permit) = ctx.conns.clone().try_acquire_owned() else {
                            tracing::warn!(%peer, "connection limit {CONNECTIONS_MAX} reached; refusing");
                            let (_, w) = stream.into_split();
                            conns.spawn(refuse_connection(w));
                            continue;
                        };
                        let _ = stream.set_nodelay(true);
                        let ctx = ctx.clone();
                        conns.spawn(async move {
                            let (r, w) = stream.into_split();
                            handle_conn(r, w, ctx).await;
                            drop(permit);
                        });
                    }
                }
                while conns.try_join_next().is_some() {}
            }
            drain(conns).await;
        });
    }
    let mut quic_endpoint = None;
    if let Some(addr) = &opts.listen_quic {
        let addr: SocketAddr = addr
            .parse()
            .with_context(|| format!("QUIC address {addr}"))?;
        let config = vouch_protocol::tls::server_config(&paths.cert, &paths.key)?;
        let endpoint = quinn::Endpoint::server(config, addr)
            .with_context(|| format!("binding QUIC {addr}"))?;
        println!("listening quic {}", endpoint.local_addr()?);
        quic_endpoint = Some(endpoint.clone());
        let ctx = ctx.clone();
        let mut stop = stop_rx.clone();
        listeners.spawn(async move {
            let mut conns = JoinSet::new();
            loop {
                tokio::select! {
                    _ = stop.changed() => break,
                    incoming = endpoint.accept() => {
                        let Some(incoming) = incoming else { break };
                        let ctx = ctx.clone();
                        conns.spawn(async move {
                            let Ok(conn) = incoming.await else { return };
                            let mut streams = JoinSet::new();
                            loop {
                                let mut stop = ctx.stop.clone();
                                if *stop.borrow() {
                                    break;
                                }
                                let (w, r) = tokio::select! {
                                    s = conn.accept_bi() => match s {
                                        Ok(pair) => pair,
                                        Err(_) => break,
                                    },
                                    _ = stop.changed() => break,
                                };
                                let Ok(permit) = ctx.conns.clone().try_acquire_owned() else {
                                    tracing::warn!("connection limit {CONNECTIONS_MAX} reached; refusing a QUIC stream");
                                    streams.spawn(refuse_connection(w));
                                    continue;
                                };
                                let ctx = ctx.clone();
                                streams.spawn(async move {
                                    handle_conn(r, w, ctx).await;
                                    drop(permit);
                                });
                            }
                            drain(streams).await;
                        });
                    }
                }
                while conns.try_join_next().is_some() {}
            }
            drain(conns).await;
        });
    }
    listeners.spawn(tick_driver(ctx.clone(), stop_rx.clone()));
    println!("ready");
    wait_for_signal().await;
    println!("shutting down: draining connections");
    ctx.draining.store(true, Ordering::SeqCst);
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(Duration::from_millis(SHUTDOWN_DRAIN_MS), async {
        while listeners.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        println!("drain timed out; closing remaining connections");
        listeners.abort_all();
        while listeners.join_next().await.is_some() {}
    }
    if let Some(ep) = quic_endpoint {
        ep.close(0u32.into(), b"shutdown");
    }
    // Closing the shard queues ends the workers after their last batch.
    drop(ctx);
    for w in workers {
        let _ = w.join();
    }
    gc.shutdown().context("final sync")?;
    println!("stopped cleanly");
    Ok(())
}

/// How often the server sends the catalog its time tick (PUB-3 automatic
/// delisting), in ms.
pub const CATALOG_TICK_MS: u64 = 60_000;

/// Request-id source of the server's own ticks; serials are the tick's
/// unix ms, unique because ticks are a minute apart.
pub const TICK_REQUEST_SOURCE: u64 = u64::MAX;

/// Sends the catalog a `Tick` as the system every `CATALOG_TICK_MS` until
/// shutdown. The engine never reads the clock: this is its time input.
async fn tick_driver(ctx: Arc<Ctx>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut every = tokio::time::interval(Duration::from_millis(CATALOG_TICK_MS));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = stop.changed() => return,
        }
        let serial = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        // Nobody waits for the reply; delistings are logged as events.
        let (tx, _rx) = mpsc::unbounded_channel();
        let op = CatalogOp {
            work: CatalogWork::Command(CatalogEntry {
                actor: Actor::System,
                request_id: RequestId {
                    source: TICK_REQUEST_SOURCE,
                    serial,
                },
                command: vouch_engine::catalog::CatalogCommand::Tick,
            }),
            tx,
            corr: 0,
            permit: None,
        };
        if ctx.catalog_tx.send(vec![op]).await.is_err() {
            return;
        }
    }
}

/// Tells a peer over the connection limit why it is closed, then closes.
async fn refuse_connection<W: AsyncWrite + Unpin>(mut w: W) {
    use tokio::io::AsyncWriteExt;
    let mut buf = BytesMut::new();
    let msg = format!("server at its connection limit ({CONNECTIONS_MAX}); retry later");
    vouch_protocol::io::put_message(
        &mut buf,
        0,
        &Response::Error(WireError::new(ErrorCode::Unavailable, msg)),
    );
    let write = async {
        let _ = w.write_all(&buf).await;
        let _ = w.shutdown().await;
    };
    let _ = tokio::time::timeout(Duration::from_millis(HANDSHAKE_TIMEOUT_MS), write).await;
}

async fn drain(mut set: JoinSet<()>) {
    while set.join_next().await.is_some() {}
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Who a connection authenticated as.
#[derive(Clone, Copy)]
enum Principal {
    /// The admin token: every command, and catalog commands for anyone.
    Admin,
    /// A registered token: its principal and the token's hash.
    Token(Actor, [u8; 32]),
}

/// The request-id source of a registered token: the first 8 bytes of its
/// SHA-256, big-endian. Every request id a principal's token sends must use
/// it, so no tenant can take, block or probe another's request ids
/// (invariant 4 per principal); the catalog refuses a token whose source is
/// already taken.
pub fn token_source(hash: &[u8; 32]) -> u64 {
    vouch_engine::catalog::token_source(hash)
}

/// SHA-256 of a token, as registered by `IssueToken`.
pub fn token_hash(token: &str) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(token.as_bytes()).into()
}

/// The role matrix for requests (issue 3): which principal may send what,
/// binding the POS, verifier and seller named in a command to the
/// authenticated identity. Catalog commands are checked again by the
/// catalog's own matrix.
///
/// Errors: `not_permitted` with the reason.
fn authorize(principal: Principal, request: &mut Request) -> Result<(), WireError> {
    if let Request::Command(Command::CatalogFact(_)) = request {
        return Err(WireError::new(
            ErrorCode::NotPermitted,
            "catalog facts come only from the server's catalog",
        ));
    }
    let Principal::Token(actor, hash) = principal else {
        return Ok(());
    };
    let source = token_source(&hash);
    let own = |rid: &RequestId| rid.source == source;
    let rids_own = match &*request {
        Request::Catalog { request_id, .. } => own(request_id),
        Request::Command(Command::Redeem(r)) => own(&r.request_id),
        Request::Command(Command::Reverse(r)) => own(&r.request_id),
        Request::RedeemBatch(items) => items.iter().all(|r| own(&r.request_id)),
        _ => true,
    };
    if !rids_own {
        return Err(WireError::new(
            ErrorCode::NotPermitted,
            format!("request ids of this token must use source {source} (its token_source)"),
        ));
    }
    let refuse = |what: &str| {
        Err(WireError::new(
            ErrorCode::NotPermitted,
            format!("{actor:?} may not {what}"),
        ))
    };
    // A verifier account redeems as itself and names no POS; a POS names
    // itself and the verifier account signed in on it (checked by the shard).
    let redeem_ok = |r: &vouch_engine::command::Redeem| match actor {
        Actor::Staff => true,
        Actor::Verifier(v) => r.verifier_id == v && r.pos_id.is_none(),
        Actor::Device(d) => r.pos_id == Some(d),
        _ => false,
    };
    match request {
        Request::Hello { .. } | Request::Info => Ok(()),
        Request::Catalog { act_as, .. } | Request::CatalogRead { act_as, .. } => {
            if act_as.is_some_and(|a| a != actor) {
                return refuse("act for another principal");
            }
            *act_as = Some(actor);
            Ok(())
        }
        Request::IssueBatch(_) | Request::Command(Command::Issue(_)) => match actor {
            Actor::Staff | Actor::FrontEnd => Ok(()),
            _ => refuse("issue vouchers"),
        },
        // A verifier or POS looks up as itself: the shard then refuses
        // vouchers of other sellers.
        Request::Command(Command::Lookup(l)) => match actor {
            Actor::Staff => Ok(()),
            Actor::Verifier(v) if l.verifier_id.is_none_or(|x| x == v) && l.pos_id.is_none() => {
                l.verifier_id = Some(v);
                Ok(())
            }
            Actor::Device(d) if l.pos_id.is_none_or(|x| x == d) && l.verifier_id.is_none() => {
                l.pos_id = Some(d);
                Ok(())
            }
            Actor::Verifier(_) | Actor::Device(_) => {
                refuse("look codes up as another verifier or POS")
            }
            _ => refuse("look codes up"),
        },
        Request::Command(Command::Redeem(r)) => {
            if redeem_ok(r) {
                Ok(())
            } else {
                refuse("redeem as another verifier or POS")
            }
        }
        Request::RedeemBatch(items) => {
            if items.iter().all(redeem_ok) {
                Ok(())
            } else {
                refuse("redeem as another verifier or POS")
            }
        }
        Request::Command(Command::Reverse(r)) => match actor {
            Actor::Staff => Ok(()),
            Actor::Device(d) if r.pos_id == Some(d) && r.seller_id.is_none() => Ok(()),
            Actor::Seller(s) if r.seller_id == Some(s) && r.pos_id.is_none() => Ok(()),
            _ => refuse("reverse as another POS or seller"),
        },
        Request::Command(Command::CatalogFact(_)) => refuse("send catalog facts"),
        Request::Command(Command::AuditVouchers(_) | Command::AuditRedemptions(_)) => match actor {
            Actor::Staff => Ok(()),
            _ => refuse("read the audit"),
        },
    }
}

fn tokens_equal(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Serves one connection (a TCP socket or a QUIC stream) until it closes.
async fn handle_conn<R, W>(mut reader: R, writer: W, ctx: Arc<Ctx>)
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (tx, rx) = mpsc::unbounded_channel();
    let writer_task = tokio::spawn(vouch_protocol::io::write_loop(writer, rx));
    let inflight = Arc::new(Semaphore::new(INFLIGHT_REQUESTS_MAX));
    let handshake_deadline =
        tokio::time::Instant::now() + Duration::from_millis(HANDSHAKE_TIMEOUT_MS);
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut authenticated = false;
    let mut principal = Principal::Admin;
    // Ops decoded from what one read delivered, per shard: sent as one queue
    // message per shard, so pipelined single-command frames cost one channel
    // send per read instead of one per command.
    let mut pending: Vec<Vec<Op>> = (0..ctx.shards).map(|_| Vec::new()).collect();
    let mut pending_catalog: Vec<CatalogOp> = Vec::new();
    'conn: loop {
        loop {
            let limit = if authenticated {
                FRAME_BYTES_MAX
            } else {
                HELLO_BYTES_MAX
            };
            let (header, body) = match take_frame_limited(&mut buf, limit) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    let code = match e {
                        vouch_protocol::frame::FrameError::TooLarge(_) => ErrorCode::FrameTooLarge,
                        _ => ErrorCode::MalformedFrame,
                    };
                    send_error(&tx, 0, code, e.to_string());
                    break 'conn;
                }
            };
            let corr = header.correlation;
            if header.kind != KIND_REQUEST {
                send_error(
                    &tx,
                    corr,
                    ErrorCode::MalformedFrame,
                    "expected a request frame",
                );
                break 'conn;
            }
            if header.version != PROTOCOL_VERSION {
                let msg = format!(
                    "protocol version {} not supported; this server speaks {PROTOCOL_VERSION}",
                    header.version
                );
                send_error(&tx, corr, ErrorCode::UnsupportedVersion, msg);
                break 'conn;
            }
            let request = match decode_request(header.opcode, &body) {
                Ok(r) => r,
                Err(e) => {
                    send_error(&tx, corr, ErrorCode::MalformedFrame, e.to_string());
                    break 'conn;
                }
            };
            let mut request = request;
            if !authenticated {
                match request {
                    Request::Hello { version, token } => {
                        if version != PROTOCOL_VERSION {
                            let msg = format!("protocol version {version} not supported; this server speaks {PROTOCOL_VERSION}");
                            send_error(&tx, corr, ErrorCode::UnsupportedVersion, msg);
                            break 'conn;
                        }
                        principal = if tokens_equal(&token, &ctx.admin_token) {
                            Principal::Admin
                        } else {
                            let hash = token_hash(&token);
                            match ctx.tokens.get(&hash) {
                                Some(actor) => Principal::Token(*actor, hash),
                                None => {
                                    send_error(
                                        &tx,
                                        corr,
                                        ErrorCode::Unauthenticated,
                                        "unknown token",
                                    );
                                    break 'conn;
                                }
                            }
                        };
                        authenticated = true;
                        send(
                            &tx,
                            (
                                corr,
                                Response::Hello {
                                    version: PROTOCOL_VERSION,
                                    limits: limits(),
                                    shards: ctx.shards,
                                },
                            ),
                        );
                    }
                    _ => {
                        send_error(
                            &tx,
                            corr,
                            ErrorCode::Unauthenticated,
                            "the first frame must be Hello",
                        );
                        break 'conn;
                    }
                }
                continue;
            }
            if ctx.draining.load(Ordering::Relaxed) {
                send_error(&tx, corr, ErrorCode::Unavailable, "server is shutting down");
                continue;
            }
            if let Principal::Token(_, hash) = principal {
                if !ctx.tokens.contains_key(&hash) {
                    send_error(&tx, corr, ErrorCode::Unauthenticated, "token revoked");
                    break 'conn;
                }
            }
            if let Err(e) = authorize(principal, &mut request) {
                send(&tx, (corr, Response::Error(e)));
                continue;
            }
            let permit = match inflight.clone().try_acquire_owned() {
                Ok(p) => p,
                Err(_) => {
                    // Full: hand over what is pending, then wait for replies.
                    if !flush(&ctx, &mut pending, &mut pending_catalog).await {
                        break 'conn;
                    }
                    let Ok(p) = inflight.clone().acquire_owned().await else {
                        break 'conn;
                    };
                    p
                }
            };
            dispatch(
                &ctx,
                request,
                corr,
                &tx,
                permit,
                &mut pending,
                &mut pending_catalog,
            );
        }
        if !flush(&ctx, &mut pending, &mut pending_catalog).await {
            break;
        }
        let mut stop = ctx.stop.clone();
        if *stop.borrow() {
            break;
        }
        tokio::select! {
            read = reader.read_buf(&mut buf) => match read {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            },
            _ = stop.changed() => break,
            _ = tokio::time::sleep_until(handshake_deadline), if !authenticated => {
                let error = WireError::new(ErrorCode::Unauthenticated, "no Hello within the handshake timeout");
                send(&tx, (0, Response::Error(error)));
                break;
            }
        }
    }
    // Requests accepted before the connection ended are still applied.
    let _ = flush(&ctx, &mut pending, &mut pending_catalog).await;
    drop(tx);
    let _ = writer_task.await;
}

/// Sends every shard's pending ops and the catalog's; false when the
/// queues are gone.
async fn flush(ctx: &Ctx, pending: &mut [Vec<Op>], catalog: &mut Vec<CatalogOp>) -> bool {
    if !catalog.is_empty() && ctx.catalog_tx.send(std::mem::take(catalog)).await.is_err() {
        return false;
    }
    for (shard, ops) in pending.iter_mut().enumerate() {
        if !ops.is_empty()
            && ctx.shard_txs[shard]
                .send(std::mem::take(ops))
                .await
                .is_err()
        {
            return false;
        }
    }
    true
}

/// The shard a command goes to: by its code or order id, except that a
/// request id already used goes to the shard of its first use (invariant 4
/// across shards; see `vouch_engine::Engine`).
fn shard_of(ctx: &Ctx, command: &Command) -> usize {
    let shard = route(command, ctx.shards);
    match command.request_id() {
        Some(rid) => {
            let mut claim = ctx
                .claims
                .entry(rid)
                .or_insert(pipeline::Claim { shard, inflight: 0 });
            claim.inflight += 1;
            claim.shard as usize
        }
        None => shard as usize,
    }
}

/// Routes one request into `pending` (per shard), or answers it at once.
/// The permit travels with the reply and is released once it is written.
fn dispatch(
    ctx: &Ctx,
    request: Request,
    corr: u64,
    tx: &ConnTx,
    permit: OwnedSemaphorePermit,
    pending: &mut [Vec<Op>],
    pending_catalog: &mut Vec<CatalogOp>,
) {
    let answer = |response: Response, permit: OwnedSemaphorePermit| {
        let _ = tx.send((corr, response, Some(permit)));
    };
    match request {
        Request::Hello { .. } => answer(
            Response::Hello {
                version: PROTOCOL_VERSION,
                limits: limits(),
                shards: ctx.shards,
            },
            permit,
        ),
        Request::Info => answer(
            Response::Info {
                shards: ctx.shards,
                limits: limits(),
            },
            permit,
        ),
        Request::Command(command) => {
            let audit_shard = match &command {
                Command::AuditVouchers(a) => Some(a.shard),
                Command::AuditRedemptions(a) => Some(a.shard),
                _ => None,
            };
            if let Some(shard) = audit_shard.filter(|s| *s >= ctx.shards) {
                let msg = format!("shard {shard} of {}", ctx.shards);
                return answer(
                    Response::Error(WireError::new(ErrorCode::BadRequest, msg)),
                    permit,
                );
            }
            let shard = shard_of(ctx, &command);
            pending[shard].push(Op {
                command,
                reply: ReplyTo::Conn {
                    tx: tx.clone(),
                    corr,
                    permit: Some(permit),
                },
            });
        }
        Request::Catalog {
            request_id,
            act_as,
            command,
        } => {
            // `authorize` has set `act_as` for token principals; the admin
            // runs as staff unless it names a principal.
            let actor = act_as.unwrap_or(Actor::Staff);
            pending_catalog.push(CatalogOp {
                work: CatalogWork::Command(CatalogEntry {
                    actor,
                    request_id,
                    command,
                }),
                tx: tx.clone(),
                corr,
                permit: Some(permit),
            });
        }
        Request::CatalogRead { act_as, query } => {
            let actor = act_as.unwrap_or(Actor::Staff);
            pending_catalog.push(CatalogOp {
                work: CatalogWork::Read(actor, query),
                tx: tx.clone(),
                corr,
                permit: Some(permit),
            });
        }
        Request::IssueBatch(items) => {
            let commands = items.into_iter().map(Command::Issue).collect();
            dispatch_batch(ctx, commands, corr, tx, permit, pending)
        }
        Request::RedeemBatch(items) => {
            let commands = items.into_iter().map(Command::Redeem).collect();
            dispatch_batch(ctx, commands, corr, tx, permit, pending)
        }
    }
}

fn dispatch_batch(
    ctx: &Ctx,
    commands: Vec<Command>,
    corr: u64,
    tx: &ConnTx,
    permit: OwnedSemaphorePermit,
    pending: &mut [Vec<Op>],
) {
    if commands.len() > BATCH_COMMANDS_MAX {
        let msg = format!("batch of {} exceeds {BATCH_COMMANDS_MAX}", commands.len());
        let error = Response::Error(WireError::new(ErrorCode::BatchTooLarge, msg));
        let _ = tx.send((corr, error, Some(permit)));
        return;
    }
    if commands.is_empty() {
        let _ = tx.send((corr, Response::Batch(Vec::new()), Some(permit)));
        return;
    }
    let gather = Gather::new(commands.len(), tx.clone(), corr, Some(permit));
    for (index, command) in commands.into_iter().enumerate() {
        let shard = shard_of(ctx, &command);
        pending[shard].push(Op {
            command,
            reply: ReplyTo::Gather {
                batch: gather.clone(),
                index,
            },
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vouch_engine::catalog::CatalogCommand;
    use vouch_engine::command::{AuditVouchers, CatalogFact, Issue, Lookup, Redeem, Reverse};
    use vouch_engine::validity::Validity;
    use vouch_engine::Code;

    fn redeem(pos: Option<u64>, verifier: u64) -> Redeem {
        Redeem {
            request_id: RequestId {
                source: 1,
                serial: 1,
            },
            code: Code::new(8, 1).unwrap(),
            phone_last4: "1234".into(),
            units: 1,
            outlet_id: 1,
            verifier_id: verifier,
            pos_id: pos,
        }
    }

    fn reverse(pos: Option<u64>, seller: Option<u64>) -> Reverse {
        Reverse {
            request_id: RequestId {
                source: 1,
                serial: 2,
            },
            code: Code::new(8, 1).unwrap(),
            redemption: RequestId {
                source: 1,
                serial: 1,
            },
            pos_id: pos,
            seller_id: seller,
        }
    }

    fn issue() -> Issue {
        Issue {
            order_id: "o".into(),
            seller_id: 5,
            product_id: 1,
            units: 1,
            unit_price: rust_decimal::Decimal::ONE,
            mobile: "13800001234".into(),
            validity: Validity::DaysFromIssue(1),
            code_digits: 8,
        }
    }

    fn catalog(act_as: Option<Actor>) -> Request {
        Request::Catalog {
            request_id: RequestId {
                source: 1,
                serial: 3,
            },
            act_as,
            command: CatalogCommand::Tick,
        }
    }

    fn read(act_as: Option<Actor>) -> Request {
        Request::CatalogRead {
            act_as,
            query: vouch_engine::catalog::CatalogQuery::Categories(
                vouch_engine::catalog::Page::first(),
            ),
        }
    }

    /// A token hash whose request-id source is 1, the source the requests
    /// above use.
    const OWN_HASH: [u8; 32] = {
        let mut h = [0u8; 32];
        h[7] = 1;
        h
    };

    /// The request-level role matrix: every principal kind × every request
    /// kind, allowed or refused (the catalog's own matrix is proven in the
    /// engine's tests). Identity-bound fields must name the principal.
    #[test]
    fn role_matrix_every_principal_by_every_request() {
        let lookup_by = |verifier_id, pos_id| {
            Request::Command(Command::Lookup(Lookup {
                code: Code::new(8, 1).unwrap(),
                phone_last4: "1234".into(),
                verifier_id,
                pos_id,
            }))
        };
        let audit = Request::Command(Command::AuditVouchers(AuditVouchers {
            shard: 0,
            from: 0,
            limit: 1,
        }));
        let fact = Request::Command(Command::CatalogFact(CatalogFact::Device {
            pos_id: 1,
            seller: 5,
            outlet: 1,
            provider: 70,
        }));
        // (name, request, who may send it)
        type Rule = fn(Actor) -> bool;
        let rows: Vec<(&str, Request, Rule)> = vec![
            ("info", Request::Info, |_| true),
            ("issue", Request::Command(Command::Issue(issue())), |a| {
                matches!(a, Actor::Staff | Actor::FrontEnd)
            }),
            ("issue batch", Request::IssueBatch(vec![issue()]), |a| {
                matches!(a, Actor::Staff | Actor::FrontEnd)
            }),
            ("lookup", lookup_by(None, None), |a| {
                matches!(a, Actor::Staff | Actor::Verifier(_) | Actor::Device(_))
            }),
            ("lookup as verifier 9", lookup_by(Some(9), None), |a| {
                matches!(a, Actor::Staff | Actor::Verifier(9))
            }),
            ("lookup as POS 7", lookup_by(None, Some(7)), |a| {
                matches!(a, Actor::Staff | Actor::Device(7))
            }),
            (
                "redeem as POS 7",
                Request::Command(Command::Redeem(redeem(Some(7), 9))),
                |a| matches!(a, Actor::Staff | Actor::Device(7)),
            ),
            (
                "redeem as verifier 9",
                Request::Command(Command::Redeem(redeem(None, 9))),
                |a| matches!(a, Actor::Staff | Actor::Verifier(9)),
            ),
            (
                "redeem with another token's request-id source",
                Request::Command(Command::Redeem(Redeem {
                    request_id: RequestId {
                        source: 2,
                        serial: 1,
                    },
                    ..redeem(Some(7), 9)
                })),
                |_| false,
            ),
            (
                "catalog command with another token's request-id source",
                Request::Catalog {
                    request_id: RequestId {
                        source: 2,
                        serial: 3,
                    },
                    act_as: None,
                    command: CatalogCommand::Tick,
                },
                |_| false,
            ),
            (
                "redeem batch as verifier 9",
                Request::RedeemBatch(vec![redeem(None, 9)]),
                |a| matches!(a, Actor::Staff | Actor::Verifier(9)),
            ),
            (
                "reverse as POS 7",
                Request::Command(Command::Reverse(reverse(Some(7), None))),
                |a| matches!(a, Actor::Staff | Actor::Device(7)),
            ),
            (
                "reverse as seller 5",
                Request::Command(Command::Reverse(reverse(None, Some(5)))),
                |a| matches!(a, Actor::Staff | Actor::Seller(5)),
            ),
            ("audit", audit, |a| a == Actor::Staff),
            ("catalog for itself", catalog(None), |_| true),
            (
                "catalog for seller 5",
                catalog(Some(Actor::Seller(5))),
                |a| a == Actor::Seller(5),
            ),
            ("catalog fact", fact, |_| false),
            ("catalog read for itself", read(None), |_| true),
            (
                "catalog read for seller 5",
                read(Some(Actor::Seller(5))),
                |a| a == Actor::Seller(5),
            ),
        ];
        let principals = [
            Actor::Staff,
            Actor::System,
            Actor::FrontEnd,
            Actor::Seller(5),
            Actor::Seller(6),
            Actor::Provider(5),
            Actor::Verifier(9),
            Actor::Verifier(8),
            Actor::Device(7),
            Actor::Device(8),
        ];
        for (name, request, allowed) in &rows {
            for actor in principals {
                let mut r = request.clone();
                let got = authorize(Principal::Token(actor, OWN_HASH), &mut r);
                assert_eq!(got.is_ok(), allowed(actor), "{name} by {actor:?}: {got:?}");
                if let (
                    Ok(()),
                    Request::Catalog { act_as, .. } | Request::CatalogRead { act_as, .. },
                ) = (&got, &r)
                {
                    assert_eq!(
                        *act_as,
                        Some(actor),
                        "a token runs catalog commands as itself"
                    );
                }
                // A verifier or POS always looks up as itself (ORD-9).
                if let (Ok(()), Request::Command(Command::Lookup(l))) = (&got, &r) {
                    let who = match actor {
                        Actor::Verifier(v) => (Some(v), None),
                        Actor::Device(d) => (None, Some(d)),
                        _ => (l.verifier_id, l.pos_id),
                    };
                    assert_eq!((l.verifier_id, l.pos_id), who, "{name} by {actor:?}");
                }
                if let Err(e) = got {
                    assert_eq!(e.code, ErrorCode::NotPermitted.number());
                }
            }
            // The admin may send everything except catalog facts.
            let mut r = request.clone();
            assert_eq!(
                authorize(Principal::Admin, &mut r).is_ok(),
                *name != "catalog fact",
                "{name} by admin"
            );
        }
    }
}
