//! Concurrent redemptions over a real server: one code is redeemable once
//! (ORD-8), a POS fleet can take exactly the units bought (ORD-7), and
//! identical or retried requests apply once (DESIGN invariant 4).
mod common;
mod helpers;

use common::Server;
use helpers::*;
use std::sync::Arc;
use tokio::sync::{watch, Barrier};
use tokio::task::JoinSet;
use vouch_engine::command::{Redeem, VoucherState};
use vouch_engine::{Code, Command, ErrorCode, Outcome, PosId, RequestId};
use vouch_protocol::{Client, Request, Response, WireReply};

const MOBILE: &str = "13712340042";

async fn clients(server: &Server, n: usize) -> Vec<Arc<Client>> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(Arc::new(server.client(&server.tcp_target()).await));
    }
    out
}

/// Sends `redeems[i]` on `clients[i]`, all released together by a barrier,
/// and returns the replies in the same order.
async fn redeem_concurrently(clients: &[Arc<Client>], redeems: Vec<Redeem>) -> Vec<WireReply> {
    assert_eq!(clients.len(), redeems.len());
    let barrier = Arc::new(Barrier::new(redeems.len()));
    let mut set = JoinSet::new();
    for (i, (client, r)) in clients.iter().cloned().zip(redeems).enumerate() {
        let barrier = barrier.clone();
        set.spawn(async move {
            barrier.wait().await;
            (i, run(&client, Command::Redeem(r)).await)
        });
    }
    let mut replies: Vec<Option<WireReply>> = vec![None; clients.len()];
    while let Some(done) = set.join_next().await {
        let (i, reply) = done.expect("redeem task");
        replies[i] = Some(reply);
    }
    replies
        .into_iter()
        .map(|r| r.expect("every reply"))
        .collect()
}

/// Checks that exactly one of `replies` redeemed 1 of 3 units and the
/// others got `code_invalid`; returns the winner's index and new code.
fn exactly_one_winner(replies: &[WireReply], order: &str) -> (usize, Code) {
    let winners: Vec<usize> = (0..replies.len()).filter(|&i| replies[i].is_ok()).collect();
    assert_eq!(
        winners.len(),
        1,
        "exactly one redemption of one code: {replies:?}"
    );
    let w = winners[0];
    let r = as_redeemed(replies[w].clone());
    assert_eq!(
        (r.order_id.as_str(), r.units, r.units_remaining),
        (order, 1, 2)
    );
    for (i, reply) in replies.iter().enumerate() {
        if i != w {
            assert_rejected(reply, ErrorCode::CodeInvalid);
        }
    }
    (w, r.new_code.expect("units remain"))
}

