//! Real input data → paid orders (see `../shared/data/README.md`).
//!
//! Mapping (Decisions of this replay):
//! - O2O coupon issuance row → an order of 1 unit for product `Coupon_id` of
//!   seller `Merchant_id`; buyer mobile `1` + `User_id` zero-padded to 10
//!   digits. Unit price: for `x:y` (y off from x) the coupon's value y yuan;
//!   for a rate r the discount on a notional 100 yuan, (1 − r) × 100.
//!   Repeated user/coupon/day triples are real second issuances, so each
//!   occurrence is its own order (`…:n` suffix, n = occurrence); retries of
//!   the same order id are exercised separately by the replay.
//! - Online Retail line with positive quantity → an order of `Quantity`
//!   units at `UnitPrice` of one seller (the shop), product numbered by first
//!   appearance of `StockCode` from `RETAIL_PRODUCT_ID_BASE`; mobile `1` + `CustomerID` padded to 10 digits.
//!   Skipped with a reason: cancellations (`C…`, negative quantity; refunds
//!   come with the refund rules), lines without a customer (no buyer mobile),
//!   prices below zero or finer than a fen, quantities above the voucher
//!   maximum.

use rust_decimal::Decimal;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use vouch_engine::limits::VOUCHER_UNITS_MAX;

/// Seller id used for the Online Retail shop (O2O merchant ids are below).
pub const RETAIL_SELLER_ID: u64 = 1_000_000;

/// Retail products are numbered from here, above every O2O `Coupon_id`
/// (which are below 20,000), so product ids never collide.
pub const RETAIL_PRODUCT_ID_BASE: u64 = 10_000_000;

/// Which file an order came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// `o2o-coupon-issuance-2016-07.csv`.
    O2o,
    /// `online-retail-2010-12-*.csv`.
    Retail,
}

/// One paid order from the data.
#[derive(Clone, Debug)]
pub struct Order {
    /// Order id without the run prefix (unique within the data).
    pub key: String,
    /// Seller id.
    pub seller_id: u64,
    /// Product id.
    pub product_id: u64,
    /// Units.
    pub units: u32,
    /// Unit price, yuan.
    pub unit_price: Decimal,
    /// Buyer mobile.
    pub mobile: String,
    /// Source file.
    pub source: Source,
}

/// Orders and skipped rows by reason.
#[derive(Default)]
pub struct Loaded {
    /// Orders in replay order (retail days first, then O2O by date).
    pub orders: Vec<Order>,
    /// Rows not turned into orders, by reason.
    pub skipped: BTreeMap<String, u64>,
}

fn mobile_from(id: u64) -> String {
    format!("1{:010}", id % 10_000_000_000)
}

/// Reads every input file of the replay from `dir`.
///
/// Errors: a file is missing or unreadable, or a row does not parse as the
/// documented columns (the error names the file and row).
pub fn load(dir: &Path) -> anyhow::Result<Loaded> {
    let mut out = Loaded::default();
    let mut retail_files: Vec<_> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("online-retail-") && n.ends_with(".csv"))
        })
        .collect();
    retail_files.sort();
    anyhow::ensure!(
        !retail_files.is_empty(),
        "no online-retail-*.csv in {}",
        dir.display()
    );
    let mut products: HashMap<String, u64> = HashMap::new();
    for f in &retail_files {
        load_retail(f, &mut products, &mut out)?;
    }
    load_o2o(&dir.join("o2o-coupon-issuance-2016-07.csv"), &mut out)?;
    Ok(out)
}

fn skip(out: &mut Loaded, reason: &str) {
    *out.skipped.entry(reason.to_string()).or_default() += 1;
}

