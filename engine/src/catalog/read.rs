//! Catalog reads (issue 3 item 6, ORD-9's seller side): what each principal
//! may see of categories, sellers, providers, outlets, verifiers, POS
//! devices and products. A read changes nothing and carries no request id.
//!
//! Tenancy: a seller sees only its own account, outlets, verifiers, POS
//! devices and products; a provider sees itself, the sellers' outlets it
//! serves, its own POS devices and the products that chose it; the front
//! end (acting for buyers) sees the public listing: listed products and
//! outlets; staff see everything. Naming another tenant is `not_permitted`,
//! and a single product of another tenant is `not_found`, as if it did not
//! exist.

use super::check::reject;
use super::{
    Account, Actor, Catalog, CheckMethod, LockKey, LockoutView, Onboarding, ProductSpec,
    SellerKind, TPlusN, TokenView, PLATFORM_PROVIDER,
};
use crate::error::{ErrorCode, Rejection};
use crate::ids::{CategoryId, OutletId, PosId, ProductId, ProviderId, SellerId, VerifierId};
use crate::money::{Bps, Fen};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// Most items one list read returns. With every text at its 256-byte limit
/// and products naming up to 1,000 outlets, 100 items stay far below the
/// 8 MiB frame limit.
pub const READ_PAGE_ITEMS_MAX: u32 = 100;

/// One page of a list: items with ids above `after` (all when None), in
/// ascending id order, at most `limit` (1..=`READ_PAGE_ITEMS_MAX`). `K` is
/// the kind of id the list is keyed by (e.g. [`OutletId`] for outlets).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Page<K> {
    /// Start after this id.
    pub after: Option<K>,
    /// Most items, 1..=`READ_PAGE_ITEMS_MAX`.
    pub limit: u32,
}

impl<K> Page<K> {
    /// The first page of at most `READ_PAGE_ITEMS_MAX` items.
    pub fn first() -> Page<K> {
        Page {
            after: None,
            limit: READ_PAGE_ITEMS_MAX,
        }
    }
}

/// A catalog read. `seller` filters name one seller; None means "mine" for
/// a seller and "all I may see" for others.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CatalogQuery {
    /// The category tree. Everyone.
    Categories(Page<CategoryId>),
    /// One seller's account, onboarding, permissions, T+N and balances
    /// (ONB). Staff any; a seller itself (`id` None or its own).
    Seller {
        /// The seller; None for the asking seller itself.
        id: Option<SellerId>,
    },
    /// Code providers with their code length (PUB-4, ORD-3). Staff all; a
    /// provider itself; a seller those it may select (the platform's own
    /// and those that imported it), showing only its own link.
    Providers(Page<ProviderId>),
    /// Outlets (PUB-5). Staff and the front end all (the public map); a
    /// seller its own; a provider those of the sellers it serves.
    Outlets {
        /// Only this seller's.
        seller: Option<SellerId>,
        /// Which page.
        page: Page<OutletId>,
    },
    /// Verifier accounts. Staff any seller's; a seller its own.
    Verifiers {
        /// Only this seller's.
        seller: Option<SellerId>,
        /// Which page.
        page: Page<VerifierId>,
    },
    /// POS devices (PRV-3). Staff all; a provider its own; a seller those
    /// at its outlets.
    Devices(Page<PosId>),
    /// Products (PUB). Staff all; a seller its own; a provider those that
    /// chose it; the front end the listed ones.
    Products {
        /// Only this seller's.
        seller: Option<SellerId>,
        /// Which page.
        page: Page<ProductId>,
    },
    /// One product, as [`CatalogQuery::Products`] would show it; another
    /// tenant's product is `not_found`.
    Product {
        /// Product id.
        id: ProductId,
    },
    /// Keys locked out after failed code attempts (issue 7). Staff all; a
    /// seller those of its POS, verifiers, outlets and itself.
    Lockouts {
        /// Start after this key (key order).
        after: Option<LockKey>,
        /// Most items, 1..=`LOCKOUTS_PAGE_ITEMS_MAX`.
        limit: u32,
    },
    /// Every token ever registered, active or revoked, without secrets.
    /// Staff only.
    Tokens {
        /// Start after this token id.
        after: Option<u64>,
        /// Most items, 1..=`TOKENS_PAGE_ITEMS_MAX`.
        limit: u32,
    },
    /// Settlements (SET-3) in id order. Staff and the payment system all
    /// (or one seller's); a seller its own.
    Settlements {
        /// Only this seller's.
        seller: Option<SellerId>,
        /// Start after this settlement id.
        after: Option<u64>,
        /// Most items, 1..=`SETTLEMENTS_PAGE_ITEMS_MAX`.
        limit: u32,
    },
    /// One settlement's statement (RPT-4), a page of its lines. Staff and
    /// the payment system any; a seller its own (another's is
    /// `not_found`).
    Statement {
        /// Settlement id.
        settlement: u64,
        /// First line to show, from 0.
        offset: u32,
        /// Most lines, 1..=`STATEMENT_PAGE_LINES_MAX`.
        limit: u32,
    },
    /// The catalog's ledger entries (RPT-5) in posting order, a page.
    /// Staff all (or one seller's); a seller its own.
    Entries {
        /// Only this seller's.
        seller: Option<SellerId>,
        /// Only entries posted at or after this instant, unix ms.
        from_ms: i64,
        /// Only entries posted before this instant, unix ms.
        until_ms: i64,
        /// First entry position to look at: 0, then the previous page's
        /// `next`.
        after: u64,
        /// Most rows, 1..=`ENTRIES_PAGE_ITEMS_MAX`.
        limit: u32,
    },
}

