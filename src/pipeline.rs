//! Shard workers and durable reply delivery (DESIGN "Concurrency and
//! durability").
//!
//! Each shard runs on its own thread: it drains its queue in batches,
//! applies a batch with no I/O, encodes the batch's mutating commands as one
//! log record and hands it, with the batch's replies, to the group
//! committer. Replies are delivered only in the committer's completion,
//! after the record and every earlier one is synced (invariant 3). While
//! batch N syncs, the worker is already applying batch N+1.

use crate::guard::{self, Guard};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, OwnedSemaphorePermit};
use vouch_engine::catalog::LockKey;
use vouch_engine::catalog::{
    Actor, Catalog, CatalogCommand, CatalogEvent, CatalogQuery, SystemInput,
};
use vouch_engine::log::{CatalogApplied, CatalogBatch, CatalogEntry, ShardBatch};
use vouch_engine::message::{CatalogFact, ShardMessage};
use vouch_engine::shard::Caller;
use vouch_engine::{Command, Effect, ErrorCode, Rejection, Reply, Shard};
use vouch_protocol::{Response, WireError, WireReply};
use vouch_storage::group_commit::Job;

/// Most commands one shard applies in one batch (one log record). 8,000
/// commands of ~100 bytes make a record under 1 MiB; DESIGN's napkin math
/// shows the sync is then no longer the bottleneck.
pub const BATCH_COMMANDS_MAX: usize = 8_000;

/// Queue depth per shard, in messages (one message per request frame or
/// per shard slice of a batch frame). A full queue makes connection tasks
/// wait, which stops them reading from their sockets.
pub const SHARD_QUEUE_MESSAGES_MAX: usize = 4_096;

/// A request's share of the in-flight budgets (issue 7 item 5): of its
/// connection, of its principal across its connections (tenants only) and
/// of the whole server, each in units of one request plus one per 64 KiB
/// it may hold (`server::request_units`). Released when its reply has been
/// written to the peer, so a client that does not read stops being read.
pub struct Permit {
    /// The connection's share.
    pub conn: OwnedSemaphorePermit,
    /// The principal's share; None for staff.
    pub principal: Option<OwnedSemaphorePermit>,
    /// The server's share.
    pub server: OwnedSemaphorePermit,
}

/// A connection writer's queue: correlation id, response, and the
/// request's in-flight permit, released once the response is written.
/// Every entry holds a permit except the one error that closes the
/// connection, so the queue is bounded by the connection's budget.
pub type ConnTx = mpsc::UnboundedSender<(u64, Response, Option<Permit>)>;

/// Where a reply goes once durable.
pub enum ReplyTo {
    /// Straight to a connection's writer, with the request's correlation id.
    Conn {
        /// The connection writer's queue.
        tx: ConnTx,
        /// Correlation id of the request.
        corr: u64,
        /// Released when the reply is written (in-flight limit).
        permit: Option<Permit>,
    },
    /// Into slot `index` of a batch frame's reply.
    Gather {
        /// The batch being gathered.
        batch: Arc<Gather>,
        /// Position of this command in the batch.
        index: usize,
    },
}

/// Replies of one batch frame, gathered from every shard it touched.
pub struct Gather {
    slots: Mutex<Vec<Option<WireReply>>>,
    remaining: AtomicUsize,
    tx: ConnTx,
    corr: u64,
    permit: Mutex<Option<Permit>>,
}

impl Gather {
    /// A gather of `len` replies for request `corr` on connection `tx`.
    pub fn new(len: usize, tx: ConnTx, corr: u64, permit: Option<Permit>) -> Arc<Gather> {
        Arc::new(Gather {
            slots: Mutex::new(vec![None; len]),
            remaining: AtomicUsize::new(len),
            tx,
            corr,
            permit: Mutex::new(permit),
        })
    }
}

