//! The replay's expiry (REF-6, SET-1 end). Some of the replay's products
//! have a short fixed validity, half of those with an expiry refund ratio.
//! After the money steps the server is restarted with its clock past their
//! end (a rehearsal clock, `vouch serve --rehearsal-clock-ahead-s`; the
//! command is the replay's `--restart`), its ticks expire their vouchers,
//! and the replay settles, confirms and audits the money again: every
//! expired order's buyer share as a refund in transit, the seller's share
//! payable and then paid out, the order `unavailable` because it expired.
//! This also checks recovery with money on the real data: every other
//! voucher and every earlier movement must be as before the restart.

use crate::money::{self, Books, Outputs};
use crate::runner::Pool;
use std::collections::{HashMap, HashSet};
use vouch_engine::validity::Validity;
use vouch_engine::{Bps, Fen, ProductId};

/// The expiry refund ratio of the short products that have one: 90 %.
pub const EXPIRY_REFUND_RATIO_BPS: u16 = 9_000;

/// The least the restarted server's clock must run ahead for the short
/// validity to have ended in any time zone: 3 days, ms (see
/// [`short_validity`]).
pub const CLOCK_AHEAD_MS_MIN: i64 = 3 * 86_400_000;

/// The longest the restart command may take, ms (recovery of a large
/// data directory included).
pub const RESTART_MS_MAX: u64 = 600_000;

/// What happens to a short product's unused units at expiry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AtExpiry {
    /// No expiry refund: all their money to the seller (SET-1).
    ToSeller,
    /// Expiry refund at this ratio (REF-6).
    Refund(Bps),
}

/// Whether product `id` (the data's own id) has the short validity, and
/// what its expiry does: one product in eight, half of them with expiry
/// refund. Deterministic, so the same data expire the same way each run.
pub fn short_product(id: ProductId) -> Option<AtExpiry> {
    let low = id.0 & 0xffff_ffff;
    let mix = low.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 59;
    match mix {
        0 | 1 => Some(AtExpiry::ToSeller),
        2 | 3 => Some(AtExpiry::Refund(
            Bps::new(EXPIRY_REFUND_RATIO_BPS).expect("a valid ratio"),
        )),
        _ => None,
    }
}

/// The short validity of a product published at `now_ms` (the server's
/// clock): from the day before to the day after today, UTC dates read as
/// the platform's local dates. Valid now whatever the platform zone (local
/// dates are within a day of UTC's), and over at the latest 2 days 12
/// hours later (the start of UTC today + 2 days in UTC−12), so a clock
/// [`CLOCK_AHEAD_MS_MIN`] ahead is past it.
pub fn short_validity(now_ms: i64) -> Validity {
    let today = jiff::Timestamp::from_millisecond(now_ms)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    Validity::Fixed {
        start: today.yesterday().unwrap_or(today),
        end: today.tomorrow().unwrap_or(today),
    }
}

/// The split of an expiry of `g` (REF-6), as the client works it out:
/// (buyer, code fee, the rest to the seller, to the seller without
/// expiry refund).
fn split(g: Fen, at: AtExpiry) -> (Fen, Fen, Fen, Fen) {
    match at {
        AtExpiry::ToSeller => (Fen::ZERO, Fen::ZERO, Fen::ZERO, g),
        AtExpiry::Refund(r) => {
            let (buyer, fee, rest) = money::automatic_split(g, r);
            (buyer, fee, rest, Fen::ZERO)
        }
    }
}

/// Books the expiry of every order in `expiring` with units left: the
/// split into its books, no units left. Returns the orders that expire,
/// the buyers' and the sellers' money.
fn book_expiry(
    books: &mut Books,
    left: &mut HashMap<String, u32>,
    expiring: &HashMap<String, AtExpiry>,
) -> (HashSet<String>, Fen, Fen) {
    let (mut orders, mut buyers, mut sellers) = (HashSet::new(), Fen::ZERO, Fen::ZERO);
    for (id, at) in expiring {
        let units = left.get(id).copied().unwrap_or(0);
        let Some(b) = books.get_mut(id).filter(|_| units > 0) else {
            continue;
        };
        let g = b.price.times(units).expect("bounded");
        let (buyer, fee, rest, to_seller) = split(g, *at);
        b.refunded += buyer;
        b.code_fee += fee;
        b.refund_rest += rest;
        b.expired += to_seller;
        buyers += buyer;
        sellers += fee + rest + to_seller;
        left.insert(id.clone(), 0);
        orders.insert(id.clone());
    }
    (orders, buyers, sellers)
}

