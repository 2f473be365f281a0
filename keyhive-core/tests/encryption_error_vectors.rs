//! Known-answer vectors for the decryption errors of `specs/encryption.md` CENC-4
//! (`specs/vectors/encryption-errors.json`).
//!
//! Every case is derived from the sealed change of `encryption.json` (`CENC-3 sealed change`)
//! and must fail with its named error: `KeyCommitment` (wrong key, tampered nonce or
//! commitment: checked before decryption, ENC-7), `Authentication` (tampered ciphertext, or a
//! header altered while the key stays the same), `Plaintext` (a correctly sealed but malformed
//! CENC-3 layout), and, for a reader holding a CGKA, `WrongDocument` and `UnknownEpoch`.
//! `encryption_error_vectors` checks every case; `generate_encryption_error_vectors`
//! (ignored) rewrites the file from `encryption.json`.

use std::path::PathBuf;

use keyhive_core::cgka::Cgka;
use keyhive_core::crypto::aead::seal_with_nonce;
use keyhive_core::crypto::hash::Hash;
use keyhive_core::crypto::prekey::PrekeySecret;
use keyhive_core::crypto::secret::SymmetricKey;
use keyhive_core::crypto::signing::{PublicKey, SigningKey};
use keyhive_core::encryption::{
    DecryptError, EncryptedChange, decrypt_with_epoch, decrypt_with_key,
};
use keyhive_core::identity::{Device, DocumentId};
use serde_json::{Value, json};

fn path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../specs/vectors/{name}"))
}

fn read(name: &str) -> Value {
    let text = std::fs::read_to_string(path(name)).expect("vectors file");
    serde_json::from_str(&text).expect("json")
}

fn bytes(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().expect("hex")).expect("hex")
}

fn key_of(v: &Value) -> SymmetricKey {
    SymmetricKey::from_bytes(bytes(v).try_into().expect("32 bytes"))
}

/// The positive vector the cases are made from: the change and its key.
fn base() -> (EncryptedChange, SymmetricKey) {
    let file = read("encryption.json");
    let v = &file["CENC-3 sealed change"];
    let change = EncryptedChange::from_bytes(&bytes(&v["EncryptedChange bytes"])).expect("change");
    (change, key_of(&v["change key"]))
}

/// How a case is decrypted.
enum Reader {
    /// `decrypt_with_key` with this key (CENC-6).
    Key(SymmetricKey),
    /// `decrypt_with_epoch` by a fresh CGKA of this document (created by a fixed device), which
    /// holds only its own initial epoch.
    Cgka(DocumentId),
}

fn reader_device() -> Device {
    Device::from_parts(
        SigningKey::from_seed(&[0x31; 32]),
        vec![PrekeySecret::from_bytes([0x32; 32])],
        None,
    )
}

/// The error name (the `DecryptError` variant), or `ok` if the change decrypts.
fn outcome(reader: &Reader, change: &EncryptedChange) -> String {
    let result = match reader {
        Reader::Key(key) => decrypt_with_key(key, change),
        Reader::Cgka(document) => {
            let (cgka, _) = Cgka::create(*document, &reader_device()).expect("cgka");
            decrypt_with_epoch(&cgka, change)
        }
    };
    match result {
        Ok(_) => "ok".into(),
        Err(e) => error_name(&e),
    }
}

fn error_name(e: &DecryptError) -> String {
    format!("{e:?}")
        .split(['(', ' '])
        .next()
        .unwrap_or_default()
        .to_owned()
}