/// Who sent a command and from where: what a refusal may tell them
/// (ORD-7) and what failed code attempts are counted under (issue 7).
#[derive(Clone, Copy, Debug)]
pub struct Origin {
    /// Staff (the admin token, staff tokens) or a tenant.
    pub caller: Caller,
    /// The authenticated principal; None for the admin token.
    pub actor: Option<Actor>,
    /// The transport peer's key (address or /64 prefix).
    pub peer: LockKey,
}

impl Origin {
    /// The origin of the server's own commands and of recovery.
    pub const SERVER: Origin = Origin {
        caller: Caller::Staff,
        actor: None,
        peer: LockKey::Peer(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)),
    };
}

/// One command for a shard worker and where its reply goes.
pub struct Op {
    /// The command.
    pub command: Command,
    /// Who sent it.
    pub origin: Origin,
    /// Its reply's destination.
    pub reply: ReplyTo,
}

/// Whether a refusal of `command` is a failed code attempt (issue 7): a
/// `code_invalid` lookup or redemption, or a reversal naming a redemption
/// or code that is not there.
fn failed_attempt(command: &Command, reply: &Reply) -> bool {
    let Err(rejection) = reply else { return false };
    match command {
        Command::Lookup(_) | Command::Redeem(_) | Command::History(_) => {
            rejection.code == ErrorCode::CodeInvalid
        }
        Command::Reverse(_) => rejection.code == ErrorCode::RedemptionUnknown,
        _ => false,
    }
}

/// The lockout keys of an op: its principal, its peer and, for a POS, the
/// outlet the catalog registered it at. Empty for staff and for commands
/// that guess no code.
fn lock_keys(shard: &Shard, op: &Op) -> Vec<LockKey> {
    if !matches!(
        op.command,
        Command::Lookup(_) | Command::Redeem(_) | Command::Reverse(_) | Command::History(_)
    ) {
        return Vec::new();
    }
    let outlet = match op.origin.actor {
        Some(Actor::Device(pos)) => shard.device_outlet(pos),
        _ => None,
    };
    guard::keys_of(op.origin.actor, op.origin.peer, outlet)
}

/// Applies one op for its origin: a locked-out key is refused before the
/// engine sees the command (`locked_out`), and a failed code attempt is
/// counted. Both cost nothing while nothing is locked out and the command
/// succeeds.
fn apply_guarded(
    shard: &mut Shard,
    guard: &Guard,
    batch: &mut ShardBatch,
    op: &Op,
    effects: &mut Vec<Effect>,
) -> Reply {
    let now = batch.now_ms();
    if op.origin.caller == Caller::Tenant && guard.any_locked() {
        if let Some(until) = guard.locked_until(now, &lock_keys(shard, op)) {
            return Err(Rejection::locked_out((until - now).max(1) as u64));
        }
    }
    let applied = batch.command(shard, op.origin.caller, &op.command, effects);
    if op.origin.caller == Caller::Tenant && failed_attempt(&op.command, &applied.reply) {
        guard.failure(now, &lock_keys(shard, op));
    }
    applied.reply
}

fn to_wire(reply: Reply) -> WireReply {
    reply.map_err(|r| WireError::from(&r))
}

/// Delivers one durable reply.
pub fn deliver(to: ReplyTo, reply: Reply) {
    let wire = to_wire(reply);
    match to {
        ReplyTo::Conn { tx, corr, permit } => {
            // A closed connection just drops the reply; the write is durable.
            let _ = tx.send((corr, Response::Reply(wire), permit));
        }
        ReplyTo::Gather { batch, index } => {
            let done = {
                let mut slots = batch.slots.lock().expect("gather lock");
                slots[index] = Some(wire);
                batch.remaining.fetch_sub(1, Ordering::AcqRel) == 1
            };
            if done {
                let slots = std::mem::take(&mut *batch.slots.lock().expect("gather lock"));
                let replies = slots
                    .into_iter()
                    .map(|s| s.expect("every slot filled before the last"))
                    .collect();
                let permit = batch.permit.lock().expect("gather lock").take();
                let _ = batch
                    .tx
                    .send((batch.corr, Response::Batch(replies), permit));
            }
        }
    }
}

