//! `vouch ledger export` (RPT-5): every ledger entry of a seller — or, for
//! staff, of the platform — in a time range, read page by page from the
//! catalog and then from every voucher shard, and written as it arrives:
//! CSV with stable columns (`--csv`), text lines, or one JSON object
//! (`--json`, gathered first).

use super::time::Zone;
use super::ClientArgs;
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use std::io::Write;
use vouch_engine::catalog::{CatalogQuery, CatalogView};
use vouch_engine::command::{EntryPage, EntryRow, LedgerName, ListEntries, ENTRIES_PAGE_ITEMS_MAX};
use vouch_engine::{Command, ErrorCode, Outcome, SellerId};
use vouch_protocol::client::ClientError;
use vouch_protocol::{Client, WireError};

/// The export's columns, in order; they never change meaning (RPT-5).
pub const CSV_COLUMNS: [&str; 11] = [
    "entry_id",
    "instant",
    "order_id",
    "voucher",
    "seller_id",
    "reason",
    "debit_account",
    "credit_account",
    "amount",
    "state",
    "settlement_id",
];

/// `vouch ledger …`.
#[derive(Args)]
pub struct LedgerArgs {
    #[command(subcommand)]
    cmd: LedgerCmd,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Subcommand)]
enum LedgerCmd {
    /// Every ledger entry in a time range (RPT-5): a seller's token
    /// exports its own entries, staff the platform's (or one seller's with
    /// --seller). Rows come ledger by ledger (the catalog's, then each
    /// voucher shard's), each in posting order.
    Export {
        /// Only this seller's entries (staff; a seller's token is bound to
        /// its own).
        #[arg(long)]
        seller: Option<SellerId>,
        /// From this instant (RFC 3339 with offset) or the start of this
        /// local date (YYYY-MM-DD); default: the beginning.
        #[arg(long)]
        from: Option<String>,
        /// Until this instant, exclusive, or through the end of this local
        /// date; default: no end.
        #[arg(long)]
        until: Option<String>,
        /// Write CSV (a header, then one row per entry) instead of text.
        #[arg(long, conflicts_with = "json")]
        csv: bool,
    },
}

/// What to export, once the time zone is known.
pub struct ExportSpec {
    seller: Option<SellerId>,
    from: Option<String>,
    until: Option<String>,
    csv: bool,
}

impl LedgerArgs {
    /// Whether `--json` was given.
    pub fn json(&self) -> bool {
        self.client.json
    }

    /// The connection flags and what to export.
    pub(super) fn build(self) -> (ClientArgs, ExportSpec) {
        let LedgerCmd::Export {
            seller,
            from,
            until,
            csv,
        } = self.cmd;
        let spec = ExportSpec {
            seller,
            from,
            until,
            csv,
        };
        (self.client, spec)
    }
}

/// `s` as unix ms: an RFC 3339 instant with its offset, or a local date's
/// first instant (`end`: the next day's, so the date is included).
///
/// Errors: any other text, with the accepted forms.
fn parse_bound(s: &str, zone: &Zone, end: bool) -> Result<i64, String> {
    let bad = || {
        format!(
            "{s:?}: use RFC 3339 with an offset (2026-12-01T02:00:00+08:00) or a date (2026-12-01)"
        )
    };
    if let Ok(t) = s.parse::<jiff::Timestamp>() {
        return Ok(t.as_millisecond());
    }
    // Only a bare date: a time without an offset must not lose its time.
    let is_date = s.len() == 10
        && s.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    if !is_date {
        return Err(bad());
    }
    let date: jiff::civil::Date = s.parse().map_err(|_| bad())?;
    let date = if end {
        date.tomorrow().map_err(|e| format!("date {date}: {e}"))?
    } else {
        date
    };
    zone.start_of(date)
}

/// How one export writes its rows.
enum Sink {
    /// The writer, and whether the header is written (at the first row
    /// or the end, so a refusal writes nothing).
    Csv(Box<csv::Writer<std::io::Stdout>>, bool),
    Text(usize),
    Json(Vec<Value>),
}

impl Sink {
    fn write(&mut self, row: &EntryRow, zone: &Zone) -> Result<(), String> {
        match self {
            Sink::Csv(w, header) => {
                if !*header {
                    w.write_record(CSV_COLUMNS)
                        .map_err(|e| format!("writing CSV: {e}"))?;
                    *header = true;
                }
                w.write_record(csv_record(row, zone))
                    .map_err(|e| format!("writing CSV: {e}"))
            }
            Sink::Text(n) => {
                *n += 1;
                writeln!(std::io::stdout(), "{}", text_line(row, zone))
                    .map_err(|e| format!("writing: {e}"))
            }
            Sink::Json(items) => {
                items.push(row_json(row, zone));
                Ok(())
            }
        }
    }
}

