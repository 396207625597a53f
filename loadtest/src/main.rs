//! `vouch-loadtest <scenario> --target URL ... --json FILE`: drives a
//! running vouch server and writes the report of DESIGN.md.
use clap::{Args, Parser, Subcommand};
use serde_json::Value;
use std::path::PathBuf;
use std::process::ExitCode;
use vouch_loadtest::report;
use vouch_loadtest::scenarios::{self, Common, Progress};

#[derive(Parser)]
#[command(
    name = "vouch-loadtest",
    version,
    about = "Load tests, real-data replay and audit for a vouch server"
)]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// Replay the real data: every order gets a code, part is redeemed,
    /// some redemptions retried and reversed; then audit.
    Replay {
        /// Folder with the input files: any of online-retail-2010-12-*.csv,
        /// cdnow-master.txt (both bundled in the repository's data/) and
        /// o2o-coupon-issuance-2016-07.csv (research use, not bundled).
        #[arg(long, default_value = "data")]
        data: PathBuf,
        /// Skip onboarding sellers and publishing products through the
        /// catalog (vouchers then carry the data's raw ids and redemptions
        /// are not checked against outlets, verifiers and POS devices).
        #[arg(long)]
        no_onboard: bool,
        /// After the money steps, run this shell command, which must
        /// restart the server on the same addresses with its clock at least
        /// 3 days ahead (`vouch serve --rehearsal-clock-ahead-s`) and return
        /// once it is ready; the replay then checks that the short-validity
        /// products' vouchers expired with the right money (REF-6, SET-1),
        /// settles and audits again. scripts/main-job.sh passes one.
        #[arg(long)]
        restart: Option<String>,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Issue a burst of paid orders as fast as the server takes them.
    FlashSale {
        /// Orders to issue.
        #[arg(long, default_value_t = 100_000)]
        orders: u64,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Redeem storm: vouchers with several units, redemptions Zipf over them.
    Pos {
        /// Vouchers to issue first (at least 1).
        #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..))]
        vouchers: u64,
        /// Units per voucher (1..=10000).
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        units: u32,
        /// Redemptions to send.
        #[arg(long, default_value_t = 100_000)]
        redeems: u64,
        /// Zipf exponent of voucher popularity (finite, ≥ 0).
        #[arg(long, default_value_t = 1.0, value_parser = non_negative)]
        zipf_s: f64,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Everything at once: a flash sale, a redeem storm and lookups.
    Mixed {
        /// Base vouchers issued first.
        #[arg(long, default_value_t = 20_000)]
        vouchers: u64,
        /// Units per base voucher (1..=10000).
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        units: u32,
        /// New orders issued during the storm.
        #[arg(long, default_value_t = 50_000)]
        orders: u64,
        /// Redemptions of base vouchers.
        #[arg(long, default_value_t = 50_000)]
        redeems: u64,
        /// Lookups of base vouchers that are not redeemed.
        #[arg(long, default_value_t = 20_000)]
        lookups: u64,
        #[command(flatten)]
        common: CommonArgs,
    },
}

#[derive(Args)]
struct CommonArgs {
    /// Server URL: tcp://host:port or quic://host:port.
    #[arg(long, default_value = "tcp://127.0.0.1:7700")]
    target: String,
    /// Credential token file.
    #[arg(long, default_value = "./vouch-data/admin.token")]
    token_file: PathBuf,
    /// CA certificate (PEM) for QUIC.
    #[arg(long, default_value = "./vouch-data/cert.pem")]
    ca: PathBuf,
    /// Connections.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Frames in flight per connection (closed loop).
    #[arg(long, default_value_t = 4)]
    depth: usize,
    /// Commands per batch frame; 1 sends single-command frames.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Open loop: frames per second, > 0 (latency from the intended send
    /// time).
    #[arg(long, value_parser = positive)]
    rate: Option<f64>,
    /// Seed of the run's random choices.
    #[arg(long, default_value_t = 20161201)]
    seed: u64,
    /// Run id (hex, not 0) prefixing order ids and every catalog id the
    /// run creates; random when not given.
    #[arg(long)]
    run_id: Option<String>,
    /// Write the JSON report here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// The record file of the `vouch-receiver` the server's webhooks post
    /// to: at the end, wait for the outbox to drain and audit deliveries
    /// (every live code reached its phone, every redemption its SMS).
    #[arg(long)]
    delivery_record: Option<PathBuf>,
}

/// A finite number above 0.
fn positive(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if x.is_finite() && x >= 1e-3 => Ok(x),
        _ => Err(format!("{s} is not a finite number of at least 0.001")),
    }
}

/// A finite number at or above 0.
fn non_negative(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if x.is_finite() && x >= 0.0 => Ok(x),
        _ => Err(format!("{s} is not a finite number of at least 0")),
    }
}

