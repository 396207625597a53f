//! What a message says: the JSON body posted to its endpoint, made from the
//! stored effect when it is sent (so a stored row stays small).
//!
//! Every body carries `message_id` (the same on every attempt: receivers
//! drop repeats by it), `kind`, `event`, `created_at` (local time with its
//! offset, platform time zone), the order, the buyer's mobile and, for the
//! SMS gateway, `text`: the SMS as the buyer reads it.

use super::rows::{Entry, MessageId};
use jiff::tz::TimeZone;
use serde_json::{json, Value};
use vouch_engine::command::SendReason;
use vouch_engine::Effect;

/// The event name of an effect, as receivers see it in `event`.
pub fn event(effect: &Effect) -> &'static str {
    match effect {
        Effect::SendCode { reason, .. } => match reason {
            SendReason::Issued => "code_issued",
            SendReason::Reversal => "code_after_reversal",
            SendReason::Unlocked => "code_after_refund_rejected",
        },
        Effect::RedemptionNotice { .. } => "redeemed",
        Effect::RefundNotice { .. } => "refunded",
    }
}

/// The SMS text of an effect (ORD-2, ORD-8).
pub fn sms_text(effect: &Effect) -> String {
    match effect {
        Effect::SendCode {
            to, code, units, ..
        } => format!(
            "Your voucher code for order {} is {code}, for {}.",
            to.order_id,
            units_words(*units)
        ),
        Effect::RedemptionNotice {
            to,
            units,
            units_remaining,
            new_code,
        } => match new_code {
            Some(code) => format!(
                "{} of order {} redeemed. {} left on your new code {code}; the old code no longer works.",
                units_words(*units),
                to.order_id,
                units_words(*units_remaining)
            ),
            None => format!(
                "{} of order {} redeemed. No units left.",
                units_words(*units),
                to.order_id
            ),
        },
        Effect::RefundNotice {
            to,
            amount,
            code_void,
        } => format!(
            "A refund of {amount} yuan for order {} is on its way to you.{}",
            to.order_id,
            if *code_void {
                " Its code no longer works."
            } else {
                ""
            }
        ),
    }
}

fn units_words(n: u32) -> String {
    vouch_engine::words::count(u64::from(n), "unit", "units")
}

/// The JSON body of message `id`, with times in `tz`.
pub fn body(id: MessageId, entry: &Entry, tz: &TimeZone) -> Vec<u8> {
    let to = entry.effect.recipient();
    let created_at = jiff::Timestamp::from_millisecond(entry.created_ms)
        .map(|t| {
            t.to_zoned(tz.clone())
                .strftime("%Y-%m-%dT%H:%M:%S%.3f%:z")
                .to_string()
        })
        .unwrap_or_default();
    let mut v = json!({
        "message_id": id.to_string(),
        "kind": entry.kind.name(),
        "event": event(&entry.effect),
        "created_at": created_at,
        "order_id": &*to.order_id,
        "mobile": &*to.mobile,
        // As strings: ids above 2^53 lose digits as JSON numbers.
        "seller_id": to.seller_id.0.to_string(),
        "product_id": to.product_id.0.to_string(),
    });
    let fields = &mut v;
    match &entry.effect {
        Effect::SendCode { code, units, .. } => {
            fields["code"] = Value::from(code.to_string());
            fields["units"] = Value::from(*units);
        }
        Effect::RedemptionNotice {
            units,
            units_remaining,
            new_code,
            ..
        } => {
            fields["units"] = Value::from(*units);
            fields["units_remaining"] = Value::from(*units_remaining);
            fields["code"] = new_code
                .map(|c| Value::from(c.to_string()))
                .unwrap_or(Value::Null);
        }
        Effect::RefundNotice {
            amount, code_void, ..
        } => {
            fields["amount"] = Value::from(amount.to_string());
            fields["code_void"] = Value::from(*code_void);
        }
    }
    fields["text"] = Value::from(sms_text(&entry.effect));
    serde_json::to_vec(&v).expect("a JSON value always serializes")
}
