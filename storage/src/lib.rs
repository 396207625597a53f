//! vouch-storage: durable persistence for vouch on RocksDB.
//!
//! The engine's state lives in memory; what reaches the disk on the
//! acknowledgement path is one sequential log record per shard batch (the
//! batch's mutating commands and its `now`), written by a single group
//! committer as one synced `WriteBatch` (DESIGN "Concurrency and
//! durability"). Recovery replays the log in order through the deterministic
//! engine.
//!
//! Layout:
//! - [`Storage`]: the RocksDB handle with column families `log`, `meta`
//!   and `outbox`. Guarantee: [`Storage::append_sync`] returns only after
//!   every record, and every outbox row written with them, is synced to
//!   disk, or fails and writes none of them.
//! - [`OutboxStore`]: a shared handle on the `outbox` column family for the
//!   server's sender (reads, and its own writes off the commit path).
//! - [`group_commit`]: the committer thread: collect jobs, one synced
//!   `WriteBatch`, then run every job's completion in submission order.
//!
//! This crate knows nothing of the engine: records are opaque bytes.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod group_commit;

use rocksdb::{
    ColumnFamilyDescriptor, Direction, IteratorMode, Options, WriteBatch, WriteOptions, DB,
};
use std::path::Path;
use std::sync::Arc;

const CF_LOG: &str = "log";
const CF_META: &str = "meta";
const CF_OUTBOX: &str = "outbox";

/// RocksDB memtable size for the log column family, in bytes. Sequential
/// appends fill it quickly; 64 MiB keeps flushes infrequent at ~100 MB/s.
pub const LOG_WRITE_BUFFER_BYTES: usize = 64 << 20;

/// A storage failure. The server treats every one as fatal (fail-stop).
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// RocksDB returned an error (open, write, sync or read).
    #[error("rocksdb: {0}")]
    Rocks(#[from] rocksdb::Error),
    /// A log key that is not 8 bytes: the directory is corrupt.
    #[error("corrupt log key of {0} bytes")]
    CorruptKey(usize),
}

/// The on-disk store: a sequential log, a small meta map and the outbox.
pub struct Storage {
    db: Arc<DB>,
    next_seq: u64,
}

/// One row for the `outbox` column family, written in the same synced
/// `WriteBatch` as the log records of its job (ORD-2: a message exists
/// exactly when the change that asked for it is durable).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxPut {
    /// Row key (the server's layout).
    pub key: Vec<u8>,
    /// Row value.
    pub value: Vec<u8>,
}

