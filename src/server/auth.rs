//! Who a connection is and what it may send: the handshake's token, the
//! request role matrix (`authorize`) binding the POS, verifier and seller a
//! command names to the authenticated identity, and request-id ownership.

use crate::pipeline::TokenMap;
use vouch_engine::catalog::Actor;
use vouch_engine::shard::Caller;
use vouch_engine::{Command, ErrorCode, RequestId, VerifierId};
use vouch_protocol::{Request, WireError};

/// Who a connection authenticated as.
#[derive(Clone, Copy, Debug)]
pub(super) enum Principal {
    /// The admin token: every command, and catalog commands for anyone.
    Admin,
    /// A registered token: its principal and the token's hash.
    Token(Actor, [u8; 32]),
}

/// The request-id source of a registered token: the first 8 bytes of its
/// SHA-256, big-endian. Every request id a principal's token sends must use
/// it, so no tenant can take, block or probe another's request ids
/// (invariant 4 per principal); the catalog refuses a token whose source is
/// already taken.
pub fn token_source(hash: &[u8; 32]) -> u64 {
    vouch_engine::catalog::token_source(hash)
}

/// SHA-256 of a token, as registered by `IssueToken`.
pub fn token_hash(token: &str) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(token.as_bytes()).into()
}

/// Verifier 0 means "the token's own verifier account": only a
/// verifier's token may leave the verifier out.
///
/// Errors: `bad_request` for any other principal.
fn check_unnamed_verifier(principal: &Principal, request: &Request) -> Result<(), WireError> {
    let unnamed = match request {
        Request::Command(Command::Redeem(r)) => r.verifier_id == VerifierId(0),
        Request::RedeemBatch(items) => items.iter().any(|r| r.verifier_id == VerifierId(0)),
        _ => false,
    };
    if unnamed && !matches!(principal, Principal::Token(Actor::Verifier(_), _)) {
        return Err(WireError::new(
            ErrorCode::BadRequest,
            "name the verifier account signed in (--verifier ID); only a verifier account's own token may leave it out",
        ));
    }
    Ok(())
}

/// A principal's request ids use its token's source (invariant 4).
///
/// Errors: `not_permitted` for another source.
fn check_request_id_source(source: u64, request: &Request) -> Result<(), WireError> {
    let own = |rid: &RequestId| rid.source == source;
    let rids_own = match request {
        Request::Catalog { request_id, .. } => own(request_id),
        Request::Command(Command::Redeem(r)) => own(&r.request_id),
        Request::Command(Command::Reverse(r)) => own(&r.request_id),
        Request::Command(Command::Refund(r)) => own(&r.request_id),
        Request::Command(Command::Extend(x)) => own(&x.request_id),
        Request::Command(Command::TransferStep(t)) => own(&t.request_id),
        Request::RedeemBatch(items) => items.iter().all(|r| own(&r.request_id)),
        _ => true,
    };
    if rids_own {
        Ok(())
    } else {
        Err(WireError::new(
            ErrorCode::NotPermitted,
            format!("request ids of this token must use source {source} (its token_source)"),
        ))
    }
}

