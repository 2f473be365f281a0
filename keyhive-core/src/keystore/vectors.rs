//! Test vectors for the key store (`specs/encryption.md` §4, KEYS-2, KEYS-4..KEYS-7, KEYS-12):
//! `specs/vectors/keystore.json`. The key store, its file and its backup are made by the
//! production code from fixed secrets, salt and nonce; the rejected cases are loaded or
//! imported and must fail with the named error. Regenerate with
//! `cargo test -p keyhive-core keystore::vectors::generate -- --ignored`.

use std::io::Write;
use std::path::Path;

use argon2::{Algorithm, Argon2, Params, Version};
use serde_json::{Value, json};
use zeroize::Zeroizing;

use super::backup::{BackupError, BackupHeader, BackupParams, import_backup, seal_backup};
use super::file::{FileError, load, save};
use super::store::{KeyStore, KeyStoreDecodeError};
use crate::cgka::CgkaSecrets;
use crate::crypto::aead;
use crate::crypto::derive::{self, derive_key};
use crate::crypto::hash::Hash;
use crate::crypto::prekey::PrekeySecret;
use crate::crypto::secret::SymmetricKey;
use crate::crypto::signing::{PublicKey, SigningKey};
use crate::encoding::{DecodeError, encode};
use crate::identity::{Device, DocumentId};

const PASSPHRASE: &[u8] = b"correct horse battery staple";
const SALT: [u8; 16] = [0x5a; 16];
const NONCE: [u8; 24] = [0xa5; 24];
/// Cheap Argon2id parameters within the KEYS-5 bounds, so the vector runs fast.
const PARAMS: BackupParams = BackupParams {
    memory_kib: 64,
    iterations: 1,
    parallelism: 1,
};

fn store() -> KeyStore {
    let device = Device::from_parts(
        SigningKey::from_seed(&[0x01; 32]),
        vec![
            PrekeySecret::from_bytes([0x02; 32]),
            PrekeySecret::from_bytes([0x03; 32]),
        ],
        Some("laptop".into()),
    );
    let mut store = KeyStore::new(device);
    store.set_cgka_secrets(
        DocumentId(PublicKey([0x04; 32])),
        CgkaSecrets {
            node_keys: vec![Zeroizing::new([0x05; 32]), Zeroizing::new([0x06; 32])],
            epochs: vec![(Hash([0x07; 32]), SymmetricKey::from_bytes([0x08; 32]))],
        },
    );
    store
}

fn decode_name(e: &DecodeError) -> &'static str {
    match e {
        DecodeError::Oversize { .. } => "Oversize",
        DecodeError::Malformed(_) => "Malformed",
        DecodeError::TrailingBytes(_) => "TrailingBytes",
        DecodeError::NonCanonical => "NonCanonical",
        DecodeError::WrongTag { .. } => "WrongTag",
        DecodeError::UnsupportedVersion { .. } => "UnsupportedVersion",
        DecodeError::InvalidStructure(_) => "InvalidStructure",
        DecodeError::Truncated => "Truncated",
    }
}

fn file_error_name(e: &FileError) -> String {
    match e {
        FileError::Decode(KeyStoreDecodeError::Decode(d)) => {
            format!("FileError::Decode({})", decode_name(d))
        }
        FileError::Integrity => "FileError::Integrity".into(),
        FileError::TooLarge => "FileError::TooLarge".into(),
        FileError::Permissions(_) => "FileError::Permissions".into(),
        FileError::Io(_) => "FileError::Io".into(),
        FileError::JournalIntegrity(_) => "FileError::JournalIntegrity".into(),
    }
}

fn backup_error_name(e: &BackupError) -> String {
    match e {
        BackupError::Decode(d) => format!("BackupError::Decode({})", decode_name(d)),
        BackupError::Contents(KeyStoreDecodeError::Decode(d)) => {
            format!("BackupError::Contents({})", decode_name(d))
        }
        BackupError::Params => "BackupError::Params".into(),
        BackupError::Passphrase => "BackupError::Passphrase".into(),
        BackupError::TooLarge => "BackupError::TooLarge".into(),
    }
}

