//! The command-line contract (DESIGN "Command-line contracts"):
//! `vouch serve` and a client command per operation, each with `--json`.
//!
//! Exit codes: 0 success; 1 the server refused the command (the stable
//! error is printed); 2 usage, connection or local errors.

pub mod catalog;
pub mod ledger;
pub mod money;
pub mod order;
pub mod outbox;
pub mod outcome;
pub mod settle;
pub mod time;
pub mod transfer;

use crate::guard::{GuardConfig, LockoutLimit};
use crate::server::{serve, ServeOptions, TcpSecurity};
use clap::{Args, Parser, Subcommand};
use outcome::{print_outcome, print_refusal};
use std::path::PathBuf;
use std::process::ExitCode;
use vouch_engine::catalog::{
    Actor, CatalogCommand, CatalogOutcome, CatalogQuery, CatalogView, TokenRef,
    TOKENS_PAGE_ITEMS_MAX,
};
use vouch_engine::command::{History, Issue, Lookup, Redeem, RequestId, Reverse};
use vouch_engine::limits::AUDIT_PAGE_ITEMS_MAX;
use vouch_engine::{
    Code, Command, EngineConfig, Outcome, OutletId, PosId, ProductId, SellerId, VerifierId,
};
use vouch_protocol::client::ClientError;
use vouch_protocol::{Client, Target, WireError};

/// Default data directory of `vouch serve`.
pub const DEFAULT_DATA_DIR: &str = "./vouch-data";
/// Default TCP listen address and client target port.
pub const DEFAULT_LISTEN_TCP: &str = "127.0.0.1:7700";
/// Default QUIC listen address (UDP).
pub const DEFAULT_LISTEN_QUIC: &str = "127.0.0.1:7700";
/// Default server for client commands.
pub const DEFAULT_SERVER: &str = "tcp://127.0.0.1:7700";

#[derive(Parser)]
#[command(
    name = "vouch",
    version,
    about = "vouch: durable e-voucher engine — server and client"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the server (TCP and QUIC) on a data directory.
    Serve(ServeArgs),
    /// Issue a voucher for a paid order (ORD-2).
    Issue(IssueArgs),
    /// Look a code up without consuming it (ORD-9).
    Lookup(LookupArgs),
    /// Redeem units of a code (ORD-7, ORD-8).
    Redeem(RedeemArgs),
    /// Reverse (冲正, undo) a redemption by its request id, within the
    /// reversal window: the units go back onto the voucher.
    Reverse(ReverseArgs),
    /// A voucher's history: issue, redemptions, reversals and code
    /// replacements (staff, and the voucher's seller).
    History(HistoryArgs),
    /// Run a catalog command (categories, sellers and onboarding, T+N,
    /// deposits, code providers, outlets, verifiers, devices, products),
    /// given as JSON, e.g. '{"top_up":{"amount":"100.00"}}'.
    Catalog(CatalogArgs),
    /// Issue, list or revoke credentials of principals (staff, seller,
    /// provider, verifier, POS device, front end). The token is generated
    /// here and shown once; the server keeps only its SHA-256.
    Token(TokenArgs),
    /// Categories (staff).
    Category(Family<catalog::CategoryCmd>),
    /// Sellers: onboarding, permissions, payment account, T+N and deposits.
    Seller(Family<catalog::SellerCmd>),
    /// Code providers: registration, seller links, POS devices.
    Provider(Family<catalog::ProviderCmd>),
    /// Outlets and verifier accounts of a seller.
    Outlet(Family<catalog::OutletCmd>),
    /// Products: publish and delist.
    Product(Family<catalog::ProductCmd>),
    /// Lockouts after failed code attempts: list (staff, sellers) and
    /// lift (staff).
    Lockout(Family<catalog::LockoutCmd>),
    /// Refund steps of an order (REF-1..5): automatic, request and
    /// after-sale for the buyer (front end); agree, approve, reject and
    /// confirm-after-sale for the seller; not-delivered for the front end
    /// (refused once a code was delivered).
    Refund(order::RefundArgs),
    /// Move an order's validity end later (ORD-6, seller).
    Extend(order::ExtendArgs),
    /// An order's state, units and money (ORD-12).
    Order(order::OrderArgs),
    /// Settlement runs per seller and cutoff (SET-3): run (staff), list.
    Settlement(Family<settle::SettlementCmd>),
    /// Payouts in transit: confirm or fail (the payment system, MON-7).
    Payout(Family<settle::PayoutCmd>),
    /// Settlement statements (RPT-4).
    Statement(Family<settle::StatementCmd>),
    /// Refunds on their way to buyers (MON-7): confirm or fail (the
    /// payment system), retry a failed one, list.
    RefundTransfer(transfer::TransferArgs),
    /// The reconciliation export (RPT-5): every ledger entry of a seller,
    /// or for staff of the platform, in a time range, as CSV.
    Ledger(ledger::LedgerArgs),
    /// The outbox (staff, ORD-2): messages that ran out of attempts, one
    /// message, a re-queue, the counts.
    Outbox(outbox::OutboxArgs),
}

/// One catalog family's subcommand with the flags every catalog command
/// takes.
#[derive(Args)]
struct Family<T: Subcommand> {
    #[command(subcommand)]
    action: T,
    /// Client request id SOURCE:SERIAL, or SERIAL with this token's source
    /// (a principal's token must use its own); a retry with the same id never
    /// applies twice.
    #[arg(long, global = true)]
    request_id: Option<String>,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Args)]
struct TokenArgs {
    #[command(subcommand)]
    action: TokenAction,
}

