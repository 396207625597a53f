//! Typed entity ids: one newtype over `u64` per kind of entity, so that a
//! seller id cannot be passed where a product or outlet id is expected.
//!
//! Ids are chosen by the caller (staff, a seller, a code provider) when the
//! entity is created, and are unique per kind: seller 7 and product 7 are
//! unrelated. Each type is `#[serde(transparent)]`, so its JSON and postcard
//! encodings are those of the bare `u64` (the log layout, the wire protocol
//! and the CLI's JSON do not change); `Display` prints the bare number and
//! `FromStr` parses one (for command-line arguments).
//!
//! Request-id sources ([`crate::RequestId::source`]) and token ids are not
//! entity ids and stay `u64`.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Defines one id newtype with its `Display`, `FromStr` and `From<u64>`.
macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(pub u64);

        impl fmt::Display for $name {
            /// The bare number.
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl FromStr for $name {
            type Err = std::num::ParseIntError;

            /// A decimal `u64`.
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                s.parse().map($name)
            }
        }

        impl From<u64> for $name {
            fn from(id: u64) -> Self {
                $name(id)
            }
        }
    };
}

id_type!(
    /// A seller (商家): the account that publishes products, owns outlets
    /// and verifier accounts, and whose vouchers are issued.
    SellerId
);
id_type!(
    /// A product (商品) a seller published; vouchers are issued for it.
    ProductId
);
id_type!(
    /// An outlet (门店) of a seller, where vouchers are redeemed.
    OutletId
);
id_type!(
    /// A POS device (终端) a code provider registered at an outlet.
    PosId
);
id_type!(
    /// A verifier account (核销账号) of a seller. In a redemption, 0 means
    /// "the verifier of the credential used" (see `Redeem::verifier_id`).
    VerifierId
);
id_type!(
    /// A node of the category tree (类目).
    CategoryId
);
id_type!(
    /// A code provider (码商); 0 is the platform's own
    /// ([`crate::catalog::PLATFORM_PROVIDER`]).
    ProviderId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_read_and_encode_as_bare_numbers() {
        assert_eq!(SellerId(42).to_string(), "42");
        assert_eq!(format!("{:>4}", PosId(7)), "   7");
        assert_eq!("31".parse::<PosId>(), Ok(PosId(31)));
        assert!("-1".parse::<OutletId>().is_err());
        assert_eq!(ProductId::from(5), ProductId(5));
        assert_eq!(serde_json::to_string(&VerifierId(9)).unwrap(), "9");
        assert_eq!(
            postcard::to_allocvec(&CategoryId(300)).unwrap(),
            postcard::to_allocvec(&300u64).unwrap()
        );
    }
}
