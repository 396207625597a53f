//! How the command-line client shows the engine's replies: one sentence
//! per outcome in the platform's time zone, or one JSON object with
//! `--json` (DESIGN "Command-line contracts"). A repeat of a request
//! already applied says so (`replayed`, issue 8 item 6).

use crate::cli::print_json;
use crate::cli::time::Zone;
use serde_json::{json, Value};
use vouch_engine::command::{HistoryEvent, Issued, Redeemed, VoucherHistory};
use vouch_engine::{Outcome, RequestId};
use vouch_protocol::WireError;

/// "1 unit", "3 units".
fn units(n: u32) -> String {
    if n == 1 {
        "1 unit".into()
    } else {
        format!("{n} units")
    }
}

/// A code, or "none" for a voucher without units left.
fn code_or_none(c: Option<vouch_engine::Code>) -> String {
    c.map_or_else(|| "none".into(), |c| c.to_string())
}

/// A redemption's reply as a sentence.
fn redeemed_text(r: &Redeemed) -> String {
    let repeat = if r.replayed {
        "already redeemed by this request id (a repeat; nothing redeemed again): "
    } else {
        ""
    };
    match r.new_code {
        Some(c) => format!(
            "{repeat}redeemed {} of order {}; {} left on new code {c} (the old code no longer works)",
            units(r.units),
            r.order_id,
            units(r.units_remaining)
        ),
        None => format!(
            "{repeat}redeemed {} of order {}; none left",
            units(r.units),
            r.order_id
        ),
    }
}

/// An issue's reply as a sentence; a repeat gives the voucher's state now.
fn issued_text(i: &Issued, zone: &Zone) -> String {
    let validity = zone.validity(i.valid_from_ms, i.valid_until_ms);
    if !i.replayed {
        return format!("issued code {} for {}, {validity}", i.code, units(i.units));
    }
    let now = match i.live_code {
        Some(c) if c == i.code => format!("{} left on it", units(i.units_remaining)),
        Some(c) => format!(
            "that code was replaced: {} left on live code {c}",
            units(i.units_remaining)
        ),
        None => "no units left: the voucher has no live code".into(),
    };
    format!(
        "order already issued (a repeat; nothing issued again): code {} for {}, {validity}; {now}",
        i.code,
        units(i.units)
    )
}

fn issued_json(i: &Issued, zone: &Zone) -> Value {
    json!({"ok": true, "outcome": "issued", "replayed": i.replayed,
           "code": i.code.to_string(), "units": i.units,
           "live_code": i.live_code.map(|c| c.to_string()), "units_remaining": i.units_remaining,
           "valid_from_ms": i.valid_from_ms, "valid_from": zone.instant(i.valid_from_ms),
           "valid_until_ms": i.valid_until_ms, "valid_until": zone.instant(i.valid_until_ms), "valid_through": zone.through(i.valid_until_ms)})
}

/// Prints an engine reply; `request_id` is the request id of a redemption
/// (shown so that a reversal can name it) or of a reversal.
pub(crate) fn print_outcome(o: &Outcome, json: bool, zone: &Zone, request_id: Option<RequestId>) {
    let redemption = request_id;
    let (value, text) = match o {
        Outcome::Issued(i) => (issued_json(i, zone), issued_text(i, zone)),
        Outcome::LookedUp(l) => {
            let now_ms = jiff::Timestamp::now().as_millisecond();
            let not_yet_valid = now_ms < l.valid_from_ms;
            (
                json!({"ok": true, "outcome": "looked_up", "order_id": l.order_id,
                       "seller_id": l.seller_id, "product_id": l.product_id,
                       "units_remaining": l.units_remaining, "units_total": l.units_total,
                       "valid_from_ms": l.valid_from_ms, "valid_from": zone.instant(l.valid_from_ms),
                       "valid_until_ms": l.valid_until_ms, "valid_until": zone.instant(l.valid_until_ms), "valid_through": zone.through(l.valid_until_ms),
                       "not_yet_valid": not_yet_valid}),
                format!(
                    "order {}: {} of {} remaining, {}{}",
                    l.order_id,
                    l.units_remaining,
                    units(l.units_total),
                    zone.validity(l.valid_from_ms, l.valid_until_ms),
                    if not_yet_valid {
                        "; not yet valid: it cannot be redeemed before its first day"
                    } else {
                        ""
                    }
                ),
            )
        }
        Outcome::Redeemed(r) => (
            json!({"ok": true, "outcome": "redeemed", "replayed": r.replayed,
                   "order_id": r.order_id, "units": r.units,
                   "units_remaining": r.units_remaining, "new_code": r.new_code.map(|c| c.to_string()),
                   "request_id": redemption.map(|rid| rid.to_string())}),
            format!(
                "{}{}",
                redeemed_text(r),
                redemption.map_or(String::new(), |rid| format!(
                    "\nrequest id {rid} (a reversal names it: --redemption {rid})"
                ))
            ),
        ),
        Outcome::Reversed(r) => (
            json!({"ok": true, "outcome": "reversed", "replayed": r.replayed,
                   "request_id": request_id.map(|rid| rid.to_string()),
                   "order_id": r.order_id, "units": r.units,
                   "units_remaining": r.units_remaining, "live_code": r.live_code.to_string()}),
            format!(
                "{}reversed {} of order {}; {} left on code {}",
                if r.replayed {
                    "already reversed by this request id (a repeat; nothing reversed again): "
                } else {
                    ""
                },
                units(r.units),
                r.order_id,
                units(r.units_remaining),
                r.live_code
            ),
        ),
        Outcome::History(h) => (history_json(h, zone), history_text(h, zone)),
        Outcome::Vouchers { items, .. } => (
            json!({"ok": true, "outcome": "vouchers", "count": items.len()}),
            format!("{} vouchers", items.len()),
        ),
        Outcome::Redemptions { items, .. } => (
            json!({"ok": true, "outcome": "redemptions", "count": items.len()}),
            format!("{} redemptions", items.len()),
        ),
        Outcome::Refunded(r) => (crate::cli::order::refunded_json(r), r.to_string()),
        Outcome::Extended(x) => crate::cli::order::extended(x, zone),
        Outcome::Order(o) => crate::cli::order::order(o, zone),
        Outcome::Transfer(t) => crate::cli::transfer::transfer(t, zone),
        Outcome::Transfers(p) => crate::cli::transfer::transfers(p, zone),
        Outcome::Orders(p) => crate::cli::order::orders(p, zone),
        Outcome::Entries(p) => {
            let (value, lines) = crate::cli::ledger::page(p, zone);
            (value, lines.join("\n"))
        }
    };
    if json {
        print_json(value);
    } else {
        println!("{text}");
    }
}

