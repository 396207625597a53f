//! What the engine's rule tests share: the clock and the commands of one
//! seller's voucher (seller 10, product 20, 19.99 yuan a unit, redeemed at
//! outlet 3 by verifier 4 on POS 900).
#![allow(dead_code)]

mod money;
mod world;
#[allow(unused_imports)]
pub use money::*;
#[allow(unused_imports)]
pub use world::*;

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

/// The catalog facts the shards need for seller 10's product 20 with
/// `terms`: the product (outlet 3, provider 70), verifier 4 and POS 900.
pub fn product_facts(
    terms: vouch_engine::message::ProductTerms,
) -> Vec<vouch_engine::message::CatalogFact> {
    use vouch_engine::message::CatalogFact;
    vec![
        CatalogFact::Product {
            id: ProductId(20),
            seller: SellerId(10),
            outlets: vec![OutletId(3)],
            code_digits: None,
            provider: Some(vouch_engine::ProviderId(70)),
            validity: Validity::DaysFromIssue(30),
            listed: true,
            terms,
        },
        CatalogFact::Verifier {
            id: VerifierId(4),
            seller: SellerId(10),
            outlets: vec![OutletId(3)],
        },
        CatalogFact::Device {
            pos_id: PosId(900),
            seller: SellerId(10),
            outlet: OutletId(3),
            provider: vouch_engine::ProviderId(70),
        },
    ]
}

/// Product terms in category 11: the automatic refund at `ratio` basis
/// points (None: 100 %), which is also the expiry refund ratio.
pub fn auto_terms(ratio: Option<u16>) -> vouch_engine::message::ProductTerms {
    vouch_engine::message::ProductTerms {
        auto_refund: true,
        expiry_refund_ratio: ratio.map(|r| vouch_engine::Bps::new(r).unwrap()),
        category: vouch_engine::CategoryId(11),
        ..Default::default()
    }
}

/// Product terms in category 11 with manual refunds (REF-2).
pub fn manual_terms() -> vouch_engine::message::ProductTerms {
    vouch_engine::message::ProductTerms {
        auto_refund: false,
        ..auto_terms(None)
    }
}