impl Storage {
    /// Opens (creating when missing) the store in `dir`.
    ///
    /// Errors: [`StorageError::Rocks`] when RocksDB cannot open the directory
    /// (missing permissions, another process holds its lock, corruption).
    pub fn open(dir: &Path) -> Result<Storage, StorageError> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        let mut log_opts = Options::default();
        log_opts.set_write_buffer_size(LOG_WRITE_BUFFER_BYTES);
        let cfs = vec![
            ColumnFamilyDescriptor::new(CF_LOG, log_opts),
            ColumnFamilyDescriptor::new(CF_META, Options::default()),
            ColumnFamilyDescriptor::new(CF_OUTBOX, Options::default()),
        ];
        let db = Arc::new(DB::open_cf_descriptors(&opts, dir, cfs)?);
        let mut storage = Storage { db, next_seq: 0 };
        storage.next_seq = match storage.last_log_seq()? {
            Some(s) => s + 1,
            None => 0,
        };
        Ok(storage)
    }

    fn cf(&self, name: &str) -> &rocksdb::ColumnFamily {
        cf(&self.db, name)
    }

    /// A handle on the outbox column family that outlives moving the
    /// storage into the committer.
    pub fn outbox(&self) -> OutboxStore {
        OutboxStore {
            db: self.db.clone(),
        }
    }

    fn last_log_seq(&self) -> Result<Option<u64>, StorageError> {
        let mut it = self.db.iterator_cf(self.cf(CF_LOG), IteratorMode::End);
        match it.next() {
            None => Ok(None),
            Some(item) => {
                let (k, _) = item?;
                Ok(Some(decode_key(&k)?))
            }
        }
    }

    /// Sequence number the next appended record gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Reads a meta value.
    ///
    /// Errors: [`StorageError::Rocks`] on a read failure.
    pub fn meta_get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.db.get_cf(self.cf(CF_META), key.as_bytes())?)
    }

    /// Writes a meta value and syncs it before returning.
    ///
    /// Errors: [`StorageError::Rocks`] on a write or sync failure.
    pub fn meta_put_sync(&self, key: &str, value: &[u8]) -> Result<(), StorageError> {
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(CF_META), key.as_bytes(), value);
        self.db.write_opt(batch, &wo)?;
        Ok(())
    }

    /// Appends `records` to the log as one synced `WriteBatch`, keyed by
    /// consecutive sequence numbers. Returns after the batch is on disk.
    ///
    /// Errors: [`StorageError::Rocks`] when the write or the sync fails; then
    /// none of the records is acknowledged and the caller must stop.
    pub fn append_sync<'a>(
        &mut self,
        records: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<(), StorageError> {
        self.append_with_outbox_sync(records, std::iter::empty())
    }

    /// [`Storage::append_sync`] with `outbox` rows in the same synced
    /// `WriteBatch`: all of them are durable together, or none.
    ///
    /// Errors: as [`Storage::append_sync`].
    pub fn append_with_outbox_sync<'a>(
        &mut self,
        records: impl IntoIterator<Item = &'a [u8]>,
        outbox: impl IntoIterator<Item = &'a OutboxPut>,
    ) -> Result<(), StorageError> {
        let mut batch = WriteBatch::default();
        let mut seq = self.next_seq;
        let cf = self.cf(CF_LOG);
        for r in records {
            batch.put_cf(cf, seq.to_be_bytes(), r);
            seq += 1;
        }
        let cf = self.cf(CF_OUTBOX);
        for row in outbox {
            batch.put_cf(cf, &row.key, &row.value);
        }
        if batch.is_empty() {
            return Ok(());
        }
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        self.db.write_opt(batch, &wo)?;
        self.next_seq = seq;
        Ok(())
    }

    /// Visits every log record in sequence order.
    ///
    /// Errors: a read failure or a corrupt key, or the first error `visit`
    /// returns (as `Err(Ok(e))`... see [`ReplayError`]).
    pub fn replay<E>(
        &self,
        mut visit: impl FnMut(u64, &[u8]) -> Result<(), E>,
    ) -> Result<u64, ReplayError<E>> {
        let mut count = 0;
        let it = self
            .db
            .iterator_cf(self.cf(CF_LOG), IteratorMode::From(&[], Direction::Forward));
        for item in it {
            let (k, v) = item.map_err(|e| ReplayError::Storage(e.into()))?;
            let seq = decode_key(&k).map_err(ReplayError::Storage)?;
            visit(seq, &v).map_err(ReplayError::Record)?;
            count += 1;
        }
        Ok(count)
    }
}

fn cf<'a>(db: &'a DB, name: &str) -> &'a rocksdb::ColumnFamily {
    db.cf_handle(name)
        .expect("column family is created at open")
}

/// An outbox row as read: (key, value).
pub type OutboxRow = (Vec<u8>, Vec<u8>);

/// One change of an outbox row by the sender.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OutboxChange {
    /// Write the row.
    Put(OutboxPut),
    /// Remove the row with this key.
    Delete(Vec<u8>),
}

/// The sender's handle on the `outbox` column family. Rows are opaque
/// bytes in the server's layout; this handle shares the database with the
/// committer (RocksDB is safe to use from several threads).
#[derive(Clone)]
pub struct OutboxStore {
    db: Arc<DB>,
}

