//! `vouch refund …`, `vouch extend` and `vouch order show` (REF-1..4,
//! ORD-6, ORD-12): the commands and how their replies read, as text or
//! JSON with local times beside every `_ms` field.

use super::money::parse_amount;
use super::time::Zone;
use super::{request_id_for, ClientArgs};
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use vouch_engine::command::{
    Extend, Extended, ListOrders, OrderPage, OrderShow, OrderState, OrderView, Refund,
    RefundAction, Refunded, ORDERS_PAGE_ITEMS_MAX,
};
use vouch_engine::{Command, Fen};

/// `vouch refund …`: one refund step of an order.
#[derive(Args)]
pub struct RefundArgs {
    #[command(subcommand)]
    step: RefundStep,
    /// Client request id SOURCE:SERIAL, or SERIAL with this token's
    /// source; a retry with the same id never refunds twice.
    #[arg(long, global = true)]
    request_id: Option<String>,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Subcommand)]
enum RefundStep {
    /// REF-1 (front end, for the buyer): refund every unredeemed unit at
    /// once, less the 1.00 code fee, by the product's refund ratio.
    Automatic {
        /// Order id.
        order: String,
    },
    /// REF-3 (front end or staff): no code ever reached the buyer (the SMS
    /// gateway never accepted one, ORD-2) and nothing was redeemed: the
    /// whole order amount back.
    NotDelivered {
        /// Order id.
        order: String,
    },
    /// REF-2 (front end): ask for a manual refund; the units are locked
    /// until the seller decides (5 calendar days, then approved). Approval
    /// pays the amount and voids every unredeemed unit; the rest of their
    /// value is the seller's.
    Request {
        /// Order id.
        order: String,
        /// Yuan asked, at most the unredeemed value (default: all of it).
        #[arg(long, value_parser = parse_amount, allow_hyphen_values = true)]
        amount: Option<Fen>,
    },
    /// REF-4 (seller): refund an agreed amount; every unredeemed unit is
    /// void, the rest of their value is the seller's.
    Agree {
        /// Order id.
        order: String,
        /// Yuan to the buyer, above 0, at most the unredeemed value.
        #[arg(long, value_parser = parse_amount, allow_hyphen_values = true)]
        amount: Fen,
    },
    /// REF-2 (seller): approve the open request.
    Approve {
        /// Order id.
        order: String,
    },
    /// REF-2 (seller): reject the open request; the buyer gets a new code.
    Reject {
        /// Order id.
        order: String,
    },
    /// REF-5 (front end): after the order's money reached the seller, ask
    /// for an amount back with a reason.
    AfterSale {
        /// Order id.
        order: String,
        /// Yuan asked, at most what the seller received for the order.
        #[arg(long, value_parser = parse_amount, allow_hyphen_values = true)]
        amount: Fen,
        /// The buyer's reason.
        #[arg(long)]
        reason: String,
    },
    /// REF-5 (seller): confirm the open after-sale request; the amount is
    /// taken back from the seller's deposit (the rest is owed and netted
    /// from its next settlements).
    ConfirmAfterSale {
        /// Order id.
        order: String,
    },
}

/// `vouch extend ORDER --until …` (ORD-6, seller).
#[derive(Args)]
pub struct ExtendArgs {
    /// Order id.
    order: String,
    /// The new last day, a local date (YYYY-MM-DD, valid through its
    /// 23:59:59 in the time zone), or an RFC 3339 instant with its offset
    /// (the exclusive end). Only later than now.
    #[arg(long)]
    until: String,
    /// Client request id SOURCE:SERIAL or SERIAL.
    #[arg(long)]
    request_id: String,
    #[command(flatten)]
    client: ClientArgs,
}

/// `vouch order show ORDER` (ORD-12).
#[derive(Args)]
pub struct OrderArgs {
    #[command(subcommand)]
    action: OrderAction,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Subcommand)]
enum OrderAction {
    /// One order's state, units and money.
    Show {
        /// Order id.
        order: String,
    },
    /// Orders by state across all shards (a seller its own, staff all or
    /// one seller's).
    List {
        /// Only this state: available, used or unavailable.
        #[arg(long, value_parser = parse_state)]
        state: Option<OrderState>,
        /// Only this seller's (staff).
        #[arg(long)]
        seller: Option<vouch_engine::SellerId>,
    },
}

