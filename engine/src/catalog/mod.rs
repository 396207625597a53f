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
//!
//! Each rule family has its file, with one method per command: the
//! category tree (`category`), sellers and their onboarding (`seller`),
//! money and deposits (`deposit`), code providers and POS devices
//! (`provider`), outlets and verifiers (`outlet`), products (`product`),
//! credentials (`tokens`), lockouts (`lockout`), reads (`read`) and the
//! checks they share (`check`); [`Catalog::apply`] dispatches to them.

mod category;
mod check;
mod deposit;
mod export;
mod lockout;
mod outlet;
mod product;
mod provider;
mod read;
mod seller;
mod settle;
mod tokens;
mod words;
pub use export::CatalogLink;
pub use lockout::*;
pub use read::*;
pub use settle::*;
pub use tokens::*;

use crate::error::{ErrorCode, Rejection};
use crate::ids::{CategoryId, OutletId, PosId, ProductId, ProviderId, SellerId, VerifierId};
use crate::ledger::Ledger;
use crate::money::{Bps, Fen};
use crate::validity::Validity;
use crate::RequestId;
use check::{fingerprint, reject};
use jiff::tz::TimeZone;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

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
pub const PLATFORM_PROVIDER: ProviderId = ProviderId(0);
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
    Seller(SellerId),
    /// A code provider account (码商).
    Provider(ProviderId),
    /// The platform's own scheduler (periodic ticks).
    System,
    /// A verifier account (核销账号) of a seller.
    Verifier(VerifierId),
    /// A POS device, by POS id.
    Device(PosId),
    /// The platform front end, acting for buyers (issues paid orders).
    FrontEnd,
    /// The payment system: confirms or fails payouts (MON-7).
    PaymentSystem,
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
    /// Approved: a deposit-freeze notice for `amount` awaits the seller.
    FreezeNotice {
        /// The category's deposit amount.
        amount: Fen,
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
    Payment(SellerId),
    /// A seller's voucher deposit for a category (ONB-4).
    Deposit(SellerId, CategoryId),
    /// A group-buying operator's group-buying deposit (ONB-5).
    GroupBuyingDeposit(SellerId),
    /// Money the voucher shards handed to settlement (mirrors their
    /// `settlement` accounts, so it goes negative).
    FromShards,
    /// Earned by a seller, not yet settled (MON-4 `seller_payable`).
    Payable(SellerId),
    /// A seller's payouts sent, not yet confirmed (MON-4, MON-7).
    PayoutInTransit(SellerId),
    /// After-sale refunds to buyers taken back from sellers, in transit
    /// (MON-4 `refund_in_transit`, MON-7).
    RefundsInTransit,
    /// What a seller owes back (MON-4 `seller_receivable`): its balance is
    /// minus the amount owed, netted from its next settlements (SET-3).
    Receivable(SellerId),
    /// Taken-back refunds the payment system failed: owed to the buyers
    /// until retried (MON-7).
    RefundsFailed,
}

impl crate::ledger::Account for Account {
    /// Only money outside the platform, and its mirror of the shards'
    /// money, may be negative.
    fn may_go_negative(&self) -> bool {
        matches!(
            self,
            Account::External | Account::FromShards | Account::Receivable(_)
        )
    }
}

pub use export::Entry;

