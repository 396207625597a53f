//! The catalog: categories, sellers and their onboarding (ONB), code
//! providers (PRV), outlets, verifiers, POS devices and products (PUB),
//! with deposits kept as ledger accounts.
//!
//! Like [`crate::Shard`], the catalog is a deterministic, sans-IO state
//! machine: [`Catalog::apply`] takes the time and an authenticated
//! [`Actor`]; every command says which actors may run it (the role matrix,
//! [`CatalogCommand::allowed`]), and a seller's commands act on that seller
//! only, so one tenant never sees or changes another's data. Every
//! mutation carries a client request id and is idempotent like redemptions
//! (invariant 4).

mod lockout;
mod read;
mod tokens;
mod words;
pub use lockout::*;
pub use read::*;
pub use tokens::*;

use crate::error::{ErrorCode, Rejection};
use crate::limits::{CODE_DIGITS_MAX, CODE_DIGITS_MIN};
use crate::validity::Validity;
use crate::RequestId;
use jiff::tz::TimeZone;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{Hash, Hasher};

/// Entity ids (categories, sellers, providers, outlets, verifiers, POS
/// devices, products) are chosen by the caller and unique per kind.
pub type Id = u64;

/// Longest name, address, phone, account or merchant code, in bytes.
pub const TEXT_BYTES_MAX: usize = 256;
/// Most categories, outlets or verifiers named in one command.
pub const LIST_ITEMS_MAX: usize = 1_000;
/// Most outlets one seller may add, and most verifier accounts: a large
/// chain has a few thousand outlets. Bounds what one seller's credential
/// can make the catalog (and its log and replay) hold.
pub const SELLER_ENTITIES_MAX: usize = 10_000;
/// The platform's own code provider (PUB-4): present from the start, and
/// selectable by every onboarded seller without a relationship import.
pub const PLATFORM_PROVIDER: Id = 0;
/// Code length of the platform's own provider, digits (ORD-3).
pub const PLATFORM_CODE_DIGITS: u8 = 8;

/// The request-id source of a token with SHA-256 `hash`: its first 8
/// bytes, big-endian. No two registered or revoked tokens share one.
pub fn token_source(hash: &[u8; 32]) -> u64 {
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash[..8]);
    u64::from_be_bytes(first)
}

/// Who is asking, as the server authenticated it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Actor {
    /// Platform staff (小二).
    Staff,
    /// A seller account.
    Seller(Id),
    /// A code provider account (码商).
    Provider(Id),
    /// The platform's own scheduler (periodic ticks).
    System,
    /// A verifier account (核销账号) of a seller.
    Verifier(Id),
    /// A POS device, by POS id.
    Device(Id),
    /// The platform front end, acting for buyers (issues paid orders).
    FrontEnd,
}

/// Seller kinds (glossary): Tmall-like `mall` or `marketplace` (集市).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SellerKind {
    /// 天猫.
    Mall,
    /// 集市.
    Marketplace,
}

/// Where a seller is in the application of ONB-2.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Onboarding {
    /// Account created; the platform agreement is next.
    Applied,
    /// Agreement accepted; a payment account is next.
    AgreementAccepted,
    /// Payment account bound; confirmation is next.
    PaymentBound,
    /// Confirmed: publishing enabled (no staff review), pay-on-redemption.
    Enabled,
}

/// Settlement modes (SET-1, SET-2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Settlement {
    /// Paid per redeemed unit (核销打款), the default (ONB-2).
    PayOnRedemption,
    /// Whole order paid 3 days after issue (T+3).
    TPlus3,
}

/// State of a seller's T+N application for one category (ONB-4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TPlusN {
    /// Waiting for the category's staff.
    Applied,
    /// Refused by staff; the seller may apply again.
    Rejected,
    /// Approved: a deposit-freeze notice for `amount` yuan awaits the seller.
    FreezeNotice {
        /// The category's deposit amount, yuan.
        amount: Decimal,
    },
    /// Deposit frozen: T+3 products may be published in the category.
    Enabled,
}

/// Delivery of a product (PUB-2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    /// E-voucher only: every order is an e-voucher order.
    EVoucher,
    /// E-voucher or mail: the buyer picks at order time.
    EVoucherOrMail,
}

/// How a POS device checks codes (PRV-3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckMethod {
    /// Typed or scanned code plus phone digits.
    Code,
    /// QR code scanned from the SMS (PRV-2).
    QrCode,
    /// ID card (PRV-5).
    IdCard,
}

/// A ledger account. Money moves between accounts in balanced entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Account {
    /// Money outside the platform (top-ups come from here, payouts go here).
    External,
    /// A seller's payment account (funded by top-ups).
    Payment(Id),
    /// A seller's voucher deposit for a category (ONB-4).
    Deposit(Id, Id),
    /// A group-buying operator's group-buying deposit (ONB-5).
    GroupBuyingDeposit(Id),
}

/// One balanced ledger entry: `amount` yuan moved from `from` to `to`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Debited account.
    pub from: Account,
    /// Credited account.
    pub to: Account,
    /// Amount, yuan, > 0, fen precision.
    pub amount: Decimal,
}

/// A product to publish (PUB-1..PUB-8).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductSpec {
    /// Product id.
    pub id: Id,
    /// Category (PUB-1).
    pub category: Id,
    /// Delivery (PUB-2).
    pub delivery: Delivery,
    /// Validity (PUB-3).
    pub validity: Validity,
    /// Code provider (PUB-4); None only for self-issuing sellers.
    pub provider: Option<Id>,
    /// Outlets where the voucher can be redeemed (PUB-5), at least one.
    pub outlets: Vec<Id>,
    /// Pay-on-redemption ticked, or T+3 (PUB-6).
    pub settlement: Settlement,
    /// Expiry refund ratio, 0 < r ≤ 1, when expiry refund is ticked (PUB-7).
    pub expiry_refund_ratio: Option<Decimal>,
    /// The seller's SKU code, or the provider's ticket type (PUB-8, PRV-4).
    pub merchant_code: String,
    /// A group-buying (聚划算) product of a group-buying operator (ONB-5).
    pub group_buying: bool,
}

