//! Finding what a person typed: unique id prefixes (tables print 12 hex characters) and
//! "did you mean" suggestions for names that are close to a known one.

use keyhive_core::crypto::signing::PublicKey;

/// Fewest hex characters accepted as an id prefix.
pub const MIN_PREFIX: usize = 4;

/// Whether `text` could be an id prefix: 4 to 63 lowercase or uppercase hex characters.
pub fn is_prefix(text: &str) -> bool {
    (MIN_PREFIX..64).contains(&text.len()) && text.chars().all(|c| c.is_ascii_hexdigit())
}

/// The ids among `ids` that start with `prefix` (case-insensitive).
pub fn by_prefix<'a>(prefix: &str, ids: impl IntoIterator<Item = &'a PublicKey>) -> Vec<PublicKey> {
    let prefix = prefix.to_ascii_lowercase();
    ids.into_iter()
        .filter(|id| id.to_string().starts_with(&prefix))
        .copied()
        .collect()
}

/// Up to three known names close to `typed` (same letters ignoring case, or at most two
/// edits away), closest first, for a "did you mean" hint.
pub fn suggestions<'a>(typed: &str, known: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let lower = typed.to_lowercase();
    let mut close: Vec<(usize, String)> = known
        .into_iter()
        .filter_map(|name| {
            let distance = edit_distance(&lower, &name.to_lowercase());
            (distance <= 2 && name != typed).then(|| (distance, name.to_owned()))
        })
        .collect();
    close.sort();
    close.dedup();
    close.into_iter().take(3).map(|(_, n)| n).collect()
}

/// The hint to append to an "unknown name" error: empty, or ` (did you mean "a" or "b"?)`.
pub fn did_you_mean(typed: &str, known: Vec<String>) -> String {
    let close = suggestions(typed, known.iter().map(String::as_str));
    if close.is_empty() {
        return String::new();
    }
    let quoted: Vec<String> = close.iter().map(|n| format!("{n:?}")).collect();
    format!(" (did you mean {}?)", quoted.join(" or "))
}

/// Levenshtein distance over characters (names are short: at most a few hundred bytes).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous + usize::from(ca != *cb);
            previous = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(previous + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_and_suggestions() {
        assert!(
            is_prefix("3f2a") && is_prefix("3F2A9c") && !is_prefix("3f2") && !is_prefix("plan")
        );
        let a = PublicKey([0x3f; 32]);
        let b = PublicKey([0x3a; 32]);
        assert_eq!(by_prefix("3f3f", [&a, &b]), vec![a]);
        assert_eq!(by_prefix("3", [&a, &b]).len(), 2);
        assert_eq!(edit_distance("plan.txt", "plan.txt"), 0);
        assert_eq!(edit_distance("pln.txt", "plan.txt"), 1);
        assert_eq!(
            suggestions("Plan.txt", ["plan.txt", "diary.txt", "plans.txt"]),
            ["plan.txt", "plans.txt"]
        );
        assert_eq!(did_you_mean("zzz", vec!["plan.txt".into()]), "");
        assert_eq!(
            did_you_mean("bob", vec!["Bob".into()]),
            " (did you mean \"Bob\"?)"
        );
    }
}
