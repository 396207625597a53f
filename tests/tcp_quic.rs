//! The voucher life cycle (ORD-2, ORD-7, ORD-8, ORD-9, reversal), batch
//! frames and restart recovery over a real `vouch serve` process, each run
//! once over TCP and once over QUIC with the same test body.
mod common;
mod helpers;

use common::Server;
use helpers::*;
use std::collections::HashSet;
use vouch_engine::command::{Issue, Issued, Redeem, RedemptionEntry, VoucherState};
use vouch_engine::{Code, Command, ErrorCode, Outcome, PosId, ProductId, RequestId};
use vouch_protocol::{Target, WireReply};

const MOBILE: &str = "13800001234";

/// Issue, look up, redeem part then the rest, reverse; real values checked
/// at every step, then against the server's audit.
async fn life_cycle(server: &Server, target: &Target) {
    let client = server.client(target).await;
    let l4 = last4(MOBILE);
    let order = "life-1".to_string();
    let cmd = issue_cmd(&order, 5, MOBILE);

    // ORD-2: issue; the same order again with the same content is the same reply.
    let issued = issue(&client, cmd.clone()).await;
    assert_eq!(issued.units, 5);
    assert_eq!(issued.code.digits(), 9);
    assert!(issued.valid_from_ms < issued.valid_until_ms);
    let again = issue(&client, cmd.clone()).await;
    assert!(again.replayed && !issued.replayed, "the repeat says so");
    assert_eq!(first_issued(&again), issued);
    let mut changed = cmd.clone();
    changed.units = 6;
    assert_rejected(
        &run(&client, Command::Issue(changed)).await,
        ErrorCode::OrderConflict,
    );

    // ORD-9: look up without consuming; wrong phone digits look like a bad code.
    let c1 = issued.code;
    let l = as_looked_up(lookup(&client, c1, &l4).await);
    assert_eq!(l.order_id, order);
    assert_eq!((l.seller_id, l.product_id), (SELLER, ProductId(11)));
    assert_eq!((l.units_remaining, l.units_total), (5, 5));
    assert_eq!(
        (l.valid_from_ms, l.valid_until_ms),
        (issued.valid_from_ms, issued.valid_until_ms)
    );
    assert_rejected(&lookup(&client, c1, "0000").await, ErrorCode::CodeInvalid);
    assert_eq!(
        as_looked_up(lookup(&client, c1, &l4).await).units_remaining,
        5,
        "lookups consume nothing"
    );

    // ORD-8: a partial redemption voids the code and gives a new one.
    let pos = PosId(501);
    let a = redeem_cmd(pos, 1, c1, &l4, 2);
    let ra = as_redeemed(run(&client, Command::Redeem(a.clone())).await);
    assert_eq!(
        (ra.order_id.as_str(), ra.units, ra.units_remaining),
        (order.as_str(), 2, 3)
    );
    let c2 = ra.new_code.expect("units remain, so a new code");
    assert_ne!(c2, c1);
    let old = lookup(&client, c1, &l4).await;
    assert_rejected(&old, ErrorCode::CodeInvalid);
    assert_eq!(old.unwrap_err().code, 2, "code_invalid is error number 2");
    assert_rejected(
        &run(&client, Command::Redeem(redeem_cmd(pos, 2, c1, &l4, 1))).await,
        ErrorCode::CodeInvalid,
    );
    let l = as_looked_up(lookup(&client, c2, &l4).await);
    assert_eq!((l.units_remaining, l.units_total), (3, 5));

    // ORD-7: asking more than remains, or zero units, is refused and changes nothing.
    assert_rejected(
        &run(&client, Command::Redeem(redeem_cmd(pos, 3, c2, &l4, 4))).await,
        ErrorCode::UnitsInsufficient,
    );
    assert_rejected(
        &run(&client, Command::Redeem(redeem_cmd(pos, 4, c2, &l4, 0))).await,
        ErrorCode::UnitsInvalid,
    );
    assert_rejected(
        &run(&client, Command::Redeem(redeem_cmd(pos, 5, c2, "9999", 1))).await,
        ErrorCode::CodeInvalid,
    );
    assert_eq!(
        as_looked_up(lookup(&client, c2, &l4).await).units_remaining,
        3
    );

    let b = redeem_cmd(pos, 6, c2, &l4, 1);
    let rb = as_redeemed(run(&client, Command::Redeem(b.clone())).await);
    assert_eq!((rb.units, rb.units_remaining), (1, 2));
    let c3 = rb.new_code.expect("new code");
    assert!(c3 != c1 && c3 != c2);

    // Reversal of the first redemption, naming its original code: the units
    // go back onto the current live code, which stays c3.
    let rev_a = reverse_cmd(pos, 7, c1, a.request_id);
    let reversed = as_reversed(run(&client, Command::Reverse(rev_a.clone())).await);
    assert_eq!(
        (
            reversed.order_id.as_str(),
            reversed.units,
            reversed.units_remaining,
            reversed.live_code
        ),
        (order.as_str(), 2, 4, c3)
    );
    assert_eq!(
        as_looked_up(lookup(&client, c3, &l4).await).units_remaining,
        4
    );
    // The retry of the reversal is the same reply and gives nothing back twice.
    assert_eq!(
        first_reversed(&as_reversed(run(&client, Command::Reverse(rev_a)).await)),
        reversed
    );
    assert_eq!(
        as_looked_up(lookup(&client, c3, &l4).await).units_remaining,
        4
    );
    assert_rejected(
        &run(
            &client,
            Command::Reverse(reverse_cmd(pos, 8, c3, a.request_id)),
        )
        .await,
        ErrorCode::AlreadyReversed,
    );
    assert_rejected(
        &run(
            &client,
            Command::Reverse(reverse_cmd(PosId(pos.0 + 1), 1, c3, b.request_id)),
        )
        .await,
        ErrorCode::ReversalNotPermitted,
    );

    // Redeem the rest: no units, no code left.
    let c = redeem_cmd(pos, 9, c3, &l4, 4);
    let rc = as_redeemed(run(&client, Command::Redeem(c.clone())).await);
    assert_eq!((rc.units, rc.units_remaining, rc.new_code), (4, 0, None));
    assert_rejected(&lookup(&client, c3, &l4).await, ErrorCode::CodeInvalid);
    assert_rejected(
        &run(&client, Command::Redeem(redeem_cmd(pos, 10, c3, &l4, 1))).await,
        ErrorCode::CodeInvalid,
    );

    // Reversing on a used-up voucher issues a fresh code for the units.
    let reversed = as_reversed(
        run(
            &client,
            Command::Reverse(reverse_cmd(pos, 11, c3, c.request_id)),
        )
        .await,
    );
    assert_eq!((reversed.units, reversed.units_remaining), (4, 4));
    let c4 = reversed.live_code;
    assert!(
        ![c1, c2, c3].contains(&c4),
        "a fresh code, not a retired one"
    );
    let l = as_looked_up(lookup(&client, c4, &l4).await);
    assert_eq!((l.units_remaining, l.units_total), (4, 5));

    // The server's own view agrees.
    let audit = audit(&client).await;
    assert_eq!(
        *audit.voucher(&order),
        VoucherState {
            order_id: order.clone(),
            units_total: 5,
            units_remaining: 4,
            units_redeemed: 1,
            units_void: 0,
            live_code: Some(c4),
        }
    );
    let log: Vec<(RequestId, u32, bool)> = audit
        .redemptions_of(&order)
        .iter()
        .map(|r| (r.request_id, r.units, r.reversed))
        .collect();
    assert_eq!(
        log,
        vec![
            (a.request_id, 2, true),
            (b.request_id, 1, false),
            (c.request_id, 4, true)
        ]
    );
    for r in audit.redemptions_of(&order) {
        assert_eq!(
            (r.outlet_id, r.verifier_id, r.pos_id),
            (OUTLET, VERIFIER, Some(pos))
        );
    }
}