/// One row's fields in [`CSV_COLUMNS`] order.
pub fn csv_record(row: &EntryRow, zone: &Zone) -> [String; 11] {
    let opt = |v: Option<String>| v.unwrap_or_default();
    [
        row.id(),
        zone.instant_ms(row.at_ms),
        opt(row.order_id.as_deref().map(defused)),
        opt(row.voucher.map(|v| voucher_ref(row, v))),
        opt(row.seller_id.map(|s| s.to_string())),
        row.reason.name().into(),
        row.debit.clone(),
        row.credit.clone(),
        row.amount.to_string(),
        row.state.name().into(),
        opt(row.settlement.map(|s| s.to_string())),
    ]
}

/// An order id as a spreadsheet may show it: one starting with `=`, `+`,
/// `-` or `@` gets a leading `'`, so it is never read as a formula (order
/// ids are chosen by clients).
pub fn defused(s: &str) -> String {
    if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_string()
    }
}

/// A voucher as the export names it: `v3-41` (shard 3, position 41).
fn voucher_ref(row: &EntryRow, slot: u32) -> String {
    match row.ledger {
        LedgerName::Shard(s) => format!("v{s}-{slot}"),
        LedgerName::Catalog => format!("v-{slot}"),
    }
}

fn text_line(row: &EntryRow, zone: &Zone) -> String {
    let mut line = format!(
        "{} {} {} {} → {} {}, {}",
        row.id(),
        zone.instant_ms(row.at_ms),
        row.reason,
        row.debit,
        row.credit,
        row.amount,
        row.state.name()
    );
    if let Some(s) = row.seller_id {
        line.push_str(&format!("; seller {s}"));
    }
    if let Some(o) = &row.order_id {
        line.push_str(&format!("; order {o}"));
    }
    if let Some(s) = row.settlement {
        line.push_str(&format!("; settlement {s}"));
    }
    line
}

/// A page of rows as one JSON object (with local instants) and as lines
/// of text.
pub fn page(p: &EntryPage, zone: &Zone) -> (Value, Vec<String>) {
    let items: Vec<Value> = p.items.iter().map(|r| row_json(r, zone)).collect();
    let lines = p.items.iter().map(|r| text_line(r, zone)).collect();
    (page_json(items), lines)
}

fn page_json(items: Vec<Value>) -> Value {
    json!({"ok": true, "outcome": "ledger_entries", "count": items.len(), "items": items})
}

fn row_json(row: &EntryRow, zone: &Zone) -> Value {
    let mut v = serde_json::to_value(row).unwrap_or_default();
    v["entry_id"] = json!(row.id());
    v["at"] = json!(zone.instant_ms(row.at_ms));
    v
}

/// Why an export stopped.
pub enum ExportError {
    /// Bad flags.
    Usage(String),
    /// The server refused a read.
    Refused(WireError),
    /// The connection failed.
    Client(ClientError),
}

/// Runs the export over `client`; returns how many rows it wrote.
///
/// Errors: [`ExportError`]; rows already written stay written.
pub async fn export(
    client: &Client,
    spec: ExportSpec,
    json_out: bool,
    zone: &Zone,
) -> Result<usize, ExportError> {
    let bound = |s: &Option<String>, end| s.as_deref().map(|s| parse_bound(s, zone, end));
    let from_ms = bound(&spec.from, false)
        .transpose()
        .map_err(ExportError::Usage)?;
    let until_ms = bound(&spec.until, true)
        .transpose()
        .map_err(ExportError::Usage)?;
    let range = (from_ms.unwrap_or(i64::MIN), until_ms.unwrap_or(i64::MAX));
    if range.1 < range.0 {
        return Err(ExportError::Usage("--until is before --from".into()));
    }
    let mut sink = match (spec.csv, json_out) {
        (true, _) => Sink::Csv(Box::new(csv::Writer::from_writer(std::io::stdout())), false),
        (false, true) => Sink::Json(Vec::new()),
        (false, false) => Sink::Text(0),
    };
    let mut rows = 0;
    let ledgers =
        std::iter::once(LedgerName::Catalog).chain((0..client.shards()).map(LedgerName::Shard));
    for ledger in ledgers {
        rows += ledger_rows(client, ledger, spec.seller, range, &mut sink, zone).await?;
    }
    finish(sink, rows)
}