#[derive(Subcommand)]
enum TokenAction {
    /// Every token ever registered, active or revoked: its id, principal
    /// and times; never the secret (staff).
    List {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Create a token for a principal and print it.
    Issue {
        /// The principal: staff, front-end, payment-system, seller:ID,
        /// provider:ID, verifier:ID or device:POS_ID.
        #[arg(long = "for")]
        principal: String,
        /// Client request id SOURCE:SERIAL, or SERIAL with this token's source.
        #[arg(long)]
        request_id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Revoke tokens; their open connections are closed. Name the token
    /// by its id (`--id`, as `token list` shows it), every token of a
    /// principal (`--principal`), or the file that holds it (`--file`), so
    /// the secret never sits on a command line (shell history, `ps`).
    #[command(group = clap::ArgGroup::new("which").required(true))]
    Revoke {
        /// The token itself (prefer `--id` or `--file`).
        #[arg(group = "which")]
        token: Option<String>,
        /// A file holding the token to revoke (as `token issue` wrote it).
        #[arg(long, group = "which")]
        file: Option<PathBuf>,
        /// The token's id (its request-id source, from `token list`).
        #[arg(long, group = "which")]
        id: Option<u64>,
        /// Every active token of this principal: staff, front-end,
        /// payment-system, seller:ID, provider:ID, verifier:ID or
        /// device:POS_ID.
        #[arg(long, group = "which")]
        principal: Option<String>,
        /// Client request id SOURCE:SERIAL, or SERIAL with this token's source.
        #[arg(long)]
        request_id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(Args)]
struct CatalogArgs {
    /// The command as JSON: one of the variants of the catalog command,
    /// e.g. '"accept_agreement"' or '{"apply_t_plus_n":{"category":11}}'.
    command: String,
    /// Client request id SOURCE:SERIAL, or SERIAL with this token's source
    /// (a principal's token must use its own); a retry with the same id never
    /// applies twice.
    #[arg(long)]
    request_id: String,
    /// The principal to act as: staff, system, seller:ID or provider:ID
    /// (the admin token may act for anyone; without it the admin runs as
    /// staff and any other token as its own principal).
    #[arg(long = "as")]
    act_as: Option<String>,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Args)]
struct ServeArgs {
    /// Data directory (created on first start).
    #[arg(long, default_value = DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    /// TCP listen address.
    #[arg(long, default_value = DEFAULT_LISTEN_TCP)]
    listen_tcp: String,
    /// QUIC listen address (UDP); `off` disables QUIC.
    #[arg(long, default_value = DEFAULT_LISTEN_QUIC)]
    listen_quic: String,
    /// Shards of a new data directory (power of two, 1..=64).
    #[arg(long, default_value_t = 2)]
    shards: u32,
    /// Platform time zone of a new data directory (IANA name).
    #[arg(long, default_value = "Asia/Shanghai")]
    time_zone: String,
    /// Reversal window of a new data directory, in seconds.
    #[arg(long, default_value_t = 3600)]
    reversal_window_s: i64,
    /// Local time (platform time zone, HH:MM) of the daily settlement run
    /// (SET-3): every seller's payable money booked before it is paid out.
    #[arg(long, default_value = "02:00")]
    settlement_time: jiff::civil::Time,
    /// Code density limit of a new data directory, parts per million of a
    /// code length's space (1..=10000; lower is safer against guessing,
    /// see SECURITY.md).
    #[arg(long, default_value_t = 10_000)]
    code_density_ppm: u64,
    /// Lockout of a principal (POS, verifier, seller) after failed code
    /// attempts: FAILURES:WINDOW_S:LOCKOUT_S.
    #[arg(long, default_value = "20:86400:86400", value_parser = parse_lockout)]
    lockout_principal: LockoutLimit,
    /// Lockout of an outlet after failed code attempts of its POS devices:
    /// FAILURES:WINDOW_S:LOCKOUT_S.
    #[arg(long, default_value = "60:86400:3600", value_parser = parse_lockout)]
    lockout_outlet: LockoutLimit,
    /// Lockout of a peer address (IPv4, or IPv6 /64) after failed code
    /// attempts and failed logins: FAILURES:WINDOW_S:LOCKOUT_S.
    #[arg(long, default_value = "200:3600:3600", value_parser = parse_lockout)]
    lockout_peer: LockoutLimit,
    /// Most failure counters kept at once (1000..=10000000).
    #[arg(long, default_value_t = crate::guard::GUARD_KEYS_MAX_DEFAULT)]
    lockout_keys_max: usize,
    /// Close a logged-in connection with nothing in flight after this many
    /// seconds of silence (1..=86400).
    #[arg(long, default_value_t = crate::server::IDLE_TIMEOUT_MS_DEFAULT / 1000,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    idle_timeout_s: u64,
    /// TLS on TCP also on a loopback address (clients use tcps://).
    #[arg(long, conflicts_with = "plain_tcp")]
    tcp_tls: bool,
    /// Plain TCP also off loopback (without it, TCP off loopback is TLS).
    #[arg(long)]
    plain_tcp: bool,
    /// For rehearsals only, never on real money: run the server's clock
    /// this many seconds ahead of the wall clock (0..=31622400, a leap
    /// year), so that validity ends, T+3, REF-2 deadlines and daily
    /// settlement runs are reached in minutes. Deadlines pass early, and
    /// a data directory's time never runs back, even on a later start
    /// without it.
    #[arg(long, default_value_t = 0,
          value_parser = clap::value_parser!(i64).range(0..=31_622_400))]
    rehearsal_clock_ahead_s: i64,
    #[command(flatten)]
    webhooks: outbox::WebhookArgs,
}

