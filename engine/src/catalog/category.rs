//! The category tree (ONB-1, ONB-4, PUB-1, PUB-7, REF-1): staff create or
//! replace nodes; each node says whether vouchers may be published in it,
//! its T+N deposit amount (ONB-4), its minimum expiry refund ratio (PUB-7)
//! and whether unexpired automatic refunds apply (REF-1). A changed deposit
//! amount applies at once to every seller with T+N in the category (ONB-6).

use super::check::{check_text, reject};
use super::{Catalog, CatalogEvent, CatalogOutcome, CatalogReply, Category, TPlusN};
use crate::error::{ErrorCode, Rejection};
use crate::ids::{CategoryId, SellerId};
use crate::money::Fen;

impl Catalog {
    /// [`super::CatalogCommand::PutCategory`]: creates or replaces category
    /// `id` with `node`.
    pub(super) fn put_category(
        &mut self,
        id: CategoryId,
        node: Category,
        events: &mut Vec<CatalogEvent>,
    ) -> CatalogReply {
        check_text("category name", &node.name)?;
        if let Some(p) = node.parent {
            self.check_parent(id, p)?;
        }
        if node.deposit < Fen::ZERO || node.deposit > Fen::new(crate::money::AMOUNT_FEN_MAX) {
            return Err(reject(
                ErrorCode::BadRequest,
                "deposit must be 0.00..=1000000000.00 yuan",
            ));
        }
        self.categories.insert(id, node);
        // A changed deposit amount applies to every seller with T+N
        // in the category at once (ONB-6).
        let with_t_plus_n: Vec<SellerId> = self
            .sellers
            .iter()
            .filter(|(_, s)| s.t_plus_n.get(&id) == Some(&TPlusN::Enabled))
            .map(|(seller, _)| *seller)
            .collect();
        for seller in with_t_plus_n {
            self.review_deposit(seller, id, events)?;
        }
        Ok(CatalogOutcome::Done)
    }

    /// Refuses `parent` for category `id` when it does not exist or would
    /// make the tree a cycle.
    fn check_parent(&self, id: CategoryId, parent: CategoryId) -> Result<(), Rejection> {
        if parent == id {
            return Err(reject(
                ErrorCode::BadRequest,
                "a category cannot be its own parent",
            ));
        }
        self.category(parent)?;
        // Replacing a node must not make it its own ancestor.
        let mut up = Some(parent);
        while let Some(node) = up {
            if node == id {
                return Err(reject(
                    ErrorCode::BadRequest,
                    "that parent would make the category tree a cycle",
                ));
            }
            up = self.categories.get(&node).and_then(|c| c.parent);
        }
        Ok(())
    }

    /// Category `id`.
    ///
    /// Errors: `not_found` when there is none.
    pub(super) fn category(&self, id: CategoryId) -> Result<&Category, Rejection> {
        self.categories
            .get(&id)
            .ok_or_else(|| reject(ErrorCode::NotFound, format!("category {id}")))
    }
}