/// Counters a worker keeps for operators.
#[derive(Default)]
pub struct Stats {
    /// Commands applied.
    pub commands: AtomicUsize,
    /// Effects produced (codes and notices to send).
    pub effects: AtomicUsize,
}

/// The server's clock ([`crate::clock`]) as a worker sees it: unix ms that
/// never run backwards,
/// so every batch's `now` is at least the previous one's.
#[derive(Default)]
struct Clock {
    last_ms: i64,
}

impl Clock {
    fn now_ms(&mut self) -> i64 {
        let wall = crate::clock::now_ms();
        self.last_ms = self.last_ms.max(wall);
        self.last_ms
    }
}

/// The shard a request id is bound to (invariant 4 across shards), and how
/// many commands with that id are queued or being applied. A claim made by
/// a command that is then refused is dropped once no other command with the
/// id is in flight, so a corrected retry goes where its code lives, as after
/// a restart (claims are rebuilt from the log's successes only).
#[derive(Clone, Copy, Debug)]
pub struct Claim {
    /// The shard.
    pub shard: u32,
    /// Commands with this request id routed and not yet applied.
    pub inflight: u32,
}

/// Request id → its claim, shared by the connection tasks (which route)
/// and the shard workers (which settle claims after applying).
pub type Claims = dashmap::DashMap<vouch_engine::RequestId, Claim, foldhash::fast::RandomState>;

/// Settles the claim of request id `rid` after shard `shard` applied one
/// command with it: the claim stays while the shard holds the request's
/// record or other commands with the id are in flight.
fn settle_claim(claims: &Claims, shard: &Shard, rid: vouch_engine::RequestId) {
    if let dashmap::Entry::Occupied(mut e) = claims.entry(rid) {
        let claim = e.get_mut();
        claim.inflight = claim.inflight.saturating_sub(1);
        if claim.inflight == 0 && !shard.knows_request(&rid) {
            e.remove();
        }
    }
}

/// Waits for the next queue message and drains whatever else is queued, up
/// to `BATCH_COMMANDS_MAX` items; None when the queue is closed.
fn next_batch<T>(rx: &mut mpsc::Receiver<Vec<T>>) -> Option<Vec<T>> {
    let mut ops = rx.blocking_recv()?;
    while ops.len() < BATCH_COMMANDS_MAX {
        match rx.try_recv() {
            Ok(more) => ops.extend(more),
            Err(_) => break,
        }
    }
    Some(ops)
}

/// Where a shard's messages for the catalog go (SET-3): the catalog
/// worker's message queue, and its op queue to wake it (held weakly, so
/// it never keeps the catalog running at shutdown).
#[derive(Clone)]
pub struct ToCatalog {
    /// Messages, in each shard's `seq` order.
    pub messages: crossbeam_channel::Sender<ShardMessage>,
    /// Wakes the catalog worker with an empty batch.
    pub wake: mpsc::WeakSender<Vec<CatalogOp>>,
}

impl ToCatalog {
    /// Hands durable messages to the catalog and wakes it. Lost only when
    /// the server stops; recovery then sends them again.
    fn send(&self, messages: Vec<ShardMessage>) {
        if messages.is_empty() {
            return;
        }
        for m in messages {
            let _ = self.messages.send(m);
        }
        if let Some(tx) = self.wake.upgrade() {
            // A full queue wakes the worker anyway.
            let _ = tx.try_send(Vec::new());
        }
    }
}

/// The outbox's report that the SMS gateway accepted a code message
/// (ORD-2), for the order's shard; `done` fires once the shard's record of
/// it is durable, and only then does the outbox mark the message delivered
/// (a crash in between sends the message again, never loses the state).
pub struct DeliveryReport {
    /// What was delivered.
    pub delivered: vouch_engine::message::CodeDelivered,
    /// Fired when durable.
    pub done: tokio::sync::oneshot::Sender<()>,
}

