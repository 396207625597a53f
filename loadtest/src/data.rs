//! Real input data → paid orders (see `data/README.md`).
//!
//! Every known file that is present in the data folder is read; at least
//! one must be. The openly licensed files (Online Retail days, CDNOW) ship
//! in the repository's `data/`; the research-use Tianchi O2O file does not
//! and is read where it is present (`../shared/data`, `VOUCH_DATA`).
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
//!   appearance of `StockCode` from `RETAIL_PRODUCT_ID_BASE`; mobile `1` +
//!   `CustomerID` padded to 10 digits.
//!   Skipped with a reason: lines without a customer (no buyer mobile),
//!   prices below zero or finer than a fen, quantities above the voucher
//!   maximum.
//! - Online Retail cancellation (`C…` invoice, negative quantity) → a
//!   refund of that many units of the same customer's latest earlier order
//!   of the same stock code ([`Cancellation`]); one with no such order is
//!   skipped (`retail_cancellation_unmatched`).
//! - CDNOW purchase → an order of the CD shop (one seller, one product):
//!   `quantity` units at `dollar_value / quantity` when that is a whole
//!   number of fen, else one unit (the purchase as a bundle) at
//!   `dollar_value`, so no amount is ever rounded. Mobile `1` + the
//!   customer id padded to 10 digits.

use rust_decimal::Decimal;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use vouch_engine::limits::{ORDER_ID_BYTES_MAX, UNIT_PRICE_FEN_MAX, VOUCHER_UNITS_MAX};
use vouch_engine::{ProductId, SellerId};

/// Seller id used for the Online Retail shop (O2O merchant ids are below).
pub const RETAIL_SELLER_ID: SellerId = SellerId(1_000_000);

/// Retail products are numbered from here, above every O2O `Coupon_id`
/// (which are below 20,000), so product ids never collide.
pub const RETAIL_PRODUCT_ID_BASE: u64 = 10_000_000;

/// Seller id used for the CDNOW shop.
pub const CDNOW_SELLER_ID: SellerId = SellerId(2_000_000);

/// The CDNOW shop's one product ("a CD").
pub const CDNOW_PRODUCT_ID: ProductId = ProductId(20_000_000);

/// The O2O file (research use: never copied into the repository).
pub const O2O_FILE: &str = "o2o-coupon-issuance-2016-07.csv";

/// The CDNOW file (MIT).
pub const CDNOW_FILE: &str = "cdnow-master.txt";

/// Which file an order came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// `o2o-coupon-issuance-2016-07.csv`.
    O2o,
    /// `online-retail-2010-12-*.csv`.
    Retail,
    /// `cdnow-master.txt`.
    Cdnow,
}

impl Source {
    /// The prefix of this source's skip reasons: `o2o`, `retail`, `cdnow`.
    pub fn name(self) -> &'static str {
        match self {
            Source::O2o => "o2o",
            Source::Retail => "retail",
            Source::Cdnow => "cdnow",
        }
    }
}

/// One paid order from the data.
#[derive(Clone, Debug)]
pub struct Order {
    /// Order id without the run prefix (unique within the data).
    pub key: String,
    /// Seller id.
    pub seller_id: SellerId,
    /// Product id.
    pub product_id: ProductId,
    /// Units.
    pub units: u32,
    /// Unit price, yuan.
    pub unit_price: Decimal,
    /// Buyer mobile.
    pub mobile: String,
    /// Source file.
    pub source: Source,
}

/// A cancellation line of the Online Retail data: `units` of the order
/// `order_key` (the same customer's latest earlier order of that stock
/// code) are given back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cancellation {
    /// The cancelled order's key.
    pub order_key: String,
    /// Units cancelled, ≥ 1.
    pub units: u32,
}

/// What one input file contributed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FileUse {
    /// Data rows read (header not counted).
    pub rows: u64,
    /// Orders made from them (the rest are in [`Loaded::skipped`]).
    pub orders: u64,
}

/// Orders, skipped rows by reason, and what each file contributed.
#[derive(Default)]
pub struct Loaded {
    /// Orders in replay order (retail days, then CDNOW, then O2O by date).
    pub orders: Vec<Order>,
    /// Rows not turned into orders, by reason.
    pub skipped: BTreeMap<String, u64>,
    /// Per file read, by file name.
    pub files: BTreeMap<String, FileUse>,
    /// Known files that were not in the folder.
    pub absent: Vec<String>,
    /// Retail cancellations matched to an earlier order, in file order.
    pub cancellations: Vec<Cancellation>,
    /// Retail orders by (mobile, product): their keys in file order, for
    /// matching cancellations.
    retail_orders: HashMap<(String, ProductId), Vec<String>>,
    /// Order keys taken so far (duplicates across files are skipped).
    keys: std::collections::HashSet<String>,
}

