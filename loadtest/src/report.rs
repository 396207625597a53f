//! Per-operation statistics (HdrHistogram) and the JSON report of
//! DESIGN.md: `scenario`, `target`, `duration_s`, `ops`, `skipped`,
//! `invariants`.

use hdrhistogram::Histogram;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Most violation samples a report keeps (loadtest/README.md).
pub const VIOLATION_SAMPLES_MAX: usize = 20;

/// Highest latency tracked, in µs (1 minute); higher values are clamped.
pub const LATENCY_US_MAX: u64 = 60_000_000;

/// Statistics of one operation.
pub struct OpStats {
    /// Successful operations.
    pub count: u64,
    /// Refused or failed operations.
    pub errors: u64,
    /// Latency per operation, µs.
    pub latency_us: Histogram<u64>,
    /// Wall time during which this operation was being driven, seconds.
    pub active_s: f64,
}

impl Default for OpStats {
    fn default() -> Self {
        OpStats {
            count: 0,
            errors: 0,
            latency_us: Histogram::new_with_bounds(1, LATENCY_US_MAX, 3)
                .expect("valid histogram bounds"),
            active_s: 0.0,
        }
    }
}

/// Statistics of every operation, by name (`issue`, `redeem`, …).
#[derive(Default)]
pub struct Stats {
    /// By operation name.
    pub ops: BTreeMap<String, OpStats>,
}

impl Stats {
    /// Records `n` operations of `name` that each took `latency_us`, `ok` of
    /// which succeeded.
    pub fn record(&mut self, name: &str, latency_us: u64, n: u64, ok: u64) {
        let s = self.ops.entry(name.to_string()).or_default();
        s.count += ok;
        s.errors += n - ok;
        let _ = s
            .latency_us
            .record_n(latency_us.clamp(1, LATENCY_US_MAX), n);
    }

    /// Folds `other` into `self`.
    pub fn merge(&mut self, other: Stats) {
        for (name, o) in other.ops {
            let s = self.ops.entry(name).or_default();
            s.count += o.count;
            s.errors += o.errors;
            let _ = s.latency_us.add(&o.latency_us);
        }
    }

    /// Folds `other` into `self`, active times included.
    pub fn merge_with_active(&mut self, other: Stats) {
        let active: Vec<(String, f64)> = other
            .ops
            .iter()
            .map(|(n, s)| (n.clone(), s.active_s))
            .collect();
        self.merge(other);
        for (n, a) in active {
            self.ops.entry(n).or_default().active_s += a;
        }
    }

    /// Adds `seconds` of driving time to each named operation.
    pub fn add_active(&mut self, names: &[&str], seconds: f64) {
        for n in names {
            self.ops.entry((*n).to_string()).or_default().active_s += seconds;
        }
    }
}

/// Builds the report object.
#[allow(clippy::too_many_arguments)]
pub fn report(
    scenario: &str,
    target: &str,
    duration_s: f64,
    stats: &Stats,
    skipped: &BTreeMap<String, u64>,
    checked: u64,
    violations: u64,
    extra: Value,
) -> Value {
    let ops: serde_json::Map<String, Value> = stats
        .ops
        .iter()
        .map(|(name, s)| {
            let h = &s.latency_us;
            let tput = if s.active_s > 0.0 {
                s.count as f64 / s.active_s
            } else {
                0.0
            };
            (
                name.clone(),
                json!({
                    "count": s.count,
                    "errors": s.errors,
                    "throughput_per_s": (tput * 10.0).round() / 10.0,
                    "latency_us": {
                        "p50": h.value_at_quantile(0.50),
                        "p90": h.value_at_quantile(0.90),
                        "p99": h.value_at_quantile(0.99),
                        "p999": h.value_at_quantile(0.999),
                        "max": h.max(),
                    }
                }),
            )
        })
        .collect();
    json!({
        "scenario": scenario,
        "target": target,
        "duration_s": (duration_s * 1000.0).round() / 1000.0,
        "ops": ops,
        "skipped": skipped,
        "invariants": {"checked": checked, "violations": violations},
        "run": extra,
    })
}

