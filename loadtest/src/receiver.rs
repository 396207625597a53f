//! A webhook receiver for tests and the main job: it plays the SMS
//! gateway, the code providers and the payment system on one loopback
//! port, checks every attempt's signature, records each attempt as one
//! JSON line, and fails, stalls or slows down on purpose when told to.
//!
//! A message's id (`x-vouch-message-id`, `SHARD-SEQ`) decides the faults,
//! so a test knows which messages must end in the failed-task list:
//! - `fail_first` N: the first N attempts of every message get HTTP 503;
//! - `fail_always_every` K: messages whose SEQ is a multiple of K always
//!   get HTTP 500;
//! - `stall_first` N: the first N attempts of every message get no answer
//!   for `stall_ms` (longer than the server's timeout: a timed-out attempt);
//! - `delay_ms`: every answer waits this long (a slow receiver);
//! - `flaky_every` K: messages whose SEQ is 1 more than a multiple of K get
//!   their first attempt answered 503 (a flaky gateway).
//!
//! `GET /stats` answers the counts as JSON.

use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use sha2::Sha256;
use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Largest request body taken, bytes.
pub const BODY_BYTES_MAX: usize = 64 * 1024;
/// How far an attempt's timestamp may be from this machine's clock, s.
pub const TIMESTAMP_SKEW_S_MAX: i64 = 300;

/// What the receiver does.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// The first N attempts of each message get HTTP 503.
    pub fail_first: u32,
    /// Messages whose SEQ is a multiple of K (K ≥ 1) always get HTTP 500.
    pub fail_always_every: Option<u64>,
    /// The first N attempts of each message stall for `stall_ms`.
    pub stall_first: u32,
    /// How long a stalled attempt waits before answering, ms.
    pub stall_ms: u64,
    /// Every answer waits this long, ms.
    pub delay_ms: u64,
    /// Messages whose SEQ is 1 more than a multiple of K (K ≥ 2) get their
    /// first attempt answered 503: a flaky gateway.
    pub flaky_every: Option<u64>,
}

/// Counts, as `GET /stats` answers them.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    /// Attempts received.
    pub attempts: u64,
    /// Attempts answered 2xx.
    pub accepted: u64,
    /// Distinct message ids accepted at least once.
    pub messages: u64,
    /// Accepted attempts of a message accepted before (receivers drop these).
    pub duplicates: u64,
    /// Attempts whose signature or timestamp did not verify (answered 401).
    pub bad_signature: u64,
}

struct State {
    secret: Vec<u8>,
    faults: Faults,
    /// Attempts seen per message id, and whether one was accepted.
    seen: Mutex<HashMap<String, (u32, bool)>>,
    counts: Mutex<Counts>,
    record: Option<Mutex<std::fs::File>>,
}

