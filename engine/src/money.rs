//! Money (MON-1, MON-2): integer fen and basis-point ratios.
//!
//! Inside the engine every amount is a [`Fen`] (`i64` fen, 0.01 yuan) and
//! every ratio a [`Bps`] (basis points, 1..=10,000 = 100 %). Decimals
//! appear only at the edges: [`Fen::parse`] reads what a person types
//! (`12.5`, `12.50`), [`Fen::to_yuan`] and `Display` print exactly two
//! decimals. In human-readable formats (JSON) an amount is the yuan string
//! `"12.50"`; in the log and on the wire (postcard) it is the integer.

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// An amount of money in fen (MON-1). May be negative only as a balance;
/// amounts a person enters are positive (see [`Fen::parse`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Fen(i64);

/// Largest amount a person may enter or a price may be, fen: 1,000,000,000
/// yuan. Sums of many of them stay far inside `i64`.
pub const AMOUNT_FEN_MAX: i64 = 100_000_000_000;

/// Why an amount or ratio was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    /// Not a plain amount: digits, optionally `.` and one or two digits.
    #[error("amount {0:?} is not yuan with at most 2 decimals (e.g. 12.5 or 12.50)")]
    NotAnAmount(String),
    /// Zero, where an amount above zero is needed.
    #[error("amount must be above 0")]
    Zero,
    /// Above [`AMOUNT_FEN_MAX`].
    #[error("amount {0} is above the largest, 1000000000.00 yuan")]
    TooLarge(String),
    /// A ratio outside 1..=10,000 basis points (0.01 %..=100 %).
    #[error("ratio {0} is not between 0.01 % and 100 % with at most 2 decimals")]
    Ratio(String),
}

impl Fen {
    /// 0.00.
    pub const ZERO: Fen = Fen(0);
    /// 1.00 yuan: the code fee of automatic refunds.
    pub const YUAN: Fen = Fen(100);

    /// `fen` fen.
    pub const fn new(fen: i64) -> Fen {
        Fen(fen)
    }

    /// The amount in fen.
    pub const fn fen(self) -> i64 {
        self.0
    }

    /// Whether the amount is 0.00.
    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// Reads an amount a person typed, in yuan: one or more ASCII digits,
    /// optionally followed by `.` and one or two digits. Nothing else — no
    /// sign, exponent, spaces, `NaN`, or third decimal.
    ///
    /// Errors: [`MoneyError::NotAnAmount`], [`MoneyError::Zero`],
    /// [`MoneyError::TooLarge`].
    pub fn parse(text: &str) -> Result<Fen, MoneyError> {
        Fen::positive(parse_fen(text, AMOUNT_FEN_MAX)?)
    }

    /// [`Fen::parse`] for a price, which may be 0.00 (a free voucher).
    ///
    /// Errors: [`MoneyError::NotAnAmount`], [`MoneyError::TooLarge`].
    pub fn parse_price(text: &str) -> Result<Fen, MoneyError> {
        match Fen::parse(text) {
            Err(MoneyError::Zero) => Ok(Fen::ZERO),
            other => other,
        }
    }

    /// An amount above zero and at most [`AMOUNT_FEN_MAX`].
    ///
    /// Errors: [`MoneyError::Zero`] (or negative), [`MoneyError::TooLarge`].
    pub fn positive(fen: i64) -> Result<Fen, MoneyError> {
        if fen <= 0 {
            return Err(MoneyError::Zero);
        }
        if fen > AMOUNT_FEN_MAX {
            return Err(MoneyError::TooLarge(Fen(fen).to_string()));
        }
        Ok(Fen(fen))
    }

    /// An exact yuan decimal with at most 2 decimals, in fen.
    ///
    /// Errors: [`MoneyError::NotAnAmount`] for a third decimal or a value
    /// outside `i64` fen.
    pub fn from_yuan(yuan: Decimal) -> Result<Fen, MoneyError> {
        let fen = yuan
            .checked_mul(Decimal::ONE_HUNDRED)
            .ok_or_else(|| MoneyError::NotAnAmount(yuan.to_string()))?;
        if fen.fract() != Decimal::ZERO {
            return Err(MoneyError::NotAnAmount(yuan.to_string()));
        }
        i64::try_from(fen)
            .map(Fen)
            .map_err(|_| MoneyError::NotAnAmount(yuan.to_string()))
    }