/// The role matrix for requests (issue 3): which principal may send what,
/// binding the POS, verifier and seller named in a command to the
/// authenticated identity. Catalog commands are checked again by the
/// catalog's own matrix.
///
/// Errors: `not_permitted` with the reason.
pub(super) fn authorize(principal: Principal, request: &mut Request) -> Result<(), WireError> {
    check_unnamed_verifier(&principal, request)?;
    let Principal::Token(actor, hash) = principal else {
        return Ok(());
    };
    check_request_id_source(token_source(&hash), request)?;
    let refuse = |what: &str| {
        Err(WireError::new(
            ErrorCode::NotPermitted,
            format!("{actor} may not {what}"),
        ))
    };
    match request {
        Request::Hello { .. } | Request::Info => Ok(()),
        Request::Catalog { act_as, .. } | Request::CatalogRead { act_as, .. } => {
            if act_as.is_some_and(|a| a != actor) {
                return refuse("act for another principal");
            }
            *act_as = Some(actor);
            Ok(())
        }
        Request::Outbox(_) => match actor {
            Actor::Staff => Ok(()),
            _ => refuse("read or re-queue outbox messages"),
        },
        Request::IssueBatch(_) | Request::Command(Command::Issue(_)) => match actor {
            Actor::Staff | Actor::FrontEnd => Ok(()),
            _ => refuse("issue vouchers"),
        },
        // A verifier or POS looks up as itself: the shard then refuses
        // vouchers of other sellers.
        Request::Command(Command::Lookup(l)) => match actor {
            Actor::Staff => Ok(()),
            Actor::Verifier(v) if l.verifier_id.is_none_or(|x| x == v) && l.pos_id.is_none() => {
                l.verifier_id = Some(v);
                Ok(())
            }
            Actor::Device(d) if l.pos_id.is_none_or(|x| x == d) && l.verifier_id.is_none() => {
                l.pos_id = Some(d);
                Ok(())
            }
            Actor::Verifier(_) | Actor::Device(_) => {
                refuse("look codes up as another verifier or POS")
            }
            _ => refuse("look codes up"),
        },
        Request::Command(Command::Redeem(r)) => {
            if bind_redeem(actor, r) {
                Ok(())
            } else {
                refuse("redeem as another verifier or POS")
            }
        }
        Request::RedeemBatch(items) => {
            if items.iter_mut().all(|r| bind_redeem(actor, r)) {
                Ok(())
            } else {
                refuse("redeem as another verifier or POS")
            }
        }
        Request::Command(Command::Reverse(r)) => {
            if bind_reverse(actor, r) {
                Ok(())
            } else {
                refuse("reverse as another POS, verifier or seller")
            }
        }
        // Staff read any voucher's history, a seller its own; anyone else
        // asks as nobody and gets the unknown-code reply (ORD-7).
        Request::Command(Command::History(h)) => {
            h.seller_id = match actor {
                Actor::Staff => h.seller_id,
                Actor::Seller(s) => Some(s),
                _ => None,
            };
            Ok(())
        }
        Request::Command(Command::AuditVouchers(_) | Command::AuditRedemptions(_)) => match actor {
            Actor::Staff => Ok(()),
            _ => refuse("read the audit"),
        },
        Request::Command(
            c @ (Command::Refund(_)
            | Command::Extend(_)
            | Command::Order(_)
            | Command::Orders(_)
            | Command::Entries(_)),
        ) => authorize_order(actor, c),
        Request::Command(Command::TransferStep(t)) => authorize_transfer(actor, t.action),
        // The payment system's work list, and staff's.
        Request::Command(Command::Transfers(_)) => match actor {
            Actor::Staff | Actor::PaymentSystem => Ok(()),
            _ => refuse("list refund transfers"),
        },
    }
}

/// MON-7's role matrix for refund transfers: only the payment system says
/// whether money reached a buyer; it and staff may retry a failed one.
///
/// Errors: `not_permitted` with the reason.
fn authorize_transfer(
    actor: Actor,
    action: vouch_engine::command::TransferAction,
) -> Result<(), WireError> {
    use vouch_engine::command::TransferAction as A;
    match (actor, action) {
        (Actor::PaymentSystem, _) | (Actor::Staff, A::Retry) => Ok(()),
        _ => Err(WireError::new(
            ErrorCode::NotPermitted,
            format!("{actor} may not {} a refund transfer", action.verb()),
        )),
    }
}

/// The order commands' role matrix (REF, ORD-6, ORD-12), binding a
/// seller's token to its own orders.
///
/// Errors: `not_permitted` with the reason.
fn authorize_order(actor: Actor, command: &mut Command) -> Result<(), WireError> {
    let (ok, what) = match command {
        Command::Refund(r) => (bind_refund(actor, r), "take this refund step"),
        // ORD-6: the seller extends its own orders.
        Command::Extend(x) => (
            bind_seller(actor, &mut x.seller_id, false),
            "extend an order's validity",
        ),
        // ORD-12: a seller sees its own orders; the front end any, for
        // its buyers.
        Command::Order(o) => (bind_seller(actor, &mut o.seller_id, true), "read orders"),
        // RPT-2: a seller lists its own orders, staff everyone's.
        Command::Orders(l) => (bind_seller(actor, &mut l.seller_id, false), "list orders"),
        // RPT-5: a seller exports its own entries, staff the platform's.
        Command::Entries(l) => (
            bind_seller(actor, &mut l.seller_id, false),
            "export the ledger",
        ),
        _ => (false, "send this command"),
    };
    if ok {
        Ok(())
    } else {
        Err(WireError::new(
            ErrorCode::NotPermitted,
            format!("{actor} may not {what}"),
        ))
    }
}