fn mobile_from(id: u64) -> String {
    format!("1{:010}", id % 10_000_000_000)
}

/// Reads every known input file present in `dir`.
///
/// Errors: `dir` is not a folder, holds none of the known files, or a file
/// is unreadable or a row does not parse as the documented columns (the
/// error names the file and row).
pub fn load(dir: &Path) -> anyhow::Result<Loaded> {
    anyhow::ensure!(
        dir.is_dir(),
        "data folder {} does not exist; give one with --data (the repository's data/ \
         holds the openly licensed files)",
        dir.display()
    );
    let mut out = Loaded::default();
    let mut retail_files: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("online-retail-2010-12-") && n.ends_with(".csv"))
        })
        .collect();
    retail_files.sort();
    if let Some(d) = retail_files.iter().find(|p| !p.is_file()) {
        anyhow::bail!("{} is not a file (a directory?)", d.display());
    }
    if retail_files.is_empty() {
        out.absent.push("online-retail-2010-12-*.csv".into());
    }
    let mut products: HashMap<String, ProductId> = HashMap::new();
    for f in &retail_files {
        load_retail(f, &mut products, &mut out)?;
    }
    for (name, loader) in [
        (
            CDNOW_FILE,
            load_cdnow as fn(&Path, &mut Loaded) -> anyhow::Result<()>,
        ),
        (O2O_FILE, load_o2o),
    ] {
        let path = dir.join(name);
        if path.is_file() {
            loader(&path, &mut out)?;
        } else if path.exists() {
            anyhow::bail!("{} is not a file (a directory?)", path.display());
        } else {
            out.absent.push(name.into());
        }
    }
    anyhow::ensure!(
        !out.files.is_empty(),
        "no input data in {}: expected online-retail-*.csv, {CDNOW_FILE} or {O2O_FILE} \
         (the repository's data/ holds the openly licensed files; see data/README.md)",
        dir.display()
    );
    anyhow::ensure!(
        !out.orders.is_empty(),
        "the data in {} gave no orders: every row was skipped or the files are empty",
        dir.display()
    );
    Ok(out)
}

/// Counts what the file at `path` contributed: `rows` read, and the orders
/// added to `out` since `orders_before`.
fn account(out: &mut Loaded, path: &Path, rows: u64, orders_before: usize) {
    let name = path
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let orders = (out.orders.len() - orders_before) as u64;
    out.files.insert(name, FileUse { rows, orders });
}

/// Longest order key: the run prefix (8 hex digits and `:`) takes the
/// rest of the engine's order id limit.
pub const ORDER_KEY_BYTES_MAX: usize = ORDER_ID_BYTES_MAX - 9;

/// Adds `order` unless the engine would refuse it or another file already
/// gave the same order; such rows are skipped with a reason named after
/// their source (`retail_price_out_of_range`, `cdnow_duplicate_order`, …),
/// so a bad row is never sent and blamed on the server.
/// Returns whether it was added.
fn admit(out: &mut Loaded, order: Order) -> bool {
    let price = order.unit_price;
    let reason = if price.is_sign_negative() || price > Decimal::new(UNIT_PRICE_FEN_MAX, 2) {
        Some("price_out_of_range")
    } else if price.normalize().scale() > 2 {
        Some("price_finer_than_fen")
    } else if order.units == 0 || order.units > VOUCHER_UNITS_MAX {
        Some("units_out_of_range")
    } else if order.key.len() > ORDER_KEY_BYTES_MAX {
        Some("order_id_too_long")
    } else if !out.keys.insert(order.key.clone()) {
        Some("duplicate_order")
    } else {
        None
    };
    match reason {
        Some(r) => {
            skip(out, &format!("{}_{r}", order.source.name()));
            false
        }
        None => {
            out.orders.push(order);
            true
        }
    }
}