/// Parses a lockout limit `FAILURES:WINDOW_S:LOCKOUT_S`, e.g.
/// `20:86400:86400`, and checks its ranges.
fn parse_lockout(s: &str) -> Result<LockoutLimit, String> {
    let parts: Vec<&str> = s.split(':').collect();
    let [failures, window, lockout] = parts[..] else {
        return Err(format!(
            "{s:?}: expected FAILURES:WINDOW_S:LOCKOUT_S, e.g. 20:86400:86400"
        ));
    };
    let num = |what: &str, v: &str| -> Result<i64, String> {
        v.trim()
            .parse::<i64>()
            .map_err(|_| format!("{s:?}: {what} {v:?} is not a whole number"))
    };
    let failures = num("FAILURES", failures)?;
    let limit = LockoutLimit {
        failures_max: u32::try_from(failures)
            .map_err(|_| format!("{s:?}: FAILURES out of range"))?,
        window_ms: num("WINDOW_S", window)?.saturating_mul(1000),
        lockout_ms: num("LOCKOUT_S", lockout)?.saturating_mul(1000),
    };
    limit.validate("lockout")?;
    Ok(limit)
}

#[derive(Args, Clone)]
struct ClientArgs {
    /// Server URL: tcp://host:port, tcps://host:port (TCP with TLS) or
    /// quic://host:port.
    #[arg(long, default_value = DEFAULT_SERVER, env = "VOUCH_SERVER", global = true)]
    server: String,
    /// File holding the credential token.
    #[arg(long, default_value = "./vouch-data/admin.token", global = true)]
    token_file: PathBuf,
    /// CA certificate (PEM) to trust for QUIC and tcps://.
    #[arg(long, default_value = "./vouch-data/cert.pem", global = true)]
    ca: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long, global = true)]
    json: bool,
    /// Give up on a request after this many seconds without a reply
    /// (1..=3600); the request may or may not have been applied, so retry
    /// it with the same request id.
    #[arg(long, default_value_t = vouch_protocol::client::REQUEST_TIMEOUT_MS_DEFAULT / 1000,
          global = true, value_parser = clap::value_parser!(u64).range(1..=3600))]
    timeout_s: u64,
    /// Time zone to show times in (the platform's, as `vouch serve
    /// --time-zone`).
    #[arg(
        long,
        default_value = "Asia/Shanghai",
        env = "VOUCH_TIME_ZONE",
        global = true
    )]
    time_zone: String,
}

#[derive(Args)]
struct IssueArgs {
    /// Order id (1..=64 bytes); issuing the same order again returns the same code.
    #[arg(long)]
    order_id: String,
    /// Seller id.
    #[arg(long, default_value_t = SellerId(1))]
    seller: SellerId,
    /// Product id.
    #[arg(long, default_value_t = ProductId(1))]
    product: ProductId,
    /// Units bought.
    #[arg(long, default_value_t = 1)]
    units: u32,
    /// Unit price in yuan, at most 2 decimals, e.g. 19.90 (0 for a free
    /// voucher).
    #[arg(long, value_parser = money::parse_price)]
    unit_price: vouch_engine::Fen,
    /// Buyer mobile number (digits).
    #[arg(long)]
    mobile: String,
    #[command(flatten)]
    validity: catalog::ValidityArgs,
    /// Code length, 6..=11 digits.
    #[arg(long, default_value_t = 8)]
    code_digits: u8,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Args)]
struct LookupArgs {
    /// The code (leading zeros count).
    code: String,
    /// Last four digits of the buyer's phone.
    #[arg(long)]
    last4: String,
    /// Look up as this verifier account (a verifier's token sets it).
    #[arg(long)]
    verifier: Option<VerifierId>,
    /// Look up as this POS (a POS device's token sets it).
    #[arg(long)]
    pos: Option<PosId>,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Args)]
struct RedeemArgs {
    /// The code (leading zeros count).
    code: String,
    /// Last four digits of the buyer's phone.
    #[arg(long)]
    last4: String,
    /// Units to redeem.
    #[arg(long, default_value_t = 1)]
    units: u32,
    /// Outlet id.
    #[arg(long)]
    outlet: OutletId,
    /// Verifier account id: the account signed in on the POS. A verifier
    /// account's own token fills it in.
    #[arg(long)]
    verifier: Option<VerifierId>,
    /// POS id, for device redemptions (a POS's own token fills it in).
    #[arg(long)]
    pos: Option<PosId>,
    /// Client request id SOURCE:SERIAL, or SERIAL with this token's source
    /// (a POS's or verifier's token must use its own).
    /// Retrying with the same id never redeems twice.
    #[arg(long)]
    request_id: String,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Args)]
struct ReverseArgs {
    /// Any code of the voucher (the one redeemed or its replacement).
    code: String,
    /// Request id SOURCE:SERIAL of the redemption to reverse, as the POS
    /// sent it (a bare SERIAL takes this token's source: right for a POS
    /// reversing its own redemption, not for a seller).
    #[arg(long)]
    redemption: String,
    /// This reversal's own request id, SOURCE:SERIAL or SERIAL.
    #[arg(long)]
    request_id: String,
    /// The POS asking (must be the POS that redeemed; a POS's own token
    /// fills it in).
    #[arg(long)]
    pos: Option<PosId>,
    /// The verifier account asking (must be the account that redeemed; a
    /// verifier's own token fills it in).
    #[arg(long)]
    verifier: Option<VerifierId>,
    /// The seller asking (must be the voucher's seller; a seller's own
    /// token fills it in).
    #[arg(long)]
    seller: Option<SellerId>,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Args)]