/// Writes `bytes` as a mode-0600 key store file and loads it.
fn load_bytes(dir: &Path, bytes: &[u8]) -> Result<KeyStore, FileError> {
    load_with_mode(dir, bytes, 0o600)
}

/// Writes `bytes` as a key store file with permission bits `mode` (where the platform has
/// them) and loads it.
#[cfg_attr(not(unix), allow(unused_variables))]
fn load_with_mode(dir: &Path, bytes: &[u8], mode: u32) -> Result<KeyStore, FileError> {
    let path = dir.join("device.key");
    let _ = std::fs::remove_file(&path);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    options
        .open(&path)
        .expect("create")
        .write_all(bytes)
        .expect("write");
    load(&path)
}

fn flip(bytes: &[u8], index: usize) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out[index] ^= 0x01;
    out
}

/// The Argon2id output and backup key of KEYS-4, from the spec's formula.
fn spec_backup_key() -> ([u8; 32], [u8; 32]) {
    let params = Params::new(
        PARAMS.memory_kib,
        PARAMS.iterations,
        PARAMS.parallelism,
        Some(32),
    )
    .expect("params");
    let mut out = [0u8; 32];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(PASSPHRASE, &SALT, &mut out)
        .expect("argon2");
    (out, derive_key(derive::KEYSTORE_BACKUP_KEY, &out))
}

fn keystore_part(store: &KeyStore) -> Value {
    json!({
        "signing seed": hex::encode([0x01u8; 32]),
        "prekey secrets": [hex::encode([0x02u8; 32]), hex::encode([0x03u8; 32])],
        "name": "laptop",
        "document": hex::encode([0x04u8; 32]),
        "node keys": [hex::encode([0x05u8; 32]), hex::encode([0x06u8; 32])],
        "epoch (update hash, root)": [hex::encode([0x07u8; 32]), hex::encode([0x08u8; 32])],
        "bytes": hex::encode(store.to_bytes().as_slice()),
    })
}

fn file_part(dir: &Path, store: &KeyStore) -> Value {
    let path = dir.join("device.key");
    save(store, &path).expect("save");
    let file = std::fs::read(&path).expect("read");
    let body_end = file.len() - 32;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("bit flipped in the body", flip(&file, body_end - 1)),
        ("bit flipped in the check", flip(&file, file.len() - 1)),
        ("truncated by one byte", file[..file.len() - 1].to_vec()),
        ("header only", file[..23].to_vec()),
        ("file version 3", {
            let mut v = file.clone();
            v[22] = 3;
            v
        }),
        (
            "bit flipped in the file tag (read as version 1)",
            flip(&file, 1),
        ),
    ];
    let rejected: Vec<Value> = cases
        .into_iter()
        .map(|(name, bytes)| {
            let error = load_bytes(dir, &bytes).expect_err("must be refused");
            json!({ "name": name, "bytes": hex::encode(&bytes), "error": file_error_name(&error) })
        })
        .collect();
    // KEYS-3: a file that is intact but readable by its group or by others is refused before
    // its bytes are trusted (the mode is the case's input, not the bytes).
    let permissions: Vec<Value> = [0o640, 0o604]
        .into_iter()
        .map(|mode| {
            let error = load_with_mode(dir, &file, mode).expect_err("must be refused");
            json!({
                "name": format!("the valid file above with mode {mode:04o}"),
                "mode": format!("{mode:04o}"),
                "error": file_error_name(&error),
            })
        })
        .collect();
    let legacy = store.to_bytes();
    let loaded = load_bytes(dir, &legacy).expect("version 1 loads");
    json!({
        "bytes": hex::encode(&file),
        "check": hex::encode(&file[body_end..]),
        "version 1 file (bare KEYS-2 bytes) loads as device": loaded.device().id().to_string(),
        "rejected": rejected,
        "rejected for its mode": permissions,
    })
}