/// Every catalog command. The doc of each names who may run it. As JSON
/// (the CLI's `vouch catalog`), a misspelt field is refused, never dropped.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(rename_all = "snake_case")]
pub enum CatalogCommand {
    /// Staff: create or replace a category node.
    PutCategory {
        /// Category id.
        id: Id,
        /// Parent node (must exist), None for a root.
        parent: Option<Id>,
        /// Name.
        name: String,
        /// Whether vouchers may be published in it.
        supports_vouchers: bool,
        /// T+N deposit amount, yuan (ONB-4).
        deposit: Decimal,
        /// Minimum expiry refund ratio, when the category sets one (PUB-7).
        min_expiry_refund_ratio: Option<Decimal>,
        /// Whether unexpired automatic refunds apply (REF-1).
        supports_auto_refund: bool,
    },
    /// Staff: open a seller account, starting the ONB-2 application.
    CreateSeller {
        /// Seller id.
        id: Id,
        /// Mall or marketplace.
        kind: SellerKind,
        /// Runs its own code system (ONB-3).
        self_issuing: bool,
        /// Group-buying operator (ONB-5).
        group_buying_operator: bool,
    },
    /// Seller: ONB-2 step 1, accept the platform agreement.
    AcceptAgreement,
    /// Seller: ONB-2 step 2, bind a payment account that can freeze a
    /// deposit and accept the payment agreement.
    BindPaymentAccount {
        /// Payment account name.
        account: String,
        /// Whether the account supports freezing a deposit.
        supports_freezing: bool,
        /// Whether the payment agreement is accepted.
        accept_payment_agreement: bool,
    },
    /// Seller: ONB-2 step 3, confirm with the customer-service phone and
    /// the categories wanted; publishing is enabled at once.
    ConfirmOnboarding {
        /// Customer-service phone, printed in every code SMS.
        service_phone: String,
        /// Categories wanted (each must support vouchers).
        categories: Vec<Id>,
    },
    /// Staff: grant a seller publish permission in a category (ONB-1).
    GrantPublishPermission {
        /// Seller.
        seller: Id,
        /// Category.
        category: Id,
    },
    /// Seller: fund its payment account from outside.
    TopUp {
        /// Yuan, > 0.
        amount: Decimal,
    },
    /// Seller: apply for T+N in a category (ONB-4).
    ApplyTPlusN {
        /// Category.
        category: Id,
    },
    /// Staff: approve (freeze notice) or reject a T+N application (ONB-4).
    DecideTPlusN {
        /// Seller.
        seller: Id,
        /// Category.
        category: Id,
        /// Approve or reject.
        approve: bool,
    },
    /// Seller: confirm the freeze notice; the deposit is frozen (ONB-4).
    ConfirmDepositFreeze {
        /// Category.
        category: Id,
    },
    /// Staff: take money from a deposit (e.g. an after-sale refund, REF-5).
    DeductDeposit {
        /// Seller.
        seller: Id,
        /// Category.
        category: Id,
        /// Yuan, > 0.
        amount: Decimal,
    },
    /// Seller: move money from its payment account into a deposit.
    TopUpDeposit {
        /// Category.
        category: Id,
        /// Yuan, > 0.
        amount: Decimal,
    },
    /// Seller (group-buying operator): fund the group-buying deposit (ONB-5).
    FundGroupBuyingDeposit {
        /// Yuan, > 0.
        amount: Decimal,
    },
    /// Staff: register a code provider (PRV).
    RegisterProvider {
        /// Provider id.
        id: Id,
        /// Name.
        name: String,
        /// Code length this provider issues, 6..=11.
        code_digits: u8,
    },
    /// Provider: import its relationship with an onboarded seller (PRV-1).
    LinkSeller {
        /// Seller.
        seller: Id,
    },
    /// Seller: add an outlet (PUB-5).
    AddOutlet {
        /// Outlet id.
        id: Id,
        /// Name.
        name: String,
        /// Address.
        address: String,
        /// Latitude, degrees, −90..=90 (decimal: exact and hashable).
        latitude: Decimal,
        /// Longitude, degrees, −180..=180.
        longitude: Decimal,
    },
    /// Seller: add a verifier account or sub-account for some outlets.
    AddVerifier {
        /// Verifier id.
        id: Id,
        /// Real-name verified.
        real_name: bool,
        /// Parent account for a sub-account.
        parent: Option<Id>,
        /// Outlets it may redeem at (the seller's own).
        outlets: Vec<Id>,
    },
    /// Provider: register a POS device at a linked seller's outlet (PRV-3).
    RegisterDevice {
        /// POS id.
        pos_id: Id,
        /// Outlet.
        outlet: Id,
        /// Check method.
        check_method: CheckMethod,
    },
    /// Seller: publish a product (PUB-1..PUB-8; PUB-9: the same command is
    /// the publishing API).
    PublishProduct(ProductSpec),
    /// Seller: take its product off the shelf.
    DelistProduct {
        /// Product.
        id: Id,
    },
    /// System: delist products whose validity end has passed (PUB-3).
    Tick,
    /// Staff: register a credential for `actor`. Only the token's SHA-256
    /// hash is sent and kept; the caller generated the token and shows it
    /// once. The actor's entity must exist (seller, provider, verifier, POS).
    IssueToken {
        /// SHA-256 of the token.
        token_hash: [u8; 32],
        /// The principal the token authenticates.
        actor: Actor,
    },
    /// Staff: revoke credentials: one by its hash or id, or every active
    /// token of a principal.
    RevokeToken {
        /// Which tokens.
        which: TokenRef,
    },
    /// The system (the server's failure counters): lock `key` out until
    /// `until_ms` after `failures` failed code attempts (issue 7).
    LockOut {
        /// What is locked out.
        key: LockKey,
        /// End of the lockout, unix ms (exclusive).
        until_ms: i64,
        /// Failures counted in the window.
        failures: u32,
    },
    /// Staff: lift the lockout of `key` at once.
    LiftLockout {
        /// What to let in again.
        key: LockKey,
    },
}

