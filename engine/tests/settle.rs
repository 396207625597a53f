//! Settlement across the engine's state machines (SET-3, MON-5, MON-7,
//! RPT-4): shards hand payable money to the catalog as numbered messages,
//! applied once each; a run per seller and cutoff pays it out in transit;
//! the payment system confirms or fails the payout; a statement lists what
//! each run took.

use vouch_engine::catalog::{
    Account, Actor, Catalog, CatalogCommand, CatalogOutcome, CatalogQuery, CatalogView,
    PayoutState, SellerKind, SettlementView, SystemInput,
};
use vouch_engine::command::*;
use vouch_engine::ledger::Reason;
use vouch_engine::log::{CatalogBatch, CatalogInput, LogRecord};
use vouch_engine::message::{ShardMessage, ShardMessageBody};
use vouch_engine::shard::ShardAccount;
use vouch_engine::{Code, Engine, EngineConfig, ErrorCode, Fen, Outcome, SellerId};

mod common;
use common::*;

const SELLER: SellerId = SellerId(10);
const OTHER: SellerId = SellerId(11);

struct World {
    engine: Engine,
    catalog: Catalog,
    serial: u64,
}

impl World {
    fn new() -> World {
        let config = EngineConfig {
            shards: 2,
            ..EngineConfig::default()
        };
        let mut w = World {
            engine: Engine::new(config, [5; 32]).unwrap(),
            catalog: Catalog::new(jiff::tz::TimeZone::get("Asia/Shanghai").unwrap()),
            serial: 0,
        };
        for id in [SELLER, OTHER] {
            let create = CatalogCommand::CreateSeller {
                id,
                kind: SellerKind::Mall,
                self_issuing: false,
                group_buying_operator: false,
            };
            w.catalog_cmd(NOW, Actor::Staff, create).unwrap();
        }
        w
    }

    fn catalog_cmd(
        &mut self,
        now: i64,
        actor: Actor,
        command: CatalogCommand,
    ) -> Result<CatalogOutcome, ErrorCode> {
        self.serial += 1;
        let rid = RequestId {
            source: 1,
            serial: self.serial,
        };
        let reply = self
            .catalog
            .apply(now, actor, rid, &command, &mut Vec::new());
        self.catalog.check_invariants().unwrap();
        reply.map_err(|r| r.code)
    }

    /// Issues 3 × 19.99 and redeems `units` at `at`; returns the new code.
    fn sale(&mut self, order: &str, units: u32, at: i64) -> Option<Code> {
        let Ok(Outcome::Issued(i)) =
            self.engine
                .apply(at, &issue_cmd(order, 3, 8), &mut Vec::new())
        else {
            panic!("issue {order}")
        };
        self.serial += 1;
        match self
            .engine
            .apply(at, &redeem_cmd(i.code, units, self.serial), &mut Vec::new())
        {
            Ok(Outcome::Redeemed(r)) => r.new_code,
            other => panic!("{other:?}"),
        }
    }

    /// Ticks every shard at `now` and gives the catalog every message, in
    /// a batch at `now`; returns the messages.
    fn tick_and_deliver(&mut self, now: i64) -> Vec<ShardMessage> {
        self.engine.tick(now);
        let mut all = Vec::new();
        let mut batch = CatalogBatch::new(now);
        for i in 0..self.engine.shards().len() {
            let messages = self.engine.shard_mut(i as u32).take_messages();
            for m in &messages {
                assert_eq!(
                    batch.message(&mut self.catalog, m, &mut Vec::new()),
                    Ok(true),
                    "{m:?}"
                );
            }
            all.extend(messages);
        }
        self.catalog.check_invariants().unwrap();
        all
    }

    fn run(&mut self, now: i64, seller: SellerId, cutoff_ms: i64) -> SettlementView {
        match self.catalog_cmd(
            now,
            Actor::Staff,
            CatalogCommand::RunSettlement { seller, cutoff_ms },
        ) {
            Ok(CatalogOutcome::Settlement(s)) => s,
            other => panic!("{other:?}"),
        }
    }

    fn decide(
        &mut self,
        now: i64,
        settlement: u64,
        confirm: bool,
    ) -> Result<SettlementView, ErrorCode> {
        let command = if confirm {
            CatalogCommand::ConfirmPayout { settlement }
        } else {
            CatalogCommand::FailPayout { settlement }
        };
        match self.catalog_cmd(now, Actor::PaymentSystem, command)? {
            CatalogOutcome::Settlement(s) => Ok(s),
            other => panic!("{other:?}"),
        }
    }