/// Runs `restart` (a shell command that must restart the server with its
/// clock ahead and return once it is ready), then connects again.
///
/// Errors: the command failed or the server cannot be reached.
pub async fn restart(common: &crate::scenarios::Common, command: &str) -> anyhow::Result<Pool> {
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .kill_on_drop(true)
        .spawn()?;
    let limit = std::time::Duration::from_millis(RESTART_MS_MAX);
    let Ok(status) = tokio::time::timeout(limit, child.wait()).await else {
        anyhow::bail!("the restart command {command:?} did not return within {RESTART_MS_MAX} ms");
    };
    let status = status?;
    anyhow::ensure!(
        status.success(),
        "the restart command {command:?} failed: {status}"
    );
    common.pool().await
}

/// After [`restart`]: waits for the server's ticks to expire the short
/// products' vouchers, then settles, confirms and audits the money (see
/// the module docs). `before_ms` is the server's clock before the restart.
/// Returns the orders that expired.
///
/// Errors: the connection failed.
pub async fn run(
    common: &crate::scenarios::Common,
    pool: &Pool,
    (expiring, before_ms): (&HashMap<String, AtExpiry>, i64),
    out: &mut Outputs,
) -> anyhow::Result<HashSet<String>> {
    let client = pool.first();
    let now = money::server_now_ms(&client).await?;
    out.findings.check(now >= before_ms + CLOCK_AHEAD_MS_MIN, || {
        format!(
            "the restarted server's clock is {} ms past its clock before the restart, not at least {CLOCK_AHEAD_MS_MIN}",
            now - before_ms
        )
    });
    out.payment.client = std::sync::Arc::new(
        vouch_protocol::Client::connect(&common.target, &out.payment.token, common.ca.as_deref())
            .await?,
    );
    let (orders, buyers, sellers) = book_expiry(&mut out.books, &mut out.left, expiring);
    out.earned += sellers;
    money::settle_and_audit(pool, out, sellers, buyers, &orders).await?;
    out.totals["expired_orders"] = serde_json::json!(orders.len());
    out.totals["expiry_refunded"] = serde_json::json!(buyers);
    Ok(orders)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fen(f: i64) -> Fen {
        Fen::positive(f).unwrap()
    }

    /// REF-6 as the client works it out: 90 % of 12.35 is 11.115, rounded
    /// half away from zero 11.12; the buyer 10.12, the fee 1.00, the seller
    /// the other 1.23. Below the fee the buyer gets nothing.
    #[test]
    fn ref_6_client_split_rounds_half_away_from_zero() {
        let r = AtExpiry::Refund(Bps::new(9_000).unwrap());
        assert_eq!(
            split(fen(1235), r),
            (fen(1012), fen(100), fen(123), Fen::ZERO)
        );
        assert_eq!(split(fen(100), r), (Fen::ZERO, fen(90), fen(10), Fen::ZERO));
        assert_eq!(
            split(fen(500), AtExpiry::ToSeller),
            (Fen::ZERO, Fen::ZERO, Fen::ZERO, fen(500))
        );
    }

    /// The short validity holds now in the zones furthest from UTC and is
    /// over three days later.
    #[test]
    fn short_validity_ends_within_the_clock_ahead_in_any_zone() {
        let now = "2026-12-03T23:30:00Z".parse::<jiff::Timestamp>().unwrap();
        let v = short_validity(now.as_millisecond());
        for zone in ["Etc/GMT+12", "Pacific/Kiritimati", "Asia/Shanghai", "UTC"] {
            let tz = jiff::tz::TimeZone::get(zone).unwrap();
            let w = v.resolve(now.as_millisecond(), &tz).unwrap();
            assert!(w.from_ms <= now.as_millisecond(), "{zone}");
            assert!(w.until_ms > now.as_millisecond() + 3_600_000, "{zone}");
            assert!(
                w.until_ms <= now.as_millisecond() + CLOCK_AHEAD_MS_MIN,
                "{zone}"
            );
        }
    }
}