/// KEYS-12: the journal one kept document's new secrets leave beside the KEYS-7 file above,
/// the cases a load refuses, and those it ignores (the file alone is read).
fn journal_part(dir: &Path, store: &KeyStore) -> Value {
    let path = dir.join("device.key");
    let journal_path = super::journal::journal_path(&path);
    let _ = std::fs::remove_file(&journal_path);
    save(store, &path).expect("save");
    let file = std::fs::read(&path).expect("read");
    let document = DocumentId(PublicKey([0x04; 32]));
    let mut kept = store.clone();
    kept.set_cgka_secrets(
        document,
        CgkaSecrets {
            node_keys: vec![Zeroizing::new([0x09; 32])],
            epochs: vec![(Hash([0x0a; 32]), SymmetricKey::from_bytes([0x0b; 32]))],
        },
    );
    super::journal::Journal::default()
        .keep(&kept, &path, &[document])
        .expect("keep");
    let journal = std::fs::read(&journal_path).expect("read");
    let with_journal = |bytes: &[u8]| {
        let _ = std::fs::remove_file(&journal_path);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        options
            .open(&journal_path)
            .and_then(|mut f| f.write_all(bytes))
            .expect("write journal");
        load(&path)
    };
    assert_eq!(
        with_journal(&journal).expect("loads").to_bytes(),
        kept.to_bytes(),
        "the file and its journal load as the store kept"
    );
    let last = journal.len() - 1;
    let rejected: Vec<Value> = [
        ("bit flipped in the record", flip(&journal, last - 32)),
        ("bit flipped in the record check", flip(&journal, last)),
    ]
    .into_iter()
    .map(|(name, bytes)| {
        let error = with_journal(&bytes).expect_err("must be refused");
        json!({ "name": name, "bytes": hex::encode(&bytes), "error": file_error_name(&error) })
    })
    .collect();
    let header_len = journal.len() - (4 + 32) - kept.record_bytes(&[document]).len();
    let ignored: Vec<Value> = [
        ("record cut short by one byte", journal[..last].to_vec()),
        (
            "bit flipped in the base check (a journal of another file)",
            flip(&journal, header_len - 1),
        ),
    ]
    .into_iter()
    .map(|(name, bytes)| {
        let loaded = with_journal(&bytes).expect("loads");
        assert_eq!(
            loaded.to_bytes(),
            store.to_bytes(),
            "{name}: the file alone"
        );
        json!({ "name": name, "bytes": hex::encode(&bytes) })
    })
    .collect();
    let _ = std::fs::remove_file(&journal_path);
    json!({
        "key store file": hex::encode(&file),
        "kept document": document.to_string(),
        "kept node key": hex::encode([0x09; 32]),
        "kept epoch (op, root)": [hex::encode([0x0a; 32]), hex::encode([0x0b; 32])],
        "header": hex::encode(&journal[..header_len]),
        "bytes": hex::encode(&journal),
        "rejected": rejected,
        "ignored (the file alone loads)": ignored,
    })
}

