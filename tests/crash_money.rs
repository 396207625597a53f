//! SIGKILL with money in flight (issue 9, DESIGN "Reliability"): a client
//! issues, redeems, refunds, runs settlements and confirms payouts while
//! the server is killed at random moments and restarted on the same data
//! directory. After every restart every acknowledged refund and payout is
//! there as acknowledged, every order's money adds up (paid = refunded + to
//! the seller + held), and what the sellers' orders gave them is exactly
//! what the catalog holds for them: payable, in transit or paid out — so
//! no message between the shards and the catalog was lost or applied
//! twice across the crash. The seed is printed; `VOUCH_CRASH_SEED` reruns
//! it (as far as timing allows).
mod common;
mod helpers;

use common::Server;
use helpers::*;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use vouch_engine::catalog::{
    Actor, CatalogCommand as C, CatalogOutcome, CatalogQuery as Q, CatalogView, PayoutState,
    SellerKind,
};
use vouch_engine::command::{OrderShow, OrderView, Refund, RefundAction};
use vouch_engine::{Command, Fen, Outcome, PosId, RequestId};
use vouch_protocol::Client;

/// Kills per test, each followed by a restart and the checks.
const CYCLES: u64 = 6;

/// What the server acknowledged before a kill.
#[derive(Default)]
struct Acked {
    /// Orders issued (their reply arrived).
    orders: Vec<String>,
    /// Refunds: order → the buyer's amount.
    refunds: HashMap<String, Fen>,
    /// Settlements run: id → state acknowledged last.
    settlements: HashMap<u64, PayoutState>,
}

type Shared = Arc<Mutex<Acked>>;