    fn balance(&self, account: Account) -> i64 {
        self.catalog.balance(account).fen()
    }

    /// MON-5 across the state machines: what the shards handed to
    /// settlement is exactly what the catalog booked from them.
    fn check_handover(&self) {
        let handed: i64 = self
            .engine
            .shards()
            .iter()
            .map(|s| s.ledger().balance(ShardAccount::Settlement).fen())
            .sum();
        assert_eq!(handed, -self.balance(Account::FromShards));
        self.engine.check_invariants();
    }
}

/// SET-3: a run takes every payable line booked before its cutoff, once:
/// the same seller and cutoff again returns the same settlement and moves
/// nothing; a later cutoff takes only what came after.
#[test]
fn set_3_a_run_takes_the_lines_before_its_cutoff_once() {
    let mut w = World::new();
    w.sale("o-1", 2, NOW);
    w.sale("o-2", 1, NOW + HOUR);
    let first = w.tick_and_deliver(NOW + HOUR);
    assert_eq!(
        first.len(),
        1,
        "one message per seller and reason per shard tick"
    );
    w.tick_and_deliver(NOW + 2 * HOUR);
    assert_eq!(w.balance(Account::Payable(SELLER)), 3 * 1_999);
    let s = w.run(NOW + 3 * HOUR, SELLER, NOW + 2 * HOUR);
    assert_eq!(
        (s.total, s.lines, s.state),
        (Fen::new(2 * 1_999), 1, PayoutState::InTransit)
    );
    assert_eq!(w.balance(Account::PayoutInTransit(SELLER)), 2 * 1_999);
    assert_eq!(w.balance(Account::Payable(SELLER)), 1_999);
    let entries = w.catalog.ledger().len();
    let again = w.run(NOW + 4 * HOUR, SELLER, NOW + 2 * HOUR);
    assert_eq!(again, s, "the same settlement");
    assert_eq!(w.catalog.ledger().len(), entries, "and nothing moved");
    let later = w.run(NOW + 4 * HOUR, SELLER, NOW + 3 * HOUR);
    assert_eq!((later.id, later.total), (s.id + 1, Fen::new(1_999)));
    assert_eq!(w.balance(Account::Payable(SELLER)), 0);
    w.check_handover();
}

/// SET-3: no payout for a zero sum; a cutoff in the future is refused;
/// another seller's lines are never taken.
#[test]
fn set_3_no_payout_for_a_zero_sum_and_no_future_cutoff() {
    let mut w = World::new();
    w.sale("o-1", 1, NOW);
    w.tick_and_deliver(NOW + HOUR);
    let none = w.run(NOW + 2 * HOUR, OTHER, NOW + 2 * HOUR);
    assert_eq!(
        (none.total, none.state),
        (Fen::ZERO, PayoutState::NothingToPay)
    );
    assert_eq!(w.balance(Account::PayoutInTransit(OTHER)), 0);
    assert_eq!(
        w.decide(NOW + 2 * HOUR, none.id, true),
        Err(ErrorCode::PayoutNotInTransit)
    );
    let future = CatalogCommand::RunSettlement {
        seller: SELLER,
        cutoff_ms: NOW + 3 * HOUR,
    };
    assert_eq!(
        w.catalog_cmd(NOW + 2 * HOUR, Actor::Staff, future),
        Err(ErrorCode::BadRequest)
    );
    assert_eq!(w.balance(Account::Payable(SELLER)), 1_999);
}

