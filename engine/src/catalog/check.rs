//! Checks every catalog command shares: text fields (names, addresses,
//! phones, accounts, merchant codes: PUB-5, PUB-8, ONB-2), id lists named
//! once each, money amounts in fen (MON-1), the rejection constructor and
//! the request fingerprint that makes a retry idempotent (invariant 4).

use super::{Actor, CatalogCommand, TEXT_BYTES_MAX};
use crate::error::{ErrorCode, Rejection};
use crate::money::Fen;
use std::collections::BTreeSet;
use std::hash::{Hash, Hasher};

/// A refusal with `code` and `message`.
pub(super) fn reject(code: ErrorCode, message: impl Into<String>) -> Rejection {
    Rejection::new(code, message)
}

/// What a request id is bound to: the actor and the command's content.
pub(super) fn fingerprint(actor: Actor, command: &CatalogCommand) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    actor.hash(&mut h);
    command.hash(&mut h);
    h.finish()
}

/// Refuses blank, overlong or deceptive text (`what` names the field).
pub(super) fn check_text(what: &str, s: &str) -> Result<(), Rejection> {
    // Invisible and direction-changing characters can make a name look
    // like another or like nothing: refused are controls, format characters
    // (zero-width marks and joiners, bidirectional marks, overrides and
    // isolates, tags, the byte-order mark), line and paragraph separators,
    // private-use, unassigned and surrogate code points (Unicode general
    // categories Cc, Cf, Zl, Zp, Co, Cn, Cs), and the invisible fillers and
    // selectors of other categories (Hangul and braille fillers, variation
    // selectors, the combining grapheme joiner).
    let hidden = |c: char| {
        use unicode_properties::{GeneralCategory as G, UnicodeGeneralCategory};
        matches!(
            c.general_category(),
            G::Control
                | G::Format
                | G::LineSeparator
                | G::ParagraphSeparator
                | G::PrivateUse
                | G::Unassigned
                | G::Surrogate
        ) || matches!(
            c,
            '\u{034F}'
                | '\u{115F}'
                | '\u{1160}'
                | '\u{17B4}'
                | '\u{17B5}'
                | '\u{180B}'..='\u{180D}'
                | '\u{2800}'
                | '\u{3164}'
                | '\u{FE00}'..='\u{FE0F}'
                | '\u{FFA0}'
                | '\u{E0100}'..='\u{E01EF}'
        )
    };
    if s.trim().is_empty() || s.len() > TEXT_BYTES_MAX || s.chars().any(hidden) {
        return Err(reject(
            ErrorCode::BadRequest,
            format!("{what} must be 1..={TEXT_BYTES_MAX} bytes, not blank, without control, invisible or direction-changing characters"),
        ));
    }
    Ok(())
}

/// Refuses a list naming the same id twice.
pub(super) fn check_distinct<I: Ord>(what: &str, ids: &[I]) -> Result<(), Rejection> {
    let distinct: BTreeSet<&I> = ids.iter().collect();
    if distinct.len() != ids.len() {
        return Err(reject(
            ErrorCode::BadRequest,
            format!("{what} names an id twice"),
        ));
    }
    Ok(())
}

/// Refuses an amount that is not above 0 or above
/// [`crate::money::AMOUNT_FEN_MAX`] (1,000,000,000 yuan).
pub(super) fn check_amount(amount: Fen) -> Result<(), Rejection> {
    Fen::positive(amount.fen())
        .map(|_| ())
        .map_err(|e| reject(ErrorCode::BadRequest, e.to_string()))
}
