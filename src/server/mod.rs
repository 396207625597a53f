//! The server: listeners (TCP, plain or TLS, and QUIC), one task per
//! connection, routing to the shard and catalog workers, the lockout
//! guard, and graceful shutdown.
//!
//! Layout: `listen` (accept loops, connection slots, the recovery answer),
//! `conn` (one connection: handshake, frames, budgets, timeouts), `auth`
//! (tokens and the request role matrix), `route` (which worker gets what),
//! `tick` (the server's own commands: the catalog tick and lockouts).

mod auth;
mod conn;
mod listen;
mod route;
mod tick;

pub use auth::{token_hash, token_source};
pub use conn::{
    request_units, CONN_INFLIGHT_UNITS_MAX, FRAME_READ_TIMEOUT_MS, IDLE_TIMEOUT_MS_DEFAULT,
    PRINCIPAL_INFLIGHT_UNITS_MAX, REQUEST_UNIT_BYTES, SERVER_INFLIGHT_UNITS_MAX,
    WRITE_STALL_TIMEOUT_MS,
};
pub use tick::{CATALOG_TICK_MS, SHARD_TICK_MS};

use crate::data_dir;
use crate::guard::{Guard, GuardConfig};
use crate::pipeline::{self, CatalogOp, Op, Stats, TokenMap};
use anyhow::Context;
use dashmap::DashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinSet;
use vouch_engine::catalog::{Actor, LockKey};
use vouch_engine::EngineConfig;
use vouch_protocol::frame::{BATCH_COMMANDS_MAX, FRAME_BYTES_MAX};
use vouch_protocol::messages::Limits;
use vouch_storage::group_commit::GroupCommit;

/// Most logged-in connections (TCP sockets plus QUIC streams); a login
/// beyond it is refused with `unavailable`.
pub const CONNECTIONS_MAX: usize = 4_096;

/// Connection slots of `CONNECTIONS_MAX` kept for staff, so an operator
/// can always connect (to revoke a token or lift a lockout) while tenants
/// hold every other slot.
pub const STAFF_CONNECTIONS_RESERVED: usize = 64;

/// Most connections one tenant credential may hold at once. A POS needs
/// one or two and a front end a few dozen; one stolen token cannot take
/// the server's slots.
pub const PRINCIPAL_CONNECTIONS_MAX: usize = 512;

/// Most requests in flight per connection, as announced in the handshake
/// (the connection's budget in request units).
pub const INFLIGHT_REQUESTS_MAX: usize = CONN_INFLIGHT_UNITS_MAX as usize;

/// How long a new connection may take to send its Hello, in ms; then it
/// is closed, so idle sockets cannot hold connection slots.
pub const HANDSHAKE_TIMEOUT_MS: u64 = 5_000;

/// Connections that have not logged in yet (TLS handshake and Hello
/// pending), over all peers. They hold no connection slot: a slot is taken
/// at login, so silent sockets can never take the slots kept for staff.
pub const PREAUTH_CONNECTIONS_MAX: usize = 1_024;

/// Connections one peer address (IPv4, or IPv6 /64) may have waiting to
/// log in at once.
pub const PREAUTH_PER_PEER_MAX: usize = 64;

/// How long shutdown waits for connections to finish their in-flight
/// requests, in ms. Every acknowledged write is durable either way.
pub const SHUTDOWN_DRAIN_MS: u64 = 10_000;

/// Whether TCP connections use TLS (issue 7 item 7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcpSecurity {
    /// TLS unless the listen address is a loopback address.
    Auto,
    /// Always TLS (rustls, the data directory's certificate).
    Tls,
    /// Never TLS, also off loopback (`--plain-tcp`: the operator says so).
    Plain,
}

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
    /// Failure limits and lockouts.
    pub guard: GuardConfig,
    /// How long an idle logged-in connection stays open, ms.
    pub idle_timeout_ms: u64,
    /// TLS on TCP.
    pub tcp_security: TcpSecurity,
    /// Local time of day (platform time zone) of the daily settlement run
    /// (SET-3); its cutoff is that instant.
    pub settlement_time: jiff::civil::Time,
    /// For rehearsals only: the server's clock runs this many ms ahead of
    /// the wall clock ([`crate::clock`]); 0 in production.
    pub clock_ahead_ms: i64,
    /// The outbox's webhooks and retry policy (ORD-2).
    pub outbox: crate::outbox::OutboxConfig,
}

/// A tenant principal's share of the server: its connections and its
/// in-flight request units across them.
pub(crate) struct PrincipalBudget {
    units: Arc<Semaphore>,
    conns: Arc<Semaphore>,
}

