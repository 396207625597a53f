//! Messages between the engine's state machines: logged, never on the wire.
//!
//! The catalog owns products, verifiers and devices; voucher shards need a
//! copy of the few facts ORD-7 checks at redemption. A fact travels from the
//! catalog's log record to each shard's next log record, so replaying the
//! log in order rebuilds every shard exactly.

use crate::ids::{CategoryId, OutletId, PosId, ProductId, ProviderId, SellerId, VerifierId};
use crate::money::Bps;
use crate::validity::Validity;
use serde::{Deserialize, Serialize};

/// The SMS gateway accepted a message carrying a code to the buyer of
/// `order_id` (ORD-2): the order is `issued` (delivered), and REF-3's
/// not-delivered refund is no longer possible. The server's outbox sends it
/// to the order's shard; the shard logs it when it changed state
/// ([`crate::log::ShardInput::Delivered`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CodeDelivered {
    /// The order.
    pub order_id: String,
    /// The message's number in the shard (its outbox id's SEQ).
    pub message_seq: u64,
}

/// A catalog fact a voucher shard needs to check redemptions (ORD-7). The
/// catalog emits one when a product is published, a verifier added or a POS
/// registered; the server gives it to every shard once the catalog's record
/// is durable, and each shard logs it with its next batch
/// ([`crate::log::ShardInput::Fact`]), so the shards stay deterministic.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CatalogFact {
    /// A published product: its seller, outlets, code provider and code
    /// length, and whether it is listed. Sent again when it is delisted.
    Product {
        /// Product id.
        id: ProductId,
        /// Seller id.
        seller: SellerId,
        /// Outlets where its vouchers may be redeemed.
        outlets: Vec<OutletId>,
        /// Code length of its code provider (a provider setting, 6..=11);
        /// None for a self-issuing seller's product.
        code_digits: Option<u8>,
        /// Its code provider; None for a self-issuing seller's product.
        provider: Option<ProviderId>,
        /// Its validity (PUB-3): every voucher of the product gets it.
        validity: Validity,
        /// On the shelf: vouchers are issued only for listed products.
        listed: bool,
        /// The money terms every voucher of the product is sold with.
        terms: ProductTerms,
    },
    /// A verifier account: its seller and authorised outlets.
    Verifier {
        /// Verifier id.
        id: VerifierId,
        /// Seller id.
        seller: SellerId,
        /// Outlets it may redeem at.
        outlets: Vec<OutletId>,
    },
    /// A registered POS: the seller and outlet it serves, and the code
    /// provider that registered it.
    Device {
        /// POS id.
        pos_id: PosId,
        /// Seller id (the outlet's owner).
        seller: SellerId,
        /// Outlet.
        outlet: OutletId,
        /// The registering code provider.
        provider: ProviderId,
    },
}

/// Money a voucher shard hands to the catalog's settlement (SET-1, SET-3):
/// what became payable to a seller at one tick, summed per seller and
/// reason. The shard logs the movement (its `Settlement` account) in its
/// own record; the message goes to the catalog once that record is durable
/// and is logged there again when applied. `seq` numbers each shard's
/// messages from 1 without gaps: the catalog applies message `seq` only
/// after `seq − 1` and ignores one it already applied, so a message is
/// applied exactly once however often it is sent — after a crash between
/// the two records, recovery sends again every message above the catalog's
/// mark ([`crate::catalog::Catalog::shard_mark`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ShardMessage {
    /// The sending shard.
    pub shard: u32,
    /// Its number among the shard's messages, from 1.
    pub seq: u64,
    /// When the shard applied it, unix ms.
    pub at_ms: i64,
    /// What it carries.
    pub body: ShardMessageBody,
}

