//! Catalog subcommands of the CLI (issue 3): `vouch category|seller|
//! provider|outlet|product …`. Each builds one catalog command and the
//! principal it runs for (the admin token acts for that principal, a
//! principal's own token must name itself), or one catalog read, which runs
//! as the token's principal (staff for the admin token).

use crate::cli::settle;
use clap::{Args, Subcommand, ValueEnum};
use rust_decimal::Decimal;
use vouch_engine::catalog::{
    Actor, CatalogCommand as C, CatalogQuery as Q, CatalogView, CheckMethod, Delivery, Page,
    ProductSpec, SellerKind, Settlement, READ_PAGE_ITEMS_MAX,
};
use vouch_engine::validity::Validity;
use vouch_engine::{
    Bps, CategoryId, Fen, OutletId, PosId, ProductId, ProviderId, SellerId, VerifierId,
};

use super::money::{parse_amount, parse_percent, parse_price};

/// A validity window on the command line (PUB-3): N days from issue, or a
/// fixed period; 30 days from issue when neither is given.
#[derive(Args)]
pub struct ValidityArgs {
    /// Valid for N days from issue (through 23:59:59 local of issue date + N).
    #[arg(long, conflicts_with_all = ["valid_from", "valid_to"])]
    valid_days: Option<u16>,
    /// First valid date (YYYY-MM-DD, platform zone); needs --valid-to.
    #[arg(long, requires = "valid_to")]
    valid_from: Option<jiff::civil::Date>,
    /// Last valid date (YYYY-MM-DD), inclusive to 23:59:59.
    #[arg(long, requires = "valid_from")]
    valid_to: Option<jiff::civil::Date>,
}

impl ValidityArgs {
    /// The validity these flags name.
    pub fn validity(&self) -> Validity {
        match (self.valid_days, self.valid_from, self.valid_to) {
            (Some(d), _, _) => Validity::DaysFromIssue(d),
            (None, Some(start), Some(end)) => Validity::Fixed { start, end },
            _ => Validity::DaysFromIssue(30),
        }
    }
}

/// `vouch category …` (staff).
#[derive(Subcommand)]
pub enum CategoryCmd {
    /// Create or replace a category node.
    Put {
        /// Category id.
        #[arg(long)]
        id: CategoryId,
        /// Parent category.
        #[arg(long)]
        parent: Option<CategoryId>,
        /// Name.
        #[arg(long)]
        name: String,
        /// Vouchers may be published in it.
        #[arg(long)]
        supports_vouchers: bool,
        /// T+N deposit amount, yuan with at most 2 decimals (ONB-4).
        #[arg(long, default_value = "0", value_parser = parse_price)]
        deposit: Fen,
        /// Minimum expiry refund ratio, percent with at most 2 decimals,
        /// 0.01..=100 (PUB-7).
        #[arg(long, value_parser = parse_percent)]
        min_expiry_refund_percent: Option<Bps>,
        /// Unexpired automatic refund applies (REF-1).
        #[arg(long)]
        auto_refund: bool,
    },
    /// List the category tree (everyone).
    List,
}

/// Seller kinds on the command line.
#[derive(Clone, Copy, ValueEnum)]
pub enum KindArg {
    /// 天猫.
    Mall,
    /// 集市.
    Marketplace,
}

/// POS check methods on the command line.
#[derive(Clone, Copy, ValueEnum)]
pub enum CheckArg {
    /// Code and phone digits.
    Code,
    /// QR code.
    Qr,
    /// ID card.
    IdCard,
}