struct HistoryArgs {
    /// Any code the voucher had: its live code or an earlier one (while
    /// that code is in quarantine).
    code: String,
    #[command(flatten)]
    client: ClientArgs,
}

/// Parses `SOURCE:SERIAL`.
///
/// Errors: a message naming the expected form.
pub fn parse_request_id(s: &str) -> Result<RequestId, String> {
    let (a, b) = s
        .split_once(':')
        .ok_or_else(|| format!("request id {s:?} must be SOURCE:SERIAL, e.g. 9001:17"))?;
    let source = a
        .parse()
        .map_err(|_| format!("request id source {a:?} is not a number"))?;
    let serial = b
        .parse()
        .map_err(|_| format!("request id serial {b:?} is not a number"))?;
    Ok(RequestId { source, serial })
}

/// Parses `SOURCE:SERIAL`, or `SERIAL` alone, which takes the request-id
/// source of the token in `client`'s token file (see
/// `vouch::server::token_source`; a principal's token must use it).
///
/// Errors: the message of [`parse_request_id`], or an unreadable token file.
fn request_id_for(s: &str, client: &ClientArgs) -> Result<RequestId, String> {
    if s.contains(':') {
        return parse_request_id(s);
    }
    let serial = s.parse().map_err(|_| {
        format!("request id {s:?} must be SERIAL or SOURCE:SERIAL, e.g. 17 or 9001:17")
    })?;
    let token = std::fs::read_to_string(&client.token_file)
        .map_err(|e| format!("reading token file {}: {e}", client.token_file.display()))?;
    let source = crate::server::token_source(&crate::server::token_hash(token.trim()));
    Ok(RequestId { source, serial })
}

/// A command line clap refused. With `--json` anywhere on it, one JSON
/// object on standard output (`{"ok": false, "error": {"kind": "usage",
/// "message": …}}`), exit 2; `--help` and `--version` print as usual.
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    let json = std::env::args_os().any(|a| a == "--json");
    let informational = matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    );
    if !json || informational {
        e.exit();
    }
    let text = e.render().to_string();
    let message = text.trim().trim_start_matches("error: ");
    println!(
        "{}",
        serde_json::json!({"ok": false, "error": {"kind": "usage", "message": message}})
    );
    ExitCode::from(2)
}

/// A connection failure in words, with a hint when TLS met a plain TCP
/// listener (a loopback server speaks plain TCP unless `--tcp-tls`).
fn connect_error_text(target: &Target, e: &ClientError) -> String {
    let text = e.to_string();
    let tls_to_plain = text.contains("InvalidContentType") || text.contains("corrupt message");
    if target.to_string().starts_with("tcps://") && tls_to_plain {
        return format!(
            "{target}: the server did not answer in TLS; a server on loopback speaks plain \
             TCP (use tcp://) unless started with --tcp-tls"
        );
    }
    text
}

/// The largest integer a JSON reader with doubles (JavaScript, `jq`) keeps
/// exactly: 2^53.
const JSON_EXACT_INTEGER_MAX: u64 = 1 << 53;

/// Prints `value` as one line of JSON, integers above 2^53 as strings
/// (DESIGN "Command-line contracts": ids built from run ids or token
/// hashes exceed it).
pub(crate) fn print_json(mut value: serde_json::Value) {
    strings_for_big(&mut value);
    println!("{value}");
}

/// Turns every integer above 2^53 in `v` into its decimal string.
fn strings_for_big(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::Number(n) => {
            let big = n.as_u64().is_some_and(|x| x > JSON_EXACT_INTEGER_MAX)
                || n.as_i64()
                    .is_some_and(|x| x.unsigned_abs() > JSON_EXACT_INTEGER_MAX);
            if big {
                *v = Value::String(n.to_string());
            }
        }
        Value::Array(items) => items.iter_mut().for_each(strings_for_big),
        Value::Object(map) => map.values_mut().for_each(strings_for_big),
        _ => {}
    }
}

/// A client command piped into `head` ends quietly when the reader goes,
/// as other command-line tools do, instead of panicking on a broken pipe.
/// The server keeps ignoring SIGPIPE (Rust's default).
#[allow(unsafe_code)]
fn end_quietly_on_broken_pipe() {
    // SAFETY: restoring a signal's default disposition, before any other
    // thread is started, touches no memory of this program.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Entry point of the `vouch` binary.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    if !matches!(cli.command, Cmd::Serve(_)) {
        end_quietly_on_broken_pipe();
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match cli.command {
        Cmd::Serve(a) => {
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,vouch=info")),
                )
                .with_writer(std::io::stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .init();
            let opts = ServeOptions {
                data_dir: a.data_dir,
                listen_tcp: a.listen_tcp,
                listen_quic: (a.listen_quic != "off").then_some(a.listen_quic),
                new_config: EngineConfig {
                    shards: a.shards,
                    time_zone: a.time_zone,
                    reversal_window_ms: a.reversal_window_s.saturating_mul(1000),
                    code_density_ppm: a.code_density_ppm,
                    ..EngineConfig::default()
                },
                guard: GuardConfig {
                    principal: a.lockout_principal,
                    outlet: a.lockout_outlet,
                    peer: a.lockout_peer,
                    keys_max: a.lockout_keys_max,
                },
                idle_timeout_ms: a.idle_timeout_s * 1000,
                tcp_security: match (a.tcp_tls, a.plain_tcp) {
                    (true, _) => TcpSecurity::Tls,
                    (_, true) => TcpSecurity::Plain,
                    _ => TcpSecurity::Auto,
                },
                settlement_time: a.settlement_time,
                clock_ahead_ms: a.rehearsal_clock_ahead_s * 1000,
                outbox: match a.webhooks.config() {
                    Ok(c) => c,
                    Err(e) => {
                        eprintln!("error: {e}");
                        return ExitCode::from(2);
                    }
                },
            };
            match rt.block_on(serve(opts)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::from(2)
                }
            }
        }
        other => rt.block_on(run_client(other)),
    }
}