fn parse_state(s: &str) -> Result<OrderState, String> {
    match s {
        "available" => Ok(OrderState::Available),
        "used" => Ok(OrderState::Used),
        "unavailable" => Ok(OrderState::Unavailable),
        _ => Err(format!("state {s:?}: use available, used or unavailable")),
    }
}

impl RefundArgs {
    /// Whether `--json` was given.
    pub fn json(&self) -> bool {
        self.client.json
    }

    /// The refund command and where to send it.
    ///
    /// Errors: a missing or malformed request id.
    pub(super) fn build(self) -> Result<(ClientArgs, Command), String> {
        let rid = self
            .request_id
            .as_deref()
            .ok_or_else(|| "a refund needs --request-id SERIAL or SOURCE:SERIAL".to_string())?;
        let request_id = request_id_for(rid, &self.client)?;
        let (order_id, action) = match self.step {
            RefundStep::Automatic { order } => (order, RefundAction::Automatic),
            RefundStep::NotDelivered { order } => (order, RefundAction::NotDelivered),
            RefundStep::Request { order, amount } => (order, RefundAction::Request { amount }),
            RefundStep::Agree { order, amount } => (order, RefundAction::Agreed { amount }),
            RefundStep::Approve { order } => (order, RefundAction::Approve),
            RefundStep::Reject { order } => (order, RefundAction::Reject),
            RefundStep::AfterSale {
                order,
                amount,
                reason,
            } => (order, RefundAction::AfterSale { amount, reason }),
            RefundStep::ConfirmAfterSale { order } => (order, RefundAction::ConfirmAfterSale),
        };
        let c = Refund {
            request_id,
            order_id,
            action,
            seller_id: None,
        };
        Ok((self.client, Command::Refund(c)))
    }
}

impl ExtendArgs {
    /// Whether `--json` was given.
    pub fn json(&self) -> bool {
        self.client.json
    }

    /// The extension command.
    ///
    /// Errors: a malformed date or request id.
    pub(super) fn build(self) -> Result<(ClientArgs, Command), String> {
        let zone = Zone::new(&self.client.time_zone)?;
        let until = parse_until(&self.until, &zone)?;
        let c = Extend {
            request_id: request_id_for(&self.request_id, &self.client)?,
            order_id: self.order,
            valid_until_ms: until,
            seller_id: None,
        };
        Ok((self.client, Command::Extend(c)))
    }
}

impl OrderArgs {
    /// Whether `--json` was given.
    pub fn json(&self) -> bool {
        self.client.json
    }

    /// The order read.
    pub(super) fn build(self) -> (ClientArgs, Command) {
        let c = match self.action {
            OrderAction::Show { order } => Command::Order(OrderShow {
                order_id: order,
                seller_id: None,
            }),
            OrderAction::List { state, seller } => Command::Orders(ListOrders {
                shard: 0,
                seller_id: seller,
                state,
                from: 0,
                limit: ORDERS_PAGE_ITEMS_MAX,
            }),
        };
        (self.client, c)
    }
}

/// A local last day (the end is the next local midnight) or an RFC 3339
/// instant, as unix ms.
///
/// Errors: anything else, with the accepted forms.
pub fn parse_until(s: &str, zone: &Zone) -> Result<i64, String> {
    if let Ok(t) = s.parse::<jiff::Timestamp>() {
        return Ok(t.as_millisecond());
    }
    let bad = |e: String| {
        format!("--until {s:?}: use a date YYYY-MM-DD or RFC 3339 with an offset ({e})")
    };
    let date: jiff::civil::Date = s.parse().map_err(|e: jiff::Error| bad(e.to_string()))?;
    let next = date.tomorrow().map_err(|e| bad(e.to_string()))?;
    zone.start_of(next).map_err(bad)
}

