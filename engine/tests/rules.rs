//! Rule tests of the engine core, driven directly with a virtual clock.
//! Each test names the rule it proves.

use jiff::civil::date;
use vouch_engine::command::*;
use vouch_engine::message::CatalogFact;
use vouch_engine::validity::Validity;
use vouch_engine::{Code, Command, Effect, Engine, EngineConfig, ErrorCode, Outcome};
use vouch_engine::{OutletId, PosId, ProductId, ProviderId, SellerId, VerifierId};

mod common;
use common::*;

fn engine(shards: u32) -> Engine {
    let config = EngineConfig {
        shards,
        ..EngineConfig::default()
    };
    Engine::new(config, [7; 32]).unwrap()
}

fn issue(e: &mut Engine, order: &str, units: u32) -> Code {
    match e.apply(NOW, &issue_cmd(order, units, 8), &mut Vec::new()) {
        Ok(Outcome::Issued(i)) => i.code,
        other => panic!("issue failed: {other:?}"),
    }
}

fn redeem_at(
    e: &mut Engine,
    now: i64,
    code: Code,
    units: u32,
    serial: u64,
) -> Result<Redeemed, ErrorCode> {
    match e.apply(now, &redeem_cmd(code, units, serial), &mut Vec::new()) {
        Ok(Outcome::Redeemed(r)) => Ok(r),
        Ok(other) => panic!("unexpected outcome {other:?}"),
        Err(rej) => Err(rej.code),
    }
}

fn lookup(e: &mut Engine, now: i64, code: Code, last4: &str) -> Result<LookedUp, ErrorCode> {
    let cmd = Command::Lookup(Lookup {
        code,
        phone_last4: last4.into(),
        verifier_id: None,
        pos_id: None,
    });
    match e.apply(now, &cmd, &mut Vec::new()) {
        Ok(Outcome::LookedUp(l)) => Ok(l),
        Ok(other) => panic!("unexpected outcome {other:?}"),
        Err(rej) => Err(rej.code),
    }
}

fn reverse_cmd(
    code: Code,
    redemption: u64,
    serial: u64,
    pos: Option<PosId>,
    seller: Option<SellerId>,
) -> Command {
    Command::Reverse(Reverse {
        request_id: rid(serial),
        code,
        redemption: rid(redemption),
        pos_id: pos,
        verifier_id: None,
        seller_id: seller,
    })
}

fn reverse_at(e: &mut Engine, now: i64, cmd: &Command) -> Result<Reversed, ErrorCode> {
    match e.apply(now, cmd, &mut Vec::new()) {
        Ok(Outcome::Reversed(r)) => Ok(r),
        Ok(other) => panic!("unexpected outcome {other:?}"),
        Err(rej) => Err(rej.code),
    }
}

#[test]
fn ord_2_issue_gives_one_live_code_and_sends_it() {
    let mut e = engine(2);
    let mut effects = Vec::new();
    let r = e.apply(NOW, &issue_cmd("o-1", 3, 8), &mut effects).unwrap();
    let Outcome::Issued(i) = r else { panic!() };
    assert_eq!(i.units, 3);
    assert_eq!(i.code.digits(), 8);
    assert_eq!(effects.len(), 1);
    assert!(
        matches!(&effects[0], Effect::SendCode { code, reason: SendReason::Issued, .. } if *code == i.code)
    );
    let l = lookup(&mut e, NOW, i.code, "1234").unwrap();
    assert_eq!(
        (l.units_remaining, l.units_total, l.order_id.as_str()),
        (3, 3, "o-1")
    );
    e.check_invariants();
}

#[test]
fn ord_2_same_order_again_returns_original_reply_other_content_conflicts() {
    let mut e = engine(2);
    let first = e
        .apply(NOW, &issue_cmd("o-1", 3, 8), &mut Vec::new())
        .unwrap();
    let mut effects = Vec::new();
    let again = e
        .apply(NOW + HOUR, &issue_cmd("o-1", 3, 8), &mut effects)
        .unwrap();
    let (Outcome::Issued(first), Outcome::Issued(again)) = (first, again) else {
        panic!("not issued")
    };
    assert!(!first.replayed);
    assert_eq!(
        again,
        Issued {
            replayed: true,
            ..first
        },
        "the original reply, marked as a repeat"
    );
    assert!(effects.is_empty(), "a repeated issue sends nothing");
    let other = e
        .apply(NOW, &issue_cmd("o-1", 4, 8), &mut Vec::new())
        .unwrap_err();
    assert_eq!(other.code, ErrorCode::OrderConflict);
    assert_eq!(
        e.shards().iter().map(|s| s.voucher_count()).sum::<usize>(),
        1
    );
}

#[test]
fn ord_1_issue_refuses_bad_fields_and_changes_nothing() {
    let mut e = engine(2);
    let bad = |f: &dyn Fn(&mut Issue)| {
        let Command::Issue(mut i) = issue_cmd("o-x", 2, 8) else {
            unreachable!()
        };
        f(&mut i);
        Command::Issue(i)
    };
    let cases = [
        bad(&|i| i.units = 0),
        bad(&|i| i.units = vouch_engine::limits::VOUCHER_UNITS_MAX + 1),
        bad(&|i| i.order_id = String::new()),
        bad(&|i| i.order_id = "x".repeat(65)),
        bad(&|i| i.order_id = "a\u{1b}[31mred".into()),
        bad(&|i| i.unit_price = vouch_engine::Fen::new(-1)),
        bad(&|i| i.unit_price = vouch_engine::Fen::new(100_000_001)),
        bad(&|i| i.mobile = "1380000123a".into()),
        bad(&|i| i.mobile = "1234".into()),
        bad(&|i| i.code_digits = 5),
        bad(&|i| i.code_digits = 12),
    ];
    for c in &cases {
        let err = e.apply(NOW, c, &mut Vec::new()).unwrap_err();
        assert_eq!(err.code, ErrorCode::BadRequest, "{c:?}");
    }
    // The largest price, 1,000,000.00 yuan, is accepted.
    let ok = bad(&|i| i.unit_price = vouch_engine::Fen::new(100_000_000));
    assert!(e.apply(NOW, &ok, &mut Vec::new()).is_ok());
    assert_eq!(
        e.shards().iter().map(|s| s.voucher_count()).sum::<usize>(),
        1
    );
}

#[test]
fn ord_7_redeem_boundaries_zero_remaining_and_one_more() {
    let mut e = engine(2);
    let code = issue(&mut e, "o-1", 3);
    assert_eq!(
        redeem_at(&mut e, NOW, code, 0, 1),
        Err(ErrorCode::UnitsInvalid)
    );
    assert_eq!(
        redeem_at(&mut e, NOW, code, 4, 2),
        Err(ErrorCode::UnitsInsufficient)
    );
    // Refusals changed nothing: the code still works for all 3.
    let r = redeem_at(&mut e, NOW, code, 3, 3).unwrap();
    assert_eq!((r.units, r.units_remaining, r.new_code), (3, 0, None));
    assert_eq!(
        redeem_at(&mut e, NOW, code, 1, 4),
        Err(ErrorCode::CodeInvalid)
    );
    e.check_invariants();
}