/// Serves on `listener` until the process ends. `record`: a file to append
/// one JSON line per attempt to (`message_id`, `attempt`, `status`,
/// `verified`, `body`).
pub async fn serve(
    listener: tokio::net::TcpListener,
    secret: Vec<u8>,
    faults: Faults,
    record: Option<std::fs::File>,
) -> std::io::Result<()> {
    let state = Arc::new(State {
        secret,
        faults,
        seen: Mutex::new(HashMap::new()),
        counts: Mutex::new(Counts::default()),
        record: record.map(Mutex::new),
    });
    loop {
        let (stream, _) = listener.accept().await?;
        let state = state.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, std::convert::Infallible>(handle(&state, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn reply(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r
}

async fn handle(state: &State, req: Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() == Method::GET && req.uri().path() == "/stats" {
        let c = state.counts.lock().expect("counts lock").clone();
        return reply(StatusCode::OK, serde_json::to_vec(&c).unwrap_or_default());
    }
    if req.method() != Method::POST {
        return reply(StatusCode::METHOD_NOT_ALLOWED, "POST a message");
    }
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (id, ts, sig) = (
        header("x-vouch-message-id"),
        header("x-vouch-timestamp"),
        header("x-vouch-signature"),
    );
    let body = match http_body_util::Limited::new(req.into_body(), BODY_BYTES_MAX)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(_) => return reply(StatusCode::PAYLOAD_TOO_LARGE, "body too large"),
    };
    // The signature covers the body, and with it the body's message id:
    // a header naming another id is a replay under a new name.
    let id = id.unwrap_or_default();
    let body_id = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["message_id"].as_str().map(str::to_owned));
    let verified = verify(&state.secret, ts.as_deref(), sig.as_deref(), &body)
        && body_id.as_deref() == Some(id.as_str());
    let (attempt, status) = decide(state, &id, verified);
    record(state, &id, attempt, status, verified, &body);
    let wait = if status == StatusCode::GATEWAY_TIMEOUT {
        state.faults.stall_ms
    } else {
        state.faults.delay_ms
    };
    if wait > 0 {
        tokio::time::sleep(Duration::from_millis(wait)).await;
    }
    // A stall ends in a 504 the server has stopped waiting for.
    reply(status, "")
}

/// Whether `sig` is `v1=` HMAC-SHA256(secret, "TS.BODY") and `ts` is near
/// this machine's clock.
pub fn verify(secret: &[u8], ts: Option<&str>, sig: Option<&str>, body: &[u8]) -> bool {
    let (Some(ts), Some(sig)) = (ts, sig) else {
        return false;
    };
    let Ok(ts_s) = ts.parse::<i64>() else {
        return false;
    };
    let now_s = jiff::Timestamp::now().as_second();
    if (now_s - ts_s).abs() > TIMESTAMP_SKEW_S_MAX {
        return false;
    }
    let Some(hex) = sig.strip_prefix("v1=") else {
        return false;
    };
    let Some(tag) = decode_hex(hex) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(ts.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&tag).is_ok()
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The attempt's number for this message and the answer it gets.
fn decide(state: &State, id: &str, verified: bool) -> (u32, StatusCode) {
    let mut counts = state.counts.lock().expect("counts lock");
    counts.attempts += 1;
    if !verified {
        counts.bad_signature += 1;
        return (0, StatusCode::UNAUTHORIZED);
    }
    let mut seen = state.seen.lock().expect("seen lock");
    let entry = seen.entry(id.to_owned()).or_insert((0, false));
    entry.0 += 1;
    let attempt = entry.0;
    let f = &state.faults;
    let seq = id.split_once('-').and_then(|(_, s)| s.parse::<u64>().ok());
    let status = if f
        .fail_always_every
        .is_some_and(|k| seq.is_some_and(|s| s % k.max(1) == 0))
    {
        StatusCode::INTERNAL_SERVER_ERROR
    } else if attempt <= f.stall_first {
        StatusCode::GATEWAY_TIMEOUT
    } else if attempt <= f.stall_first + f.fail_first
        || (attempt == 1
            && f.flaky_every
                .is_some_and(|k| seq.is_some_and(|s| s % k.max(2) == 1)))
    {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    if status == StatusCode::OK {
        counts.accepted += 1;
        if entry.1 {
            counts.duplicates += 1;
        } else {
            counts.messages += 1;
            entry.1 = true;
        }
    }
    (attempt, status)
}

fn record(state: &State, id: &str, attempt: u32, status: StatusCode, verified: bool, body: &[u8]) {
    let Some(file) = &state.record else { return };
    let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let line = json!({"message_id": id, "attempt": attempt, "status": status.as_u16(),
                      "verified": verified, "body": body});
    let mut f = file.lock().expect("record lock");
    let _ = writeln!(f, "{line}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ord_2_a_signature_from_another_secret_or_body_does_not_verify() {
        let (secret, body) = (b"0123456789abcdef", br#"{"a":1}"#);
        let ts = jiff::Timestamp::now().as_second().to_string();
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
        mac.update(format!("{ts}.").as_bytes());
        mac.update(body);
        let hex: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let sig = format!("v1={hex}");
        assert!(verify(secret, Some(&ts), Some(&sig), body));
        assert!(!verify(b"another-secret!!", Some(&ts), Some(&sig), body));
        assert!(!verify(secret, Some(&ts), Some(&sig), br#"{"a":2}"#));
        assert!(
            !verify(secret, Some("1000"), Some(&sig), body),
            "stale timestamp"
        );
        assert!(!verify(secret, Some(&ts), Some("v1=zz"), body));
        assert!(!verify(secret, None, Some(&sig), body));
    }
}