/// Staff (and the front end when `front_end`) act on any order; a seller
/// on its own only, which is filled in. False for anyone else.
fn bind_seller(
    actor: Actor,
    seller_id: &mut Option<vouch_engine::SellerId>,
    front_end: bool,
) -> bool {
    match actor {
        Actor::Staff => true,
        Actor::FrontEnd => front_end,
        Actor::Seller(s) if seller_id.is_none_or(|n| n == s) => {
            *seller_id = Some(s);
            true
        }
        _ => false,
    }
}

/// The refund role matrix (REF-1..5): the front end takes the buyer's
/// steps for any order (it acts for buyers), a seller decides for its own
/// orders only; staff may take every step. False when the token may not.
fn bind_refund(actor: Actor, r: &mut vouch_engine::command::Refund) -> bool {
    use vouch_engine::command::RefundAction as A;
    // REF-3 is the buyer's too now that deliveries are recorded (ORD-2):
    // the shard refuses it once the SMS gateway accepted a code.
    let buyer_step = matches!(
        r.action,
        A::Automatic | A::Request { .. } | A::AfterSale { .. } | A::NotDelivered
    );
    let seller_step = matches!(
        r.action,
        A::Agreed { .. } | A::Approve | A::Reject | A::ConfirmAfterSale
    );
    match actor {
        Actor::Staff => true,
        Actor::FrontEnd if buyer_step && r.seller_id.is_none() => true,
        Actor::Seller(s) if seller_step && r.seller_id.is_none_or(|n| n == s) => {
            r.seller_id = Some(s);
            true
        }
        _ => false,
    }
}

/// Binds a redemption to the token that sends it: a verifier account
/// redeems as itself and names no POS (its id is filled in when left 0);
/// a POS redeems as itself (filled in when left out) and names the
/// verifier account signed in on it, which the shard checks. False when
/// the redemption names another principal.
fn bind_redeem(actor: Actor, r: &mut vouch_engine::command::Redeem) -> bool {
    match actor {
        Actor::Staff => true,
        Actor::Verifier(v)
            if r.pos_id.is_none() && (r.verifier_id == v || r.verifier_id == VerifierId(0)) =>
        {
            r.verifier_id = v;
            true
        }
        Actor::Device(d) if r.pos_id.is_none_or(|p| p == d) => {
            r.pos_id = Some(d);
            true
        }
        _ => false,
    }
}

/// Binds a reversal to the token that sends it: a POS reverses as itself,
/// a verifier account as itself (both filled in when left out), a seller
/// as itself; each names no one else. False when it names another.
fn bind_reverse(actor: Actor, r: &mut vouch_engine::command::Reverse) -> bool {
    let (pos, verifier, seller) = (r.pos_id, r.verifier_id, r.seller_id);
    match actor {
        Actor::Staff => return true,
        Actor::Device(d)
            if pos.is_none_or(|p| p == d) && verifier.is_none() && seller.is_none() =>
        {
            r.pos_id = Some(d)
        }
        Actor::Verifier(v)
            if verifier.is_none_or(|x| x == v || x == VerifierId(0))
                && pos.is_none()
                && seller.is_none() =>
        {
            r.verifier_id = Some(v)
        }
        Actor::Seller(s)
            if seller.is_none_or(|x| x == s) && pos.is_none() && verifier.is_none() =>
        {
            r.seller_id = Some(s)
        }
        _ => return false,
    }
    true
}

impl Principal {
    /// The principal's actor; None for the admin token.
    pub(super) fn actor(&self) -> Option<Actor> {
        match self {
            Principal::Admin => None,
            Principal::Token(a, _) => Some(*a),
        }
    }

    /// Whether it is staff: the admin token or a staff token. Staff get
    /// every refusal's real reason, are never locked out and may use the
    /// connection slots kept for them.
    pub(super) fn is_staff(&self) -> bool {
        matches!(self, Principal::Admin | Principal::Token(Actor::Staff, _))
    }

    /// What the engine may tell it (ORD-7).
    pub(super) fn caller(&self) -> Caller {
        if self.is_staff() {
            Caller::Staff
        } else {
            Caller::Tenant
        }
    }
}