/// A refund step's reply as JSON.
pub fn refunded_json(r: &Refunded) -> Value {
    json!({"ok": true, "outcome": "refunded", "replayed": r.replayed, "order_id": r.order_id,
           "kind": r.kind, "state": r.state, "buyer_amount": r.buyer_amount,
           "code_fee": r.code_fee, "seller_amount": r.seller_amount,
           "units_voided": r.units_voided, "refundable": r.refundable,
           "new_code": r.new_code.map(|c| c.to_string()), "transfer": r.transfer,
           "message": r.to_string()})
}

/// An extension's reply as JSON and text.
pub fn extended(x: &Extended, zone: &Zone) -> (Value, String) {
    let validity = zone.validity(x.valid_from_ms, x.valid_until_ms);
    (
        json!({"ok": true, "outcome": "extended", "replayed": x.replayed, "order_id": x.order_id,
               "valid_from_ms": x.valid_from_ms, "valid_from": zone.instant(x.valid_from_ms),
               "valid_until_ms": x.valid_until_ms, "valid_until": zone.instant(x.valid_until_ms),
               "valid_through": zone.through(x.valid_until_ms)}),
        format!(
            "{}order {} now {validity}",
            if x.replayed {
                "already extended (a repeat): "
            } else {
                ""
            },
            x.order_id
        ),
    )
}

/// A list of orders as JSON and text, one line each.
pub fn orders(p: &OrderPage, zone: &Zone) -> (Value, String) {
    let mut text = match p.items.len() {
        0 => "no orders".to_string(),
        1 => "1 order:".to_string(),
        n => format!("{n} orders:"),
    };
    let mut items = Vec::new();
    for o in &p.items {
        let state = match o.unavailable {
            Some(why) => format!(
                "{} ({})",
                o.state,
                serde_json::to_value(why)
                    .unwrap_or_default()
                    .as_str()
                    .unwrap_or("")
            ),
            None => o.state.to_string(),
        };
        text.push_str(&format!(
            "\n  {} seller {} product {}: {state}; {} of {} units left; paid {} yuan, {} still refundable; valid through {}",
            o.order_id, o.seller_id, o.product_id, o.units_remaining, o.units_total, o.paid, o.refundable,
            zone.through(o.valid_until_ms)
        ));
        let mut v = serde_json::to_value(o).unwrap_or_default();
        v["valid_until"] = json!(zone.instant(o.valid_until_ms));
        items.push(v);
    }
    (
        json!({"ok": true, "outcome": "orders", "count": items.len(), "items": items}),
        text,
    )
}

/// An order's view as JSON and text.
pub fn order(o: &OrderView, zone: &Zone) -> (Value, String) {
    let state = match o.unavailable {
        Some(why) => format!(
            "{} ({})",
            o.state,
            serde_json::to_value(why)
                .unwrap_or_default()
                .as_str()
                .unwrap_or("")
        ),
        None => o.state.to_string(),
    };
    let mut text = format!(
        "order {} of seller {}, product {}: {state}, {}; {} of {} units left, {} redeemed, {} void{}\n  {}\n  paid {} yuan, refunded {}, to the seller {} (redemptions inside their reversal window included), held {}; {} yuan still refundable",
        o.order_id,
        o.seller_id,
        o.product_id,
        if o.delivered { "code delivered" } else { "code not delivered yet" },
        o.units_remaining,
        o.units_total,
        o.units_redeemed,
        o.units_void,
        if o.refund_requested { "; a refund request is open" } else { "" },
        zone.validity(o.valid_from_ms, o.valid_until_ms),
        o.paid,
        o.refunded,
        o.to_seller,
        o.escrow,
        o.refundable
    );
    for t in &o.transfers {
        text.push_str(&format!("\n  {t}; sent {}", zone.instant(t.sent_at_ms)));
    }
    let mut value = serde_json::to_value(o).unwrap_or_default();
    value["ok"] = json!(true);
    value["outcome"] = json!("order");
    value["transfers"] = o
        .transfers
        .iter()
        .map(|t| super::transfer::transfer_json(t, zone))
        .collect();
    value["valid_from"] = json!(zone.instant(o.valid_from_ms));
    value["valid_until"] = json!(zone.instant(o.valid_until_ms));
    value["valid_through"] = json!(zone.through(o.valid_until_ms));
    (value, text)
}
