//! Every named refusal and error has a known-answer vector (issue 15: "the vector files cover
//! every named error").
//!
//! The names are read from where they are defined, so a new one fails this test until it has
//! a vector:
//! - capabilities: every variant of `Reason` (parsed from `capability/validity.rs`, since the
//!   enum is `#[non_exhaustive]` and a match outside the crate cannot be exhaustive), every
//!   `(rule, reason)` pair the checker's `refuse(..)` call sites produce, and every
//!   `` `CAP-n Name` `` / `` `INV-n Name` `` a spec names, must appear as a verdict or an
//!   `explain` refusal in `specs/vectors/capabilities.json`;
//! - encoding: the ENC-14 table and the CARD-1 line errors (`encoding.json`);
//! - sync: every `ErrorCode` of the §4.1 table (decoded from the `Error` frames of `sync.json`)
//!   and the frame errors of SYNC-10..12 (`rejected`);
//! - content: every `RecordError::` of `content.md` (`content.json` `rejected` and `not_a_file`);
//! - key store: every `BackupError::` / `FileError::` of `encryption.md` §4 (`keystore.json`);
//! - causal encryption: the CENC-4 errors (`encryption-errors.json`);
//! - CGKA: the errors `cgka.md` names (`cgka-errors.json`, which also pins the local refusals:
//!   a builder's `NotSeated`, a sealer's `MustUpdate`, `PendingFull` and a forged path's
//!   `KeyMismatch`).

use std::collections::BTreeSet;
use std::path::PathBuf;

use keyhive_sync::protocol::{Message, decode_frame};
use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn text(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn vectors(name: &str) -> Value {
    serde_json::from_str(&text(&format!("specs/vectors/{name}"))).expect("json")
}

/// The text between the first `start` and the next `end` after it.
fn section<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
    let from = text
        .find(start)
        .unwrap_or_else(|| panic!("no {start:?} in the spec"));
    let rest = &text[from..];
    let to = rest[start.len()..]
        .find(end)
        .map_or(rest.len(), |i| i + start.len());
    &rest[..to]
}

/// Every `backticked` span of `text`.
fn backticked(text: &str) -> Vec<&str> {
    text.split('`').skip(1).step_by(2).collect()
}