/// Where a shard's delivery reports come from, and the shard's op queue to
/// wake it.
#[derive(Clone)]
pub struct ToShard {
    /// Reports, in any order.
    pub reports: crossbeam_channel::Sender<DeliveryReport>,
    /// Wakes the worker with an empty batch.
    pub wake: mpsc::WeakSender<Vec<Op>>,
}

impl ToShard {
    /// Hands a report to the shard and wakes it; false when it stopped.
    pub fn send(&self, report: DeliveryReport) -> bool {
        if self.reports.send(report).is_err() {
            return false;
        }
        match self.wake.upgrade() {
            // A full queue wakes the worker anyway.
            Some(tx) => {
                let _ = tx.try_send(Vec::new());
                true
            }
            None => false,
        }
    }
}

/// Runs one shard worker until its queue closes. Time never runs backwards
/// inside a shard: each batch's `now` is at least the previous one's.
/// What the batch makes payable reaches the catalog once its record is
/// durable.
#[allow(clippy::too_many_arguments)]
pub fn run_worker(
    mut shard: Shard,
    mut rx: mpsc::Receiver<Vec<Op>>,
    facts: crossbeam_channel::Receiver<CatalogFact>,
    reports: crossbeam_channel::Receiver<DeliveryReport>,
    commit: crossbeam_channel::Sender<Job>,
    stats: Arc<Stats>,
    claims: Arc<Claims>,
    guard: Arc<Guard>,
    to_catalog: ToCatalog,
    wake: crate::outbox::send::Wake,
) {
    let mut clock = Clock {
        last_ms: shard.clock_floor_ms(),
    };
    let mut effects: Vec<Effect> = Vec::new();
    while let Some(ops) = next_batch(&mut rx) {
        let mut batch = ShardBatch::new(clock.now_ms());
        // The batch's effects are numbered from here (their message ids).
        let first_effect = shard.effects_made();
        let mut replies = Vec::with_capacity(ops.len());
        // Catalog facts first (already durable in the catalog's log): the
        // batch's redemptions are checked against them (ORD-7).
        while let Ok(fact) = facts.try_recv() {
            batch.fact(&mut shard, fact);
        }
        // Deliveries the outbox saw accepted (ORD-2), acknowledged to it
        // once this batch's record is durable.
        let mut reported = Vec::new();
        while let Ok(r) = reports.try_recv() {
            batch.delivered(&mut shard, r.delivered);
            reported.push(r.done);
        }
        // Then the time input (MON-6): deadlines due by the batch's `now`
        // apply before its commands, so a reversal at the window's end sees
        // the money already payable.
        if shard
            .next_deadline_ms()
            .is_some_and(|due| due <= batch.now_ms())
        {
            batch.tick(&mut shard);
        }
        for op in ops {
            let mut reply = apply_guarded(&mut shard, &guard, &mut batch, &op, &mut effects);
            if let Some(rid) = op.command.request_id() {
                settle_claim(&claims, &shard, rid);
            }
            if let Err(rej) = &mut reply {
                if let Some(reason) = rej.reason {
                    let origin = op.origin;
                    tracing::debug!(shard = shard.index(), %reason, ?origin, "code_invalid");
                    // Staff see why (issue 8); tenants get the uniform reply.
                    if origin.caller == Caller::Staff {
                        rej.message = format!("{}; for staff: {reason}", rej.message);
                    }
                }
            }
            replies.push((op.reply, reply));
        }
        stats.commands.fetch_add(replies.len(), Ordering::Relaxed);
        stats.effects.fetch_add(effects.len(), Ordering::Relaxed);
        let now_ms = batch.now_ms();
        let outbox = crate::outbox::rows_of(shard.index(), first_effect, now_ms, effects.drain(..));
        let record = batch
            .record(shard.index())
            .map(|r| r.encode())
            .unwrap_or_default();
        let (messages, to_catalog) = (shard.take_messages(), to_catalog.clone());
        let (wake, sends) = (wake.clone(), !outbox.is_empty());
        let job = Job {
            record,
            outbox,
            done: Box::new(move || {
                if sends {
                    wake.kind(crate::outbox::rows::Kind::Sms);
                }
                for done in reported {
                    let _ = done.send(());
                }
                // Messages first: a client that got a reply and then asks
                // the catalog (a settlement run) finds their money there.
                to_catalog.send(messages);
                for (to, reply) in replies {
                    deliver(to, reply);
                }
            }),
        };
        if commit.send(job).is_err() {
            // The committer stopped (fail-stop in progress): never ack.
            return;
        }
    }
}