/// `vouch seller …`: onboarding (ONB-2), permissions (ONB-1), money and
/// T+N (ONB-4..6).
#[derive(Subcommand)]
pub enum SellerCmd {
    /// Staff: open a seller account.
    Create {
        /// Seller id.
        #[arg(long)]
        id: SellerId,
        /// Mall or marketplace.
        #[arg(long, value_enum)]
        kind: KindArg,
        /// Runs its own code system (ONB-3).
        #[arg(long)]
        self_issuing: bool,
        /// Group-buying operator (ONB-5).
        #[arg(long)]
        group_buying_operator: bool,
    },
    /// Seller: accept the platform agreement (ONB-2 step 1).
    AcceptAgreement {
        /// Seller id.
        #[arg(long)]
        seller: SellerId,
    },
    /// Seller: bind a payment account (ONB-2 step 2).
    BindPayment {
        /// Seller id.
        #[arg(long)]
        seller: SellerId,
        /// Payment account.
        #[arg(long)]
        account: String,
        /// The account can freeze a deposit.
        #[arg(long)]
        supports_freezing: bool,
        /// The payment agreement is accepted.
        #[arg(long)]
        accept_payment_agreement: bool,
    },
    /// Seller: confirm (ONB-2 step 3); publishing is enabled at once.
    Confirm {
        /// Seller id.
        #[arg(long)]
        seller: SellerId,
        /// Customer-service phone printed in every code SMS.
        #[arg(long)]
        service_phone: String,
        /// Categories wanted, comma separated.
        #[arg(long, value_delimiter = ',')]
        categories: Vec<CategoryId>,
    },
    /// Staff: grant publish permission in a category (ONB-1).
    Grant {
        /// Seller id.
        #[arg(long)]
        seller: SellerId,
        /// Category id.
        #[arg(long)]
        category: CategoryId,
    },
    /// Seller: fund the payment account, yuan.
    TopUp {
        /// Seller id.
        #[arg(long)]
        seller: SellerId,
        /// Yuan, above 0, at most 2 decimals (e.g. 100 or 99.50).
        #[arg(long, value_parser = parse_amount)]
        amount: Fen,
    },
    /// Seller: apply for T+N in a category (ONB-4).
    ApplyTPlusN {
        /// Seller id.
        #[arg(long)]
        seller: SellerId,
        /// Category id.
        #[arg(long)]
        category: CategoryId,
    },
    /// Staff: approve or reject a T+N application (ONB-4).
    DecideTPlusN {
        /// Seller id.
        #[arg(long)]
        seller: SellerId,
        /// Category id.
        #[arg(long)]
        category: CategoryId,
        /// Reject instead of approve.
        #[arg(long)]
        reject: bool,
    },
    /// Seller: confirm the deposit-freeze notice (ONB-4).
    ConfirmFreeze {
        /// Seller id.
        #[arg(long)]
        seller: SellerId,
        /// Category id.
        #[arg(long)]
        category: CategoryId,
    },
    /// Seller: move money from the payment account into a deposit (ONB-6).
    TopUpDeposit {
        /// Seller id.
        #[arg(long)]
        seller: SellerId,
        /// Category id.
        #[arg(long)]
        category: CategoryId,
        /// Yuan, above 0, at most 2 decimals.
        #[arg(long, value_parser = parse_amount)]
        amount: Fen,
    },
    /// Show a seller's account: onboarding, permissions, T+N, balances
    /// (staff any seller; a seller's token itself).
    Show {
        /// Seller id (default: the seller whose token is used).
        #[arg(long)]
        seller: Option<SellerId>,
    },
}

/// `vouch provider …`: code providers (PRV).
#[derive(Subcommand)]
pub enum ProviderCmd {
    /// Staff: register a code provider.
    Register {
        /// Provider id.
        #[arg(long)]
        id: ProviderId,
        /// Name.
        #[arg(long)]
        name: String,
        /// Code length it issues, 6..=11.
        #[arg(long, default_value_t = 8)]
        code_digits: u8,
    },
    /// Provider: import its relationship with a seller (PRV-1).
    Link {
        /// Provider id.
        #[arg(long)]
        provider: ProviderId,
        /// Seller id.
        #[arg(long)]
        seller: SellerId,
    },
    /// Provider: register a POS device at a linked seller's outlet (PRV-3).
    Device {
        /// Provider id.
        #[arg(long)]
        provider: ProviderId,
        /// POS id.
        #[arg(long)]
        pos_id: PosId,
        /// Outlet id.
        #[arg(long)]
        outlet: OutletId,
        /// Check method.
        #[arg(long, value_enum, default_value = "code")]
        check_method: CheckArg,
    },
    /// List the providers the token may see, with code lengths and links.
    List,
    /// List POS devices (staff all, a provider its own, a seller those at
    /// its outlets).
    Devices,
}

