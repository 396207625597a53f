//! Closed- and open-loop execution over a pool of connections.
//!
//! Closed loop: `connections × depth` tasks each take the next work item,
//! send it and wait for its reply before taking another. Open loop
//! (`rate`): item i is due at `start + i / rate`; its latency is measured
//! from that intended send time, so a stalled server shows up in the
//! percentiles instead of silently slowing the sender (coordinated omission).

use crate::report::Stats;
use indicatif::{ProgressBar, ProgressStyle};
use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use vouch_engine::command::{Issue, Redeem};
use vouch_engine::Command;
use vouch_protocol::{Client, Target, WireReply};

/// Longest wait for one request's (or batch frame's) reply before the run
/// fails with a clear error instead of hanging: 60 s, far above any
/// durable reply under load.
pub const REQUEST_TIMEOUT_MS: u64 = 60_000;

/// One measured sample returned by a work item: `n` operations named
/// `name`, `ok` of which succeeded.
pub struct Sample {
    /// Operation name.
    pub name: &'static str,
    /// Operations in the sample.
    pub n: u64,
    /// Successes.
    pub ok: u64,
}

/// Connections to one server and how hard to drive them.
pub struct Pool {
    clients: Vec<Arc<Client>>,
    depth: usize,
    rate: Option<f64>,
    /// Commands per batch frame; 1 sends single-command frames.
    pub batch: usize,
}

impl Pool {
    /// Opens `connections` authenticated connections to `target`.
    ///
    /// Errors: a connection or handshake failed.
    pub async fn connect(
        target: &Target,
        token: &str,
        ca: Option<&Path>,
        connections: usize,
        depth: usize,
        batch: usize,
        rate: Option<f64>,
    ) -> anyhow::Result<Pool> {
        let mut clients = Vec::new();
        for _ in 0..connections.max(1) {
            clients.push(Arc::new(Client::connect(target, token, ca).await?));
        }
        Ok(Pool {
            clients,
            depth: depth.max(1),
            rate,
            batch: batch.max(1),
        })
    }

    /// Any one connection, for audits and setup reads.
    pub fn first(&self) -> Arc<Client> {
        self.clients[0].clone()
    }

    /// Runs every item through `f` and returns the merged statistics.
    /// `label` names the progress bar; `ops` the operations this phase
    /// drives (their active time is the phase's wall time).
    pub async fn run<T, F, Fut>(
        &self,
        label: &str,
        ops: &[&str],
        items: Vec<T>,
        f: F,
    ) -> anyhow::Result<Stats>
    where
        T: Send + 'static,
        F: Fn(Arc<Client>, T) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<Vec<Sample>>> + Send + 'static,
    {
        let total = items.len() as u64;
        let bar = ProgressBar::new(total);
        bar.set_style(
            ProgressStyle::with_template("{msg:>12} [{bar:40}] {pos}/{len} {per_sec} eta {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_message(label.to_string());
        let queue = Arc::new(Mutex::new(items.into_iter().enumerate()));
        let f = Arc::new(f);
        let start = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..self.clients.len() * self.depth {
            let client = self.clients[i % self.clients.len()].clone();
            let queue = queue.clone();
            let f = f.clone();
            let bar = bar.clone();
            let rate = self.rate;
            tasks.spawn(async move {
                let mut stats = Stats::default();
                loop {
                    let next = queue.lock().expect("queue lock").next();
                    let Some((index, item)) = next else { break };
                    let begin = match rate {
                        Some(r) => {
                            let due = start + Duration::from_secs_f64(index as f64 / r);
                            tokio::time::sleep_until(due.into()).await;
                            due
                        }
                        None => Instant::now(),
                    };
                    let reply = tokio::time::timeout(
                        Duration::from_millis(REQUEST_TIMEOUT_MS),
                        f(client.clone(), item),
                    );
                    let samples = reply.await.map_err(|_| {
                        anyhow::anyhow!(
                            "no reply within {REQUEST_TIMEOUT_MS} ms (item {index}); the server may be stuck or overloaded"
                        )
                    })??;
                    let us = begin.elapsed().as_micros() as u64;
                    for s in samples {
                        stats.record(s.name, us, s.n, s.ok);
                    }
                    bar.inc(1);
                }
                anyhow::Ok(stats)
            });
        }
        let mut stats = Stats::default();
        while let Some(r) = tasks.join_next().await {
            stats.merge(r??);
        }
        bar.finish_and_clear();
        stats.add_active(ops, start.elapsed().as_secs_f64());
        Ok(stats)
    }
}

/// Sends issues as one batch frame, or as single frames when `batch` is 1.
///
/// Errors: the connection failed.
pub async fn send_issues(
    client: &Client,
    items: Vec<Issue>,
    batch: usize,
) -> anyhow::Result<Vec<WireReply>> {
    if batch > 1 {
        return Ok(client.issue_batch(items).await?);
    }
    let mut out = Vec::with_capacity(items.len());
    for i in items {
        out.push(client.command(Command::Issue(i)).await?);
    }
    Ok(out)
}

/// Sends redemptions as one batch frame, or as single frames when `batch` is 1.
///
/// Errors: the connection failed.
pub async fn send_redeems(
    client: &Client,
    items: Vec<Redeem>,
    batch: usize,
) -> anyhow::Result<Vec<WireReply>> {
    if batch > 1 {
        return Ok(client.redeem_batch(items).await?);
    }
    let mut out = Vec::with_capacity(items.len());
    for r in items {
        out.push(client.command(Command::Redeem(r)).await?);
    }
    Ok(out)
}
