//! Refunds over a real server (REF, issue 9): the role matrix binds each
//! refund step to the front end or the order's own seller (another
//! seller's order does not exist for it), and racing a redemption against
//! a refund of the same voucher (a refunded code then answers
//! `voucher_refunded` to staff, ORD-7), or two refunds of one order, gives
//! exactly one outcome each with the money conserved.
mod common;
mod helpers;

use common::Server;
use helpers::*;
use vouch_engine::catalog::{Actor, CatalogCommand, SellerKind};
use vouch_engine::command::{
    ListOrders, ListTransfers, OrderShow, OrderState, OrderView, Refund, RefundAction,
    TransferAction, TransferState, TransferStep,
};
use vouch_engine::{Code, Command, ErrorCode, Fen, Outcome, PosId, RequestId, SellerId};
use vouch_protocol::{Client, WireReply};

fn refund(order: &str, action: RefundAction, rid: RequestId) -> Command {
    Command::Refund(Refund {
        request_id: rid,
        order_id: order.into(),
        action,
        seller_id: None,
    })
}

async fn order_view(client: &Client, order: &str) -> OrderView {
    let c = Command::Order(OrderShow {
        order_id: order.into(),
        seller_id: None,
    });
    match run(client, c).await {
        Ok(Outcome::Order(o)) => o,
        other => panic!("{other:?}"),
    }
}

/// A command's reply; a request refused as a whole (`not_permitted`) reads
/// as the same refusal.
async fn send(client: &Client, command: Command) -> WireReply {
    match client.command(command).await {
        Ok(reply) => reply,
        Err(vouch_protocol::client::ClientError::Refused(e)) => Err(e),
        Err(e) => panic!("connection: {e}"),
    }
}

fn code_of(reply: &WireReply) -> Option<u16> {
    reply.as_ref().err().map(|e| e.code)
}

/// MON-5 / REF-7 for one order: paid = refunded + to the seller + held,
/// and every unit is left, redeemed or void.
fn conserved(o: &OrderView) {
    assert_eq!(o.paid, o.refunded + o.to_seller + o.escrow, "{o:?}");
    assert_eq!(
        o.units_total,
        o.units_remaining + o.units_redeemed + o.units_void,
        "{o:?}"
    );
}

