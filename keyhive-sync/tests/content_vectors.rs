//! Known-answer vectors for content records (`specs/content.md`, `specs/vectors/content.json`):
//! records with their exact bytes, plus plaintexts every reader must refuse with the named
//! error. `content_vectors` decodes and re-encodes each; `generate_content_vectors` (ignored)
//! rewrites the file. `metadata_is_the_first_readable_change` checks REC-4 on a replica.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::PathBuf;

use keyhive_core::crypto::signing::PublicKey;
use keyhive_core::identity::GroupId;
use keyhive_core::identity::{Device, DocumentId};
use keyhive_sync::MemoryStore;
use keyhive_sync::record::{
    FILE_TAG, FileContent, GroupProfile, MAX_METADATA_LEN, METADATA_TAG, Metadata, MetadataKind,
    MetadataUpdate, PROFILE_TAG, Record, RecordError, UPDATE_TAG, document_metadata, file_record,
};
use keyhive_sync::replica::Replica;
use serde_json::{Value, json};

fn vectors_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../specs/vectors/content.json")
}

fn metadata() -> Vec<(&'static str, Metadata)> {
    vec![
        (
            "document",
            Metadata {
                name: "notes/todo.md".into(),
                kind: MetadataKind::Document,
                folder: None,
            },
        ),
        (
            "folder",
            Metadata {
                name: "Team".into(),
                kind: MetadataKind::Folder,
                folder: None,
            },
        ),
        (
            "document_in_folder",
            Metadata {
                name: "plan".into(),
                kind: MetadataKind::Document,
                folder: Some(DocumentId(PublicKey([0x46; 32]))),
            },
        ),
    ]
}

fn updates() -> Vec<(&'static str, MetadataUpdate)> {
    vec![
        (
            "rename",
            MetadataUpdate::Rename {
                name: "notes/done.md".into(),
            },
        ),
        ("remove", MetadataUpdate::Remove),
    ]
}

/// REC-8: group profile records.
fn profiles() -> Vec<(&'static str, GroupProfile)> {
    vec![(
        "profile",
        GroupProfile {
            group: GroupId(PublicKey([0x47; 32])),
            name: "Team".into(),
        },
    )]
}

fn files() -> Vec<(&'static str, Vec<u8>)> {
    vec![("empty_file", Vec::new()), ("file", b"hello".to_vec())]
}

/// Plaintexts that must be refused (REC-1, REC-3, REC-5, REC-7).
fn rejected() -> Vec<(&'static str, Vec<u8>)> {
    let good = metadata()[0].1.to_record();
    let mut trailing = good.clone();
    trailing.push(0);
    // name = one byte 0xFF (not UTF-8), kind = Document, folder = None.
    let bad_utf8 = vec![METADATA_TAG, 1, 0xFF, 1, 0];
    // kind = variant 2 (unknown).
    let bad_kind = vec![METADATA_TAG, 1, b'a', 2, 0];
    // name length 3 written as a non-minimal varint (0x83 0x00).
    let overlong = vec![METADATA_TAG, 0x83, 0x00, b'a', b'b', b'c', 1, 0];
    let mut oversize = vec![METADATA_TAG];
    oversize.resize(1 + MAX_METADATA_LEN + 1, 0);
    let mut update_trailing = MetadataUpdate::Remove.to_record();
    update_trailing.push(0);
    // variant 2 (unknown).
    let update_unknown_variant = vec![UPDATE_TAG, 2];
    let mut update_oversize = vec![UPDATE_TAG];
    update_oversize.resize(1 + MAX_METADATA_LEN + 1, 0);
    let mut profile_trailing = profiles()[0].1.to_record();
    profile_trailing.push(0);
    // group = 31 bytes only.
    let mut profile_short = vec![PROFILE_TAG];
    profile_short.extend_from_slice(&[0x47; 31]);
    let mut profile_oversize = vec![PROFILE_TAG];
    profile_oversize.resize(1 + MAX_METADATA_LEN + 1, 0);
    vec![
        ("empty", Vec::new()),
        ("unknown_type", vec![0x04, 0x00]),
        ("metadata_trailing_byte", trailing),
        ("metadata_name_not_utf8", bad_utf8),
        ("metadata_unknown_kind", bad_kind),
        ("metadata_non_minimal_varint", overlong),
        ("metadata_oversize", oversize),
        ("update_trailing_byte", update_trailing),
        ("update_unknown_variant", update_unknown_variant),
        ("update_oversize", update_oversize),
        ("profile_trailing_byte", profile_trailing),
        ("profile_truncated_group", profile_short),
        ("profile_oversize", profile_oversize),
    ]
}

