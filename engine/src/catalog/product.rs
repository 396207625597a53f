//! Products (PUB): an onboarded seller publishes a product in a permitted
//! category (PUB-1, ONB-1) with its delivery (PUB-2), validity (PUB-3), a
//! code provider that imported its relationship unless the seller is
//! self-issuing (PUB-4, ONB-3), its own outlets (PUB-5), pay-on-redemption
//! or T+3 guaranteed by a deposit (PUB-6, ONB-4, ONB-5, ONB-6), an expiry
//! refund ratio within the category's minimum (PUB-7) and a merchant code
//! (PUB-8, PRV-4); the same command is the publishing API (PUB-9). The
//! seller delists its products; a tick delists those whose fixed validity
//! has ended (PUB-3). Each change is a fact voucher shards need (ORD-7).

use super::check::{check_text, reject};
use super::{
    Account, Catalog, CatalogEvent, CatalogOutcome, CatalogReply, Category, Product, ProductSpec,
    Seller, Settlement, TPlusN,
};
use crate::error::{ErrorCode, Rejection};
use crate::ids::{ProductId, ProviderId, SellerId};
use crate::money::{Bps, Fen};
use crate::validity::Validity;

impl Catalog {
    /// [`super::CatalogCommand::PublishProduct`]: seller `me` publishes
    /// `spec`; its fact goes to `events`.
    pub(super) fn publish_product(
        &mut self,
        now_ms: i64,
        me: SellerId,
        spec: &ProductSpec,
        events: &mut Vec<CatalogEvent>,
    ) -> CatalogReply {
        let done = self.publish(now_ms, me, spec)?;
        events.extend(self.product_fact(spec.id).map(CatalogEvent::Fact));
        Ok(done)
    }

    fn publish(&mut self, now_ms: i64, me: SellerId, p: &ProductSpec) -> CatalogReply {
        let seller = self.enabled_seller(me)?.clone();
        let category = self.category(p.category)?.clone();
        check_category(p, &seller, &category)?;
        self.check_provider(me, &seller, p.provider)?;
        if p.outlets.is_empty() {
            return Err(reject(
                ErrorCode::BadRequest,
                "a product needs at least one outlet",
            ));
        }
        self.own_outlets(me, &p.outlets)?;
        if p.group_buying && !seller.group_buying_operator {
            return Err(reject(
                ErrorCode::GroupBuyingNotAllowed,
                "only group-buying operators publish group-buying products",
            ));
        }
        if p.settlement == Settlement::TPlus3 {
            self.check_t_plus_3_guarantee(me, &seller, &category, p)?;
        }
        if let Some(r) = p.expiry_refund_ratio {
            check_expiry_refund_ratio(r, &category)?;
        }
        check_text("merchant code", &p.merchant_code)?;
        let delist_at_ms = self.delist_at(now_ms, p.validity)?;
        if self.products.contains_key(&p.id) {
            return Err(reject(
                ErrorCode::AlreadyExists,
                format!("product {}", p.id),
            ));
        }
        self.products.insert(
            p.id,
            Product {
                seller: me,
                code_digits: p
                    .provider
                    .and_then(|id| self.providers.get(&id).map(|x| x.code_digits)),
                spec: p.clone(),
                listed: true,
                delist_at_ms,
            },
        );
        Ok(CatalogOutcome::Done)
    }

