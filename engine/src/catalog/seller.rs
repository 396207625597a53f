//! Sellers and their onboarding: staff open a seller account (mall or
//! marketplace, self-issuing per ONB-3, group-buying operator per ONB-5);
//! the seller walks the ONB-2 application in order (agreement, payment
//! account that can freeze a deposit, confirmation with the service phone
//! and the categories wanted), after which publishing is enabled at once
//! with pay-on-redemption; staff grant publish permission per category
//! (ONB-1). A step out of order is `onboarding_step_out_of_order`.

use super::check::{check_distinct, check_text, reject};
use super::{
    Catalog, CatalogOutcome, CatalogReply, Onboarding, Seller, SellerKind, LIST_ITEMS_MAX,
};
use crate::error::{ErrorCode, Rejection};
use crate::ids::{CategoryId, SellerId};
use std::collections::{BTreeMap, BTreeSet};

impl Catalog {
    /// [`super::CatalogCommand::CreateSeller`]: opens seller `id`'s
    /// account at the first ONB-2 step.
    pub(super) fn create_seller(
        &mut self,
        id: SellerId,
        kind: SellerKind,
        self_issuing: bool,
        group_buying_operator: bool,
    ) -> CatalogReply {
        if self.sellers.contains_key(&id) {
            return Err(reject(ErrorCode::AlreadyExists, format!("seller {id}")));
        }
        self.sellers.insert(
            id,
            Seller {
                kind,
                self_issuing,
                group_buying_operator,
                onboarding: Onboarding::Applied,
                payment_account: None,
                service_phone: None,
                categories_wanted: BTreeSet::new(),
                permitted: BTreeSet::new(),
                t_plus_n: BTreeMap::new(),
                short: BTreeSet::new(),
            },
        );
        Ok(CatalogOutcome::Onboarding(Onboarding::Applied))
    }

    /// [`super::CatalogCommand::AcceptAgreement`]: ONB-2 step 1.
    pub(super) fn accept_agreement(&mut self, me: SellerId) -> CatalogReply {
        self.step(me, Onboarding::Applied, Onboarding::AgreementAccepted)
    }

    /// [`super::CatalogCommand::BindPaymentAccount`]: ONB-2 step 2.
    pub(super) fn bind_payment_account(
        &mut self,
        me: SellerId,
        account: &str,
        supports_freezing: bool,
        accept_payment_agreement: bool,
    ) -> CatalogReply {
        check_text("payment account", account)?;
        self.expect_step(me, Onboarding::AgreementAccepted)?;
        if !supports_freezing || !accept_payment_agreement {
            return Err(reject(
                ErrorCode::PaymentAccountCannotFreeze,
                "the payment account must support freezing a deposit and its agreement be accepted",
            ));
        }
        self.step(me, Onboarding::AgreementAccepted, Onboarding::PaymentBound)?;
        self.seller_mut(me)?.payment_account = Some(account.to_owned());
        Ok(CatalogOutcome::Onboarding(Onboarding::PaymentBound))
    }

    /// [`super::CatalogCommand::ConfirmOnboarding`]: ONB-2 step 3;
    /// publishing is enabled at once.
    pub(super) fn confirm_onboarding(
        &mut self,
        me: SellerId,
        service_phone: &str,
        categories: &[CategoryId],
    ) -> CatalogReply {
        check_text("customer-service phone", service_phone)?;
        self.expect_step(me, Onboarding::PaymentBound)?;
        if categories.is_empty() || categories.len() > LIST_ITEMS_MAX {
            return Err(reject(
                ErrorCode::BadRequest,
                format!("name 1..={LIST_ITEMS_MAX} categories"),
            ));
        }
        check_distinct("categories", categories)?;
        for c in categories {
            if !self.category(*c)?.supports_vouchers {
                return Err(reject(
                    ErrorCode::CategoryNotForVouchers,
                    format!("category {c}"),
                ));
            }
        }
        self.step(me, Onboarding::PaymentBound, Onboarding::Enabled)?;
        let s = self.seller_mut(me)?;
        s.service_phone = Some(service_phone.to_owned());
        s.categories_wanted = categories.iter().copied().collect();
        Ok(CatalogOutcome::Onboarding(Onboarding::Enabled))
    }

    /// [`super::CatalogCommand::GrantPublishPermission`] (ONB-1).
    pub(super) fn grant_publish_permission(
        &mut self,
        seller: SellerId,
        category: CategoryId,
    ) -> CatalogReply {
        if !self.category(category)?.supports_vouchers {
            return Err(reject(
                ErrorCode::CategoryNotForVouchers,
                format!("category {category}"),
            ));
        }
        self.seller_mut(seller)?.permitted.insert(category);
        Ok(CatalogOutcome::Done)
    }

    /// Refuses a step unless `seller` is at `from` (ONB-2's order).
    fn expect_step(&self, seller: SellerId, from: Onboarding) -> Result<(), Rejection> {
        let at = self.seller(seller)?.onboarding;
        if at != from {
            return Err(reject(
                ErrorCode::OnboardingStepOutOfOrder,
                format!("seller {seller} is at \"{at}\"; this step needs \"{from}\""),
            ));
        }
        Ok(())
    }

    /// Moves `seller` from onboarding step `from` to `to`.
    fn step(&mut self, seller: SellerId, from: Onboarding, to: Onboarding) -> CatalogReply {
        self.expect_step(seller, from)?;
        self.seller_mut(seller)?.onboarding = to;
        Ok(CatalogOutcome::Onboarding(to))
    }

    /// Seller `id`; `not_found` when there is none.
    pub(super) fn seller(&self, id: SellerId) -> Result<&Seller, Rejection> {
        self.sellers
            .get(&id)
            .ok_or_else(|| reject(ErrorCode::NotFound, format!("seller {id}")))
    }

    /// Seller `id`, to change; `not_found` when there is none.
    pub(super) fn seller_mut(&mut self, id: SellerId) -> Result<&mut Seller, Rejection> {
        self.sellers
            .get_mut(&id)
            .ok_or_else(|| reject(ErrorCode::NotFound, format!("seller {id}")))
    }

    /// Seller `id` once onboarded (ONB-2); `seller_not_onboarded` before.
    pub(super) fn enabled_seller(&self, id: SellerId) -> Result<&Seller, Rejection> {
        let s = self.seller(id)?;
        if s.onboarding != Onboarding::Enabled {
            return Err(reject(
                ErrorCode::SellerNotOnboarded,
                format!("seller {id} has not completed onboarding"),
            ));
        }
        Ok(s)
    }
}
