//! Group names: the shared names every member reads from the group's profile document
//! (`specs/content.md` REC-8..REC-10), and local names kept in `names.json` (groups named on
//! this device before shared names existed), which override them on this device.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result};
use keyhive_core::crypto::signing::PublicKey;
use keyhive_core::identity::{DocumentId, GroupId};
use keyhive_sync::record::GroupProfiles;

use crate::home::Home;

/// REC-10: the shared group names this device reads, and its profile documents (listed as
/// the group they name, never as documents).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SharedGroups {
    /// Each named group's shared name.
    pub names: BTreeMap<GroupId, String>,
    /// Every profile document this device reads (REC-9; also refused ones).
    pub profiles: BTreeSet<DocumentId>,
}

impl From<&GroupProfiles> for SharedGroups {
    fn from(p: &GroupProfiles) -> Self {
        SharedGroups {
            names: p.names.iter().map(|(g, n)| (*g, n.name.clone())).collect(),
            profiles: p.documents.keys().copied().collect(),
        }
    }
}

/// Group names as this device shows them: a local name first, else the shared one.
#[derive(Debug, Clone, Copy)]
pub struct GroupNames<'a> {
    /// Local names (`names.json`).
    pub local: &'a LocalNames,
    /// Shared names (REC-10).
    pub shared: &'a SharedGroups,
    /// This device's person group (PERSON-4: shown as `me (all my devices)`).
    pub person: Option<GroupId>,
}

impl GroupNames<'_> {
    /// The name shown for group `id`.
    pub fn get(&self, id: &PublicKey) -> Option<&str> {
        if self.person.is_some_and(|p| p.0 == *id) {
            return Some(crate::person::OWN_GROUP_NAME);
        }
        self.local
            .get(id)
            .or_else(|| self.shared.names.get(&GroupId(*id)).map(String::as_str))
    }

    /// These names, with `person` as this device's person group (PERSON-4).
    pub fn with_person(self, person: Option<GroupId>) -> Self {
        GroupNames { person, ..self }
    }

    /// Groups shown with this name.
    pub fn find(&self, name: &str) -> Vec<PublicKey> {
        let mut found = self.local.find(name);
        for (group, shared) in &self.shared.names {
            if shared == name && self.local.get(&group.0).is_none() {
                found.push(group.0);
            }
        }
        found
    }

    /// Every group name shown.
    pub fn all(&self) -> Vec<String> {
        let mut all: Vec<String> = self.local.all().map(str::to_owned).collect();
        for (group, shared) in &self.shared.names {
            if self.local.get(&group.0).is_none() {
                all.push(shared.clone());
            }
        }
        all
    }
}

/// File holding local group names.
pub const NAMES_FILE: &str = "names.json";

/// Group id -> local name.
#[derive(Debug, Default)]
pub struct LocalNames {
    names: BTreeMap<String, String>,
}

impl LocalNames {
    /// Loads the names file (absent = empty).
    pub fn load(home: &Home) -> Result<Self> {
        let Some(bytes) = home.read_optional(NAMES_FILE)? else {
            return Ok(Self::default());
        };
        let names = serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is damaged", home.path(NAMES_FILE).display()))?;
        Ok(LocalNames { names })
    }

    /// Saves atomically.
    pub fn save(&self, home: &Home) -> Result<()> {
        home.write_atomic(NAMES_FILE, &serde_json::to_vec_pretty(&self.names)?, false)
    }

    /// Remembers a name (local names are no longer made by a command: homes keep those they
    /// had, as overrides).
    #[cfg(test)]
    pub fn insert(&mut self, id: PublicKey, name: String) {
        self.names.insert(id.to_string(), name);
    }

    /// Forgets the local name of `id` (the shared name shows again); whether it had one.
    pub fn remove(&mut self, id: &PublicKey) -> bool {
        self.names.remove(&id.to_string()).is_some()
    }

    /// The name of `id`.
    pub fn get(&self, id: &PublicKey) -> Option<&str> {
        self.names.get(&id.to_string()).map(String::as_str)
    }

    /// Every local name.
    pub fn all(&self) -> impl Iterator<Item = &str> {
        self.names.values().map(String::as_str)
    }

