//! Times as people read them (issue 8, DESIGN "Command-line contracts"):
//! instants in the platform time zone with their offset, RFC 3339 to the
//! second; validity windows as local dates with the last moment included.

use jiff::tz::TimeZone;
use jiff::Timestamp;

/// The platform time zone the CLI shows times in (`--time-zone`, the same
/// default as `vouch serve`: Asia/Shanghai).
#[derive(Clone)]
pub struct Zone {
    name: String,
    tz: TimeZone,
}

impl Zone {
    /// The zone named `name` (IANA, e.g. `Asia/Shanghai`).
    ///
    /// Errors: an unknown zone name, as a sentence.
    pub fn new(name: &str) -> Result<Zone, String> {
        let tz = TimeZone::get(name).map_err(|e| format!("time zone {name:?}: {e}"))?;
        Ok(Zone {
            name: name.to_string(),
            tz,
        })
    }

    /// `ms` (unix ms) as RFC 3339 in this zone, seconds precision, e.g.
    /// `2026-12-02T09:30:00+08:00`; the bare number if out of range.
    pub fn instant(&self, ms: i64) -> String {
        match Timestamp::from_millisecond(ms) {
            Ok(t) => t
                .to_zoned(self.tz.clone())
                .strftime("%Y-%m-%dT%H:%M:%S%:z")
                .to_string(),
            Err(_) => ms.to_string(),
        }
    }

    /// `ms` (unix ms) as RFC 3339 in this zone to the millisecond, e.g.
    /// `2026-12-02T09:30:00.125+08:00` (the export's instants, RPT-5); the
    /// bare number if out of range.
    pub fn instant_ms(&self, ms: i64) -> String {
        match Timestamp::from_millisecond(ms) {
            Ok(t) => t
                .to_zoned(self.tz.clone())
                .strftime("%Y-%m-%dT%H:%M:%S%.3f%:z")
                .to_string(),
            Err(_) => ms.to_string(),
        }
    }

    /// The first instant of local date `date` in this zone, unix ms.
    ///
    /// Errors: a date outside the calendar's range, as a sentence.
    pub fn start_of(&self, date: jiff::civil::Date) -> Result<i64, String> {
        date.to_zoned(self.tz.clone())
            .map(|z| z.timestamp().as_millisecond())
            .map_err(|e| format!("date {date}: {e}"))
    }

    /// The local date of `ms`, e.g. `2026-12-02`.
    fn date(&self, ms: i64) -> String {
        match Timestamp::from_millisecond(ms) {
            Ok(t) => t.to_zoned(self.tz.clone()).strftime("%Y-%m-%d").to_string(),
            Err(_) => ms.to_string(),
        }
    }

    /// The local time of day of `ms`, e.g. `23:59:59`.
    fn time_of_day(&self, ms: i64) -> String {
        match Timestamp::from_millisecond(ms) {
            Ok(t) => t.to_zoned(self.tz.clone()).strftime("%H:%M:%S").to_string(),
            Err(_) => ms.to_string(),
        }
    }

    /// The last second of a validity window ending (exclusive) at
    /// `until_ms`, as [`Zone::instant`]: `2027-01-01T23:59:59+08:00`.
    pub fn through(&self, until_ms: i64) -> String {
        self.instant(until_ms.saturating_sub(1_000))
    }

    /// A validity window `[from_ms, until_ms)` as local dates with the last
    /// second included: `valid 2026-12-02 – 2027-01-01 (Asia/Shanghai),
    /// through 23:59:59`.
    pub fn validity(&self, from_ms: i64, until_ms: i64) -> String {
        let last_ms = until_ms.saturating_sub(1_000).max(from_ms);
        format!(
            "valid {} – {} ({}), through {}",
            self.date(from_ms),
            self.date(last_ms),
            self.name,
            self.time_of_day(last_ms)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> i64 {
        s.parse::<Timestamp>().unwrap().as_millisecond()
    }

    #[test]
    fn ord_validity_reads_as_local_dates_through_the_last_second() {
        let z = Zone::new("Asia/Shanghai").unwrap();
        // Valid 2026-12-02 … 2027-01-01 in Shanghai: [12-01T16:00Z, 01-01T16:00Z).
        let (from, until) = (ms("2026-12-01T16:00:00Z"), ms("2027-01-01T16:00:00Z"));
        assert_eq!(
            z.validity(from, until),
            "valid 2026-12-02 – 2027-01-01 (Asia/Shanghai), through 23:59:59"
        );
        assert_eq!(z.instant(from), "2026-12-02T00:00:00+08:00");
        assert_eq!(z.through(until), "2027-01-01T23:59:59+08:00");
    }

    #[test]
    fn an_unknown_zone_is_a_sentence() {
        let e = Zone::new("Mars/Olympus").err().unwrap();
        assert!(e.contains("Mars/Olympus"), "{e}");
    }
}