    /// The amount in yuan with exactly 2 decimals (`5` fen → `0.05`).
    pub fn to_yuan(self) -> Decimal {
        Decimal::new(self.0, 2)
    }

    /// `self + other`; None on overflow.
    pub fn checked_add(self, other: Fen) -> Option<Fen> {
        self.0.checked_add(other.0).map(Fen)
    }

    /// `self − other`; None on overflow.
    pub fn checked_sub(self, other: Fen) -> Option<Fen> {
        self.0.checked_sub(other.0).map(Fen)
    }

    /// `self × n`, e.g. units × unit price; None on overflow.
    pub fn times(self, n: u32) -> Option<Fen> {
        self.0.checked_mul(i64::from(n)).map(Fen)
    }

    /// MON-2: `round(self × ratio / 10,000)`, half away from zero, computed
    /// in `i128` (never overflows: the result is at most `self`).
    pub fn share(self, ratio: Bps) -> Fen {
        let x = i128::from(self.0) * i128::from(ratio.0);
        let (q, r) = (x / 10_000, x % 10_000);
        let q = if r.abs() * 2 >= 10_000 {
            q + x.signum()
        } else {
            q
        };
        Fen(q as i64)
    }

    /// The smaller of two amounts.
    pub fn min(self, other: Fen) -> Fen {
        Fen(self.0.min(other.0))
    }
}

/// The fen of `text` (digits, optionally `.` and 1 or 2 digits), at most
/// `max`; leading zeros count for nothing.
fn parse_fen(text: &str, max: i64) -> Result<i64, MoneyError> {
    let cut = || text.chars().take(40).collect::<String>();
    let (whole, frac) = match text.split_once('.') {
        Some((w, f)) => (w, f),
        None => (text, ""),
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let frac_ok = !text.contains('.') || (1..=2).contains(&frac.len());
    if whole.is_empty() || !digits(whole) || !digits(frac) || !frac_ok {
        return Err(MoneyError::NotAnAmount(cut()));
    }
    let significant = whole.trim_start_matches('0');
    if significant.len() > 17 {
        return Err(MoneyError::TooLarge(cut()));
    }
    let whole: i64 = if significant.is_empty() {
        0
    } else {
        significant
            .parse()
            .map_err(|_| MoneyError::NotAnAmount(cut()))?
    };
    let frac: i64 = match frac.len() {
        0 => 0,
        1 => i64::from(frac.as_bytes()[0] - b'0') * 10,
        _ => frac.parse().map_err(|_| MoneyError::NotAnAmount(cut()))?,
    };
    whole
        .checked_mul(100)
        .and_then(|w| w.checked_add(frac))
        .filter(|fen| *fen <= max)
        .ok_or_else(|| MoneyError::TooLarge(cut()))
}

impl fmt::Display for Fen {
    /// Yuan with exactly two decimals: `1250` fen → `12.50`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        write!(f, "{sign}{}.{:02}", abs / 100, abs % 100)
    }
}

impl std::str::FromStr for Fen {
    type Err = MoneyError;
    /// [`Fen::parse_price`]: yuan with at most 2 decimals, 0 allowed.
    fn from_str(s: &str) -> Result<Fen, MoneyError> {
        Fen::parse_price(s)
    }
}

impl std::ops::Add for Fen {
    type Output = Fen;
    /// Panics on overflow (amounts are bounded far below it).
    fn add(self, other: Fen) -> Fen {
        self.checked_add(other).expect("fen overflow")
    }
}

impl std::ops::Sub for Fen {
    type Output = Fen;
    /// Panics on overflow (amounts are bounded far below it).
    fn sub(self, other: Fen) -> Fen {
        self.checked_sub(other).expect("fen overflow")
    }
}

impl std::ops::AddAssign for Fen {
    fn add_assign(&mut self, other: Fen) {
        *self = *self + other;
    }
}

impl std::ops::SubAssign for Fen {
    fn sub_assign(&mut self, other: Fen) {
        *self = *self - other;
    }
}

impl std::iter::Sum for Fen {
    fn sum<I: Iterator<Item = Fen>>(iter: I) -> Fen {
        iter.fold(Fen::ZERO, |a, b| a + b)
    }
}

