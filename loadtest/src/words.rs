//! How replies, codes and commands read in violation samples and errors:
//! words, never Rust `Debug` text (issue 8).

use std::fmt::Display;
use vouch_engine::catalog::CatalogCommand;
use vouch_engine::Code;

/// A reply as a sentence: the outcome's words, or `refused: NAME (CODE):
/// MESSAGE`.
pub fn reply<T: Display, E: Display>(r: &Result<T, E>) -> String {
    match r {
        Ok(o) => o.to_string(),
        Err(e) => format!("refused: {e}"),
    }
}

/// A code, or `no code` for a used-up voucher.
pub fn code(c: Option<Code>) -> String {
    c.map_or_else(|| "no code".to_string(), |c| c.to_string())
}

/// A catalog command's name as it is written in JSON (`CreateSeller`, …).
pub fn command_name(c: &CatalogCommand) -> String {
    match serde_json::to_value(c) {
        Ok(serde_json::Value::Object(m)) => m.keys().next().cloned().unwrap_or_default(),
        Ok(serde_json::Value::String(s)) => s,
        _ => "a catalog command".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_and_commands_read_as_words() {
        let refused: Result<u32, String> = Err("already_exists (32): product 5".into());
        assert_eq!(reply(&refused), "refused: already_exists (32): product 5");
        assert_eq!(code(None), "no code");
        assert_eq!(
            command_name(&CatalogCommand::AcceptAgreement),
            "accept_agreement"
        );
    }
}