/// The report of a run that failed before its end: `scenario`, `target`,
/// `error` (a sentence) and `acknowledged` (what the server had
/// acknowledged before, see `Progress::acknowledged`). It has no `ops` and
/// no `invariants`: nothing was audited.
pub fn failed(scenario: &str, target: &str, error: &str, acknowledged: Value) -> Value {
    json!({
        "scenario": scenario,
        "target": target,
        "error": error,
        "acknowledged": acknowledged,
    })
}

/// A short human summary of a report, one line per operation.
pub fn summary(report: &Value) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "{} against {} in {:.2} s\n",
        report["scenario"].as_str().unwrap_or("?"),
        report["target"].as_str().unwrap_or("?"),
        report["duration_s"].as_f64().unwrap_or(0.0)
    ));
    let run = &report["run"];
    out.push_str(&format!(
        "  {} connections x depth {}, {} per frame; rates are commands/s, latency is per frame\n",
        run["connections"],
        run["depth"],
        match run["batch"].as_u64() {
            Some(1) => "1 command".to_string(),
            Some(n) => format!("{n} commands"),
            None => "? commands".to_string(),
        }
    ));
    let data = &run["data"];
    if let Some(files) = data["files"].as_object() {
        out.push_str(&format!(
            "  data from {}:\n",
            data["dir"].as_str().unwrap_or("?")
        ));
        for (name, f) in files {
            out.push_str(&format!(
                "    {name:<34} {:>7} rows -> {:>7} orders\n",
                f["rows"].to_string(),
                f["orders"].to_string()
            ));
        }
        if let Some(absent) = data["absent"].as_array().filter(|a| !a.is_empty()) {
            let names: Vec<&str> = absent.iter().filter_map(|n| n.as_str()).collect();
            out.push_str(&format!("    not present: {}\n", names.join(", ")));
        }
    }
    if let Some(ops) = report["ops"].as_object() {
        for (name, o) in ops {
            out.push_str(&format!(
                "  {name:<14} ok {:>9}  errors {:>6}  {:>11.1}/s  p50 {:>7} µs  p99 {:>7} µs  max {:>8} µs\n",
                o["count"].to_string(),
                o["errors"].to_string(),
                o["throughput_per_s"].as_f64().unwrap_or(0.0),
                o["latency_us"]["p50"].to_string(),
                o["latency_us"]["p99"].to_string(),
                o["latency_us"]["max"].to_string(),
            ));
        }
    }
    if let Some(sk) = report["skipped"].as_object() {
        if !sk.is_empty() {
            let parts: Vec<String> = sk.iter().map(|(k, v)| format!("{k}={v}")).collect();
            out.push_str(&format!("  skipped rows: {}\n", parts.join(", ")));
        }
    }
    let money = &run["money"];
    if money.is_object() {
        let y = |k: &str| money[k].as_str().unwrap_or("?").to_string();
        out.push_str(&format!(
            "  money (yuan): paid {}, refunded {} in {} refunds, code fees {}, earned by sellers {}, settled {} in {} payouts to {} sellers\n",
            y("paid"), y("refunded"), money["refunds"], y("code_fees"), y("earned_by_sellers"),
            y("settled"), money["payouts"], money["sellers_paid"]
        ));
        if money["expired_orders"].is_number() {
            out.push_str(&format!(
                "  expiry (yuan): {} orders expired after the restart, {} refunded to buyers, {} to sellers without expiry refund\n",
                money["expired_orders"], y("expiry_refunded"), y("expired_to_sellers")
            ));
        }
    }
    let d = &run["delivery"];
    if d.is_object() {
        out.push_str(&format!(
            "  delivery: {} messages written, {} delivered, {} retried, {} failed, {} withdrawn by refunds; the receiver saw {} attempts, {} repeats\n",
            d["written"], d["delivered"], d["retried"], d["failed"], d["withdrawn"], d["receiver_attempts"], d["receiver_duplicates"]
        ));
    }
    out.push_str(&format!(
        "audit: {} checks, {} violations\n",
        report["invariants"]["checked"], report["invariants"]["violations"]
    ));
    out
}