/// A retail cancellation of `quantity` (≤ 0) units of `product` by
/// `customer`: matched to that customer's latest earlier order of the
/// product, else skipped.
fn cancel(out: &mut Loaded, product: Option<ProductId>, customer: &str, quantity: i64) {
    let mobile = customer.parse::<f64>().ok().map(|c| mobile_from(c as u64));
    let order = product
        .zip(mobile)
        .and_then(|(p, m)| out.retail_orders.get(&(m, p))?.last().cloned());
    match (order, u32::try_from(quantity.unsigned_abs())) {
        (Some(order_key), Ok(units)) if units > 0 => {
            out.cancellations.push(Cancellation { order_key, units })
        }
        _ => skip(out, "retail_cancellation_unmatched"),
    }
}

fn skip(out: &mut Loaded, reason: &str) {
    *out.skipped.entry(reason.to_string()).or_default() += 1;
}

fn load_retail(
    path: &Path,
    products: &mut HashMap<String, ProductId>,
    out: &mut Loaded,
) -> anyhow::Result<()> {
    let mut rdr =
        csv::Reader::from_path(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let mut seen: HashMap<(String, String), u32> = HashMap::new();
    let (before, mut rows) = (out.orders.len(), 0);
    for (i, rec) in rdr.records().enumerate() {
        let rec = rec.map_err(|e| anyhow::anyhow!("{} row {}: {e}", path.display(), i + 2))?;
        rows += 1;
        let field = |n: usize| rec.get(n).unwrap_or("").trim();
        let invoice = field(0);
        let stock = field(1);
        let Ok(quantity) = field(3).parse::<i64>() else {
            skip(out, "retail_quantity_unreadable");
            continue;
        };
        if invoice.starts_with('C') || quantity <= 0 {
            cancel(out, products.get(stock).copied(), field(6), quantity);
            continue;
        }
        let Ok(price) = field(5).parse::<Decimal>() else {
            skip(out, "retail_price_unreadable");
            continue;
        };
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
        let next = ProductId(RETAIL_PRODUCT_ID_BASE + products.len() as u64 + 1);
        let product_id = *products.entry(stock.to_string()).or_insert(next);
        let n = seen
            .entry((invoice.to_string(), stock.to_string()))
            .or_default();
        let key = format!("r:{invoice}:{stock}:{n}");
        *n += 1;
        let mobile = mobile_from(customer as u64);
        let order = Order {
            key: key.clone(),
            seller_id: RETAIL_SELLER_ID,
            product_id,
            units: quantity as u32,
            unit_price: price,
            mobile: mobile.clone(),
            source: Source::Retail,
        };
        if admit(out, order) {
            out.retail_orders
                .entry((mobile, product_id))
                .or_default()
                .push(key);
        }
    }
    account(out, path, rows, before);
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
    let (before, count) = (out.orders.len(), rows.len() as u64);
    let mut seen: HashMap<(u64, u64, u64), u32> = HashMap::new();
    for (date, _, user, merchant, coupon, rate) in rows {
        let Some(price) = o2o_price(&rate) else {
            skip(out, "o2o_unparsed_discount");
            continue;
        };
        let n = seen.entry((user, coupon, date)).or_default();
        let key = format!("c:{user}:{coupon}:{date}:{n}");
        *n += 1;
        let _ = admit(
            out,
            Order {
                key,
                seller_id: SellerId(merchant),
                product_id: ProductId(coupon),
                units: 1,
                unit_price: price,
                mobile: mobile_from(user),
                source: Source::O2o,
            },
        );
    }
    account(out, path, count, before);
    Ok(())
}

/// Units and unit price of a CDNOW purchase of `quantity` CDs for
/// `dollars` in all: per CD when that is whole fen, else one bundle.
fn cdnow_units(quantity: u32, dollars: Decimal) -> (u32, Decimal) {
    let per_cd = dollars / Decimal::from(quantity);
    if (per_cd * Decimal::from(100)).fract().is_zero() {
        (quantity, per_cd.round_dp(2))
    } else {
        (1, dollars)
    }
}

fn load_cdnow(path: &Path, out: &mut Loaded) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let (before, mut rows) = (out.orders.len(), 0);
    let mut seen: HashMap<(u64, u64), u32> = HashMap::new();
    // The first line names the columns.
    for (i, line) in text.lines().enumerate().skip(1) {
        let bad = |what: &str| anyhow::anyhow!("{} line {}: {what}", path.display(), i + 1);
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.is_empty() {
            continue;
        }
        rows += 1;
        let [customer, date, quantity, dollars] = cols[..] else {
            return Err(bad("expected 4 columns"));
        };
        let customer: u64 = customer.parse().map_err(|_| bad("customer id"))?;
        let date: u64 = date.parse().map_err(|_| bad("date"))?;
        let Ok(quantity) = quantity.parse::<u32>() else {
            skip(out, "cdnow_quantity_out_of_range");
            continue;
        };
        let Ok(dollars) = dollars.parse::<Decimal>() else {
            skip(out, "cdnow_value_unreadable");
            continue;
        };
        if quantity == 0 || quantity > VOUCHER_UNITS_MAX {
            skip(out, "cdnow_quantity_out_of_range");
            continue;
        }
        if dollars.is_sign_negative() || dollars.normalize().scale() > 2 {
            skip(out, "cdnow_value_not_whole_fen");
            continue;
        }
        let (units, unit_price) = cdnow_units(quantity, dollars);
        let n = seen.entry((customer, date)).or_default();
        let key = format!("d:{customer}:{date}:{n}");
        *n += 1;
        let _ = admit(
            out,
            Order {
                key,
                seller_id: CDNOW_SELLER_ID,
                product_id: CDNOW_PRODUCT_ID,
                units,
                unit_price,
                mobile: mobile_from(customer),
                source: Source::Cdnow,
            },
        );
    }
    account(out, path, rows, before);
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
    fn cdnow_splits_only_into_whole_fen() {
        // 3 CDs for 29.97: 9.99 each.
        assert_eq!(
            cdnow_units(3, Decimal::new(2997, 2)),
            (3, Decimal::new(999, 2))
        );
        // 2 CDs for 25.99 would be 12.995 each: one bundle, nothing rounded.
        assert_eq!(
            cdnow_units(2, Decimal::new(2599, 2)),
            (1, Decimal::new(2599, 2))
        );
    }

    #[test]
    fn a_missing_folder_and_an_empty_one_are_named_in_the_error() {
        let missing = std::env::temp_dir().join("vouch-no-such-data-folder");
        let e = load(&missing).err().expect("missing folder refused");
        assert!(e.to_string().contains("vouch-no-such-data-folder"), "{e}");
        assert!(e.to_string().contains("--data"), "{e}");
        let empty = tempfile::tempdir().expect("temp dir");
        let e = load(empty.path()).err().expect("empty folder refused");
        assert!(e.to_string().contains("no input data"), "{e}");
        assert!(e.to_string().contains(CDNOW_FILE), "{e}");
    }

    #[test]
    fn rows_the_engine_would_refuse_are_skipped_with_a_reason_not_sent() {
        let dir = tempfile::tempdir().expect("temp dir");
        let cdnow = "customer_id date number_of_cds dollar_value\n\
                     00001 19970101 1 11.77\n\
                     00002 19970101 -1 5.00\n\
                     00003 19970101 99999999999 5.00\n\
                     00004 19970101 1 2000000.00\n\
                     00005 19970101 1 abc\n";
        std::fs::write(dir.path().join(CDNOW_FILE), cdnow).expect("write");
        // The same day twice under another name: every order repeats.
        let retail =
            "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n\
                      536365,85123A,HEART,6,12/1/2010 8:26,2.55,17850,United Kingdom\n";
        std::fs::write(dir.path().join("online-retail-2010-12-01.csv"), retail).expect("write");
        std::fs::write(dir.path().join("online-retail-2010-12-01b.csv"), retail).expect("write");
        std::fs::write(dir.path().join("online-retail-copy.csv"), retail).expect("write");
        let loaded = load(dir.path()).expect("loads");
        assert_eq!(loaded.orders.len(), 2, "one CDNOW and one retail order");
        let skipped: Vec<(&str, u64)> = loaded
            .skipped
            .iter()
            .map(|(k, v)| (k.as_str(), *v))
            .collect();
        assert_eq!(
            skipped,
            vec![
                ("cdnow_price_out_of_range", 1),
                ("cdnow_quantity_out_of_range", 2),
                ("cdnow_value_unreadable", 1),
                ("retail_duplicate_order", 1),
            ]
        );
        assert_eq!(
            loaded.files.len(),
            3,
            "online-retail-copy.csv is not a day file"
        );
    }

    #[test]
    fn a_replay_with_no_orders_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(
            dir.path().join(CDNOW_FILE),
            "customer_id date number_of_cds dollar_value\n",
        )
        .expect("write");
        let e = load(dir.path()).err().expect("refused");
        assert!(e.to_string().contains("gave no orders"), "{e}");
    }

    #[test]
    fn mobile_has_eleven_digits_and_keeps_last_four() {
        assert_eq!(mobile_from(4129537), "10004129537");
        assert_eq!(mobile_from(17850), "10000017850");
    }
}