#[tokio::test]
async fn ord_8_issue_lookup_redeem_reverse_over_tcp() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    life_cycle(&server, &server.tcp_target()).await;
}

#[tokio::test]
async fn ord_8_issue_lookup_redeem_reverse_over_quic() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    life_cycle(&server, &server.quic_target()).await;
}

/// Vouchers issued in the batch test.
const BATCH_VOUCHERS: usize = 300;

/// What one item of the redeem batch must get back.
#[derive(Clone, Copy, Debug)]
enum Expect {
    /// Redeems one unit of voucher `i`.
    Redeemed(usize),
    /// A repeat of the item at `index` (same request id, same content).
    SameAs(usize),
    /// Wrong phone digits.
    CodeInvalid,
    /// More units than the voucher has.
    UnitsInsufficient,
}

/// Batch frames of a few hundred items: every reply is at its request's
/// position and belongs to that request.
async fn batches(server: &Server, target: &Target) {
    let client = server.client(target).await;
    let issues: Vec<Issue> = (0..BATCH_VOUCHERS)
        .map(|i| {
            let mobile = format!("1390000{i:04}");
            issue_cmd(&format!("batch-{i:03}"), 1 + (i % 4) as u32, &mobile)
        })
        .collect();
    let replies = client.issue_batch(issues.clone()).await.unwrap();
    assert_eq!(replies.len(), BATCH_VOUCHERS);
    let issued: Vec<Issued> = replies.into_iter().map(as_issued).collect();
    let codes: HashSet<Code> = issued.iter().map(|i| i.code).collect();
    assert_eq!(
        codes.len(),
        BATCH_VOUCHERS,
        "every voucher has its own code"
    );
    for (cmd, got) in issues.iter().zip(&issued) {
        assert_eq!(got.units, cmd.units);
        let l = as_looked_up(lookup(&client, got.code, &last4(&cmd.mobile)).await);
        assert_eq!(l.order_id, cmd.order_id, "reply i belongs to request i");
        assert_eq!(l.units_remaining, cmd.units);
    }
    // The same batch in reverse order: idempotent, and still in request order.
    let again = client
        .issue_batch(issues.iter().rev().cloned().collect())
        .await
        .unwrap();
    let again: Vec<Issued> = again
        .into_iter()
        .map(|r| first_issued(&as_issued(r)))
        .collect();
    let mut expected = issued.clone();
    expected.reverse();
    assert_eq!(again, expected);

    // A redeem batch mixing good items, repeats and refusals.
    let pos = PosId(600);
    let mut items: Vec<Redeem> = Vec::new();
    let mut expect: Vec<Expect> = Vec::new();
    for (i, (cmd, got)) in issues.iter().zip(&issued).enumerate() {
        let l4 = last4(&cmd.mobile);
        if i % 7 == 0 {
            let wrong = if l4 == "0000" { "1111" } else { "0000" };
            items.push(redeem_cmd(pos, 10_000 + i as u64, got.code, wrong, 1));
            expect.push(Expect::CodeInvalid);
        }
        if i % 13 == 0 {
            items.push(redeem_cmd(
                pos,
                20_000 + i as u64,
                got.code,
                &l4,
                cmd.units + 1,
            ));
            expect.push(Expect::UnitsInsufficient);
        }
        items.push(redeem_cmd(pos, i as u64, got.code, &l4, 1));
        expect.push(Expect::Redeemed(i));
        if i % 11 == 0 {
            items.push(items[items.len() - 1].clone());
            expect.push(Expect::SameAs(items.len() - 2));
        }
    }
    assert!(items.len() > BATCH_VOUCHERS + 90);
    let replies: Vec<WireReply> = client.redeem_batch(items.clone()).await.unwrap();
    assert_eq!(replies.len(), items.len());
    for (k, (reply, want)) in replies.iter().zip(&expect).enumerate() {
        match *want {
            Expect::Redeemed(i) => {
                let r = as_redeemed(reply.clone());
                assert_eq!(
                    r.order_id, issues[i].order_id,
                    "reply {k} belongs to item {k}"
                );
                assert_eq!((r.units, r.units_remaining), (1, issues[i].units - 1));
                assert_eq!(r.new_code.is_some(), issues[i].units > 1);
                assert_ne!(r.new_code, Some(issued[i].code));
            }
            Expect::SameAs(j) => {
                assert!(as_redeemed(reply.clone()).replayed, "a repeat says so");
                assert_eq!(
                    first_reply(reply),
                    replies[j],
                    "a repeat gets the same reply"
                )
            }
            Expect::CodeInvalid => assert_rejected(reply, ErrorCode::CodeInvalid),
            Expect::UnitsInsufficient => assert_rejected(reply, ErrorCode::UnitsInsufficient),
        }
    }

    // Old codes are void, new codes carry the rest.
    for (k, want) in expect.iter().enumerate() {
        let Expect::Redeemed(i) = *want else { continue };
        let l4 = last4(&issues[i].mobile);
        assert_rejected(
            &lookup(&client, issued[i].code, &l4).await,
            ErrorCode::CodeInvalid,
        );
        if let Some(code) = as_redeemed(replies[k].clone()).new_code {
            let l = as_looked_up(lookup(&client, code, &l4).await);
            assert_eq!(
                (l.order_id.as_str(), l.units_remaining),
                (issues[i].order_id.as_str(), issues[i].units - 1)
            );
        }
    }
    let audit = audit(&client).await;
    assert_eq!(audit.vouchers.len(), BATCH_VOUCHERS);
    assert_eq!(
        audit.redemptions.len(),
        BATCH_VOUCHERS,
        "one redemption per voucher"
    );
    for cmd in &issues {
        let v = audit.voucher(&cmd.order_id);
        assert_eq!(
            (v.units_total, v.units_remaining, v.units_redeemed),
            (cmd.units, cmd.units - 1, 1)
        );
        let log: Vec<&RedemptionEntry> = audit.redemptions_of(&cmd.order_id);
        assert_eq!(log.len(), 1);
        assert_eq!((log[0].units, log[0].reversed), (1, false));
    }
}