#[test]
fn ord_7_unknown_replaced_expired_and_wrong_phone_look_the_same() {
    let mut e = engine(1);
    let code = issue(&mut e, "o-1", 3);
    let wrong_phone = Command::Redeem(Redeem {
        phone_last4: "9999".into(),
        ..match redeem_cmd(code, 1, 1) {
            Command::Redeem(r) => r,
            _ => unreachable!(),
        }
    });
    let wp = e.apply(NOW, &wrong_phone, &mut Vec::new()).unwrap_err();
    let unknown_code = Code::new(8, (code.value() + 1) % 100_000_000).unwrap();
    let unk = e
        .apply(NOW, &redeem_cmd(unknown_code, 1, 2), &mut Vec::new())
        .unwrap_err();
    let r = redeem_at(&mut e, NOW, code, 1, 3).unwrap();
    let repl = e
        .apply(NOW, &redeem_cmd(code, 1, 4), &mut Vec::new())
        .unwrap_err();
    let expired_at = NOW + 31 * 24 * HOUR;
    let exp = e
        .apply(
            expired_at,
            &redeem_cmd(r.new_code.unwrap(), 1, 5),
            &mut Vec::new(),
        )
        .unwrap_err();
    for rej in [&wp, &unk, &repl, &exp] {
        assert_eq!(rej.code, ErrorCode::CodeInvalid);
        assert_eq!(rej.message, wp.message, "messages must not differ");
    }
    use vouch_engine::error::InvalidCodeReason as R;
    assert_eq!(
        [wp.reason, unk.reason, repl.reason, exp.reason],
        [
            Some(R::WrongPhoneDigits),
            Some(R::Unknown),
            Some(R::Replaced),
            Some(R::Expired)
        ]
    );
    // Serialized for the wire, the hidden reason is gone.
    assert_eq!(format!("{}", wp), format!("{}", exp));
}

#[test]
fn ord_8_partial_redemption_replaces_code_atomically() {
    let mut e = engine(2);
    let code = issue(&mut e, "o-1", 5);
    let mut effects = Vec::new();
    let r = match e.apply(NOW, &redeem_cmd(code, 2, 1), &mut effects).unwrap() {
        Outcome::Redeemed(r) => r,
        other => panic!("{other:?}"),
    };
    let new = r.new_code.unwrap();
    assert_ne!(new, code);
    assert_eq!(new.digits(), code.digits());
    assert_eq!(r.units_remaining, 3);
    assert_eq!(
        lookup(&mut e, NOW, code, "1234"),
        Err(ErrorCode::CodeInvalid)
    );
    assert_eq!(lookup(&mut e, NOW, new, "1234").unwrap().units_remaining, 3);
    // ORD-8: one success SMS with the units left and the new code.
    assert!(
        matches!(
            &effects[..],
            [Effect::RedemptionNotice { units: 2, units_remaining: 3, new_code: Some(c), .. }]
                if *c == new
        ),
        "{effects:?}"
    );
    // The new code lives in the same shard as the old one.
    assert_eq!(new.value() % 2, code.value() % 2);
    let total_live: usize = e.shards().iter().map(|s| s.live_code_count()).sum();
    assert_eq!(total_live, 1);
    e.check_invariants();
}

#[test]
fn ord_9_lookup_does_not_consume_and_needs_phone_digits() {
    let mut e = engine(2);
    let code = issue(&mut e, "o-1", 2);
    for _ in 0..3 {
        assert_eq!(
            lookup(&mut e, NOW, code, "1234").unwrap().units_remaining,
            2
        );
    }
    assert_eq!(
        lookup(&mut e, NOW, code, "4321"),
        Err(ErrorCode::CodeInvalid)
    );
    assert_eq!(
        lookup(&mut e, NOW, code, "12a4"),
        Err(ErrorCode::BadRequest)
    );
    assert_eq!(
        redeem_at(&mut e, NOW, code, 2, 1).unwrap().units_remaining,
        0
    );
}

#[test]
fn ord_10_every_redemption_is_logged_with_outlet_verifier_and_pos() {
    let mut e = engine(1);
    let code = issue(&mut e, "o-1", 4);
    let r1 = redeem_at(&mut e, NOW, code, 1, 1).unwrap();
    redeem_at(&mut e, NOW + 1000, r1.new_code.unwrap(), 2, 2).unwrap();
    let page = e
        .apply(
            NOW,
            &Command::AuditRedemptions(AuditRedemptions {
                shard: 0,
                from: 0,
                limit: 10,
            }),
            &mut Vec::new(),
        )
        .unwrap();
    let Outcome::Redemptions { items, next } = page else {
        panic!()
    };
    assert_eq!(next, None);
    assert_eq!(items.len(), 2);
    assert_eq!(
        (
            items[1].units,
            items[1].at_ms,
            items[1].outlet_id,
            items[1].verifier_id,
            items[1].pos_id
        ),
        (2, NOW + 1000, OutletId(3), VerifierId(4), Some(PosId(900)))
    );
    assert_eq!(items[0].request_id, rid(1));
    assert!(items.iter().all(|i| i.order_id == "o-1" && !i.reversed));
}

#[test]
fn inv_4_same_request_id_returns_original_reply_even_naming_old_code() {
    let mut e = engine(2);
    let code = issue(&mut e, "o-1", 3);
    let first = redeem_at(&mut e, NOW, code, 1, 7).unwrap();
    // The reply was lost; the POS retries with the same id and the old code.
    let mut effects = Vec::new();
    let retry = e
        .apply(NOW + 5000, &redeem_cmd(code, 1, 7), &mut effects)
        .unwrap();
    assert!(!first.replayed);
    assert_eq!(
        retry,
        Outcome::Redeemed(Redeemed {
            replayed: true,
            ..first.clone()
        })
    );
    assert!(effects.is_empty(), "a retry sends nothing again");
    assert_eq!(
        lookup(&mut e, NOW, first.new_code.unwrap(), "1234")
            .unwrap()
            .units_remaining,
        2
    );
    // Same id, different content.
    let conflict = e
        .apply(NOW, &redeem_cmd(code, 2, 7), &mut Vec::new())
        .unwrap_err();
    assert_eq!(conflict.code, ErrorCode::RequestConflict);
    e.check_invariants();
}

#[test]
fn rev_reversal_gives_units_back_to_the_current_live_code_once() {
    let mut e = engine(2);
    let code = issue(&mut e, "o-1", 5);
    let r1 = redeem_at(&mut e, NOW, code, 2, 1).unwrap();
    let live = r1.new_code.unwrap();
    // Reverse naming the old code; units go onto the current live code.
    let cmd = reverse_cmd(code, 1, 100, Some(PosId(900)), None);
    let rev = reverse_at(&mut e, NOW + 60_000, &cmd).unwrap();
    assert_eq!(
        (rev.units, rev.units_remaining, rev.live_code),
        (2, 5, live)
    );
    assert_eq!(
        lookup(&mut e, NOW, live, "1234").unwrap().units_remaining,
        5
    );
    // The same reversal request again: the original reply, no second effect.
    assert_eq!(
        reverse_at(&mut e, NOW + 61_000, &cmd).unwrap(),
        Reversed {
            replayed: true,
            ..rev
        }
    );
    // Another request id reversing the same redemption: refused.
    let again = reverse_cmd(live, 1, 101, Some(PosId(900)), None);
    assert_eq!(
        reverse_at(&mut e, NOW + 61_000, &again),
        Err(ErrorCode::AlreadyReversed)
    );
    e.check_invariants();
}