/// One client's load until the connection breaks: issue 3 units,
/// redeem 1, refund every third order, settle and confirm now and then.
async fn load(client: Client, acked: Shared, cycle: u64, seed: u64) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ cycle);
    for i in 0u64.. {
        let order = format!("k{cycle}-{i}");
        let serial = cycle * 1_000_000 + i * 10;
        let Ok(Ok(Outcome::Issued(issued))) = client
            .command(Command::Issue(issue_cmd(&order, 3, "13800001234")))
            .await
        else {
            return;
        };
        acked.lock().unwrap().orders.push(order.clone());
        let redeem = redeem_cmd(PosId(900), serial, issued.code, "1234", 1);
        if client.command(Command::Redeem(redeem)).await.is_err() {
            return;
        }
        if rng.random_bool(0.34) {
            let refund = Command::Refund(Refund {
                request_id: RequestId {
                    source: 1,
                    serial: serial + 1,
                },
                order_id: order.clone(),
                action: RefundAction::Automatic,
                seller_id: None,
            });
            match client.command(refund).await {
                Ok(Ok(Outcome::Refunded(r))) => {
                    acked
                        .lock()
                        .unwrap()
                        .refunds
                        .insert(order.clone(), r.buyer_amount);
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
        if rng.random_bool(0.2) && !settle(&client, &acked, serial).await {
            return;
        }
    }
}

/// Runs a settlement for the seller now and confirms its payout; false
/// when the connection broke.
async fn settle(client: &Client, acked: &Shared, serial: u64) -> bool {
    let now = jiff::Timestamp::now().as_millisecond();
    let rid = |n| RequestId {
        source: 2,
        serial: serial + n,
    };
    let run = C::RunSettlement {
        seller: SELLER,
        cutoff_ms: now - 1,
    };
    let s = match client.catalog(rid(2), Some(Actor::Staff), run).await {
        Ok(Ok(CatalogOutcome::Settlement(s))) => s,
        Ok(_) => return true,
        Err(_) => return false,
    };
    acked.lock().unwrap().settlements.insert(s.id, s.state);
    if s.state != PayoutState::InTransit {
        return true;
    }
    let confirm = C::ConfirmPayout { settlement: s.id };
    match client
        .catalog(rid(3), Some(Actor::PaymentSystem), confirm)
        .await
    {
        Ok(Ok(CatalogOutcome::Settlement(done))) => {
            acked
                .lock()
                .unwrap()
                .settlements
                .insert(done.id, done.state);
            true
        }
        Ok(_) => true,
        Err(_) => false,
    }
}

async fn order_view(client: &Client, order: &str) -> OrderView {
    let c = Command::Order(OrderShow {
        order_id: order.into(),
        seller_id: None,
    });
    match run(client, c).await {
        Ok(Outcome::Order(o)) => o,
        other => panic!("order {order}: {other:?}"),
    }
}

/// Every settlement on the server: id → (state, total).
async fn settlements(client: &Client) -> HashMap<u64, (PayoutState, Fen)> {
    let mut out = HashMap::new();
    let mut after = None;
    loop {
        let q = Q::Settlements {
            seller: None,
            after,
            limit: 1_000,
        };
        let Ok(Ok(CatalogView::Settlements(page))) = client.catalog_read(None, q).await else {
            panic!("settlements unreadable")
        };
        after = page.last().map(|s| s.id);
        let full = page.len() == 1_000;
        out.extend(page.into_iter().map(|s| (s.id, (s.state, s.total))));
        if !full {
            return out;
        }
    }
}

/// The seller's payable money in the catalog, fen.
async fn payable(client: &Client) -> i64 {
    match client
        .catalog_read(None, Q::Seller { id: Some(SELLER) })
        .await
    {
        Ok(Ok(CatalogView::Seller(s))) => s.payable.fen(),
        other => panic!("{other:?}"),
    }
}

/// The checks after a restart (see the module docs).
async fn check(client: &Client, acked: &Acked, at: &str) {
    let mut to_seller = 0i64;
    for order in &acked.orders {
        let o = order_view(client, order).await;
        assert_eq!(
            o.paid,
            o.refunded + o.to_seller + o.escrow,
            "{at}: MON-5 for {order}: {o:?}"
        );
        if let Some(buyer) = acked.refunds.get(order) {
            assert_eq!(
                o.refunded, *buyer,
                "{at}: the acknowledged refund of {order}"
            );
        }
        to_seller += o.to_seller.fen();
    }
    let on_server = settlements(client).await;
    for (id, state) in &acked.settlements {
        let (now, _) = on_server
            .get(id)
            .unwrap_or_else(|| panic!("{at}: settlement {id} lost"));
        let ok =
            now == state || (*state == PayoutState::InTransit && *now == PayoutState::Confirmed);
        assert!(ok, "{at}: settlement {id} acknowledged {state}, now {now}");
    }
    // Reversal windows are 1 s: wait until every redemption's money is
    // payable, then the catalog holds exactly what the orders gave.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let settled: i64 = settlements(client)
            .await
            .values()
            .filter(|(s, _)| matches!(s, PayoutState::InTransit | PayoutState::Confirmed))
            .map(|(_, t)| t.fen())
            .sum();
        let held = payable(client).await + settled;
        if held == to_seller {
            return;
        }
        assert!(
            held < to_seller,
            "{at}: the catalog holds {held} fen, the orders gave {to_seller}: applied twice"
        );
        assert!(
            Instant::now() < deadline,
            "{at}: the catalog holds {held} fen, the orders gave {to_seller}: lost"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mon_5_refunds_and_payouts_survive_sigkill() {
    let seed = std::env::var("VOUCH_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| jiff::Timestamp::now().as_nanosecond() as u64);
    println!("crash money seed {seed} (VOUCH_CRASH_SEED reruns it)");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_with(dir.path(), &["--reversal-window-s", "1"]);
    let admin = server.client(&server.tcp_target()).await;
    let create = C::CreateSeller {
        id: SELLER,
        kind: SellerKind::Mall,
        self_issuing: false,
        group_buying_operator: false,
    };
    tenants::catalog(&admin, 1, None, create).await;
    drop(admin);
    let acked: Shared = Arc::default();
    for cycle in 0..CYCLES {
        let client = server.client(&server.tcp_target()).await;
        let task = tokio::spawn(load(client, acked.clone(), cycle, seed));
        tokio::time::sleep(Duration::from_millis(rng.random_range(50..600))).await;
        server.kill();
        let _ = task.await;
        server = Server::start(dir.path());
        let client = server.client(&server.tcp_target()).await;
        let snapshot = {
            let a = acked.lock().unwrap();
            Acked {
                orders: a.orders.clone(),
                refunds: a.refunds.clone(),
                settlements: a.settlements.clone(),
            }
        };
        check(
            &client,
            &snapshot,
            &format!("seed {seed} after kill {cycle}"),
        )
        .await;
    }
    let a = acked.lock().unwrap();
    assert!(
        !a.refunds.is_empty() && !a.settlements.is_empty(),
        "the load refunded and settled"
    );
}
