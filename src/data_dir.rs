//! The data directory: what `vouch serve` keeps on disk, and recovery.
//!
//! ```text
//! DIR/db/          RocksDB (column families `log`, `meta`)
//! DIR/admin.token  the admin credential, written on first start (mode 0600)
//! DIR/cert.pem     self-signed development certificate for QUIC (TLS 1.3)
//! DIR/key.pem      its private key (mode 0600)
//! ```
//! The engine's seed and settings are written to `meta` when the directory
//! is created and never change afterwards: replay needs the same values.

use anyhow::Context;
use rand::RngCore;
use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use vouch_engine::catalog::Catalog;
use vouch_engine::log::{CatalogBatch, LogError, LogRecord, ShardBatch};
use vouch_engine::message::ShardMessage;
use vouch_engine::{EngineConfig, RequestId, Shard};
use vouch_storage::Storage;

/// The log layout this build reads: [`vouch_engine::log::LOG_FORMAT`],
/// also kept in `meta` as `log_format`. A directory without it was written
/// by a build before issue 8 (format 1). A directory in another format is
/// refused with a clear message before its first record is decoded.
pub const LOG_FORMAT: u32 = vouch_engine::log::LOG_FORMAT as u32;

/// Refuses a directory whose log was written in another layout.
///
/// Errors: the directory's format and this build's, with what to do.
fn check_log_format(storage: &Storage, root: &Path) -> anyhow::Result<()> {
    let found = match storage.meta_get("log_format")? {
        Some(bytes) => std::str::from_utf8(&bytes)
            .ok()
            .and_then(|s| s.parse::<u32>().ok())
            .context("meta log_format is not a number")?,
        None => 1,
    };
    if found != LOG_FORMAT {
        anyhow::bail!(
            "data directory {} holds a log in format {found}; this vouch reads format {LOG_FORMAT}. \
             Serve it with the vouch that wrote it, or start a new directory (--data-dir)",
            root.display()
        );
    }
    Ok(())
}

/// Files of a data directory.
pub struct Paths {
    /// The directory.
    pub root: PathBuf,
    /// `admin.token`.
    pub admin_token: PathBuf,
    /// `cert.pem`.
    pub cert: PathBuf,
    /// `key.pem`.
    pub key: PathBuf,
}

impl Paths {
    /// The files under `root`.
    pub fn new(root: &Path) -> Paths {
        Paths {
            root: root.to_path_buf(),
            admin_token: root.join("admin.token"),
            cert: root.join("cert.pem"),
            key: root.join("key.pem"),
        }
    }
}

/// A recovered data directory, ready to serve.
pub struct Opened {
    /// The storage, positioned after the last log record.
    pub storage: Storage,
    /// Shards with the replayed state.
    pub shards: Vec<Shard>,
    /// The catalog with the replayed state.
    pub catalog: Catalog,
    /// The engine settings of this directory.
    pub config: EngineConfig,
    /// The admin token.
    pub admin_token: String,
    /// Log records replayed.
    pub records_replayed: u64,
    /// Request id → shard of its first use, rebuilt from the log.
    pub claims: HashMap<RequestId, u32>,
    /// Whether the directory was created by this call.
    pub created: bool,
}

fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    opts.mode(0o600);
    let mut f = opts
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(contents)?;
    f.sync_all()?;
    Ok(())
}

/// Opens `root` (creating it with `new_config` when it has no database),
/// writes the admin token and development certificate when missing, and
/// replays the log into fresh shards.
///
/// Errors: unreadable or corrupt directory; a log record that does not
/// decode; RocksDB failures. Panics when a replayed state breaks an engine
/// invariant (the directory must then be inspected, not served).
pub fn open(root: &Path, new_config: &EngineConfig) -> anyhow::Result<Opened> {
    std::fs::create_dir_all(root).with_context(|| format!("creating {}", root.display()))?;
    let paths = Paths::new(root);
    let mut storage = open_storage(root)?;
    let (config, seed, created) = settings(&storage, root, new_config)?;
    let admin_token = admin_token(&paths)?;
    ensure_development_certificate(&paths)?;
    let mut recovered = recover(&mut storage, &config, seed)?;
    let mut shards = recovered.shards;
    log_missing_facts(&mut storage, &mut shards, &recovered.catalog)?;
    log_unsent_messages(&mut storage, &mut recovered.catalog, recovered.unsent)?;
    for s in &shards {
        s.check_invariants();
    }
    recovered
        .catalog
        .check_invariants()
        .map_err(|e| anyhow::anyhow!("the recovered catalog breaks MON-5: {e}"))?;
    Ok(Opened {
        storage,
        shards,
        catalog: recovered.catalog,
        config,
        admin_token,
        records_replayed: recovered.records,
        claims: recovered.claims,
        created,
    })
}