impl CatalogCommand {
    /// The role matrix: whether `actor` may run this command at all.
    /// Tenant checks (a seller's own data) come after, in `apply`.
    pub fn allowed(&self, actor: Actor) -> bool {
        use CatalogCommand::*;
        match self {
            PutCategory { .. }
            | CreateSeller { .. }
            | GrantPublishPermission { .. }
            | DecideTPlusN { .. }
            | DeductDeposit { .. }
            | RegisterProvider { .. }
            | IssueToken { .. }
            | RevokeToken { .. } => actor == Actor::Staff,
            AcceptAgreement
            | BindPaymentAccount { .. }
            | ConfirmOnboarding { .. }
            | TopUp { .. }
            | ApplyTPlusN { .. }
            | ConfirmDepositFreeze { .. }
            | TopUpDeposit { .. }
            | FundGroupBuyingDeposit { .. }
            | AddOutlet { .. }
            | AddVerifier { .. }
            | PublishProduct(_)
            | DelistProduct { .. } => matches!(actor, Actor::Seller(_)),
            LinkSeller { .. } | RegisterDevice { .. } => matches!(actor, Actor::Provider(_)),
            Tick => matches!(actor, Actor::System | Actor::Staff),
            LockOut { .. } => actor == Actor::System,
            LiftLockout { .. } => actor == Actor::Staff,
        }
    }
}

/// Something staff or other layers must act on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CatalogEvent {
    /// Approval of T+N created a deposit-freeze notice (ONB-4).
    FreezeNotice {
        /// Seller.
        seller: Id,
        /// Category.
        category: Id,
        /// Yuan.
        amount: Decimal,
    },
    /// A deposit fell below the required amount: demand a top-up (ONB-6).
    DepositShort {
        /// Seller.
        seller: Id,
        /// Category.
        category: Id,
        /// Balance now, yuan.
        balance: Decimal,
        /// Required, yuan.
        required: Decimal,
    },
    /// A product was delisted because its validity ended (PUB-3).
    ProductDelisted {
        /// Product.
        product: Id,
    },
    /// A fact every voucher shard needs for ORD-7's redemption checks.
    Fact(crate::command::CatalogFact),
    /// A token was revoked: the server forgets it and closes its
    /// connections.
    TokenRevoked {
        /// SHA-256 of the token.
        token_hash: [u8; 32],
        /// Its id (request-id source).
        id: u64,
        /// Its principal.
        principal: Actor,
    },
}

/// Successful reply of a catalog command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CatalogOutcome {
    /// Done; nothing to report.
    Done,
    /// The seller's onboarding state after the step.
    Onboarding(Onboarding),
    /// The seller's T+N state for a category after the step.
    TPlusN(TPlusN),
    /// An account balance after the movement, yuan.
    Balance(Decimal),
    /// Products delisted by a tick.
    Ticked {
        /// Products delisted because their validity ended (PUB-3).
        delisted: Vec<Id>,
        /// Lockouts whose cooling period had ended, dropped.
        lockouts_ended: u32,
    },
    /// The ids of the tokens revoked.
    TokensRevoked(Vec<u64>),
}

/// A catalog command's reply.
pub type CatalogReply = Result<CatalogOutcome, Rejection>;

#[derive(Clone, Debug)]
struct Category {
    parent: Option<Id>,
    name: String,
    supports_vouchers: bool,
    deposit: Decimal,
    min_expiry_refund_ratio: Option<Decimal>,
    supports_auto_refund: bool,
}

#[derive(Clone, Debug)]
struct Seller {
    kind: SellerKind,
    self_issuing: bool,
    group_buying_operator: bool,
    onboarding: Onboarding,
    payment_account: Option<String>,
    service_phone: Option<String>,
    categories_wanted: BTreeSet<Id>,
    permitted: BTreeSet<Id>,
    t_plus_n: BTreeMap<Id, TPlusN>,
    short: BTreeSet<Id>,
}

#[derive(Clone, Debug)]
struct Provider {
    name: String,
    /// Code length this provider issues (6..=11).
    code_digits: u8,
    /// Sellers that imported their relationship (PRV-1).
    sellers: BTreeSet<Id>,
}

#[derive(Clone, Debug)]
struct Outlet {
    seller: Id,
    name: String,
    address: String,
    latitude: Decimal,
    longitude: Decimal,
}

#[derive(Clone, Debug)]
struct Verifier {
    seller: Id,
    real_name: bool,
    parent: Option<Id>,
    outlets: BTreeSet<Id>,
}

/// A registered POS (PRV-3).
#[derive(Clone, Debug)]
struct Device {
    provider: Id,
    outlet: Id,
    check_method: CheckMethod,
}

#[derive(Clone, Debug)]
struct Product {
    seller: Id,
    spec: ProductSpec,
    code_digits: Option<u8>,
    listed: bool,
    /// First instant at which the validity has ended (fixed periods only).
    delist_at_ms: Option<i64>,
}

