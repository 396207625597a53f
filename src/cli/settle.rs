//! `vouch settlement|payout|statement …`: settlement runs (SET-3), payouts
//! confirmed or failed by the payment system (MON-7) and statements
//! (RPT-4), as text or JSON with local times beside every `_ms` field.

use super::catalog::Built;
use super::time::Zone;
use clap::Subcommand;
use serde_json::{json, Value};
use vouch_engine::catalog::{
    Actor, CatalogCommand as C, CatalogQuery as Q, PayableLine, SettlementView, StatementView,
    SETTLEMENTS_PAGE_ITEMS_MAX, STATEMENT_PAGE_LINES_MAX,
};
use vouch_engine::words::count;
use vouch_engine::SellerId;

/// An instant as the CLI shows it, to the millisecond when it has one, so
/// that a cutoff can be given back exactly as shown.
fn exact_instant(zone: &Zone, ms: i64) -> String {
    if ms.rem_euclid(1_000) == 0 {
        zone.instant(ms)
    } else {
        zone.instant_ms(ms)
    }
}

/// `vouch settlement …` (staff runs; everyone entitled lists).
#[derive(Subcommand)]
pub enum SettlementCmd {
    /// Run settlement for one seller and a cutoff (staff): every payable
    /// line booked before the cutoff that no earlier run took goes into one
    /// payout in transit. The same seller and cutoff again shows the same
    /// settlement and moves nothing. The server also runs it daily for
    /// every seller (`vouch serve --settlement-time`).
    Run {
        /// Seller id.
        #[arg(long)]
        seller: SellerId,
        /// Cutoff: RFC 3339 with its offset, e.g. 2026-12-01T02:00:00+08:00,
        /// or `now` (this machine's clock; a server with a rehearsal clock
        /// needs its own instant); not in the future.
        #[arg(long, value_parser = parse_cutoff)]
        cutoff: i64,
    },
    /// List settlements: staff and the payment system all (or one
    /// seller's), a seller its own.
    List {
        /// Only this seller's.
        #[arg(long)]
        seller: Option<SellerId>,
    },
}

/// `vouch payout …` (the payment system's token; MON-7).
#[derive(Subcommand)]
pub enum PayoutCmd {
    /// The payout of a settlement reached the seller.
    Confirm {
        /// Settlement id.
        settlement: u64,
    },
    /// The payout of a settlement failed: its money goes back to the
    /// seller's payable account for the next run.
    Fail {
        /// Settlement id.
        settlement: u64,
    },
}

/// `vouch statement …` (RPT-4).
#[derive(Subcommand)]
pub enum StatementCmd {
    /// One settlement's statement: every payable line it took, with the
    /// reason, and its payout's state.
    Show {
        /// Settlement id.
        settlement: u64,
    },
}

/// Reads `now` (this machine's clock, to the millisecond: the run prints
/// it exactly, so a retry can name it) or an RFC 3339 instant with its
/// offset as unix ms.
///
/// Errors: any other text, with the accepted forms.
pub fn parse_cutoff(s: &str) -> Result<i64, String> {
    if s == "now" {
        return Ok(jiff::Timestamp::now().as_millisecond());
    }
    s.parse::<jiff::Timestamp>()
        .map(|t| t.as_millisecond())
        .map_err(|e| {
            format!("cutoff {s:?}: use `now` or RFC 3339 with an offset, e.g. 2026-12-01T02:00:00+08:00 ({e})")
        })
}

/// The command or read of `vouch settlement …`.
pub fn settlement(c: SettlementCmd) -> Built {
    match c {
        SettlementCmd::Run { seller, cutoff } => Built::Command(
            Actor::Staff,
            C::RunSettlement {
                seller,
                cutoff_ms: cutoff,
            },
        ),
        SettlementCmd::List { seller } => Built::Read(Q::Settlements {
            seller,
            after: None,
            limit: SETTLEMENTS_PAGE_ITEMS_MAX,
        }),
    }
}