/// SHA-256 of each registered token → its principal.
pub type TokenMap =
    dashmap::DashMap<[u8; 32], vouch_engine::catalog::Actor, foldhash::fast::RandomState>;

/// What the catalog worker is asked to do.
pub enum CatalogWork {
    /// A command with its actor and request id.
    Command(CatalogEntry),
    /// A read, as the actor.
    Read(Actor, CatalogQuery),
    /// The server's own input (its tick, a lockout); nobody waits for the
    /// reply.
    System(SystemInput),
}

/// One catalog command or read for the catalog worker and where its reply
/// goes.
pub struct CatalogOp {
    /// The command or read.
    pub work: CatalogWork,
    /// The connection writer's queue.
    pub tx: ConnTx,
    /// Correlation id of the request.
    pub corr: u64,
    /// The request's in-flight permit.
    pub permit: Option<Permit>,
}

/// Runs the catalog worker until its queue closes: like a shard worker,
/// it applies a batch, logs what changed state as one record, and releases
/// the replies once the record is durable. A read sees the commands queued
/// before it and is answered with them, once they are durable (invariant
/// 3: a read never shows what a crash could still undo). Catalog events are logged at
/// warn level for staff (ONB-4 freeze notices, ONB-6 `deposit_short`,
/// PUB-3 delistings).
#[allow(clippy::too_many_arguments)]
pub fn run_catalog_worker(
    mut catalog: Catalog,
    mut rx: mpsc::Receiver<Vec<CatalogOp>>,
    messages: crossbeam_channel::Receiver<ShardMessage>,
    commit: crossbeam_channel::Sender<Job>,
    tokens: Arc<TokenMap>,
    fact_txs: Vec<crossbeam_channel::Sender<CatalogFact>>,
    guard: Arc<Guard>,
    revoked: Arc<tokio::sync::watch::Sender<u64>>,
) {
    let links = Arc::new(CatalogLinks {
        tokens,
        fact_txs,
        guard,
        revoked,
    });
    let mut clock = Clock::default();
    let mut events = Vec::new();
    while let Some(ops) = next_batch(&mut rx) {
        let mut batch = CatalogBatch::new(clock.now_ms());
        let mut after = CatalogAfter::default();
        // The shards' payable money first (durable in their records), so
        // every read and settlement run sees what reached the catalog.
        while let Ok(m) = messages.try_recv() {
            if let Err(e) = batch.message(&mut catalog, &m, &mut events) {
                tracing::error!(shard = m.shard, seq = m.seq, "shard message refused: {e}");
            }
        }
        for op in ops {
            let response = catalog_op(&mut catalog, &mut batch, &op.work, &mut events, &mut after);
            after.replies.push((op, response));
        }
        let record = batch.record().map(|r| r.encode()).unwrap_or_default();
        let links = links.clone();
        let job = Job {
            record,
            outbox: Vec::new(),
            done: Box::new(move || after.release(&links)),
        };
        if commit.send(job).is_err() {
            return;
        }
    }
}

