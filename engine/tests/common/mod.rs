//! What the engine's rule tests share: the clock and the commands of one
//! seller's voucher (seller 10, product 20, 19.99 yuan a unit, redeemed at
//! outlet 3 by verifier 4 on POS 900).
#![allow(dead_code)]

use vouch_engine::command::*;
use vouch_engine::validity::Validity;
use vouch_engine::{Code, Command, Fen, OutletId, PosId, ProductId, SellerId, VerifierId};

/// 2026-11-29 12:00:00 +08:00 in unix ms.
pub const NOW: i64 = 1_795_924_800_000;
/// One hour, ms.
pub const HOUR: i64 = 3_600_000;

/// An order of `units` at 19.99 yuan with `digits`-digit codes, valid 30
/// days from issue.
pub fn issue_cmd(order: &str, units: u32, digits: u8) -> Command {
    Command::Issue(Issue {
        order_id: order.into(),
        seller_id: SellerId(10),
        product_id: ProductId(20),
        units,
        unit_price: Fen::new(1999),
        mobile: "13800001234".into(),
        validity: Validity::DaysFromIssue(30),
        code_digits: digits,
    })
}

/// Request id `serial` of POS 900.
pub fn rid(serial: u64) -> RequestId {
    RequestId {
        source: 900,
        serial,
    }
}

/// A redemption of `units` of `code` on POS 900, request id `serial`.
pub fn redeem_cmd(code: Code, units: u32, serial: u64) -> Command {
    Command::Redeem(Redeem {
        request_id: rid(serial),
        code,
        phone_last4: "1234".into(),
        units,
        outlet_id: OutletId(3),
        verifier_id: VerifierId(4),
        pos_id: Some(PosId(900)),
    })
}
