//! Catalog subcommands of the CLI (issue 3): `vouch category|seller|
//! provider|outlet|verifier|product …`. Each builds one catalog command and
//! the principal it runs for; the admin token acts for that principal, a
//! principal's own token must name itself.

use clap::{Args, Subcommand, ValueEnum};
use rust_decimal::Decimal;
use vouch_engine::catalog::{
    Actor, CatalogCommand as C, CheckMethod, Delivery, Id, ProductSpec, SellerKind, Settlement,
};
use vouch_engine::validity::Validity;

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
        id: Id,
        /// Parent category.
        #[arg(long)]
        parent: Option<Id>,
        /// Name.
        #[arg(long)]
        name: String,
        /// Vouchers may be published in it.
        #[arg(long)]
        supports_vouchers: bool,
        /// T+N deposit amount, yuan.
        #[arg(long, default_value = "0")]
        deposit: Decimal,
        /// Minimum expiry refund ratio (0 < r ≤ 1).
        #[arg(long)]
        min_expiry_refund_ratio: Option<Decimal>,
        /// Unexpired automatic refund applies (REF-1).
        #[arg(long)]
        auto_refund: bool,
    },
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
        id: Id,
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
        seller: Id,
    },
    /// Seller: bind a payment account (ONB-2 step 2).
    BindPayment {
        /// Seller id.
        #[arg(long)]
        seller: Id,
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
        seller: Id,
        /// Customer-service phone printed in every code SMS.
        #[arg(long)]
        service_phone: String,
        /// Categories wanted, comma separated.
        #[arg(long, value_delimiter = ',')]
        categories: Vec<Id>,
    },
    /// Staff: grant publish permission in a category (ONB-1).
    Grant {
        /// Seller id.
        #[arg(long)]
        seller: Id,
        /// Category id.
        #[arg(long)]
        category: Id,
    },
    /// Seller: fund the payment account, yuan.
    TopUp {
        /// Seller id.
        #[arg(long)]
        seller: Id,
        /// Yuan.
        #[arg(long)]
        amount: Decimal,
    },
    /// Seller: apply for T+N in a category (ONB-4).
    ApplyTPlusN {
        /// Seller id.
        #[arg(long)]
        seller: Id,
        /// Category id.
        #[arg(long)]
        category: Id,
    },
    /// Staff: approve or reject a T+N application (ONB-4).
    DecideTPlusN {
        /// Seller id.
        #[arg(long)]
        seller: Id,
        /// Category id.
        #[arg(long)]
        category: Id,
        /// Reject instead of approve.
        #[arg(long)]
        reject: bool,
    },
    /// Seller: confirm the deposit-freeze notice (ONB-4).
    ConfirmFreeze {
        /// Seller id.
        #[arg(long)]
        seller: Id,
        /// Category id.
        #[arg(long)]
        category: Id,
    },
    /// Seller: move money from the payment account into a deposit (ONB-6).
    TopUpDeposit {
        /// Seller id.
        #[arg(long)]
        seller: Id,
        /// Category id.
        #[arg(long)]
        category: Id,
        /// Yuan.
        #[arg(long)]
        amount: Decimal,
    },
}

/// `vouch provider …`: code providers (PRV).
#[derive(Subcommand)]
pub enum ProviderCmd {
    /// Staff: register a code provider.
    Register {
        /// Provider id.
        #[arg(long)]
        id: Id,
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
        provider: Id,
        /// Seller id.
        #[arg(long)]
        seller: Id,
    },
    /// Provider: register a POS device at a linked seller's outlet (PRV-3).
    Device {
        /// Provider id.
        #[arg(long)]
        provider: Id,
        /// POS id.
        #[arg(long)]
        pos_id: Id,
        /// Outlet id.
        #[arg(long)]
        outlet: Id,
        /// Check method.
        #[arg(long, value_enum, default_value = "code")]
        check_method: CheckArg,
    },
}

/// `vouch outlet …` and `vouch verifier …` (sellers).
#[derive(Subcommand)]
pub enum OutletCmd {
    /// Add an outlet (PUB-5).
    Add {
        /// Seller id.
        #[arg(long)]
        seller: Id,
        /// Outlet id.
        #[arg(long)]
        id: Id,
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
        seller: Id,
        /// Verifier id.
        #[arg(long)]
        id: Id,
        /// Real-name verified.
        #[arg(long)]
        real_name: bool,
        /// Parent account (for a sub-account).
        #[arg(long)]
        parent: Option<Id>,
        /// Outlets, comma separated.
        #[arg(long, value_delimiter = ',')]
        outlets: Vec<Id>,
    },
}

/// `vouch product …` (sellers; PUB-1..9).
#[derive(Subcommand)]
pub enum ProductCmd {
    /// Publish a product.
    Publish {
        /// Seller id.
        #[arg(long)]
        seller: Id,
        /// Product id.
        #[arg(long)]
        id: Id,
        /// Category (PUB-1).
        #[arg(long)]
        category: Id,
        /// Also deliverable by mail (PUB-2).
        #[arg(long)]
        mail: bool,
        /// Validity (PUB-3).
        #[command(flatten)]
        validity: ValidityArgs,
        /// Code provider (PUB-4); omit for self-issuing sellers.
        #[arg(long)]
        provider: Option<Id>,
        /// Outlets, comma separated (PUB-5).
        #[arg(long, value_delimiter = ',')]
        outlets: Vec<Id>,
        /// T+3 settlement instead of pay-on-redemption (PUB-6).
        #[arg(long)]
        t_plus_3: bool,
        /// Expiry refund ratio (PUB-7).
        #[arg(long)]
        expiry_refund_ratio: Option<Decimal>,
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
        seller: Id,
        /// Product id.
        #[arg(long)]
        id: Id,
    },
}

/// The command and the principal it runs for.
pub fn category(c: CategoryCmd) -> (Actor, C) {
    match c {
        CategoryCmd::Put {
            id,
            parent,
            name,
            supports_vouchers,
            deposit,
            min_expiry_refund_ratio,
            auto_refund,
        } => (
            Actor::Staff,
            C::PutCategory {
                id,
                parent,
                name,
                supports_vouchers,
                deposit,
                min_expiry_refund_ratio,
                supports_auto_refund: auto_refund,
            },
        ),
    }
}

/// The command and the principal it runs for.
pub fn seller(c: SellerCmd) -> (Actor, C) {
    use SellerCmd::*;
    match c {
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
    }
}

/// The command and the principal it runs for.
pub fn provider(c: ProviderCmd) -> (Actor, C) {
    match c {
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
    }
}

/// The command and the principal it runs for.
pub fn outlet(c: OutletCmd) -> (Actor, C) {
    match c {
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
    }
}

/// The command and the principal it runs for.
pub fn product(c: ProductCmd) -> (Actor, C) {
    match c {
        ProductCmd::Publish {
            seller,
            id,
            category,
            mail,
            validity,
            provider,
            outlets,
            t_plus_3,
            expiry_refund_ratio,
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
                expiry_refund_ratio,
                merchant_code,
                group_buying,
            };
            (Actor::Seller(seller), C::PublishProduct(spec))
        }
        ProductCmd::Delist { seller, id } => (Actor::Seller(seller), C::DelistProduct { id }),
    }
}