/// Whether two tokens are equal, in time that depends only on their
/// lengths (issue 7 item 7). Registered tokens are compared by their
/// SHA-256 in a map, which reveals nothing about a token that is not there.
pub(super) fn tokens_equal(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut diff = u8::from(a.len() != b.len());
    for i in 0..a.len().max(b.len()) {
        diff |= a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0xff);
    }
    diff == 0
}

/// Finds who a Hello's token authenticates. The admin token is compared
/// in constant time; others by SHA-256 in the token map.
pub(super) fn login(token: &str, admin_token: &str, tokens: &TokenMap) -> Option<Principal> {
    if tokens_equal(token, admin_token) {
        return Some(Principal::Admin);
    }
    let hash = token_hash(token);
    tokens.get(&hash).map(|a| Principal::Token(*a, hash))
}

#[cfg(test)]
mod tests {
    use super::*;
    use vouch_engine::catalog::CatalogCommand;
    use vouch_engine::command::{AuditVouchers, History, Issue, Lookup, Redeem, Reverse};
    use vouch_engine::validity::Validity;
    use vouch_engine::{Code, OutletId, PosId, ProductId, ProviderId, SellerId};

    fn redeem(pos: Option<PosId>, verifier: VerifierId) -> Redeem {
        Redeem {
            request_id: RequestId {
                source: 1,
                serial: 1,
            },
            code: Code::new(8, 1).unwrap(),
            phone_last4: "1234".into(),
            units: 1,
            outlet_id: OutletId(1),
            verifier_id: verifier,
            pos_id: pos,
        }
    }

    fn reverse(
        pos: Option<PosId>,
        verifier: Option<VerifierId>,
        seller: Option<SellerId>,
    ) -> Reverse {
        Reverse {
            request_id: RequestId {
                source: 1,
                serial: 2,
            },
            code: Code::new(8, 1).unwrap(),
            redemption: RequestId {
                source: 1,
                serial: 1,
            },
            pos_id: pos,
            verifier_id: verifier,
            seller_id: seller,
        }
    }

    fn issue() -> Issue {
        Issue {
            order_id: "o".into(),
            seller_id: SellerId(5),
            product_id: ProductId(1),
            units: 1,
            unit_price: vouch_engine::Fen::YUAN,
            mobile: "13800001234".into(),
            validity: Validity::DaysFromIssue(1),
            code_digits: 8,
        }
    }

    fn catalog(act_as: Option<Actor>) -> Request {
        Request::Catalog {
            request_id: RequestId {
                source: 1,
                serial: 3,
            },
            act_as,
            command: CatalogCommand::AcceptAgreement,
        }
    }

    fn read(act_as: Option<Actor>) -> Request {
        Request::CatalogRead {
            act_as,
            query: vouch_engine::catalog::CatalogQuery::Categories(
                vouch_engine::catalog::Page::first(),
            ),
        }
    }

    /// A token hash whose request-id source is 1, the source the requests
    /// above use.
    const OWN_HASH: [u8; 32] = {
        let mut h = [0u8; 32];
        h[7] = 1;
        h
    };

    /// Invariant 4 for MON-7: the payment system's transfer steps use its
    /// own request-id source; another source is refused.
    #[test]
    fn inv_4_transfer_steps_use_the_tokens_source() {
        let step = |source| {
            Request::Command(Command::TransferStep(vouch_engine::command::TransferStep {
                request_id: RequestId { source, serial: 1 },
                order_id: "o-1".into(),
                transfer: 1,
                action: vouch_engine::command::TransferAction::Confirm,
            }))
        };
        let payments = Principal::Token(Actor::PaymentSystem, OWN_HASH);
        assert_eq!(authorize(payments, &mut step(1)), Ok(()));
        let refused = authorize(payments, &mut step(2)).unwrap_err();
        assert_eq!(refused.code, ErrorCode::NotPermitted.number());
    }