fn cases() -> Vec<(&'static str, Reader, EncryptedChange)> {
    let (good, key) = base();
    let with = |f: &dyn Fn(&mut EncryptedChange)| {
        let mut c = good.clone();
        f(&mut c);
        c
    };
    // A CENC-3 plaintext announcing 5 predecessors and holding none, sealed correctly.
    let mut malformed = good.clone();
    malformed.sealed = seal_with_nonce(
        &key,
        good.sealed.nonce,
        &good.header.associated_data(),
        &5u32.to_le_bytes(),
    )
    .expect("seal");
    vec![
        (
            "the change's own key opens it",
            Reader::Key(key.clone()),
            good.clone(),
        ),
        (
            "wrong key",
            Reader::Key(SymmetricKey::from_bytes([0x01; 32])),
            good.clone(),
        ),
        (
            "tampered nonce",
            Reader::Key(key.clone()),
            with(&|c| c.sealed.nonce[0] ^= 1),
        ),
        (
            "tampered commitment",
            Reader::Key(key.clone()),
            with(&|c| c.sealed.commitment[0] ^= 1),
        ),
        (
            "tampered ciphertext (last tag byte)",
            Reader::Key(key.clone()),
            with(&|c| {
                if let Some(b) = c.sealed.ciphertext.last_mut() {
                    *b ^= 1;
                }
            }),
        ),
        (
            "header's change reference altered, same key",
            Reader::Key(key.clone()),
            with(&|c| c.header.change = Hash([0x89; 32])),
        ),
        (
            "malformed CENC-3 plaintext (5 predecessors announced, none present)",
            Reader::Key(key.clone()),
            malformed,
        ),
        (
            "reader's CGKA is another document's",
            Reader::Cgka(DocumentId(PublicKey([0x23; 32]))),
            good.clone(),
        ),
        (
            "reader's CGKA never held the change's epoch",
            Reader::Cgka(good.header.document),
            good,
        ),
    ]
}

fn case_json(name: &str, reader: &Reader, change: &EncryptedChange) -> Value {
    let mut case = json!({
        "name": name,
        "change": hex::encode(change.to_bytes()),
        "error": outcome(reader, change),
    });
    match reader {
        Reader::Key(key) => case["key"] = json!(hex::encode(key.expose())),
        Reader::Cgka(document) => {
            case["reader cgka document"] = json!(hex::encode(document.public_key().as_bytes()));
        }
    }
    case
}

#[test]
#[ignore = "rewrites specs/vectors/encryption-errors.json"]
fn generate_encryption_error_vectors() {
    let file = json!({
        "about": "specs/encryption.md CENC-4: decrypting `change` (EncryptedChange bytes, hex) must fail with `error` (`ok`: it decrypts). With `key`: decrypt with that change key (ENC-7: the key commitment is checked before decryption). With `reader cgka document`: decrypt with the epoch root of a reader whose CGKA is of that document and holds only its own initial epoch. Made from encryption.json `CENC-3 sealed change`.",
        "cases": cases()
            .iter()
            .map(|(name, reader, change)| case_json(name, reader, change))
            .collect::<Vec<_>>(),
    });
    let text = serde_json::to_string_pretty(&file).expect("json");
    std::fs::write(path("encryption-errors.json"), text + "\n").expect("write vectors");
}

#[test]
fn encryption_error_vectors() {
    let file = read("encryption-errors.json");
    let cases = file["cases"].as_array().expect("cases");
    assert_eq!(cases.len(), self::cases().len());
    for case in cases {
        let name = case["name"].as_str().expect("name");
        let change = EncryptedChange::from_bytes(&bytes(&case["change"])).expect("decodes");
        let reader = match (case.get("key"), case.get("reader cgka document")) {
            (Some(key), None) => Reader::Key(key_of(key)),
            (None, Some(doc)) => Reader::Cgka(DocumentId(PublicKey(
                bytes(doc).try_into().expect("32 bytes"),
            ))),
            _ => panic!("{name}: one reader"),
        };
        assert_eq!(outcome(&reader, &change), case["error"], "{name}");
    }
    // Every CENC-4 decryption error has a case.
    let named: std::collections::BTreeSet<&str> =
        cases.iter().filter_map(|c| c["error"].as_str()).collect();
    for error in [
        "ok",
        "KeyCommitment",
        "Authentication",
        "Plaintext",
        "WrongDocument",
        "UnknownEpoch",
    ] {
        assert!(named.contains(error), "no case for {error}");
    }
}