impl CatalogQuery {
    /// The read role matrix: whether `actor` may run this read at all.
    /// Tenant filtering comes after, in [`Catalog::read`].
    pub fn allowed(&self, actor: Actor) -> bool {
        use CatalogQuery::*;
        let staff = matches!(actor, Actor::Staff | Actor::System);
        let seller = matches!(actor, Actor::Seller(_));
        let provider = matches!(actor, Actor::Provider(_));
        let front = actor == Actor::FrontEnd;
        let payments = actor == Actor::PaymentSystem;
        match self {
            Settlements { .. } | Statement { .. } => staff || seller || payments,
            Categories(_) => true,
            Tokens { .. } => staff,
            Seller { .. } | Verifiers { .. } | Lockouts { .. } | Entries { .. } => staff || seller,
            Providers(_) | Devices(_) => staff || seller || provider,
            Outlets { .. } | Products { .. } | Product { .. } => {
                staff || seller || provider || front
            }
        }
    }
}

/// A category node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CategoryView {
    /// Category id.
    pub id: CategoryId,
    /// Parent node.
    pub parent: Option<CategoryId>,
    /// Name.
    pub name: String,
    /// Vouchers may be published in it.
    pub supports_vouchers: bool,
    /// T+N deposit amount (ONB-4).
    pub deposit: Fen,
    /// Minimum expiry refund ratio (PUB-7).
    pub min_expiry_refund_ratio: Option<Bps>,
    /// Unexpired automatic refund applies (REF-1).
    pub supports_auto_refund: bool,
}

/// A seller's account as the seller and staff see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SellerView {
    /// Seller id.
    pub id: SellerId,
    /// Mall or marketplace.
    pub kind: SellerKind,
    /// Runs its own code system (ONB-3).
    pub self_issuing: bool,
    /// Group-buying operator (ONB-5).
    pub group_buying_operator: bool,
    /// Where the ONB-2 application is.
    pub onboarding: Onboarding,
    /// Bound payment account (ONB-2 step 2).
    pub payment_account: Option<String>,
    /// Customer-service phone (ONB-2 step 3).
    pub service_phone: Option<String>,
    /// Categories asked for at confirmation (ONB-2).
    pub categories_wanted: Vec<CategoryId>,
    /// Categories with publish permission (ONB-1).
    pub permitted: Vec<CategoryId>,
    /// T+N state per category (ONB-4).
    pub t_plus_n: Vec<(CategoryId, TPlusN)>,
    /// Payment account balance.
    pub payment_balance: Fen,
    /// Voucher deposit per category (ONB-4, ONB-6).
    pub deposits: Vec<(CategoryId, Fen)>,
    /// Categories whose deposit is short (ONB-6).
    pub deposit_short: Vec<CategoryId>,
    /// Group-buying deposit (ONB-5).
    pub group_buying_deposit: Fen,
    /// Earned, not yet in a settlement (MON-4 `seller_payable`).
    pub payable: Fen,
    /// Payouts sent, not yet confirmed (MON-7).
    pub payout_in_transit: Fen,
}

/// A code provider.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderView {
    /// Provider id (`PLATFORM_PROVIDER` for the platform's own).
    pub id: ProviderId,
    /// Name.
    pub name: String,
    /// Code length it issues, digits.
    pub code_digits: u8,
    /// Sellers that imported their relationship with it (PRV-1), as far
    /// as the reader may see them.
    pub sellers: Vec<SellerId>,
}