    /// PUB-4: a code provider is chosen unless `seller` is self-issuing
    /// (ONB-3), and it exists and imported its relationship with seller
    /// `me` (PRV-1) or is the platform's own.
    fn check_provider(
        &self,
        me: SellerId,
        seller: &Seller,
        provider: Option<ProviderId>,
    ) -> Result<(), Rejection> {
        match provider {
            None if !seller.self_issuing => {
                return Err(reject(
                    ErrorCode::ProviderRequired,
                    "choose a code provider",
                ));
            }
            None => {}
            Some(provider) => {
                if !self.providers.contains_key(&provider) {
                    return Err(reject(ErrorCode::NotFound, format!("provider {provider}")));
                }
                if !self.linked(provider, me) {
                    return Err(reject(
                        ErrorCode::ProviderNotLinked,
                        format!("provider {provider} has not imported its relationship with this seller"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// PUB-6: a T+3 product needs T+N enabled in its category (ONB-4) with
    /// a deposit that is not short (ONB-6), or, for a group-buying product,
    /// a group-buying deposit that guarantees it (ONB-5).
    fn check_t_plus_3_guarantee(
        &self,
        me: SellerId,
        seller: &Seller,
        category: &Category,
        p: &ProductSpec,
    ) -> Result<(), Rejection> {
        // Decision (ONB-5 names no amount): the group-buying deposit
        // guarantees group-buying T+3 products of a category when it
        // holds at least that category's voucher deposit amount (and
        // something at all).
        let group_deposit = self.balance(Account::GroupBuyingDeposit(me));
        let by_group_deposit =
            p.group_buying && group_deposit > Fen::ZERO && group_deposit >= category.deposit;
        if !by_group_deposit {
            if seller.t_plus_n.get(&p.category) != Some(&TPlusN::Enabled) {
                return Err(reject(
                    ErrorCode::TPlusNNotEnabled,
                    format!("T+N is not enabled in category {}", p.category),
                ));
            }
            if seller.short.contains(&p.category) {
                return Err(reject(
                    ErrorCode::DepositShort,
                    format!("deposit for category {} is short", p.category),
                ));
            }
        }
        Ok(())
    }

    /// PUB-3: when a product with `validity` must be delisted (fixed
    /// periods only), after checking the validity resolves at `now_ms`.
    fn delist_at(&self, now_ms: i64, validity: Validity) -> Result<Option<i64>, Rejection> {
        Ok(match validity {
            Validity::Fixed { .. } => Some(validity.resolve(now_ms, &self.tz)?.until_ms),
            Validity::DaysFromIssue(_) => {
                validity.resolve(now_ms, &self.tz)?;
                None
            }
        })
    }

    /// [`super::CatalogCommand::DelistProduct`]: seller `me` takes its
    /// product `id` off the shelf.
    pub(super) fn delist_product(
        &mut self,
        me: SellerId,
        id: ProductId,
        events: &mut Vec<CatalogEvent>,
    ) -> CatalogReply {
        match self.products.get_mut(&id) {
            Some(p) if p.seller == me => p.listed = false,
            _ => return Err(reject(ErrorCode::NotFound, format!("product {id}"))),
        }
        events.extend(self.product_fact(id).map(CatalogEvent::Fact));
        Ok(CatalogOutcome::Done)
    }

    /// [`super::SystemInput::Tick`]: delists products whose validity
    /// end has passed (PUB-3) and drops ended lockouts.
    pub(super) fn tick(&mut self, now_ms: i64, events: &mut Vec<CatalogEvent>) -> CatalogReply {
        let mut delisted = Vec::new();
        for (id, p) in self.products.iter_mut() {
            if p.listed && p.delist_at_ms.is_some_and(|t| now_ms >= t) {
                p.listed = false;
                delisted.push(*id);
                events.push(CatalogEvent::ProductDelisted { product: *id });
            }
        }
        for id in &delisted {
            events.extend(self.product_fact(*id).map(CatalogEvent::Fact));
        }
        let lockouts_ended = self.end_lockouts(now_ms);
        Ok(CatalogOutcome::Ticked {
            delisted,
            lockouts_ended,
        })
    }

    /// The fact shards need of product `id` as it is now.
    pub(super) fn product_fact(&self, id: ProductId) -> Option<crate::message::CatalogFact> {
        let p = self.products.get(&id)?;
        let terms = crate::message::ProductTerms {
            t_plus_3: p.spec.settlement == super::Settlement::TPlus3,
            auto_refund: self
                .categories
                .get(&p.spec.category)
                .is_some_and(|c| c.supports_auto_refund),
            expiry_refund_ratio: p.spec.expiry_refund_ratio,
            category: p.spec.category,
            group_buying: p.spec.group_buying,
        };
        Some(crate::message::CatalogFact::Product {
            id,
            seller: p.seller,
            outlets: p.spec.outlets.clone(),
            code_digits: p.code_digits,
            provider: p.spec.provider,
            validity: p.spec.validity,
            listed: p.listed,
            terms,
        })
    }
}

/// PUB-1: the category supports vouchers and `seller` holds publish
/// permission in it (ONB-1).
fn check_category(p: &ProductSpec, seller: &Seller, category: &Category) -> Result<(), Rejection> {
    if !category.supports_vouchers {
        return Err(reject(
            ErrorCode::CategoryNotForVouchers,
            format!("category {}", p.category),
        ));
    }
    if !seller.permitted.contains(&p.category) {
        return Err(reject(
            ErrorCode::CategoryNotPermitted,
            format!("no publish permission in category {}", p.category),
        ));
    }
    Ok(())
}

/// PUB-7: an expiry refund ratio `r` (0.01 %..=100 % by its type) is not
/// below the category's minimum when it sets one.
fn check_expiry_refund_ratio(r: Bps, category: &Category) -> Result<(), Rejection> {
    if let Some(min) = category.min_expiry_refund_ratio {
        if r < min {
            return Err(reject(
                ErrorCode::RefundRatioBelowCategoryMinimum,
                format!("ratio {r} below the category's minimum {min}"),
            ));
        }
    }
    Ok(())
}