/// MON-7: a confirmed payout leaves the platform and cannot be decided
/// again; a failed one goes back to the seller's payable account and the
/// next run pays it again as a new transfer.
#[test]
fn mon_7_a_failed_payout_is_paid_by_the_next_run() {
    let mut w = World::new();
    w.sale("o-1", 2, NOW);
    w.tick_and_deliver(NOW + HOUR);
    let s = w.run(NOW + 2 * HOUR, SELLER, NOW + 2 * HOUR);
    let failed = w.decide(NOW + 2 * HOUR, s.id, false).unwrap();
    assert_eq!(failed.state, PayoutState::Failed);
    assert_eq!(w.balance(Account::Payable(SELLER)), 2 * 1_999);
    assert_eq!(w.balance(Account::PayoutInTransit(SELLER)), 0);
    assert_eq!(
        w.decide(NOW + 2 * HOUR, s.id, true),
        Err(ErrorCode::PayoutNotInTransit)
    );
    assert_eq!(
        w.run(NOW + 3 * HOUR, SELLER, NOW + 2 * HOUR),
        failed,
        "same cutoff: same settlement"
    );
    let retry = w.run(NOW + 3 * HOUR, SELLER, NOW + 3 * HOUR);
    assert_eq!((retry.total, retry.lines), (Fen::new(2 * 1_999), 1));
    let paid = w.decide(NOW + 4 * HOUR, retry.id, true).unwrap();
    assert_eq!(
        (paid.state, paid.decided_at_ms),
        (PayoutState::Confirmed, Some(NOW + 4 * HOUR))
    );
    assert_eq!(w.balance(Account::PayoutInTransit(SELLER)), 0);
    assert_eq!(w.balance(Account::Payable(SELLER)), 0);
    assert_eq!(
        w.decide(NOW + 4 * HOUR, retry.id, false),
        Err(ErrorCode::PayoutNotInTransit)
    );
    let reasons: Vec<Reason> = w.catalog.ledger().iter().map(|e| e.reason).collect();
    assert_eq!(
        reasons,
        [
            Reason::WindowEnded,
            Reason::PayoutSent,
            Reason::PayoutFailed,
            Reason::PayoutSent,
            Reason::PayoutConfirmed
        ]
    );
    w.check_handover();
}

/// The role matrix: staff run settlements, only the payment system
/// decides payouts.
#[test]
fn mon_7_only_the_payment_system_decides_payouts() {
    let mut w = World::new();
    w.sale("o-1", 1, NOW);
    w.tick_and_deliver(NOW + HOUR);
    let run = CatalogCommand::RunSettlement {
        seller: SELLER,
        cutoff_ms: NOW + HOUR + 1,
    };
    for actor in [Actor::Seller(SELLER), Actor::PaymentSystem, Actor::FrontEnd] {
        assert_eq!(
            w.catalog_cmd(NOW + 2 * HOUR, actor, run.clone()),
            Err(ErrorCode::NotPermitted)
        );
    }
    let s = w.run(NOW + 2 * HOUR, SELLER, NOW + HOUR + 1);
    for actor in [Actor::Staff, Actor::Seller(SELLER)] {
        let confirm = CatalogCommand::ConfirmPayout { settlement: s.id };
        assert_eq!(
            w.catalog_cmd(NOW + 2 * HOUR, actor, confirm),
            Err(ErrorCode::NotPermitted)
        );
    }
    let unknown = CatalogCommand::ConfirmPayout { settlement: 99 };
    assert_eq!(
        w.catalog_cmd(NOW + 2 * HOUR, Actor::PaymentSystem, unknown),
        Err(ErrorCode::NotFound)
    );
}

/// Exactly once: a message already applied changes nothing and is not
/// logged; one with a gap below it is refused; replaying the catalog's
/// record applies each once again.
#[test]
fn mon_5_shard_messages_apply_exactly_once() {
    let mut w = World::new();
    w.sale("o-1", 1, NOW);
    w.sale("o-2", 1, NOW + 1);
    w.engine.tick(NOW + HOUR + 1);
    let mut messages: Vec<ShardMessage> = (0..2)
        .flat_map(|i| w.engine.shard_mut(i).take_messages())
        .collect();
    assert!(!messages.is_empty());
    let mut batch = CatalogBatch::new(NOW + 2 * HOUR);
    let m = messages.remove(0);
    let gap = ShardMessage {
        seq: m.seq + 1,
        ..m.clone()
    };
    assert!(
        batch
            .message(&mut w.catalog, &gap, &mut Vec::new())
            .is_err(),
        "a gap is refused"
    );
    assert_eq!(batch.message(&mut w.catalog, &m, &mut Vec::new()), Ok(true));
    assert_eq!(
        batch.message(&mut w.catalog, &m, &mut Vec::new()),
        Ok(false),
        "a repeat changes nothing"
    );
    for m in &messages {
        assert_eq!(batch.message(&mut w.catalog, m, &mut Vec::new()), Ok(true));
    }
    let record = batch.record().unwrap();
    let LogRecord::Catalog { now_ms, inputs } = &record else {
        panic!()
    };
    assert_eq!(
        inputs
            .iter()
            .filter(|i| matches!(i, CatalogInput::Message(_)))
            .count(),
        1 + messages.len()
    );
    assert_eq!(w.catalog.shard_mark(m.shard), m.seq);
    w.check_handover();
    // Replay into a catalog that has the sellers only.
    let mut again = World::new();
    CatalogBatch::replay(&mut again.catalog, *now_ms, inputs, &mut Vec::new()).unwrap();
    assert_eq!(again.catalog.ledger(), w.catalog.ledger());
    assert_eq!(again.catalog.shard_mark(m.shard), m.seq);
}

