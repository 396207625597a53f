//! The log record (DESIGN invariant 1): its bytes are pinned, other
//! versions and damaged records are refused, and replaying a batch's
//! record through the workers' path rebuilds the same state.

use vouch_engine::catalog::{Actor, Catalog, CatalogCommand, SystemInput};
use vouch_engine::command::*;
use vouch_engine::ledger::Reason;
use vouch_engine::log::{
    CatalogBatch, CatalogEntry, CatalogInput, LogError, LogRecord, ShardBatch, ShardInput,
    LOG_FORMAT,
};
use vouch_engine::message::{CatalogFact, ShardMessage, ShardMessageBody};
use vouch_engine::shard::Caller;
use vouch_engine::{
    Code, Command, EngineConfig, Fen, Outcome, OutletId, SellerId, Shard, VerifierId,
};

mod common;
use common::{issue_cmd, NOW};

fn shard() -> Shard {
    let config = EngineConfig {
        shards: 1,
        ..EngineConfig::default()
    };
    Shard::new(0, config, [7; 32]).unwrap()
}

fn issue(order: &str, units: u32) -> Command {
    issue_cmd(order, units, 8)
}

fn redeem(code: Code, units: u32, serial: u64) -> Command {
    Command::Redeem(Redeem {
        request_id: RequestId {
            source: 900,
            serial,
        },
        code,
        phone_last4: "1234".into(),
        units,
        outlet_id: OutletId(3),
        verifier_id: VerifierId(4),
        pos_id: None,
    })
}

