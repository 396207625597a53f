//! Code providers (PRV, PUB-4): staff register a provider with the code
//! length it issues (ORD-3); a provider imports its relationship with an
//! onboarded seller (PRV-1) and registers POS devices, with their check
//! method, at that seller's outlets (PRV-3). The platform's own provider
//! serves every onboarded seller without an import (PUB-4).

use super::check::{check_text, reject};
use super::{
    Catalog, CatalogEvent, CatalogOutcome, CatalogReply, CheckMethod, Device, Onboarding, Provider,
    PLATFORM_PROVIDER,
};
use crate::error::ErrorCode;
use crate::ids::{OutletId, PosId, ProviderId, SellerId};
use crate::limits::{CODE_DIGITS_MAX, CODE_DIGITS_MIN};
use std::collections::BTreeSet;

impl Catalog {
    /// [`super::CatalogCommand::RegisterProvider`]: a provider issuing
    /// `code_digits`-digit codes.
    pub(super) fn register_provider(
        &mut self,
        id: ProviderId,
        name: &str,
        code_digits: u8,
    ) -> CatalogReply {
        check_text("provider name", name)?;
        if !(CODE_DIGITS_MIN..=CODE_DIGITS_MAX).contains(&code_digits) {
            return Err(reject(ErrorCode::BadRequest, "code_digits must be 6..=11"));
        }
        if self.providers.contains_key(&id) {
            return Err(reject(ErrorCode::AlreadyExists, format!("provider {id}")));
        }
        self.providers.insert(
            id,
            Provider {
                name: name.to_owned(),
                code_digits,
                sellers: BTreeSet::new(),
            },
        );
        Ok(CatalogOutcome::Done)
    }

    /// [`super::CatalogCommand::LinkSeller`]: provider `me` imports its
    /// relationship with onboarded `seller` (PRV-1).
    pub(super) fn link_seller(&mut self, me: ProviderId, seller: SellerId) -> CatalogReply {
        self.enabled_seller(seller)?;
        let provider = self
            .providers
            .get_mut(&me)
            .ok_or_else(|| reject(ErrorCode::NotFound, format!("provider {me}")))?;
        provider.sellers.insert(seller);
        Ok(CatalogOutcome::Done)
    }

    /// [`super::CatalogCommand::RegisterDevice`]: provider `me` registers
    /// a POS at an outlet of a seller it serves (PRV-3).
    pub(super) fn register_device(
        &mut self,
        me: ProviderId,
        pos_id: PosId,
        outlet: OutletId,
        check_method: CheckMethod,
        events: &mut Vec<CatalogEvent>,
    ) -> CatalogReply {
        let owner = self
            .outlets
            .get(&outlet)
            .map(|o| o.seller)
            .ok_or_else(|| reject(ErrorCode::NotFound, format!("outlet {outlet}")))?;
        if !self.linked(me, owner) {
            return Err(reject(
                ErrorCode::ProviderNotLinked,
                "the outlet's seller is not linked to this provider",
            ));
        }
        if self.devices.contains_key(&pos_id) {
            return Err(reject(ErrorCode::AlreadyExists, format!("POS {pos_id}")));
        }
        self.devices.insert(
            pos_id,
            Device {
                provider: me,
                outlet,
                check_method,
            },
        );
        events.push(CatalogEvent::Fact(crate::message::CatalogFact::Device {
            pos_id,
            seller: owner,
            outlet,
            provider: me,
        }));
        Ok(CatalogOutcome::Done)
    }

    /// Whether `provider` may serve `seller` (PUB-4, PRV-1): the seller
    /// imported its relationship, or the provider is the platform's own
    /// and the seller has onboarded.
    pub(super) fn linked(&self, provider: ProviderId, seller: SellerId) -> bool {
        let imported = self
            .providers
            .get(&provider)
            .is_some_and(|p| p.sellers.contains(&seller));
        let platform = provider == PLATFORM_PROVIDER
            && self
                .sellers
                .get(&seller)
                .is_some_and(|s| s.onboarding == Onboarding::Enabled);
        imported || platform
    }
}
