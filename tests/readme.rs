//! Every command block of README.md runs as written (issue 8): the hand
//! walk-through (issue, lookup, redeem, reverse over TCP and QUIC), the
//! catalog walk-through, tokens, lockouts, and then the load tests against
//! the same server, whose catalog by then holds the walk-through's seller.
//!
//! The blocks run in a fresh folder that links `target` and `data` to the
//! project's, so `./target/release/vouch serve` makes its own `./vouch-data`
//! and listens on its default 127.0.0.1:7700. `CODE` and `NEW_CODE` are
//! replaced by the codes the earlier commands printed. A line whose comment
//! says `(exit 1)` must exit 1 (the server refused it); every other line
//! must exit 0. No output may contain Rust `Debug` text.
//!
//! The two commands at the top (`scripts/main-job.sh`, `scripts/test.sh`)
//! are not run here: CI runs the test script, and the test script runs the
//! main job on the bundled data.

use regex::Regex;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The shell lines of every ```sh block of `readme`, continuation lines
/// joined, blank lines dropped.
fn command_lines(readme: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut inside = false;
    let mut pending = String::new();
    for line in readme.lines() {
        if line.trim_start().starts_with("```") {
            inside = !inside && line.trim() == "```sh";
            continue;
        }
        if !inside {
            continue;
        }
        pending.push_str(line.trim_end_matches('\\'));
        if line.ends_with('\\') {
            continue;
        }
        let full = std::mem::take(&mut pending);
        if !full.trim().is_empty() {
            lines.push(full.trim().to_string());
        }
    }
    lines
}

/// Rust `Debug` text a person should never see: `Name { field: …`,
/// `Some(…)`, `None`, `Ok(…)`/`Err(…)`, `Variant(12)`.
fn debug_text(output: &str) -> Option<String> {
    let re = Regex::new(
        r"[A-Z][A-Za-z]+ \{ [a-z_]+: |\bSome\(|\bNone\b|\bOk\(|\bErr\(|\b[A-Z][a-z]+[A-Z]?[a-z]*\(\d+\)",
    )
    .expect("valid regex");
    re.find(output).map(|m| m.as_str().to_string())
}

/// The folder the README's commands run in: `target` and `data` linked to
/// the project's.
fn work_folder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_vouch"));
    let target = bin
        .parent()
        .and_then(Path::parent)
        .expect("the binary lives in TARGET/release");
    let project = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::os::unix::fs::symlink(target, dir.path().join("target")).expect("link target");
    std::os::unix::fs::symlink(project.join("data"), dir.path().join("data")).expect("link data");
    dir
}

/// The README's server; killed on drop, so a failed assertion never leaves
/// it holding port 7700.
struct Served(Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the README's `serve` line in `dir` and waits for `ready`.
fn serve(dir: &Path, line: &str) -> Served {
    let mut child = Command::new("bash")
        .arg("-c")
        .arg(format!("exec {line}"))
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the README's serve line");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line == "ready" {
                let _ = tx.send(());
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    while rx.recv_timeout(Duration::from_millis(100)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("`{line}` exited before ready ({status}); is port 7700 taken?");
        }
        assert!(Instant::now() < deadline, "`{line}` not ready in 60 s");
    }
    Served(child)
}

/// Replaces the README's placeholders by the codes printed so far.
fn fill_in(line: &str, codes: &[(&str, Option<String>)]) -> String {
    let mut out = line.to_string();
    for (name, value) in codes {
        let re = Regex::new(&format!(r"\b{name}\b")).expect("valid regex");
        if re.is_match(&out) {
            let value = value
                .as_ref()
                .unwrap_or_else(|| panic!("`{line}` needs {name}, which no earlier output gave"));
            out = re.replace_all(&out, value.as_str()).into_owned();
        }
    }
    out
}

#[test]
fn readme_every_command_block_runs_as_written() {
    let project = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(project.join("README.md")).expect("README.md");
    let lines = command_lines(&readme);
    assert!(
        lines.len() > 30,
        "README command lines found: {}",
        lines.len()
    );
    let dir = work_folder();
    let issued = Regex::new(r"issued code (\d+)").expect("valid regex");
    let replaced = Regex::new(r"new code (\d+)").expect("valid regex");
    let assignment = Regex::new(r"^[A-Z_]+=\S+$").expect("valid regex");
    let mut prelude = String::from("set -euo pipefail\n");
    let (mut code, mut new_code) = (None, None);
    let mut server: Option<Served> = None;
    let mut ran = 0;
    for line in &lines {
        if line.contains("./scripts/") {
            continue;
        }
        if line.starts_with("./target/release/vouch serve") {
            server = Some(serve(dir.path(), line));
            continue;
        }
        if assignment.is_match(line) {
            prelude.push_str(line);
            prelude.push('\n');
            continue;
        }
        assert!(server.is_some(), "`{line}` comes before the serve line");
        let command = fill_in(
            line,
            &[("NEW_CODE", new_code.clone()), ("CODE", code.clone())],
        );
        let out = Command::new("bash")
            .arg("-c")
            .arg(format!("{prelude}{command}"))
            .current_dir(dir.path())
            .output()
            .expect("run bash");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let want = if line.contains("(exit 1)") { 1 } else { 0 };
        // `VOUCH_README_SHOW=1 cargo test --test readme -- --nocapture`
        // prints what each command printed, for reviewing the wording.
        if std::env::var_os("VOUCH_README_SHOW").is_some() {
            println!("$ {command}\n{stdout}{stderr}");
        }
        assert_eq!(
            out.status.code(),
            Some(want),
            "`{command}` exited {:?}\nstdout: {stdout}\nstderr: {stderr}",
            out.status.code()
        );
        for text in [&stdout, &stderr] {
            if let Some(found) = debug_text(text) {
                panic!("`{command}` printed Rust Debug text {found:?}:\n{text}");
            }
        }
        if let Some(c) = issued.captures(&stdout) {
            code = Some(c[1].to_string());
        }
        if let Some(c) = replaced.captures(&stdout) {
            new_code = Some(c[1].to_string());
        }
        ran += 1;
    }
    let mut server = server.expect("the README starts a server");
    let stopped = Command::new("kill")
        .args(["-TERM", &server.0.id().to_string()])
        .status()
        .expect("run kill");
    assert!(stopped.success());
    let status = server.0.wait().expect("wait for the server");
    assert!(status.success(), "the server stopped with {status}");
    assert!(ran > 30, "only {ran} README commands ran");
}

#[test]
fn readme_debug_text_is_recognised() {
    assert_eq!(
        debug_text("T+N [(11, FreezeNotice { amount: 500.00 })]").as_deref(),
        Some("FreezeNotice { amount: ")
    );
    assert_eq!(debug_text("parent None").as_deref(), Some("None"));
    assert_eq!(
        debug_text("Device(31) may not redeem").as_deref(),
        Some("Device(31)")
    );
    assert_eq!(
        debug_text("{\"ok\": true, \"code\": \"12345678\"}"),
        None,
        "JSON is not Debug text"
    );
    assert_eq!(debug_text("issued code 12345678 for 3 units"), None);
}