#[test]
fn rev_only_same_pos_or_seller_within_window() {
    let mut e = engine(2);
    let code = issue(&mut e, "o-1", 5);
    let r1 = redeem_at(&mut e, NOW, code, 1, 1).unwrap();
    let live = r1.new_code.unwrap();
    let other_pos = reverse_cmd(live, 1, 200, Some(PosId(901)), None);
    assert_eq!(
        reverse_at(&mut e, NOW, &other_pos),
        Err(ErrorCode::ReversalNotPermitted)
    );
    let other_seller = reverse_cmd(live, 1, 201, None, Some(SellerId(11)));
    assert_eq!(
        reverse_at(&mut e, NOW, &other_seller),
        Err(ErrorCode::ReversalNotPermitted)
    );
    let late = reverse_cmd(live, 1, 202, Some(PosId(900)), None);
    assert_eq!(
        reverse_at(&mut e, NOW + HOUR + 1, &late),
        Err(ErrorCode::ReversalWindowClosed)
    );
    let unknown = reverse_cmd(live, 999, 203, Some(PosId(900)), None);
    assert_eq!(
        reverse_at(&mut e, NOW, &unknown),
        Err(ErrorCode::RedemptionUnknown)
    );
    // SET-1: the window is [at, at + 1 h): at its end it is closed, one
    // millisecond before it the seller may still reverse.
    let at_end = reverse_cmd(live, 1, 205, None, Some(SellerId(10)));
    assert_eq!(
        reverse_at(&mut e, NOW + HOUR, &at_end),
        Err(ErrorCode::ReversalWindowClosed)
    );
    let seller = reverse_cmd(live, 1, 204, None, Some(SellerId(10)));
    assert_eq!(
        reverse_at(&mut e, NOW + HOUR - 1, &seller)
            .unwrap()
            .units_remaining,
        5
    );
}

#[test]
fn rev_reversal_of_a_used_up_voucher_issues_a_new_code() {
    let mut e = engine(2);
    let code = issue(&mut e, "o-1", 2);
    assert_eq!(redeem_at(&mut e, NOW, code, 2, 1).unwrap().new_code, None);
    let mut effects = Vec::new();
    let rev = match e
        .apply(
            NOW,
            &reverse_cmd(code, 1, 2, Some(PosId(900)), None),
            &mut effects,
        )
        .unwrap()
    {
        Outcome::Reversed(r) => r,
        other => panic!("{other:?}"),
    };
    assert_ne!(rev.live_code, code, "a retired code is never revived");
    assert_eq!(rev.units_remaining, 2);
    assert!(matches!(
        &effects[..],
        [Effect::SendCode {
            reason: SendReason::Reversal,
            ..
        }]
    ));
    assert_eq!(
        lookup(&mut e, NOW, rev.live_code, "1234")
            .unwrap()
            .units_remaining,
        2
    );
    e.check_invariants();
}

#[test]
fn pub_3_expiry_at_235959_vs_000000_next_day_shanghai() {
    let mut e = engine(2);
    let cmd = Command::Issue(Issue {
        validity: Validity::Fixed {
            start: date(2026, 11, 1),
            end: date(2026, 11, 30),
        },
        ..match issue_cmd("o-1", 3, 8) {
            Command::Issue(i) => i,
            _ => unreachable!(),
        }
    });
    let Outcome::Issued(i) = e.apply(NOW, &cmd, &mut Vec::new()).unwrap() else {
        panic!()
    };
    // 2026-11-30 23:59:59 +08:00 = 15:59:59 UTC; the next midnight = 16:00:00 UTC.
    let last_second: i64 = "2026-11-30T15:59:59Z"
        .parse::<jiff::Timestamp>()
        .unwrap()
        .as_millisecond();
    let midnight = last_second + 1000;
    assert_eq!(i.valid_until_ms, midnight);
    assert_eq!(
        redeem_at(&mut e, midnight, i.code, 1, 1),
        Err(ErrorCode::CodeInvalid)
    );
    assert_eq!(
        lookup(&mut e, midnight, i.code, "1234"),
        Err(ErrorCode::CodeInvalid)
    );
    let r = redeem_at(&mut e, last_second, i.code, 1, 2).unwrap();
    assert_eq!(r.units_remaining, 2);
}

#[test]
fn pub_3_not_yet_valid_before_start_date() {
    let mut e = engine(1);
    let cmd = Command::Issue(Issue {
        validity: Validity::Fixed {
            start: date(2026, 12, 1),
            end: date(2026, 12, 31),
        },
        ..match issue_cmd("o-1", 3, 8) {
            Command::Issue(i) => i,
            _ => unreachable!(),
        }
    });
    let Outcome::Issued(i) = e.apply(NOW, &cmd, &mut Vec::new()).unwrap() else {
        panic!()
    };
    assert_eq!(
        redeem_at(&mut e, NOW, i.code, 1, 1),
        Err(ErrorCode::NotYetValid)
    );
    assert_eq!(
        redeem_at(&mut e, i.valid_from_ms, i.code, 1, 2)
            .unwrap()
            .units_remaining,
        2
    );
}

#[test]
fn ord_3_codes_with_leading_zeros_redeem_in_every_length() {
    for digits in 6u8..=11 {
        let mut e = engine(2);
        let mut found = None;
        for n in 0..2000 {
            let order = format!("lz-{digits}-{n}");
            let Outcome::Issued(i) = e
                .apply(NOW, &issue_cmd(&order, 2, digits), &mut Vec::new())
                .unwrap()
            else {
                panic!()
            };
            assert_eq!(i.code.digits(), digits);
            if i.code.to_string().starts_with('0') {
                found = Some(i.code);
                break;
            }
        }
        let code = found.expect("one in ten codes starts with 0");
        // The buyer types the string; parse it back, leading zero included.
        let typed: Code = code.to_string().parse().unwrap();
        assert_eq!(typed, code);
        let r = redeem_at(&mut e, NOW, typed, 1, 1).unwrap();
        assert_eq!(r.units_remaining, 1);
        // Without the leading zero it is another (shorter, unknown) code.
        let stripped = code.to_string()[1..].to_string();
        if stripped.len() >= 6 {
            let other: Code = stripped.parse().unwrap();
            assert_ne!(other, code);
        }
    }
}

#[test]
fn ord_3_codes_unique_uniform_and_in_their_shard() {
    let mut e = engine(4);
    let mut seen = std::collections::BTreeSet::new();
    let mut first_digit = [0u32; 10];
    let mut last_digit = [0u32; 10];
    let n = 20_000;
    for i in 0..n {
        let code = issue(&mut e, &format!("u-{i}"), 1);
        assert!(seen.insert(code), "duplicate live code {code}");
        let s = code.to_string();
        first_digit[(s.as_bytes()[0] - b'0') as usize] += 1;
        last_digit[(s.as_bytes()[7] - b'0') as usize] += 1;
    }
    // Each digit expected 2,000 times; allow ±15 % (about 7 standard deviations).
    for d in 0..10 {
        assert!(
            (1700..=2300).contains(&first_digit[d]),
            "first digit {d}: {}",
            first_digit[d]
        );
        // Last digit: value ≡ shard (mod 4), so the last digit is only even
        // or odd per shard, but overall each digit still appears.
        assert!(last_digit[d] > 1000, "last digit {d}: {}", last_digit[d]);
    }
    e.check_invariants();
}

#[test]
fn ord_3_density_limit_lengthens_codes() {
    let mut e = engine(1);
    // 1 shard, 6 digits: 1 % of 10^6 = 10,000 codes may be in use.
    let mut lengths = [0u32; 12];
    for i in 0..10_050 {
        let Outcome::Issued(r) = e
            .apply(NOW, &issue_cmd(&format!("d-{i}"), 1, 6), &mut Vec::new())
            .unwrap()
        else {
            panic!()
        };
        lengths[usize::from(r.code.digits())] += 1;
    }
    assert_eq!(lengths[6], 10_000);
    assert_eq!(lengths[7], 50);
    assert_eq!(e.shards()[0].codes_in_use(6), 10_000);
}

