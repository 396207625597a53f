//! How numbers of things read in messages and the CLI's text output:
//! "1 unit", "3 units" (never "1 units").

/// `n` followed by `one` when it is 1, else by `many`.
pub fn count(n: u64, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn counts_read_in_the_singular_for_one() {
        assert_eq!(super::count(1, "unit", "units"), "1 unit");
        assert_eq!(super::count(0, "unit", "units"), "0 units");
        assert_eq!(super::count(3, "entry", "entries"), "3 entries");
    }
}