/// Opens the database, naming the holder when another server has it.
fn open_storage(root: &Path) -> anyhow::Result<Storage> {
    Storage::open(&root.join("db")).map_err(|e| {
        if e.to_string().contains("lock") {
            anyhow::anyhow!(
                "data directory {} is in use by another vouch server (its database lock is held): {e}",
                root.display()
            )
        } else {
            anyhow::Error::new(e).context("opening the database")
        }
    })
}

/// The directory's settings and seed, written on creation (then `created`
/// is true) and read back ever after.
///
/// Errors: unreadable meta values, a log in another format, settings that
/// do not validate.
fn settings(
    storage: &Storage,
    root: &Path,
    new_config: &EngineConfig,
) -> anyhow::Result<(EngineConfig, [u8; 32], bool)> {
    if let Some(bytes) = storage.meta_get("config")? {
        let config: EngineConfig = serde_json::from_slice(&bytes).context("meta config")?;
        let seed: [u8; 32] = storage
            .meta_get("seed")?
            .context("meta seed missing")?
            .try_into()
            .map_err(|_| anyhow::anyhow!("meta seed is not 32 bytes"))?;
        check_log_format(storage, root)?;
        return Ok((config, seed, false));
    }
    new_config.validate().map_err(anyhow::Error::msg)?;
    let mut seed = [0u8; 32];
    rand::rng().fill_bytes(&mut seed);
    storage.meta_put_sync("seed", &seed)?;
    storage.meta_put_sync("log_format", LOG_FORMAT.to_string().as_bytes())?;
    storage.meta_put_sync("config", &serde_json::to_vec(new_config)?)?;
    Ok((new_config.clone(), seed, true))
}

/// The admin token, generated (24 random bytes, hex) on first start.
fn admin_token(paths: &Paths) -> anyhow::Result<String> {
    if !paths.admin_token.exists() {
        let mut raw = [0u8; 24];
        rand::rng().fill_bytes(&mut raw);
        let token: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        write_private(&paths.admin_token, token.as_bytes())?;
    }
    Ok(std::fs::read_to_string(&paths.admin_token)
        .with_context(|| format!("reading {}", paths.admin_token.display()))?
        .trim()
        .to_string())
}

/// A self-signed certificate for localhost when the directory has none.
fn ensure_development_certificate(paths: &Paths) -> anyhow::Result<()> {
    if paths.cert.exists() && paths.key.exists() {
        return Ok(());
    }
    let cert = rcgen::generate_simple_self_signed(vec![
        "localhost".into(),
        "127.0.0.1".into(),
        "::1".into(),
    ])
    .context("generating the development certificate")?;
    let _ = std::fs::remove_file(&paths.key);
    let _ = std::fs::remove_file(&paths.cert);
    write_private(&paths.key, cert.key_pair.serialize_pem().as_bytes())?;
    std::fs::write(&paths.cert, cert.cert.pem())?;
    Ok(())
}

/// What replaying the log rebuilt.
struct Recovered {
    shards: Vec<Shard>,
    catalog: Catalog,
    claims: HashMap<RequestId, u32>,
    records: u64,
    /// Per shard, its messages the catalog has not applied, in order.
    unsent: Vec<VecDeque<ShardMessage>>,
}

/// Replays every log record, in order, into fresh shards and a fresh
/// catalog.
///
/// Errors: a record that does not decode or does not replay (see
/// [`replay_record`]), naming its sequence number.
fn recover(
    storage: &mut Storage,
    config: &EngineConfig,
    seed: [u8; 32],
) -> anyhow::Result<Recovered> {
    let mut shards = (0..config.shards)
        .map(|i| Shard::new(i, config.clone(), seed))
        .collect::<Result<Vec<_>, _>>()
        .map_err(anyhow::Error::msg)?;
    let tz = config.validate().map_err(anyhow::Error::msg)?;
    let mut catalog = Catalog::new(tz);
    let mut claims = HashMap::new();
    let mut unsent = vec![VecDeque::new(); shards.len()];
    let records = storage
        .replay(|seq, bytes| -> anyhow::Result<()> {
            let record = LogRecord::decode(bytes).with_context(|| format!("log record {seq}"))?;
            replay_record(&mut shards, &mut catalog, &mut claims, record)
                .with_context(|| format!("log record {seq}"))?;
            track_messages(&mut shards, &catalog, &mut unsent);
            Ok(())
        })
        .map_err(|e| anyhow::anyhow!("replaying the log: {e:#}"))?;
    Ok(Recovered {
        shards,
        catalog,
        claims,
        records,
        unsent,
    })
}