fn backup_part(store: &KeyStore) -> Value {
    let header = BackupHeader {
        params: PARAMS,
        salt: SALT,
    };
    let ad = encode(&header);
    let backup = seal_backup(store, PASSPHRASE, header, |k, ad, p| {
        aead::seal_with_nonce(k, NONCE, ad, p)
    })
    .expect("backup");
    let (argon, key) = spec_backup_key();
    let restored = import_backup(&backup, PASSPHRASE).expect("imports");
    assert_eq!(restored.to_bytes(), store.to_bytes());
    // The params start right after the tag (1 + 23 bytes) and the version byte.
    let params_at = 25;
    assert_eq!(backup[params_at], 64, "memory_kib varint");
    let hostile = {
        // memory_kib = 2^20 + 1 KiB (one over the KEYS-5 bound) as a 3-byte varint.
        let mut v = backup[..params_at].to_vec();
        v.extend_from_slice(&[0x81, 0x80, 0x40]);
        v.extend_from_slice(&backup[params_at + 1..]);
        v
    };
    let salt_at = params_at + 3;
    assert_eq!(&backup[salt_at..salt_at + 16], &SALT);
    let mut wrong_version = backup.clone();
    wrong_version[24] = 2;
    let cases: Vec<(&str, Vec<u8>, &[u8])> = vec![
        (
            "wrong passphrase",
            backup.clone(),
            b"correct horse battery stapler",
        ),
        (
            "truncated by one byte",
            backup[..backup.len() - 1].to_vec(),
            PASSPHRASE,
        ),
        (
            "bit flipped in the ciphertext",
            flip(&backup, backup.len() - 1),
            PASSPHRASE,
        ),
        (
            "bit flipped in the salt",
            flip(&backup, salt_at),
            PASSPHRASE,
        ),
        ("format version 2", wrong_version, PASSPHRASE),
        ("memory_kib over 1 GiB", hostile, PASSPHRASE),
    ];
    let rejected: Vec<Value> = cases
        .into_iter()
        .map(|(name, bytes, passphrase)| {
            let error = import_backup(&bytes, passphrase).expect_err("must be refused");
            json!({
                "name": name,
                "bytes": hex::encode(&bytes),
                "passphrase": String::from_utf8_lossy(passphrase),
                "error": backup_error_name(&error),
            })
        })
        .collect();
    json!({
        "passphrase": String::from_utf8_lossy(PASSPHRASE),
        "params (memory_kib, iterations, parallelism)": [PARAMS.memory_kib, PARAMS.iterations, PARAMS.parallelism],
        "salt": hex::encode(SALT),
        "nonce": hex::encode(NONCE),
        "argon2id output": hex::encode(argon),
        "backup key": hex::encode(key),
        "associated data (postcard header)": hex::encode(&ad),
        "bytes": hex::encode(&backup),
        "rejected": rejected,
    })
}

fn compute() -> Value {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store();
    json!({
        "description": "keyhive key store vectors (specs/encryption.md §4). Hex. Every `rejected` case must fail with `error`.",
        "KEYS-2 key store": keystore_part(&store),
        "KEYS-7 file": file_part(dir.path(), &store),
        "KEYS-12 journal": journal_part(dir.path(), &store),
        "KEYS-4 backup": backup_part(&store),
    })
}

#[test]
#[ignore = "writes specs/vectors/keystore.json"]
fn generate() {
    crate::spec_vectors::write("keystore.json", &compute());
}

/// KEYS-2, KEYS-4..7: the production code reproduces the file, and the backup opens with the
/// key derived by the spec's formula.
#[test]
fn vectors_match_spec_file() {
    let vectors = compute();
    crate::spec_vectors::check("keystore.json", &vectors);
    let (_, key) = spec_backup_key();
    let backup =
        hex::decode(vectors["KEYS-4 backup"]["bytes"].as_str().expect("hex")).expect("hex");
    let ad = hex::decode(
        vectors["KEYS-4 backup"]["associated data (postcard header)"]
            .as_str()
            .expect("hex"),
    )
    .expect("hex");
    // The sealed part follows the header: nonce (24), commitment (32), ciphertext (bytes).
    let sealed_at = 24 + 1 + ad.len();
    let sealed: aead::Sealed =
        crate::encoding::decode_canonical(&backup[sealed_at..], backup.len()).expect("sealed part");
    let plain = aead::open(&SymmetricKey::from_bytes(key), &ad, &sealed).expect("opens");
    assert_eq!(plain.as_slice(), store().to_bytes().as_slice());
}
