//! REP-54: names of conflict copies, Syncthing style: `dir/name.conflict-AUTHOR-ID8.ext`.

use keyhive_core::Hash;

/// Marker between a file's stem and the author of the other version.
const MARKER: &str = ".conflict-";

/// The path a conflict copy of `path` gets for change `op` by `author` (a display name: only
/// its letters, digits, `_` and `-` are kept, at most 32 of them; `unknown` if none is left).
pub fn conflict_path(path: &str, author: &str, op: &Hash) -> String {
    let (dir, file) = match path.rsplit_once('/') {
        Some((dir, file)) => (format!("{dir}/"), file),
        None => (String::new(), path),
    };
    let (stem, ext) = match file.rfind('.') {
        Some(i) if i > 0 => file.split_at(i),
        _ => (file, ""),
    };
    let mut tag: String = author
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == '_' || *c == '-')
        .take(32)
        .collect();
    if tag.is_empty() {
        tag = "unknown".to_owned();
    }
    let id8 = &op.to_string()[..8];
    format!("{dir}{stem}{MARKER}{tag}-{id8}{ext}")
}

/// Whether `path` names a conflict copy (which `folder push` leaves alone: resolve it, then
/// delete it).
pub fn is_conflict_copy(path: &str) -> bool {
    let file = path.rsplit_once('/').map_or(path, |(_, f)| f);
    let Some(at) = file.find(MARKER) else {
        return false;
    };
    let rest = &file[at + MARKER.len()..];
    let tagged = rest.split('.').next().unwrap_or_default();
    tagged.rsplit_once('-').is_some_and(|(author, id8)| {
        !author.is_empty() && id8.len() == 8 && id8.chars().all(|c| c.is_ascii_hexdigit())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rep54_conflict_copies_are_named_and_recognised() {
        let op = Hash([0xab; 32]);
        for (path, author, expected) in [
            (
                "notes/todo.txt",
                "Bob",
                "notes/todo.conflict-Bob-abababab.txt",
            ),
            ("README", "Ann Lee", "README.conflict-AnnLee-abababab"),
            (".bashrc", "\"\\u{1b}x\"", ".bashrc.conflict-u1bx-abababab"),
            ("a.tar.gz", "../..", "a.tar.conflict-unknown-abababab.gz"),
        ] {
            let got = conflict_path(path, author, &op);
            assert_eq!(got, expected);
            assert!(is_conflict_copy(&got), "{got}");
            assert_eq!(crate::names::check_name(&got), Ok(()));
        }
        for plain in [
            "todo.txt",
            "a.conflict-.txt",
            "a.conflict-bob-xyz.txt",
            "a.conflict--abababab",
        ] {
            assert!(!is_conflict_copy(plain), "{plain}");
        }
    }
}