/// REC-2: changes a reader that wants a file (`FileContent`) must refuse with `NotAFile`
/// before passing on a byte: a metadata record, a metadata update, a group profile and an
/// unknown type.
fn not_files() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("metadata_read_as_file", metadata()[0].1.to_record()),
        ("update_read_as_file", MetadataUpdate::Remove.to_record()),
        ("profile_read_as_file", profiles()[0].1.to_record()),
        ("type_0x04_read_as_file", vec![0x04, 0x00]),
    ]
}

/// Passes `bytes` through `FileContent`: the error name, or `None` if it is a file.
fn read_as_file(bytes: &[u8]) -> Option<String> {
    let mut reader = FileContent::new(Vec::new());
    let error = reader.write_all(bytes).err()?;
    assert!(reader.into_inner().is_empty(), "no byte passed on");
    let record = error
        .get_ref()
        .and_then(|e| e.downcast_ref::<RecordError>())
        .expect("a RecordError");
    Some(error_name(record))
}

/// The error an implementation reports: the variant, and for a malformed metadata or update
/// body the decoding rule it broke.
fn error_name(e: &RecordError) -> String {
    let decoding = |d: &keyhive_core::encoding::DecodeError| {
        let debug = format!("{d:?}");
        debug
            .split(['(', ' '])
            .next()
            .unwrap_or_default()
            .to_owned()
    };
    match e {
        RecordError::Metadata(d) => format!("Metadata/{}", decoding(d)),
        RecordError::Update(d) => format!("Update/{}", decoding(d)),
        RecordError::Profile(d) => format!("Profile/{}", decoding(d)),
        other => format!("{other:?}")
            .split(['(', ' '])
            .next()
            .unwrap_or_default()
            .to_owned(),
    }
}

fn build() -> Value {
    let meta: Vec<Value> = metadata()
        .into_iter()
        .map(|(name, m)| {
            json!({
                "name": name,
                "metadata": {
                    "name": m.name,
                    "kind": format!("{:?}", m.kind),
                    "folder": m.folder.map(|f| hex::encode(f.0.as_bytes())),
                },
                "record": hex::encode(m.to_record()),
            })
        })
        .collect();
    let update: Vec<Value> = updates()
        .into_iter()
        .map(|(name, u)| {
            let value = match &u {
                MetadataUpdate::Rename { name } => json!({ "Rename": { "name": name } }),
                MetadataUpdate::Remove => json!("Remove"),
            };
            json!({ "name": name, "update": value, "record": hex::encode(u.to_record()) })
        })
        .collect();
    let profile: Vec<Value> = profiles()
        .into_iter()
        .map(|(name, p)| {
            json!({
                "name": name,
                "profile": { "group": hex::encode(p.group.0.as_bytes()), "name": p.name },
                "record": hex::encode(p.to_record()),
            })
        })
        .collect();
    let file: Vec<Value> = files()
        .into_iter()
        .map(|(name, content)| {
            json!({
                "name": name,
                "content": hex::encode(&content),
                "record": hex::encode(file_record(&content)),
            })
        })
        .collect();
    let bad: Vec<Value> = rejected()
        .into_iter()
        .map(|(name, bytes)| {
            let error = Record::decode(&bytes).expect_err("must be refused");
            let record = if bytes.len() > 1024 {
                json!({ "type": bytes[0], "zeros_after_type": bytes.len() - 1 })
            } else {
                json!(hex::encode(&bytes))
            };
            json!({ "name": name, "record": record, "error": error_name(&error) })
        })
        .collect();
    let not_a_file: Vec<Value> = not_files()
        .into_iter()
        .map(|(name, bytes)| {
            json!({
                "name": name,
                "record": hex::encode(&bytes),
                "error": read_as_file(&bytes).expect("must be refused"),
            })
        })
        .collect();
    json!({
        "about": "specs/content.md: record = type byte || body. `metadata` records (type 0x01, body postcard(Metadata)), `update` records (type 0x02, body postcard(MetadataUpdate)), `profile` records (type 0x03, body postcard(GroupProfile)) and `file` records (type 0x00, body the file bytes) decode to the given value and re-encode to the same bytes; `rejected` must fail with `error`; `not_a_file` must be refused with `error` by a reader that wants a file (REC-2), before any byte is passed on.",
        "metadata": meta,
        "update": update,
        "profile": profile,
        "file": file,
        "rejected": bad,
        "not_a_file": not_a_file,
    })
}

#[test]
#[ignore = "rewrites specs/vectors/content.json"]
fn generate_content_vectors() {
    let text = serde_json::to_string_pretty(&build()).expect("json");
    std::fs::write(vectors_path(), text + "\n").expect("write vectors");
}

