//! Issue (ORD-1..3): one voucher and one live code per paid order;
//! re-issuing the same order returns the original reply.

use super::*;

/// The bounds of every field of an issue (`bad_request` otherwise).
fn check_issue(c: &Issue) -> Result<(), Rejection> {
    if c.order_id.is_empty()
        || c.order_id.len() > ORDER_ID_BYTES_MAX
        || c.order_id.chars().any(char::is_control)
    {
        return Err(Rejection::new(
            ErrorCode::BadRequest,
            format!("order_id must be 1..={ORDER_ID_BYTES_MAX} bytes without control characters"),
        ));
    }
    if c.units == 0 || c.units > VOUCHER_UNITS_MAX {
        return Err(Rejection::new(
            ErrorCode::BadRequest,
            format!("units must be 1..={VOUCHER_UNITS_MAX}, got {}", c.units),
        ));
    }
    if c.unit_price < Fen::ZERO || c.unit_price > Fen::new(UNIT_PRICE_FEN_MAX) {
        return Err(Rejection::new(
            ErrorCode::BadRequest,
            format!(
                "unit_price must be 0.00..={} yuan, got {}",
                Fen::new(UNIT_PRICE_FEN_MAX),
                c.unit_price
            ),
        ));
    }
    if !(MOBILE_DIGITS_MIN..=MOBILE_DIGITS_MAX).contains(&c.mobile.len())
        || !c.mobile.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(Rejection::new(
            ErrorCode::BadRequest,
            format!("mobile must be {MOBILE_DIGITS_MIN}..={MOBILE_DIGITS_MAX} digits"),
        ));
    }
    if !(CODE_DIGITS_MIN..=CODE_DIGITS_MAX).contains(&c.code_digits) {
        return Err(Rejection::new(
            ErrorCode::BadRequest,
            format!("code_digits must be 6..=11, got {}", c.code_digits),
        ));
    }
    Ok(())
}

impl Shard {
    /// ORD-1..3: checks the order, answers a repeat with the original
    /// reply, else draws the code and takes the payment.
    pub(super) fn issue(&mut self, now_ms: i64, c: &Issue, effects: &mut Vec<Effect>) -> Reply {
        check_issue(c)?;
        let fp = fingerprint(c);
        if let Some(&slot) = self.by_order.get(c.order_id.as_str()) {
            return self.issue_repeat(slot, fp, c);
        }
        self.check_for_sale(c)?;
        self.check_payment(c)?;
        // A catalog product's validity is the product's (PUB-3, PRV-6), and
        // its code length its provider's setting (ORD-3).
        let fact = self.products.get(&c.product_id);
        let validity = fact.map_or(c.validity, |p| p.validity);
        let window = validity.resolve(now_ms, &self.tz)?;
        let digits = fact.and_then(|p| p.code_digits).unwrap_or(c.code_digits);
        let code = self.draw_code(digits, now_ms)?;
        Ok(self.commit_issue(now_ms, c, fp, code, window, effects))
    }

    /// ORD-1: the reply to an order already issued with the same content;
    /// `order_conflict` for other content.
    fn issue_repeat(&self, slot: u32, fp: u64, c: &Issue) -> Reply {
        let v = &self.vouchers[slot as usize];
        if v.fingerprint != fp {
            return Err(Rejection::new(
                ErrorCode::OrderConflict,
                format!("order {} was issued with other content", c.order_id),
            ));
        }
        Ok(Outcome::Issued(Issued {
            code: v.issued_code,
            units: v.units_total,
            live_code: v.live_code,
            units_remaining: v.units_remaining,
            replayed: true,
            valid_from_ms: v.valid_from_ms,
            valid_until_ms: v.valid_until_ms,
        }))
    }

    /// ORD-2: a catalog product is sold only by its seller, only while
    /// listed (`product_not_for_sale`).
    fn check_for_sale(&self, c: &Issue) -> Result<(), Rejection> {
        if let Some(p) = self.products.get(&c.product_id) {
            if p.seller != c.seller_id || !p.listed {
                return Err(Rejection::new(
                    ErrorCode::ProductNotForSale,
                    format!(
                        "product {} is {}",
                        c.product_id,
                        if p.listed {
                            format!("not seller {}'s", c.seller_id)
                        } else {
                            "delisted".to_string()
                        }
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Writes the voucher with its live code and escrow and asks for the
    /// code message (ORD-2).
    fn commit_issue(
        &mut self,
        now_ms: i64,
        c: &Issue,
        fp: u64,
        code: Code,
        window: crate::validity::Window,
        effects: &mut Vec<Effect>,
    ) -> Outcome {
        let slot = u32::try_from(self.vouchers.len()).expect("fewer than 2^32 vouchers per shard");
        let order_id: Arc<str> = c.order_id.as_str().into();
        let mobile: Arc<str> = c.mobile.as_str().into();
        let terms = self
            .products
            .get(&c.product_id)
            .map_or_else(ProductTerms::default, |p| p.terms);
        self.vouchers.push(Voucher {
            order_id: order_id.clone(),
            seller_id: c.seller_id,
            product_id: c.product_id,
            units_total: c.units,
            units_remaining: c.units,
            last4: last4_of(&c.mobile),
            mobile: mobile.clone(),
            valid_from_ms: window.from_ms,
            valid_until_ms: window.until_ms,
            live_code: Some(code),
            code_digits: code.digits(),
            issued_code: code,
            fingerprint: fp,
            unit_price: c.unit_price,
            escrow: Fen::ZERO,
            issued_at_ms: now_ms,
            reversals: 0,
            last_redemption: NO_REDEMPTION,
            terms,
            closed: None,
            request: None,
            units_void: 0,
            refunded: Fen::ZERO,
            released: Fen::ZERO,
            paid_out: false,
            delivered: false,
            after_sale: None,
            taken_back: Fen::ZERO,
        });
        self.expiries.insert((window.until_ms, slot));
        if terms.t_plus_3 {
            if let Some(due) = self.t_plus_3_due_ms(now_ms) {
                self.t3_due.insert((due, slot));
            }
        }
        self.by_order.insert(order_id.clone(), slot);
        self.take_payment(now_ms, slot);
        let fresh = self.live.insert(code, slot).is_none();
        assert!(fresh, "drawn code was already live");
        self.codes_used[usize::from(code.digits())] += 1;
        effects.push(Effect::SendCode {
            to: self.vouchers[slot as usize].recipient(),
            code,
            units: c.units,
            reason: SendReason::Issued,
        });
        Outcome::Issued(Issued {
            code,
            units: c.units,
            live_code: Some(code),
            units_remaining: c.units,
            replayed: false,
            valid_from_ms: window.from_ms,
            valid_until_ms: window.until_ms,
        })
    }
}