/// The catalog state machine; see the module docs.
pub struct Catalog {
    tz: TimeZone,
    categories: BTreeMap<Id, Category>,
    sellers: BTreeMap<Id, Seller>,
    providers: BTreeMap<Id, Provider>,
    outlets: BTreeMap<Id, Outlet>,
    verifiers: BTreeMap<Id, Verifier>,
    devices: BTreeMap<Id, Device>,
    products: BTreeMap<Id, Product>,
    balances: BTreeMap<Account, Decimal>,
    ledger: Vec<Entry>,
    done: HashMap<RequestId, (u64, CatalogReply)>,
    /// Active tokens: SHA-256 → principal.
    tokens: BTreeMap<[u8; 32], Actor>,
    /// Every token ever registered, revoked or not, by id (request-id
    /// source).
    token_records: BTreeMap<u64, TokenRecord>,
    /// Keys locked out after failed code attempts (issue 7).
    lockouts: BTreeMap<LockKey, LockoutView>,
}

fn reject(code: ErrorCode, message: impl Into<String>) -> Rejection {
    Rejection::new(code, message)
}

fn fingerprint(actor: Actor, command: &CatalogCommand) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    actor.hash(&mut h);
    command.hash(&mut h);
    h.finish()
}

fn check_text(what: &str, s: &str) -> Result<(), Rejection> {
    // Invisible and direction-changing characters can make a name look
    // like another or like nothing: refused are controls, format characters
    // (zero-width marks and joiners, bidirectional marks, overrides and
    // isolates, tags, the byte-order mark), line and paragraph separators,
    // private-use, unassigned and surrogate code points (Unicode general
    // categories Cc, Cf, Zl, Zp, Co, Cn, Cs), and the invisible fillers and
    // selectors of other categories (Hangul and braille fillers, variation
    // selectors, the combining grapheme joiner).
    let hidden = |c: char| {
        use unicode_properties::{GeneralCategory as G, UnicodeGeneralCategory};
        matches!(
            c.general_category(),
            G::Control
                | G::Format
                | G::LineSeparator
                | G::ParagraphSeparator
                | G::PrivateUse
                | G::Unassigned
                | G::Surrogate
        ) || matches!(
            c,
            '\u{034F}'
                | '\u{115F}'
                | '\u{1160}'
                | '\u{17B4}'
                | '\u{17B5}'
                | '\u{180B}'..='\u{180D}'
                | '\u{2800}'
                | '\u{3164}'
                | '\u{FE00}'..='\u{FE0F}'
                | '\u{FFA0}'
                | '\u{E0100}'..='\u{E01EF}'
        )
    };
    if s.trim().is_empty() || s.len() > TEXT_BYTES_MAX || s.chars().any(hidden) {
        return Err(reject(
            ErrorCode::BadRequest,
            format!("{what} must be 1..={TEXT_BYTES_MAX} bytes, not blank, without control, invisible or direction-changing characters"),
        ));
    }
    Ok(())
}

/// Refuses a list naming the same id twice.
fn check_distinct(what: &str, ids: &[Id]) -> Result<(), Rejection> {
    let distinct: BTreeSet<&Id> = ids.iter().collect();
    if distinct.len() != ids.len() {
        return Err(reject(
            ErrorCode::BadRequest,
            format!("{what} names an id twice"),
        ));
    }
    Ok(())
}

/// `amount` in fen (scale 2), e.g. 5 → 5.00, 7.500 → 7.50. Callers have
/// checked it has at most 2 significant decimals.
fn in_fen(amount: Decimal) -> Decimal {
    let mut a = amount.normalize();
    a.rescale(2);
    a
}

fn check_amount(amount: Decimal) -> Result<(), Rejection> {
    if amount <= Decimal::ZERO
        || amount.normalize().scale() > 2
        || amount > Decimal::from(1_000_000_000)
    {
        return Err(reject(
            ErrorCode::BadRequest,
            format!("amount must be above 0, at most 1,000,000,000 yuan, in fen: {amount}"),
        ));
    }
    Ok(())
}

impl Catalog {
    /// An empty catalog in the platform time zone `tz`.
    pub fn new(tz: TimeZone) -> Catalog {
        Catalog {
            tz,
            categories: BTreeMap::new(),
            sellers: BTreeMap::new(),
            providers: BTreeMap::from([(
                PLATFORM_PROVIDER,
                Provider {
                    name: "platform".into(),
                    code_digits: PLATFORM_CODE_DIGITS,
                    sellers: BTreeSet::new(),
                },
            )]),
            outlets: BTreeMap::new(),
            verifiers: BTreeMap::new(),
            devices: BTreeMap::new(),
            products: BTreeMap::new(),
            balances: BTreeMap::new(),
            ledger: Vec::new(),
            done: HashMap::new(),
            tokens: BTreeMap::new(),
            token_records: BTreeMap::new(),
            lockouts: BTreeMap::new(),
        }
    }

    /// Applies `command` for `actor` at `now_ms`, with client request id
    /// `request_id`; events for staff and other layers go to `events`.
    ///
    /// Errors: `not_permitted` when the role matrix refuses the actor, then
    /// the command's own rule errors (each documented on [`ErrorCode`]).
    /// A refused command changes nothing. A retry with the same request id
    /// and content returns the original reply; other content is
    /// `request_conflict`.
    pub fn apply(
        &mut self,
        now_ms: i64,
        actor: Actor,
        request_id: RequestId,
        command: &CatalogCommand,
        events: &mut Vec<CatalogEvent>,
    ) -> CatalogReply {
        let fp = fingerprint(actor, command);
        if let Some((seen, reply)) = self.done.get(&request_id) {
            if *seen != fp {
                return Err(reject(
                    ErrorCode::RequestConflict,
                    "request id already used with other content",
                ));
            }
            return reply.clone();
        }
        if !command.allowed(actor) {
            return Err(reject(
                ErrorCode::NotPermitted,
                format!("{actor} may not run this command"),
            ));
        }
        let reply = self.run(now_ms, actor, command, events);
        // A tick needs no idempotency record (running it again changes
        // nothing), and an idle one is not logged: keeping its request id
        // would make live behaviour differ from behaviour after a restart.
        if reply.is_ok() && *command != CatalogCommand::Tick {
            self.done.insert(request_id, (fp, reply.clone()));
        }
        debug_assert!(self.ledger_balanced());
        reply
    }