fn load_retail(
    path: &Path,
    products: &mut HashMap<String, u64>,
    out: &mut Loaded,
) -> anyhow::Result<()> {
    let mut rdr =
        csv::Reader::from_path(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let mut seen: HashMap<(String, String), u32> = HashMap::new();
    for (i, rec) in rdr.records().enumerate() {
        let rec = rec.map_err(|e| anyhow::anyhow!("{} row {}: {e}", path.display(), i + 2))?;
        let field = |n: usize| rec.get(n).unwrap_or("").trim();
        let invoice = field(0);
        let stock = field(1);
        let quantity: i64 = field(3)
            .parse()
            .map_err(|e| anyhow::anyhow!("{} row {}: quantity: {e}", path.display(), i + 2))?;
        if invoice.starts_with('C') || quantity <= 0 {
            skip(out, "retail_cancellation");
            continue;
        }
        let price: Decimal = field(5)
            .parse()
            .map_err(|e| anyhow::anyhow!("{} row {}: price: {e}", path.display(), i + 2))?;
        if price.is_sign_negative() {
            skip(out, "retail_negative_price");
            continue;
        }
        if price.normalize().scale() > 2 {
            skip(out, "retail_price_finer_than_fen");
            continue;
        }
        if quantity > i64::from(VOUCHER_UNITS_MAX) {
            skip(out, "retail_units_above_max");
            continue;
        }
        let customer = field(6);
        let Ok(customer) = customer.parse::<f64>() else {
            skip(out, "retail_no_customer_mobile");
            continue;
        };
        let next = RETAIL_PRODUCT_ID_BASE + products.len() as u64 + 1;
        let product_id = *products.entry(stock.to_string()).or_insert(next);
        let n = seen
            .entry((invoice.to_string(), stock.to_string()))
            .or_default();
        let key = format!("r:{invoice}:{stock}:{n}");
        *n += 1;
        out.orders.push(Order {
            key,
            seller_id: RETAIL_SELLER_ID,
            product_id,
            units: quantity as u32,
            unit_price: price,
            mobile: mobile_from(customer as u64),
            source: Source::Retail,
        });
    }
    Ok(())
}

fn o2o_price(rate: &str) -> Option<Decimal> {
    if let Some((_, off)) = rate.split_once(':') {
        return off.parse::<Decimal>().ok();
    }
    let r: Decimal = rate.parse().ok()?;
    Some(((Decimal::ONE - r) * Decimal::from(100)).round_dp(2))
}

fn load_o2o(path: &Path, out: &mut Loaded) -> anyhow::Result<()> {
    let mut rdr =
        csv::Reader::from_path(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let mut rows = Vec::new();
    for (i, rec) in rdr.records().enumerate() {
        let rec = rec.map_err(|e| anyhow::anyhow!("{} row {}: {e}", path.display(), i + 2))?;
        let num =
            |n: usize| -> anyhow::Result<u64> {
                rec.get(n).unwrap_or("").trim().parse().map_err(|e| {
                    anyhow::anyhow!("{} row {} column {n}: {e}", path.display(), i + 2)
                })
            };
        let (user, merchant, coupon, date) = (num(0)?, num(1)?, num(2)?, num(5)?);
        let rate = rec.get(3).unwrap_or("").trim().to_string();
        rows.push((date, i, user, merchant, coupon, rate));
    }
    // Replay order: by date received, ties in file order.
    rows.sort_by_key(|r| (r.0, r.1));
    let mut seen: HashMap<(u64, u64, u64), u32> = HashMap::new();
    for (date, _, user, merchant, coupon, rate) in rows {
        let Some(price) = o2o_price(&rate) else {
            skip(out, "o2o_unparsed_discount");
            continue;
        };
        let n = seen.entry((user, coupon, date)).or_default();
        let key = format!("c:{user}:{coupon}:{date}:{n}");
        *n += 1;
        out.orders.push(Order {
            key,
            seller_id: merchant,
            product_id: coupon,
            units: 1,
            unit_price: price,
            mobile: mobile_from(user),
            source: Source::O2o,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn o2o_discount_to_price() {
        assert_eq!(o2o_price("30:5"), Some(Decimal::from(5)));
        assert_eq!(o2o_price("0.95"), Some(Decimal::new(500, 2)));
        assert_eq!(o2o_price("fixed"), None);
    }

    #[test]
    fn mobile_has_eleven_digits_and_keeps_last_four() {
        assert_eq!(mobile_from(4129537), "10004129537");
        assert_eq!(mobile_from(17850), "10000017850");
    }
}