    /// The request-level role matrix: every principal kind × every request
    /// kind, allowed or refused (the catalog's own matrix is proven in the
    /// engine's tests). Identity-bound fields must name the principal.
    #[test]
    fn role_matrix_every_principal_by_every_request() {
        let rows = matrix_rows();
        let principals = [
            Actor::Staff,
            Actor::System,
            Actor::FrontEnd,
            Actor::Seller(SellerId(5)),
            Actor::Seller(SellerId(6)),
            Actor::Provider(ProviderId(5)),
            Actor::Verifier(VerifierId(9)),
            Actor::Verifier(VerifierId(8)),
            Actor::Device(PosId(7)),
            Actor::Device(PosId(8)),
        ];
        for (name, request, allowed) in &rows {
            for actor in principals {
                let mut r = request.clone();
                let got = authorize(Principal::Token(actor, OWN_HASH), &mut r);
                assert_eq!(got.is_ok(), allowed(actor), "{name} by {actor:?}: {got:?}");
                assert_bound_to_itself(name, actor, &got, &r);
            }
            // The admin may send everything except a redemption that names
            // no verifier.
            let mut r = request.clone();
            assert_eq!(
                authorize(Principal::Admin, &mut r).is_ok(),
                *name != "redeem naming no verifier",
                "{name} by admin"
            );
        }
    }

    /// Who may send what: (name, request, who may send it).
    type Rule = fn(Actor) -> bool;

    /// The rows of the request-level role matrix.
    fn matrix_rows() -> Vec<(&'static str, Request, Rule)> {
        let lookup_by = |verifier_id, pos_id| {
            Request::Command(Command::Lookup(Lookup {
                code: Code::new(8, 1).unwrap(),
                phone_last4: "1234".into(),
                verifier_id,
                pos_id,
            }))
        };
        let audit = Request::Command(Command::AuditVouchers(AuditVouchers {
            shard: 0,
            from: 0,
            limit: 1,
        }));
        vec![
            ("info", Request::Info, |_| true),
            ("issue", Request::Command(Command::Issue(issue())), |a| {
                matches!(a, Actor::Staff | Actor::FrontEnd)
            }),
            ("issue batch", Request::IssueBatch(vec![issue()]), |a| {
                matches!(a, Actor::Staff | Actor::FrontEnd)
            }),
            ("lookup", lookup_by(None, None), |a| {
                matches!(a, Actor::Staff | Actor::Verifier(_) | Actor::Device(_))
            }),
            (
                "lookup as verifier 9",
                lookup_by(Some(VerifierId(9)), None),
                |a| matches!(a, Actor::Staff | Actor::Verifier(VerifierId(9))),
            ),
            ("lookup as POS 7", lookup_by(None, Some(PosId(7))), |a| {
                matches!(a, Actor::Staff | Actor::Device(PosId(7)))
            }),
            (
                "redeem as POS 7",
                Request::Command(Command::Redeem(redeem(Some(PosId(7)), VerifierId(9)))),
                |a| matches!(a, Actor::Staff | Actor::Device(PosId(7))),
            ),
            // A POS leaves its own id out and names the verifier signed
            // in on it (the shard checks that verifier).
            (
                "redeem as verifier 9",
                Request::Command(Command::Redeem(redeem(None, VerifierId(9)))),
                |a| {
                    matches!(
                        a,
                        Actor::Staff | Actor::Verifier(VerifierId(9)) | Actor::Device(_)
                    )
                },
            ),
            (
                "redeem naming no verifier",
                Request::Command(Command::Redeem(redeem(None, VerifierId(0)))),
                |a| matches!(a, Actor::Verifier(_)),
            ),
            (
                "redeem with another token's request-id source",
                Request::Command(Command::Redeem(Redeem {
                    request_id: RequestId {
                        source: 2,
                        serial: 1,
                    },
                    ..redeem(Some(PosId(7)), VerifierId(9))
                })),
                |_| false,
            ),
            (
                "catalog command with another token's request-id source",
                Request::Catalog {
                    request_id: RequestId {
                        source: 2,
                        serial: 3,
                    },
                    act_as: None,
                    command: CatalogCommand::AcceptAgreement,
                },
                |_| false,
            ),
            (
                "redeem batch as verifier 9",
                Request::RedeemBatch(vec![redeem(None, VerifierId(9))]),
                |a| {
                    matches!(
                        a,
                        Actor::Staff | Actor::Verifier(VerifierId(9)) | Actor::Device(_)
                    )
                },
            ),
            (
                "reverse as POS 7",
                Request::Command(Command::Reverse(reverse(Some(PosId(7)), None, None))),
                |a| matches!(a, Actor::Staff | Actor::Device(PosId(7))),
            ),
            (
                "reverse as verifier 9",
                Request::Command(Command::Reverse(reverse(None, Some(VerifierId(9)), None))),
                |a| matches!(a, Actor::Staff | Actor::Verifier(VerifierId(9))),
            ),
            (
                "reverse as seller 5",
                Request::Command(Command::Reverse(reverse(None, None, Some(SellerId(5))))),
                |a| matches!(a, Actor::Staff | Actor::Seller(SellerId(5))),
            ),
            (
                "reverse naming no one",
                Request::Command(Command::Reverse(reverse(None, None, None))),
                |a| {
                    matches!(
                        a,
                        Actor::Staff | Actor::Device(_) | Actor::Verifier(_) | Actor::Seller(_)
                    )
                },
            ),
            (
                "history",
                Request::Command(Command::History(History {
                    code: Code::new(8, 1).unwrap(),
                    seller_id: Some(SellerId(5)),
                    from: 0,
                    limit: 10,
                })),
                |_| true,
            ),
            ("audit", audit, |a| a == Actor::Staff),
            ("catalog for itself", catalog(None), |_| true),
            (
                "catalog for seller 5",
                catalog(Some(Actor::Seller(SellerId(5)))),
                |a| a == Actor::Seller(SellerId(5)),
            ),
            ("catalog read for itself", read(None), |_| true),
            (
                "catalog read for seller 5",
                read(Some(Actor::Seller(SellerId(5)))),
                |a| a == Actor::Seller(SellerId(5)),
            ),
        ]
    }

