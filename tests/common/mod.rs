//! Shared helpers of the integration tests: start a real `vouch serve`
//! process on loopback with a fresh data directory, and connect clients.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use vouch_protocol::{Client, Target};

/// A running server process. Killed (SIGKILL) on drop.
pub struct Server {
    pub child: Child,
    pub tcp: String,
    /// The TCP listener speaks TLS (`listening tcps`).
    pub tcp_tls: bool,
    pub quic: Option<String>,
    pub data_dir: PathBuf,
}

/// How long a server may take to print `ready`.
const START_TIMEOUT: Duration = Duration::from_secs(60);

impl Server {
    /// Starts `vouch serve` on `data_dir` with TCP and QUIC on 127.0.0.1,
    /// ports chosen by the OS, and waits for `ready`.
    pub fn start(data_dir: &Path) -> Server {
        Self::start_with(data_dir, &[])
    }

    /// Like [`Server::start`] with extra `serve` flags.
    pub fn start_with(data_dir: &Path, extra: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_vouch"))
            .arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .args([
                "--listen-tcp",
                "127.0.0.1:0",
                "--listen-quic",
                "127.0.0.1:0",
            ])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn vouch serve");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut tcp = None;
            let mut quic = None;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(a) = line.strip_prefix("listening tcp ") {
                    tcp = Some((a.to_string(), false));
                } else if let Some(a) = line.strip_prefix("listening tcps ") {
                    tcp = Some((a.to_string(), true));
                } else if let Some(a) = line.strip_prefix("listening quic ") {
                    quic = Some(a.to_string());
                } else if line == "ready" {
                    let _ = tx.send((tcp.clone(), quic.clone()));
                }
            }
        });
        let deadline = Instant::now() + START_TIMEOUT;
        let (tcp, quic) = loop {
            if let Ok(v) = rx.recv_timeout(Duration::from_millis(100)) {
                break v;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("server exited before ready: {status}");
            }
            assert!(Instant::now() < deadline, "server not ready in time");
        };
        let (tcp, tcp_tls) = tcp.expect("tcp address printed");
        Server {
            child,
            tcp,
            tcp_tls,
            quic,
            data_dir: data_dir.to_path_buf(),
        }
    }

    /// `tcp://ADDR` of this server.
    pub fn tcp_target(&self) -> Target {
        let scheme = if self.tcp_tls { "tcps" } else { "tcp" };
        format!("{scheme}://{}", self.tcp).parse().unwrap()
    }

    /// `quic://ADDR` of this server.
    pub fn quic_target(&self) -> Target {
        format!("quic://{}", self.quic.as_ref().expect("quic enabled"))
            .parse()
            .unwrap()
    }

    /// The admin token the server wrote.
    pub fn token(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("admin.token"))
            .unwrap()
            .trim()
            .to_string()
    }

    /// The development certificate's path.
    pub fn ca(&self) -> PathBuf {
        self.data_dir.join("cert.pem")
    }

    /// Connects an authenticated client to `target`.
    pub async fn client(&self, target: &Target) -> Client {
        Client::connect(target, &self.token(), Some(&self.ca()))
            .await
            .expect("connect")
    }

    /// SIGKILL, then wait for the process to be gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM (graceful shutdown), then wait; returns whether it exited 0.
    pub fn terminate(&mut self) -> bool {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM failed");
        self.child.wait().map(|s| s.success()).unwrap_or(false)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}
