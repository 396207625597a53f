//! Stable error codes. Numbers never change meaning once released; new
//! errors get new numbers. Engine errors are 1..=99, protocol errors 100..
//! (defined here too, so that every caller sees one table).

use serde::{Deserialize, Serialize};

/// A stable numeric error code with a snake_case name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[repr(u16)]
pub enum ErrorCode {
    /// A field is malformed or out of range (the message names it).
    BadRequest = 1,
    /// The code is unknown, replaced, expired, or the last four phone digits
    /// do not match — or, to a caller of another seller, any outcome of
    /// that seller's voucher (ORD-7). These look the same to the caller on purpose (ORD-7,
    /// DESIGN "code guessing"); the engine's rejection keeps the real reason.
    CodeInvalid = 2,
    /// Units to redeem must be at least 1 (ORD-7).
    UnitsInvalid = 3,
    /// More units asked than remain on the voucher (ORD-7).
    UnitsInsufficient = 4,
    /// The order id was already issued with different content (ORD-2).
    OrderConflict = 5,
    /// The request id was already used with different content (invariant 4).
    RequestConflict = 6,
    /// No free code is left at any allowed length (ORD-3 density limit).
    CodeSpaceExhausted = 7,
    /// The validity window is malformed or already over (PUB-3).
    ValidityInvalid = 8,
    /// The voucher's validity window has not started yet (PUB-3).
    NotYetValid = 9,
    /// No redemption with that request id exists on this voucher.
    RedemptionUnknown = 10,
    /// The reversal window of the redemption has closed (SET-1): from
    /// `at + window` on, its money is the seller's.
    ReversalWindowClosed = 11,
    /// The redemption was already reversed (by another request id).
    AlreadyReversed = 12,
    /// Only the POS that redeemed, or the seller, may reverse.
    ReversalNotPermitted = 13,
    /// The seller holds no publish permission for the category (ONB-1, PUB-1).
    CategoryNotPermitted = 20,
    /// An onboarding step came out of the order of ONB-2.
    OnboardingStepOutOfOrder = 21,
    /// The payment account cannot freeze a deposit, or its agreement was not accepted (ONB-2).
    PaymentAccountCannotFreeze = 22,
    /// The category does not support vouchers (ONB-2, PUB-1).
    CategoryNotForVouchers = 23,
    /// The code provider has not imported its relationship with the seller (PUB-4, PRV-1).
    ProviderNotLinked = 24,
    /// A product of a seller that is not self-issuing needs a code provider (PUB-4).
    ProviderRequired = 25,
    /// T+3 settlement needs an approved, deposit-frozen T+N for the category (PUB-6, ONB-4).
    TPlusNNotEnabled = 26,
    /// The expiry refund ratio is below the category's minimum (PUB-7).
    RefundRatioBelowCategoryMinimum = 27,
    /// An expiry refund ratio must be above 0 and at most 100 % (PUB-7).
    RefundRatioInvalid = 28,
    /// The seller's deposit for the category is below the required amount (ONB-6).
    DepositShort = 29,
    /// The payment account's balance cannot cover the amount.
    InsufficientBalance = 30,
    /// The named entity (category, seller, provider, outlet, product …) does not exist or is not the caller's.
    NotFound = 31,
    /// An entity with that id already exists.
    AlreadyExists = 32,
    /// No T+N application or freeze notice in the state this step needs (ONB-4).
    TPlusNNotPending = 33,
    /// The seller has not completed onboarding (ONB-2, PRV-1).
    SellerNotOnboarded = 34,
    /// Only a group-buying operator may publish group-buying products (ONB-5).
    GroupBuyingNotAllowed = 35,
    /// The outlet is not one of the product's outlets (ORD-7, PUB-5); to
    /// another seller's callers it is `code_invalid`.
    OutletNotAllowed = 37,
    /// The verifier is not authorised for this outlet of the voucher's
    /// seller (ORD-7). Given only to staff and the voucher's own seller's
    /// callers; to another seller's it is `code_invalid`.
    VerifierNotAuthorized = 38,
    /// The POS is not registered for the voucher's seller at this outlet,
    /// or belongs to another code provider than the product's (ORD-7,
    /// PRV-3). Given only to staff and the voucher's own seller's callers;
    /// to another seller's it is `code_invalid`.
    DeviceNotRegistered = 39,
    /// A verifier account (or sub-account) must be real-name verified.
    VerifierNotRealName = 40,
    /// The catalog's product is another seller's or delisted: no voucher is
    /// issued for it (ORD-2, PUB-3).
    ProductNotForSale = 41,
    /// The settlement has no payout in transit: it paid nothing, or the
    /// payment system already confirmed or failed it (MON-7).
    PayoutNotInTransit = 42,
    /// The refund would pay the buyer 0.00 (its fee swallows it, or the
    /// amount is zero): nothing changes (REF).
    RefundAmountZero = 43,
    /// This refund kind is not open to the order now: another category's
    /// kind, delivered or redeemed already (REF-3), closed by a refund or
    /// the expiry, or its money already paid to the seller (REF).
    RefundNotAllowed = 44,
    /// A refund request of the order is open: its units are locked and a
    /// second request waits for the seller's decision (REF-2).
    RefundOpen = 45,
    /// The amount is above what is still refundable for the order (REF).
    RefundAboveRefundable = 46,
    /// The new validity end is not later than the current one, or the
    /// order's expiry was already handled (ORD-6).
    ValidityNotExtended = 47,
    /// The voucher was refunded: its codes no longer work (ORD-7; told only
    /// to its own seller's callers and staff, everyone else gets
    /// `code_invalid`).
    VoucherRefunded = 48,
    /// The payment system answered a refund transfer that is not in
    /// transit: it was confirmed, failed or retried already (MON-7).
    RefundNotInTransit = 49,
    /// A retry names a refund transfer that did not fail, or was retried
    /// already (MON-7).
    RefundNotFailed = 50,
    /// Staff asked to re-queue an outbox message that is not in the
    /// failed-task list (it is queued or was delivered, ORD-2).
    MessageNotFailed = 51,
    /// The client speaks a protocol version the server does not.
    UnsupportedVersion = 100,
    /// The handshake token is unknown, or a request came before the handshake.
    Unauthenticated = 101,
    /// A frame is malformed: bad header, unknown opcode or undecodable body.
    MalformedFrame = 102,
    /// A frame declares a body larger than `frame_bytes_max`.
    FrameTooLarge = 103,
    /// A batch frame holds more commands than `batch_commands_max`.
    BatchTooLarge = 104,
    /// The server is shutting down or its storage has failed.
    Unavailable = 105,
    /// The caller's role may not run this command.
    NotPermitted = 106,
    /// Too many failed code attempts (or logins) from this principal,
    /// outlet or peer address: every request of it is refused until the
    /// lockout ends (`retry_after_ms`) or staff lift it (issue 7).
    LockedOut = 107,
}