/// `--last4` as given, when it is four digits.
///
/// Errors: a usage message (the server would refuse it as `bad_request`).
fn last4_arg(s: String) -> Result<String, String> {
    if s.len() == 4 && s.bytes().all(|b| b.is_ascii_digit()) {
        Ok(s)
    } else {
        Err(format!(
            "--last4 {s:?}: give the last 4 digits of the buyer's phone, e.g. 1234"
        ))
    }
}

fn parse_code(s: &str) -> Result<Code, String> {
    s.parse::<Code>().map_err(|e| format!("code {s:?}: {e}"))
}

fn wants_json(cmd: &Cmd) -> bool {
    match cmd {
        Cmd::Serve(_) => false,
        Cmd::Issue(a) => a.client.json,
        Cmd::Lookup(a) => a.client.json,
        Cmd::Redeem(a) => a.client.json,
        Cmd::Reverse(a) => a.client.json,
        Cmd::History(a) => a.client.json,
        Cmd::Catalog(a) => a.client.json,
        Cmd::Category(a) => a.client.json,
        Cmd::Seller(a) => a.client.json,
        Cmd::Provider(a) => a.client.json,
        Cmd::Outlet(a) => a.client.json,
        Cmd::Product(a) => a.client.json,
        Cmd::Lockout(a) => a.client.json,
        Cmd::Settlement(a) => a.client.json,
        Cmd::Refund(a) => a.json(),
        Cmd::Extend(a) => a.json(),
        Cmd::Order(a) => a.json(),
        Cmd::RefundTransfer(a) => a.json(),
        Cmd::Ledger(a) => a.json(),
        Cmd::Outbox(a) => a.client.json,
        Cmd::Payout(a) => a.client.json,
        Cmd::Statement(a) => a.client.json,
        Cmd::Token(a) => match &a.action {
            TokenAction::Issue { client, .. }
            | TokenAction::Revoke { client, .. }
            | TokenAction::List { client } => client.json,
        },
    }
}

/// Parses `staff`, `system`, `front-end`, `payment-system`, `seller:ID`, `provider:ID`,
/// `verifier:ID` or `device:POS_ID`.
///
/// Errors: a message naming the accepted forms.
pub fn parse_actor(s: &str) -> Result<Actor, String> {
    let bad = || {
        format!("principal {s:?}: use staff, system, front-end, payment-system, seller:ID, provider:ID, verifier:ID or device:POS_ID")
    };
    match s.split_once(':') {
        None if s == "staff" => Ok(Actor::Staff),
        None if s == "system" => Ok(Actor::System),
        None if s == "front-end" => Ok(Actor::FrontEnd),
        None if s == "payment-system" => Ok(Actor::PaymentSystem),
        Some(("verifier", id)) => id.parse().map(Actor::Verifier).map_err(|_| bad()),
        Some(("device", id)) => id.parse().map(Actor::Device).map_err(|_| bad()),
        Some(("seller", id)) => id.parse().map(Actor::Seller).map_err(|_| bad()),
        Some(("provider", id)) => id.parse().map(Actor::Provider).map_err(|_| bad()),
        _ => Err(bad()),
    }
}

/// A principal in the form [`parse_actor`] reads: `staff`, `seller:500`, …
pub fn actor_arg(actor: Actor) -> String {
    match actor {
        Actor::Staff => "staff".into(),
        Actor::System => "system".into(),
        Actor::FrontEnd => "front-end".into(),
        Actor::PaymentSystem => "payment-system".into(),
        Actor::Seller(id) => format!("seller:{id}"),
        Actor::Provider(id) => format!("provider:{id}"),
        Actor::Verifier(id) => format!("verifier:{id}"),
        Actor::Device(id) => format!("device:{id}"),
    }
}

