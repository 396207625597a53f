//! The log record and the one path that applies a batch.
//!
//! What a worker applies in one batch, and only what changed state, is one
//! [`LogRecord`]; replaying the records in order rebuilds every shard and
//! the catalog (DESIGN invariant 1). The live workers and recovery go
//! through the same functions — [`ShardBatch`] and [`CatalogBatch`] — so the
//! rule "what is logged" lives here once and recovery cannot drift from it:
//! on replay, every input must change state again (it was logged because it
//! did), or recovery stops with [`LogError::Diverged`].
//!
//! Bytes: a record is its format version (`u16`, big-endian) followed by the
//! postcard encoding of [`LogRecord`]. A golden test pins them.

use crate::catalog::{
    Actor, Catalog, CatalogCommand, CatalogEvent, CatalogOutcome, CatalogReply, SystemInput,
};
use crate::command::{Command, Effect, Reply};
use crate::message::{CatalogFact, ShardMessage};
use crate::shard::{Caller, Shard};
use crate::RequestId;
use serde::{Deserialize, Serialize};

/// The layout of log records this build writes and reads. 3: records carry
/// their version; catalog facts are [`ShardInput::Fact`], not a command.
/// 4: shards hand payable money to the catalog ([`CatalogInput::Message`]).
pub const LOG_FORMAT: u16 = 4;

/// One input a shard applied and logged.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ShardInput {
    /// A client command that changed state (issue, redeem, reverse).
    Command(Command),
    /// A catalog fact the shard noted before the batch's commands.
    Fact(CatalogFact),
    /// The shard's time input at the batch's `now` (MON-6): it applied
    /// deadlines (reversal-window ends).
    Tick,
    /// The first accepted delivery of a code to an order's buyer (ORD-2).
    Delivered(crate::message::CodeDelivered),
}

/// A catalog command as applied: who asked, with which request id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogEntry {
    /// The authenticated actor.
    pub actor: Actor,
    /// Client request id.
    pub request_id: RequestId,
    /// The command.
    pub command: CatalogCommand,
}

/// One input the catalog applied and logged.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CatalogInput {
    /// A client's catalog command.
    Command(CatalogEntry),
    /// The server's own input (its tick, a lockout, the daily settlement).
    System(SystemInput),
    /// A voucher shard's message (payable money), applied once.
    Message(ShardMessage),
}

/// One log record: the state-changing inputs one worker applied in one
/// batch, with the batch's time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LogRecord {
    /// A voucher shard's batch.
    Shard {
        /// Shard that applied the batch.
        shard: u32,
        /// The batch's `now`, unix ms.
        now_ms: i64,
        /// The batch's state-changing inputs, in apply order.
        inputs: Vec<ShardInput>,
    },
    /// The catalog's batch.
    Catalog {
        /// The batch's `now`, unix ms.
        now_ms: i64,
        /// The batch's state-changing inputs, in apply order.
        inputs: Vec<CatalogInput>,
    },
}

/// Why a record could not be read or replayed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LogError {
    /// The record was written in another layout.
    #[error("log record in format {found}; this build reads format {LOG_FORMAT}")]
    Format {
        /// The record's version.
        found: u16,
    },
    /// The bytes are not a record.
    #[error("log record is malformed: {0}")]
    Malformed(String),
    /// The record names a shard this engine does not have.
    #[error("log record names shard {0}, which does not exist")]
    NoSuchShard(u32),
    /// A logged input did not change state again on replay: the log and
    /// the engine disagree (a bug or another build's log).
    #[error("replay diverged: logged input {index} of the record changed nothing ({reply})")]
    Diverged {
        /// Position of the input in its record.
        index: usize,
        /// The reply it got on replay, in words.
        reply: String,
    },
}

impl LogRecord {
    /// The record's bytes: [`LOG_FORMAT`] (2 bytes, big-endian) then postcard.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = LOG_FORMAT.to_be_bytes().to_vec();
        let body = postcard::to_allocvec(self).expect("log records always serialize");
        out.extend_from_slice(&body);
        out
    }

    /// Reads a record written by [`LogRecord::encode`].
    ///
    /// Errors: [`LogError::Format`] for another version,
    /// [`LogError::Malformed`] for bytes that do not decode (or trail).
    pub fn decode(bytes: &[u8]) -> Result<LogRecord, LogError> {
        let (version, body) = match bytes {
            [a, b, body @ ..] => (u16::from_be_bytes([*a, *b]), body),
            _ => return Err(LogError::Malformed("shorter than its version".into())),
        };
        if version != LOG_FORMAT {
            return Err(LogError::Format { found: version });
        }
        let (record, rest) = postcard::take_from_bytes::<LogRecord>(body)
            .map_err(|e| LogError::Malformed(e.to_string()))?;
        if !rest.is_empty() {
            return Err(LogError::Malformed(format!(
                "{} trailing bytes",
                rest.len()
            )));
        }
        Ok(record)
    }
}