/// Checks the audit: the voucher lost exactly one unit, to `winner`.
async fn lost_exactly_one_unit(client: &Client, order: &str, winner: RequestId, live: Code) {
    let audit = audit(client).await;
    assert_eq!(
        *audit.voucher(order),
        VoucherState {
            order_id: order.into(),
            units_total: 3,
            units_remaining: 2,
            units_redeemed: 1,
            units_void: 0,
            live_code: Some(live),
        }
    );
    let log = audit.redemptions_of(order);
    assert_eq!(log.len(), 1);
    assert_eq!((log[0].request_id, log[0].units), (winner, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ord_8_one_code_is_redeemed_once_in_a_batch_of_five() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let client = server.client(&server.tcp_target()).await;
    let l4 = last4(MOBILE);
    let code = issue(&client, issue_cmd("batch-five", 3, MOBILE))
        .await
        .code;
    let redeems: Vec<Redeem> = (1..=5)
        .map(|pos| redeem_cmd(PosId(pos), 1, code, &l4, 1))
        .collect();
    let replies = client.redeem_batch(redeems.clone()).await.unwrap();
    assert_eq!(replies.len(), 5);
    let (w, live) = exactly_one_winner(&replies, "batch-five");
    lost_exactly_one_unit(&client, "batch-five", redeems[w].request_id, live).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ord_8_one_code_is_redeemed_once_by_five_concurrent_connections() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let pool = clients(&server, 5).await;
    let l4 = last4(MOBILE);
    // Several rounds, each on a fresh voucher, to meet more interleavings.
    for round in 0..10u64 {
        let order = format!("conn-five-{round}");
        let code = issue(&pool[0], issue_cmd(&order, 3, MOBILE)).await.code;
        let redeems: Vec<Redeem> = (1..=5)
            .map(|pos| redeem_cmd(PosId(pos), round, code, &l4, 1))
            .collect();
        let replies = redeem_concurrently(&pool, redeems.clone()).await;
        let (w, live) = exactly_one_winner(&replies, &order);
        lost_exactly_one_unit(&pool[0], &order, redeems[w].request_id, live).await;
    }
}

/// What the fleet knows about the voucher: units left and its live code.
#[derive(Clone, Copy, Debug)]
struct Live {
    remaining: u32,
    code: Option<Code>,
}

/// One POS: redeem one unit of the latest known code until none is left.
/// A refused attempt waits for news of a newer code from a successful
/// reply (shared through `news`); returns units redeemed and codes tried.
async fn pos_terminal(
    client: Arc<Client>,
    pos: PosId,
    news: Arc<watch::Sender<Live>>,
    l4: String,
) -> (u32, Vec<Code>) {
    let mut rx = news.subscribe();
    let mut units = 0;
    let mut tried = Vec::new();
    let mut serial = 0;
    loop {
        let live = *rx.borrow_and_update();
        let Some(code) = live.code else { break };
        serial += 1;
        tried.push(code);
        match run(
            &client,
            Command::Redeem(redeem_cmd(pos, serial, code, &l4, 1)),
        )
        .await
        {
            Ok(Outcome::Redeemed(r)) => {
                assert_eq!(r.units, 1);
                units += r.units;
                news.send_if_modified(|cur| {
                    let newer = r.units_remaining < cur.remaining;
                    if newer {
                        *cur = Live {
                            remaining: r.units_remaining,
                            code: r.new_code,
                        };
                    }
                    newer
                });
            }
            Err(e) if e.code == ErrorCode::CodeInvalid.number() => {
                // Someone redeemed this code first; their reply brings the next one.
                rx.changed().await.expect("the test keeps the sender");
            }
            other => panic!("POS {pos}: unexpected reply {other:?}"),
        }
    }
    (units, tried)
}

/// Five POS drain a voucher of `units` units concurrently, each redeeming
/// the current code it learnt from successful replies. POS ids start at
/// `pos_base`: a POS numbers its requests from 1, so each fleet run needs
/// its own POS ids (a reused request id with other content is a conflict).
async fn fleet_drains(
    server: &Server,
    pool: &[Arc<Client>],
    order: &str,
    units: u32,
    pos_base: u64,
) {
    let l4 = last4(MOBILE);
    let issued = issue(&pool[0], issue_cmd(order, units, MOBILE)).await;
    let news = Arc::new(watch::Sender::new(Live {
        remaining: units,
        code: Some(issued.code),
    }));
    let mut set = JoinSet::new();
    for (i, client) in pool.iter().cloned().enumerate() {
        set.spawn(pos_terminal(
            client,
            PosId(pos_base + i as u64),
            news.clone(),
            l4.clone(),
        ));
    }
    let mut total = 0;
    let mut tried = Vec::new();
    while let Some(done) = set.join_next().await {
        let (u, t) = done.expect("POS task");
        total += u;
        tried.extend(t);
    }
    assert_eq!(total, units, "the fleet redeemed exactly the units bought");
    let before = audit(&pool[0]).await;
    let v = before.voucher(order);
    assert_eq!(
        (v.units_remaining, v.units_redeemed, v.live_code),
        (0, units, None)
    );
    let log = before.redemptions_of(order);
    assert_eq!(log.len() as u32, units);
    assert!(log.iter().all(|r| r.units == 1 && !r.reversed));
    // No code the fleet ever saw redeems anything more.
    tried.sort();
    tried.dedup();
    let client = server.client(&server.tcp_target()).await;
    for (k, code) in tried.into_iter().enumerate() {
        let r = run(
            &client,
            Command::Redeem(redeem_cmd(PosId(999), k as u64, code, &l4, 1)),
        )
        .await;
        assert_rejected(&r, ErrorCode::CodeInvalid);
    }
    assert_eq!(audit(&client).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ord_7_pos_fleet_redeems_exactly_the_units_bought() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let pool = clients(&server, 5).await;
    fleet_drains(&server, &pool, "fleet-3", 3, 100).await;
    fleet_drains(&server, &pool, "fleet-40", 40, 200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inv_4_idempotent_concurrent_identical_redeems_apply_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let pool = clients(&server, 2).await;
    let l4 = last4(MOBILE);
    for round in 0..10u64 {
        let order = format!("twin-{round}");
        let code = issue(&pool[0], issue_cmd(&order, 4, MOBILE)).await.code;
        let r = redeem_cmd(PosId(300), round, code, &l4, 3);
        let replies = redeem_concurrently(&pool, vec![r.clone(), r.clone()]).await;
        assert_eq!(
            first_reply(&replies[0]),
            first_reply(&replies[1]),
            "identical requests, identical replies"
        );
        let repeats = replies
            .iter()
            .filter(|r| as_redeemed((*r).clone()).replayed)
            .count();
        assert_eq!(repeats, 1, "exactly one of the twins is the repeat");
        let got = as_redeemed(replies[0].clone());
        assert_eq!((got.units, got.units_remaining), (3, 1));
        let audit = audit(&pool[0]).await;
        let v = audit.voucher(&order);
        assert_eq!((v.units_remaining, v.live_code), (1, got.new_code));
        let log = audit.redemptions_of(&order);
        assert_eq!(log.len(), 1, "applied once");
        assert_eq!((log[0].request_id, log[0].units), (r.request_id, 3));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inv_4_same_request_id_with_other_content_is_request_conflict() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let pool = clients(&server, 2).await;
    let l4 = last4(MOBILE);
    for round in 0..10u64 {
        let order = format!("conflict-{round}");
        let code = issue(&pool[0], issue_cmd(&order, 4, MOBILE)).await.code;
        let one = redeem_cmd(PosId(301), round, code, &l4, 1);
        let two = redeem_cmd(PosId(301), round, code, &l4, 2);
        let replies = redeem_concurrently(&pool, vec![one.clone(), two.clone()]).await;
        let w = match (&replies[0], &replies[1]) {
            (Ok(_), Err(_)) => 0,
            (Err(_), Ok(_)) => 1,
            other => panic!("exactly one of two conflicting requests applies: {other:?}"),
        };
        assert_rejected(&replies[1 - w], ErrorCode::RequestConflict);
        let won = as_redeemed(replies[w].clone());
        let units = [1, 2][w];
        assert_eq!((won.units, won.units_remaining), (units, 4 - units));
        // A retry of either gets the same answer as before.
        let winner = [&one, &two][w].clone();
        let loser = [&one, &two][1 - w].clone();
        let retry = run(&pool[0], Command::Redeem(winner)).await;
        assert_eq!(first_reply(&retry), first_reply(&replies[w]));
        assert_rejected(
            &run(&pool[1], Command::Redeem(loser)).await,
            ErrorCode::RequestConflict,
        );
        let audit = audit(&pool[0]).await;
        assert_eq!(audit.voucher(&order).units_remaining, 4 - units);
        assert_eq!(audit.redemptions_of(&order).len(), 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inv_4_idempotent_retry_after_dropped_reply_returns_original_reply() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let l4 = last4(MOBILE);

    // The POS got its reply but lost it with the connection; meanwhile the
    // buyer redeemed again with the new code. The retry, on a new
    // connection and naming the old code, gets the original reply.
    let first = server.client(&server.tcp_target()).await;
    let c1 = issue(&first, issue_cmd("retry-1", 5, MOBILE)).await.code;
    let r = redeem_cmd(PosId(400), 1, c1, &l4, 2);
    let original = run(&first, Command::Redeem(r.clone())).await;
    drop(first);
    let c2 = as_redeemed(original.clone())
        .new_code
        .expect("units remain");
    let second = server.client(&server.tcp_target()).await;
    let later = as_redeemed(
        run(
            &second,
            Command::Redeem(redeem_cmd(PosId(401), 1, c2, &l4, 1)),
        )
        .await,
    );
    let c3 = later.new_code.expect("units remain");
    let retry = run(&second, Command::Redeem(r.clone())).await;
    assert!(
        as_redeemed(retry.clone()).replayed,
        "the retry says it is a repeat"
    );
    assert_eq!(
        first_reply(&retry),
        original,
        "same reply, with the same (since replaced) new code"
    );
    assert_rejected(&lookup(&second, c1, &l4).await, ErrorCode::CodeInvalid);
    assert_rejected(&lookup(&second, c2, &l4).await, ErrorCode::CodeInvalid);
    assert_eq!(
        as_looked_up(lookup(&second, c3, &l4).await).units_remaining,
        2
    );
    let state = audit(&second).await;
    assert_eq!(state.voucher("retry-1").units_remaining, 2);
    let log: Vec<(RequestId, u32)> = state
        .redemptions_of("retry-1")
        .iter()
        .map(|e| (e.request_id, e.units))
        .collect();
    assert_eq!(
        log,
        vec![
            (r.request_id, 2),
            (
                RequestId {
                    source: 401,
                    serial: 1
                },
                1
            )
        ]
    );

    // The reply never reached the POS at all: the request was written and
    // the socket closed before reading it. The retry completes the
    // redemption exactly once, whichever way the first attempt went.
    let c1 = issue(&second, issue_cmd("retry-2", 5, MOBILE)).await.code;
    let r = redeem_cmd(PosId(402), 1, c1, &l4, 3);
    let mut raw = Raw::hello(&server.tcp, &server.token()).await;
    raw.send(&request_frame(2, &Request::redeem(r.clone())))
        .await;
    drop(raw);
    let third = server.client(&server.tcp_target()).await;
    let retry = as_redeemed(run(&third, Command::Redeem(r.clone())).await);
    assert_eq!((retry.units, retry.units_remaining), (3, 2));
    let c2 = retry.new_code.expect("units remain");
    assert_ne!(c2, c1);
    assert_eq!(
        run(&second, Command::Redeem(r.clone())).await,
        Ok(Outcome::Redeemed(retry.clone()))
    );
    assert_eq!(
        as_looked_up(lookup(&third, c2, &l4).await).units_remaining,
        2
    );
    let state = audit(&third).await;
    assert_eq!(state.voucher("retry-2").units_remaining, 2);
    assert_eq!(state.redemptions_of("retry-2").len(), 1, "units taken once");
}

/// The hand-made redeem frame of the dropped-reply test is answered
/// normally when its reply is read (so that test differs only in not
/// reading), and a retry on another connection gets the same reply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn design_protocol_hand_made_redeem_frame_gets_its_reply() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let client = server.client(&server.tcp_target()).await;
    let l4 = last4(MOBILE);
    let c1 = issue(&client, issue_cmd("raw-1", 2, MOBILE)).await.code;
    let r = redeem_cmd(PosId(403), 1, c1, &l4, 1);
    let mut raw = Raw::hello(&server.tcp, &server.token()).await;
    raw.send(&request_frame(7, &Request::redeem(r.clone())))
        .await;
    let Some((h, Response::Reply(reply))) = raw.read().await else {
        panic!("expected a reply")
    };
    assert_eq!(h.correlation, 7);
    assert_eq!(first_reply(&run(&client, Command::Redeem(r)).await), reply);
    assert_eq!(as_redeemed(reply).units_remaining, 1);
}