/// What a [`ShardMessage`] carries.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ShardMessageBody {
    /// `amount` fen became payable to `seller` for `reason` over `entries`
    /// shard ledger entries (e.g. 40 redemptions whose reversal window
    /// ended in one tick). `amount` > 0.
    Payable {
        /// The seller.
        seller: SellerId,
        /// Why (e.g. `window_ended`).
        reason: crate::ledger::Reason,
        /// Sum of the entries, fen.
        amount: crate::money::Fen,
        /// How many shard ledger entries it sums, ≥ 1.
        entries: u32,
    },
    /// REF-5: the seller confirmed an after-sale refund of `amount` for
    /// order `order_id`; the catalog pays the buyer from the deposit that
    /// guarantees the order (the category's, or the group-buying one) and
    /// books what it cannot cover as the seller's receivable.
    TakeBack {
        /// The seller.
        seller: SellerId,
        /// The order's category (its voucher deposit, ONB-4).
        category: CategoryId,
        /// A group-buying order (its group-buying deposit, ONB-5).
        group_buying: bool,
        /// Fen to the buyer, > 0.
        amount: crate::money::Fen,
        /// The order.
        order_id: String,
    },
    /// MON-7: the payment system answered, or a retry re-sent, a refund
    /// transfer whose money the catalog holds (taken back from `seller`
    /// for order `order_id`): `reason` `refund_confirmed` moves `amount`
    /// from refunds in transit to outside the platform, `refund_failed`
    /// to refunds failed, `refund_retried` from refunds failed back into
    /// transit.
    Transfer {
        /// The order's seller.
        seller: SellerId,
        /// The order.
        order_id: String,
        /// `refund_confirmed`, `refund_failed` or `refund_retried`.
        reason: crate::ledger::Reason,
        /// Fen, > 0.
        amount: crate::money::Fen,
    },
    /// What this build sends instead of [`ShardMessageBody::TakeBack`]
    /// (which earlier builds logged, and recovery still reads): the same
    /// with the number of the buyer's refund transfer in the order's
    /// shard, so that the catalog's entries of it show that transfer's
    /// state in the export (RPT-5).
    TakeBackNumbered {
        /// The seller.
        seller: SellerId,
        /// The order's category (its voucher deposit, ONB-4).
        category: CategoryId,
        /// A group-buying order (its group-buying deposit, ONB-5).
        group_buying: bool,
        /// Fen to the buyer, > 0.
        amount: crate::money::Fen,
        /// The order.
        order_id: String,
        /// The buyer's refund transfer, numbered per order from 1.
        transfer: u16,
    },
    /// What this build sends instead of [`ShardMessageBody::Transfer`]
    /// (read for recovery of earlier logs): the same with the transfer's
    /// number — for `refund_retried` the new transfer's, with the failed
    /// one it retries.
    TransferNumbered {
        /// The order's seller.
        seller: SellerId,
        /// The order.
        order_id: String,
        /// `refund_confirmed`, `refund_failed` or `refund_retried`.
        reason: crate::ledger::Reason,
        /// Fen, > 0.
        amount: crate::money::Fen,
        /// The transfer answered, or the new one a retry sent.
        transfer: u16,
        /// For `refund_retried`: the failed transfer it retries.
        retry_of: Option<u16>,
    },
}

/// The money terms of a product that its vouchers keep from the moment
/// they are issued (PUB-6, PUB-7, ONB-5, REF-1..6): a later change of the
/// product does not change what a buyer already bought.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ProductTerms {
    /// T+3 settlement (SET-2) instead of pay-on-redemption (SET-1).
    pub t_plus_3: bool,
    /// Its category supports the unexpired automatic refund (REF-1);
    /// otherwise unexpired refunds are manual (REF-2).
    pub auto_refund: bool,
    /// The expiry refund ratio when expiry refund is ticked (PUB-7,
    /// REF-6); also REF-1's ratio (100 % when None).
    pub expiry_refund_ratio: Option<Bps>,
    /// Its category: the deposit that guarantees its orders (ONB-4).
    pub category: CategoryId,
    /// A group-buying product: the group-buying deposit guarantees it
    /// (ONB-5).
    pub group_buying: bool,
}

impl Default for ProductTerms {
    /// The terms of a voucher whose product the catalog does not know (a
    /// bare engine, the load tool): pay-on-redemption, automatic refund at
    /// 100 %, no expiry refund, category 0.
    fn default() -> Self {
        ProductTerms {
            t_plus_3: false,
            auto_refund: true,
            expiry_refund_ratio: None,
            category: CategoryId(0),
            group_buying: false,
        }
    }
}
