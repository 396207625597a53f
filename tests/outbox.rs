//! The outbox over real processes (ORD-2, ORD-8): `vouch serve` posts its
//! messages to a real `vouch-receiver` on 127.0.0.1 that stalls, fails and
//! answers slowly on purpose; the server is SIGKILLed in the middle.
mod common;
mod helpers;

use helpers::tenants;
use helpers::{as_issued, as_redeemed, issue_cmd, last4, redeem_cmd, run};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process, Stdio};
use std::time::{Duration, Instant};
use vouch_engine::catalog::Actor;
use vouch_engine::{Command, ErrorCode, PosId};
use vouch_protocol::outbox::{OutboxMessageView, OutboxRequest, OutboxStats, OutboxView};
use vouch_protocol::{Client, Request, Response, WireError};

const SECRET: &str = "test-secret-0123456789";

/// A running `vouch-receiver`, killed on drop.
struct Receiver {
    child: Child,
    url: String,
    record: PathBuf,
}

impl Receiver {
    fn start(dir: &Path, faults: &[&str]) -> Receiver {
        let bin = PathBuf::from(env!("CARGO_BIN_EXE_vouch")).with_file_name("vouch-receiver");
        assert!(
            bin.exists(),
            "{} is missing: build the workspace first (cargo build --release --workspace)",
            bin.display()
        );
        let record = dir.join("received.jsonl");
        let mut child = Process::new(bin)
            .args(["--listen", "127.0.0.1:0", "--record"])
            .arg(&record)
            .args(faults)
            .env("VOUCH_RECEIVER_SECRET", SECRET)
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn vouch-receiver");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next().unwrap().unwrap();
        let addr = first
            .strip_prefix("listening http://")
            .expect("address line")
            .to_owned();
        // Keep reading, so its later lines never meet a closed pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Receiver {
            url: format!("http://{addr}/sms"),
            child,
            record,
        }
    }

    /// Every attempt received: one JSON object each.
    fn attempts(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.record).unwrap_or_default();
        text.lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(dir: &Path, url: &str, extra: &[&str]) -> common::Server {
    std::env::set_var("VOUCH_SMS_WEBHOOK_SECRET", SECRET);
    let mut args = vec!["--sms-webhook", url];
    args.extend_from_slice(extra);
    common::Server::start_with(dir, &args)
}

async fn outbox(client: &Client, r: OutboxRequest) -> Result<OutboxView, WireError> {
    match client.call(Request::Outbox(r)).await.expect("connection") {
        Response::Outbox(v) => v,
        Response::Error(e) => Err(e),
        other => panic!("unexpected reply {other:?}"),
    }
}

async fn stats(client: &Client) -> OutboxStats {
    match outbox(client, OutboxRequest::Stats).await {
        Ok(OutboxView::Stats(s)) => s,
        other => panic!("{other:?}"),
    }
}

/// Every message of every shard: ids are SHARD-SEQ, SEQ from 0 without gaps.
async fn all_messages(client: &Client, shards: u32) -> BTreeMap<String, OutboxMessageView> {
    let mut all = BTreeMap::new();
    for shard in 0..shards {
        for seq in 0.. {
            let id = format!("{shard}-{seq}");
            match outbox(client, OutboxRequest::Show { id: id.clone() }).await {
                Ok(OutboxView::Message(m)) => all.insert(id, m),
                Err(e) if e.code == ErrorCode::NotFound.number() => break,
                other => panic!("{other:?}"),
            };
        }
    }
    all
}