    /// Ids with this name.
    pub fn find(&self, name: &str) -> Vec<PublicKey> {
        self.names
            .iter()
            .filter(|(_, n)| n.as_str() == name)
            .filter_map(|(id, _)| id.parse().ok())
            .collect()
    }
}

/// REP-9: most bytes in a name received from a peer.
pub const MAX_NAME_BYTES: usize = 4096;
/// REP-9: most bytes in one `/`-separated component of such a name.
pub const MAX_COMPONENT_BYTES: usize = 255;

/// REP-9: why a name received from a peer is not safe to print raw or to use as a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameProblem {
    /// The name is empty.
    Empty,
    /// Longer than [`MAX_NAME_BYTES`].
    TooLong,
    /// A control character (C0, DEL, C1), which includes terminal escape sequences.
    Control(char),
    /// A bidirectional-text control, which makes printed text lie about its order.
    Bidi(char),
    /// A `\`, a path separator on some systems.
    Backslash,
    /// Starts with `/`.
    Absolute,
    /// A `/`-separated component is empty, `.` or `..`.
    BadComponent(String),
    /// A component is longer than [`MAX_COMPONENT_BYTES`].
    ComponentTooLong,
    /// A component is a name Windows reserves for a device (`CON`, `NUL`, `COM1`, ... with
    /// or without an extension).
    Reserved(String),
    /// A component ends with `.` or a space, which Windows drops.
    TrailingDotOrSpace(String),
}

impl NameProblem {
    /// Whether the name can still be printed as it is: it only makes a bad path.
    fn printable(&self) -> bool {
        matches!(
            self,
            NameProblem::Absolute
                | NameProblem::BadComponent(_)
                | NameProblem::ComponentTooLong
                | NameProblem::Reserved(_)
                | NameProblem::TrailingDotOrSpace(_)
        )
    }
}

impl std::fmt::Display for NameProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NameProblem::Empty => write!(f, "the name is empty"),
            NameProblem::TooLong => write!(f, "the name is over {MAX_NAME_BYTES} bytes"),
            NameProblem::Control(c) => write!(f, "control character {:?}", c),
            NameProblem::Bidi(c) => write!(f, "bidirectional-text control {:?}", c),
            NameProblem::Backslash => write!(f, "the name contains a backslash"),
            NameProblem::Absolute => write!(f, "the name is an absolute path"),
            NameProblem::BadComponent(c) => write!(
                f,
                "path component {c:?} is not allowed (empty, `.` or `..`)"
            ),
            NameProblem::ComponentTooLong => {
                write!(f, "a path component is over {MAX_COMPONENT_BYTES} bytes")
            }
            NameProblem::Reserved(c) => {
                write!(
                    f,
                    "path component {c:?} is a device name reserved on Windows"
                )
            }
            NameProblem::TrailingDotOrSpace(c) => {
                write!(f, "path component {c:?} ends with a dot or a space")
            }
        }
    }
}

/// Bidirectional-text controls (Unicode `Bidi_Control`).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// REP-9: classifies a name that came from a peer (a document's or folder's shared name).
/// `Ok` means it may be printed as is and used as a relative path under a directory.
pub fn check_name(name: &str) -> Result<(), NameProblem> {
    if name.is_empty() {
        return Err(NameProblem::Empty);
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(NameProblem::TooLong);
    }
    if let Some(c) = name.chars().find(|c| c.is_control()) {
        return Err(NameProblem::Control(c));
    }
    if let Some(c) = name.chars().find(|c| is_bidi_control(*c)) {
        return Err(NameProblem::Bidi(c));
    }
    if name.contains('\\') {
        return Err(NameProblem::Backslash);
    }
    if name.starts_with('/') {
        return Err(NameProblem::Absolute);
    }
    for component in name.split('/') {
        if component.is_empty() || component == "." || component == ".." {
            return Err(NameProblem::BadComponent(component.to_owned()));
        }
        if component.len() > MAX_COMPONENT_BYTES {
            return Err(NameProblem::ComponentTooLong);
        }
        if component.ends_with(['.', ' ']) {
            return Err(NameProblem::TrailingDotOrSpace(component.to_owned()));
        }
        if is_reserved_on_windows(component) {
            return Err(NameProblem::Reserved(component.to_owned()));
        }
    }
    Ok(())
}