/// The leading identifier characters of `s`.
fn ident(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

fn is_name(s: &str) -> bool {
    !s.is_empty() && s.starts_with(|c: char| c.is_ascii_uppercase()) && ident(s) == s
}

/// `Type::Variant` names of `types` in `text` (e.g. `BackupError::Decode(e)` gives
/// `BackupError::Decode`).
fn qualified(text: &str, types: &[&str]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for ty in types {
        let pattern = format!("{ty}::");
        for (i, _) in text.match_indices(&pattern) {
            let variant = ident(&text[i + pattern.len()..]);
            if is_name(variant) {
                out.insert(format!("{ty}::{variant}"));
            }
        }
    }
    out
}

/// The names a layer's spec gives that no vector of the layer produces.
fn check(layer: &str, named: &BTreeSet<String>, covered: &BTreeSet<String>) -> Vec<String> {
    assert!(!named.is_empty(), "{layer}: no names found in the spec");
    named
        .iter()
        .filter(|n| !covered.contains(*n))
        .map(|n| format!("{layer}: `{n}` is named but no vector produces it"))
        .collect()
}

fn assert_no_problems(problems: Vec<String>) {
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

// ---------------------------------------------------------------- capabilities

/// The variants of `enum Reason`, from its source.
fn reason_variants() -> BTreeSet<String> {
    let source = text("keyhive-core/src/capability/validity.rs");
    let body = section(&source, "pub enum Reason {", "\n}\n");
    body.lines()
        .filter(|l| l.starts_with("    ") && !l.starts_with("     "))
        .map(|l| ident(l.trim_start()).to_owned())
        .filter(|n| is_name(n))
        .collect()
}

/// `(rule, reason)` of every `refuse("RULE", Reason::Name ..)` in the checker's source.
fn refusal_sites() -> BTreeSet<(String, String)> {
    let dir = root().join("keyhive-core/src/capability");
    let mut out = BTreeSet::new();
    for entry in std::fs::read_dir(&dir).expect("source dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let source = std::fs::read_to_string(&path).expect("source");
        for (i, _) in source.match_indices("refuse(") {
            let rest = source[i + "refuse(".len()..].trim_start();
            let Some(rest) = rest.strip_prefix('"') else {
                continue;
            };
            let Some((rule, rest)) = rest.split_once('"') else {
                continue;
            };
            let Some(rest) = rest.trim_start().strip_prefix(',') else {
                continue;
            };
            if let Some(reason) = rest.trim_start().strip_prefix("Reason::") {
                out.insert((rule.to_owned(), ident(reason).to_owned()));
            }
        }
    }
    out
}

/// `(rule, reason)` of every `` `CAP-n Name` ``, `` `CAP-n:Name` `` or `` `INV-n Name` `` in
/// the capability and invitation specs.
fn spec_refusals() -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for spec in ["specs/capabilities.md", "specs/invitations.md"] {
        let spec = text(spec);
        for span in backticked(&spec) {
            let span = span.strip_prefix("refused:").unwrap_or(span);
            let Some((rule, name)) = span.split_once([' ', ':']) else {
                continue;
            };
            let Some((prefix, number)) = rule.split_once('-') else {
                continue;
            };
            let name = ident(name);
            if ["CAP", "INV"].contains(&prefix)
                && !number.is_empty()
                && number.chars().all(|c| c.is_ascii_digit())
                && is_name(name)
            {
                out.insert((rule.to_owned(), name.to_owned()));
            }
        }
    }
    out
}

/// `(rule, reason)` of every refusal `capabilities.json` pins: op verdicts (`RULE:Reason`) and
/// `explain` answers (`refused:RULE:Reason`).
fn vector_refusals() -> BTreeSet<(String, String)> {
    let file = vectors("capabilities.json");
    let mut out = BTreeSet::new();
    for case in file["cases"].as_array().expect("cases") {
        let expect = case["expect"].as_object().expect("expect");
        for (key, answers) in expect {
            if key != "validity" && !key.starts_with("explain_") {
                continue;
            }
            for answer in answers.as_object().expect("answers").values() {
                let answer = answer.as_str().expect("answer");
                let answer = answer.strip_prefix("refused:").unwrap_or(answer);
                if let Some((rule, reason)) = answer.split_once(':') {
                    out.insert((rule.to_owned(), reason.to_owned()));
                }
            }
        }
    }
    out
}

#[test]
fn every_capability_refusal_has_a_vector() {
    let covered = vector_refusals();
    let covered_reasons: BTreeSet<String> = covered.iter().map(|(_, r)| r.clone()).collect();
    let variants = reason_variants();
    assert!(variants.len() >= 20, "parsed only {variants:?}");
    assert!(variants.contains("WrongDevice") && variants.contains("Revoked"));
    let mut problems = check("capabilities", &variants, &covered_reasons);
    let sites = refusal_sites();
    assert!(sites.len() >= 25, "parsed only {sites:?}");
    for (rule, reason) in &sites {
        if !covered.contains(&(rule.clone(), reason.clone())) {
            problems.push(format!(
                "capabilities: the checker refuses with `{rule} {reason}` but no vector does"
            ));
        }
    }
    let named = spec_refusals();
    assert!(named.len() >= 10, "parsed only {named:?}");
    for (rule, reason) in &named {
        if !variants.contains(reason) {
            problems.push(format!(
                "capabilities: a spec names `{rule} {reason}`, which is not a `Reason`"
            ));
        } else if !covered.contains(&(rule.clone(), reason.clone())) {
            problems.push(format!(
                "capabilities: a spec names `{rule} {reason}` but no vector produces it"
            ));
        }
    }
    assert_no_problems(problems);
}

// ---------------------------------------------------------------- other layers

/// The `"error"` field of every entry of the array at `pointer`.
fn errors_at(file: &Value, pointer: &str) -> BTreeSet<String> {
    file.pointer(pointer)
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("no array at {pointer}"))
        .iter()
        .filter_map(|case| case["error"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn every_encoding_error_has_a_vector() {
    let spec = text("specs/encoding.md");
    let table = section(&spec, "| name | meaning | rule |", "\n\n");
    let named: BTreeSet<String> = table
        .lines()
        .skip(2)
        .filter_map(|row| backticked(row).first().map(|n| (*n).to_owned()))
        .collect();
    assert!(named.contains("BadSignature") && named.contains("Truncated"));
    let file = vectors("encoding.json");
    let mut problems = check("encoding", &named, &errors_at(&file, "/signed"));
    let card = section(&spec, "**CARD-1.**", "**CARD-2.**");
    let named: BTreeSet<String> = backticked(card)
        .into_iter()
        .filter(|n| is_name(n))
        .map(str::to_owned)
        .collect();
    assert!(named.contains("MissingPrefix") && named.contains("Base64"));
    problems.extend(check(
        "contact card line",
        &named,
        &errors_at(&file, "/contact_card_lines"),
    ));
    assert_no_problems(problems);
}

#[test]
fn every_sync_error_code_and_frame_error_has_a_vector() {
    let spec = text("specs/sync.md");
    let row = section(&spec, "| `ErrorCode` |", "\n");
    let codes: BTreeSet<String> = backticked(row)
        .into_iter()
        .filter_map(|span| span.split_once(' ').map(|(_, name)| name.to_owned()))
        .collect();
    assert!(codes.len() >= 13, "parsed only {codes:?}");
    let file = vectors("sync.json");
    let covered: BTreeSet<String> = file["frames"]
        .as_array()
        .expect("frames")
        .iter()
        .filter_map(|v| {
            let bytes = hex::decode(v["frame"].as_str().expect("hex")).expect("hex");
            match decode_frame(&bytes).expect("a frame vector decodes") {
                Message::Error(e) => Some(format!("{:?}", e.code)),
                _ => None,
            }
        })
        .collect();
    let mut problems = check("sync", &codes, &covered);
    // SYNC-10..12: what a frame that does not decode gets.
    let frames = section(&spec, "**SYNC-10**", "**SYNC-13**");
    let named: BTreeSet<String> = backticked(frames)
        .into_iter()
        .filter_map(|s| s.strip_prefix("Error{")?.strip_suffix('}'))
        .map(str::to_owned)
        .collect();
    assert!(named.len() >= 3, "parsed only {named:?}");
    problems.extend(check("sync frame", &named, &errors_at(&file, "/rejected")));
    assert_no_problems(problems);
}

#[test]
fn every_content_record_error_has_a_vector() {
    let named = qualified(&text("specs/content.md"), &["RecordError"]);
    let file = vectors("content.json");
    let covered: BTreeSet<String> = ["/rejected", "/not_a_file"]
        .iter()
        .flat_map(|p| errors_at(&file, p))
        .map(|e| format!("RecordError::{}", ident(&e)))
        .collect();
    assert_no_problems(check("content", &named, &covered));
}

#[test]
fn every_key_store_error_has_a_vector() {
    let spec = text("specs/encryption.md");
    let named = qualified(
        section(&spec, "## 4. The device key store", "\n## 5."),
        &["BackupError", "FileError"],
    );
    let file = vectors("keystore.json");
    let covered: BTreeSet<String> = [
        "/KEYS-4 backup/rejected",
        "/KEYS-7 file/rejected",
        "/KEYS-7 file/rejected for its mode",
        "/KEYS-12 journal/rejected",
    ]
    .iter()
    .flat_map(|p| errors_at(&file, p))
    .map(|e| {
        let (ty, variant) = e.split_once("::").expect("Type::Variant");
        format!("{ty}::{}", ident(variant))
    })
    .collect();
    assert_no_problems(check("key store", &named, &covered));
}

/// Every `"error"` string anywhere in `value`.
fn all_errors(value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("error", Value::String(e)) => {
                        out.insert(e.clone());
                    }
                    _ => all_errors(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| all_errors(v, out)),
        _ => {}
    }
}

#[test]
fn every_cgka_and_encryption_error_has_a_vector() {
    let named = qualified(
        &text("specs/cgka.md"),
        &["ReceiveError", "CreateError", "PathError"],
    );
    let mut covered = BTreeSet::new();
    all_errors(&vectors("cgka.json"), &mut covered);
    all_errors(&vectors("cgka-errors.json"), &mut covered);
    let mut problems = check("cgka", &named, &covered);
    let spec = text("specs/encryption.md");
    let cenc4 = section(&spec, "**CENC-4", "**CENC-5");
    let mut named: BTreeSet<String> = backticked(section(cenc4, "Errors are typed:", "\n\n"))
        .into_iter()
        .filter(|n| is_name(n))
        .map(str::to_owned)
        .collect();
    named.extend(qualified(cenc4, &["EncryptError"]));
    let mut covered = BTreeSet::new();
    all_errors(&vectors("encryption.json"), &mut covered);
    all_errors(&vectors("encryption-errors.json"), &mut covered);
    // `MustUpdate` depends on the key agreement's view, so its case is with the CGKA ones.
    all_errors(&vectors("cgka-errors.json"), &mut covered);
    problems.extend(check("encryption", &named, &covered));
    assert_no_problems(problems);
}