/// A voucher's history as lines: the voucher now, then one line per event.
fn history_text(h: &VoucherHistory, zone: &Zone) -> String {
    let mut out = format!(
        "order {} (seller {}, product {}): {} of {} left, live code {}, {}",
        h.order_id,
        h.seller_id,
        h.product_id,
        h.units_remaining,
        units(h.units_total),
        code_or_none(h.live_code),
        zone.validity(h.valid_from_ms, h.valid_until_ms)
    );
    for e in &h.events {
        out.push('\n');
        out.push_str(&zone.instant(e.at_ms()));
        out.push_str("  ");
        out.push_str(&event_text(e));
    }
    out
}

fn event_text(e: &HistoryEvent) -> String {
    match e {
        HistoryEvent::Issued { code, units: n, .. } => {
            format!("issued code {code} for {}", units(*n))
        }
        HistoryEvent::Redeemed {
            request_id,
            code,
            units: n,
            units_remaining,
            outlet_id,
            verifier_id,
            pos_id,
            new_code,
            ..
        } => {
            let pos = pos_id.map_or(String::new(), |p| format!(", POS {p}"));
            let rest = match new_code {
                Some(c) => format!("{} moved to new code {c}", units(*units_remaining)),
                None => "none left".into(),
            };
            format!(
                "redeemed {} of code {code} at outlet {outlet_id} by verifier {verifier_id}{pos} \
                 (request id {request_id}); {rest}",
                units(*n)
            )
        }
        HistoryEvent::Reversed {
            request_id,
            redemption,
            units: n,
            new_code,
            ..
        } => {
            let code = new_code.map_or(String::new(), |c| format!(" on new code {c}"));
            format!(
                "reversed redemption {redemption} (request id {request_id}): {} back{code}",
                units(*n)
            )
        }
    }
}

fn history_json(h: &VoucherHistory, zone: &Zone) -> Value {
    let events: Vec<Value> = h.events.iter().map(|e| event_json(e, zone)).collect();
    json!({"ok": true, "outcome": "history", "order_id": h.order_id,
           "seller_id": h.seller_id, "product_id": h.product_id,
           "units_total": h.units_total, "units_remaining": h.units_remaining,
           "live_code": h.live_code.map(|c| c.to_string()),
           "valid_from_ms": h.valid_from_ms, "valid_from": zone.instant(h.valid_from_ms),
           "valid_until_ms": h.valid_until_ms, "valid_until": zone.instant(h.valid_until_ms), "valid_through": zone.through(h.valid_until_ms),
           "events": events})
}

fn event_json(e: &HistoryEvent, zone: &Zone) -> Value {
    let at = |ms: i64| (ms, zone.instant(ms));
    match e {
        HistoryEvent::Issued { at_ms, code, units } => {
            let (ms, t) = at(*at_ms);
            json!({"event": "issued", "at_ms": ms, "at": t, "code": code.to_string(), "units": units})
        }
        HistoryEvent::Redeemed {
            at_ms,
            request_id,
            code,
            units,
            units_remaining,
            outlet_id,
            verifier_id,
            pos_id,
            new_code,
        } => {
            let (ms, t) = at(*at_ms);
            json!({"event": "redeemed", "at_ms": ms, "at": t, "request_id": request_id.to_string(),
                   "code": code.to_string(), "units": units, "units_remaining": units_remaining,
                   "outlet_id": outlet_id, "verifier_id": verifier_id, "pos_id": pos_id,
                   "new_code": new_code.map(|c| c.to_string())})
        }
        HistoryEvent::Reversed {
            at_ms,
            request_id,
            redemption,
            units,
            new_code,
        } => {
            let (ms, t) = at(*at_ms);
            json!({"event": "reversed", "at_ms": ms, "at": t, "request_id": request_id.to_string(),
                   "redemption": redemption.to_string(), "units": units,
                   "new_code": new_code.map(|c| c.to_string())})
        }
    }
}

/// Prints a refusal: to standard error, or as JSON on standard output.
pub(crate) fn print_refusal(e: &WireError, json: bool) {
    if json {
        print_json(
            json!({"ok": false, "error": {"code": e.code, "name": e.name,
                                                  "message": e.message, "retry_after_ms": e.retry_after_ms}}),
        );
    } else {
        eprintln!("refused: {e}");
    }
}