/// A product to publish (PUB-1..PUB-8).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductSpec {
    /// Product id.
    pub id: ProductId,
    /// Category (PUB-1).
    pub category: CategoryId,
    /// Delivery (PUB-2).
    pub delivery: Delivery,
    /// Validity (PUB-3).
    pub validity: Validity,
    /// Code provider (PUB-4); None only for self-issuing sellers.
    pub provider: Option<ProviderId>,
    /// Outlets where the voucher can be redeemed (PUB-5), at least one.
    pub outlets: Vec<OutletId>,
    /// Pay-on-redemption ticked, or T+3 (PUB-6).
    pub settlement: Settlement,
    /// Expiry refund ratio, when expiry refund is ticked (PUB-7).
    pub expiry_refund_ratio: Option<Bps>,
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
        id: CategoryId,
        /// Parent node (must exist), None for a root.
        parent: Option<CategoryId>,
        /// Name.
        name: String,
        /// Whether vouchers may be published in it.
        supports_vouchers: bool,
        /// T+N deposit amount, ≥ 0 (ONB-4).
        deposit: Fen,
        /// Minimum expiry refund ratio, when the category sets one (PUB-7).
        min_expiry_refund_ratio: Option<Bps>,
        /// Whether unexpired automatic refunds apply (REF-1).
        supports_auto_refund: bool,
    },
    /// Staff: open a seller account, starting the ONB-2 application.
    CreateSeller {
        /// Seller id.
        id: SellerId,
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
        categories: Vec<CategoryId>,
    },
    /// Staff: grant a seller publish permission in a category (ONB-1).
    GrantPublishPermission {
        /// Seller.
        seller: SellerId,
        /// Category.
        category: CategoryId,
    },
    /// Seller: fund its payment account from outside.
    TopUp {
        /// Amount, > 0, at most [`crate::money::AMOUNT_FEN_MAX`].
        amount: Fen,
    },
    /// Seller: apply for T+N in a category (ONB-4).
    ApplyTPlusN {
        /// Category.
        category: CategoryId,
    },
    /// Staff: approve (freeze notice) or reject a T+N application (ONB-4).
    DecideTPlusN {
        /// Seller.
        seller: SellerId,
        /// Category.
        category: CategoryId,
        /// Approve or reject.
        approve: bool,
    },
    /// Seller: confirm the freeze notice; the deposit is frozen (ONB-4).
    ConfirmDepositFreeze {
        /// Category.
        category: CategoryId,
    },
    /// Staff: take money from a deposit (e.g. an after-sale refund, REF-5).
    DeductDeposit {
        /// Seller.
        seller: SellerId,
        /// Category.
        category: CategoryId,
        /// Amount, > 0, at most [`crate::money::AMOUNT_FEN_MAX`].
        amount: Fen,
    },
    /// Seller: move money from its payment account into a deposit.
    TopUpDeposit {
        /// Category.
        category: CategoryId,
        /// Amount, > 0, at most [`crate::money::AMOUNT_FEN_MAX`].
        amount: Fen,
    },
    /// Seller (group-buying operator): fund the group-buying deposit (ONB-5).
    FundGroupBuyingDeposit {
        /// Amount, > 0, at most [`crate::money::AMOUNT_FEN_MAX`].
        amount: Fen,
    },
    /// Staff: register a code provider (PRV).
    RegisterProvider {
        /// Provider id.
        id: ProviderId,
        /// Name.
        name: String,
        /// Code length this provider issues, 6..=11.
        code_digits: u8,
    },
    /// Provider: import its relationship with an onboarded seller (PRV-1).
    LinkSeller {
        /// Seller.
        seller: SellerId,
    },
    /// Seller: add an outlet (PUB-5).
    AddOutlet {
        /// Outlet id.
        id: OutletId,
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
        id: VerifierId,
        /// Real-name verified.
        real_name: bool,
        /// Parent account for a sub-account.
        parent: Option<VerifierId>,
        /// Outlets it may redeem at (the seller's own).
        outlets: Vec<OutletId>,
    },
    /// Provider: register a POS device at a linked seller's outlet (PRV-3).
    RegisterDevice {
        /// POS id.
        pos_id: PosId,
        /// Outlet.
        outlet: OutletId,
        /// Check method.
        check_method: CheckMethod,
    },
    /// Seller: publish a product (PUB-1..PUB-8; PUB-9: the same command is
    /// the publishing API).
    PublishProduct(ProductSpec),
    /// Seller: take its product off the shelf.
    DelistProduct {
        /// Product.
        id: ProductId,
    },
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
    /// Staff: lift the lockout of `key` at once.
    LiftLockout {
        /// What to let in again.
        key: LockKey,
    },
    /// Staff: run settlement for a seller and a cutoff (SET-3): every
    /// payable line booked before `cutoff_ms` that no earlier run took
    /// goes into one payout in transit. The same seller and cutoff again
    /// returns the same settlement and moves nothing.
    RunSettlement {
        /// The seller.
        seller: SellerId,
        /// Cutoff, unix ms, not after now.
        cutoff_ms: i64,
    },
    /// Payment system: the payout of a settlement arrived (MON-7).
    ConfirmPayout {
        /// Settlement id.
        settlement: u64,
    },
    /// Payment system: the payout of a settlement failed; its money and
    /// lines go back to the seller's next run (MON-7).
    FailPayout {
        /// Settlement id.
        settlement: u64,
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
            LiftLockout { .. } | RunSettlement { .. } => actor == Actor::Staff,
            ConfirmPayout { .. } | FailPayout { .. } => actor == Actor::PaymentSystem,
        }
    }
}