async fn tenant(server: &Server, admin: &Client, serial: u64, actor: Actor) -> (Client, u64) {
    let token = tenants::token_for(admin, serial, actor).await;
    let source = vouch::server::token_source(&vouch::server::token_hash(&token));
    let client = Client::connect(&server.tcp_target(), &token, Some(&server.ca()))
        .await
        .expect("connect");
    (client, source)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ref_role_matrix_and_races_over_a_real_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let admin = server.client(&server.tcp_target()).await;
    for (serial, id) in [(1, SELLER), (2, SellerId(8))] {
        let create = CatalogCommand::CreateSeller {
            id,
            kind: SellerKind::Mall,
            self_issuing: false,
            group_buying_operator: false,
        };
        tenants::catalog(&admin, serial, None, create).await;
    }
    let (front, fs) = tenant(&server, &admin, 10, Actor::FrontEnd).await;
    let front = std::sync::Arc::new(front);
    let pos = std::sync::Arc::new(server.client(&server.tcp_target()).await);
    let (seller, ss) = tenant(&server, &admin, 11, Actor::Seller(SELLER)).await;
    let (other, os) = tenant(&server, &admin, 12, Actor::Seller(SellerId(8))).await;
    let rid = |source: u64, serial: u64| RequestId { source, serial };
    issue(&admin, issue_cmd("m-1", 3, "13800001234")).await;
    let not_permitted = Some(ErrorCode::NotPermitted.number());
    // The front end takes the buyer's steps only (REF-3 among them since
    // deliveries are recorded, ORD-2: an unknown order is not found).
    let agreed = RefundAction::Agreed {
        amount: Fen::new(100),
    };
    assert_eq!(
        code_of(&send(&front, refund("m-1", agreed.clone(), rid(fs, 1))).await),
        not_permitted
    );
    assert_eq!(
        code_of(
            &send(
                &front,
                refund("no-such", RefundAction::NotDelivered, rid(fs, 2))
            )
            .await
        ),
        Some(ErrorCode::NotFound.number())
    );
    // A seller decides, for its own orders only: another seller's order
    // answers like an unknown one.
    assert_eq!(
        code_of(&send(&seller, refund("m-1", RefundAction::Automatic, rid(ss, 1))).await),
        not_permitted
    );
    let theirs = code_of(&send(&other, refund("m-1", agreed.clone(), rid(os, 1))).await);
    let unknown = code_of(&send(&other, refund("no-such", agreed.clone(), rid(os, 2))).await);
    assert_eq!(
        (theirs, unknown),
        (
            Some(ErrorCode::NotFound.number()),
            Some(ErrorCode::NotFound.number())
        )
    );
    // Request ids of a token are its own.
    assert_eq!(
        code_of(&send(&seller, refund("m-1", agreed.clone(), rid(fs, 9))).await),
        not_permitted
    );
    let done = send(&seller, refund("m-1", agreed, rid(ss, 2))).await;
    assert!(
        matches!(done, Ok(Outcome::Refunded(ref r)) if r.buyer_amount == Fen::new(100)),
        "{done:?}"
    );
    conserved(&order_view(&admin, "m-1").await);

    // A redemption racing a refund of the same voucher: one wins, the
    // other is refused; never both on the same units.
    let mut codes: Vec<(String, Code)> = Vec::new();
    for i in 0..20 {
        let id = format!("race-{i}");
        codes.push((
            id.clone(),
            issue(&admin, issue_cmd(&id, 3, "13800001234")).await.code,
        ));
    }
    let mut tasks = Vec::new();
    for (i, (id, code)) in codes.iter().enumerate() {
        let (a, f) = (pos.clone(), front.clone());
        let (id, code) = (id.clone(), *code);
        tasks.push(tokio::spawn(async move {
            let redeem = Command::Redeem(redeem_cmd(PosId(900), i as u64 + 1, code, "1234", 3));
            let refund = refund(
                &id,
                RefundAction::Automatic,
                RequestId {
                    source: fs,
                    serial: 100 + i as u64,
                },
            );
            let (r, f) = tokio::join!(send(&a, redeem), send(&f, refund));
            (id, r, f)
        }));
    }
    for t in tasks {
        let (id, redeemed, refunded) = t.await.unwrap();
        let o = order_view(&admin, &id).await;
        conserved(&o);
        match (&redeemed, &refunded) {
            (Ok(_), Err(e)) => assert_eq!(
                (e.code, o.units_redeemed),
                (ErrorCode::RefundNotAllowed.number(), 3)
            ),
            (Err(e), Ok(_)) => {
                assert_eq!(
                    (e.code, o.units_void),
                    (ErrorCode::VoucherRefunded.number(), 3)
                )
            }
            other => panic!("{id}: exactly one of the redemption and the refund: {other:?}"),
        }
    }
    // Two refunds of one order at once: exactly one applies.
    issue(&admin, issue_cmd("twice", 2, "13800001234")).await;
    let (a, b) = tokio::join!(
        send(
            &front,
            refund("twice", RefundAction::Automatic, rid(fs, 200))
        ),
        send(
            &front,
            refund("twice", RefundAction::Automatic, rid(fs, 201))
        ),
    );
    let oks = [&a, &b].iter().filter(|r| r.is_ok()).count();
    assert_eq!(oks, 1, "{a:?} {b:?}");
    let o = order_view(&admin, "twice").await;
    conserved(&o);
    assert_eq!(o.refunded, Fen::new(2 * 1_250 - 100));
}

fn transfer_step(order: &str, transfer: u16, action: TransferAction, rid: RequestId) -> Command {
    Command::TransferStep(TransferStep {
        request_id: rid,
        order_id: order.into(),
        transfer,
        action,
    })
}

