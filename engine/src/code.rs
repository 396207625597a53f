//! The voucher code: a 6–11 digit numeric string where leading zeros are
//! significant (`0012345` ≠ `012345` ≠ `12345`, DESIGN invariant 5).

use crate::limits::{CODE_DIGITS_MAX, CODE_DIGITS_MIN};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A code as (digit count, numeric value). Two codes are equal only when both
/// the length and the value are equal, so leading zeros are kept. Decoding
/// (serde) checks the same limits as [`Code::new`], so a peer cannot smuggle
/// in a 5- or 12-digit code.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "RawCode")]
pub struct Code {
    digits: u8,
    value: u64,
}

#[derive(Deserialize)]
struct RawCode {
    digits: u8,
    value: u64,
}

impl TryFrom<RawCode> for Code {
    type Error = String;

    fn try_from(raw: RawCode) -> Result<Code, String> {
        Code::new(raw.digits, raw.value)
            .ok_or_else(|| format!("not a code: {} digits, value {}", raw.digits, raw.value))
    }
}

/// Why a string is not a code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CodeParseError {
    /// Length outside 6..=11 digits (ORD-3).
    #[error("a code has 6 to 11 digits, got {0}")]
    Length(usize),
    /// A character that is not an ASCII digit.
    #[error("a code has only the digits 0-9")]
    NotDigit,
}

impl Code {
    /// A code of `digits` digits with numeric value `value`.
    ///
    /// Returns `None` when `digits` is outside 6..=11 or `value` does not fit
    /// in `digits` digits.
    pub fn new(digits: u8, value: u64) -> Option<Code> {
        if !(CODE_DIGITS_MIN..=CODE_DIGITS_MAX).contains(&digits) || value >= space(digits) {
            return None;
        }
        Some(Code { digits, value })
    }

    /// Number of digits, 6..=11.
    pub fn digits(self) -> u8 {
        self.digits
    }

    /// Numeric value, below 10^digits.
    pub fn value(self) -> u64 {
        self.value
    }
}

/// Size of the code space of one length: 10^digits.
pub fn space(digits: u8) -> u64 {
    10u64.pow(u32::from(digits))
}

impl FromStr for Code {
    type Err = CodeParseError;

    /// Parses exactly 6..=11 ASCII digits; errors: [`CodeParseError`].
    fn from_str(s: &str) -> Result<Code, CodeParseError> {
        let len = s.len();
        if !(usize::from(CODE_DIGITS_MIN)..=usize::from(CODE_DIGITS_MAX)).contains(&len) {
            // Report the length in characters when the input is not ASCII.
            if !s.is_ascii() {
                return Err(CodeParseError::NotDigit);
            }
            return Err(CodeParseError::Length(len));
        }
        let mut value = 0u64;
        for b in s.bytes() {
            if !b.is_ascii_digit() {
                return Err(CodeParseError::NotDigit);
            }
            value = value * 10 + u64::from(b - b'0');
        }
        // len is within 6..=11 here, so it fits a u8.
        Ok(Code {
            digits: len as u8,
            value,
        })
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:0width$}",
            self.value,
            width = usize::from(self.digits)
        )
    }
}

impl fmt::Debug for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Code({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ord_3_leading_zeros_are_significant_in_every_length() {
        for digits in 6u8..=11 {
            let s = format!("{:0width$}", 7, width = usize::from(digits));
            let code: Code = s.parse().unwrap();
            assert_eq!(code.digits(), digits);
            assert_eq!(code.value(), 7);
            assert_eq!(code.to_string(), s);
        }
        let a: Code = "0012345".parse().unwrap();
        let b: Code = "012345".parse().unwrap();
        assert_ne!(a, b);
        assert!("12345".parse::<Code>().is_err());
    }

    #[test]
    fn ord_3_eleven_digit_maximum_and_limits() {
        let max: Code = "99999999999".parse().unwrap();
        assert_eq!(max.value(), 99_999_999_999);
        assert_eq!(max.to_string(), "99999999999");
        assert_eq!("12345".parse::<Code>(), Err(CodeParseError::Length(5)));
        assert_eq!(
            "123456789012".parse::<Code>(),
            Err(CodeParseError::Length(12))
        );
        assert_eq!("12345a".parse::<Code>(), Err(CodeParseError::NotDigit));
        assert_eq!("-12345".parse::<Code>(), Err(CodeParseError::NotDigit));
        assert_eq!(" 123456".parse::<Code>(), Err(CodeParseError::NotDigit));
        assert!(Code::new(6, 1_000_000).is_none());
        assert!(Code::new(12, 1).is_none());
        assert!(Code::new(5, 1).is_none());
        assert_eq!(Code::new(6, 999_999).unwrap().to_string(), "999999");
    }

    #[test]
    fn ord_3_decoding_refuses_out_of_range_codes() {
        #[derive(Serialize)]
        struct Raw {
            digits: u8,
            value: u64,
        }
        let decode = |digits, value| {
            let bytes = postcard::to_allocvec(&Raw { digits, value }).unwrap();
            postcard::from_bytes::<Code>(&bytes)
        };
        assert!(decode(5, 12345).is_err());
        assert!(decode(12, 1).is_err());
        assert!(decode(6, 1_000_000).is_err());
        assert_eq!(decode(6, 42).unwrap().to_string(), "000042");
        assert_eq!(
            decode(11, 99_999_999_999).unwrap().to_string(),
            "99999999999"
        );
    }
}