impl CommonArgs {
    fn common(&self) -> anyhow::Result<Common> {
        let token = std::fs::read_to_string(&self.token_file)
            .map_err(|e| anyhow::anyhow!("reading token file {}: {e}", self.token_file.display()))?
            .trim()
            .to_string();
        let run_id = match &self.run_id {
            Some(s) => match u32::from_str_radix(s, 16) {
                Ok(0) => {
                    anyhow::bail!("--run-id 0 would share ids with catalog entries made by hand")
                }
                Ok(id) => id,
                Err(e) => anyhow::bail!("--run-id {s}: {e}"),
            },
            None => rand::random::<u32>() | 1,
        };
        Ok(Common {
            target: self.target.parse().map_err(anyhow::Error::msg)?,
            token,
            ca: Some(self.ca.clone()),
            connections: self.connections,
            depth: self.depth,
            batch: self.batch.clamp(1, 10_000),
            rate: self.rate,
            seed: self.seed,
            run_id,
            delivery_record: self.delivery_record.clone(),
        })
    }
}

impl Scenario {
    fn name(&self) -> &'static str {
        match self {
            Scenario::Replay { .. } => "replay",
            Scenario::FlashSale { .. } => "flash-sale",
            Scenario::Pos { .. } => "pos",
            Scenario::Mixed { .. } => "mixed",
        }
    }

    fn common(&self) -> &CommonArgs {
        match self {
            Scenario::Replay { common, .. }
            | Scenario::FlashSale { common, .. }
            | Scenario::Pos { common, .. }
            | Scenario::Mixed { common, .. } => common,
        }
    }
}

async fn run_scenario(scenario: &Scenario, progress: &Progress) -> anyhow::Result<Value> {
    let common = scenario.common().common()?;
    match scenario {
        Scenario::Replay {
            data,
            no_onboard,
            restart,
            ..
        } => scenarios::replay(&common, progress, data, !no_onboard, restart.as_deref()).await,
        Scenario::FlashSale { orders, .. } => {
            scenarios::flash_sale(&common, progress, *orders).await
        }
        Scenario::Pos {
            vouchers,
            units,
            redeems,
            zipf_s,
            ..
        } => scenarios::pos(&common, progress, *vouchers, *units, *redeems, *zipf_s).await,
        Scenario::Mixed {
            vouchers,
            units,
            orders,
            redeems,
            lookups,
            ..
        } => {
            let (v, u, o, r, l) = (*vouchers, *units, *orders, *redeems, *lookups);
            scenarios::mixed(&common, progress, v, u, o, r, l).await
        }
    }
}

/// Runs the scenario and writes its report. A run that fails half way
/// (the server died, a connection broke) still writes a report: the error
/// and what the server had acknowledged before it.
async fn run(cli: Cli) -> anyhow::Result<bool> {
    let progress = Progress::default();
    let json_path = cli.scenario.common().json.clone();
    let report = match run_scenario(&cli.scenario, &progress).await {
        Ok(report) => report,
        Err(e) => {
            if let Some(path) = &json_path {
                let failed = report::failed(
                    cli.scenario.name(),
                    &cli.scenario.common().target,
                    &format!("{e:#}"),
                    progress.acknowledged(),
                );
                write_report(path, &failed)?;
            }
            return Err(e);
        }
    };
    print!("{}", report::summary(&report));
    if let Some(samples) = report["run"]["violation_samples"].as_array() {
        for s in samples {
            println!("  violation: {}", s.as_str().unwrap_or(""));
        }
    }
    if let Some(path) = json_path {
        write_report(&path, &report)?;
    }
    Ok(report["invariants"]["violations"].as_u64() == Some(0))
}

fn write_report(path: &std::path::Path, report: &Value) -> anyhow::Result<()> {
    std::fs::write(path, serde_json::to_vec_pretty(report)?)
        .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
    println!("report written to {}", path.display());
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match rt.block_on(run(cli)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("audit found violations");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