async fn wait_until_settled(client: &Client, what: &str) -> OutboxStats {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let s = stats(client).await;
        if s.queued == 0 {
            return s;
        }
        assert!(Instant::now() < deadline, "{what}: still queued: {s:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Messages whose SEQ is a multiple of this always fail at the receiver.
const ALWAYS_FAILS_EVERY: u64 = 7;
/// Attempts per message (`--webhook-attempts-max`).
const ATTEMPTS_MAX: u32 = 4;

#[tokio::test]
async fn ord_2_every_message_arrives_at_least_once_through_failures_and_a_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    // Every message: a first attempt that times out, a second answered
    // 503, then accepted; every seventh always answered 500.
    let every = ALWAYS_FAILS_EVERY.to_string();
    let receiver = Receiver::start(
        dir.path(),
        &[
            "--stall-first",
            "1",
            "--stall-ms",
            "1500",
            "--fail-first",
            "1",
            "--fail-always-every",
            &every,
        ],
    );
    let attempts_max = ATTEMPTS_MAX.to_string();
    let flags = [
        "--webhook-timeout-ms",
        "300",
        "--webhook-backoff-ms",
        "20",
        "--webhook-backoff-max-ms",
        "100",
        "--webhook-attempts-max",
        &attempts_max,
        "--webhook-concurrency",
        "8",
    ];
    let data = dir.path().join("data");
    let mut server = serve(&data, &receiver.url, &flags);
    let client = server.client(&server.tcp_target()).await;
    // What the buyers must have been told: order → (mobile, latest code).
    let mut codes = BTreeMap::new();
    let mut redeemed = BTreeMap::new();
    for i in 0..30u64 {
        let (order, mobile) = (format!("o-{i}"), format!("1380000{i:04}"));
        let issued = as_issued(run(&client, Command::Issue(issue_cmd(&order, 3, &mobile))).await);
        codes.insert(order.clone(), issued.code.to_string());
        if i % 3 == 0 {
            let r = redeem_cmd(PosId(5), i, issued.code, &last4(&mobile), 1);
            let r = as_redeemed(run(&client, Command::Redeem(r)).await);
            let new = r.new_code.expect("units left").to_string();
            redeemed.insert(order.clone(), new.clone());
            codes.insert(order, new);
        }
    }
    // Mid-delivery (first attempts are still stalling): SIGKILL.
    drop(client);
    server.kill();
    let server = serve(&data, &receiver.url, &flags);
    let client = server.client(&server.tcp_target()).await;
    let s = wait_until_settled(&client, "after the restart").await;
    let all = all_messages(&client, 2).await;
    assert_eq!(all.len() as u64, s.queued_total);
    assert_eq!(
        all.len(),
        30 + redeemed.len(),
        "one code SMS per issue, one per redemption"
    );
    let attempts = receiver.attempts();
    assert!(
        attempts.iter().all(|a| a["verified"] == true),
        "every attempt is signed"
    );
    let accepted: BTreeMap<String, Vec<&Value>> = attempts
        .iter()
        .filter(|a| a["status"] == 200)
        .fold(BTreeMap::new(), |mut m, a| {
            m.entry(a["message_id"].as_str().unwrap().to_owned())
                .or_default()
                .push(&a["body"]);
            m
        });
    let mut must_fail = BTreeSet::new();
    for (id, m) in &all {
        let seq: u64 = id.split_once('-').unwrap().1.parse().unwrap();
        if seq.is_multiple_of(ALWAYS_FAILS_EVERY) {
            must_fail.insert(id.clone());
            assert_eq!(m.state, "failed", "{id}");
            assert_eq!(m.attempts, ATTEMPTS_MAX, "{id}");
            assert!(!accepted.contains_key(id), "{id}");
        } else {
            assert_eq!(m.state, "delivered", "{id}: {m:?}");
            let bodies = &accepted[id];
            // A repeat (after the SIGKILL) carries the same id and body.
            assert!(bodies.iter().all(|b| *b == bodies[0]), "{id}");
            assert_eq!(bodies[0]["message_id"], id.as_str());
        }
    }
    // The failed-task list holds exactly the messages out of attempts.
    let Ok(OutboxView::Failed { items, next: None }) = outbox(
        &client,
        OutboxRequest::Failed {
            after: None,
            limit: 1000,
        },
    )
    .await
    else {
        panic!("failed list")
    };
    let listed: BTreeSet<String> = items.into_iter().map(|m| m.id).collect();
    assert_eq!(listed, must_fail);
    assert_eq!(s.failed, must_fail.len() as u64);
    // ORD-8: each buyer's latest code reached the gateway, unless its
    // message is one of the failed ones.
    let mut latest: BTreeMap<String, String> = BTreeMap::new();
    let delivered_bodies = accepted.values().map(|b| b[0]);
    for b in delivered_bodies
        .clone()
        .filter(|b| b["event"] == "code_issued")
    {
        latest
            .entry(b["order_id"].as_str().unwrap().into())
            .or_insert(b["code"].as_str().unwrap().into());
    }
    for b in delivered_bodies.filter(|b| b["event"] == "redeemed") {
        let order = b["order_id"].as_str().unwrap();
        assert_eq!(
            b["code"].as_str(),
            redeemed.get(order).map(String::as_str),
            "{order}"
        );
        assert!(b["text"]
            .as_str()
            .unwrap()
            .contains(b["code"].as_str().unwrap()));
        latest.insert(order.into(), b["code"].as_str().unwrap().into());
    }
    let failed_orders: BTreeSet<&str> = must_fail
        .iter()
        .map(|id| all[id].order_id.as_str())
        .collect();
    for (order, code) in &codes {
        if !failed_orders.contains(order.as_str()) {
            assert_eq!(latest.get(order), Some(code), "{order}");
        }
    }
}

#[tokio::test]
async fn ord_2_staff_requeue_a_failed_message_and_only_staff_read_the_outbox() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(dir.path(), &["--fail-always-every", "1"]);
    let flags = ["--webhook-attempts-max", "2", "--webhook-backoff-ms", "10"];
    let server = serve(&dir.path().join("data"), &receiver.url, &flags);
    let client = server.client(&server.tcp_target()).await;
    as_issued(run(&client, Command::Issue(issue_cmd("q-1", 1, "13900001111"))).await);
    wait_until_settled(&client, "first round").await;
    let id = "0-0".to_string();
    let shard = match outbox(&client, OutboxRequest::Show { id: id.clone() }).await {
        Ok(_) => 0,
        Err(_) => 1,
    };
    let id = format!("{shard}-0");
    let Ok(OutboxView::Requeued(m)) =
        outbox(&client, OutboxRequest::Retry { id: id.clone() }).await
    else {
        panic!("requeue")
    };
    assert_eq!((m.state.as_str(), m.attempts), ("queued", 2));
    let s = wait_until_settled(&client, "second round").await;
    assert_eq!(s.failed, 1);
    let Ok(OutboxView::Message(m)) = outbox(&client, OutboxRequest::Show { id: id.clone() }).await
    else {
        panic!("show")
    };
    assert_eq!(
        (m.state.as_str(), m.attempts),
        ("failed", 4),
        "a new round of 2 attempts"
    );
    assert_eq!(
        m.last_error.as_deref(),
        Some("the endpoint answered HTTP 500")
    );
    // Bad ids are refused clearly; so is re-queueing what is not failed.
    let e = outbox(&client, OutboxRequest::Show { id: "x".into() })
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::BadRequest.number());
    let e = outbox(
        &client,
        OutboxRequest::Failed {
            after: None,
            limit: 0,
        },
    )
    .await
    .unwrap_err();
    assert_eq!(e.code, ErrorCode::BadRequest.number());
    // Only staff: the front end and the payment system are refused.
    for (serial, actor) in [(1, Actor::FrontEnd), (2, Actor::PaymentSystem)] {
        let token = tenants::token_for(&client, serial, actor).await;
        let tenant = Client::connect(&server.tcp_target(), &token, Some(&server.ca()))
            .await
            .unwrap();
        for r in [
            OutboxRequest::Stats,
            OutboxRequest::Retry { id: id.clone() },
        ] {
            let e = outbox(&tenant, r).await.unwrap_err();
            assert_eq!(e.code, ErrorCode::NotPermitted.number(), "{actor}: {e}");
        }
    }
}