/// What the server itself gives the catalog: its time input and the
/// lockouts its failure counters trip. Never a client command and never on
/// the wire; logged and replayed like commands.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SystemInput {
    /// Delist products whose validity end has passed (PUB-3) and drop
    /// ended lockouts.
    Tick,
    /// Lock `key` out until `until_ms` after `failures` failed code
    /// attempts (issue 7). Errors: `bad_request` when `until_ms` is not
    /// after now.
    LockOut {
        /// What is locked out.
        key: LockKey,
        /// End of the lockout, unix ms (exclusive).
        until_ms: i64,
        /// Failures counted in the window.
        failures: u32,
    },
    /// The daily settlement run (SET-3) for every seller with payable
    /// lines booked before `cutoff_ms`; a cutoff at or before the last
    /// daily one changes nothing. Errors: `bad_request` when `cutoff_ms`
    /// is after now.
    Settle {
        /// Cutoff, unix ms.
        cutoff_ms: i64,
    },
}

/// Something staff or other layers must act on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CatalogEvent {
    /// Approval of T+N created a deposit-freeze notice (ONB-4).
    FreezeNotice {
        /// Seller.
        seller: SellerId,
        /// Category.
        category: CategoryId,
        /// The deposit amount.
        amount: Fen,
    },
    /// A deposit fell below the required amount: demand a top-up (ONB-6).
    DepositShort {
        /// Seller.
        seller: SellerId,
        /// Category.
        category: CategoryId,
        /// Balance now.
        balance: Fen,
        /// Required.
        required: Fen,
    },
    /// A product was delisted because its validity ended (PUB-3).
    ProductDelisted {
        /// Product.
        product: ProductId,
    },
    /// A fact every voucher shard needs for ORD-7's redemption checks.
    Fact(crate::message::CatalogFact),
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
    /// An account balance after the movement.
    Balance(Fen),
    /// Products delisted by a tick.
    Ticked {
        /// Products delisted because their validity ended (PUB-3).
        delisted: Vec<ProductId>,
        /// Lockouts whose cooling period had ended, dropped.
        lockouts_ended: u32,
    },
    /// The ids of the tokens revoked.
    TokensRevoked(Vec<u64>),
    /// A settlement and its payout (SET-3, MON-7).
    Settlement(SettlementView),
    /// The settlements a daily run created, by id.
    Settled(Vec<u64>),
}

/// A catalog command's reply.
pub type CatalogReply = Result<CatalogOutcome, Rejection>;

#[derive(Clone, Debug)]
struct Category {
    parent: Option<CategoryId>,
    name: String,
    supports_vouchers: bool,
    deposit: Fen,
    min_expiry_refund_ratio: Option<Bps>,
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
    categories_wanted: BTreeSet<CategoryId>,
    permitted: BTreeSet<CategoryId>,
    t_plus_n: BTreeMap<CategoryId, TPlusN>,
    short: BTreeSet<CategoryId>,
}

#[derive(Clone, Debug)]
struct Provider {
    name: String,
    /// Code length this provider issues (6..=11).
    code_digits: u8,
    /// Sellers that imported their relationship (PRV-1).
    sellers: BTreeSet<SellerId>,
}

#[derive(Clone, Debug)]
struct Outlet {
    seller: SellerId,
    name: String,
    address: String,
    latitude: Decimal,
    longitude: Decimal,
}

#[derive(Clone, Debug)]
struct Verifier {
    seller: SellerId,
    real_name: bool,
    parent: Option<VerifierId>,
    outlets: BTreeSet<OutletId>,
}

/// A registered POS (PRV-3).
#[derive(Clone, Debug)]
struct Device {
    provider: ProviderId,
    outlet: OutletId,
    check_method: CheckMethod,
}

#[derive(Clone, Debug)]
struct Product {
    seller: SellerId,
    spec: ProductSpec,
    code_digits: Option<u8>,
    listed: bool,
    /// First instant at which the validity has ended (fixed periods only).
    delist_at_ms: Option<i64>,
}