impl Serialize for Fen {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_str(self)
        } else {
            s.serialize_i64(self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Fen {
    /// Human-readable formats: the yuan string of [`Fen::parse`] (or `0.00`
    /// and negative balances as printed), or a whole number of yuan (JSON
    /// `500`); never a float. Binary: the integer fen.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Fen, D::Error> {
        if d.is_human_readable() {
            d.deserialize_any(YuanVisitor)
        } else {
            i64::deserialize(d).map(Fen)
        }
    }
}

/// Reads yuan from a string or a whole number (see `Deserialize for Fen`).
struct YuanVisitor;

impl serde::de::Visitor<'_> for YuanVisitor {
    type Value = Fen;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("yuan as a string with at most 2 decimals (\"12.50\") or a whole number")
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Fen, E> {
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        // Balances print beyond the input maximum: read back what prints.
        let fen = parse_fen(digits, i64::MAX).map_err(E::custom)?;
        Ok(Fen(if negative { -fen } else { fen }))
    }

    fn visit_i64<E: serde::de::Error>(self, yuan: i64) -> Result<Fen, E> {
        yuan.checked_mul(100)
            .filter(|f| f.abs() <= AMOUNT_FEN_MAX)
            .map(Fen)
            .ok_or_else(|| E::custom(MoneyError::TooLarge(yuan.to_string())))
    }

    fn visit_u64<E: serde::de::Error>(self, yuan: u64) -> Result<Fen, E> {
        let yuan =
            i64::try_from(yuan).map_err(|_| E::custom(MoneyError::TooLarge(yuan.to_string())))?;
        self.visit_i64(yuan)
    }
}

/// A ratio in basis points, 1..=10,000 (MON-1): 10,000 is 100 %.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u16", into = "u16")]
pub struct Bps(u16);

impl Bps {
    /// 100 %.
    pub const FULL: Bps = Bps(10_000);

    /// `bps` basis points.
    ///
    /// Errors: [`MoneyError::Ratio`] outside 1..=10,000.
    pub fn new(bps: u16) -> Result<Bps, MoneyError> {
        if (1..=10_000).contains(&bps) {
            Ok(Bps(bps))
        } else {
            Err(MoneyError::Ratio(format!("{bps} bps")))
        }
    }

    /// A percentage with at most 2 decimals (`85`, `99.5`, `0.01`),
    /// converted exactly.
    ///
    /// Errors: [`MoneyError::Ratio`] for a third decimal or outside
    /// 0.01..=100.
    pub fn from_percent(percent: Decimal) -> Result<Bps, MoneyError> {
        let Some(bps) = percent.checked_mul(Decimal::ONE_HUNDRED) else {
            return Err(MoneyError::Ratio(format!("{percent} %")));
        };
        let whole = u16::try_from(bps).ok().filter(|_| bps.fract().is_zero());
        whole
            .and_then(|b| Bps::new(b).ok())
            .ok_or_else(|| MoneyError::Ratio(format!("{percent} %")))
    }

    /// The ratio in basis points.
    pub fn get(self) -> u16 {
        self.0
    }

    /// The ratio as a percentage (`8550` → `85.50`).
    pub fn percent(self) -> Decimal {
        Decimal::new(i64::from(self.0), 2)
    }
}

impl TryFrom<u16> for Bps {
    type Error = MoneyError;
    fn try_from(bps: u16) -> Result<Bps, MoneyError> {
        Bps::new(bps)
    }
}

impl From<Bps> for u16 {
    fn from(b: Bps) -> u16 {
        b.0
    }
}

impl fmt::Display for Bps {
    /// As a percentage: `85.5 %`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} %", self.percent().normalize())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// MON-1: strict input; what is refused is named.
    #[test]
    fn mon_1_amount_input_is_exact_digits_with_at_most_two_decimals() {
        assert_eq!(Fen::parse("12.5"), Ok(Fen(1250)));
        assert_eq!(Fen::parse("12.50"), Ok(Fen(1250)));
        assert_eq!(Fen::parse("0.01"), Ok(Fen(1)));
        assert_eq!(Fen::parse("7"), Ok(Fen(700)));
        assert_eq!(Fen::parse("1000000000"), Ok(Fen(AMOUNT_FEN_MAX)));
        for bad in [
            "1e3", "+5", "-1", "0.001", "NaN", "", ".5", "5.", " 5", "5 ", "1,000", "٣",
        ] {
            assert!(
                matches!(Fen::parse(bad), Err(MoneyError::NotAnAmount(_))),
                "{bad:?}"
            );
        }
        assert_eq!(Fen::parse("0"), Err(MoneyError::Zero));
        assert_eq!(Fen::parse("0.00"), Err(MoneyError::Zero));
        assert_eq!(Fen::parse_price("0.00"), Ok(Fen::ZERO));
        assert!(Fen::parse_price("-0").is_err());
        assert!(matches!(
            Fen::parse("1000000000.01"),
            Err(MoneyError::TooLarge(_))
        ));
        assert!(matches!(
            Fen::parse("99999999999999999999"),
            Err(MoneyError::TooLarge(_))
        ));
        assert_eq!(Fen::parse("0000000000000.01"), Ok(Fen(1)));
        assert!(Fen::from_yuan(Decimal::MAX).is_err());
        assert!(Bps::from_percent(Decimal::MAX).is_err());
    }