/// `vouch outlet …` and `vouch verifier …` (sellers).
#[derive(Subcommand)]
pub enum OutletCmd {
    /// Add an outlet (PUB-5).
    Add {
        /// Seller id.
        #[arg(long)]
        seller: SellerId,
        /// Outlet id.
        #[arg(long)]
        id: OutletId,
        /// Name.
        #[arg(long)]
        name: String,
        /// Address.
        #[arg(long)]
        address: String,
        /// Latitude, degrees.
        #[arg(long, allow_negative_numbers = true)]
        latitude: Decimal,
        /// Longitude, degrees.
        #[arg(long, allow_negative_numbers = true)]
        longitude: Decimal,
    },
    /// Add a verifier account authorised for some of the seller's outlets.
    Verifier {
        /// Seller id.
        #[arg(long)]
        seller: SellerId,
        /// Verifier id.
        #[arg(long)]
        id: VerifierId,
        /// Real-name verified.
        #[arg(long)]
        real_name: bool,
        /// Parent account (for a sub-account).
        #[arg(long)]
        parent: Option<VerifierId>,
        /// Outlets, comma separated.
        #[arg(long, value_delimiter = ',')]
        outlets: Vec<OutletId>,
    },
    /// List outlets (a seller its own; staff and the front end all).
    List {
        /// Only this seller's.
        #[arg(long)]
        seller: Option<SellerId>,
    },
    /// List verifier accounts (a seller its own; staff any).
    Verifiers {
        /// Only this seller's.
        #[arg(long)]
        seller: Option<SellerId>,
    },
}

/// `vouch lockout …` (issue 7): keys locked out after failed code
/// attempts, listed for staff (all) and sellers (their own), lifted by
/// staff.
#[derive(Subcommand)]
pub enum LockoutCmd {
    /// List lockouts: staff see all, a seller's token its POS, verifiers
    /// and outlets.
    List,
    /// Lift a lockout at once (staff). Name exactly one key.
    #[command(group(clap::ArgGroup::new("key").required(true).args(["pos", "verifier", "seller", "outlet", "peer"])))]
    Lift {
        /// A POS by its POS id.
        #[arg(long)]
        pos: Option<PosId>,
        /// A verifier account.
        #[arg(long)]
        verifier: Option<VerifierId>,
        /// A seller (its reversals).
        #[arg(long)]
        seller: Option<SellerId>,
        /// An outlet.
        #[arg(long)]
        outlet: Option<OutletId>,
        /// A peer address (IPv4, or any address of an IPv6 /64).
        #[arg(long)]
        peer: Option<std::net::IpAddr>,
    },
}

/// The read or the staff command of `vouch lockout …`.
pub fn lockout(c: LockoutCmd) -> Built {
    use vouch_engine::catalog::{LockKey, LOCKOUTS_PAGE_ITEMS_MAX};
    match c {
        LockoutCmd::List => Built::Read(Q::Lockouts {
            after: None,
            limit: LOCKOUTS_PAGE_ITEMS_MAX,
        }),
        LockoutCmd::Lift {
            pos,
            verifier,
            seller,
            outlet,
            peer,
        } => {
            let key = match (pos, verifier, seller, outlet, peer) {
                (Some(id), ..) => LockKey::Principal(Actor::Device(id)),
                (_, Some(id), ..) => LockKey::Principal(Actor::Verifier(id)),
                (_, _, Some(id), ..) => LockKey::Principal(Actor::Seller(id)),
                (_, _, _, Some(id), _) => LockKey::Outlet(id),
                (.., Some(addr)) => LockKey::peer(addr),
                _ => LockKey::Principal(Actor::Staff),
            };
            Built::Command(Actor::Staff, C::LiftLockout { key })
        }
    }
}

