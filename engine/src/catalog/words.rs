//! How catalog values read in messages and in the CLI's text output: the
//! glossary's words (DOMAIN.md), never Rust `Debug` text (issue 8).

use super::*;
use std::fmt;

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::Staff => write!(f, "staff"),
            Actor::System => write!(f, "the system"),
            Actor::FrontEnd => write!(f, "the front end"),
            Actor::PaymentSystem => write!(f, "the payment system"),
            Actor::Seller(id) => write!(f, "seller {id}"),
            Actor::Provider(id) => write!(f, "code provider {id}"),
            Actor::Verifier(id) => write!(f, "verifier {id}"),
            Actor::Device(id) => write!(f, "POS {id}"),
        }
    }
}

impl fmt::Display for SellerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SellerKind::Mall => "mall seller",
            SellerKind::Marketplace => "marketplace seller",
        })
    }
}

impl fmt::Display for Onboarding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Onboarding::Applied => "applied (the platform agreement is next)",
            Onboarding::AgreementAccepted => "agreement accepted (a payment account is next)",
            Onboarding::PaymentBound => "payment account bound (confirmation is next)",
            Onboarding::Enabled => "enabled",
        })
    }
}

impl fmt::Display for TPlusN {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TPlusN::Applied => write!(f, "applied, waiting for staff"),
            TPlusN::Rejected => write!(f, "rejected"),
            TPlusN::FreezeNotice { amount } => {
                write!(
                    f,
                    "approved, a deposit freeze of {amount} yuan awaits the seller"
                )
            }
            TPlusN::Enabled => write!(f, "enabled"),
        }
    }
}

impl fmt::Display for CheckMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CheckMethod::Code => "checks code and phone digits",
            CheckMethod::QrCode => "scans QR codes",
            CheckMethod::IdCard => "checks ID cards",
        })
    }
}

impl fmt::Display for Settlement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Settlement::PayOnRedemption => "pay-on-redemption",
            Settlement::TPlus3 => "T+3",
        })
    }
}

impl fmt::Display for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Account::External => write!(f, "outside the platform"),
            Account::Payment(s) => write!(f, "the payment account of seller {s}"),
            Account::Deposit(s, c) => write!(f, "the deposit of seller {s} for category {c}"),
            Account::GroupBuyingDeposit(s) => write!(f, "the group-buying deposit of seller {s}"),
            Account::FromShards => write!(f, "money the voucher shards handed to settlement"),
            Account::Payable(s) => write!(f, "the payable account of seller {s}"),
            Account::PayoutInTransit(s) => write!(f, "the payouts in transit to seller {s}"),
            Account::RefundsInTransit => write!(f, "after-sale refunds in transit to buyers"),
            Account::Receivable(s) => write!(f, "what seller {s} owes back"),
            Account::RefundsFailed => write!(f, "taken-back refunds failed, owed to buyers"),
        }
    }
}

impl fmt::Display for CatalogEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CatalogEvent::FreezeNotice {
                seller,
                category,
                amount,
            } => write!(
                f,
                "T+N approved: seller {seller} must freeze a deposit of {amount} yuan for category {category}"
            ),
            CatalogEvent::DepositShort {
                seller,
                category,
                balance,
                required,
            } => write!(
                f,
                "the deposit of seller {seller} for category {category} is short: {balance} of {required} yuan"
            ),
            CatalogEvent::ProductDelisted { product } => {
                write!(f, "product {product} delisted: its validity ended")
            }
            CatalogEvent::Fact(_) => write!(f, "a redemption check changed for the shards"),
            CatalogEvent::TokenRevoked { id, principal, .. } => {
                write!(f, "token {id} of {principal} revoked")
            }
        }
    }
}

impl CatalogOutcome {
    /// The outcome's stable name in JSON: `done`, `onboarding`, `t_plus_n`,
    /// `balance`, `ticked`, `tokens_revoked`, `settlement` or `settled`.
    pub fn name(&self) -> &'static str {
        match self {
            CatalogOutcome::Done => "done",
            CatalogOutcome::Onboarding(_) => "onboarding",
            CatalogOutcome::TPlusN(_) => "t_plus_n",
            CatalogOutcome::Balance(_) => "balance",
            CatalogOutcome::Ticked { .. } => "ticked",
            CatalogOutcome::TokensRevoked(_) => "tokens_revoked",
            CatalogOutcome::Settlement(_) => "settlement",
            CatalogOutcome::Settled(_) => "settled",
        }
    }
}

impl fmt::Display for CatalogOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CatalogOutcome::Done => write!(f, "done"),
            CatalogOutcome::Onboarding(step) => write!(f, "done; onboarding now {step}"),
            CatalogOutcome::TPlusN(t) => write!(f, "done; T+N now {t}"),
            CatalogOutcome::Balance(b) => write!(f, "done; balance {b} yuan"),
            CatalogOutcome::Ticked {
                delisted,
                lockouts_ended,
            } => {
                write!(f, "done; {} products delisted", delisted.len())?;
                if !delisted.is_empty() {
                    let ids: Vec<String> = delisted.iter().map(|id| id.to_string()).collect();
                    write!(f, " ({})", ids.join(", "))?;
                }
                write!(f, "; {lockouts_ended} ended lockouts dropped")
            }
            CatalogOutcome::TokensRevoked(ids) => {
                let ids: Vec<String> = ids.iter().map(|id| id.to_string()).collect();
                let s = if ids.len() == 1 { "" } else { "s" };
                write!(f, "done; token{s} {} revoked", ids.join(", "))
            }
            CatalogOutcome::Settlement(s) => write!(
                f,
                "settlement {} of seller {}: {} yuan over {}, {} netted, payout of {} {}",
                s.id,
                s.seller,
                s.total,
                crate::words::count(u64::from(s.lines), "payable line", "payable lines"),
                s.netted,
                s.payout,
                s.state
            ),
            CatalogOutcome::Settled(ids) => write!(f, "done; {} settlements created", ids.len()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_name_principals_and_states_without_debug_text() {
        assert_eq!(Actor::Device(PosId(31)).to_string(), "POS 31");
        assert_eq!(
            Actor::Provider(ProviderId(7)).to_string(),
            "code provider 7"
        );
        assert_eq!(
            TPlusN::FreezeNotice {
                amount: crate::money::Fen::new(50000)
            }
            .to_string(),
            "approved, a deposit freeze of 500.00 yuan awaits the seller"
        );
        assert_eq!(
            Account::Deposit(SellerId(500), CategoryId(11)).to_string(),
            "the deposit of seller 500 for category 11"
        );
    }
}