    /// An allowed request of a token is bound to the token itself: catalog
    /// commands run as it, redemptions, reversals, history and lookups name
    /// it; a refusal is `not_permitted` (`bad_request` for a redemption
    /// naming no verifier).
    fn assert_bound_to_itself(name: &str, actor: Actor, got: &Result<(), WireError>, r: &Request) {
        if let (Ok(()), Request::Catalog { act_as, .. } | Request::CatalogRead { act_as, .. }) =
            (&got, &r)
        {
            assert_eq!(
                *act_as,
                Some(actor),
                "a token runs catalog commands as itself"
            );
        }
        // Tokens redeem, reverse and read history as themselves.
        match (&got, &r) {
            (Ok(()), Request::Command(Command::Redeem(x))) => match actor {
                Actor::Device(d) => assert_eq!(x.pos_id, Some(d), "{name}"),
                Actor::Verifier(v) => assert_eq!(x.verifier_id, v, "{name}"),
                _ => {}
            },
            (Ok(()), Request::Command(Command::Reverse(x))) => {
                let who = match actor {
                    Actor::Device(d) => (Some(d), None, None),
                    Actor::Verifier(v) => (None, Some(v), None),
                    Actor::Seller(s) => (None, None, Some(s)),
                    _ => (x.pos_id, x.verifier_id, x.seller_id),
                };
                assert_eq!((x.pos_id, x.verifier_id, x.seller_id), who, "{name}");
            }
            (Ok(()), Request::Command(Command::History(h))) => {
                let seller = match actor {
                    Actor::Staff => Some(SellerId(5)),
                    Actor::Seller(s) => Some(s),
                    _ => None,
                };
                assert_eq!(h.seller_id, seller, "{name} by {actor}");
            }
            _ => {}
        }
        // A verifier or POS always looks up as itself (ORD-9).
        if let (Ok(()), Request::Command(Command::Lookup(l))) = (&got, &r) {
            let who = match actor {
                Actor::Verifier(v) => (Some(v), None),
                Actor::Device(d) => (None, Some(d)),
                _ => (l.verifier_id, l.pos_id),
            };
            assert_eq!((l.verifier_id, l.pos_id), who, "{name} by {actor:?}");
        }
        if let Err(e) = got {
            let code = if name == "redeem naming no verifier" {
                ErrorCode::BadRequest
            } else {
                ErrorCode::NotPermitted
            };
            assert_eq!(e.code, code.number(), "{name} by {actor}: {e}");
        }
    }
}

#[cfg(test)]
mod token_tests {
    use super::*;

    #[test]
    fn tokens_equal_only_for_the_same_bytes() {
        assert!(tokens_equal("abc", "abc"));
        assert!(!tokens_equal("abc", "abd"));
        assert!(!tokens_equal("abc", "abcd"));
        assert!(!tokens_equal("", "a"));
        assert!(tokens_equal("", ""));
    }
}
