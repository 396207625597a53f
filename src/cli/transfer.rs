//! `vouch refund-transfer …` (MON-7): the payment system confirms or fails
//! the refunds on their way to buyers, it or staff retry a failed one, and
//! both list what awaits an answer; with how their replies read.

use super::time::Zone;
use super::{request_id_for, ClientArgs};
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use vouch_engine::command::{
    ListTransfers, TransferAction, TransferPage, TransferStep, TransferView,
    TRANSFERS_PAGE_ITEMS_MAX,
};
use vouch_engine::Command;

/// `vouch refund-transfer …`.
#[derive(Args)]
pub struct TransferArgs {
    #[command(subcommand)]
    step: TransferCmd,
    /// Client request id SOURCE:SERIAL, or SERIAL with this token's
    /// source (confirm, fail and retry); a retry of the same id never
    /// applies twice.
    #[arg(long, global = true)]
    request_id: Option<String>,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Subcommand)]
enum TransferCmd {
    /// The refund reached the buyer (payment system).
    Confirm {
        /// Order id.
        order: String,
        /// The transfer's number within the order (`vouch order show`
        /// lists them).
        transfer: u16,
    },
    /// The refund did not reach the buyer (payment system): the money is
    /// owed to the buyer until it is retried.
    Fail {
        /// Order id.
        order: String,
        /// The transfer's number within the order.
        transfer: u16,
    },
    /// Send a failed refund again, as a new transfer (staff or the
    /// payment system).
    Retry {
        /// Order id.
        order: String,
        /// The failed transfer's number within the order.
        transfer: u16,
    },
    /// Every refund transfer in transit (or, with --failed, failed and not
    /// yet retried), across all shards (staff, the payment system).
    List {
        /// Failed ones instead of those in transit.
        #[arg(long)]
        failed: bool,
    },
}

impl TransferArgs {
    /// Whether `--json` was given.
    pub fn json(&self) -> bool {
        self.client.json
    }

    /// The command, and whether it reads every shard.
    ///
    /// Errors: a missing or malformed request id for a step, one given to
    /// the list (a read).
    pub(super) fn build(self) -> Result<(ClientArgs, Command), String> {
        let (order_id, transfer, action) = match self.step {
            TransferCmd::List { failed } => {
                if self.request_id.is_some() {
                    return Err("reads change nothing and take no --request-id".into());
                }
                let c = ListTransfers {
                    shard: 0,
                    failed,
                    after: 0,
                    limit: TRANSFERS_PAGE_ITEMS_MAX,
                };
                return Ok((self.client, Command::Transfers(c)));
            }
            TransferCmd::Confirm { order, transfer } => (order, transfer, TransferAction::Confirm),
            TransferCmd::Fail { order, transfer } => (order, transfer, TransferAction::Fail),
            TransferCmd::Retry { order, transfer } => (order, transfer, TransferAction::Retry),
        };
        let rid = self.request_id.as_deref().ok_or_else(|| {
            format!(
                "to {} a refund transfer give --request-id SERIAL or SOURCE:SERIAL",
                action.verb()
            )
        })?;
        let c = TransferStep {
            request_id: request_id_for(rid, &self.client)?,
            order_id,
            transfer,
            action,
        };
        Ok((self.client, Command::TransferStep(c)))
    }
}

/// One transfer as JSON (with the local send time) and as a line.
pub fn transfer_json(t: &TransferView, zone: &Zone) -> Value {
    let mut v = serde_json::to_value(t).unwrap_or_default();
    v["sent_at"] = json!(zone.instant(t.sent_at_ms));
    v["message"] = json!(t.to_string());
    v
}

/// One transfer's reply as JSON and text.
pub fn transfer(t: &TransferView, zone: &Zone) -> (Value, String) {
    let mut v = transfer_json(t, zone);
    v["ok"] = json!(true);
    v["outcome"] = json!("refund_transfer");
    (v, format!("{t}; sent {}", zone.instant(t.sent_at_ms)))
}

/// A list of transfers as JSON and text, one line each.
pub fn transfers(p: &TransferPage, zone: &Zone) -> (Value, String) {
    let items: Vec<Value> = p.items.iter().map(|t| transfer_json(t, zone)).collect();
    let mut text = match p.items.len() {
        0 => "no refund transfers".to_string(),
        1 => "1 refund transfer:".to_string(),
        n => format!("{n} refund transfers:"),
    };
    for t in &p.items {
        text.push_str(&format!("\n  {t}; sent {}", zone.instant(t.sent_at_ms)));
    }
    (
        json!({"ok": true, "outcome": "refund_transfers", "count": items.len(), "items": items}),
        text,
    )
}