fn finish(sink: Sink, rows: usize) -> Result<usize, ExportError> {
    let written = match sink {
        Sink::Csv(mut w, header) => {
            let head = if header {
                Ok(())
            } else {
                w.write_record(CSV_COLUMNS).map_err(std::io::Error::from)
            };
            head.and_then(|()| w.flush())
        }
        Sink::Text(0) => writeln!(std::io::stdout(), "no ledger entries"),
        Sink::Text(_) => Ok(()),
        Sink::Json(items) => writeln!(std::io::stdout(), "{}", page_json(items)),
    };
    written
        .and_then(|()| std::io::stdout().flush())
        .map_err(|e| ExportError::Usage(format!("writing: {e}")))?;
    Ok(rows)
}

/// Writes one page's rows; returns the next cursor.
fn write_page(
    page: EntryPage,
    sink: &mut Sink,
    zone: &Zone,
    rows: &mut usize,
) -> Result<Option<u64>, ExportError> {
    for row in &page.items {
        sink.write(row, zone).map_err(ExportError::Usage)?;
    }
    *rows += page.items.len();
    Ok(page.next)
}

/// Reads one page of `ledger`'s entries from position `after`.
///
/// Errors: the server's refusal or a connection error.
async fn read_page(
    client: &Client,
    ledger: LedgerName,
    seller: Option<SellerId>,
    (from_ms, until_ms): (i64, i64),
    after: u64,
) -> Result<EntryPage, ExportError> {
    let limit = ENTRIES_PAGE_ITEMS_MAX;
    let reply = match ledger {
        LedgerName::Catalog => {
            let query = CatalogQuery::Entries {
                seller,
                from_ms,
                until_ms,
                after,
                limit,
            };
            client.catalog_read(None, query).await.map(|r| {
                r.and_then(|v| match v {
                    CatalogView::Entries(page) => Ok(page),
                    _ => Err(WireError::new(
                        ErrorCode::BadRequest,
                        "another read answered",
                    )),
                })
            })
        }
        LedgerName::Shard(shard) => {
            let c = ListEntries {
                shard,
                seller_id: seller,
                from_ms,
                until_ms,
                after,
                limit,
            };
            client.command(Command::Entries(c)).await.map(|r| {
                r.and_then(|o| match o {
                    Outcome::Entries(page) => Ok(page),
                    _ => Err(WireError::new(
                        ErrorCode::BadRequest,
                        "another command answered",
                    )),
                })
            })
        }
    };
    match reply {
        Ok(Ok(page)) => Ok(page),
        Ok(Err(e)) | Err(ClientError::Refused(e)) => Err(ExportError::Refused(e)),
        Err(e) => Err(ExportError::Client(e)),
    }
}

/// Writes every row of `ledger`, page by page; returns how many.
async fn ledger_rows(
    client: &Client,
    ledger: LedgerName,
    seller: Option<SellerId>,
    range: (i64, i64),
    sink: &mut Sink,
    zone: &Zone,
) -> Result<usize, ExportError> {
    let (mut after, mut rows) = (0, 0);
    loop {
        let page = read_page(client, ledger, seller, range, after).await?;
        match write_page(page, sink, zone, &mut rows)? {
            Some(next) if next > after => after = next,
            _ => return Ok(rows),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RPT-5 bounds: an instant needs its offset; a bare date is a local
    /// day (`--until` includes it); a time without an offset is refused,
    /// never read as its date.
    #[test]
    fn rpt_5_export_bounds_are_an_instant_with_offset_or_a_date() {
        let zone = Zone::new("Asia/Shanghai").unwrap();
        let day = parse_bound("2026-12-03", &zone, false).unwrap();
        assert_eq!(
            parse_bound("2026-12-03T00:00:00+08:00", &zone, false),
            Ok(day)
        );
        assert_eq!(parse_bound("2026-12-03", &zone, true), Ok(day + 86_400_000));
        for bad in [
            "2026-12-03T00:00",
            "2026-12-03 23:59",
            "20261203",
            "2026-02-30",
            "",
        ] {
            assert!(parse_bound(bad, &zone, false).is_err(), "{bad:?}");
        }
    }

    /// RPT-5 CSV: an order id a spreadsheet would run as a formula is
    /// written with a leading `'`; others as they are.
    #[test]
    fn rpt_5_formula_like_order_ids_are_defused() {
        assert_eq!(defused("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(defused("-2+3"), "'-2+3");
        assert_eq!(defused("+1"), "'+1");
        assert_eq!(defused("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(defused("B-1"), "B-1");
    }
}