/// An outlet (PUB-5).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutletView {
    /// Outlet id.
    pub id: OutletId,
    /// Owning seller.
    pub seller: SellerId,
    /// Name.
    pub name: String,
    /// Address.
    pub address: String,
    /// Latitude, degrees.
    pub latitude: Decimal,
    /// Longitude, degrees.
    pub longitude: Decimal,
}

/// A verifier account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifierView {
    /// Verifier id.
    pub id: VerifierId,
    /// Owning seller.
    pub seller: SellerId,
    /// Real-name verified.
    pub real_name: bool,
    /// Parent account of a sub-account.
    pub parent: Option<VerifierId>,
    /// Outlets it may redeem at.
    pub outlets: Vec<OutletId>,
}

/// A POS device (PRV-3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceView {
    /// POS id.
    pub pos_id: PosId,
    /// Registering provider.
    pub provider: ProviderId,
    /// Outlet.
    pub outlet: OutletId,
    /// The outlet's seller.
    pub seller: SellerId,
    /// Check method.
    pub check_method: CheckMethod,
}

/// A product (PUB).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductView {
    /// Publishing seller.
    pub seller: SellerId,
    /// What was published.
    pub spec: ProductSpec,
    /// Code length of its provider, digits (None: self-issuing).
    pub code_digits: Option<u8>,
    /// On the shelf (false once delisted, by the seller or by PUB-3).
    pub listed: bool,
}

/// The answer to a [`CatalogQuery`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CatalogView {
    /// Categories.
    Categories(Vec<CategoryView>),
    /// One seller.
    Seller(SellerView),
    /// Providers.
    Providers(Vec<ProviderView>),
    /// Outlets.
    Outlets(Vec<OutletView>),
    /// Verifiers.
    Verifiers(Vec<VerifierView>),
    /// POS devices.
    Devices(Vec<DeviceView>),
    /// Products.
    Products(Vec<ProductView>),
    /// Lockouts, in key order.
    Lockouts(Vec<LockoutView>),
    /// Tokens, in id order.
    Tokens(Vec<TokenView>),
    /// Settlements, in id order.
    Settlements(Vec<super::SettlementView>),
    /// One statement page (RPT-4).
    Statement(super::StatementView),
    /// One page of ledger entries (RPT-5).
    Entries(crate::command::EntryPage),
}

/// A read's reply.
pub type ReadReply = Result<CatalogView, Rejection>;

fn check_page<K>(page: Page<K>) -> Result<(), Rejection> {
    if page.limit == 0 || page.limit > READ_PAGE_ITEMS_MAX {
        return Err(reject(
            ErrorCode::BadRequest,
            format!("page limit must be 1..={READ_PAGE_ITEMS_MAX}"),
        ));
    }
    Ok(())
}

/// Up to `page.limit` items of `map` after `page.after` that `keep`
/// admits, mapped by `view`.
fn paged<'a, K: Ord + Copy, T: 'a, V>(
    map: &'a std::collections::BTreeMap<K, T>,
    page: Page<K>,
    keep: impl Fn(&K, &T) -> bool,
    view: impl Fn(&K, &T) -> V,
) -> Vec<V> {
    use std::ops::Bound::{Excluded, Unbounded};
    let from = page.after.map_or(Unbounded, Excluded);
    map.range((from, Unbounded))
        .filter(|(id, t)| keep(id, t))
        .take(page.limit as usize)
        .map(|(id, t)| view(id, t))
        .collect()
}

fn product_view(p: &super::Product) -> ProductView {
    ProductView {
        seller: p.seller,
        spec: p.spec.clone(),
        code_digits: p.code_digits,
        listed: p.listed,
    }
}