async fn run_client(cmd: Cmd) -> ExitCode {
    let json = wants_json(&cmd);
    let fail = |kind: &str, msg: String| {
        if json {
            println!(
                "{}",
                serde_json::json!({"ok": false, "error": {"kind": kind, "message": msg}})
            );
        } else {
            eprintln!("error: {msg}");
        }
        ExitCode::from(2)
    };
    let (client_args, request) = match build_request(cmd) {
        Ok(x) => x,
        Err(e) => return fail("usage", e),
    };
    let target: Target = match client_args.server.parse() {
        Ok(t) => t,
        Err(e) => return fail("usage", e),
    };
    let token = match std::fs::read_to_string(&client_args.token_file) {
        Ok(t) => t.trim().to_string(),
        Err(e) => {
            return fail(
                "token",
                format!(
                    "reading token file {}: {e}",
                    client_args.token_file.display()
                ),
            )
        }
    };
    let zone = match time::Zone::new(&client_args.time_zone) {
        Ok(z) => z,
        Err(e) => return fail("usage", e),
    };
    let options = vouch_protocol::client::ClientOptions {
        request_timeout_ms: client_args.timeout_s * 1000,
    };
    let client = match Client::connect_with(&target, &token, Some(&client_args.ca), options).await {
        Ok(c) => c,
        Err(ClientError::Refused(e)) => {
            // The server answered: a refusal (bad token, version), exit 1.
            print_refusal(&e, json);
            return ExitCode::from(1);
        }
        Err(e) => return fail("connect", connect_error_text(&target, &e)),
    };
    let request = match request {
        ClientRequest::Export(spec) => {
            return match ledger::export(&client, spec, json, &zone).await {
                Ok(_) => ExitCode::SUCCESS,
                Err(ledger::ExportError::Usage(e)) => fail("usage", e),
                Err(ledger::ExportError::Refused(e)) => {
                    print_refusal(&e, json);
                    ExitCode::from(1)
                }
                Err(ledger::ExportError::Client(e)) => fail("connection", e.to_string()),
            }
        }
        ClientRequest::Outbox(r) => return outbox::run(&client, r, json, &zone).await,
        other => other,
    };
    // A redemption's request id is what a later reversal names.
    let request_id = match &request {
        ClientRequest::Engine(c) => c.request_id(),
        _ => None,
    };
    let outcome = send(&client, request).await;
    match outcome {
        Ok(Ok(shown)) => {
            show(shown, json, &zone, request_id);
            ExitCode::SUCCESS
        }
        Ok(Err(e)) => {
            print_refusal(&e, json);
            ExitCode::from(1)
        }
        // The server refused the request as a whole (e.g. the role matrix).
        Err(ClientError::Refused(e)) => {
            print_refusal(&e, json);
            ExitCode::from(1)
        }
        Err(e) => fail("connection", e.to_string()),
    }
}

/// Sends a client command and waits for what comes back (every page of a
/// list read or a history).
async fn send(
    client: &Client,
    request: ClientRequest,
) -> Result<Result<Shown, WireError>, ClientError> {
    match request {
        ClientRequest::Engine(Command::History(h)) => history_all_pages(client, h)
            .await
            .map(|r| r.map(Shown::Engine)),
        ClientRequest::Engine(Command::Transfers(l)) => transfers_all_shards(client, l)
            .await
            .map(|r| r.map(Shown::Engine)),
        ClientRequest::Engine(Command::Orders(l)) => orders_all_shards(client, l)
            .await
            .map(|r| r.map(Shown::Engine)),
        ClientRequest::Engine(command) => {
            client.command(command).await.map(|r| r.map(Shown::Engine))
        }
        ClientRequest::Catalog(rid, actor, command) => client
            .catalog_marked(rid, actor, command)
            .await
            .map(|r| r.map(|(outcome, replayed)| Shown::Catalog(outcome, replayed))),
        ClientRequest::Read(query) => read_all_pages(client, query)
            .await
            .map(|r| r.map(Shown::View)),
        ClientRequest::NewToken(rid, token, command) => client
            .catalog(rid, Some(Actor::Staff), command)
            .await
            .map(|r| r.map(|_| Shown::Token(token))),
        ClientRequest::Export(_) => unreachable!("an export is written while it is read"),
        ClientRequest::Outbox(_) => unreachable!("outbox requests print their own answers"),
    }
}

/// Prints what a client command got back: text, or one JSON object.
fn show(shown: Shown, json: bool, zone: &time::Zone, request_id: Option<RequestId>) {
    match shown {
        Shown::Engine(outcome) => {
            print_outcome(&outcome, json, zone, request_id);
        }
        Shown::View(view) => {
            catalog::print_view(&view, json, zone);
        }
        Shown::Token(token) => {
            let source = crate::server::token_source(&crate::server::token_hash(&token));
            if json {
                println!(
                    "{}",
                    serde_json::json!({"ok": true, "token": token, "request_source": source.to_string()})
                );
            } else {
                println!("{token}");
                eprintln!("request ids of this token use source {source}");
            }
        }
        Shown::Catalog(outcome, replayed) => {
            let (detail, text) = match &outcome {
                CatalogOutcome::Settlement(s) => (
                    settle::settlement_json(s, zone),
                    settle::settlement_line(s, zone),
                ),
                other => (serde_json::json!(other), other.to_string()),
            };
            if json {
                print_json(serde_json::json!({"ok": true, "outcome": outcome.name(),
                                   "replayed": replayed,
                                   "message": text, "detail": detail}));
            } else if replayed {
                println!(
                    "already done by this request id (a repeat; nothing applied again): {text}"
                );
            } else {
                println!("{text}");
            }
        }
    }
}

/// What a client command sends.
enum ClientRequest {
    Engine(Command),
    /// A catalog read, run as the token's principal.
    Read(CatalogQuery),
    Catalog(RequestId, Option<Actor>, CatalogCommand),
    /// A token command; the token is shown once it is registered.
    NewToken(RequestId, String, CatalogCommand),
    /// The RPT-5 export, written as it is read.
    Export(ledger::ExportSpec),
    /// A staff outbox request.
    Outbox(vouch_protocol::outbox::OutboxRequest),
}

/// What a client command got back.
enum Shown {
    Engine(Outcome),
    View(CatalogView),
    /// The outcome, and whether it answers a repeat.
    Catalog(CatalogOutcome, bool),
    Token(String),
}