#[test]
fn inv_5_retired_codes_stay_quarantined_then_are_released() {
    let mut e = engine(1);
    let code = issue(&mut e, "o-1", 3);
    redeem_at(&mut e, NOW, code, 1, 1).unwrap();
    // Old and new code both count against the density limit.
    assert_eq!(e.shards()[0].codes_in_use(8), 2);
    let quarantine = EngineConfig::default().code_quarantine_ms;
    // Any later mutation releases what is due.
    issue_at(&mut e, NOW + quarantine - 1, "o-2");
    assert_eq!(e.shards()[0].codes_in_use(8), 3);
    issue_at(&mut e, NOW + quarantine, "o-3");
    assert_eq!(e.shards()[0].codes_in_use(8), 3, "one released, one added");
}

fn issue_at(e: &mut Engine, now: i64, order: &str) {
    let cmd = Command::Issue(Issue {
        validity: Validity::DaysFromIssue(30),
        ..match issue_cmd(order, 1, 8) {
            Command::Issue(i) => i,
            _ => unreachable!(),
        }
    });
    e.apply(now, &cmd, &mut Vec::new()).unwrap();
}

#[test]
fn inv_1_same_seed_and_commands_give_same_replies() {
    let run = || {
        let mut e = engine(2);
        let mut replies = Vec::new();
        for i in 0..200u64 {
            let code = issue(&mut e, &format!("det-{i}"), 3);
            replies.push(format!("{code}"));
            let r = redeem_at(&mut e, NOW + i as i64, code, 1 + (i % 3) as u32, i);
            replies.push(format!("{r:?}"));
        }
        replies
    };
    assert_eq!(run(), run());
}

#[test]
fn inv_4_request_id_reused_on_a_code_of_another_shard_is_a_conflict() {
    let mut e = engine(2);
    // Find two vouchers whose codes live in different shards.
    let a = issue(&mut e, "x-a", 5);
    let mut n = 0;
    let b = loop {
        let c = issue(&mut e, &format!("x-b{n}"), 5);
        if c.value() % 2 != a.value() % 2 {
            break c;
        }
        n += 1;
    };
    redeem_at(&mut e, NOW, a, 1, 77).unwrap();
    assert_eq!(
        redeem_at(&mut e, NOW, b, 1, 77),
        Err(ErrorCode::RequestConflict)
    );
    assert_eq!(
        lookup(&mut e, NOW, b, "1234").unwrap().units_remaining,
        5,
        "b untouched"
    );
    // Reversal ids are bound the same way.
    let rev = reverse_cmd(a, 77, 78, Some(PosId(900)), None);
    reverse_at(&mut e, NOW, &rev).unwrap();
    let r2 = redeem_at(&mut e, NOW, b, 1, 78);
    assert!(
        r2.is_err(),
        "request id 78 belongs to the other shard: {r2:?}"
    );
    assert_eq!(lookup(&mut e, NOW, b, "1234").unwrap().units_remaining, 5);
    e.check_invariants();
}

#[test]
fn inv_3_refused_commands_need_no_log_record() {
    use vouch_engine::log::changed_state;
    let mut e = engine(1);
    let code = issue(&mut e, "o-1", 2);
    let refused = e.apply(NOW, &redeem_cmd(code, 3, 1), &mut Vec::new());
    assert!(!changed_state(&refused));
    let ok = e.apply(NOW, &redeem_cmd(code, 1, 2), &mut Vec::new());
    assert!(changed_state(&ok));
    // A retry (same request id or order id) answers the original reply and
    // changes nothing: the server logs it no more (a client must not grow
    // the log at will). A new request id is no repeat.
    let shard = &e.shards()[0];
    assert!(shard.is_repeat(&redeem_cmd(code, 1, 2)));
    assert!(shard.is_repeat(&issue_cmd("o-1", 2, 8)));
    assert!(!shard.is_repeat(&redeem_cmd(code, 1, 3)));
    assert!(!shard.is_repeat(&issue_cmd("o-2", 2, 8)));
    let retry = e.apply(NOW, &redeem_cmd(code, 1, 2), &mut Vec::new());
    let (Ok(Outcome::Redeemed(retry)), Ok(Outcome::Redeemed(ok))) = (retry, ok) else {
        panic!("not redeemed")
    };
    assert_eq!(
        retry,
        Redeemed {
            replayed: true,
            ..ok
        },
        "the original reply, marked as a repeat"
    );
}

#[test]
fn inv_1_replaying_only_state_changing_commands_rebuilds_the_same_state() {
    use rand::{Rng, SeedableRng};
    use vouch_engine::log::changed_state;
    let config = EngineConfig {
        shards: 2,
        code_quarantine_ms: 20_000,
        ..EngineConfig::default()
    };
    let mut live = Engine::new(config.clone(), [3; 32]).unwrap();
    let mut logged: Vec<(i64, Command)> = Vec::new();
    // Codes in use per shard after each logged command: replay must pass
    // through the same states, not only end in the same one.
    let mut in_use: Vec<[u64; 2]> = Vec::new();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let mut codes: Vec<Code> = Vec::new();
    let mut now = NOW;
    for i in 0..3000u64 {
        now += rng.random_range(0..2000);
        let cmd = match rng.random_range(0..10) {
            0..=2 => issue_cmd(
                &format!("r-{}", rng.random_range(0..400)),
                rng.random_range(1..5),
                6,
            ),
            3 if !codes.is_empty() => {
                let c = codes[rng.random_range(0..codes.len())];
                reverse_cmd(
                    c,
                    rng.random_range(0..i + 1),
                    100_000 + i,
                    Some(PosId(900)),
                    None,
                )
            }
            _ if !codes.is_empty() => {
                let c = codes[rng.random_range(0..codes.len())];
                // Some wrong phones, some too many units, some stale codes.
                let mut r = redeem_cmd(c, rng.random_range(0..4), rng.random_range(0..i + 1));
                if rng.random_bool(0.1) {
                    if let Command::Redeem(x) = &mut r {
                        x.phone_last4 = "0000".into();
                    }
                }
                r
            }
            _ => continue,
        };
        let reply = live.apply(now, &cmd, &mut Vec::new());
        match &reply {
            Ok(Outcome::Issued(x)) => codes.push(x.code),
            Ok(Outcome::Redeemed(x)) => codes.extend(x.new_code),
            Ok(Outcome::Reversed(x)) => codes.push(x.live_code),
            _ => {}
        }
        if changed_state(&reply) {
            logged.push((now, cmd));
            let s = live.shards();
            in_use.push([s[0].codes_in_use(6), s[1].codes_in_use(6)]);
        }
    }
    live.check_invariants();
    let mut replayed = Engine::new(config, [3; 32]).unwrap();
    for ((t, c), want) in logged.iter().zip(&in_use) {
        replayed.apply(*t, c, &mut Vec::new()).unwrap();
        let s = replayed.shards();
        assert_eq!(
            [s[0].codes_in_use(6), s[1].codes_in_use(6)],
            *want,
            "diverged at {c:?}"
        );
    }
    replayed.check_invariants();
    // Same state: every voucher and every log entry, shard by shard.
    for shard in 0..2 {
        let page = |e: &mut Engine, cmd: Command| e.apply(now, &cmd, &mut Vec::new()).unwrap();
        let v = Command::AuditVouchers(AuditVouchers {
            shard,
            from: 0,
            limit: 1000,
        });
        let r = Command::AuditRedemptions(AuditRedemptions {
            shard,
            from: 0,
            limit: 1000,
        });
        assert_eq!(page(&mut live, v.clone()), page(&mut replayed, v));
        assert_eq!(page(&mut live, r.clone()), page(&mut replayed, r));
        assert_eq!(
            live.shards()[shard as usize].codes_in_use(6),
            replayed.shards()[shard as usize].codes_in_use(6)
        );
    }
    // And the same future: the next issue draws the same code.
    let next = issue_cmd("after", 1, 6);
    assert_eq!(
        live.apply(now, &next, &mut Vec::new()),
        replayed.apply(now, &next, &mut Vec::new())
    );
}