/// `vouch product …` (sellers; PUB-1..9).
#[derive(Subcommand)]
pub enum ProductCmd {
    /// Publish a product.
    Publish {
        /// Seller id.
        #[arg(long)]
        seller: SellerId,
        /// Product id.
        #[arg(long)]
        id: ProductId,
        /// Category (PUB-1).
        #[arg(long)]
        category: CategoryId,
        /// Also deliverable by mail (PUB-2).
        #[arg(long)]
        mail: bool,
        /// Validity (PUB-3).
        #[command(flatten)]
        validity: ValidityArgs,
        /// Code provider (PUB-4); omit for self-issuing sellers.
        #[arg(long)]
        provider: Option<ProviderId>,
        /// Outlets, comma separated (PUB-5).
        #[arg(long, value_delimiter = ',')]
        outlets: Vec<OutletId>,
        /// T+3 settlement instead of pay-on-redemption (PUB-6).
        #[arg(long)]
        t_plus_3: bool,
        /// Expiry refund: the share of unused value refunded at expiry,
        /// percent with at most 2 decimals, 0.01..=100 (PUB-7).
        #[arg(long, value_parser = parse_percent)]
        expiry_refund_percent: Option<Bps>,
        /// Merchant code / provider ticket type (PUB-8).
        #[arg(long)]
        merchant_code: String,
        /// Group-buying product (ONB-5).
        #[arg(long)]
        group_buying: bool,
    },
    /// Take a product off the shelf.
    Delist {
        /// Seller id.
        #[arg(long)]
        seller: SellerId,
        /// Product id.
        #[arg(long)]
        id: ProductId,
    },
    /// List products (a seller its own, a provider those that chose it,
    /// the front end the listed ones, staff all).
    List {
        /// Only this seller's.
        #[arg(long)]
        seller: Option<SellerId>,
    },
    /// Show one product.
    Show {
        /// Product id.
        #[arg(long)]
        id: ProductId,
    },
}

/// What a catalog subcommand sends: a command for a principal, or a read.
pub enum Built {
    /// A command and the principal it runs for.
    Command(Actor, C),
    /// A read, run as the token's principal.
    Read(Q),
}

impl From<(Actor, C)> for Built {
    fn from((actor, command): (Actor, C)) -> Built {
        Built::Command(actor, command)
    }
}

/// The next page of list read `query` after `view`, when `view` was full.
pub fn next_page(query: &Q, view: &CatalogView) -> Option<Q> {
    if let (Q::Lockouts { limit, .. }, CatalogView::Lockouts(v)) = (query, view) {
        return (v.len() >= *limit as usize).then(|| Q::Lockouts {
            after: v.last().map(|l| l.key),
            limit: *limit,
        });
    }
    if let CatalogView::Settlements(v) = view {
        return crate::cli::settle::next_page(query, v.len(), v.last().map(|s| s.id));
    }
    if let CatalogView::Statement(st) = view {
        return crate::cli::settle::next_page(query, st.lines.len(), None);
    }
    if let (Q::Tokens { limit, .. }, CatalogView::Tokens(v)) = (query, view) {
        return (v.len() >= *limit as usize).then(|| Q::Tokens {
            after: v.last().map(|t| t.id),
            limit: *limit,
        });
    }
    // A full page of items keyed by `key`: the page after its last item.
    fn after<T, K>(items: &[T], key: impl Fn(&T) -> K) -> Option<Page<K>> {
        let last = items.last()?;
        (items.len() >= READ_PAGE_ITEMS_MAX as usize).then(|| Page {
            after: Some(key(last)),
            limit: READ_PAGE_ITEMS_MAX,
        })
    }
    match (query, view) {
        (Q::Categories(_), CatalogView::Categories(v)) => after(v, |x| x.id).map(Q::Categories),
        (Q::Providers(_), CatalogView::Providers(v)) => after(v, |x| x.id).map(Q::Providers),
        (Q::Devices(_), CatalogView::Devices(v)) => after(v, |x| x.pos_id).map(Q::Devices),
        (Q::Outlets { seller, .. }, CatalogView::Outlets(v)) => {
            after(v, |x| x.id).map(|page| Q::Outlets {
                seller: *seller,
                page,
            })
        }
        (Q::Verifiers { seller, .. }, CatalogView::Verifiers(v)) => {
            after(v, |x| x.id).map(|page| Q::Verifiers {
                seller: *seller,
                page,
            })
        }
        (Q::Products { seller, .. }, CatalogView::Products(v)) => {
            after(v, |x| x.spec.id).map(|page| Q::Products {
                seller: *seller,
                page,
            })
        }
        _ => None,
    }
}