/// Windows device names (`CON`, `PRN`, `AUX`, `NUL`, `COM0`-`COM9`, `LPT0`-`LPT9`, and the
/// superscript-digit forms), in any case, alone or before an extension (`con.txt`).
fn is_reserved_on_windows(component: &str) -> bool {
    let stem = component
        .split_once('.')
        .map_or(component, |(stem, _)| stem)
        .trim_end_matches(' ')
        .to_ascii_uppercase();
    match stem.as_str() {
        "CON" | "PRN" | "AUX" | "NUL" => true,
        _ => ["COM", "LPT"].iter().any(|prefix| {
            stem.strip_prefix(prefix).is_some_and(|rest| {
                let mut digits = rest.chars();
                matches!(
                    (digits.next(), digits.next()),
                    (Some('0'..='9' | '¹' | '²' | '³'), None)
                )
            })
        }),
    }
}

/// REP-9: a peer-supplied name as it may be shown on a terminal: as is when safe (or when it is
/// only a bad path), `(unnamed)` when empty, otherwise quoted with every control escaped.
pub fn shown(name: &str) -> String {
    match check_name(name) {
        Ok(()) => name.to_owned(),
        Err(problem) if problem.printable() => name.to_owned(),
        Err(NameProblem::Empty) => "(unnamed)".to_owned(),
        Err(_) => format!("\"{}\"", name.escape_debug()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rep9_classifies_peer_names() {
        for ok in [
            "plan.txt",
            "a/b/deep.txt",
            "résumé 2024.pdf",
            "..hidden",
            "a..b",
            "console.txt",
            "COM10",
            "lpt.txt",
            "a/.b",
        ] {
            assert_eq!(check_name(ok), Ok(()), "{ok:?}");
            assert_eq!(shown(ok), ok);
        }
        let long_component = "x".repeat(MAX_COMPONENT_BYTES + 1);
        let cases = [
            ("", NameProblem::Empty),
            ("x\0y", NameProblem::Control('\0')),
            ("\x1b[31mred", NameProblem::Control('\x1b')),
            ("a\u{9b}31m", NameProblem::Control('\u{9b}')),
            ("del\u{7f}", NameProblem::Control('\u{7f}')),
            ("evil\u{202e}txt.exe", NameProblem::Bidi('\u{202e}')),
            ("a\\b", NameProblem::Backslash),
            ("/etc/passwd", NameProblem::Absolute),
            ("a/../../etc/passwd", NameProblem::BadComponent("..".into())),
            ("..", NameProblem::BadComponent("..".into())),
            ("./a", NameProblem::BadComponent(".".into())),
            ("a//b", NameProblem::BadComponent(String::new())),
            ("a/", NameProblem::BadComponent(String::new())),
            (long_component.as_str(), NameProblem::ComponentTooLong),
            ("CON", NameProblem::Reserved("CON".into())),
            ("docs/nul.txt", NameProblem::Reserved("nul.txt".into())),
            ("Com1.tar.gz", NameProblem::Reserved("Com1.tar.gz".into())),
            ("lpt9", NameProblem::Reserved("lpt9".into())),
            ("COM¹", NameProblem::Reserved("COM¹".into())),
            ("notes.", NameProblem::TrailingDotOrSpace("notes.".into())),
            ("dir /x", NameProblem::TrailingDotOrSpace("dir ".into())),
        ];
        for (name, problem) in cases {
            assert_eq!(check_name(name), Err(problem), "{name:?}");
        }
        assert_eq!(check_name(&"a/".repeat(2100)), Err(NameProblem::TooLong));
    }

    #[test]
    fn rep9_unsafe_names_are_shown_escaped() {
        assert_eq!(shown(""), "(unnamed)");
        assert_eq!(shown("x\0y"), "\"x\\0y\"");
        assert_eq!(shown("\x1b[31mred"), "\"\\u{1b}[31mred\"");
        assert_eq!(shown("evil\u{202e}"), "\"evil\\u{202e}\"");
        assert!(!shown("a\u{9b}").contains('\u{9b}'));
        // Only a bad path: printable as is.
        assert_eq!(shown("a/../../etc/passwd"), "a/../../etc/passwd");
    }
}
