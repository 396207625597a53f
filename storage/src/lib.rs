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
//! - [`Storage`]: the RocksDB handle with column families `log` and `meta`.
//!   Guarantee: [`Storage::append_sync`] returns only after every record
//!   is synced to disk, or fails and writes none of them.
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

const CF_LOG: &str = "log";
const CF_META: &str = "meta";

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

/// The on-disk store: a sequential log and a small meta map.
pub struct Storage {
    db: DB,
    next_seq: u64,
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
        ];
        let db = DB::open_cf_descriptors(&opts, dir, cfs)?;
        let mut storage = Storage { db, next_seq: 0 };
        storage.next_seq = match storage.last_log_seq()? {
            Some(s) => s + 1,
            None => 0,
        };
        Ok(storage)
    }

    fn cf(&self, name: &str) -> &rocksdb::ColumnFamily {
        self.db
            .cf_handle(name)
            .expect("column family is created at open")
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
        let mut batch = WriteBatch::default();
        let mut seq = self.next_seq;
        let cf = self.cf(CF_LOG);
        for r in records {
            batch.put_cf(cf, seq.to_be_bytes(), r);
            seq += 1;
        }
        if seq == self.next_seq {
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
    fn inv_3_second_open_of_a_locked_directory_fails() {
        let dir = tempfile::tempdir().unwrap();
        let _first = Storage::open(dir.path()).unwrap();
        assert!(Storage::open(dir.path()).is_err());
    }
}
