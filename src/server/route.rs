//! Routing: each command goes to the shard of its code or order id (a
//! used request id to the shard of its first use), catalog commands and
//! reads to the catalog worker; requests the server answers itself are
//! answered here. Every reply carries its request's in-flight permit.

use super::{limits, Ctx};
use crate::pipeline::{self, CatalogOp, CatalogWork, ConnTx, Gather, Op, Origin, Permit, ReplyTo};
use vouch_engine::catalog::Actor;
use vouch_engine::engine::route;
use vouch_engine::log::CatalogEntry;
use vouch_engine::{Command, ErrorCode};
use vouch_protocol::frame::BATCH_COMMANDS_MAX;
use vouch_protocol::{Request, Response, WireError, PROTOCOL_VERSION};

/// Sends every shard's pending ops and the catalog's; false when the
/// queues are gone.
pub(super) async fn flush(
    ctx: &Ctx,
    pending: &mut [Vec<Op>],
    catalog: &mut Vec<CatalogOp>,
) -> bool {
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

/// Who sent a request and where its reply goes.
#[derive(Clone, Copy)]
pub(super) struct Requester<'a> {
    /// The request's correlation id.
    pub corr: u64,
    /// Who sent it.
    pub origin: Origin,
    /// The connection writer's queue.
    pub tx: &'a ConnTx,
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
pub(super) fn dispatch(
    ctx: &Ctx,
    request: Request,
    from: Requester<'_>,
    permit: Permit,
    pending: &mut [Vec<Op>],
    pending_catalog: &mut Vec<CatalogOp>,
) {
    let Requester { corr, origin, tx } = from;
    let answer = |response: Response, permit: Permit| {
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
                reversal_window_ms: ctx.reversal_window_ms,
                now_ms: super::now_ms(),
            },
            permit,
        ),
        Request::Command(command) => {
            let audit_shard = match &command {
                Command::AuditVouchers(a) => Some(a.shard),
                Command::AuditRedemptions(a) => Some(a.shard),
                Command::Transfers(a) => Some(a.shard),
                Command::Orders(a) => Some(a.shard),
                Command::Entries(a) => Some(a.shard),
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
                origin,
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
        Request::Outbox(request) => {
            // A scan may read every message row: off the async threads.
            let (store, tx) = (ctx.outbox.clone(), tx.clone());
            tokio::task::spawn_blocking(move || {
                let now = crate::clock::now_ms();
                let view = crate::outbox::staff::answer(&store, now, request);
                let _ = tx.send((corr, Response::Outbox(view), Some(permit)));
            });
        }
        Request::IssueBatch(items) => {
            let commands = items.into_iter().map(Command::Issue).collect();
            dispatch_batch(ctx, commands, from, permit, pending)
        }
        Request::RedeemBatch(items) => {
            let commands = items.into_iter().map(Command::Redeem).collect();
            dispatch_batch(ctx, commands, from, permit, pending)
        }
    }
}

fn dispatch_batch(
    ctx: &Ctx,
    commands: Vec<Command>,
    from: Requester<'_>,
    permit: Permit,
    pending: &mut [Vec<Op>],
) {
    let Requester { corr, origin, tx } = from;
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
            origin,
            reply: ReplyTo::Gather {
                batch: gather.clone(),
                index,
            },
        });
    }
}