/// Whether a reply means the command changed state and must be logged.
/// Refused commands change nothing — except `code_space_exhausted`, which
/// advanced the shard's code generator — so they need no log record, and a
/// flood of code guesses costs no disk.
pub fn changed_state(reply: &Reply) -> bool {
    match reply {
        Ok(_) => true,
        Err(r) => r.code == crate::ErrorCode::CodeSpaceExhausted,
    }
}

/// One batch of a shard, live or replayed: applies inputs and keeps those
/// that changed state for the batch's record.
pub struct ShardBatch {
    now_ms: i64,
    inputs: Vec<ShardInput>,
}

/// What one command of a batch got.
#[derive(Debug)]
pub struct Applied {
    /// The reply.
    pub reply: Reply,
    /// The command was a retry of one already applied: its original
    /// reply, nothing changed.
    pub repeat: bool,
    /// The command changed state and is in the batch's record.
    pub logged: bool,
}

impl ShardBatch {
    /// A batch applied at `now_ms` (unix ms).
    pub fn new(now_ms: i64) -> ShardBatch {
        ShardBatch {
            now_ms,
            inputs: Vec::new(),
        }
    }

    /// The batch's time, unix ms.
    pub fn now_ms(&self) -> i64 {
        self.now_ms
    }

    /// Notes a catalog fact in `shard` (ORD-7); always logged.
    pub fn fact(&mut self, shard: &mut Shard, fact: CatalogFact) {
        shard.note_fact(&fact);
        self.inputs.push(ShardInput::Fact(fact));
    }

    /// Notes that a code reached the buyer of `d.order_id` (ORD-2); logged
    /// when it changed state (the order's first delivery). Returns whether
    /// it did.
    pub fn delivered(&mut self, shard: &mut Shard, d: crate::message::CodeDelivered) -> bool {
        let changed = shard.note_delivered(&d.order_id);
        if changed {
            self.inputs.push(ShardInput::Delivered(d));
        }
        changed
    }

    /// Applies the shard's due deadlines at the batch's time, logged when
    /// it applied any; returns how many it applied.
    pub fn tick(&mut self, shard: &mut Shard) -> usize {
        let applied = shard.tick(self.now_ms);
        if applied > 0 {
            self.inputs.push(ShardInput::Tick);
        }
        applied
    }

    /// Applies `command` from `caller` to `shard` and logs it when it
    /// changed state (a mutation that succeeded, not a retry).
    pub fn command(
        &mut self,
        shard: &mut Shard,
        caller: Caller,
        command: &Command,
        effects: &mut Vec<Effect>,
    ) -> Applied {
        let repeat = shard.is_repeat(command);
        let before = effects.len();
        let reply = shard.apply_as(self.now_ms, caller, command, effects);
        let logged = command.is_mutation() && changed_state(&reply) && !repeat;
        if logged {
            self.inputs.push(ShardInput::Command(command.clone()));
            shard.count_effects(effects.len() - before);
        } else {
            // Only what the log rebuilds may reach the outbox.
            debug_assert_eq!(effects.len(), before, "an unlogged command made effects");
            effects.truncate(before);
        }
        Applied {
            reply,
            repeat,
            logged,
        }
    }

    /// The batch's record for shard `index`; None when nothing changed.
    pub fn record(self, index: u32) -> Option<LogRecord> {
        (!self.inputs.is_empty()).then_some(LogRecord::Shard {
            shard: index,
            now_ms: self.now_ms,
            inputs: self.inputs,
        })
    }

    /// Replays a logged shard batch through the same path as the live
    /// worker; `each` sees every replayed command with its reply.
    ///
    /// Errors: [`LogError::Diverged`] when an input changes nothing again.
    pub fn replay(
        shard: &mut Shard,
        now_ms: i64,
        inputs: &[ShardInput],
        effects: &mut Vec<Effect>,
        mut each: impl FnMut(&Shard, &Command),
    ) -> Result<(), LogError> {
        let mut batch = ShardBatch::new(now_ms);
        for (index, input) in inputs.iter().enumerate() {
            match input {
                ShardInput::Fact(f) => batch.fact(shard, f.clone()),
                ShardInput::Tick => {
                    if batch.tick(shard) == 0 {
                        return Err(LogError::Diverged {
                            index,
                            reply: "a tick with no deadline due".into(),
                        });
                    }
                }
                ShardInput::Delivered(d) => {
                    if !batch.delivered(shard, d.clone()) {
                        return Err(LogError::Diverged {
                            index,
                            reply: format!("order {} was delivered already", d.order_id),
                        });
                    }
                }
                ShardInput::Command(c) => {
                    let applied = batch.command(shard, Caller::Staff, c, effects);
                    if !applied.logged {
                        return Err(diverged(index, &applied.reply));
                    }
                    each(shard, c);
                }
            }
        }
        Ok(())
    }
}

