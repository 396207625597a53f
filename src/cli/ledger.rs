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
use vouch_engine::command::{EntryPage, EntryRow, ListEntries, ENTRIES_PAGE_ITEMS_MAX};
use vouch_engine::{Command, Outcome, SellerId};
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
    if let Ok(t) = s.parse::<jiff::Timestamp>() {
        return Ok(t.as_millisecond());
    }
    let date: jiff::civil::Date = s.parse().map_err(|_| {
        format!(
            "{s:?}: use RFC 3339 with an offset (2026-12-01T02:00:00+08:00) or a date (2026-12-01)"
        )
    })?;
    let date = if end {
        date.tomorrow().map_err(|e| format!("date {date}: {e}"))?
    } else {
        date
    };
    zone.start_of(date)
}

/// How one export writes its rows.
enum Sink {
    Csv(Box<csv::Writer<std::io::Stdout>>),
    Text(usize),
    Json(Vec<Value>),
}

impl Sink {
    fn write(&mut self, row: &EntryRow, zone: &Zone) -> Result<(), String> {
        match self {
            Sink::Csv(w) => w
                .write_record(csv_record(row, zone))
                .map_err(|e| format!("writing CSV: {e}")),
            Sink::Text(n) => {
                *n += 1;
                println!("{}", text_line(row, zone));
                Ok(())
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
        opt(row.order_id.clone()),
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

/// A voucher as the export names it: `v3-41` (shard 3, position 41).
fn voucher_ref(row: &EntryRow, slot: u32) -> String {
    match row.ledger {
        vouch_engine::command::LedgerName::Shard(s) => format!("v{s}-{slot}"),
        vouch_engine::command::LedgerName::Catalog => format!("v-{slot}"),
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
        (true, _) => Sink::Csv(Box::new(csv::Writer::from_writer(std::io::stdout()))),
        (false, true) => Sink::Json(Vec::new()),
        (false, false) => Sink::Text(0),
    };
    if let Sink::Csv(w) = &mut sink {
        w.write_record(CSV_COLUMNS)
            .map_err(|e| ExportError::Usage(e.to_string()))?;
    }
    let mut rows = catalog_rows(client, spec.seller, range, &mut sink, zone).await?;
    for shard in 0..client.shards() {
        rows += shard_rows(client, shard, spec.seller, range, &mut sink, zone).await?;
    }
    finish(sink, rows)
}

fn finish(sink: Sink, rows: usize) -> Result<usize, ExportError> {
    match sink {
        Sink::Csv(mut w) => w.flush().map_err(|e| ExportError::Usage(e.to_string()))?,
        Sink::Text(0) => println!("no ledger entries"),
        Sink::Text(_) => {}
        Sink::Json(items) => println!("{}", page_json(items)),
    }
    let _ = std::io::stdout().flush();
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

async fn catalog_rows(
    client: &Client,
    seller: Option<SellerId>,
    (from_ms, until_ms): (i64, i64),
    sink: &mut Sink,
    zone: &Zone,
) -> Result<usize, ExportError> {
    let (mut after, mut rows) = (0, 0);
    loop {
        let query = CatalogQuery::Entries {
            seller,
            from_ms,
            until_ms,
            after,
            limit: ENTRIES_PAGE_ITEMS_MAX,
        };
        let page = match client.catalog_read(None, query).await {
            Ok(Ok(CatalogView::Entries(page))) => page,
            Ok(Ok(_)) => {
                return Err(ExportError::Usage(
                    "the server answered another read".into(),
                ))
            }
            Ok(Err(e)) | Err(ClientError::Refused(e)) => return Err(ExportError::Refused(e)),
            Err(e) => return Err(ExportError::Client(e)),
        };
        match write_page(page, sink, zone, &mut rows)? {
            Some(next) if next > after => after = next,
            _ => return Ok(rows),
        }
    }
}

async fn shard_rows(
    client: &Client,
    shard: u32,
    seller_id: Option<SellerId>,
    (from_ms, until_ms): (i64, i64),
    sink: &mut Sink,
    zone: &Zone,
) -> Result<usize, ExportError> {
    let (mut after, mut rows) = (0, 0);
    loop {
        let c = ListEntries {
            shard,
            seller_id,
            from_ms,
            until_ms,
            after,
            limit: ENTRIES_PAGE_ITEMS_MAX,
        };
        let page = match client.command(Command::Entries(c)).await {
            Ok(Ok(Outcome::Entries(page))) => page,
            Ok(Ok(_)) => {
                return Err(ExportError::Usage(
                    "the server answered another command".into(),
                ))
            }
            Ok(Err(e)) | Err(ClientError::Refused(e)) => return Err(ExportError::Refused(e)),
            Err(e) => return Err(ExportError::Client(e)),
        };
        match write_page(page, sink, zone, &mut rows)? {
            Some(next) if next > after => after = next,
            _ => return Ok(rows),
        }
    }
}
