//! Credentials (issue 3, issue 8 item 7): staff register a token's SHA-256
//! for a principal, list every token ever registered without its secret,
//! and revoke by token id (its request-id source), by principal or by
//! hash. A revoked token stays listed as revoked and is never revived.

use super::*;

/// Which tokens a [`CatalogCommand::RevokeToken`] revokes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenRef {
    /// The token with this SHA-256 (the caller holds the token).
    Hash([u8; 32]),
    /// The token with this id: its request-id source, as `token list`
    /// shows it.
    Id(u64),
    /// Every active token of this principal.
    Principal(Actor),
}

/// One registered token as staff see it (never its secret or hash).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenView {
    /// The token id: its request-id source (first 8 bytes of its SHA-256).
    pub id: u64,
    /// The principal it authenticates.
    pub principal: Actor,
    /// When it was registered, unix ms.
    pub issued_at_ms: i64,
    /// When it was revoked, unix ms; None while active.
    pub revoked_at_ms: Option<i64>,
}

/// What the catalog keeps of a token ever registered.
#[derive(Clone, Copy, Debug)]
pub(super) struct TokenRecord {
    pub(super) hash: [u8; 32],
    pub(super) view: TokenView,
}

/// Most tokens one `token list` page returns.
pub const TOKENS_PAGE_ITEMS_MAX: u32 = 500;

impl Catalog {
    /// Registers `token_hash` for `actor` (staff only, by the role matrix).
    ///
    /// Errors: `bad_request` for the system principal; `not_found` when
    /// the actor's entity does not exist; `already_exists` when the token
    /// or its request-id source was registered before.
    pub(super) fn issue_token(
        &mut self,
        now_ms: i64,
        token_hash: &[u8; 32],
        actor: Actor,
    ) -> CatalogReply {
        let exists = match actor {
            Actor::Seller(id) => self.sellers.contains_key(&id),
            Actor::Provider(id) => self.providers.contains_key(&id),
            Actor::Verifier(id) => self.verifiers.contains_key(&id),
            Actor::Device(id) => self.devices.contains_key(&id),
            Actor::Staff | Actor::FrontEnd | Actor::PaymentSystem => true,
            Actor::System => {
                return Err(reject(
                    ErrorCode::BadRequest,
                    "the system principal is the server itself and has no tokens",
                ))
            }
        };
        if !exists {
            return Err(reject(ErrorCode::NotFound, format!("{actor} is not known")));
        }
        // A revoked token is never revived, and no two tokens share a
        // request-id source.
        let id = token_source(token_hash);
        if self.token_records.contains_key(&id) {
            return Err(reject(
                ErrorCode::AlreadyExists,
                "that token (or one with its request-id source) was registered before",
            ));
        }
        let view = TokenView {
            id,
            principal: actor,
            issued_at_ms: now_ms,
            revoked_at_ms: None,
        };
        self.token_records.insert(
            id,
            TokenRecord {
                hash: *token_hash,
                view,
            },
        );
        self.tokens.insert(*token_hash, actor);
        Ok(CatalogOutcome::Done)
    }

    /// Revokes the active tokens `which` names; each revocation is a
    /// [`CatalogEvent::TokenRevoked`] so the server drops the token and
    /// closes its connections.
    ///
    /// Errors: `not_found` when no active token matches.
    pub(super) fn revoke_tokens(
        &mut self,
        now_ms: i64,
        which: TokenRef,
        events: &mut Vec<CatalogEvent>,
    ) -> CatalogReply {
        let matches = |r: &TokenRecord| match which {
            TokenRef::Hash(h) => r.hash == h,
            TokenRef::Id(id) => r.view.id == id,
            TokenRef::Principal(a) => r.view.principal == a,
        };
        let mut revoked = Vec::new();
        for r in self.token_records.values_mut() {
            if r.view.revoked_at_ms.is_none() && matches(r) {
                r.view.revoked_at_ms = Some(now_ms);
                self.tokens.remove(&r.hash);
                revoked.push(r.view.id);
                events.push(CatalogEvent::TokenRevoked {
                    token_hash: r.hash,
                    id: r.view.id,
                    principal: r.view.principal,
                });
            }
        }
        if revoked.is_empty() {
            return Err(reject(ErrorCode::NotFound, "no active token matches"));
        }
        Ok(CatalogOutcome::TokensRevoked(revoked))
    }

    /// Up to `limit` tokens with an id above `after`, in id order (staff).
    ///
    /// Errors: `bad_request` for a limit outside 1..=`TOKENS_PAGE_ITEMS_MAX`.
    pub(super) fn read_tokens(&self, after: Option<u64>, limit: u32) -> ReadReply {
        if limit == 0 || limit > TOKENS_PAGE_ITEMS_MAX {
            return Err(reject(
                ErrorCode::BadRequest,
                format!("limit must be 1..={TOKENS_PAGE_ITEMS_MAX}"),
            ));
        }
        use std::ops::Bound;
        let from = after.map_or(Bound::Unbounded, Bound::Excluded);
        let items = self
            .token_records
            .range((from, Bound::Unbounded))
            .take(limit as usize)
            .map(|(_, r)| r.view)
            .collect();
        Ok(CatalogView::Tokens(items))
    }
}