impl Catalog {
    /// Runs the read `query` for `actor`.
    ///
    /// Errors: `not_permitted` when the read role matrix refuses the actor
    /// or a filter names another tenant; `not_found` for a seller or a
    /// product the actor may not see or that does not exist; `bad_request`
    /// for a page limit outside 1..=`READ_PAGE_ITEMS_MAX`.
    pub fn read(&self, actor: Actor, query: &CatalogQuery) -> ReadReply {
        use CatalogQuery as Q;
        if !query.allowed(actor) {
            return Err(reject(
                ErrorCode::NotPermitted,
                format!("{actor} may not run this read"),
            ));
        }
        match query {
            Q::Lockouts { after, limit } => self.read_lockouts(actor, *after, *limit),
            Q::Tokens { after, limit } => self.read_tokens(*after, *limit),
            Q::Categories(page) => self.read_categories(*page),
            Q::Seller { id } => self.read_seller(actor, *id),
            Q::Providers(page) => self.read_providers(actor, *page),
            Q::Outlets { seller, page } => self.read_outlets(actor, *seller, *page),
            Q::Verifiers { seller, page } => self.read_verifiers(actor, *seller, *page),
            Q::Devices(page) => self.read_devices(actor, *page),
            Q::Products { seller, page } => self.read_products(actor, *seller, *page),
            Q::Product { id } => self.read_product(actor, *id),
            Q::Settlements {
                seller,
                after,
                limit,
            } => {
                let scope = self.scope(actor, *seller)?;
                let page = self.settlement_page(scope, *after, *limit)?;
                Ok(CatalogView::Settlements(page))
            }
            Q::Statement {
                settlement,
                offset,
                limit,
            } => {
                let scope = self.scope(actor, None)?;
                let statement = self.statement(scope, *settlement, *offset, *limit)?;
                Ok(CatalogView::Statement(statement))
            }
            Q::Entries {
                seller,
                from_ms,
                until_ms,
                after,
                limit,
            } => {
                let scope = self.scope(actor, *seller)?;
                let page = self.entry_page(scope, (*from_ms, *until_ms), *after, *limit)?;
                Ok(CatalogView::Entries(page))
            }
        }
    }

    /// The seller a filter may name: a seller only itself, a provider
    /// only a seller it serves; staff and the front end anyone.
    fn scope(&self, actor: Actor, filter: Option<SellerId>) -> Result<Option<SellerId>, Rejection> {
        match (actor, filter) {
            (Actor::Seller(me), None) => Ok(Some(me)),
            (Actor::Seller(me), Some(s)) if s != me => Err(reject(
                ErrorCode::NotPermitted,
                "a seller reads only its own data",
            )),
            (Actor::Provider(me), Some(s)) if !self.linked(me, s) => Err(reject(
                ErrorCode::NotPermitted,
                "a provider reads only the sellers it serves",
            )),
            (_, f) => Ok(f),
        }
    }

    /// [`CatalogQuery::Categories`].
    fn read_categories(&self, page: Page<CategoryId>) -> ReadReply {
        check_page(page)?;
        Ok(CatalogView::Categories(paged(
            &self.categories,
            page,
            |_, _| true,
            |id, c| CategoryView {
                id: *id,
                parent: c.parent,
                name: c.name.clone(),
                supports_vouchers: c.supports_vouchers,
                deposit: c.deposit,
                min_expiry_refund_ratio: c.min_expiry_refund_ratio,
                supports_auto_refund: c.supports_auto_refund,
            },
        )))
    }

    /// [`CatalogQuery::Seller`].
    fn read_seller(&self, actor: Actor, id: Option<SellerId>) -> ReadReply {
        let id = self
            .scope(actor, id)?
            .ok_or_else(|| reject(ErrorCode::BadRequest, "name the seller to read"))?;
        self.seller_view(id).map(CatalogView::Seller)
    }

    /// [`CatalogQuery::Providers`].
    fn read_providers(&self, actor: Actor, page: Page<ProviderId>) -> ReadReply {
        check_page(page)?;
        let staff = matches!(actor, Actor::Staff | Actor::System);
        Ok(CatalogView::Providers(paged(
            &self.providers,
            page,
            |id, _| match actor {
                Actor::Provider(me) => *id == me,
                Actor::Seller(me) => self.linked(*id, me) || *id == PLATFORM_PROVIDER,
                _ => staff,
            },
            |id, p| ProviderView {
                id: *id,
                name: p.name.clone(),
                code_digits: p.code_digits,
                sellers: match actor {
                    Actor::Seller(me) => p.sellers.iter().copied().filter(|s| *s == me).collect(),
                    _ => p.sellers.iter().copied().collect(),
                },
            },
        )))
    }

    /// [`CatalogQuery::Outlets`].
    fn read_outlets(
        &self,
        actor: Actor,
        seller: Option<SellerId>,
        page: Page<OutletId>,
    ) -> ReadReply {
        check_page(page)?;
        let seller = self.scope(actor, seller)?;
        Ok(CatalogView::Outlets(paged(
            &self.outlets,
            page,
            |_, o| {
                seller.is_none_or(|s| o.seller == s)
                    && match actor {
                        Actor::Provider(me) => self.linked(me, o.seller),
                        _ => true,
                    }
            },
            |id, o| OutletView {
                id: *id,
                seller: o.seller,
                name: o.name.clone(),
                address: o.address.clone(),
                latitude: o.latitude,
                longitude: o.longitude,
            },
        )))
    }