#[tokio::test]
async fn design_protocol_batch_replies_in_request_order_over_tcp() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    batches(&server, &server.tcp_target()).await;
}

#[tokio::test]
async fn design_protocol_batch_replies_in_request_order_over_quic() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    batches(&server, &server.quic_target()).await;
}

/// Acknowledged state survives SIGKILL and a restart on the same data
/// directory; `pick` chooses the transport (its port changes on restart).
async fn restart_keeps_state(pick: fn(&Server) -> Target) {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path());
    let client = server.client(&pick(&server)).await;
    let l4 = last4(MOBILE);
    let first = issue_cmd("restart-1", 6, MOBILE);
    let issued = issue(&client, first.clone()).await;
    let redeem = redeem_cmd(PosId(700), 1, issued.code, &l4, 2);
    let redeemed = as_redeemed(run(&client, Command::Redeem(redeem.clone())).await);
    let live = redeemed.new_code.expect("units remain");
    let other = redeem_cmd(PosId(700), 2, live, &l4, 1);
    let other_reply = as_redeemed(run(&client, Command::Redeem(other.clone())).await);
    let reversal = reverse_cmd(PosId(700), 3, live, other.request_id);
    let reversed = as_reversed(run(&client, Command::Reverse(reversal.clone())).await);
    let live = reversed.live_code;
    assert_eq!(reversed.units_remaining, 4);
    let batch: Vec<Issue> = (0..50)
        .map(|i| issue_cmd(&format!("restart-b{i}"), 3, MOBILE))
        .collect();
    let batch_issued: Vec<WireReply> = client.issue_batch(batch.clone()).await.unwrap();
    let before = audit(&client).await;
    assert_eq!(before.vouchers.len(), 51);
    assert_eq!(before.redemptions.len(), 2);
    drop(client);

    server.kill();
    let server = Server::start(dir.path());
    let client = server.client(&pick(&server)).await;
    assert_eq!(
        audit(&client).await,
        before,
        "every acknowledged write survived"
    );
    let l = as_looked_up(lookup(&client, live, &l4).await);
    assert_eq!((l.units_remaining, l.units_total), (4, 6));
    assert_rejected(
        &lookup(&client, issued.code, &l4).await,
        ErrorCode::CodeInvalid,
    );
    // Idempotency records survived too: retries get the original replies.
    assert_eq!(first_issued(&issue(&client, first).await), issued);
    let retried = as_redeemed(run(&client, Command::Redeem(redeem)).await);
    assert!(
        retried.replayed,
        "after a restart a retry still says it is a repeat"
    );
    assert_eq!(first_redeemed(&retried), redeemed);
    assert_eq!(
        first_redeemed(&as_redeemed(run(&client, Command::Redeem(other)).await)),
        other_reply
    );
    assert_eq!(
        first_reversed(&as_reversed(run(&client, Command::Reverse(reversal)).await)),
        reversed
    );
    let batch_again: Vec<_> = client.issue_batch(batch).await.unwrap();
    assert_eq!(
        batch_again.iter().map(first_reply).collect::<Vec<_>>(),
        batch_issued
    );
    assert_eq!(audit(&client).await, before, "the retries applied nothing");
    // And the server keeps working: a new voucher gets a code never seen before.
    let fresh = issue(&client, issue_cmd("restart-2", 1, MOBILE)).await;
    let seen: HashSet<Code> = [issued.code, redeemed.new_code.unwrap(), live]
        .into_iter()
        .chain(batch_issued.iter().map(|r| as_issued(r.clone()).code))
        .collect();
    assert!(!seen.contains(&fresh.code));
    let redeemed = as_redeemed(
        run(
            &client,
            Command::Redeem(redeem_cmd(PosId(700), 4, live, &l4, 4)),
        )
        .await,
    );
    assert_eq!((redeemed.units_remaining, redeemed.new_code), (0, None));
    match run(
        &client,
        Command::Redeem(redeem_cmd(PosId(700), 4, live, &l4, 4)),
    )
    .await
    {
        Ok(Outcome::Redeemed(again)) => assert_eq!(first_redeemed(&again), redeemed),
        other => panic!("retry after restart: {other:?}"),
    }
}

#[tokio::test]
async fn design_reliability_state_survives_restart_over_tcp() {
    restart_keeps_state(Server::tcp_target).await;
}

#[tokio::test]
async fn design_reliability_state_survives_restart_over_quic() {
    restart_keeps_state(Server::quic_target).await;
}
