//! Who may redeem or look up which voucher (ORD-7, ORD-9): the outlet,
//! verifier and POS checks against the catalog's facts, and the tenant
//! check that keeps one seller's callers from learning anything about
//! another seller's vouchers.

use super::*;

/// Who sent a command, as far as a refusal may tell them (ORD-7: no
/// oracle). The server passes it with every command; recovery replays as
/// staff, which is safe because the caller never turns a refusal into a
/// success.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Caller {
    /// Platform staff (the admin token) and recovery: every refusal gives
    /// its real reason.
    Staff,
    /// A tenant's credential (a verifier account, a POS, a seller): about a
    /// voucher of another seller it learns nothing, every outcome is the
    /// unknown-code reply.
    Tenant,
}

/// The identity a command names for its sender: the POS when one is
/// named (a POS token always names itself), else the verifier account,
/// else the seller (a reversal by the seller).
#[derive(Clone, Copy, Debug)]
pub(super) enum Who {
    Device(PosId),
    Verifier(VerifierId),
    Seller(SellerId),
    Nobody,
}

impl Who {
    pub(super) fn of_lookup(c: &Lookup) -> Who {
        match (c.pos_id, c.verifier_id) {
            (Some(p), _) => Who::Device(p),
            (None, Some(v)) => Who::Verifier(v),
            (None, None) => Who::Nobody,
        }
    }

    pub(super) fn of_redeem(c: &Redeem) -> Who {
        c.pos_id.map_or(Who::Verifier(c.verifier_id), Who::Device)
    }

    pub(super) fn of_reverse(c: &Reverse) -> Who {
        match (c.pos_id, c.verifier_id, c.seller_id) {
            (Some(p), _, _) => Who::Device(p),
            (None, Some(v), _) => Who::Verifier(v),
            (None, None, Some(s)) => Who::Seller(s),
            (None, None, None) => Who::Nobody,
        }
    }
}

impl Shard {
    /// Whether `caller`, naming itself `who`, may learn anything about a
    /// voucher of `seller` (ORD-7): staff always; a tenant only when the
    /// catalog's facts make `who` one of that seller's (a verifier or POS
    /// the catalog does not know belongs to no seller).
    pub(super) fn entitled(&self, caller: Caller, who: Who, seller: SellerId) -> bool {
        let owner = match (caller, who) {
            (Caller::Staff, _) => return true,
            (Caller::Tenant, Who::Device(p)) => self.devices.get(&p).map(|d| d.0),
            (Caller::Tenant, Who::Verifier(v)) => self.verifiers.get(&v).map(|v| v.0),
            (Caller::Tenant, Who::Seller(s)) => Some(s),
            (Caller::Tenant, Who::Nobody) => None,
        };
        owner == Some(seller)
    }

    /// ORD-7's checks of where and by whom a voucher is redeemed: the
    /// outlet is one of the product's, the verifier belongs to the seller
    /// and is authorised for the outlet, and a POS, when named, is
    /// registered for the seller at that outlet.
    ///
    /// The checks apply when the catalog knows the voucher's product. For a
    /// product it does not know (issued before the product was published
    /// through the catalog; Decision, see ARCHITECTURE.md) only the tenant
    /// is checked, and only for a verifier or POS the catalog knows.
    /// Runs only after the code and phone digits matched: no oracle.
    pub(super) fn check_place(
        &self,
        product: ProductId,
        seller: SellerId,
        c: &Redeem,
    ) -> Result<(), Rejection> {
        let Some(fact) = self.product_of(product, seller) else {
            // A product the catalog does not know: a verifier or POS the
            // catalog knows must still be the seller's, at its own outlet.
            self.check_tenant(product, seller, Some(c.verifier_id), c.pos_id)?;
            if let Some((_, outlets)) = self.verifiers.get(&c.verifier_id) {
                if !outlets.contains(&c.outlet_id) {
                    return Err(Rejection::new(
                        ErrorCode::VerifierNotAuthorized,
                        format!(
                            "verifier {} is not authorised at outlet {}",
                            c.verifier_id, c.outlet_id
                        ),
                    ));
                }
            }
            if let Some((_, outlet, _)) = c.pos_id.and_then(|p| self.devices.get(&p)) {
                if *outlet != c.outlet_id {
                    return Err(Rejection::new(
                        ErrorCode::DeviceNotRegistered,
                        format!("the POS is not registered at outlet {}", c.outlet_id),
                    ));
                }
            }
            return Ok(());
        };
        if !fact.outlets.contains(&c.outlet_id) {
            return Err(Rejection::new(
                ErrorCode::OutletNotAllowed,
                format!("outlet {} is not an outlet of this product", c.outlet_id),
            ));
        }
        match self.verifiers.get(&c.verifier_id) {
            Some((s, o)) if *s == seller && o.contains(&c.outlet_id) => {}
            _ => {
                return Err(Rejection::new(
                    ErrorCode::VerifierNotAuthorized,
                    format!(
                        "verifier {} is not authorised for this seller at outlet {}",
                        c.verifier_id, c.outlet_id
                    ),
                ))
            }
        }
        if let Some(pos) = c.pos_id {
            match self.devices.get(&pos) {
                Some((s, outlet, provider))
                    if *s == seller
                        && *outlet == c.outlet_id
                        && fact.provider.is_none_or(|p| p == *provider) => {}
                _ => {
                    return Err(Rejection::new(
                        ErrorCode::DeviceNotRegistered,
                        format!(
                            "POS {pos} is not registered for this seller and product's code provider at outlet {}",
                            c.outlet_id
                        ),
                    ))
                }
            }
        }
        Ok(())
    }

    /// The catalog's fact of `product` when it is `seller`'s. A voucher
    /// issued for a product id before another seller published that id is
    /// not bound by the other seller's product (it gets the tenant check).
    pub(super) fn product_of(&self, product: ProductId, seller: SellerId) -> Option<&ProductFact> {
        self.products.get(&product).filter(|p| p.seller == seller)
    }

    /// The tenant check shared by lookups and redemptions: a verifier or
    /// POS must belong to the voucher's seller. It applies when the catalog
    /// knows the product or the verifier or POS named; a verifier or POS
    /// unknown to the catalog, looking at a voucher of a product it does not
    /// know either, is not checked (Decision, see ARCHITECTURE.md).
    pub(super) fn check_tenant(
        &self,
        product: ProductId,
        seller: SellerId,
        verifier: Option<VerifierId>,
        pos: Option<PosId>,
    ) -> Result<(), Rejection> {
        let product_known = self.product_of(product, seller).is_some();
        if let Some(v) = verifier {
            let owner = self.verifiers.get(&v).map(|(s, _)| *s);
            if owner.map_or(product_known, |s| s != seller) {
                return Err(Rejection::new(
                    ErrorCode::VerifierNotAuthorized,
                    format!("verifier {v} is not a verifier of this voucher's seller"),
                ));
            }
        }
        if let Some(p) = pos {
            let owner = self.devices.get(&p).map(|(s, _, _)| *s);
            if owner.map_or(product_known, |s| s != seller) {
                return Err(Rejection::new(
                    ErrorCode::DeviceNotRegistered,
                    format!("POS {p} is not registered for this voucher's seller"),
                ));
            }
        }
        Ok(())
    }
}
