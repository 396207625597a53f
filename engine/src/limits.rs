//! Every limit of the engine, named with its unit last (STYLE 3).

/// Shortest code, in digits (ORD-3).
pub const CODE_DIGITS_MIN: u8 = 6;
/// Longest code, in digits (ORD-3). 10^11 still fits a `u64` comfortably.
pub const CODE_DIGITS_MAX: u8 = 11;
/// Most units one voucher may carry. The real data's largest order line has
/// 2,880 units; 10,000 leaves room while keeping `u32` arithmetic far from
/// overflow when units are summed per shard.
pub const VOUCHER_UNITS_MAX: u32 = 10_000;
/// Longest order id, in bytes. Order ids are stored once per voucher.
pub const ORDER_ID_BYTES_MAX: usize = 64;
/// Shortest and longest buyer mobile number, in digits.
pub const MOBILE_DIGITS_MIN: usize = 5;
/// See [`MOBILE_DIGITS_MIN`]; 15 is the ITU E.164 maximum.
pub const MOBILE_DIGITS_MAX: usize = 15;
/// Largest unit price, fen (1,000,000.00 yuan). Keeps `units × price` far
/// inside `i64` fen.
pub const UNIT_PRICE_FEN_MAX: i64 = 100_000_000;
/// Longest validity expressed as days from issue (PUB-3): ten years.
pub const VALIDITY_DAYS_MAX: u16 = 3_650;
/// Live plus quarantined codes of one length may fill at most this fraction
/// (in parts per million) of that length's code space in a shard. 1 % means a
/// random guess of a well-formed code hits a live code once in 100 tries,
/// and then still needs the buyer's last four phone digits (1 in 10,000).
/// When a length is full, the code is lengthened by one digit; at 11 digits
/// issue is refused with `code_space_exhausted`. A data directory may be
/// created with a lower density (`EngineConfig::code_density_ppm`).
pub const CODE_DENSITY_PPM_MAX: u64 = 10_000;
/// Attempts to draw a free code of one length before lengthening. With the
/// density limit above, 64 misses in a row happen with probability < 1e-128.
pub const CODE_DRAW_ATTEMPTS_MAX: u32 = 64;
/// Shard counts allowed: a power of two up to 64, so that 10^6 (the smallest
/// code space) divides evenly and each shard's codes stay uniform.
pub const SHARDS_MAX: u32 = 64;
/// Vouchers or redemptions returned by one audit page.
pub const AUDIT_PAGE_ITEMS_MAX: u32 = 1_000;
/// Most reversals one voucher may have (issue 8: redeem-and-reverse loops
/// by one credential must not grow a voucher's history, the quarantine and
/// the log without bound). Its redemptions are then at most its units plus
/// this many, and its history at most twice that plus one event.
pub const VOUCHER_REVERSALS_MAX: u16 = 100;
/// Quarantined codes released per mutating command, bounding the work of one
/// `apply` call.
pub const QUARANTINE_RELEASE_PER_APPLY_MAX: usize = 16;
