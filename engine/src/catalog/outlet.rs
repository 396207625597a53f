//! Outlets and verifier accounts of a seller (PUB-5): an onboarded seller
//! adds outlets, with name, address and coordinates for local search and
//! maps, and real-name verifier accounts or sub-accounts that redeem at
//! some of its own outlets. Each seller holds at most
//! [`SELLER_ENTITIES_MAX`] of each; verifiers are a fact voucher shards
//! need for ORD-7's redemption checks.

use super::check::{check_distinct, check_text, reject};
use super::{
    Catalog, CatalogEvent, CatalogOutcome, CatalogReply, Outlet, Verifier, LIST_ITEMS_MAX,
    SELLER_ENTITIES_MAX,
};
use crate::error::{ErrorCode, Rejection};
use crate::ids::{OutletId, SellerId, VerifierId};
use rust_decimal::Decimal;

impl Catalog {
    /// [`super::CatalogCommand::AddOutlet`]: seller `me` adds outlet `id`.
    pub(super) fn add_outlet(
        &mut self,
        me: SellerId,
        id: OutletId,
        name: &str,
        address: &str,
        latitude: Decimal,
        longitude: Decimal,
    ) -> CatalogReply {
        check_text("outlet name", name)?;
        check_text("outlet address", address)?;
        let (lat_max, lon_max) = (Decimal::from(90), Decimal::from(180));
        if latitude.abs() > lat_max || longitude.abs() > lon_max {
            return Err(reject(ErrorCode::BadRequest, "coordinates out of range"));
        }
        self.enabled_seller(me)?;
        if self.outlets.contains_key(&id) {
            return Err(reject(ErrorCode::AlreadyExists, format!("outlet {id}")));
        }
        if self.outlets.values().filter(|o| o.seller == me).count() >= SELLER_ENTITIES_MAX {
            return Err(reject(
                ErrorCode::BadRequest,
                format!("a seller has at most {SELLER_ENTITIES_MAX} outlets"),
            ));
        }
        self.outlets.insert(
            id,
            Outlet {
                seller: me,
                name: name.to_owned(),
                address: address.to_owned(),
                latitude,
                longitude,
            },
        );
        Ok(CatalogOutcome::Done)
    }

    /// [`super::CatalogCommand::AddVerifier`]: seller `me` adds a
    /// real-name verifier account (a sub-account of `parent`) for some of
    /// its outlets.
    pub(super) fn add_verifier(
        &mut self,
        me: SellerId,
        id: VerifierId,
        real_name: bool,
        parent: Option<VerifierId>,
        outlets: &[OutletId],
        events: &mut Vec<CatalogEvent>,
    ) -> CatalogReply {
        self.enabled_seller(me)?;
        if self.verifiers.values().filter(|v| v.seller == me).count() >= SELLER_ENTITIES_MAX {
            return Err(reject(
                ErrorCode::BadRequest,
                format!("a seller has at most {SELLER_ENTITIES_MAX} verifier accounts"),
            ));
        }
        if !real_name {
            return Err(reject(
                ErrorCode::VerifierNotRealName,
                "verifier accounts and sub-accounts must be real-name verified",
            ));
        }
        if self.verifiers.contains_key(&id) {
            return Err(reject(ErrorCode::AlreadyExists, format!("verifier {id}")));
        }
        if let Some(p) = parent {
            if self.verifiers.get(&p).map(|v| v.seller) != Some(me) {
                return Err(reject(ErrorCode::NotFound, format!("verifier {p}")));
            }
        }
        self.own_outlets(me, outlets)?;
        self.verifiers.insert(
            id,
            Verifier {
                seller: me,
                real_name,
                parent,
                outlets: outlets.iter().copied().collect(),
            },
        );
        events.push(CatalogEvent::Fact(crate::message::CatalogFact::Verifier {
            id,
            seller: me,
            outlets: outlets.to_vec(),
        }));
        Ok(CatalogOutcome::Done)
    }

    /// Refuses `outlets` unless they are distinct, at most
    /// [`LIST_ITEMS_MAX`], and all `seller`'s own.
    pub(super) fn own_outlets(
        &self,
        seller: SellerId,
        outlets: &[OutletId],
    ) -> Result<(), Rejection> {
        if outlets.len() > LIST_ITEMS_MAX {
            return Err(reject(ErrorCode::BadRequest, "too many outlets"));
        }
        check_distinct("outlets", outlets)?;
        for o in outlets {
            if self.outlets.get(o).map(|x| x.seller) != Some(seller) {
                return Err(reject(ErrorCode::NotFound, format!("outlet {o}")));
            }
        }
        Ok(())
    }
}