/// Keeps, per shard, the messages replay made that the catalog has not
/// applied yet (those at or below its mark were applied once already).
fn track_messages(shards: &mut [Shard], catalog: &Catalog, unsent: &mut [VecDeque<ShardMessage>]) {
    for (i, (shard, queue)) in shards.iter_mut().zip(unsent.iter_mut()).enumerate() {
        queue.extend(shard.take_messages());
        let mark = catalog.shard_mark(i as u32);
        while queue.front().is_some_and(|m| m.seq <= mark) {
            queue.pop_front();
        }
    }
}

/// Shard messages a stop or crash kept from reaching the catalog (the
/// shard's record was durable, the catalog's was not) are applied and
/// logged now, before serving: each is applied exactly once.
///
/// Errors: a message the catalog refuses (the log and this build
/// disagree); the write.
fn log_unsent_messages(
    storage: &mut Storage,
    catalog: &mut Catalog,
    unsent: Vec<VecDeque<ShardMessage>>,
) -> anyhow::Result<()> {
    let mut batch = CatalogBatch::new(crate::clock::now_ms());
    for m in unsent.into_iter().flatten() {
        batch
            .message(catalog, &m, &mut Vec::new())
            .map_err(|e| anyhow::anyhow!("shard {} message {}: {e}", m.shard, m.seq))?;
    }
    if let Some(record) = batch.record() {
        storage
            .append_sync(std::iter::once(record.encode().as_slice()))
            .context("logging shard messages the catalog lacked")?;
    }
    Ok(())
}

/// Catalog facts a stop or crash kept from reaching a shard's log (a shard
/// logs a fact with its next batch) are derived again from the catalog. A
/// shard lacking one gets it logged now, before it serves: it changes what
/// the shard issues (validity, code length) and redeems (ORD-7), so a later
/// replay must see it at this point too.
fn log_missing_facts(
    storage: &mut Storage,
    shards: &mut [Shard],
    catalog: &Catalog,
) -> anyhow::Result<()> {
    let now_ms = crate::clock::now_ms();
    let facts = catalog.facts();
    let mut records = Vec::new();
    for (index, s) in shards.iter_mut().enumerate() {
        let missing: Vec<_> = facts.iter().filter(|f| !s.has_fact(f)).cloned().collect();
        // Never before the shard's last record, whatever the wall clock.
        let mut batch = ShardBatch::new(now_ms.max(s.clock_floor_ms()));
        for fact in missing {
            batch.fact(s, fact);
        }
        records.extend(batch.record(index as u32).map(|r| r.encode()));
    }
    storage
        .append_sync(records.iter().map(Vec::as_slice))
        .context("logging catalog facts the shards lacked")?;
    Ok(())
}

