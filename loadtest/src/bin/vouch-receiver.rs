//! `vouch-receiver`: a loopback webhook receiver for tests and the main
//! job (see `vouch_loadtest::receiver`). Prints `listening http://ADDR`,
//! then `ready`.
use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;
use vouch_loadtest::receiver::{self, Faults};

#[derive(Parser)]
#[command(
    name = "vouch-receiver",
    version,
    about = "Loopback webhook receiver for vouch's outbox"
)]
struct Cli {
    /// Listen address (loopback; port 0 picks one).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    /// Environment variable holding the HMAC secret the server signs with.
    #[arg(long, default_value = "VOUCH_RECEIVER_SECRET")]
    secret_env: String,
    /// Append one JSON line per attempt to this file.
    #[arg(long)]
    record: Option<PathBuf>,
    /// The first N attempts of every message get HTTP 503.
    #[arg(long, default_value_t = 0)]
    fail_first: u32,
    /// Messages whose SEQ is a multiple of K always get HTTP 500 (K ≥ 1).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    fail_always_every: Option<u64>,
    /// The first N attempts of every message stall for --stall-ms.
    #[arg(long, default_value_t = 0)]
    stall_first: u32,
    /// How long a stalled attempt waits, ms.
    #[arg(long, default_value_t = 10_000)]
    stall_ms: u64,
    /// Every answer waits this long, ms (a slow receiver).
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,
    /// Messages whose SEQ is 1 more than a multiple of K (K ≥ 2) get their
    /// first attempt answered 503 (a flaky gateway).
    #[arg(long, value_parser = clap::value_parser!(u64).range(2..))]
    flaky_every: Option<u64>,
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let secret = std::env::var(&cli.secret_env)
        .map_err(|_| anyhow::anyhow!("set the webhook secret in {}", cli.secret_env))?;
    if secret.len() < 16 {
        anyhow::bail!("the secret in {} must be at least 16 bytes", cli.secret_env);
    }
    let addr: std::net::SocketAddr = cli
        .listen
        .parse()
        .map_err(|e| anyhow::anyhow!("--listen {}: {e}", cli.listen))?;
    if !addr.ip().is_loopback() {
        anyhow::bail!(
            "--listen {}: a test receiver listens on loopback only",
            cli.listen
        );
    }
    let record = match &cli.record {
        Some(p) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map_err(|e| anyhow::anyhow!("opening {}: {e}", p.display()))?,
        ),
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(&cli.listen)
        .await
        .map_err(|e| anyhow::anyhow!("binding {}: {e}", cli.listen))?;
    println!("listening http://{}", listener.local_addr()?);
    println!("ready");
    let faults = Faults {
        fail_first: cli.fail_first,
        fail_always_every: cli.fail_always_every,
        stall_first: cli.stall_first,
        stall_ms: cli.stall_ms,
        delay_ms: cli.delay_ms,
        flaky_every: cli.flaky_every,
    };
    receiver::serve(listener, secret.into_bytes(), faults, record).await?;
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
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