fn fact() -> CatalogFact {
    CatalogFact::Verifier {
        id: VerifierId(4),
        seller: SellerId(10),
        outlets: vec![OutletId(3)],
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The bytes of a shard record and a catalog record are pinned: a change
/// of layout must come with a new [`LOG_FORMAT`] (and this test's update),
/// or directories written before would replay into another state.
#[test]
fn inv_1_log_record_bytes_are_pinned() {
    let code = Code::new(8, 12_345_678).unwrap();
    let shard_record = LogRecord::Shard {
        shard: 1,
        now_ms: NOW,
        inputs: vec![
            ShardInput::Fact(fact()),
            ShardInput::Command(issue("o-1", 2)),
            ShardInput::Command(redeem(code, 1, 7)),
        ],
    };
    let catalog_record = LogRecord::Catalog {
        now_ms: NOW,
        inputs: vec![
            CatalogInput::Command(CatalogEntry {
                actor: Actor::Seller(SellerId(10)),
                request_id: RequestId {
                    source: 1,
                    serial: 2,
                },
                command: CatalogCommand::AcceptAgreement,
            }),
            CatalogInput::System(SystemInput::Tick),
            CatalogInput::Message(ShardMessage {
                shard: 1,
                seq: 3,
                at_ms: NOW,
                body: ShardMessageBody::Payable {
                    seller: SellerId(10),
                    reason: Reason::WindowEnded,
                    amount: Fen::new(3_998),
                    entries: 2,
                },
            }),
        ],
    };
    assert_eq!(LOG_FORMAT, 4);
    assert_eq!(
        hex(&shard_record.encode()),
        "0004000180c8add7c468030101040a01030000036f2d310a14029e1f0b313338303030303132333401\
         1e08000284070708cec2f105043132333401030400"
    );
    assert_eq!(
        hex(&catalog_record.encode()),
        // ... then Message (2): shard 1, seq 3, at, Payable (0) seller 10,
        // window_ended (7), 39.98 (zigzag 7996), 2 entries.
        "00040180c8add7c4680300010a010202010002010380c8add7c468000a07bc3e02"
    );
    for record in [shard_record, catalog_record] {
        assert_eq!(LogRecord::decode(&record.encode()), Ok(record));
    }
}

/// A record of another version, a truncated one and one with trailing
/// bytes are refused by name, never half-applied.
#[test]
fn inv_1_records_of_another_version_or_damaged_are_refused() {
    let record = LogRecord::Shard {
        shard: 0,
        now_ms: NOW,
        inputs: vec![ShardInput::Command(issue("o-1", 2))],
    };
    let bytes = record.encode();
    let mut older = bytes.clone();
    older[..2].copy_from_slice(&2u16.to_be_bytes());
    assert_eq!(
        LogRecord::decode(&older),
        Err(LogError::Format { found: 2 })
    );
    assert!(matches!(
        LogRecord::decode(&bytes[..bytes.len() - 3]),
        Err(LogError::Malformed(_))
    ));
    let mut longer = bytes.clone();
    longer.push(0);
    assert_eq!(
        LogRecord::decode(&longer),
        Err(LogError::Malformed("1 trailing bytes".into()))
    );
    assert!(matches!(
        LogRecord::decode(&[0]),
        Err(LogError::Malformed(_))
    ));
}

fn audit(shard: &mut Shard) -> (Outcome, Outcome) {
    let vouchers = Command::AuditVouchers(AuditVouchers {
        shard: 0,
        from: 0,
        limit: 100,
    });
    let redemptions = Command::AuditRedemptions(AuditRedemptions {
        shard: 0,
        from: 0,
        limit: 100,
    });
    (
        shard.apply(NOW, &vouchers, &mut Vec::new()).unwrap(),
        shard.apply(NOW, &redemptions, &mut Vec::new()).unwrap(),
    )
}

/// Only what changed state is in a batch's record — not reads, refusals
/// or retries — and replaying the record into a fresh shard through the
/// same path rebuilds the same vouchers and verification log.
#[test]
fn inv_1_a_replayed_batch_rebuilds_the_same_state() {
    let mut live = shard();
    let mut batch = ShardBatch::new(NOW);
    let mut effects = Vec::new();
    batch.fact(&mut live, fact());
    let issued = batch.command(&mut live, Caller::Staff, &issue("o-1", 3), &mut effects);
    let Ok(Outcome::Issued(i)) = issued.reply else {
        panic!("{issued:?}")
    };
    assert!(issued.logged && !issued.repeat);
    let again = batch.command(&mut live, Caller::Staff, &issue("o-1", 3), &mut effects);
    assert!(again.repeat && !again.logged, "a retry is not logged");
    let first = batch.command(
        &mut live,
        Caller::Staff,
        &redeem(i.code, 1, 1),
        &mut effects,
    );
    assert!(first.logged, "{first:?}");
    let wrong = batch.command(
        &mut live,
        Caller::Staff,
        &redeem(i.code, 1, 2),
        &mut effects,
    );
    assert!(
        wrong.reply.is_err() && !wrong.logged,
        "the old code is dead"
    );
    let look = Command::Lookup(Lookup {
        code: i.code,
        phone_last4: "1234".into(),
        verifier_id: None,
        pos_id: None,
    });
    assert!(
        !batch
            .command(&mut live, Caller::Staff, &look, &mut effects)
            .logged
    );
    let record = batch.record(0).expect("the batch changed state");
    let LogRecord::Shard { inputs, now_ms, .. } = LogRecord::decode(&record.encode()).unwrap()
    else {
        panic!("a shard record")
    };
    assert_eq!(inputs.len(), 3, "fact, issue, redemption");
    let mut replayed = shard();
    let mut seen = Vec::new();
    ShardBatch::replay(&mut replayed, now_ms, &inputs, &mut effects, |_, c| {
        seen.push(c.clone())
    })
    .unwrap();
    assert_eq!(seen.len(), 2);
    assert_eq!(audit(&mut replayed), audit(&mut live));
    replayed.check_invariants();
}

/// An input that changes nothing on replay means the log and the engine
/// disagree: recovery stops and names the input.
#[test]
fn inv_1_replay_stops_when_a_logged_input_changes_nothing() {
    let mut s = shard();
    let code = Code::new(8, 12_345_678).unwrap();
    let inputs = vec![
        ShardInput::Command(issue("o-1", 1)),
        ShardInput::Command(redeem(code, 1, 1)),
    ];
    let err = ShardBatch::replay(&mut s, NOW, &inputs, &mut Vec::new(), |_, _| {}).unwrap_err();
    assert!(
        matches!(&err, LogError::Diverged { index: 1, reply } if reply.starts_with("refused")),
        "{err}"
    );
    // The catalog likewise: the same seller created twice.
    let mut catalog = Catalog::new(jiff::tz::TimeZone::UTC);
    let create = |serial| CatalogEntry {
        actor: Actor::Staff,
        request_id: RequestId { source: 1, serial },
        command: CatalogCommand::CreateSeller {
            id: SellerId(10),
            kind: vouch_engine::catalog::SellerKind::Mall,
            self_issuing: false,
            group_buying_operator: false,
        },
    };
    let err = CatalogBatch::replay(
        &mut catalog,
        NOW,
        &[
            CatalogInput::Command(create(1)),
            CatalogInput::Command(create(2)),
        ],
        &mut Vec::new(),
    )
    .unwrap_err();
    assert!(matches!(err, LogError::Diverged { index: 1, .. }), "{err}");
}