struct Ctx {
    shard_txs: Vec<mpsc::Sender<Vec<Op>>>,
    catalog_tx: mpsc::Sender<Vec<CatalogOp>>,
    /// SHA-256 of each registered token → its principal; kept current by
    /// the catalog worker after each durable batch.
    tokens: Arc<TokenMap>,
    /// Bumped by the catalog worker when a token is revoked: open
    /// connections check whether theirs is still registered.
    revoked: Arc<watch::Sender<u64>>,
    /// Request id → the shard of its first use (see `Engine`'s docs).
    claims: Arc<pipeline::Claims>,
    shards: u32,
    /// The outbox column family, for staff's outbox requests.
    outbox: vouch_storage::OutboxStore,
    admin_token: String,
    /// SHA-256 of the admin token (never registrable for a principal).
    admin_token_hash: [u8; 32],
    draining: AtomicBool,
    /// Connections waiting to log in, and how many per peer.
    preauth: Arc<Semaphore>,
    preauth_peers: Arc<DashMap<LockKey, usize, foldhash::fast::RandomState>>,
    /// Slots for everyone: `CONNECTIONS_MAX - STAFF_CONNECTIONS_RESERVED`.
    conns: Arc<Semaphore>,
    /// The slots kept for staff.
    staff_conns: Arc<Semaphore>,
    /// The server's in-flight budget, request units.
    inflight: Arc<Semaphore>,
    principals: DashMap<Actor, Arc<PrincipalBudget>, foldhash::fast::RandomState>,
    guard: Arc<Guard>,
    idle_timeout_ms: u64,
    stop: watch::Receiver<bool>,
    /// The platform time zone (the data directory's).
    time_zone: jiff::tz::TimeZone,
    /// Local time of the daily settlement run.
    settlement_time: jiff::civil::Time,
    /// The data directory's reversal window, ms.
    reversal_window_ms: i64,
}

impl Ctx {
    /// The budget of tenant `actor` (made on its first login; one per
    /// registered principal at most).
    fn principal_budget(&self, actor: Actor) -> Arc<PrincipalBudget> {
        self.principals
            .entry(actor)
            .or_insert_with(|| {
                Arc::new(PrincipalBudget {
                    units: Arc::new(Semaphore::new(PRINCIPAL_INFLIGHT_UNITS_MAX as usize)),
                    conns: Arc::new(Semaphore::new(PRINCIPAL_CONNECTIONS_MAX)),
                })
            })
            .clone()
    }
}

/// A warning that a flood would repeat many times a second is written at
/// most once a second per kind (the rest are counted in the next line).
pub(crate) struct Throttled {
    last_ms: std::sync::atomic::AtomicI64,
    skipped: std::sync::atomic::AtomicU64,
}