/// The payment system's command of `vouch payout …`.
pub fn payout(c: PayoutCmd) -> Built {
    let command = match c {
        PayoutCmd::Confirm { settlement } => C::ConfirmPayout { settlement },
        PayoutCmd::Fail { settlement } => C::FailPayout { settlement },
    };
    Built::Command(Actor::PaymentSystem, command)
}

/// The read of `vouch statement …`.
pub fn statement(c: StatementCmd) -> Built {
    let StatementCmd::Show { settlement } = c;
    Built::Read(Q::Statement {
        settlement,
        offset: 0,
        limit: STATEMENT_PAGE_LINES_MAX,
    })
}

/// The next page of a settlements or statement read, when `len` items
/// filled this one.
pub fn next_page(query: &Q, len: usize, last_id: Option<u64>) -> Option<Q> {
    match *query {
        Q::Settlements { seller, limit, .. } if len >= limit as usize => Some(Q::Settlements {
            seller,
            after: last_id,
            limit,
        }),
        Q::Statement {
            settlement,
            offset,
            limit,
        } if len >= limit as usize => Some(Q::Statement {
            settlement,
            offset: offset + limit,
            limit,
        }),
        _ => None,
    }
}

/// A settlement as JSON, with local times beside its instants.
pub fn settlement_json(s: &SettlementView, zone: &Zone) -> Value {
    json!({
        "id": s.id, "seller": s.seller, "cutoff_ms": s.cutoff_ms,
        "cutoff": exact_instant(zone, s.cutoff_ms), "created_at_ms": s.created_at_ms,
        "created_at": zone.instant(s.created_at_ms), "total": s.total, "netted": s.netted,
        "payout": s.payout, "lines": s.lines,
        "state": s.state, "decided_at_ms": s.decided_at_ms,
        "decided_at": s.decided_at_ms.map(|ms| zone.instant(ms)),
    })
}

fn line_json(l: &PayableLine, zone: &Zone) -> Value {
    json!({
        "reason": l.reason, "amount": l.amount, "entries": l.entries, "shard": l.shard,
        "seq": l.seq, "shard_at_ms": l.shard_at_ms, "shard_at": zone.instant(l.shard_at_ms),
        "booked_at_ms": l.booked_at_ms, "booked_at": zone.instant(l.booked_at_ms),
    })
}

/// A statement as JSON: the settlement and its lines.
pub fn statement_json(st: &StatementView, zone: &Zone) -> Value {
    let lines: Vec<Value> = st.lines.iter().map(|l| line_json(l, zone)).collect();
    json!({"settlement": settlement_json(&st.settlement, zone), "lines": lines})
}

/// A settlement as one line of text.
pub fn settlement_line(s: &SettlementView, zone: &Zone) -> String {
    let mut line = format!(
        "settlement {} of seller {}: {} yuan over {} booked before {}",
        s.id,
        s.seller,
        s.total,
        count(u64::from(s.lines), "payable line", "payable lines"),
        exact_instant(zone, s.cutoff_ms),
    );
    if !s.netted.is_zero() {
        line.push_str(&format!(", {} yuan owed back netted", s.netted));
    }
    line.push_str(&format!("; payout of {} yuan {}", s.payout, s.state));
    if let Some(ms) = s.decided_at_ms {
        line.push_str(&format!(" at {}", zone.instant(ms)));
    }
    line
}

/// A statement as lines of text: the settlement, then one line per
/// payable line.
pub fn statement_lines(st: &StatementView, zone: &Zone) -> Vec<String> {
    let mut out = vec![settlement_line(&st.settlement, zone)];
    for l in &st.lines {
        out.push(format!(
            "  {} {} yuan ({}, shard {} message {}), booked {}",
            l.reason,
            l.amount,
            count(u64::from(l.entries), "entry", "entries"),
            l.shard,
            l.seq,
            zone.instant(l.booked_at_ms)
        ));
    }
    out
}