#[test]
fn ord_7_redemption_checks_outlet_verifier_and_device_of_catalog_products() {
    let mut e = engine(2);
    let code = issue(&mut e, "o-1", 9);
    // Before the catalog knows product 20, its vouchers are not checked.
    let first = redeem_at(&mut e, NOW, code, 1, 1).unwrap();
    let facts = [
        CatalogFact::Product {
            id: ProductId(20),
            seller: SellerId(10),
            outlets: vec![OutletId(3)],
            code_digits: Some(10),
            provider: Some(ProviderId(70)),
            validity: Validity::DaysFromIssue(30),
            listed: true,
            terms: Default::default(),
        },
        CatalogFact::Verifier {
            id: VerifierId(4),
            seller: SellerId(10),
            outlets: vec![OutletId(3)],
        },
        CatalogFact::Device {
            pos_id: PosId(900),
            seller: SellerId(10),
            outlet: OutletId(3),
            provider: ProviderId(70),
        },
        // A verifier and a POS of another seller (tenant) at the same outlet id.
        CatalogFact::Verifier {
            id: VerifierId(7),
            seller: SellerId(11),
            outlets: vec![OutletId(3)],
        },
        CatalogFact::Device {
            pos_id: PosId(901),
            seller: SellerId(11),
            outlet: OutletId(3),
            provider: ProviderId(70),
        },
    ];
    for f in facts {
        e.note_fact(&f);
    }
    let live = first.new_code.unwrap();
    let with = |f: &dyn Fn(&mut Redeem), serial: u64| {
        let Command::Redeem(mut r) = redeem_cmd(live, 1, serial) else {
            unreachable!()
        };
        f(&mut r);
        Command::Redeem(r)
    };
    let code_of = |e: &mut Engine, c: Command| {
        e.apply(NOW, &c, &mut Vec::new())
            .map(|_| ())
            .map_err(|r| r.code)
    };
    assert_eq!(
        code_of(&mut e, with(&|r| r.outlet_id = OutletId(5), 2)),
        Err(ErrorCode::OutletNotAllowed)
    );
    assert_eq!(
        code_of(&mut e, with(&|r| r.verifier_id = VerifierId(6), 3)),
        Err(ErrorCode::VerifierNotAuthorized)
    );
    assert_eq!(
        code_of(&mut e, with(&|r| r.verifier_id = VerifierId(7), 4)),
        Err(ErrorCode::VerifierNotAuthorized)
    );
    assert_eq!(
        code_of(&mut e, with(&|r| r.pos_id = Some(PosId(902)), 5)),
        Err(ErrorCode::DeviceNotRegistered)
    );
    assert_eq!(
        code_of(&mut e, with(&|r| r.pos_id = Some(PosId(901)), 6)),
        Err(ErrorCode::DeviceNotRegistered)
    );
    // No oracle: with wrong phone digits the answer is still code_invalid.
    let guess = with(
        &|r| {
            r.outlet_id = OutletId(5);
            r.phone_last4 = "0000".into();
        },
        7,
    );
    assert_eq!(code_of(&mut e, guess), Err(ErrorCode::CodeInvalid));
    // ORD-3: new vouchers of the product get its provider's code length.
    let Outcome::Issued(i) = e
        .apply(NOW, &issue_cmd("o-2", 1, 8), &mut Vec::new())
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(i.code.digits(), 10);
    // The right place, verifier and POS redeem.
    assert_eq!(code_of(&mut e, with(&|_| {}, 8)), Ok(()));
    let l = e
        .shards()
        .iter()
        .map(|s| s.live_code_count())
        .sum::<usize>();
    assert_eq!(l, 2, "o-1 still has units, and o-2");
    e.check_invariants();
}

#[test]
fn ord_9_lookup_by_a_verifier_or_pos_of_another_seller_is_refused() {
    let mut e = engine(2);
    // Product 20 is not in the catalog, but verifier 4 and POS 900 of
    // seller 10 and verifier 7 and POS 901 of seller 11 are.
    let facts = [
        CatalogFact::Verifier {
            id: VerifierId(4),
            seller: SellerId(10),
            outlets: vec![OutletId(3)],
        },
        CatalogFact::Device {
            pos_id: PosId(900),
            seller: SellerId(10),
            outlet: OutletId(3),
            provider: ProviderId(70),
        },
        CatalogFact::Verifier {
            id: VerifierId(7),
            seller: SellerId(11),
            outlets: vec![OutletId(3)],
        },
        CatalogFact::Device {
            pos_id: PosId(901),
            seller: SellerId(11),
            outlet: OutletId(3),
            provider: ProviderId(70),
        },
    ];
    for f in facts {
        e.note_fact(&f);
    }
    let code = issue(&mut e, "o-1", 4);
    let look = |e: &mut Engine, verifier_id, pos_id, last4: &str| {
        let cmd = Command::Lookup(Lookup {
            code,
            phone_last4: last4.into(),
            verifier_id,
            pos_id,
        });
        match e.apply(NOW, &cmd, &mut Vec::new()) {
            Ok(Outcome::LookedUp(l)) => Ok(l.units_remaining),
            Ok(other) => panic!("{other:?}"),
            Err(r) => Err(r.code),
        }
    };
    assert_eq!(look(&mut e, Some(VerifierId(4)), None, "1234"), Ok(4));
    assert_eq!(look(&mut e, None, Some(PosId(900)), "1234"), Ok(4));
    assert_eq!(
        look(&mut e, Some(VerifierId(7)), None, "1234"),
        Err(ErrorCode::VerifierNotAuthorized)
    );
    assert_eq!(
        look(&mut e, None, Some(PosId(901)), "1234"),
        Err(ErrorCode::DeviceNotRegistered)
    );
    // No oracle: without the phone digits the other tenant learns nothing more.
    assert_eq!(
        look(&mut e, Some(VerifierId(7)), None, "0000"),
        Err(ErrorCode::CodeInvalid)
    );
    // Redemption: seller 10's verifier and POS redeem; seller 11's verifier
    // is refused, even though the catalog does not know the product.
    let r = redeem_at(&mut e, NOW, code, 1, 1).unwrap();
    assert_eq!(r.units_remaining, 3);
    let Command::Redeem(mut other) = redeem_cmd(r.new_code.unwrap(), 1, 2) else {
        unreachable!()
    };
    other.verifier_id = VerifierId(7);
    other.pos_id = None;
    let refused = e.apply(NOW, &Command::Redeem(other), &mut Vec::new());
    assert_eq!(
        refused.map_err(|r| r.code),
        Err(ErrorCode::VerifierNotAuthorized)
    );
    e.check_invariants();
}