/// RPT-4: a statement lists every line its run took with the reason and
/// amount; a seller sees only its own (another's is `not_found`), the
/// payment system any, a verifier none.
#[test]
fn rpt_4_a_statement_lists_what_its_run_took() {
    let mut w = World::new();
    w.sale("o-1", 2, NOW);
    w.sale("o-2", 1, NOW + HOUR);
    w.tick_and_deliver(NOW + HOUR);
    w.tick_and_deliver(NOW + 2 * HOUR);
    let s = w.run(NOW + 3 * HOUR, SELLER, NOW + 3 * HOUR);
    let query = CatalogQuery::Statement {
        settlement: s.id,
        offset: 0,
        limit: 100,
    };
    let Ok(CatalogView::Statement(st)) = w.catalog.read(Actor::Seller(SELLER), &query) else {
        panic!()
    };
    assert_eq!(st.settlement, s);
    let lines: Vec<(Reason, i64, u32)> = st
        .lines
        .iter()
        .map(|l| (l.reason, l.amount.fen(), l.entries))
        .collect();
    assert_eq!(
        lines,
        [
            (Reason::WindowEnded, 3_998, 1),
            (Reason::WindowEnded, 1_999, 1)
        ]
    );
    assert_eq!(st.lines.iter().map(|l| l.amount).sum::<Fen>(), s.total);
    assert!(matches!(
        w.catalog.read(Actor::PaymentSystem, &query),
        Ok(CatalogView::Statement(_))
    ));
    let other = w.catalog.read(Actor::Seller(OTHER), &query).unwrap_err();
    assert_eq!(other.code, ErrorCode::NotFound);
    let verifier = w
        .catalog
        .read(Actor::Verifier(vouch_engine::VerifierId(4)), &query)
        .unwrap_err();
    assert_eq!(verifier.code, ErrorCode::NotPermitted);
    let list = CatalogQuery::Settlements {
        seller: None,
        after: None,
        limit: 10,
    };
    let Ok(CatalogView::Settlements(mine)) = w.catalog.read(Actor::Seller(SELLER), &list) else {
        panic!()
    };
    assert_eq!(mine, [s]);
    let Ok(CatalogView::Settlements(theirs)) = w.catalog.read(Actor::Seller(OTHER), &list) else {
        panic!()
    };
    assert!(theirs.is_empty());
}

/// SET-3 daily: the server's daily run settles every seller with lines
/// before the cutoff, once; the same cutoff again changes nothing and is
/// not logged.
#[test]
fn set_3_the_daily_run_settles_every_seller_once() {
    let mut w = World::new();
    w.sale("o-1", 1, NOW);
    let mut batch = CatalogBatch::new(NOW + 3 * HOUR);
    w.tick_and_deliver(NOW + HOUR);
    let settle = SystemInput::Settle {
        cutoff_ms: NOW + 2 * HOUR,
    };
    let first = batch.system(&mut w.catalog, &settle, &mut Vec::new());
    assert_eq!(first.reply, Ok(CatalogOutcome::Settled(vec![1])));
    assert!(first.logged);
    let again = batch.system(&mut w.catalog, &settle, &mut Vec::new());
    assert_eq!(again.reply, Ok(CatalogOutcome::Settled(vec![])));
    assert!(!again.logged, "an idle run writes no record");
    assert_eq!(w.balance(Account::PayoutInTransit(SELLER)), 1_999);
    w.catalog.check_invariants().unwrap();
    let message_body = |m: &ShardMessage| match &m.body {
        ShardMessageBody::Payable { seller, .. } => *seller,
        ShardMessageBody::TakeBack { seller, .. }
        | ShardMessageBody::TakeBackNumbered { seller, .. } => *seller,
        ShardMessageBody::Transfer { seller, .. }
        | ShardMessageBody::TransferNumbered { seller, .. } => *seller,
    };
    w.sale("o-2", 1, NOW + 2 * HOUR);
    let later = w.tick_and_deliver(NOW + 4 * HOUR);
    assert_eq!(later.iter().map(message_body).collect::<Vec<_>>(), [SELLER]);
}