fn diverged<T: std::fmt::Display, E: std::fmt::Display>(
    index: usize,
    reply: &Result<T, E>,
) -> LogError {
    let reply = match reply {
        Ok(o) => format!("repeat of {o}"),
        Err(e) => format!("refused: {e}"),
    };
    LogError::Diverged { index, reply }
}

/// One batch of the catalog, live or replayed.
pub struct CatalogBatch {
    now_ms: i64,
    inputs: Vec<CatalogInput>,
}

/// What one catalog command of a batch got.
#[derive(Debug)]
pub struct CatalogApplied {
    /// The reply.
    pub reply: CatalogReply,
    /// A retry of a command already applied: its original reply.
    pub repeat: bool,
    /// The command changed state and is in the batch's record.
    pub logged: bool,
}

impl CatalogBatch {
    /// A batch applied at `now_ms` (unix ms).
    pub fn new(now_ms: i64) -> CatalogBatch {
        CatalogBatch {
            now_ms,
            inputs: Vec::new(),
        }
    }

    /// Applies `entry` to `catalog`; events go to `events`. Logged when it
    /// succeeded and is not a retry (else any client could grow the log at
    /// will).
    pub fn command(
        &mut self,
        catalog: &mut Catalog,
        entry: &CatalogEntry,
        events: &mut Vec<CatalogEvent>,
    ) -> CatalogApplied {
        let repeat = catalog.is_repeat(&entry.request_id);
        let reply = catalog.apply(
            self.now_ms,
            entry.actor,
            entry.request_id,
            &entry.command,
            events,
        );
        let logged = reply.is_ok() && !repeat;
        if logged {
            self.inputs.push(CatalogInput::Command(entry.clone()));
        }
        CatalogApplied {
            reply,
            repeat,
            logged,
        }
    }

    /// Applies the server's own `input`. Logged when it succeeded and is
    /// not a tick that changed nothing (an idle server writes no record
    /// every minute).
    pub fn system(
        &mut self,
        catalog: &mut Catalog,
        input: &SystemInput,
        events: &mut Vec<CatalogEvent>,
    ) -> CatalogApplied {
        let before = catalog.daily_cutoff_ms();
        let reply = catalog.apply_system(self.now_ms, input, events);
        let idle = match &reply {
            Ok(CatalogOutcome::Ticked {
                delisted,
                lockouts_ended: 0,
            }) => delisted.is_empty(),
            Ok(CatalogOutcome::Settled(created)) => {
                created.is_empty() && catalog.daily_cutoff_ms() == before
            }
            _ => false,
        };
        let logged = reply.is_ok() && !idle;
        if logged {
            self.inputs.push(CatalogInput::System(input.clone()));
        }
        CatalogApplied {
            reply,
            repeat: false,
            logged,
        }
    }

    /// Applies a voucher shard's message (exactly once: one already
    /// applied changes nothing and is not logged). Returns whether it was
    /// applied now.
    ///
    /// Errors: as [`Catalog::apply_message`]; nothing changes.
    pub fn message(
        &mut self,
        catalog: &mut Catalog,
        message: &ShardMessage,
        events: &mut Vec<CatalogEvent>,
    ) -> Result<bool, crate::Rejection> {
        let applied = catalog.apply_message(self.now_ms, message, events)?;
        if applied {
            self.inputs.push(CatalogInput::Message(message.clone()));
        }
        Ok(applied)
    }

    /// The batch's record; None when nothing changed.
    pub fn record(self) -> Option<LogRecord> {
        (!self.inputs.is_empty()).then_some(LogRecord::Catalog {
            now_ms: self.now_ms,
            inputs: self.inputs,
        })
    }

    /// Replays a logged catalog batch through the same path as the live
    /// worker.
    ///
    /// Errors: [`LogError::Diverged`] when an entry changes nothing again.
    pub fn replay(
        catalog: &mut Catalog,
        now_ms: i64,
        inputs: &[CatalogInput],
        events: &mut Vec<CatalogEvent>,
    ) -> Result<(), LogError> {
        let mut batch = CatalogBatch::new(now_ms);
        for (index, input) in inputs.iter().enumerate() {
            let applied = match input {
                CatalogInput::Command(entry) => batch.command(catalog, entry, events),
                CatalogInput::System(system) => batch.system(catalog, system, events),
                CatalogInput::Message(m) => match batch.message(catalog, m, events) {
                    Ok(true) => continue,
                    Ok(false) => {
                        return Err(LogError::Diverged {
                            index,
                            reply: format!("message {} of shard {} again", m.seq, m.shard),
                        })
                    }
                    Err(e) => {
                        return Err(LogError::Diverged {
                            index,
                            reply: format!("refused: {e}"),
                        })
                    }
                },
            };
            if !applied.logged {
                return Err(diverged(index, &applied.reply));
            }
        }
        Ok(())
    }
}