/// Reads a voucher's history page by page and gathers every event (a
/// voucher redeemed and reversed many times has more than one page).
async fn history_all_pages(
    client: &Client,
    mut h: History,
) -> Result<Result<Outcome, WireError>, ClientError> {
    let mut all: Option<vouch_engine::command::VoucherHistory> = None;
    loop {
        let page = match client.command(Command::History(h.clone())).await? {
            Ok(Outcome::History(page)) => page,
            other => return Ok(other),
        };
        let next = page.next;
        match &mut all {
            None => all = Some(page),
            Some(a) => a.events.extend(page.events),
        }
        match next {
            Some(from) if from > h.from => h.from = from,
            _ => break,
        }
    }
    Ok(Ok(Outcome::History(all.expect("one page was read"))))
}

/// Reads every shard's transfers page by page and gathers them in one
/// list (shard by shard).
async fn transfers_all_shards(
    client: &Client,
    mut l: vouch_engine::command::ListTransfers,
) -> Result<Result<Outcome, WireError>, ClientError> {
    let mut items = Vec::new();
    for shard in 0..client.shards() {
        (l.shard, l.after) = (shard, 0);
        loop {
            let page = match client.command(Command::Transfers(l.clone())).await? {
                Ok(Outcome::Transfers(page)) => page,
                other => return Ok(other),
            };
            items.extend(page.items);
            match page.next {
                Some(after) if after > l.after => l.after = after,
                _ => break,
            }
        }
    }
    let page = vouch_engine::command::TransferPage { items, next: None };
    Ok(Ok(Outcome::Transfers(page)))
}

/// Reads every shard's orders page by page (each page looks at a bounded
/// number of vouchers) and gathers them in one list.
async fn orders_all_shards(
    client: &Client,
    mut l: vouch_engine::command::ListOrders,
) -> Result<Result<Outcome, WireError>, ClientError> {
    let mut items = Vec::new();
    for shard in 0..client.shards() {
        (l.shard, l.from) = (shard, 0);
        loop {
            let page = match client.command(Command::Orders(l.clone())).await? {
                Ok(Outcome::Orders(page)) => page,
                other => return Ok(other),
            };
            items.extend(page.items);
            match page.next {
                Some(from) if from > l.from => l.from = from,
                _ => break,
            }
        }
    }
    let page = vouch_engine::command::OrderPage { items, next: None };
    Ok(Ok(Outcome::Orders(page)))
}

/// Runs a list read page by page until a page comes back short, and
/// gathers every item.
async fn read_all_pages(
    client: &Client,
    query: CatalogQuery,
) -> Result<Result<CatalogView, WireError>, ClientError> {
    let mut view = match client.catalog_read(None, query.clone()).await? {
        Ok(v) => v,
        Err(e) => return Ok(Err(e)),
    };
    let mut next = catalog::next_page(&query, &view);
    while let Some(q) = next {
        let more = match client.catalog_read(None, q.clone()).await? {
            Ok(v) => v,
            Err(e) => return Ok(Err(e)),
        };
        next = catalog::next_page(&q, &more);
        catalog::extend_view(&mut view, more);
    }
    Ok(Ok(view))
}

fn build_request(cmd: Cmd) -> Result<(ClientArgs, ClientRequest), String> {
    if let Cmd::Ledger(a) = cmd {
        let (client, spec) = a.build();
        return Ok((client, ClientRequest::Export(spec)));
    }
    if let Cmd::Outbox(a) = cmd {
        let (client, r) = a.build();
        return Ok((client, ClientRequest::Outbox(r)));
    }
    if let Cmd::Catalog(a) = cmd {
        let command: CatalogCommand = serde_json::from_str(&a.command)
            .map_err(|e| format!("catalog command is not valid JSON for a catalog command: {e}"))?;
        let rid = request_id_for(&a.request_id, &a.client)?;
        let actor = a.act_as.as_deref().map(parse_actor).transpose()?;
        return Ok((a.client, ClientRequest::Catalog(rid, actor, command)));
    }
    fn family<T: Subcommand>(
        f: Family<T>,
        build: fn(T) -> catalog::Built,
    ) -> Result<(ClientArgs, ClientRequest), String> {
        let (actor, command) = match build(f.action) {
            catalog::Built::Read(_) if f.request_id.is_some() => {
                return Err("reads change nothing and take no --request-id".into())
            }
            catalog::Built::Read(query) => return Ok((f.client, ClientRequest::Read(query))),
            catalog::Built::Command(actor, command) => (actor, command),
        };
        let rid = f
            .request_id
            .as_deref()
            .ok_or_else(|| "catalog commands need --request-id SERIAL or SOURCE:SERIAL".to_string())
            .and_then(|r| request_id_for(r, &f.client))?;
        Ok((f.client, ClientRequest::Catalog(rid, Some(actor), command)))
    }
    let cmd = match cmd {
        Cmd::Category(f) => return family(f, catalog::category),
        Cmd::Seller(f) => return family(f, catalog::seller),
        Cmd::Provider(f) => return family(f, catalog::provider),
        Cmd::Outlet(f) => return family(f, catalog::outlet),
        Cmd::Product(f) => return family(f, catalog::product),
        Cmd::Lockout(f) => return family(f, catalog::lockout),
        Cmd::Settlement(f) => return family(f, settle::settlement),
        Cmd::Payout(f) => return family(f, settle::payout),
        Cmd::Statement(f) => return family(f, settle::statement),
        other => other,
    };
    if let Cmd::Token(a) = cmd {
        return Ok(match a.action {
            TokenAction::Issue {
                principal,
                request_id,
                client,
            } => {
                use rand::RngCore;
                let actor = parse_actor(&principal)?;
                let mut raw = [0u8; 24];
                rand::rng().fill_bytes(&mut raw);
                let token: String = raw.iter().map(|b| format!("{b:02x}")).collect();
                let command = CatalogCommand::IssueToken {
                    token_hash: crate::server::token_hash(&token),
                    actor,
                };
                let rid = request_id_for(&request_id, &client)?;
                (client, ClientRequest::NewToken(rid, token, command))
            }
            TokenAction::List { client } => (
                client,
                ClientRequest::Read(CatalogQuery::Tokens {
                    after: None,
                    limit: TOKENS_PAGE_ITEMS_MAX,
                }),
            ),
            TokenAction::Revoke {
                token,
                file,
                id,
                principal,
                request_id,
                client,
            } => {
                let which = match (token, file, id, principal) {
                    (_, _, Some(id), _) => TokenRef::Id(id),
                    (_, _, _, Some(p)) => TokenRef::Principal(parse_actor(&p)?),
                    (Some(t), _, _, _) => TokenRef::Hash(crate::server::token_hash(t.trim())),
                    (None, Some(f), _, _) => {
                        let t = std::fs::read_to_string(&f)
                            .map_err(|e| format!("reading token file {}: {e}", f.display()))?;
                        TokenRef::Hash(crate::server::token_hash(t.trim()))
                    }
                    (None, None, None, None) => {
                        return Err("name the token: --id, --principal or --file".into())
                    }
                };
                let command = CatalogCommand::RevokeToken { which };
                let rid = request_id_for(&request_id, &client)?;
                (client, ClientRequest::Catalog(rid, None, command))
            }
        });
    }
    let (args, command) = build_command(cmd)?;
    Ok((args, ClientRequest::Engine(command)))
}