    /// [`CatalogQuery::Verifiers`].
    fn read_verifiers(
        &self,
        actor: Actor,
        seller: Option<SellerId>,
        page: Page<VerifierId>,
    ) -> ReadReply {
        check_page(page)?;
        let seller = self.scope(actor, seller)?;
        Ok(CatalogView::Verifiers(paged(
            &self.verifiers,
            page,
            |_, v| seller.is_none_or(|s| v.seller == s),
            |id, v| VerifierView {
                id: *id,
                seller: v.seller,
                real_name: v.real_name,
                parent: v.parent,
                outlets: v.outlets.iter().copied().collect(),
            },
        )))
    }

    /// [`CatalogQuery::Devices`].
    fn read_devices(&self, actor: Actor, page: Page<PosId>) -> ReadReply {
        check_page(page)?;
        let staff = matches!(actor, Actor::Staff | Actor::System);
        let owner = |outlet: &OutletId| self.outlets.get(outlet).map(|o| o.seller);
        Ok(CatalogView::Devices(paged(
            &self.devices,
            page,
            |_, d| match actor {
                Actor::Provider(me) => d.provider == me,
                Actor::Seller(me) => owner(&d.outlet) == Some(me),
                _ => staff,
            },
            |pos_id, d| DeviceView {
                pos_id: *pos_id,
                provider: d.provider,
                outlet: d.outlet,
                seller: owner(&d.outlet).unwrap_or(SellerId(0)),
                check_method: d.check_method,
            },
        )))
    }

    /// [`CatalogQuery::Products`].
    fn read_products(
        &self,
        actor: Actor,
        seller: Option<SellerId>,
        page: Page<ProductId>,
    ) -> ReadReply {
        check_page(page)?;
        let seller = self.scope(actor, seller)?;
        Ok(CatalogView::Products(paged(
            &self.products,
            page,
            |id, p| seller.is_none_or(|s| p.seller == s) && self.may_see_product(actor, *id),
            |_, p| product_view(p),
        )))
    }

    /// [`CatalogQuery::Product`]: another tenant's product is `not_found`.
    fn read_product(&self, actor: Actor, id: ProductId) -> ReadReply {
        match self.products.get(&id) {
            Some(p) if self.may_see_product(actor, id) => {
                Ok(CatalogView::Products(vec![product_view(p)]))
            }
            _ => Err(reject(ErrorCode::NotFound, format!("product {id}"))),
        }
    }

    /// Whether `actor` may see product `id` (see the module docs).
    fn may_see_product(&self, actor: Actor, id: ProductId) -> bool {
        let Some(p) = self.products.get(&id) else {
            return false;
        };
        match actor {
            Actor::Staff | Actor::System => true,
            Actor::Seller(me) => p.seller == me,
            Actor::Provider(me) => p.spec.provider == Some(me),
            Actor::FrontEnd => p.listed,
            Actor::Verifier(_) | Actor::Device(_) | Actor::PaymentSystem => false,
        }
    }

    fn seller_view(&self, id: SellerId) -> Result<SellerView, Rejection> {
        let s = self
            .sellers
            .get(&id)
            .ok_or_else(|| reject(ErrorCode::NotFound, format!("seller {id}")))?;
        let deposits = self
            .ledger
            .balances(
                Account::Deposit(id, CategoryId(u64::MIN))
                    ..=Account::Deposit(id, CategoryId(u64::MAX)),
            )
            .filter_map(|(account, amount)| match account {
                Account::Deposit(_, category) => Some((category, amount)),
                _ => None,
            })
            .collect();
        Ok(SellerView {
            id,
            kind: s.kind,
            self_issuing: s.self_issuing,
            group_buying_operator: s.group_buying_operator,
            onboarding: s.onboarding,
            payment_account: s.payment_account.clone(),
            service_phone: s.service_phone.clone(),
            categories_wanted: s.categories_wanted.iter().copied().collect(),
            permitted: s.permitted.iter().copied().collect(),
            t_plus_n: s.t_plus_n.iter().map(|(c, t)| (*c, *t)).collect(),
            payment_balance: self.balance(Account::Payment(id)),
            deposits,
            deposit_short: s.short.iter().copied().collect(),
            group_buying_deposit: self.balance(Account::GroupBuyingDeposit(id)),
            payable: self.balance(Account::Payable(id)),
            payout_in_transit: self.balance(Account::PayoutInTransit(id)),
        })
    }
}