    /// Whether `request_id` was already applied: a command with it is a
    /// retry (original reply) or a conflict, and changes nothing.
    pub fn is_repeat(&self, request_id: &RequestId) -> bool {
        self.done.contains_key(request_id)
    }

    /// Whether all balances add up to zero (every entry is balanced).
    pub fn ledger_balanced(&self) -> bool {
        self.balances.values().sum::<Decimal>() == Decimal::ZERO
    }

    /// The principal a token hash authenticates, if it is registered.
    pub fn token_actor(&self, token_hash: &[u8; 32]) -> Option<Actor> {
        self.tokens.get(token_hash).copied()
    }

    /// The facts voucher shards need (ORD-7) for every product, verifier
    /// and POS in the catalog, as of now.
    pub fn facts(&self) -> Vec<crate::command::CatalogFact> {
        use crate::command::CatalogFact;
        let mut out = Vec::new();
        out.extend(self.products.keys().filter_map(|id| self.product_fact(*id)));
        for (id, v) in &self.verifiers {
            out.push(CatalogFact::Verifier {
                id: *id,
                seller: v.seller,
                outlets: v.outlets.iter().copied().collect(),
            });
        }
        for (pos_id, d) in &self.devices {
            if let Some(o) = self.outlets.get(&d.outlet) {
                out.push(CatalogFact::Device {
                    pos_id: *pos_id,
                    seller: o.seller,
                    outlet: d.outlet,
                    provider: d.provider,
                });
            }
        }
        out
    }

    /// The fact shards need of product `id` as it is now.
    fn product_fact(&self, id: Id) -> Option<crate::command::CatalogFact> {
        let p = self.products.get(&id)?;
        Some(crate::command::CatalogFact::Product {
            id,
            seller: p.seller,
            outlets: p.spec.outlets.clone(),
            code_digits: p.code_digits,
            provider: p.spec.provider,
            validity: p.spec.validity,
            listed: p.listed,
        })
    }

    /// Every registered token hash with its principal.
    pub fn tokens(&self) -> impl Iterator<Item = (&[u8; 32], &Actor)> {
        self.tokens.iter()
    }

    /// Balance of `account`, yuan.
    pub fn balance(&self, account: Account) -> Decimal {
        self.balances.get(&account).copied().unwrap_or_default()
    }

    /// The ledger's entries, in order.
    pub fn ledger(&self) -> &[Entry] {
        &self.ledger
    }

    /// Whether product `id` is listed, as `actor` sees it through
    /// [`CatalogQuery::Product`]: None when it does not exist or `actor`
    /// may not see it (another seller's).
    pub fn product_listed(&self, actor: Actor, id: Id) -> Option<bool> {
        match self.read(actor, &CatalogQuery::Product { id }) {
            Ok(CatalogView::Products(p)) => p.first().map(|p| p.listed),
            _ => None,
        }
    }

    /// A seller's onboarding state and T+N state per category, for staff.
    pub fn seller_state(&self, seller: Id) -> Option<(Onboarding, BTreeMap<Id, TPlusN>)> {
        self.sellers
            .get(&seller)
            .map(|s| (s.onboarding, s.t_plus_n.clone()))
    }

    /// Moves `amount` yuan (in fen) from `from` to `to` as one balanced
    /// entry; nothing for a zero amount.
    ///
    /// Errors: `insufficient_balance` when `from` (not External) holds less.
    fn transfer(&mut self, from: Account, to: Account, amount: Decimal) -> Result<(), Rejection> {
        let amount = in_fen(amount);
        if amount.is_zero() {
            return Ok(());
        }
        if from != Account::External && self.balance(from) < amount {
            return Err(reject(
                ErrorCode::InsufficientBalance,
                format!("{from} holds {} yuan, {amount} needed", self.balance(from)),
            ));
        }
        *self.balances.entry(from).or_default() -= amount;
        *self.balances.entry(to).or_default() += amount;
        self.ledger.push(Entry { from, to, amount });
        Ok(())
    }

    fn seller(&self, id: Id) -> Result<&Seller, Rejection> {
        self.sellers
            .get(&id)
            .ok_or_else(|| reject(ErrorCode::NotFound, format!("seller {id}")))
    }

    fn seller_mut(&mut self, id: Id) -> Result<&mut Seller, Rejection> {
        self.sellers
            .get_mut(&id)
            .ok_or_else(|| reject(ErrorCode::NotFound, format!("seller {id}")))
    }

    fn category(&self, id: Id) -> Result<&Category, Rejection> {
        self.categories
            .get(&id)
            .ok_or_else(|| reject(ErrorCode::NotFound, format!("category {id}")))
    }

    fn enabled_seller(&self, id: Id) -> Result<&Seller, Rejection> {
        let s = self.seller(id)?;
        if s.onboarding != Onboarding::Enabled {
            return Err(reject(
                ErrorCode::SellerNotOnboarded,
                format!("seller {id} has not completed onboarding"),
            ));
        }
        Ok(s)
    }