/// Appends the items of `more` (a later page) to `view`.
pub fn extend_view(view: &mut CatalogView, more: CatalogView) {
    match (view, more) {
        (CatalogView::Categories(a), CatalogView::Categories(b)) => a.extend(b),
        (CatalogView::Providers(a), CatalogView::Providers(b)) => a.extend(b),
        (CatalogView::Outlets(a), CatalogView::Outlets(b)) => a.extend(b),
        (CatalogView::Verifiers(a), CatalogView::Verifiers(b)) => a.extend(b),
        (CatalogView::Devices(a), CatalogView::Devices(b)) => a.extend(b),
        (CatalogView::Products(a), CatalogView::Products(b)) => a.extend(b),
        (CatalogView::Lockouts(a), CatalogView::Lockouts(b)) => a.extend(b),
        (CatalogView::Tokens(a), CatalogView::Tokens(b)) => a.extend(b),
        (CatalogView::Settlements(a), CatalogView::Settlements(b)) => a.extend(b),
        (CatalogView::Statement(a), CatalogView::Statement(b)) => a.lines.extend(b.lines),
        _ => {}
    }
}

/// Ids as `1, 2, 3`, or `none`.
fn ids<T: std::fmt::Display>(v: &[T]) -> String {
    list(v.iter().map(|x| x.to_string()))
}