impl OutboxStore {
    /// Reads one row.
    ///
    /// Errors: [`StorageError::Rocks`] on a read failure.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.db.get_cf(cf(&self.db, CF_OUTBOX), key)?)
    }

    /// Up to `limit` rows whose keys start with `prefix`, from the first key
    /// `>= from` (which must start with `prefix`), in key order.
    ///
    /// Errors: [`StorageError::Rocks`] on a read failure.
    pub fn scan(
        &self,
        prefix: &[u8],
        from: &[u8],
        limit: usize,
    ) -> Result<Vec<OutboxRow>, StorageError> {
        let it = self.db.iterator_cf(
            cf(&self.db, CF_OUTBOX),
            IteratorMode::From(from, Direction::Forward),
        );
        let mut rows = Vec::new();
        for item in it {
            if rows.len() >= limit {
                break;
            }
            let (k, v) = item?;
            if !k.starts_with(prefix) {
                break;
            }
            rows.push((k.into_vec(), v.into_vec()));
        }
        Ok(rows)
    }

    /// Applies `changes` as one `WriteBatch`; synced when `sync`. The
    /// sender's own bookkeeping (attempts, delivered marks) is written
    /// without a sync: a crash may forget a delivery, which is then sent
    /// again (at least once), never lost.
    ///
    /// Errors: [`StorageError::Rocks`] on a write failure.
    pub fn write(&self, changes: &[OutboxChange], sync: bool) -> Result<(), StorageError> {
        let cf = cf(&self.db, CF_OUTBOX);
        let mut batch = WriteBatch::default();
        for c in changes {
            match c {
                OutboxChange::Put(p) => batch.put_cf(cf, &p.key, &p.value),
                OutboxChange::Delete(k) => batch.delete_cf(cf, k),
            }
        }
        let mut wo = WriteOptions::default();
        wo.set_sync(sync);
        self.db.write_opt(batch, &wo)?;
        Ok(())
    }
}

/// Why [`Storage::replay`] stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError<E> {
    /// Reading the log failed.
    #[error("storage: {0}")]
    Storage(StorageError),
    /// The visitor refused a record.
    #[error("record: {0}")]
    Record(E),
}

fn decode_key(k: &[u8]) -> Result<u64, StorageError> {
    let bytes: [u8; 8] = k
        .try_into()
        .map_err(|_| StorageError::CorruptKey(k.len()))?;
    Ok(u64::from_be_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inv_3_appended_records_survive_reopen_in_order() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = Storage::open(dir.path()).unwrap();
            s.append_sync([&b"a"[..], &b"b"[..]]).unwrap();
            s.append_sync([&b"c"[..]]).unwrap();
            s.meta_put_sync("seed", b"xyz").unwrap();
        }
        let s = Storage::open(dir.path()).unwrap();
        assert_eq!(s.next_seq(), 3);
        let mut seen = Vec::new();
        let n = s
            .replay(|seq, r| {
                seen.push((seq, r.to_vec()));
                Ok::<(), ()>(())
            })
            .unwrap();
        assert_eq!(n, 3);
        assert_eq!(
            seen,
            vec![(0, b"a".to_vec()), (1, b"b".to_vec()), (2, b"c".to_vec())]
        );
        assert_eq!(s.meta_get("seed").unwrap(), Some(b"xyz".to_vec()));
        assert_eq!(s.meta_get("none").unwrap(), None);
    }

    #[test]
    fn ord_2_outbox_rows_are_durable_with_their_record() {
        let dir = tempfile::tempdir().unwrap();
        let put = |k: &[u8], v: &[u8]| OutboxPut {
            key: k.to_vec(),
            value: v.to_vec(),
        };
        {
            let mut s = Storage::open(dir.path()).unwrap();
            let rows = [put(b"m1", b"a"), put(b"m2", b"b"), put(b"x", b"c")];
            s.append_with_outbox_sync([&b"r"[..]], rows.iter()).unwrap();
            let o = s.outbox();
            o.write(&[OutboxChange::Delete(b"m1".to_vec())], false)
                .unwrap();
        }
        let s = Storage::open(dir.path()).unwrap();
        assert_eq!(s.next_seq(), 1);
        let o = s.outbox();
        assert_eq!(o.get(b"m1").unwrap(), None);
        assert_eq!(
            o.scan(b"m", b"m", 10).unwrap(),
            vec![(b"m2".to_vec(), b"b".to_vec())]
        );
        assert_eq!(o.get(b"x").unwrap(), Some(b"c".to_vec()));
    }

    #[test]
    fn inv_3_second_open_of_a_locked_directory_fails() {
        let dir = tempfile::tempdir().unwrap();
        let _first = Storage::open(dir.path()).unwrap();
        assert!(Storage::open(dir.path()).is_err());
    }
}