#[test]
fn inv_4_a_refused_first_use_binds_no_shard_so_the_corrected_retry_applies() {
    let mut e = engine(2);
    let code = issue(&mut e, "o-1", 3);
    // A mistyped code of the other shard, with the request id the POS then
    // retries with the right code.
    let typo = Code::new(8, (code.value() + 1) % 100_000_000).unwrap();
    assert_eq!(
        redeem_at(&mut e, NOW, typo, 1, 1),
        Err(ErrorCode::CodeInvalid)
    );
    let r = redeem_at(&mut e, NOW, code, 1, 1).unwrap();
    assert_eq!(r.units_remaining, 2);
    // Now the id is bound: the same id on another code is a conflict.
    assert_eq!(
        redeem_at(&mut e, NOW, r.new_code.unwrap(), 1, 1),
        Err(ErrorCode::RequestConflict)
    );
    e.check_invariants();
}

/// PRV-3 with PUB-4: a POS registered by another code provider than the
/// product's may not redeem its vouchers, even at the right outlet.
#[test]
fn prv_3_pos_of_another_code_provider_is_refused() {
    let mut e = engine(1);
    let facts = [
        CatalogFact::Product {
            id: ProductId(20),
            seller: SellerId(10),
            outlets: vec![OutletId(3)],
            code_digits: None,
            provider: Some(ProviderId(70)),
            validity: Validity::DaysFromIssue(30),
            listed: true,
            terms: Default::default(),
        },
        CatalogFact::Verifier {
            id: VerifierId(4),
            seller: SellerId(10),
            outlets: vec![OutletId(3)],
        },
        // POS 900 of provider 71, at seller 10's outlet 3.
        CatalogFact::Device {
            pos_id: PosId(900),
            seller: SellerId(10),
            outlet: OutletId(3),
            provider: ProviderId(71),
        },
    ];
    for f in facts {
        e.note_fact(&f);
    }
    let code = issue(&mut e, "o-1", 2);
    assert_eq!(
        redeem_at(&mut e, NOW, code, 1, 1).map(|r| r.units_remaining),
        Err(ErrorCode::DeviceNotRegistered)
    );
    // Registered by provider 70 (a new fact for the same POS), it redeems.
    let fact = CatalogFact::Device {
        pos_id: PosId(900),
        seller: SellerId(10),
        outlet: OutletId(3),
        provider: ProviderId(70),
    };
    e.note_fact(&fact);
    assert_eq!(
        redeem_at(&mut e, NOW, code, 1, 2).map(|r| r.units_remaining),
        Ok(1)
    );
}

/// ORD-2 with PUB-3: no voucher for a catalog product of another seller or
/// a delisted one; an order issued before stays answerable.
#[test]
fn ord_2_no_voucher_for_another_sellers_or_a_delisted_product() {
    let mut e = engine(2);
    let product = |seller, listed| CatalogFact::Product {
        id: ProductId(20),
        seller,
        outlets: vec![OutletId(3)],
        code_digits: None,
        provider: Some(ProviderId(70)),
        validity: Validity::DaysFromIssue(30),
        listed,
        terms: Default::default(),
    };
    // Product 20 is seller 11's: seller 10's order for it is refused.
    e.note_fact(&product(SellerId(11), true));
    let refused = e.apply(NOW, &issue_cmd("o-1", 1, 8), &mut Vec::new());
    assert_eq!(
        refused.map_err(|r| r.code),
        Err(ErrorCode::ProductNotForSale)
    );
    // Seller 10's and listed: issued; then delisted: new orders refused,
    // the issued order's retry still answers with its code.
    e.note_fact(&product(SellerId(10), true));
    let first = issue(&mut e, "o-1", 1);
    e.note_fact(&product(SellerId(10), false));
    let refused = e.apply(NOW, &issue_cmd("o-2", 1, 8), &mut Vec::new());
    assert_eq!(
        refused.map_err(|r| r.code),
        Err(ErrorCode::ProductNotForSale)
    );
    assert_eq!(issue(&mut e, "o-1", 1), first);
    e.check_invariants();
}

/// A product id first used by one seller's uncatalogued vouchers and later
/// published by another seller binds only the publisher's vouchers: the
/// first seller's vouchers stay redeemable by its own verifiers.
#[test]
fn ord_7_another_sellers_later_product_does_not_strand_earlier_vouchers() {
    let mut e = engine(1);
    let code = issue(&mut e, "o-1", 2);
    let facts = [
        CatalogFact::Verifier {
            id: VerifierId(4),
            seller: SellerId(10),
            outlets: vec![OutletId(3)],
        },
        // Seller 11 publishes product id 20 with outlet 5 only.
        CatalogFact::Product {
            id: ProductId(20),
            seller: SellerId(11),
            outlets: vec![OutletId(5)],
            code_digits: None,
            provider: Some(ProviderId(70)),
            validity: Validity::DaysFromIssue(30),
            listed: true,
            terms: Default::default(),
        },
    ];
    for f in facts {
        e.note_fact(&f);
    }
    let Command::Redeem(mut r) = redeem_cmd(code, 1, 1) else {
        unreachable!()
    };
    r.pos_id = None;
    // Verifier 4 is authorised at outlet 3 only, product known or not.
    let elsewhere = Redeem {
        outlet_id: OutletId(5),
        ..r.clone()
    };
    let refused = e.apply(NOW, &Command::Redeem(elsewhere), &mut Vec::new());
    assert_eq!(
        refused.map_err(|r| r.code),
        Err(ErrorCode::VerifierNotAuthorized)
    );
    let reply = e.apply(NOW, &Command::Redeem(r), &mut Vec::new());
    assert!(
        matches!(reply, Ok(Outcome::Redeemed(ref x)) if x.units_remaining == 1),
        "{reply:?}"
    );
    // New vouchers of seller 10 for product 20 are refused: it is 11's now.
    let refused = e.apply(NOW, &issue_cmd("o-2", 1, 8), &mut Vec::new());
    assert_eq!(
        refused.map_err(|r| r.code),
        Err(ErrorCode::ProductNotForSale)
    );
}

/// PUB-3 and PRV-6: a catalog product's vouchers get the product's
/// validity, whatever validity the issuing front end sent.
#[test]
fn pub_3_a_catalog_products_validity_applies_to_its_vouchers() {
    let mut e = engine(1);
    let fact = CatalogFact::Product {
        id: ProductId(20),
        seller: SellerId(10),
        outlets: vec![OutletId(3)],
        code_digits: None,
        provider: Some(ProviderId(70)),
        validity: Validity::Fixed {
            start: date(2026, 12, 1),
            end: date(2026, 12, 31),
        },
        listed: true,
        terms: Default::default(),
    };
    e.note_fact(&fact);
    // issue_cmd asks for 30 days from issue.
    let Ok(Outcome::Issued(i)) = e.apply(NOW, &issue_cmd("o-1", 1, 8), &mut Vec::new()) else {
        panic!("not issued")
    };
    // 2026-12-01 00:00 and 2027-01-01 00:00 in Asia/Shanghai.
    assert_eq!(
        (i.valid_from_ms, i.valid_until_ms),
        (1_796_054_400_000, 1_798_732_800_000)
    );
}

/// Invariant 4: one request id names one request; a reversal may not reuse
/// the id of a redemption (nor the other way round).
#[test]
fn inv_4_a_reversal_cannot_reuse_a_redemptions_request_id() {
    let mut e = engine(1);
    let code = issue(&mut e, "o-1", 3);
    let r = redeem_at(&mut e, NOW, code, 1, 1).unwrap();
    let live = r.new_code.unwrap();
    let same_id = reverse_cmd(live, 1, 1, Some(PosId(900)), None);
    assert_eq!(
        reverse_at(&mut e, NOW, &same_id),
        Err(ErrorCode::RequestConflict)
    );
    let back = reverse_cmd(live, 1, 2, Some(PosId(900)), None);
    assert!(reverse_at(&mut e, NOW, &back).is_ok());
    assert_eq!(
        redeem_at(&mut e, NOW, live, 1, 2).map(|r| r.units_remaining),
        Err(ErrorCode::RequestConflict)
    );
}