/// Items joined by commas, or `none`.
fn list(items: impl Iterator<Item = String>) -> String {
    let v: Vec<String> = items.collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// Prints a read's answer: `{"ok": true, "seller": {…}}` or
/// `{"ok": true, "items": […]}` with `--json`, one line per item otherwise.
pub fn print_view(view: &CatalogView, json: bool, zone: &crate::cli::time::Zone) {
    use serde_json::json;
    if json {
        let value = match view {
            CatalogView::Seller(s) => json!({"ok": true, "seller": s}),
            CatalogView::Categories(v) => json!({"ok": true, "items": v}),
            CatalogView::Providers(v) => json!({"ok": true, "items": v}),
            CatalogView::Outlets(v) => json!({"ok": true, "items": v}),
            CatalogView::Verifiers(v) => json!({"ok": true, "items": v}),
            CatalogView::Devices(v) => json!({"ok": true, "items": v}),
            CatalogView::Products(v) => json!({"ok": true, "items": v}),
            CatalogView::Lockouts(v) => {
                let items: Vec<_> = v
                    .iter()
                    .map(|l| {
                        json!({"key": l.key.to_string(), "since_ms": l.since_ms,
                               "since": zone.instant(l.since_ms), "until_ms": l.until_ms,
                               "until": zone.instant(l.until_ms), "failures": l.failures})
                    })
                    .collect();
                json!({"ok": true, "items": items})
            }
            CatalogView::Tokens(v) => {
                let items: Vec<_> = v
                    .iter()
                    .map(|t| {
                        json!({"id": t.id.to_string(), "principal": crate::cli::actor_arg(t.principal),
                               "state": if t.revoked_at_ms.is_some() { "revoked" } else { "active" },
                               "issued_at_ms": t.issued_at_ms, "issued_at": zone.instant(t.issued_at_ms),
                               "revoked_at_ms": t.revoked_at_ms,
                               "revoked_at": t.revoked_at_ms.map(|ms| zone.instant(ms))})
                    })
                    .collect();
                json!({"ok": true, "items": items})
            }
            CatalogView::Settlements(v) => {
                let items: Vec<_> = v.iter().map(|s| settle::settlement_json(s, zone)).collect();
                json!({"ok": true, "items": items})
            }
            CatalogView::Statement(st) => {
                json!({"ok": true, "statement": settle::statement_json(st, zone)})
            }
            CatalogView::Entries(p) => crate::cli::ledger::page(p, zone).0,
        };
        crate::cli::print_json(value);
        return;
    }
    let lines = view_lines(view, zone);
    if lines.is_empty() {
        println!("(none)");
    }
    for line in lines {
        println!("{line}");
    }
}

/// A read's answer as lines of text, one per item.
fn view_lines(view: &CatalogView, zone: &crate::cli::time::Zone) -> Vec<String> {
    match view {
        CatalogView::Seller(s) => seller_lines(s),
        CatalogView::Categories(v) => v.iter().map(category_line).collect(),
        CatalogView::Providers(v) => v.iter().map(provider_line).collect(),
        CatalogView::Outlets(v) => v.iter().map(outlet_line).collect(),
        CatalogView::Verifiers(v) => v.iter().map(verifier_line).collect(),
        CatalogView::Lockouts(v) => v.iter().map(|l| lockout_line(l, zone)).collect(),
        CatalogView::Tokens(v) => v.iter().map(|t| token_line(t, zone)).collect(),
        CatalogView::Devices(v) => v.iter().map(device_line).collect(),
        CatalogView::Products(v) => v.iter().map(product_line).collect(),
        CatalogView::Settlements(v) => v.iter().map(|s| settle::settlement_line(s, zone)).collect(),
        CatalogView::Statement(st) => settle::statement_lines(st, zone),
        CatalogView::Entries(p) => crate::cli::ledger::page(p, zone).1,
    }
}

/// A seller's account as lines of text.
fn seller_lines(s: &vouch_engine::catalog::SellerView) -> Vec<String> {
    vec![
        format!("seller {} ({}), onboarding {}", s.id, s.kind, s.onboarding),
        format!(
            "  self-issuing {}, group-buying operator {}",
            yes(s.self_issuing),
            yes(s.group_buying_operator)
        ),
        format!(
            "  payment account {}, balance {} yuan; service phone {}",
            s.payment_account.as_deref().unwrap_or("-"),
            s.payment_balance,
            s.service_phone.as_deref().unwrap_or("-")
        ),
        format!(
            "  categories wanted {}, permitted {}",
            ids(&s.categories_wanted),
            ids(&s.permitted)
        ),
        format!(
            "  T+N {}",
            list(s.t_plus_n.iter().map(|(c, t)| format!("category {c}: {t}")))
        ),
        format!(
            "  deposits {} (short in {}); group-buying deposit {} yuan",
            list(
                s.deposits
                    .iter()
                    .map(|(c, a)| format!("category {c}: {a} yuan"))
            ),
            ids(&s.deposit_short),
            s.group_buying_deposit
        ),
        format!(
            "  payable {} yuan; payouts in transit {} yuan",
            s.payable, s.payout_in_transit
        ),
    ]
}

/// One category as a line of text.
fn category_line(c: &vouch_engine::catalog::CategoryView) -> String {
    format!(
            "category {} {:?} ({}): vouchers {}, T+N deposit {} yuan, min expiry refund ratio {}, unexpired auto refund {}",
            c.id,
            c.name,
            c.parent.map_or("root".to_string(), |p| format!("under {p}")),
            yes(c.supports_vouchers),
            c.deposit,
            c.min_expiry_refund_ratio.map_or("-".to_string(), |r| r.to_string()),
            yes(c.supports_auto_refund)
        )
}

/// One provider as a line of text.
fn provider_line(p: &vouch_engine::catalog::ProviderView) -> String {
    format!(
        "provider {} {:?}: {} digits, sellers {}",
        p.id,
        p.name,
        p.code_digits,
        ids(&p.sellers)
    )
}

/// One outlet as a line of text.
fn outlet_line(o: &vouch_engine::catalog::OutletView) -> String {
    format!(
        "outlet {} of seller {}: {:?}, {:?} ({}, {})",
        o.id, o.seller, o.name, o.address, o.latitude, o.longitude
    )
}

/// One verifier as a line of text.
fn verifier_line(x: &vouch_engine::catalog::VerifierView) -> String {
    format!(
        "verifier {} of seller {}: real name {}, {}, outlets {}",
        x.id,
        x.seller,
        yes(x.real_name),
        x.parent.map_or("no parent account".into(), |p| format!(
            "under verifier {p}"
        )),
        ids(&x.outlets)
    )
}

/// One lockout as a line of text.
fn lockout_line(l: &vouch_engine::catalog::LockoutView, zone: &crate::cli::time::Zone) -> String {
    format!(
        "{} locked out since {} until {} after {} failed code attempts",
        l.key,
        zone.instant(l.since_ms),
        zone.instant(l.until_ms),
        l.failures
    )
}

/// One token as a line of text.
fn token_line(t: &vouch_engine::catalog::TokenView, zone: &crate::cli::time::Zone) -> String {
    let state = t.revoked_at_ms.map_or("active".to_string(), |ms| {
        format!("revoked {}", zone.instant(ms))
    });
    format!(
        "token {} of {}: issued {}, {state}",
        t.id,
        t.principal,
        zone.instant(t.issued_at_ms)
    )
}

/// One device as a line of text.
fn device_line(d: &vouch_engine::catalog::DeviceView) -> String {
    format!(
        "POS {} of provider {} at outlet {} (seller {}), {}",
        d.pos_id, d.provider, d.outlet, d.seller, d.check_method
    )
}

/// One product as a line of text.
fn product_line(p: &vouch_engine::catalog::ProductView) -> String {
    let provider = match (p.spec.provider, p.code_digits) {
        (Some(id), Some(d)) => format!("provider {id} ({d}-digit codes)"),
        _ => "self-issued codes".to_string(),
    };
    let validity = match p.spec.validity {
        Validity::DaysFromIssue(n) => format!("valid {n} days from issue"),
        Validity::Fixed { start, end } => format!("valid {start} to {end}"),
    };
    let settlement = p.spec.settlement;
    let delivery = match p.spec.delivery {
        Delivery::EVoucher => "e-voucher",
        Delivery::EVoucherOrMail => "e-voucher or mail",
    };
    format!(
                    "product {} of seller {} ({}): category {}, {validity}, {provider}, outlets {}, {settlement}, {delivery}, merchant code {:?}",
                    p.spec.id,
                    p.seller,
                    if p.listed { "listed" } else { "delisted" },
                    p.spec.category,
                    ids(&p.spec.outlets),
                    p.spec.merchant_code
                )
}

/// The command and the principal it runs for, or the read.
pub fn category(c: CategoryCmd) -> Built {
    let built: (Actor, C) = match c {
        CategoryCmd::List => return Built::Read(Q::Categories(Page::first())),
        CategoryCmd::Put {
            id,
            parent,
            name,
            supports_vouchers,
            deposit,
            min_expiry_refund_percent,
            auto_refund,
        } => (
            Actor::Staff,
            C::PutCategory {
                id,
                parent,
                name,
                supports_vouchers,
                deposit,
                min_expiry_refund_ratio: min_expiry_refund_percent,
                supports_auto_refund: auto_refund,
            },
        ),
    };
    built.into()
}

/// The command and the principal it runs for, or the read.
pub fn seller(c: SellerCmd) -> Built {
    use SellerCmd::*;
    let built: (Actor, C) = match c {
        Show { seller } => return Built::Read(Q::Seller { id: seller }),
        Create {
            id,
            kind,
            self_issuing,
            group_buying_operator,
        } => {
            let kind = match kind {
                KindArg::Mall => SellerKind::Mall,
                KindArg::Marketplace => SellerKind::Marketplace,
            };
            (
                Actor::Staff,
                C::CreateSeller {
                    id,
                    kind,
                    self_issuing,
                    group_buying_operator,
                },
            )
        }
        AcceptAgreement { seller } => (Actor::Seller(seller), C::AcceptAgreement),
        BindPayment {
            seller,
            account,
            supports_freezing,
            accept_payment_agreement,
        } => (
            Actor::Seller(seller),
            C::BindPaymentAccount {
                account,
                supports_freezing,
                accept_payment_agreement,
            },
        ),
        Confirm {
            seller,
            service_phone,
            categories,
        } => (
            Actor::Seller(seller),
            C::ConfirmOnboarding {
                service_phone,
                categories,
            },
        ),
        Grant { seller, category } => {
            (Actor::Staff, C::GrantPublishPermission { seller, category })
        }
        TopUp { seller, amount } => (Actor::Seller(seller), C::TopUp { amount }),
        ApplyTPlusN { seller, category } => (Actor::Seller(seller), C::ApplyTPlusN { category }),
        DecideTPlusN {
            seller,
            category,
            reject,
        } => (
            Actor::Staff,
            C::DecideTPlusN {
                seller,
                category,
                approve: !reject,
            },
        ),
        ConfirmFreeze { seller, category } => {
            (Actor::Seller(seller), C::ConfirmDepositFreeze { category })
        }
        TopUpDeposit {
            seller,
            category,
            amount,
        } => (Actor::Seller(seller), C::TopUpDeposit { category, amount }),
    };
    built.into()
}

/// The command and the principal it runs for, or the read.
pub fn provider(c: ProviderCmd) -> Built {
    let built: (Actor, C) = match c {
        ProviderCmd::List => return Built::Read(Q::Providers(Page::first())),
        ProviderCmd::Devices => return Built::Read(Q::Devices(Page::first())),
        ProviderCmd::Register {
            id,
            name,
            code_digits,
        } => (
            Actor::Staff,
            C::RegisterProvider {
                id,
                name,
                code_digits,
            },
        ),
        ProviderCmd::Link { provider, seller } => {
            (Actor::Provider(provider), C::LinkSeller { seller })
        }
        ProviderCmd::Device {
            provider,
            pos_id,
            outlet,
            check_method,
        } => {
            let check_method = match check_method {
                CheckArg::Code => CheckMethod::Code,
                CheckArg::Qr => CheckMethod::QrCode,
                CheckArg::IdCard => CheckMethod::IdCard,
            };
            (
                Actor::Provider(provider),
                C::RegisterDevice {
                    pos_id,
                    outlet,
                    check_method,
                },
            )
        }
    };
    built.into()
}

/// The command and the principal it runs for, or the read.
pub fn outlet(c: OutletCmd) -> Built {
    let built: (Actor, C) = match c {
        OutletCmd::List { seller } => {
            return Built::Read(Q::Outlets {
                seller,
                page: Page::first(),
            })
        }
        OutletCmd::Verifiers { seller } => {
            return Built::Read(Q::Verifiers {
                seller,
                page: Page::first(),
            })
        }
        OutletCmd::Add {
            seller,
            id,
            name,
            address,
            latitude,
            longitude,
        } => (
            Actor::Seller(seller),
            C::AddOutlet {
                id,
                name,
                address,
                latitude,
                longitude,
            },
        ),
        OutletCmd::Verifier {
            seller,
            id,
            real_name,
            parent,
            outlets,
        } => (
            Actor::Seller(seller),
            C::AddVerifier {
                id,
                real_name,
                parent,
                outlets,
            },
        ),
    };
    built.into()
}

/// The command and the principal it runs for, or the read.
pub fn product(c: ProductCmd) -> Built {
    let built: (Actor, C) = match c {
        ProductCmd::List { seller } => {
            return Built::Read(Q::Products {
                seller,
                page: Page::first(),
            })
        }
        ProductCmd::Show { id } => return Built::Read(Q::Product { id }),
        ProductCmd::Publish {
            seller,
            id,
            category,
            mail,
            validity,
            provider,
            outlets,
            t_plus_3,
            expiry_refund_percent,
            merchant_code,
            group_buying,
        } => {
            let validity = validity.validity();
            let spec = ProductSpec {
                id,
                category,
                delivery: if mail {
                    Delivery::EVoucherOrMail
                } else {
                    Delivery::EVoucher
                },
                validity,
                provider,
                outlets,
                settlement: if t_plus_3 {
                    Settlement::TPlus3
                } else {
                    Settlement::PayOnRedemption
                },
                expiry_refund_ratio: expiry_refund_percent,
                merchant_code,
                group_buying,
            };
            (Actor::Seller(seller), C::PublishProduct(spec))
        }
        ProductCmd::Delist { seller, id } => (Actor::Seller(seller), C::DelistProduct { id }),
    };
    built.into()
}