impl ErrorCode {
    /// The stable snake_case name, e.g. `code_invalid`.
    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::CodeInvalid => "code_invalid",
            ErrorCode::UnitsInvalid => "units_invalid",
            ErrorCode::UnitsInsufficient => "units_insufficient",
            ErrorCode::OrderConflict => "order_conflict",
            ErrorCode::RequestConflict => "request_conflict",
            ErrorCode::CodeSpaceExhausted => "code_space_exhausted",
            ErrorCode::ValidityInvalid => "validity_invalid",
            ErrorCode::NotYetValid => "not_yet_valid",
            ErrorCode::RedemptionUnknown => "redemption_unknown",
            ErrorCode::ReversalWindowClosed => "reversal_window_closed",
            ErrorCode::AlreadyReversed => "already_reversed",
            ErrorCode::ReversalNotPermitted => "reversal_not_permitted",
            ErrorCode::CategoryNotPermitted => "category_not_permitted",
            ErrorCode::OnboardingStepOutOfOrder => "onboarding_step_out_of_order",
            ErrorCode::PaymentAccountCannotFreeze => "payment_account_cannot_freeze",
            ErrorCode::CategoryNotForVouchers => "category_not_for_vouchers",
            ErrorCode::ProviderNotLinked => "provider_not_linked",
            ErrorCode::ProviderRequired => "provider_required",
            ErrorCode::TPlusNNotEnabled => "t_plus_n_not_enabled",
            ErrorCode::RefundRatioBelowCategoryMinimum => "refund_ratio_below_category_minimum",
            ErrorCode::RefundRatioInvalid => "refund_ratio_invalid",
            ErrorCode::DepositShort => "deposit_short",
            ErrorCode::InsufficientBalance => "insufficient_balance",
            ErrorCode::NotFound => "not_found",
            ErrorCode::AlreadyExists => "already_exists",
            ErrorCode::TPlusNNotPending => "t_plus_n_not_pending",
            ErrorCode::SellerNotOnboarded => "seller_not_onboarded",
            ErrorCode::GroupBuyingNotAllowed => "group_buying_not_allowed",
            ErrorCode::OutletNotAllowed => "outlet_not_allowed",
            ErrorCode::VerifierNotAuthorized => "verifier_not_authorized",
            ErrorCode::DeviceNotRegistered => "device_not_registered",
            ErrorCode::VerifierNotRealName => "verifier_not_real_name",
            ErrorCode::ProductNotForSale => "product_not_for_sale",
            ErrorCode::PayoutNotInTransit => "payout_not_in_transit",
            ErrorCode::RefundAmountZero => "refund_amount_zero",
            ErrorCode::RefundNotAllowed => "refund_not_allowed",
            ErrorCode::RefundOpen => "refund_open",
            ErrorCode::RefundAboveRefundable => "refund_above_refundable",
            ErrorCode::ValidityNotExtended => "validity_not_extended",
            ErrorCode::VoucherRefunded => "voucher_refunded",
            ErrorCode::RefundNotInTransit => "refund_not_in_transit",
            ErrorCode::RefundNotFailed => "refund_not_failed",
            ErrorCode::MessageNotFailed => "message_not_failed",
            ErrorCode::UnsupportedVersion => "unsupported_version",
            ErrorCode::Unauthenticated => "unauthenticated",
            ErrorCode::MalformedFrame => "malformed_frame",
            ErrorCode::FrameTooLarge => "frame_too_large",
            ErrorCode::BatchTooLarge => "batch_too_large",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::NotPermitted => "not_permitted",
            ErrorCode::LockedOut => "locked_out",
        }
    }

    /// The stable number.
    pub fn number(self) -> u16 {
        self as u16
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.name(), self.number())
    }
}