fn build_command(cmd: Cmd) -> Result<(ClientArgs, Command), String> {
    Ok(match cmd {
        Cmd::Serve(_)
        | Cmd::Catalog(_)
        | Cmd::Token(_)
        | Cmd::Category(_)
        | Cmd::Seller(_)
        | Cmd::Provider(_)
        | Cmd::Outlet(_)
        | Cmd::Product(_)
        | Cmd::Lockout(_)
        | Cmd::Settlement(_)
        | Cmd::Payout(_)
        | Cmd::Statement(_)
        | Cmd::Ledger(_)
        | Cmd::Outbox(_) => return Err("internal: this command is not an engine command".into()),
        Cmd::Issue(a) => {
            let validity = a.validity.validity();
            let c = Issue {
                order_id: a.order_id,
                seller_id: a.seller,
                product_id: a.product,
                units: a.units,
                unit_price: a.unit_price,
                mobile: a.mobile,
                validity,
                code_digits: a.code_digits,
            };
            (a.client, Command::Issue(c))
        }
        Cmd::Lookup(a) => {
            let c = Lookup {
                code: parse_code(&a.code)?,
                phone_last4: last4_arg(a.last4)?,
                verifier_id: a.verifier,
                pos_id: a.pos,
            };
            (a.client, Command::Lookup(c))
        }
        Cmd::Refund(a) => return a.build(),
        Cmd::Extend(a) => return a.build(),
        Cmd::Order(a) => return Ok(a.build()),
        Cmd::RefundTransfer(a) => return a.build(),
        Cmd::Redeem(a) => {
            let c = Redeem {
                request_id: request_id_for(&a.request_id, &a.client)?,
                code: parse_code(&a.code)?,
                phone_last4: last4_arg(a.last4)?,
                units: a.units,
                outlet_id: a.outlet,
                // 0: "the token's own verifier account" (the server fills it
                // in for a verifier's token and refuses it for others).
                verifier_id: a.verifier.unwrap_or(VerifierId(0)),
                pos_id: a.pos,
            };
            (a.client, Command::Redeem(c))
        }
        Cmd::Reverse(a) => {
            let c = Reverse {
                request_id: request_id_for(&a.request_id, &a.client)?,
                code: parse_code(&a.code)?,
                redemption: request_id_for(&a.redemption, &a.client)?,
                pos_id: a.pos,
                verifier_id: a.verifier,
                seller_id: a.seller,
            };
            (a.client, Command::Reverse(c))
        }
        Cmd::History(a) => {
            let c = History {
                code: parse_code(&a.code)?,
                seller_id: None,
                from: 0,
                limit: AUDIT_PAGE_ITEMS_MAX,
            };
            (a.client, Command::History(c))
        }
    })
}

#[cfg(test)]
mod json_tests {
    use super::*;
    use vouch_engine::ProviderId;

    #[test]
    fn cli_principals_print_in_the_form_they_are_given() {
        for a in [
            Actor::Staff,
            Actor::System,
            Actor::FrontEnd,
            Actor::Seller(SellerId(500)),
            Actor::Provider(ProviderId(70)),
            Actor::Verifier(VerifierId(41)),
            Actor::Device(PosId(31)),
        ] {
            assert_eq!(parse_actor(&actor_arg(a)), Ok(a), "{a}");
        }
        assert_eq!(actor_arg(Actor::Device(PosId(31))), "device:31");
    }

    #[test]
    fn cli_json_integers_above_2_pow_53_are_strings() {
        let mut v = serde_json::json!({"seller": 12603044776640513u64, "outlets": [126030447766405131u64, 7],
                                       "provider": 15402406241384792065u64, "exact": 9007199254740992u64});
        strings_for_big(&mut v);
        assert_eq!(
            v,
            serde_json::json!({"seller": "12603044776640513", "outlets": ["126030447766405131", 7],
                               "provider": "15402406241384792065", "exact": 9007199254740992u64})
        );
    }
}