/// Issue 7 item 1: to a verifier, POS or seller of another seller, every
/// outcome of a voucher — wrong outlet, not yet valid, too many units, a
/// reversal — is the reply an unknown code gets, byte for byte; the
/// voucher's own seller's callers and staff get the real reason.
#[test]
fn ord_7_another_sellers_callers_get_the_unknown_code_reply() {
    use vouch_engine::shard::Caller;
    let mut e = engine(2);
    let facts = [
        CatalogFact::Product {
            id: ProductId(20),
            seller: SellerId(10),
            outlets: vec![OutletId(3)],
            code_digits: None,
            provider: None,
            validity: Validity::DaysFromIssue(30),
            listed: true,
            terms: Default::default(),
        },
        CatalogFact::Verifier {
            id: VerifierId(4),
            seller: SellerId(10),
            outlets: vec![OutletId(3)],
        },
        CatalogFact::Device {
            pos_id: PosId(900),
            seller: SellerId(10),
            outlet: OutletId(3),
            provider: ProviderId(70),
        },
        CatalogFact::Verifier {
            id: VerifierId(7),
            seller: SellerId(11),
            outlets: vec![OutletId(5)],
        },
        CatalogFact::Device {
            pos_id: PosId(901),
            seller: SellerId(11),
            outlet: OutletId(5),
            provider: ProviderId(70),
        },
    ];
    for f in facts {
        e.note_fact(&f);
    }
    let code = issue(&mut e, "o-1", 2);
    let redeemed = redeem_at(&mut e, NOW, code, 1, 1).unwrap();
    let live = redeemed.new_code.unwrap();
    let unknown = Code::new(8, (live.value() + 2) % 100_000_000).unwrap();
    let mut apply = |caller, cmd: &Command| e.apply_as(NOW, caller, cmd, &mut Vec::new());
    let redeem_by =
        |code, verifier_id: VerifierId, pos_id: Option<PosId>, outlet_id: OutletId, units| {
            Command::Redeem(Redeem {
                request_id: rid(50),
                code,
                phone_last4: "1234".into(),
                units,
                outlet_id,
                verifier_id,
                pos_id,
            })
        };
    let lookup_by = |code, verifier_id, pos_id| {
        Command::Lookup(Lookup {
            code,
            phone_last4: "1234".into(),
            verifier_id,
            pos_id,
        })
    };
    // Another seller's POS 901 and verifier 7: every outcome equals the
    // unknown code's, whatever else is wrong.
    let (v4, v7, pos901) = (VerifierId(4), VerifierId(7), PosId(901));
    for (verifier, pos) in [(v7, Some(pos901)), (v7, None), (v4, Some(pos901))] {
        for (outlet, units) in [(OutletId(5), 1), (OutletId(3), 1), (OutletId(3), 9)] {
            let right = apply(
                Caller::Tenant,
                &redeem_by(live, verifier, pos, outlet, units),
            );
            let none = apply(
                Caller::Tenant,
                &redeem_by(unknown, verifier, pos, outlet, units),
            );
            assert_eq!(right.as_ref().unwrap_err().code, ErrorCode::CodeInvalid);
            assert_eq!(
                right.map_err(|r| (r.code, r.message)),
                none.map_err(|r| (r.code, r.message))
            );
        }
    }
    for (verifier, pos) in [(Some(v7), None), (None, Some(pos901))] {
        let right = apply(Caller::Tenant, &lookup_by(live, verifier, pos));
        let none = apply(Caller::Tenant, &lookup_by(unknown, verifier, pos));
        assert_eq!(right.as_ref().unwrap_err().code, ErrorCode::CodeInvalid);
        assert_eq!(
            right.map_err(|r| (r.code, r.message)),
            none.map_err(|r| (r.code, r.message))
        );
    }
    // A reversal of seller 10's redemption by seller 11 or its POS: the
    // reply of a reversal naming an unknown code.
    for (pos, seller) in [(None, Some(SellerId(11))), (Some(pos901), None)] {
        let right = apply(Caller::Tenant, &reverse_cmd(live, 1, 60, pos, seller));
        let none = apply(Caller::Tenant, &reverse_cmd(unknown, 1, 60, pos, seller));
        assert_eq!(
            right.as_ref().unwrap_err().code,
            ErrorCode::RedemptionUnknown
        );
        assert_eq!(
            right.map_err(|r| (r.code, r.message)),
            none.map_err(|r| (r.code, r.message))
        );
    }
    // The voucher's own seller's verifier at a wrong outlet, and staff, get
    // the real reason.
    let own = apply(Caller::Tenant, &redeem_by(live, v4, None, OutletId(5), 1));
    assert_eq!(own.unwrap_err().code, ErrorCode::OutletNotAllowed);
    let staff = apply(Caller::Staff, &redeem_by(live, v7, None, OutletId(3), 1));
    assert_eq!(staff.unwrap_err().code, ErrorCode::VerifierNotAuthorized);
    let own = apply(
        Caller::Tenant,
        &redeem_by(live, v4, Some(PosId(900)), OutletId(3), 9),
    );
    assert_eq!(own.unwrap_err().code, ErrorCode::UnitsInsufficient);
    // And the own seller's POS redeems.
    let ok = apply(
        Caller::Tenant,
        &redeem_by(live, v4, Some(PosId(900)), OutletId(3), 1),
    );
    assert!(ok.is_ok(), "{ok:?}");
    e.check_invariants();
}

/// Issue 7 item 4: an unknown, a replaced and an expired code and a live
/// code with wrong last four digits give the same reply (the benchmark
/// `code_check_paths` shows they take the same time).
#[test]
fn ord_7_every_kind_of_wrong_guess_gives_one_reply() {
    let mut e = engine(1);
    let code = issue(&mut e, "o-1", 2);
    let replaced = code;
    let live = redeem_at(&mut e, NOW, code, 1, 1)
        .unwrap()
        .new_code
        .unwrap();
    let unknown = Code::new(8, (live.value() + 1) % 100_000_000).unwrap();
    let replies: Vec<_> = [
        (NOW, unknown, "1234"),
        (NOW, replaced, "1234"),
        (NOW, live, "1235"),
        (NOW + 40 * 24 * HOUR, live, "1234"),
    ]
    .into_iter()
    .map(|(now, code, last4)| {
        let cmd = Command::Lookup(Lookup {
            code,
            phone_last4: last4.into(),
            verifier_id: None,
            pos_id: None,
        });
        e.apply(now, &cmd, &mut Vec::new())
            .map_err(|r| (r.code, r.message))
    })
    .collect();
    assert_eq!(replies[0].as_ref().unwrap_err().0, ErrorCode::CodeInvalid);
    for r in &replies[1..] {
        assert_eq!(r, &replies[0]);
    }
}