/// Why a `code_invalid` was given. Kept in the log and in tracing, never
/// sent to the caller (DESIGN "code guessing").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum InvalidCodeReason {
    /// No voucher ever had this code, or its quarantine ended.
    Unknown,
    /// The code was replaced after a partial redemption, or fully redeemed.
    Replaced,
    /// The voucher's validity window is over.
    Expired,
    /// The last four digits of the phone do not match.
    WrongPhoneDigits,
    /// Code and digits matched a voucher of another seller than the
    /// caller's (ORD-7: to that caller it does not exist).
    OtherSeller,
}

impl std::fmt::Display for InvalidCodeReason {
    /// Why, in words (shown to staff only).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            InvalidCodeReason::Unknown => {
                "no voucher has this code (never issued, or retired and out of quarantine)"
            }
            InvalidCodeReason::Replaced => {
                "the code was used up or replaced by a redemption (`vouch history CODE` shows its live code)"
            }
            InvalidCodeReason::Expired => "the voucher's validity has ended",
            InvalidCodeReason::WrongPhoneDigits => "the last four phone digits do not match",
            InvalidCodeReason::OtherSeller => "the voucher is another seller's",
        })
    }
}

/// A refused command: the stable code, a human message, and for
/// `code_invalid` the hidden reason.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    /// Stable error code.
    pub code: ErrorCode,
    /// Human-readable message; the hidden reason is added for staff only.
    pub message: String,
    /// Only for `code_invalid`; stripped before a reply leaves the server.
    #[serde(skip)]
    pub reason: Option<InvalidCodeReason>,
    /// Only for `locked_out`: ms until the lockout ends.
    pub retry_after_ms: Option<u64>,
}

impl Rejection {
    /// A rejection with a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Rejection {
            code,
            message: message.into(),
            reason: None,
            retry_after_ms: None,
        }
    }

    /// `locked_out` for `retry_after_ms` more ms (issue 7).
    pub fn locked_out(retry_after_ms: u64) -> Self {
        Rejection {
            retry_after_ms: Some(retry_after_ms),
            ..Rejection::new(
                ErrorCode::LockedOut,
                format!(
                    "locked out after too many failed code attempts; retry after {} s or ask staff to lift it",
                    retry_after_ms.div_ceil(1000)
                ),
            )
        }
    }

    /// The uniform `code_invalid` rejection with its hidden reason.
    pub fn code_invalid(reason: InvalidCodeReason) -> Self {
        Rejection {
            code: ErrorCode::CodeInvalid,
            message: "code not valid (check the code and the last four phone digits)".into(),
            reason: Some(reason),
            retry_after_ms: None,
        }
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for Rejection {}
