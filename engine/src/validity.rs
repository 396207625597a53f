//! Validity windows in the platform time zone (PUB-3).
//!
//! End dates are inclusive to 23:59:59 local time: a window ending on date D
//! is represented by its exclusive end, the instant 00:00:00 of D + 1 day in
//! the platform zone. Time zone rules come from jiff's bundled database, so
//! the engine's answers do not depend on the host's zone files or `TZ`.

use crate::error::{ErrorCode, Rejection};
use crate::limits::VALIDITY_DAYS_MAX;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// The two validity modes of PUB-3 (Decision).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(rename_all = "snake_case")]
pub enum Validity {
    /// From `start` 00:00:00 to `end` 23:59:59, both local dates.
    Fixed {
        /// First valid date.
        start: Date,
        /// Last valid date (inclusive).
        end: Date,
    },
    /// From the issue instant to 23:59:59 of (issue date + `days`), local.
    /// Decision: 30 days from 2026-11-29 is valid through 2026-12-29.
    DaysFromIssue(u16),
}

/// Resolved window in unix milliseconds: valid while
/// `from_ms <= now < until_ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// First valid instant, unix ms.
    pub from_ms: i64,
    /// First expired instant, unix ms (exclusive end).
    pub until_ms: i64,
}

/// Start of `date` in `tz`, unix ms.
fn day_start_ms(date: Date, tz: &TimeZone) -> Result<i64, Rejection> {
    date.to_zoned(tz.clone())
        .map(|z| z.timestamp().as_millisecond())
        .map_err(|e| Rejection::new(ErrorCode::ValidityInvalid, format!("date {date}: {e}")))
}

fn exclusive_end_ms(end: Date, tz: &TimeZone) -> Result<i64, Rejection> {
    let next = end
        .tomorrow()
        .map_err(|e| Rejection::new(ErrorCode::ValidityInvalid, format!("end {end}: {e}")))?;
    day_start_ms(next, tz)
}

impl Validity {
    /// Resolves the window for a voucher issued at `issue_ms` (unix ms).
    ///
    /// Errors: `validity_invalid` when start > end, when `days` is 0 or above
    /// `VALIDITY_DAYS_MAX`, or when the window is already over at issue
    /// (a voucher is never born expired).
    pub fn resolve(&self, issue_ms: i64, tz: &TimeZone) -> Result<Window, Rejection> {
        let window = match *self {
            Validity::Fixed { start, end } => {
                if start > end {
                    return Err(Rejection::new(
                        ErrorCode::ValidityInvalid,
                        format!("validity start {start} is after end {end}"),
                    ));
                }
                Window {
                    from_ms: day_start_ms(start, tz)?,
                    until_ms: exclusive_end_ms(end, tz)?,
                }
            }
            Validity::DaysFromIssue(days) => {
                if days == 0 || days > VALIDITY_DAYS_MAX {
                    return Err(Rejection::new(
                        ErrorCode::ValidityInvalid,
                        format!("validity days must be 1..={VALIDITY_DAYS_MAX}, got {days}"),
                    ));
                }
                let issued = Timestamp::from_millisecond(issue_ms)
                    .map_err(|e| Rejection::new(ErrorCode::ValidityInvalid, e.to_string()))?
                    .to_zoned(tz.clone())
                    .date();
                let end = issued
                    .checked_add(jiff::Span::new().days(i64::from(days)))
                    .map_err(|e| Rejection::new(ErrorCode::ValidityInvalid, e.to_string()))?;
                Window {
                    from_ms: issue_ms,
                    until_ms: exclusive_end_ms(end, tz)?,
                }
            }
        };
        if window.until_ms <= issue_ms {
            return Err(Rejection::new(
                ErrorCode::ValidityInvalid,
                "validity window is already over",
            ));
        }
        Ok(window)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    fn shanghai() -> TimeZone {
        TimeZone::get("Asia/Shanghai").unwrap()
    }

    fn ms(s: &str) -> i64 {
        s.parse::<Timestamp>().unwrap().as_millisecond()
    }

    #[test]
    fn pub_3_end_date_inclusive_to_235959_in_platform_zone() {
        let v = Validity::Fixed {
            start: date(2026, 12, 1),
            end: date(2026, 12, 31),
        };
        let w = v.resolve(ms("2026-11-29T00:00:00Z"), &shanghai()).unwrap();
        // 2026-12-01 00:00 +08:00 is 2026-11-30 16:00 UTC.
        assert_eq!(w.from_ms, ms("2026-11-30T16:00:00Z"));
        // Exclusive end: 2027-01-01 00:00 +08:00 = 2026-12-31 16:00 UTC.
        assert_eq!(w.until_ms, ms("2026-12-31T16:00:00Z"));
        // 23:59:59 local on the end date is still inside the window.
        assert!(ms("2026-12-31T15:59:59Z") < w.until_ms);
    }

    #[test]
    fn pub_3_days_from_issue_counts_local_calendar_days() {
        // Issued 2026-11-29 23:30 local (15:30 UTC): 1 day → through 11-30.
        let issue = ms("2026-11-29T15:30:00Z");
        let w = Validity::DaysFromIssue(1)
            .resolve(issue, &shanghai())
            .unwrap();
        assert_eq!(w.from_ms, issue);
        assert_eq!(w.until_ms, ms("2026-11-30T16:00:00Z"));
        // The same instant in UTC terms is already 11-29 local... a zone
        // change changes the answer: UTC midnight would be 12-01T00:00Z.
        let utc = Validity::DaysFromIssue(1)
            .resolve(issue, &TimeZone::UTC)
            .unwrap();
        assert_eq!(utc.until_ms, ms("2026-12-01T00:00:00Z"));
    }

    #[test]
    fn pub_3_refuses_reversed_zero_and_already_over_windows() {
        let tz = shanghai();
        let now = ms("2026-11-29T00:00:00Z");
        let reversed = Validity::Fixed {
            start: date(2026, 12, 2),
            end: date(2026, 12, 1),
        };
        assert_eq!(
            reversed.resolve(now, &tz).unwrap_err().code,
            ErrorCode::ValidityInvalid
        );
        let zero = Validity::DaysFromIssue(0);
        assert_eq!(
            zero.resolve(now, &tz).unwrap_err().code,
            ErrorCode::ValidityInvalid
        );
        let too_long = Validity::DaysFromIssue(VALIDITY_DAYS_MAX + 1);
        assert_eq!(
            too_long.resolve(now, &tz).unwrap_err().code,
            ErrorCode::ValidityInvalid
        );
        let past = Validity::Fixed {
            start: date(2026, 11, 1),
            end: date(2026, 11, 28),
        };
        assert_eq!(
            past.resolve(now, &tz).unwrap_err().code,
            ErrorCode::ValidityInvalid
        );
        // Ending today (local 2026-11-29 08:00) is still fine.
        let today = Validity::Fixed {
            start: date(2026, 11, 1),
            end: date(2026, 11, 29),
        };
        assert!(today.resolve(now, &tz).is_ok());
    }
}