/// Issue 8 item 6: a re-issued order's reply says it is a repeat and
/// gives the voucher's live code and units now, or that it has none.
#[test]
fn ord_1_reissue_after_partial_redemption_gives_the_live_code_now() {
    let mut e = engine(2);
    let code = issue(&mut e, "o-1", 3);
    let r = redeem_at(&mut e, NOW, code, 1, 1).unwrap();
    let again = |e: &mut Engine| match e.apply(NOW, &issue_cmd("o-1", 3, 8), &mut Vec::new()) {
        Ok(Outcome::Issued(i)) => i,
        other => panic!("re-issue: {other:?}"),
    };
    let i = again(&mut e);
    assert!(i.replayed);
    assert_eq!(
        (i.code, i.units, i.live_code, i.units_remaining),
        (code, 3, r.new_code, 2)
    );
    let live = r.new_code.unwrap();
    redeem_at(&mut e, NOW, live, 2, 2).unwrap();
    let i = again(&mut e);
    assert_eq!((i.code, i.live_code, i.units_remaining), (code, None, 0));
    assert!(Outcome::Issued(i).to_string().contains("no live code"));
    e.check_invariants();
}

/// Issue 8 item 7: the verifier account that redeemed (without a POS) may
/// reverse its own redemption; another verifier may not.
#[test]
fn rev_the_verifier_account_that_redeemed_may_reverse_it() {
    let mut e = engine(2);
    let code = issue(&mut e, "o-1", 3);
    let by_verifier = Command::Redeem(Redeem {
        request_id: rid(1),
        code,
        phone_last4: "1234".into(),
        units: 1,
        outlet_id: OutletId(3),
        verifier_id: VerifierId(4),
        pos_id: None,
    });
    let Ok(Outcome::Redeemed(r)) = e.apply(NOW, &by_verifier, &mut Vec::new()) else {
        panic!("redeem refused")
    };
    let reverse_as = |verifier: VerifierId, serial: u64| {
        Command::Reverse(Reverse {
            request_id: rid(serial),
            code,
            redemption: rid(1),
            pos_id: None,
            verifier_id: Some(verifier),
            seller_id: None,
        })
    };
    assert_eq!(
        reverse_at(&mut e, NOW, &reverse_as(VerifierId(5), 2)),
        Err(ErrorCode::ReversalNotPermitted)
    );
    let rev = reverse_at(&mut e, NOW + 1, &reverse_as(VerifierId(4), 3)).unwrap();
    assert_eq!(
        (rev.units, rev.units_remaining, Some(rev.live_code)),
        (1, 3, r.new_code)
    );
    e.check_invariants();
}

/// Issue 8 item 8 (ORD-10): any code the voucher had shows the whole
/// history — issue, redemptions with outlet, verifier and POS, reversal,
/// each replacement code — to staff and the voucher's seller only.
#[test]
fn ord_10_history_lists_issue_redemptions_reversals_and_replacements() {
    let mut e = engine(2);
    let code = issue(&mut e, "o-1", 5);
    let r1 = redeem_at(&mut e, NOW + 1_000, code, 2, 1).unwrap();
    let second = r1.new_code.unwrap();
    let r2 = redeem_at(&mut e, NOW + 2_000, second, 3, 2).unwrap();
    assert_eq!(r2.new_code, None);
    let rev = reverse_at(
        &mut e,
        NOW + 3_000,
        &reverse_cmd(second, 2, 3, Some(PosId(900)), None),
    )
    .unwrap();
    let history = |e: &mut Engine, code, seller, caller| {
        let cmd = Command::History(History {
            code,
            seller_id: seller,
            from: 0,
            limit: 100,
        });
        e.apply_as(NOW + 4_000, caller, &cmd, &mut Vec::new())
    };
    use vouch_engine::shard::Caller;
    // Asked by the first code, long replaced, as the voucher's seller.
    let Ok(Outcome::History(h)) = history(&mut e, code, Some(SellerId(10)), Caller::Tenant) else {
        panic!("history refused")
    };
    assert_eq!(
        (
            h.order_id.as_str(),
            h.units_total,
            h.units_remaining,
            h.live_code
        ),
        ("o-1", 5, 3, Some(rev.live_code))
    );
    let want = vec![
        HistoryEvent::Issued {
            at_ms: NOW,
            code,
            units: 5,
        },
        HistoryEvent::Redeemed {
            at_ms: NOW + 1_000,
            request_id: rid(1),
            code,
            units: 2,
            units_remaining: 3,
            outlet_id: OutletId(3),
            verifier_id: VerifierId(4),
            pos_id: Some(PosId(900)),
            new_code: Some(second),
        },
        HistoryEvent::Redeemed {
            at_ms: NOW + 2_000,
            request_id: rid(2),
            code: second,
            units: 3,
            units_remaining: 0,
            outlet_id: OutletId(3),
            verifier_id: VerifierId(4),
            pos_id: Some(PosId(900)),
            new_code: None,
        },
        HistoryEvent::Reversed {
            at_ms: NOW + 3_000,
            request_id: rid(3),
            redemption: rid(2),
            units: 3,
            new_code: Some(rev.live_code),
        },
    ];
    assert_eq!(h.events, want);
    assert_eq!(h.next, None);
    // Staff by the live code: the same events; a page of two, then the rest.
    let Ok(Outcome::History(all)) = history(&mut e, rev.live_code, None, Caller::Staff) else {
        panic!("staff history refused")
    };
    assert_eq!(all.events, want);
    let page = Command::History(History {
        code,
        seller_id: None,
        from: 1,
        limit: 2,
    });
    let Ok(Outcome::History(p)) = e.apply(NOW, &page, &mut Vec::new()) else {
        panic!("page refused")
    };
    assert_eq!((p.events.as_slice(), p.next), (&want[1..3], Some(3)));
    // Another seller, or a tenant naming no seller: the unknown-code reply.
    let unknown = Code::new(8, 12_345_678).unwrap();
    let refusal = |r: vouch_engine::command::Reply| r.map(|_| ()).unwrap_err();
    let other = refusal(history(&mut e, code, Some(SellerId(11)), Caller::Tenant));
    let nobody = refusal(history(&mut e, code, None, Caller::Tenant));
    let none = refusal(history(&mut e, unknown, Some(SellerId(10)), Caller::Tenant));
    assert_eq!(other.code, ErrorCode::CodeInvalid);
    assert_eq!((other.code, &other.message), (nobody.code, &nobody.message));
    assert_eq!((other.code, &other.message), (none.code, &none.message));
    e.check_invariants();
}

/// Issue 8 (break-it finding): one credential looping redeem and reverse on
/// one voucher stops at `VOUCHER_REVERSALS_MAX`; the voucher keeps its units.
#[test]
fn rev_one_voucher_takes_at_most_the_reversal_limit() {
    use vouch_engine::limits::VOUCHER_REVERSALS_MAX;
    let mut e = engine(1);
    let mut live = issue(&mut e, "o-1", 2);
    let mut serial = 0;
    for n in 0..=u64::from(VOUCHER_REVERSALS_MAX) {
        serial += 1;
        let r = redeem_at(&mut e, NOW, live, 1, serial).unwrap();
        let redemption = serial;
        serial += 1;
        let cmd = reverse_cmd(
            r.new_code.unwrap(),
            redemption,
            serial,
            Some(PosId(900)),
            None,
        );
        let got = reverse_at(&mut e, NOW, &cmd);
        if n < u64::from(VOUCHER_REVERSALS_MAX) {
            live = got.unwrap().live_code;
        } else {
            assert_eq!(
                got,
                Err(ErrorCode::ReversalNotPermitted),
                "reversal {}",
                n + 1
            );
            let left = lookup(&mut e, NOW, r.new_code.unwrap(), "1234").unwrap();
            assert_eq!(left.units_remaining, 1, "the last redemption stands");
        }
    }
    e.check_invariants();
}