    /// Emits `deposit_short` and flags the category when the seller has T+N
    /// enabled there and the deposit is below the category's amount
    /// (ONB-6); clears the flag otherwise.
    fn review_deposit(
        &mut self,
        seller: Id,
        category: Id,
        events: &mut Vec<CatalogEvent>,
    ) -> Result<(), Rejection> {
        let required = self.category(category)?.deposit;
        let balance = self.balance(Account::Deposit(seller, category));
        let s = self.seller_mut(seller)?;
        let t_plus_n = s.t_plus_n.get(&category) == Some(&TPlusN::Enabled);
        if t_plus_n && balance < required {
            if s.short.insert(category) {
                events.push(CatalogEvent::DepositShort {
                    seller,
                    category,
                    balance,
                    required,
                });
            }
        } else {
            s.short.remove(&category);
        }
        Ok(())
    }

    fn run(
        &mut self,
        now_ms: i64,
        actor: Actor,
        command: &CatalogCommand,
        events: &mut Vec<CatalogEvent>,
    ) -> CatalogReply {
        use CatalogCommand::*;
        let me = match actor {
            Actor::Seller(id) | Actor::Provider(id) => id,
            Actor::Verifier(id) | Actor::Device(id) => id,
            Actor::Staff | Actor::System | Actor::FrontEnd => 0,
        };
        match command {
            PutCategory {
                id,
                parent,
                name,
                supports_vouchers,
                deposit,
                min_expiry_refund_ratio,
                supports_auto_refund,
            } => {
                check_text("category name", name)?;
                if let Some(p) = parent {
                    if p == id {
                        return Err(reject(
                            ErrorCode::BadRequest,
                            "a category cannot be its own parent",
                        ));
                    }
                    self.category(*p)?;
                    // Replacing a node must not make it its own ancestor.
                    let mut up = Some(*p);
                    while let Some(node) = up {
                        if node == *id {
                            return Err(reject(
                                ErrorCode::BadRequest,
                                "that parent would make the category tree a cycle",
                            ));
                        }
                        up = self.categories.get(&node).and_then(|c| c.parent);
                    }
                }
                if deposit.is_sign_negative() || deposit.normalize().scale() > 2 {
                    return Err(reject(
                        ErrorCode::BadRequest,
                        "deposit must be ≥ 0 yuan in fen",
                    ));
                }
                if let Some(r) = min_expiry_refund_ratio {
                    if *r <= Decimal::ZERO || *r > Decimal::ONE {
                        return Err(reject(
                            ErrorCode::RefundRatioInvalid,
                            "minimum ratio must be in (0, 1]",
                        ));
                    }
                }
                self.categories.insert(
                    *id,
                    Category {
                        parent: *parent,
                        name: name.clone(),
                        supports_vouchers: *supports_vouchers,
                        deposit: in_fen(*deposit),
                        min_expiry_refund_ratio: *min_expiry_refund_ratio,
                        supports_auto_refund: *supports_auto_refund,
                    },
                );
                // A changed deposit amount applies to every seller with T+N
                // in the category at once (ONB-6).
                let with_t_plus_n: Vec<Id> = self
                    .sellers
                    .iter()
                    .filter(|(_, s)| s.t_plus_n.get(id) == Some(&TPlusN::Enabled))
                    .map(|(seller, _)| *seller)
                    .collect();
                for seller in with_t_plus_n {
                    self.review_deposit(seller, *id, events)?;
                }
                Ok(CatalogOutcome::Done)
            }
            CreateSeller {
                id,
                kind,
                self_issuing,
                group_buying_operator,
            } => {
                if self.sellers.contains_key(id) {
                    return Err(reject(ErrorCode::AlreadyExists, format!("seller {id}")));
                }
                self.sellers.insert(
                    *id,
                    Seller {
                        kind: *kind,
                        self_issuing: *self_issuing,
                        group_buying_operator: *group_buying_operator,
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
            AcceptAgreement => self.step(me, Onboarding::Applied, Onboarding::AgreementAccepted),
            BindPaymentAccount {
                account,
                supports_freezing,
                accept_payment_agreement,
            } => {
                check_text("payment account", account)?;
                self.expect_step(me, Onboarding::AgreementAccepted)?;
                if !supports_freezing || !accept_payment_agreement {
                    return Err(reject(
                        ErrorCode::PaymentAccountCannotFreeze,
                        "the payment account must support freezing a deposit and its agreement be accepted",
                    ));
                }
                self.step(me, Onboarding::AgreementAccepted, Onboarding::PaymentBound)?;
                self.seller_mut(me)?.payment_account = Some(account.clone());
                Ok(CatalogOutcome::Onboarding(Onboarding::PaymentBound))
            }
            ConfirmOnboarding {
                service_phone,
                categories,
            } => {
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
                s.service_phone = Some(service_phone.clone());
                s.categories_wanted = categories.iter().copied().collect();
                Ok(CatalogOutcome::Onboarding(Onboarding::Enabled))
            }
            GrantPublishPermission { seller, category } => {
                if !self.category(*category)?.supports_vouchers {
                    return Err(reject(
                        ErrorCode::CategoryNotForVouchers,
                        format!("category {category}"),
                    ));
                }
                self.seller_mut(*seller)?.permitted.insert(*category);
                Ok(CatalogOutcome::Done)
            }
            TopUp { amount } => {
                check_amount(*amount)?;
                // The payment account exists once bound (ONB-2 step 2).
                if matches!(
                    self.seller(me)?.onboarding,
                    Onboarding::Applied | Onboarding::AgreementAccepted
                ) {
                    return Err(reject(
                        ErrorCode::OnboardingStepOutOfOrder,
                        "bind a payment account before topping it up",
                    ));
                }
                self.transfer(Account::External, Account::Payment(me), *amount)?;
                Ok(CatalogOutcome::Balance(self.balance(Account::Payment(me))))
            }
            ApplyTPlusN { category } => {
                self.enabled_seller(me)?;
                if !self.category(*category)?.supports_vouchers {
                    return Err(reject(
                        ErrorCode::CategoryNotForVouchers,
                        format!("category {category}"),
                    ));
                }
                let s = self.seller_mut(me)?;
                match s.t_plus_n.get(category) {
                    None | Some(TPlusN::Rejected) => {
                        s.t_plus_n.insert(*category, TPlusN::Applied);
                        Ok(CatalogOutcome::TPlusN(TPlusN::Applied))
                    }
                    Some(other) => Err(reject(
                        ErrorCode::TPlusNNotPending,
                        format!("T+N for category {category} is already {other}"),
                    )),
                }
            }
            DecideTPlusN {
                seller,
                category,
                approve,
            } => {
                let amount = self.category(*category)?.deposit;
                let s = self.seller_mut(*seller)?;
                if s.t_plus_n.get(category) != Some(&TPlusN::Applied) {
                    return Err(reject(
                        ErrorCode::TPlusNNotPending,
                        "no pending T+N application",
                    ));
                }
                let next = if *approve {
                    TPlusN::FreezeNotice { amount }
                } else {
                    TPlusN::Rejected
                };
                s.t_plus_n.insert(*category, next);
                if *approve {
                    events.push(CatalogEvent::FreezeNotice {
                        seller: *seller,
                        category: *category,
                        amount,
                    });
                }
                Ok(CatalogOutcome::TPlusN(next))
            }
            ConfirmDepositFreeze { category } => {
                let Some(TPlusN::FreezeNotice { amount }) =
                    self.seller(me)?.t_plus_n.get(category).copied()
                else {
                    return Err(reject(
                        ErrorCode::TPlusNNotPending,
                        "no deposit-freeze notice to confirm",
                    ));
                };
                self.transfer(
                    Account::Payment(me),
                    Account::Deposit(me, *category),
                    amount,
                )?;
                self.seller_mut(me)?
                    .t_plus_n
                    .insert(*category, TPlusN::Enabled);
                self.review_deposit(me, *category, events)?;
                Ok(CatalogOutcome::TPlusN(TPlusN::Enabled))
            }
            DeductDeposit {
                seller,
                category,
                amount,
            } => {
                check_amount(*amount)?;
                self.seller(*seller)?;
                self.transfer(
                    Account::Deposit(*seller, *category),
                    Account::External,
                    *amount,
                )?;
                self.review_deposit(*seller, *category, events)?;
                Ok(CatalogOutcome::Balance(
                    self.balance(Account::Deposit(*seller, *category)),
                ))
            }
            TopUpDeposit { category, amount } => {
                check_amount(*amount)?;
                self.category(*category)?;
                self.transfer(
                    Account::Payment(me),
                    Account::Deposit(me, *category),
                    *amount,
                )?;
                self.review_deposit(me, *category, events)?;
                Ok(CatalogOutcome::Balance(
                    self.balance(Account::Deposit(me, *category)),
                ))
            }
            FundGroupBuyingDeposit { amount } => {
                check_amount(*amount)?;
                if !self.seller(me)?.group_buying_operator {
                    return Err(reject(
                        ErrorCode::GroupBuyingNotAllowed,
                        "not a group-buying operator",
                    ));
                }
                self.transfer(
                    Account::Payment(me),
                    Account::GroupBuyingDeposit(me),
                    *amount,
                )?;
                Ok(CatalogOutcome::Balance(
                    self.balance(Account::GroupBuyingDeposit(me)),
                ))
            }
            RegisterProvider {
                id,
                name,
                code_digits,
            } => {
                check_text("provider name", name)?;
                if !(CODE_DIGITS_MIN..=CODE_DIGITS_MAX).contains(code_digits) {
                    return Err(reject(ErrorCode::BadRequest, "code_digits must be 6..=11"));
                }
                if self.providers.contains_key(id) {
                    return Err(reject(ErrorCode::AlreadyExists, format!("provider {id}")));
                }
                self.providers.insert(
                    *id,
                    Provider {
                        name: name.clone(),
                        code_digits: *code_digits,
                        sellers: BTreeSet::new(),
                    },
                );
                Ok(CatalogOutcome::Done)
            }
            LinkSeller { seller } => {
                self.enabled_seller(*seller)?;
                let provider = self
                    .providers
                    .get_mut(&me)
                    .ok_or_else(|| reject(ErrorCode::NotFound, format!("provider {me}")))?;
                provider.sellers.insert(*seller);
                Ok(CatalogOutcome::Done)
            }
            AddOutlet {
                id,
                name,
                address,
                latitude,
                longitude,
            } => {
                check_text("outlet name", name)?;
                check_text("outlet address", address)?;
                let (lat_max, lon_max) = (Decimal::from(90), Decimal::from(180));
                if latitude.abs() > lat_max || longitude.abs() > lon_max {
                    return Err(reject(ErrorCode::BadRequest, "coordinates out of range"));
                }
                self.enabled_seller(me)?;
                if self.outlets.contains_key(id) {
                    return Err(reject(ErrorCode::AlreadyExists, format!("outlet {id}")));
                }
                if self.outlets.values().filter(|o| o.seller == me).count() >= SELLER_ENTITIES_MAX {
                    return Err(reject(
                        ErrorCode::BadRequest,
                        format!("a seller has at most {SELLER_ENTITIES_MAX} outlets"),
                    ));
                }
                self.outlets.insert(
                    *id,
                    Outlet {
                        seller: me,
                        name: name.clone(),
                        address: address.clone(),
                        latitude: *latitude,
                        longitude: *longitude,
                    },
                );
                Ok(CatalogOutcome::Done)
            }
            AddVerifier {
                id,
                real_name,
                parent,
                outlets,
            } => {
                self.enabled_seller(me)?;
                if self.verifiers.values().filter(|v| v.seller == me).count() >= SELLER_ENTITIES_MAX
                {
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
                if self.verifiers.contains_key(id) {
                    return Err(reject(ErrorCode::AlreadyExists, format!("verifier {id}")));
                }
                if let Some(p) = parent {
                    if self.verifiers.get(p).map(|v| v.seller) != Some(me) {
                        return Err(reject(ErrorCode::NotFound, format!("verifier {p}")));
                    }
                }
                self.own_outlets(me, outlets)?;
                self.verifiers.insert(
                    *id,
                    Verifier {
                        seller: me,
                        real_name: *real_name,
                        parent: *parent,
                        outlets: outlets.iter().copied().collect(),
                    },
                );
                events.push(CatalogEvent::Fact(crate::command::CatalogFact::Verifier {
                    id: *id,
                    seller: me,
                    outlets: outlets.clone(),
                }));
                Ok(CatalogOutcome::Done)
            }
            RegisterDevice {
                pos_id,
                outlet,
                check_method,
            } => {
                let owner = self
                    .outlets
                    .get(outlet)
                    .map(|o| o.seller)
                    .ok_or_else(|| reject(ErrorCode::NotFound, format!("outlet {outlet}")))?;
                if !self.linked(me, owner) {
                    return Err(reject(
                        ErrorCode::ProviderNotLinked,
                        "the outlet's seller is not linked to this provider",
                    ));
                }
                if self.devices.contains_key(pos_id) {
                    return Err(reject(ErrorCode::AlreadyExists, format!("POS {pos_id}")));
                }
                self.devices.insert(
                    *pos_id,
                    Device {
                        provider: me,
                        outlet: *outlet,
                        check_method: *check_method,
                    },
                );
                events.push(CatalogEvent::Fact(crate::command::CatalogFact::Device {
                    pos_id: *pos_id,
                    seller: owner,
                    outlet: *outlet,
                    provider: me,
                }));
                Ok(CatalogOutcome::Done)
            }
            PublishProduct(spec) => {
                let done = self.publish(now_ms, me, spec)?;
                events.extend(self.product_fact(spec.id).map(CatalogEvent::Fact));
                Ok(done)
            }
            IssueToken { token_hash, actor } => self.issue_token(now_ms, token_hash, *actor),
            RevokeToken { which } => self.revoke_tokens(now_ms, *which, events),
            DelistProduct { id } => {
                match self.products.get_mut(id) {
                    Some(p) if p.seller == me => p.listed = false,
                    _ => return Err(reject(ErrorCode::NotFound, format!("product {id}"))),
                }
                events.extend(self.product_fact(*id).map(CatalogEvent::Fact));
                Ok(CatalogOutcome::Done)
            }
            Tick => {
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
            LockOut {
                key,
                until_ms,
                failures,
            } => self.lock_out(now_ms, *key, *until_ms, *failures),
            LiftLockout { key } => self.lift_lockout(now_ms, *key),
        }
    }

    fn expect_step(&self, seller: Id, from: Onboarding) -> Result<(), Rejection> {
        let at = self.seller(seller)?.onboarding;
        if at != from {
            return Err(reject(
                ErrorCode::OnboardingStepOutOfOrder,
                format!("seller {seller} is at \"{at}\"; this step needs \"{from}\""),
            ));
        }
        Ok(())
    }

    fn step(&mut self, seller: Id, from: Onboarding, to: Onboarding) -> CatalogReply {
        self.expect_step(seller, from)?;
        self.seller_mut(seller)?.onboarding = to;
        Ok(CatalogOutcome::Onboarding(to))
    }

    /// Whether `provider` may serve `seller` (PUB-4, PRV-1): the seller
    /// imported its relationship, or the provider is the platform's own
    /// and the seller has onboarded.
    fn linked(&self, provider: Id, seller: Id) -> bool {
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

    fn own_outlets(&self, seller: Id, outlets: &[Id]) -> Result<(), Rejection> {
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

    fn publish(&mut self, now_ms: i64, me: Id, p: &ProductSpec) -> CatalogReply {
        let seller = self.enabled_seller(me)?.clone();
        let category = self.category(p.category)?.clone();
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
        match p.provider {
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
            // Decision (ONB-5 names no amount): the group-buying deposit
            // guarantees group-buying T+3 products of a category when it
            // holds at least that category's voucher deposit amount (and
            // something at all).
            let group_deposit = self.balance(Account::GroupBuyingDeposit(me));
            let by_group_deposit = p.group_buying
                && group_deposit > Decimal::ZERO
                && group_deposit >= category.deposit;
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
        }
        if let Some(r) = p.expiry_refund_ratio {
            if r <= Decimal::ZERO || r > Decimal::ONE {
                return Err(reject(
                    ErrorCode::RefundRatioInvalid,
                    format!("ratio {r} not in (0, 1]"),
                ));
            }
            if let Some(min) = category.min_expiry_refund_ratio {
                if r < min {
                    return Err(reject(
                        ErrorCode::RefundRatioBelowCategoryMinimum,
                        format!("ratio {r} below the category's minimum {min}"),
                    ));
                }
            }
        }
        check_text("merchant code", &p.merchant_code)?;
        let delist_at_ms = match p.validity {
            Validity::Fixed { .. } => Some(p.validity.resolve(now_ms, &self.tz)?.until_ms),
            Validity::DaysFromIssue(_) => {
                p.validity.resolve(now_ms, &self.tz)?;
                None
            }
        };
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
}
