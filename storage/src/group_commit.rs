//! Group commit: one thread collects log records from every shard worker,
//! writes all that are waiting as one synced `WriteBatch`, and only then runs
//! each job's completion (which releases the replies of that batch). Jobs
//! complete in submission order, so a reply is never released before a write
//! it observed (DESIGN invariant 3).

use crate::{Storage, StorageError};
use crossbeam_channel::{Receiver, Sender};
use std::thread::JoinHandle;

/// Most jobs folded into one synced `WriteBatch`. Each job is one shard
/// batch of up to `batch_commands_max` commands; 64 jobs bound the bytes of
/// one write to a few MiB.
pub const GROUP_JOBS_MAX: usize = 64;

/// Queue depth between shard workers and the committer, in jobs. Workers
/// block when it is full, which pushes back to the network.
pub const QUEUE_JOBS_MAX: usize = 256;

/// What runs once a job's record is durable.
pub type Completion = Box<dyn FnOnce() + Send>;

/// One unit of work for the committer.
pub struct Job {
    /// The record to append; empty means "nothing to write, but complete
    /// after everything submitted earlier is durable" (a batch of reads).
    pub record: Vec<u8>,
    /// Outbox rows written in the same synced batch as `record` (the
    /// messages the record's effects ask for, ORD-2).
    pub outbox: Vec<crate::OutboxPut>,
    /// Runs after the record (and every earlier one) is synced.
    pub done: Completion,
}

/// Handle to the committer thread.
pub struct GroupCommit {
    tx: Option<Sender<Job>>,
    thread: Option<JoinHandle<Result<Storage, StorageError>>>,
}

impl GroupCommit {
    /// Starts the committer on `storage`. `on_failure` runs once on the
    /// committer thread when a write or sync fails; it must stop the process
    /// (fail-stop): the failed jobs' completions never run.
    pub fn start(
        storage: Storage,
        on_failure: impl FnOnce(&StorageError) + Send + 'static,
    ) -> GroupCommit {
        let (tx, rx) = crossbeam_channel::bounded(QUEUE_JOBS_MAX);
        let thread = std::thread::Builder::new()
            .name("vouch-commit".into())
            .spawn(move || run(storage, rx, on_failure))
            .expect("spawn the group-commit thread");
        GroupCommit {
            tx: Some(tx),
            thread: Some(thread),
        }
    }

    /// A sender for jobs; clone it into each shard worker.
    pub fn sender(&self) -> Sender<Job> {
        self.tx.clone().expect("sender taken only by shutdown")
    }

    /// Stops after every job already submitted is durable and completed;
    /// returns the storage. Every other sender must be dropped first.
    ///
    /// Errors: the storage error that stopped the committer.
    pub fn shutdown(mut self) -> Result<Storage, StorageError> {
        self.tx.take();
        let t = self.thread.take().expect("joined once");
        t.join().expect("group-commit thread does not panic")
    }
}

fn run(
    mut storage: Storage,
    rx: Receiver<Job>,
    on_failure: impl FnOnce(&StorageError),
) -> Result<Storage, StorageError> {
    let mut jobs: Vec<Job> = Vec::with_capacity(GROUP_JOBS_MAX);
    while let Ok(first) = rx.recv() {
        jobs.push(first);
        while jobs.len() < GROUP_JOBS_MAX {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        let records = jobs
            .iter()
            .filter(|j| !j.record.is_empty())
            .map(|j| j.record.as_slice());
        let outbox = jobs.iter().flat_map(|j| j.outbox.iter());
        if let Err(e) = storage.append_with_outbox_sync(records, outbox) {
            on_failure(&e);
            return Err(e);
        }
        for j in jobs.drain(..) {
            (j.done)();
        }
    }
    Ok(storage)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn inv_3_completions_run_in_order_after_the_write() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path()).unwrap();
        let gc = GroupCommit::start(storage, |e| panic!("{e}"));
        let order = Arc::new(Mutex::new(Vec::new()));
        let tx = gc.sender();
        for i in 0..100u32 {
            let order = order.clone();
            let record = if i % 3 == 0 {
                Vec::new()
            } else {
                i.to_le_bytes().to_vec()
            };
            tx.send(Job {
                record,
                outbox: Vec::new(),
                done: Box::new(move || order.lock().unwrap().push(i)),
            })
            .unwrap();
        }
        drop(tx);
        let storage = gc.shutdown().unwrap();
        assert_eq!(*order.lock().unwrap(), (0..100).collect::<Vec<_>>());
        // 100 jobs, every third one empty: 66 records.
        assert_eq!(storage.next_seq(), 66);
    }
}