impl Throttled {
    const fn new() -> Throttled {
        Throttled {
            last_ms: std::sync::atomic::AtomicI64::new(i64::MIN),
            skipped: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Whether to write the warning now; with how many were left out since.
    pub(crate) fn allow(&self) -> Option<u64> {
        let now = now_ms();
        let last = self.last_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= 1_000
            && self
                .last_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            return Some(self.skipped.swap(0, Ordering::Relaxed));
        }
        self.skipped.fetch_add(1, Ordering::Relaxed);
        None
    }
}

/// Warnings of refused connections (limits reached).
pub(crate) static REFUSED_LOG: Throttled = Throttled::new();
/// Warnings of refused logins (unknown tokens).
pub(crate) static LOGIN_LOG: Throttled = Throttled::new();

/// The server's clock in unix ms, for the guard and the ticks (the engine
/// never reads it).
use crate::clock::now_ms;

fn limits() -> Limits {
    Limits {
        frame_bytes_max: FRAME_BYTES_MAX,
        batch_commands_max: BATCH_COMMANDS_MAX as u32,
        inflight_requests_max: INFLIGHT_REQUESTS_MAX as u32,
    }
}

/// The worker threads and the committer, for shutdown.
struct Workers {
    threads: Vec<std::thread::JoinHandle<()>>,
    gc: GroupCommit,
}

/// Runs the server until SIGINT or SIGTERM, then drains and exits.
///
/// On start it prints one line per listener, `listening tcp ADDR` (or
/// `listening tcps ADDR` with TLS) and `listening quic ADDR`, then
/// `ready`, to standard output (scripts and tests wait for `ready`).
/// While the log is replayed, TCP connections are answered at once with
/// `unavailable` ("recovering").
///
/// Errors: bad limit settings; the data directory cannot be opened or
/// recovered; an address cannot be bound; the storage failed during
/// shutdown.
pub async fn serve(opts: ServeOptions) -> anyhow::Result<()> {
    opts.guard.validate().map_err(anyhow::Error::msg)?;
    opts.new_config.validate().map_err(anyhow::Error::msg)?;
    opts.outbox.validate().map_err(anyhow::Error::msg)?;
    if opts.outbox.sms.is_none() {
        eprintln!(
            "warning: no --sms-webhook: buyer SMS messages (codes, redemptions, refunds) stay queued in the outbox until a start with one"
        );
    }
    if opts.clock_ahead_ms > 0 {
        crate::clock::set_ahead_ms(opts.clock_ahead_ms);
        eprintln!(
            "warning: rehearsal clock: the server's clock runs {} s ahead of the wall clock; deadlines pass early, never use this on real money",
            opts.clock_ahead_ms / 1000
        );
    }
    let started = std::time::Instant::now();
    // CONNECTIONS_MAX sockets need more descriptors than a default soft
    // limit of 1,024; raise it towards the hard limit.
    let _ = rlimit::increase_nofile_limit((CONNECTIONS_MAX as u64) * 2 + 1_024);
    // Bind first: a busy port fails at once, not after a long recovery.
    let tcp = Arc::new(
        tokio::net::TcpListener::bind(&opts.listen_tcp)
            .await
            .with_context(|| format!("binding TCP {}", opts.listen_tcp))?,
    );
    let tls = listen::tcp_tls(&opts, tcp.local_addr()?)?;
    let recovering = listen::answer_recovering(tcp.clone(), tls.clone());
    let (dir, config) = (opts.data_dir.clone(), opts.new_config.clone());
    let opened = tokio::task::spawn_blocking(move || data_dir::open(&dir, &config))
        .await
        .context("recovery task")??;
    recovering.stop().await;
    check_time(&opened)?;
    report_opened(&opts, &opened, started);
    let paths = data_dir::Paths::new(&opts.data_dir);
    let tls = match tls {
        Some(t) => Some(t),
        None if listen::wants_tls(&opts, tcp.local_addr()?) => Some(listen::acceptor(&paths)?),
        None => None,
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let (ctx, workers) = start_workers(opened, &opts, stop_rx.clone())?;
    let mut listeners = JoinSet::new();
    let scheme = if tls.is_some() { "tcps" } else { "tcp" };
    println!("listening {scheme} {}", tcp.local_addr()?);
    listeners.spawn(listen::tcp_loop(tcp, tls, ctx.clone()));
    let quic_endpoint = match &opts.listen_quic {
        Some(addr) => Some(listen::quic(addr, &paths, ctx.clone(), &mut listeners)?),
        None => None,
    };
    listeners.spawn(tick::tick_driver(ctx.clone(), stop_rx.clone()));
    listeners.spawn(tick::shard_tick_driver(ctx.clone(), stop_rx.clone()));
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
    for w in workers.threads {
        let _ = w.join();
    }
    workers.gc.shutdown().context("final sync")?;
    println!("stopped cleanly");
    Ok(())
}

/// How far the server's clock may be behind the data directory's latest
/// logged instant at start (a small step back of the machine's clock), ms.
pub const CLOCK_BEHIND_MS_MAX: i64 = 5 * 60_000;

/// Refuses to serve a data directory whose time is ahead of the server's
/// clock by more than [`CLOCK_BEHIND_MS_MAX`]: it was run with
/// `--rehearsal-clock-ahead-s` (or this machine's clock went back), and
/// its shards would stand still until the clock catches up — reversal
/// windows never closing, money never becoming payable, lockouts longer.
///
/// Errors: the directory's time and what to do, in words.
fn check_time(opened: &data_dir::Opened) -> anyhow::Result<()> {
    let latest = opened.shards.iter().map(|s| s.clock_floor_ms()).max();
    let now = now_ms();
    match latest {
        Some(latest) if latest > now + CLOCK_BEHIND_MS_MAX => {
            let ahead_s = (latest - now + 999) / 1000 + crate::clock::ahead_ms() / 1000;
            anyhow::bail!(
                "this data directory's time is {} s ahead of the server's clock (it was run with --rehearsal-clock-ahead-s, or this machine's clock went back); start it with --rehearsal-clock-ahead-s {} or more, or once the clock has passed its latest instant",
                (latest - now) / 1000,
                ahead_s
            )
        }
        _ => Ok(()),
    }
}

fn report_opened(opts: &ServeOptions, opened: &data_dir::Opened, started: std::time::Instant) {
    let paths = data_dir::Paths::new(&opts.data_dir);
    if opened.created {
        println!("created data directory {}", opts.data_dir.display());
    } else if opened.config != opts.new_config {
        println!(
            "note: {} keeps the settings it was created with ({} shards, time zone {}, reversal window {} s, code density {} ppm); --shards, --time-zone, --reversal-window-s and --code-density-ppm apply to new data directories only",
            opts.data_dir.display(),
            opened.config.shards,
            opened.config.time_zone,
            opened.config.reversal_window_ms / 1000,
            opened.config.code_density_ppm,
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
}

/// Starts the group committer, one worker thread per shard and the
/// catalog worker, the lockout guard and its recorder; the shared context.
fn start_workers(
    opened: data_dir::Opened,
    opts: &ServeOptions,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<(Arc<Ctx>, Workers)> {
    let outbox = opened.storage.outbox();
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
    let (trip_tx, trip_rx) = crossbeam_channel::unbounded();
    let guard = Arc::new(Guard::new(opts.guard, trip_tx));
    guard.restore(now_ms(), opened.catalog.lockouts());
    let mut threads = Vec::new();
    let mut shard_txs = Vec::new();
    let mut fact_txs = Vec::new();
    let mut to_shards = Vec::new();
    let wake = crate::outbox::send::Wake::default();
    let time_zone = opened.config.validate().map_err(anyhow::Error::msg)?;
    let (catalog_tx, catalog_rx) = mpsc::channel(pipeline::SHARD_QUEUE_MESSAGES_MAX);
    // Shard messages: at most one per seller and reason per shard batch,
    // applied by the catalog's next batch, which each send wakes.
    let (message_tx, message_rx) = crossbeam_channel::unbounded();
    let to_catalog = pipeline::ToCatalog {
        messages: message_tx,
        wake: catalog_tx.downgrade(),
    };
    for shard in opened.shards {
        let (tx, rx) = mpsc::channel(pipeline::SHARD_QUEUE_MESSAGES_MAX);
        let shard_wake = tx.downgrade();
        shard_txs.push(tx);
        // Catalog facts: a few per catalog change, so unbounded is safe.
        let (fact_tx, fact_rx) = crossbeam_channel::unbounded();
        fact_txs.push(fact_tx);
        // Delivery reports: at most one per attempt in flight.
        let (report_tx, report_rx) = crossbeam_channel::unbounded();
        to_shards.push(pipeline::ToShard {
            reports: report_tx,
            wake: shard_wake,
        });
        let (commit, stats, claims, guard) =
            (gc.sender(), stats.clone(), claims.clone(), guard.clone());
        let (to_catalog, wake) = (to_catalog.clone(), wake.clone());
        threads.push(
            std::thread::Builder::new()
                .name(format!("vouch-shard-{}", shard.index()))
                .spawn(move || {
                    pipeline::run_worker(
                        shard, rx, fact_rx, report_rx, commit, stats, claims, guard, to_catalog,
                        wake,
                    )
                })?,
        );
    }
    drop(to_catalog);
    crate::outbox::send::start(
        outbox.clone(),
        Arc::new(opts.outbox.clone()),
        time_zone.clone(),
        Arc::new(to_shards),
        wake.clone(),
        stop.clone(),
    );
    let tokens: Arc<TokenMap> = Arc::new(opened.catalog.tokens().map(|(h, a)| (*h, *a)).collect());
    let revoked = Arc::new(watch::channel(0u64).0);
    {
        let (commit, catalog, tokens) = (gc.sender(), opened.catalog, tokens.clone());
        let (guard, revoked) = (guard.clone(), revoked.clone());
        threads.push(
            std::thread::Builder::new()
                .name("vouch-catalog".into())
                .spawn(move || {
                    pipeline::run_catalog_worker(
                        catalog, catalog_rx, message_rx, commit, tokens, fact_txs, guard, revoked,
                    )
                })?,
        );
    }
    tick::record_lockouts(trip_rx, catalog_tx.clone());
    let ctx = Arc::new(Ctx {
        shard_txs,
        catalog_tx,
        tokens,
        revoked,
        claims,
        shards: opened.config.shards,
        admin_token_hash: auth::token_hash(&opened.admin_token),
        admin_token: opened.admin_token,
        draining: AtomicBool::new(false),
        preauth: Arc::new(Semaphore::new(PREAUTH_CONNECTIONS_MAX)),
        preauth_peers: Arc::new(DashMap::default()),
        conns: Arc::new(Semaphore::new(CONNECTIONS_MAX - STAFF_CONNECTIONS_RESERVED)),
        staff_conns: Arc::new(Semaphore::new(STAFF_CONNECTIONS_RESERVED)),
        inflight: Arc::new(Semaphore::new(SERVER_INFLIGHT_UNITS_MAX as usize)),
        principals: DashMap::default(),
        guard,
        idle_timeout_ms: opts.idle_timeout_ms,
        stop,
        time_zone,
        outbox,
        settlement_time: opts.settlement_time,
        reversal_window_ms: opened.config.reversal_window_ms,
    });
    Ok((ctx, Workers { threads, gc }))
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
