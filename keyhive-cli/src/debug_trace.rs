//! `KEYHIVE_DEBUG=WORD[,WORD...]`: lines on standard error saying what a command did, for
//! tests and for finding out why a command was slow. Words: `index` (the name index, REP-65),
//! `metadata` (how many documents' metadata a command read), `keys` (when the key store file
//! was written whole, KEYS-3; what changed in between is appended to its journal, KEYS-12),
//! `open` (how many stored items a full open replayed, and how many signatures it checked,
//! REP-70).

/// Whether `KEYHIVE_DEBUG` names `word`.
pub fn enabled(word: &str) -> bool {
    std::env::var("KEYHIVE_DEBUG").is_ok_and(|v| v.split(',').any(|w| w.trim() == word))
}

/// Prints `WORD: event` on standard error when `KEYHIVE_DEBUG` names `word`.
pub fn trace(word: &str, event: &str) {
    if enabled(word) {
        eprintln!("{word}: {event}");
    }
}