    /// MON-1: two decimals out, the integer in binary, the yuan string in
    /// JSON.
    #[test]
    fn mon_1_amounts_print_with_two_decimals() {
        assert_eq!(Fen(5).to_string(), "0.05");
        assert_eq!(Fen(-1250).to_string(), "-12.50");
        assert_eq!(Fen(100).to_yuan().to_string(), "1.00");
        assert_eq!(serde_json::to_string(&Fen(1999)).unwrap(), "\"19.99\"");
        assert_eq!(serde_json::from_str::<Fen>("\"19.9\"").unwrap(), Fen(1990));
        assert_eq!(serde_json::from_str::<Fen>("\"-0.50\"").unwrap(), Fen(-50));
        for balance in [Fen(-100_000_000_001), Fen(i64::MAX), Fen(-i64::MAX)] {
            let json = serde_json::to_string(&balance).unwrap();
            assert_eq!(
                serde_json::from_str::<Fen>(&json).unwrap(),
                balance,
                "{json}"
            );
        }
        assert!(serde_json::from_str::<Fen>("\"1e3\"").is_err());
        assert_eq!(serde_json::from_str::<Fen>("500").unwrap(), Fen(50_000));
        assert!(
            serde_json::from_str::<Fen>("12.5").is_err(),
            "never a float"
        );
        assert!(serde_json::from_str::<Fen>("10000000000").is_err());
        assert_eq!(postcard::to_allocvec(&Fen(1999)).unwrap(), vec![0x9e, 0x1f]);
        assert_eq!(Fen::from_yuan(Decimal::new(1999, 2)), Ok(Fen(1999)));
        assert!(Fen::from_yuan(Decimal::new(19_999, 3)).is_err());
    }

    /// MON-2: one rounding, half away from zero, in i128.
    #[test]
    fn mon_2_a_share_rounds_half_away_from_zero() {
        let r = |bps| Bps::new(bps).unwrap();
        // 0.05 × 50 % = 0.025 → 0.03; 0.03 × 50 % = 0.015 → 0.02.
        assert_eq!(Fen(5).share(r(5_000)), Fen(3));
        assert_eq!(Fen(3).share(r(5_000)), Fen(2));
        // 0.01 × 49.99 % = 0.004999 → 0.00.
        assert_eq!(Fen(1).share(r(4_999)), Fen(0));
        assert_eq!(Fen(-5).share(r(5_000)), Fen(-3));
        assert_eq!(Fen(AMOUNT_FEN_MAX).share(Bps::FULL), Fen(AMOUNT_FEN_MAX));
        assert_eq!(
            Fen(i64::MAX).share(r(9_999)),
            Fen(9_222_449_699_651_090_329)
        );
        // 199.90 × 85 % = 169.915 → 169.92.
        assert_eq!(Fen(19_990).share(r(8_500)), Fen(16_992));
    }

    /// MON-1: ratios are 1..=10,000 basis points; percent input converts
    /// exactly.
    #[test]
    fn mon_1_ratios_are_basis_points() {
        assert_eq!(Bps::from_percent(Decimal::new(855, 1)), Ok(Bps(8_550)));
        assert_eq!(Bps::from_percent(Decimal::new(1, 2)), Ok(Bps(1)));
        assert_eq!(Bps::from_percent(Decimal::from(100)), Ok(Bps::FULL));
        for bad in [
            Decimal::ZERO,
            Decimal::new(1, 3),
            Decimal::new(10_001, 2),
            Decimal::from(-5),
        ] {
            assert!(Bps::from_percent(bad).is_err(), "{bad}");
        }
        assert!(Bps::new(0).is_err() && Bps::new(10_001).is_err());
        assert_eq!(Bps(8_550).to_string(), "85.5 %");
        assert!(serde_json::from_str::<Bps>("0").is_err());
    }
}
