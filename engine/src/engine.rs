//! A set of shards with the routing function, for in-process use (tests,
//! benchmarks, replay). The server runs each shard on its own worker thread
//! and routes with the same [`route`].

use crate::command::{Command, Effect, Reply};
use crate::shard::{Caller, EngineConfig, Shard};

/// The xxh3 hash of an order id: the order's shard is it mod the count.
fn by_order(order_id: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(order_id.as_bytes())
}

/// The shard that owns a command (DESIGN invariant 2): issue and the
/// order commands (refund, extend, show) by the order id's xxh3 hash, code
/// commands by the code's value, audit by its field. `shards` must be the
/// engine's shard count.
pub fn route(command: &Command, shards: u32) -> u32 {
    let n = u64::from(shards);
    let r = match command {
        Command::Issue(c) => by_order(&c.order_id) % n,
        Command::Lookup(c) => c.code.value() % n,
        Command::Redeem(c) => c.code.value() % n,
        Command::Reverse(c) => c.code.value() % n,
        Command::History(c) => c.code.value() % n,
        Command::AuditVouchers(c) => u64::from(c.shard) % n,
        Command::AuditRedemptions(c) => u64::from(c.shard) % n,
        Command::Refund(c) => by_order(&c.order_id) % n,
        Command::Extend(c) => by_order(&c.order_id) % n,
        Command::Order(c) => by_order(&c.order_id) % n,
        Command::TransferStep(c) => by_order(&c.order_id) % n,
        Command::Transfers(c) => u64::from(c.shard) % n,
        Command::Orders(c) => u64::from(c.shard) % n,
        Command::Entries(c) => u64::from(c.shard) % n,
    };
    r as u32
}

/// All shards of one engine in one value.
///
/// Request ids are bound to the shard of their first successful use
/// (invariant 4 across shards): a later command with the same request id
/// goes to that shard, whatever its code, where it is the original
/// request's retry or a `request_conflict`. A refused command binds nothing,
/// so a corrected retry goes where its code lives.
pub struct Engine {
    shards: Vec<Shard>,
    claims: std::collections::BTreeMap<crate::RequestId, u32>,
}

impl Engine {
    /// A new engine with `config.shards` empty shards seeded from `seed`.
    ///
    /// Errors: the message of [`EngineConfig::validate`].
    pub fn new(config: EngineConfig, seed: [u8; 32]) -> Result<Engine, String> {
        let shards = (0..config.shards)
            .map(|i| Shard::new(i, config.clone(), seed))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Engine {
            shards,
            claims: Default::default(),
        })
    }

    /// Routes and applies one command at `now_ms` as staff; see
    /// [`Shard::apply`].
    pub fn apply(&mut self, now_ms: i64, command: &Command, effects: &mut Vec<Effect>) -> Reply {
        self.apply_as(now_ms, Caller::Staff, command, effects)
    }

    /// Routes and applies one command at `now_ms` sent by `caller`; see
    /// [`Shard::apply_as`].
    pub fn apply_as(
        &mut self,
        now_ms: i64,
        caller: Caller,
        command: &Command,
        effects: &mut Vec<Effect>,
    ) -> Reply {
        let mut i = route(command, self.shards.len() as u32);
        let rid = command.request_id();
        if let Some(claimed) = rid.and_then(|r| self.claims.get(&r)) {
            i = *claimed;
        }
        let shard = &mut self.shards[i as usize];
        let reply = shard.apply_as(now_ms, caller, command, effects);
        if let Some(r) = rid.filter(|r| shard.knows_request(r)) {
            self.claims.entry(r).or_insert(i);
        }
        reply
    }

    /// Gives a catalog fact to every shard (ORD-7); see
    /// [`Shard::note_fact`].
    pub fn note_fact(&mut self, fact: &crate::message::CatalogFact) {
        for s in &mut self.shards {
            s.note_fact(fact);
        }
    }

    /// The time input of every shard at `now_ms` (MON-6); see
    /// [`Shard::tick`]. Returns the deadlines applied.
    pub fn tick(&mut self, now_ms: i64) -> usize {
        self.shards.iter_mut().map(|s| s.tick(now_ms)).sum()
    }

    /// The shards, for inspection.
    pub fn shards(&self) -> &[Shard] {
        &self.shards
    }

    /// Shard `index`, to take its messages for the catalog
    /// ([`Shard::take_messages`]). Panics when there is no such shard.
    pub fn shard_mut(&mut self, index: u32) -> &mut Shard {
        &mut self.shards[index as usize]
    }

    /// Checks every shard's invariants; panics on a broken one.
    pub fn check_invariants(&self) {
        for s in &self.shards {
            s.check_invariants();
        }
    }
}