/// Applies one log record through the workers' own path
/// ([`ShardBatch::replay`], [`CatalogBatch::replay`]) and rebuilds the
/// request-id claims of its shard commands.
///
/// Errors: a shard the engine does not have, or an input that changes
/// nothing again (the log and this build disagree).
fn replay_record(
    shards: &mut [Shard],
    catalog: &mut Catalog,
    claims: &mut HashMap<RequestId, u32>,
    record: LogRecord,
) -> anyhow::Result<()> {
    match record {
        LogRecord::Shard {
            shard: index,
            now_ms,
            inputs,
        } => {
            let shard = shards
                .get_mut(index as usize)
                .ok_or(LogError::NoSuchShard(index))?;
            // Records are written in each shard's time order: an earlier
            // one after a later means a reordered or foreign log.
            anyhow::ensure!(
                now_ms >= shard.clock_floor_ms(),
                "shard {index}'s record at {now_ms} ms comes after one at {} ms",
                shard.clock_floor_ms()
            );
            let mut effects = Vec::new();
            ShardBatch::replay(shard, now_ms, &inputs, &mut effects, |shard, c| {
                if let Some(rid) = c.request_id().filter(|r| shard.knows_request(r)) {
                    claims.entry(rid).or_insert(index);
                }
            })?;
        }
        LogRecord::Catalog { now_ms, inputs } => {
            CatalogBatch::replay(catalog, now_ms, &inputs, &mut Vec::new())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use vouch_engine::catalog::Account;
    use vouch_engine::command::{Command, Issue, Redeem};
    use vouch_engine::shard::Caller;
    use vouch_engine::{Fen, OutletId, ProductId, SellerId, VerifierId};

    /// Logs, in the shard that owns it, a redemption of 2 of 3 units at
    /// 12.50 and the tick that ends its reversal window — the shard's
    /// records only, as if the server died before the catalog's.
    fn redeem_and_end_the_window(opened: &mut Opened) -> (u32, i64) {
        let now = 1_795_924_800_000;
        let issue = Command::Issue(Issue {
            order_id: "o-1".into(),
            seller_id: SellerId(7),
            product_id: ProductId(1),
            units: 3,
            unit_price: Fen::new(1_250),
            mobile: "13800001234".into(),
            validity: vouch_engine::validity::Validity::DaysFromIssue(30),
            code_digits: 8,
        });
        let shard = vouch_engine::engine::route(&issue, opened.config.shards);
        let s = &mut opened.shards[shard as usize];
        let mut batch = ShardBatch::new(now);
        let reply = batch
            .command(s, Caller::Staff, &issue, &mut Vec::new())
            .reply;
        let Ok(vouch_engine::Outcome::Issued(issued)) = reply else {
            panic!("{reply:?}")
        };
        let redeem = Command::Redeem(Redeem {
            request_id: RequestId {
                source: 1,
                serial: 1,
            },
            code: issued.code,
            phone_last4: "1234".into(),
            units: 2,
            outlet_id: OutletId(3),
            verifier_id: VerifierId(4),
            pos_id: None,
        });
        // Codes route by value: the redemption's shard is the code's.
        let at = vouch_engine::engine::route(&redeem, opened.config.shards);
        assert_eq!(at, shard, "a voucher's code lives in its order's shard");
        assert!(
            batch
                .command(s, Caller::Staff, &redeem, &mut Vec::new())
                .logged
        );
        let first = batch.record(shard).unwrap().encode();
        let mut tick = ShardBatch::new(now + opened.config.reversal_window_ms);
        assert_eq!(tick.tick(s), 1);
        let second = tick.record(shard).unwrap().encode();
        assert_eq!(s.take_messages().len(), 1, "the tick made one message");
        opened
            .storage
            .append_sync([first.as_slice(), second.as_slice()])
            .unwrap();
        (shard, now)
    }

    /// MON-5 exactly once across a crash between the two writes: the
    /// shard's record that made money payable is durable, the catalog's
    /// that would book it is not. Recovery books it once; later restarts
    /// book it no more.
    #[test]
    fn mon_5_a_crash_between_shard_and_catalog_books_the_money_once() {
        let dir = tempfile::tempdir().unwrap();
        let config = EngineConfig::default();
        let mut opened = open(dir.path(), &config).unwrap();
        let (shard, _) = redeem_and_end_the_window(&mut opened);
        assert_eq!(opened.catalog.shard_mark(shard), 0);
        drop(opened);
        for _ in 0..2 {
            let again = open(dir.path(), &config).unwrap();
            assert_eq!(again.catalog.shard_mark(shard), 1);
            assert_eq!(
                again.catalog.balance(Account::Payable(SellerId(7))),
                Fen::new(2_500)
            );
            assert_eq!(again.catalog.balance(Account::FromShards), Fen::new(-2_500));
            drop(again);
        }
    }

    /// A directory written in another log layout is refused by name, before
    /// any record is decoded; one in this layout opens again.
    #[test]
    fn inv_3_a_log_in_another_format_is_refused_with_the_way_out() {
        let dir = tempfile::tempdir().unwrap();
        let config = EngineConfig::default();
        let opened = open(dir.path(), &config).unwrap();
        assert!(opened.created);
        drop(opened);
        let again = open(dir.path(), &config).unwrap();
        assert!(!again.created);
        drop(again);
        {
            let storage = Storage::open(&dir.path().join("db")).unwrap();
            storage.meta_put_sync("log_format", b"1").unwrap();
        }
        let err = open(dir.path(), &config).err().expect("format 1 refused");
        let text = format!("{err:#}");
        assert!(
            text.contains("format 1") && text.contains(&format!("reads format {LOG_FORMAT}")),
            "{text}"
        );
    }
}
