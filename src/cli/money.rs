//! Amounts and ratios as a person types them (MON-1): yuan with at most two
//! decimals and percentages with at most two decimals, refused with a
//! clear message otherwise (`1e3`, `+5`, `-1`, `0.001`, `NaN`, empty).

use vouch_engine::{Bps, Fen};

/// An amount above zero: `12.5`, `12.50`, `100`.
pub fn parse_amount(s: &str) -> Result<Fen, String> {
    Fen::parse(s).map_err(|e| e.to_string())
}

/// A price or deposit amount, which may be 0.
pub fn parse_price(s: &str) -> Result<Fen, String> {
    Fen::parse_price(s).map_err(|e| e.to_string())
}

/// A ratio in percent, 0.01..=100 with at most 2 decimals, kept in basis
/// points (`85.5` → 8,550).
pub fn parse_percent(s: &str) -> Result<Bps, String> {
    let refuse = || format!("ratio {s:?} is not a percentage 0.01..=100 with at most 2 decimals");
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    let frac_ok = !s.contains('.') || (1..=2).contains(&frac.len());
    if whole.is_empty() || whole.len() > 3 || !digits(whole) || !digits(frac) || !frac_ok {
        return Err(refuse());
    }
    let percent: rust_decimal::Decimal = s.parse().map_err(|_| refuse())?;
    Bps::from_percent(percent).map_err(|_| refuse())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// MON-1: what a person may type, and what is refused.
    #[test]
    fn mon_1_cli_amounts_and_percentages_are_strict() {
        assert_eq!(parse_amount("12.5"), Ok(Fen::new(1250)));
        assert_eq!(parse_price("0"), Ok(Fen::ZERO));
        for bad in ["1e3", "+5", "-1", "0.001", "NaN", "", "0"] {
            assert!(parse_amount(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_percent("85.5").map(Bps::get), Ok(8_550));
        assert_eq!(parse_percent("100").map(Bps::get), Ok(10_000));
        for bad in [
            "0",
            "100.01",
            "0.001",
            "-5",
            "+5",
            "1e2",
            "",
            "NaN",
            "50%",
            "99.999999999999999999999999999",
            "85.500000000000000000000000001",
            "7922816251426433759354395034",
            "1.",
        ] {
            assert!(parse_percent(bad).is_err(), "{bad:?}");
        }
    }
}