/// What the catalog's durable changes reach in the server.
struct CatalogLinks {
    tokens: Arc<TokenMap>,
    fact_txs: Vec<crossbeam_channel::Sender<CatalogFact>>,
    guard: Arc<Guard>,
    revoked: Arc<tokio::sync::watch::Sender<u64>>,
}

/// What one catalog batch changes outside the catalog, released once its
/// record is durable.
#[derive(Default)]
struct CatalogAfter {
    replies: Vec<(CatalogOp, Response)>,
    /// Token hash → its principal now (None: revoked).
    token_updates: Vec<([u8; 32], Option<Actor>)>,
    facts: Vec<CatalogFact>,
    lifted: Vec<LockKey>,
}

/// Applies or reads one catalog op and notes what it changes outside.
fn catalog_op(
    catalog: &mut Catalog,
    batch: &mut CatalogBatch,
    work: &CatalogWork,
    events: &mut Vec<CatalogEvent>,
    after: &mut CatalogAfter,
) -> Response {
    let applied = match work {
        CatalogWork::Read(actor, query) => {
            let reply = catalog.read(*actor, query);
            return Response::CatalogView(reply.map_err(|r| WireError::from(&r)));
        }
        CatalogWork::System(input) => batch.system(catalog, input, events),
        CatalogWork::Command(e) => {
            let applied = batch.command(catalog, e, events);
            note_command(catalog, e, &applied, after);
            applied
        }
    };
    note_events(events, after);
    match applied.reply {
        Ok(outcome) if applied.repeat => Response::CatalogReplayed(outcome),
        reply => Response::Catalog(reply.map_err(|r| WireError::from(&r))),
    }
}

/// What a client's catalog command changes in the server once durable.
fn note_command(
    catalog: &Catalog,
    e: &CatalogEntry,
    applied: &CatalogApplied,
    after: &mut CatalogAfter,
) {
    // The catalog's state after the command decides, not the command: a
    // replayed IssueToken must not revive a revoked token.
    if let CatalogCommand::IssueToken { token_hash, .. } = &e.command {
        after
            .token_updates
            .push((*token_hash, catalog.token_actor(token_hash)));
    }
    // A retry of a lift returns its original reply and lifts nothing: the
    // key may have been locked out again since.
    if let (CatalogCommand::LiftLockout { key }, Ok(_), false) =
        (&e.command, &applied.reply, applied.repeat)
    {
        tracing::info!(key = %key, by = %e.actor, "lockout lifted");
        after.lifted.push(*key);
    }
}

/// The catalog's events: facts for the shards, revoked tokens, and the
/// business events staff act on, logged.
fn note_events(events: &mut Vec<CatalogEvent>, after: &mut CatalogAfter) {
    for event in events.drain(..) {
        match event {
            CatalogEvent::Fact(f) => after.facts.push(f),
            CatalogEvent::TokenRevoked { token_hash, .. } => {
                tracing::info!("{event}");
                after.token_updates.push((token_hash, None));
            }
            // Business events staff act on (ONB-4, ONB-6, PUB-3), at the
            // default level.
            event => tracing::info!("{event}"),
        }
    }
}

impl CatalogAfter {
    /// Runs once the batch's record is durable: shards learn the facts,
    /// credentials change (a revocation closes the token's connections),
    /// lifted lockouts end, and the replies go out.
    fn release(self, links: &CatalogLinks) {
        for f in &self.facts {
            for tx in &links.fact_txs {
                let _ = tx.send(f.clone());
            }
        }
        let mut any_revoked = false;
        for (hash, actor) in self.token_updates {
            match actor {
                Some(a) => {
                    links.tokens.insert(hash, a);
                }
                None => any_revoked |= links.tokens.remove(&hash).is_some(),
            }
        }
        if any_revoked {
            links.revoked.send_modify(|epoch| *epoch += 1);
        }
        for key in &self.lifted {
            links.guard.lift(key);
        }
        for (op, response) in self.replies {
            let _ = op.tx.send((op.corr, response, op.permit));
        }
    }
}
