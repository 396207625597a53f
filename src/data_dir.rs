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
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use vouch_engine::catalog::{Actor, Catalog, CatalogCommand};
use vouch_engine::{Command, EngineConfig, RequestId, Shard};
use vouch_storage::Storage;

/// The version of the log records' layout this build writes and reads,
/// kept in `meta` as `log_format`. A directory without it was written by a
/// build before issue 8 (format 1: no verifier on reversals, tokens revoked
/// by hash only) and is refused with a clear message instead of failing on
/// its first record.
pub const LOG_FORMAT: u32 = 2;

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

/// One log record: the state-changing commands one worker applied in one
/// batch, with the batch's time. Replaying records in order rebuilds the
/// state.
#[derive(Serialize, Deserialize)]
pub enum LogRecord {
    /// A voucher shard's batch.
    Shard {
        /// Shard that applied the batch.
        shard: u32,
        /// The batch's `now`, unix ms.
        now_ms: i64,
        /// The batch's state-changing commands, in apply order.
        commands: Vec<Command>,
    },
    /// The catalog's batch.
    Catalog {
        /// The batch's `now`, unix ms.
        now_ms: i64,
        /// The batch's state-changing commands, in apply order.
        entries: Vec<CatalogEntry>,
    },
}

/// A catalog command as applied: who asked, with which request id.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CatalogEntry {
    /// The authenticated actor.
    pub actor: Actor,
    /// Client request id.
    pub request_id: RequestId,
    /// The command.
    pub command: CatalogCommand,
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
    let mut storage = Storage::open(&root.join("db")).map_err(|e| {
        if e.to_string().contains("lock") {
            anyhow::anyhow!(
                "data directory {} is in use by another vouch server (its database lock is held): {e}",
                root.display()
            )
        } else {
            anyhow::Error::new(e).context("opening the database")
        }
    })?;
    let (config, seed, created) = match storage.meta_get("config")? {
        Some(bytes) => {
            let config: EngineConfig = serde_json::from_slice(&bytes).context("meta config")?;
            let seed: [u8; 32] = storage
                .meta_get("seed")?
                .context("meta seed missing")?
                .try_into()
                .map_err(|_| anyhow::anyhow!("meta seed is not 32 bytes"))?;
            check_log_format(&storage, root)?;
            (config, seed, false)
        }
        None => {
            new_config.validate().map_err(anyhow::Error::msg)?;
            let mut seed = [0u8; 32];
            rand::rng().fill_bytes(&mut seed);
            storage.meta_put_sync("seed", &seed)?;
            storage.meta_put_sync("log_format", LOG_FORMAT.to_string().as_bytes())?;
            storage.meta_put_sync("config", &serde_json::to_vec(new_config)?)?;
            (new_config.clone(), seed, true)
        }
    };
    if !paths.admin_token.exists() {
        let mut raw = [0u8; 24];
        rand::rng().fill_bytes(&mut raw);
        let token: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        write_private(&paths.admin_token, token.as_bytes())?;
    }
    let admin_token = std::fs::read_to_string(&paths.admin_token)
        .with_context(|| format!("reading {}", paths.admin_token.display()))?
        .trim()
        .to_string();
    if !paths.cert.exists() || !paths.key.exists() {
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
    }
    let mut shards = (0..config.shards)
        .map(|i| Shard::new(i, config.clone(), seed))
        .collect::<Result<Vec<_>, _>>()
        .map_err(anyhow::Error::msg)?;
    let tz = config.validate().map_err(anyhow::Error::msg)?;
    let mut catalog = Catalog::new(tz);
    let mut catalog_events = Vec::new();
    let mut effects = Vec::new();
    let mut claims = HashMap::new();
    let records_replayed = storage
        .replay(|seq, bytes| -> anyhow::Result<()> {
            let rec: LogRecord =
                postcard::from_bytes(bytes).with_context(|| format!("log record {seq}"))?;
            match rec {
                LogRecord::Shard {
                    shard: index,
                    now_ms,
                    commands,
                } => {
                    let shard = shards
                        .get_mut(index as usize)
                        .with_context(|| format!("log record {seq} names shard {index}"))?;
                    for c in &commands {
                        let _ = shard.apply(now_ms, c, &mut effects);
                        effects.clear();
                        if let Some(rid) = c.request_id().filter(|r| shard.knows_request(r)) {
                            claims.entry(rid).or_insert(index);
                        }
                    }
                }
                LogRecord::Catalog { now_ms, entries } => {
                    for e in &entries {
                        let _ = catalog.apply(
                            now_ms,
                            e.actor,
                            e.request_id,
                            &e.command,
                            &mut catalog_events,
                        );
                        catalog_events.clear();
                    }
                }
            }
            Ok(())
        })
        .map_err(|e| anyhow::anyhow!("replaying the log: {e}"))?;
    // Catalog facts a stop or crash kept from reaching a shard's log (a shard
    // logs a fact with its next batch) are derived again from the catalog.
    // A shard lacking one gets it logged now, before it serves: it changes
    // what the shard issues (validity, code length) and redeems (ORD-7),
    // so a later replay must see it at this point too.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let facts = catalog.facts();
    let mut records = Vec::new();
    for (index, s) in shards.iter_mut().enumerate() {
        let missing: Vec<Command> = facts
            .iter()
            .filter(|f| !s.has_fact(f))
            .map(|f| Command::CatalogFact(f.clone()))
            .collect();
        if missing.is_empty() {
            continue;
        }
        for command in &missing {
            let _ = s.apply(now_ms, command, &mut effects);
        }
        let record = LogRecord::Shard {
            shard: index as u32,
            now_ms,
            commands: missing,
        };
        records.push(postcard::to_allocvec(&record).expect("log records always serialize"));
    }
    effects.clear();
    storage
        .append_sync(records.iter().map(Vec::as_slice))
        .context("logging catalog facts the shards lacked")?;
    for s in &shards {
        s.check_invariants();
    }
    Ok(Opened {
        storage,
        shards,
        catalog,
        config,
        admin_token,
        records_replayed,
        claims,
        created,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