/// MON-7 over a real server: only the payment system's token answers a
/// refund transfer; it and staff retry a failed one; the front end and
/// sellers cannot list or answer transfers; the order view shows them,
/// and a restart keeps every answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mon_7_refund_transfers_over_a_real_server() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path());
    let admin = server.client(&server.tcp_target()).await;
    let create = CatalogCommand::CreateSeller {
        id: SELLER,
        kind: SellerKind::Mall,
        self_issuing: false,
        group_buying_operator: false,
    };
    tenants::catalog(&admin, 1, None, create).await;
    let (pay, ps) = tenant(&server, &admin, 10, Actor::PaymentSystem).await;
    let (front, fs) = tenant(&server, &admin, 11, Actor::FrontEnd).await;
    let (seller, ss) = tenant(&server, &admin, 12, Actor::Seller(SELLER)).await;
    let (staff, sts) = tenant(&server, &admin, 13, Actor::Staff).await;
    let rid = |source: u64, serial: u64| RequestId { source, serial };
    issue(&admin, issue_cmd("t-1", 2, "13800001234")).await;
    let refunded = send(&front, refund("t-1", RefundAction::Automatic, rid(fs, 1))).await;
    let Ok(Outcome::Refunded(r)) = refunded else {
        panic!("{refunded:?}")
    };
    assert_eq!(r.transfer, Some(1));

    let not_permitted = Some(ErrorCode::NotPermitted.number());
    let confirm = |source| transfer_step("t-1", 1, TransferAction::Confirm, rid(source, 5));
    assert_eq!(code_of(&send(&front, confirm(fs)).await), not_permitted);
    assert_eq!(code_of(&send(&seller, confirm(ss)).await), not_permitted);
    assert_eq!(
        code_of(&send(&staff, confirm(sts)).await),
        not_permitted,
        "staff cannot confirm"
    );
    let list = |shard, failed| {
        Command::Transfers(ListTransfers {
            shard,
            failed,
            after: 0,
            limit: 100,
        })
    };
    assert_eq!(code_of(&send(&seller, list(0, false)).await), not_permitted);
    let mut listed = Vec::new();
    for shard in 0..pay.shards() {
        let Ok(Outcome::Transfers(p)) = send(&pay, list(shard, false)).await else {
            panic!("the payment system lists transfers")
        };
        listed.extend(
            p.items
                .into_iter()
                .map(|t| (t.order_id, t.transfer, t.amount)),
        );
    }
    assert_eq!(listed, [("t-1".to_string(), 1, r.buyer_amount)]);
    let beyond = send(&pay, list(pay.shards(), false)).await;
    assert_eq!(code_of(&beyond), Some(ErrorCode::BadRequest.number()));

    let fail = send(
        &pay,
        transfer_step("t-1", 1, TransferAction::Fail, rid(ps, 1)),
    )
    .await;
    assert!(matches!(fail, Ok(Outcome::Transfer(ref t)) if t.state == TransferState::Failed));
    let retry = send(
        &staff,
        transfer_step("t-1", 1, TransferAction::Retry, rid(sts, 7)),
    )
    .await;
    assert!(
        matches!(retry, Ok(Outcome::Transfer(ref t)) if t.transfer == 2 && t.retry_of == Some(1)),
        "{retry:?}"
    );
    let done = send(
        &pay,
        transfer_step("t-1", 2, TransferAction::Confirm, rid(ps, 2)),
    )
    .await;
    assert!(matches!(done, Ok(Outcome::Transfer(ref t)) if t.state == TransferState::Confirmed));
    let again = send(
        &pay,
        transfer_step("t-1", 2, TransferAction::Confirm, rid(ps, 2)),
    )
    .await;
    assert!(matches!(again, Ok(Outcome::Transfer(ref t)) if t.replayed));

    // ORD-12 lists: a seller sees its own orders, the front end none.
    let orders = |shard| {
        Command::Orders(ListOrders {
            shard,
            seller_id: None,
            state: Some(OrderState::Unavailable),
            from: 0,
            limit: 100,
        })
    };
    assert_eq!(code_of(&send(&front, orders(0)).await), not_permitted);
    let mut mine = Vec::new();
    for shard in 0..seller.shards() {
        let Ok(Outcome::Orders(p)) = send(&seller, orders(shard)).await else {
            panic!("a seller lists its orders")
        };
        mine.extend(p.items.into_iter().map(|o| o.order_id));
    }
    assert_eq!(mine, ["t-1"]);
    let states = |o: &OrderView| o.transfers.iter().map(|t| t.state).collect::<Vec<_>>();
    let before = order_view(&admin, "t-1").await;
    assert_eq!(
        states(&before),
        [TransferState::Retried, TransferState::Confirmed]
    );
    conserved(&before);
    drop((admin, pay, front, seller, staff));
    server.kill();
    let server = Server::start(dir.path());
    let admin = server.client(&server.tcp_target()).await;
    let after = order_view(&admin, "t-1").await;
    assert_eq!(after, before, "a restart keeps every answer");
}