/// The catalog state machine; see the module docs.
pub struct Catalog {
    tz: TimeZone,
    categories: BTreeMap<CategoryId, Category>,
    sellers: BTreeMap<SellerId, Seller>,
    providers: BTreeMap<ProviderId, Provider>,
    outlets: BTreeMap<OutletId, Outlet>,
    verifiers: BTreeMap<VerifierId, Verifier>,
    devices: BTreeMap<PosId, Device>,
    products: BTreeMap<ProductId, Product>,
    ledger: Ledger<Account, CatalogLink>,
    done: BTreeMap<RequestId, (u64, CatalogReply)>,
    /// Active tokens: SHA-256 → principal.
    tokens: BTreeMap<[u8; 32], Actor>,
    /// Every token ever registered, revoked or not, by id (request-id
    /// source).
    token_records: BTreeMap<u64, TokenRecord>,
    /// Keys locked out after failed code attempts (issue 7).
    lockouts: BTreeMap<LockKey, LockoutView>,
    /// Per voucher shard, the latest message applied (exactly once).
    shard_marks: BTreeMap<u32, u64>,
    /// Every payable line, in booking order (SET-3).
    payables: Vec<PayableLine>,
    /// (seller, line) of the lines no settlement holds.
    open_payables: BTreeSet<(SellerId, u32)>,
    /// Settlements; id = position + 1.
    settlements: Vec<settle::SettlementRecord>,
    /// (seller, cutoff) → settlement id (SET-3's idempotency).
    settlement_keys: BTreeMap<(SellerId, i64), u64>,
    /// Cutoff of the latest daily run, unix ms.
    daily_cutoff_ms: i64,
    /// (seller, order, transfer) → the state of a buyer's refund transfer
    /// whose money the catalog holds (taken back, REF-5), as the shard's
    /// messages said: what the export shows for its entries (RPT-5).
    taken_back: BTreeMap<(SellerId, std::sync::Arc<str>, u16), crate::command::TransferState>,
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
            ledger: Ledger::new(),
            done: BTreeMap::new(),
            tokens: BTreeMap::new(),
            token_records: BTreeMap::new(),
            lockouts: BTreeMap::new(),
            shard_marks: BTreeMap::new(),
            payables: Vec::new(),
            open_payables: BTreeSet::new(),
            settlements: Vec::new(),
            settlement_keys: BTreeMap::new(),
            daily_cutoff_ms: i64::MIN,
            taken_back: BTreeMap::new(),
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
        if reply.is_ok() {
            self.done.insert(request_id, (fp, reply.clone()));
        }
        debug_assert_eq!(self.ledger.check(), Ok(()));
        reply
    }

    /// Applies an input of the server itself at `now_ms`; events go to
    /// `events`. No request id: a tick changes nothing when run again, and
    /// a lockout replaces the key's earlier one.
    ///
    /// Errors: as [`SystemInput::LockOut`] documents.
    pub fn apply_system(
        &mut self,
        now_ms: i64,
        input: &SystemInput,
        events: &mut Vec<CatalogEvent>,
    ) -> CatalogReply {
        let reply = match input {
            SystemInput::Tick => self.tick(now_ms, events),
            SystemInput::LockOut {
                key,
                until_ms,
                failures,
            } => self.lock_out(now_ms, *key, *until_ms, *failures),
            SystemInput::Settle { cutoff_ms } => self.settle_daily(now_ms, *cutoff_ms),
        };
        debug_assert_eq!(self.ledger.check(), Ok(()));
        reply
    }

    /// Whether `request_id` was already applied: a command with it is a
    /// retry (original reply) or a conflict, and changes nothing.
    pub fn is_repeat(&self, request_id: &RequestId) -> bool {
        self.done.contains_key(request_id)
    }

    /// MON-5 for the catalog's ledger (see [`Ledger::check`]) and SET-3's
    /// books: payable and in-transit balances are explained by the
    /// payable lines and settlements.
    ///
    /// Errors: the first broken rule, in words.
    pub fn check_invariants(&self) -> Result<(), String> {
        self.ledger.check()?;
        self.check_settlement()
    }

    /// The principal a token hash authenticates, if it is registered.
    pub fn token_actor(&self, token_hash: &[u8; 32]) -> Option<Actor> {
        self.tokens.get(token_hash).copied()
    }

    /// The facts voucher shards need (ORD-7) for every product, verifier
    /// and POS in the catalog, as of now.
    pub fn facts(&self) -> Vec<crate::message::CatalogFact> {
        use crate::message::CatalogFact;
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

    /// Every registered token hash with its principal.
    pub fn tokens(&self) -> impl Iterator<Item = (&[u8; 32], &Actor)> {
        self.tokens.iter()
    }

    /// Balance of `account`.
    pub fn balance(&self, account: Account) -> Fen {
        self.ledger.balance(account)
    }

    /// The ledger's entries, in order.
    pub fn ledger(&self) -> &[Entry] {
        self.ledger.entries()
    }

    /// Whether product `id` is listed, as `actor` sees it through
    /// [`CatalogQuery::Product`]: None when it does not exist or `actor`
    /// may not see it (another seller's).
    pub fn product_listed(&self, actor: Actor, id: ProductId) -> Option<bool> {
        match self.read(actor, &CatalogQuery::Product { id }) {
            Ok(CatalogView::Products(p)) => p.first().map(|p| p.listed),
            _ => None,
        }
    }

    /// A seller's onboarding state and T+N state per category, for staff.
    pub fn seller_state(
        &self,
        seller: SellerId,
    ) -> Option<(Onboarding, BTreeMap<CategoryId, TPlusN>)> {
        self.sellers
            .get(&seller)
            .map(|s| (s.onboarding, s.t_plus_n.clone()))
    }

    /// Runs `command`, which the role matrix allowed for `actor`: one
    /// method per command, each in the file of its rule family, with `me_seller`
    /// or `me_provider` the actor's own id. One line per command (kept so by
    /// `rustfmt::skip`).
    #[rustfmt::skip]
    fn run(
        &mut self,
        now_ms: i64,
        actor: Actor,
        command: &CatalogCommand,
        events: &mut Vec<CatalogEvent>,
    ) -> CatalogReply {
        use CatalogCommand::*;
        // The role matrix lets only sellers run seller commands and only
        // providers run provider commands: the other kind's id is unused.
        let me_seller = match actor {
            Actor::Seller(id) => id,
            _ => SellerId(0),
        };
        let me_provider = match actor {
            Actor::Provider(id) => id,
            _ => ProviderId(0),
        };
        match command {
            PutCategory { id, parent, name, supports_vouchers, deposit, min_expiry_refund_ratio, supports_auto_refund } => {
                let node = Category {
                    parent: *parent,
                    name: name.clone(),
                    supports_vouchers: *supports_vouchers,
                    deposit: *deposit,
                    min_expiry_refund_ratio: *min_expiry_refund_ratio,
                    supports_auto_refund: *supports_auto_refund,
                };
                self.put_category(*id, node, events)
            }
            CreateSeller { id, kind, self_issuing, group_buying_operator } => self.create_seller(*id, *kind, *self_issuing, *group_buying_operator),
            AcceptAgreement => self.accept_agreement(me_seller),
            BindPaymentAccount { account, supports_freezing, accept_payment_agreement } => self.bind_payment_account(me_seller, account, *supports_freezing, *accept_payment_agreement),
            ConfirmOnboarding { service_phone, categories } => self.confirm_onboarding(me_seller, service_phone, categories),
            GrantPublishPermission { seller, category } => self.grant_publish_permission(*seller, *category),
            TopUp { amount } => self.top_up(now_ms, me_seller, *amount),
            ApplyTPlusN { category } => self.apply_t_plus_n(me_seller, *category),
            DecideTPlusN { seller, category, approve } => self.decide_t_plus_n(*seller, *category, *approve, events),
            ConfirmDepositFreeze { category } => self.confirm_deposit_freeze(now_ms, me_seller, *category, events),
            DeductDeposit { seller, category, amount } => self.deduct_deposit(now_ms, *seller, *category, *amount, events),
            TopUpDeposit { category, amount } => self.top_up_deposit(now_ms, me_seller, *category, *amount, events),
            FundGroupBuyingDeposit { amount } => self.fund_group_buying_deposit(now_ms, me_seller, *amount),
            RegisterProvider { id, name, code_digits } => self.register_provider(*id, name, *code_digits),
            LinkSeller { seller } => self.link_seller(me_provider, *seller),
            AddOutlet { id, name, address, latitude, longitude } => self.add_outlet(me_seller, *id, name, address, *latitude, *longitude),
            AddVerifier { id, real_name, parent, outlets } => self.add_verifier(me_seller, *id, *real_name, *parent, outlets, events),
            RegisterDevice { pos_id, outlet, check_method } => self.register_device(me_provider, *pos_id, *outlet, *check_method, events),
            PublishProduct(spec) => self.publish_product(now_ms, me_seller, spec, events),
            DelistProduct { id } => self.delist_product(me_seller, *id, events),
            IssueToken { token_hash, actor } => self.issue_token(now_ms, token_hash, *actor),
            RevokeToken { which } => self.revoke_tokens(now_ms, *which, events),
            LiftLockout { key } => self.lift_lockout(now_ms, *key),
            RunSettlement { seller, cutoff_ms } => self.run_settlement(now_ms, *seller, *cutoff_ms),
            ConfirmPayout { settlement } => self.decide_payout(now_ms, *settlement, true),
            FailPayout { settlement } => self.decide_payout(now_ms, *settlement, false),
        }
    }
}