#[tokio::test]
async fn ord_2_a_receiver_that_never_answers_does_not_hold_back_redemptions() {
    let dir = tempfile::tempdir().unwrap();
    // Every attempt stalls for a minute; the server gives each 60 s.
    let receiver = Receiver::start(dir.path(), &["--stall-first", "100", "--stall-ms", "60000"]);
    let flags = [
        "--webhook-timeout-ms",
        "60000",
        "--webhook-concurrency",
        "1",
    ];
    let server = serve(&dir.path().join("data"), &receiver.url, &flags);
    let client = server.client(&server.tcp_target()).await;
    for i in 0..200u64 {
        let mobile = format!("1370000{i:04}");
        let issued = as_issued(
            run(
                &client,
                Command::Issue(issue_cmd(&format!("s-{i}"), 2, &mobile)),
            )
            .await,
        );
        let r = redeem_cmd(PosId(6), i, issued.code, &last4(&mobile), 1);
        as_redeemed(run(&client, Command::Redeem(r)).await);
    }
    // Every redemption was acknowledged while nothing was delivered.
    let s = stats(&client).await;
    assert_eq!((s.queued_total, s.delivered), (400, 0));
    assert_eq!(s.queued, 400);
}

async fn order_delivered(client: &Client, order: &str) -> bool {
    let c = Command::Order(vouch_engine::command::OrderShow {
        order_id: order.into(),
        seller_id: None,
    });
    match run(client, c).await {
        Ok(vouch_engine::Outcome::Order(o)) => o.delivered,
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn ord_2_an_order_is_delivered_once_the_gateway_accepts_its_code_and_ref_3_is_then_refused() {
    let dir = tempfile::tempdir().unwrap();
    // Messages with an even SEQ never get through.
    let receiver = Receiver::start(dir.path(), &["--fail-always-every", "2"]);
    let flags = ["--webhook-attempts-max", "1"];
    let data = dir.path().join("data");
    let mut server = serve(&data, &receiver.url, &flags);
    let client = server.client(&server.tcp_target()).await;
    for i in 0..8u64 {
        let order = format!("d-{i}");
        as_issued(run(&client, Command::Issue(issue_cmd(&order, 2, "13600001234"))).await);
    }
    wait_until_settled(&client, "deliveries").await;
    let all = all_messages(&client, 2).await;
    let delivered: BTreeMap<String, bool> = all
        .values()
        .map(|m| (m.order_id.clone(), m.state == "delivered"))
        .collect();
    assert_eq!(delivered.len(), 8);
    assert!(delivered.values().any(|d| *d) && delivered.values().any(|d| !*d));
    // The delivered state is logged: it survives a SIGKILL.
    drop(client);
    server.kill();
    let server = serve(&data, &receiver.url, &flags);
    let client = server.client(&server.tcp_target()).await;
    let token = tenants::token_for(&client, 1, Actor::FrontEnd).await;
    let front = Client::connect(&server.tcp_target(), &token, Some(&server.ca()))
        .await
        .unwrap();
    for (serial, (order, was_delivered)) in delivered.iter().enumerate() {
        assert_eq!(
            order_delivered(&client, order).await,
            *was_delivered,
            "{order}"
        );
        // REF-3 by the front end: only for an order whose code never arrived.
        let refund = Command::Refund(vouch_engine::command::Refund {
            request_id: tenants::rid_of(&token, serial as u64 + 1),
            order_id: order.clone(),
            action: vouch_engine::command::RefundAction::NotDelivered,
            seller_id: None,
        });
        let reply = run(&front, refund).await;
        match (was_delivered, reply) {
            (false, Ok(vouch_engine::Outcome::Refunded(r))) => {
                assert_eq!(r.buyer_amount, vouch_engine::Fen::new(2 * 1250), "{order}")
            }
            (true, Err(e)) => assert_eq!(e.code, ErrorCode::RefundNotAllowed.number(), "{order}"),
            (d, other) => panic!("{order} delivered={d}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn ref_3_a_not_delivered_refund_withdraws_the_unsent_code_message() {
    let dir = tempfile::tempdir().unwrap();
    // The first attempt of every message times out; the next comes 2 s
    // later, after the refund.
    let receiver = Receiver::start(dir.path(), &["--stall-first", "1", "--stall-ms", "3000"]);
    let flags = [
        "--webhook-timeout-ms",
        "200",
        "--webhook-backoff-ms",
        "4000",
        "--webhook-backoff-max-ms",
        "4000",
    ];
    let server = serve(&dir.path().join("data"), &receiver.url, &flags);
    let client = server.client(&server.tcp_target()).await;
    as_issued(run(&client, Command::Issue(issue_cmd("w-1", 2, "13500001234"))).await);
    let refund = Command::Refund(vouch_engine::command::Refund {
        request_id: vouch_engine::RequestId {
            source: 1,
            serial: 1,
        },
        order_id: "w-1".into(),
        action: vouch_engine::command::RefundAction::NotDelivered,
        seller_id: None,
    });
    let Ok(vouch_engine::Outcome::Refunded(_)) = run(&client, refund).await else {
        panic!("REF-3 refused")
    };
    let s = wait_until_settled(&client, "withdrawal").await;
    assert_eq!(
        (s.queued_total, s.withdrawn, s.delivered),
        (2, 1, 1),
        "{s:?}"
    );
    let all = all_messages(&client, 2).await;
    let states: BTreeSet<(String, String)> = all
        .values()
        .map(|m| (m.event.clone(), m.state.clone()))
        .collect();
    let want: BTreeSet<(String, String)> =
        [("code_issued", "withdrawn"), ("refunded", "delivered")]
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
    assert_eq!(states, want);
    // The buyer never got the code; REF-3 stays true.
    let accepted: Vec<Value> = receiver
        .attempts()
        .into_iter()
        .filter(|a| a["status"] == 200)
        .collect();
    assert_eq!(accepted.len(), 1);
    assert_eq!(accepted[0]["body"]["event"], "refunded");
    assert_eq!(accepted[0]["body"]["amount"], "25.00");
    assert!(!order_delivered(&client, "w-1").await);
}