#[test]
fn content_vectors() {
    let text = std::fs::read_to_string(vectors_path()).expect("vectors file");
    let file: Value = serde_json::from_str(&text).expect("json");
    let expected = metadata();
    let records = file["metadata"].as_array().expect("metadata");
    assert_eq!(records.len(), expected.len());
    for ((name, meta), vector) in expected.iter().zip(records) {
        assert_eq!(vector["name"], *name);
        let bytes = hex::decode(vector["record"].as_str().expect("hex")).expect("hex");
        assert_eq!(bytes[0], METADATA_TAG, "{name}");
        assert_eq!(Record::decode(&bytes), Ok(Record::Metadata(meta.clone())));
        assert_eq!(meta.to_record(), bytes, "{name}");
    }
    let expected = updates();
    let records = file["update"].as_array().expect("update");
    assert_eq!(records.len(), expected.len());
    for ((name, update), vector) in expected.iter().zip(records) {
        assert_eq!(vector["name"], *name);
        let bytes = hex::decode(vector["record"].as_str().expect("hex")).expect("hex");
        assert_eq!(bytes[0], UPDATE_TAG, "{name}");
        assert_eq!(Record::decode(&bytes), Ok(Record::Update(update.clone())));
        assert_eq!(update.to_record(), bytes, "{name}");
    }
    let expected = profiles();
    let records = file["profile"].as_array().expect("profile");
    assert_eq!(records.len(), expected.len());
    for ((name, profile), vector) in expected.iter().zip(records) {
        assert_eq!(vector["name"], *name);
        let bytes = hex::decode(vector["record"].as_str().expect("hex")).expect("hex");
        assert_eq!(bytes[0], PROFILE_TAG, "{name}");
        assert_eq!(Record::decode(&bytes), Ok(Record::Profile(profile.clone())));
        assert_eq!(profile.to_record(), bytes, "{name}");
    }
    let expected = files();
    let records = file["file"].as_array().expect("file");
    assert_eq!(records.len(), expected.len());
    for ((name, content), vector) in expected.iter().zip(records) {
        assert_eq!(vector["name"], *name);
        let bytes = hex::decode(vector["record"].as_str().expect("hex")).expect("hex");
        assert_eq!(bytes[0], FILE_TAG, "{name}");
        assert_eq!(Record::decode(&bytes), Ok(Record::File(content)));
        assert_eq!(file_record(content), bytes, "{name}");
    }
    let rejected = file["rejected"].as_array().expect("rejected");
    assert_eq!(rejected.len(), self::rejected().len());
    for vector in rejected {
        let bytes = match &vector["record"] {
            Value::String(h) => hex::decode(h).expect("hex"),
            described => {
                let mut b = vec![described["type"].as_u64().expect("type") as u8];
                b.resize(
                    described["zeros_after_type"].as_u64().expect("len") as usize + 1,
                    0,
                );
                b
            }
        };
        let error = Record::decode(&bytes).expect_err("must be refused");
        assert_eq!(error_name(&error), vector["error"], "{}", vector["name"]);
    }
    let not_a_file = file["not_a_file"].as_array().expect("not_a_file");
    assert_eq!(not_a_file.len(), not_files().len());
    for vector in not_a_file {
        let bytes = hex::decode(vector["record"].as_str().expect("hex")).expect("hex");
        assert_eq!(
            read_as_file(&bytes).as_deref(),
            vector["error"].as_str(),
            "{}",
            vector["name"]
        );
    }
    // A file record passes through whole.
    for (name, content) in files() {
        assert_eq!(read_as_file(&file_record(&content)), None, "{name}");
    }
}

#[test]
fn metadata_is_the_first_readable_change() {
    let mut replica = Replica::open(Device::generate(None), MemoryStore::new()).unwrap();
    let (named, meta) = metadata().swap_remove(0);
    let doc = replica.create_document().unwrap();
    assert_eq!(document_metadata(&replica, doc).unwrap(), None, "{named}");
    replica.write(doc, &meta.to_record()).unwrap();
    replica.write(doc, &file_record(b"content")).unwrap();
    let later = Metadata {
        name: "later".into(),
        ..meta.clone()
    };
    replica.write(doc, &later.to_record()).unwrap();
    assert_eq!(document_metadata(&replica, doc).unwrap(), Some(meta));

    // A document whose first change is not a metadata record has no metadata.
    let unnamed = replica.create_document().unwrap();
    replica.write(unnamed, &file_record(b"x")).unwrap();
    replica.write(unnamed, &later.to_record()).unwrap();
    assert_eq!(document_metadata(&replica, unnamed).unwrap(), None);
}
