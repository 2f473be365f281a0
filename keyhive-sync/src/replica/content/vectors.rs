//! Test vector for a streamed (large) change, REP-6 / CENC-10 (`specs/encryption.md` §3.1):
//! the manifest (`Blob::Change` listing its pieces), the pieces (`Blob::Piece`), the keys and
//! the plaintext, in `specs/vectors/encryption.json` under [`KEY`]. The stream salt and the
//! change nonce are random (no seam reaches them from this crate), so the check is by opening,
//! not by re-encrypting: it opens the manifest with the CENC-2 key, decodes the body, decrypts
//! the concatenated pieces and re-cuts the stream through the production [`PieceSink`], which
//! must give the same piece items. Regenerate with
//! `cargo test -p keyhive-sync --lib replica::content::vectors::generate -- --ignored`.

use std::io::Write;
use std::path::PathBuf;

use keyhive_core::crypto::hash::Hash;
use keyhive_core::crypto::secret::SymmetricKey;
use keyhive_core::crypto::signing::PublicKey;
use keyhive_core::encoding::{decode_canonical, encode};
use keyhive_core::encryption::{
    ChangeHeader, change_key, decrypt_stream, decrypt_with_key, encrypt_stream, encrypt_with_epoch,
};
use keyhive_core::identity::DocumentId;
use serde_json::{Value, json};

use super::{Body, INLINE_MAX, PIECE_LEN, PieceSink};
use crate::blob::Blob;
use crate::store::MemoryStore;

/// The key of this vector in `specs/vectors/encryption.json`.
const KEY: &str = "REP-6 large change";
const DOCUMENT: [u8; 32] = [0x22; 32];
const EPOCH: [u8; 32] = [0x77; 32];
const EPOCH_ROOT: [u8; 32] = [0x66; 32];
const REFERENCE: [u8; 32] = [0x88; 32];
/// Three full 64 KiB chunks: a 196,708-byte stream, cut into a full piece and a 100-byte one.
const PLAINTEXT_LEN: usize = 3 * 64 * 1024;

fn path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../specs/vectors/encryption.json")
}

fn plaintext() -> Vec<u8> {
    (0..PLAINTEXT_LEN).map(|i| (i % 251) as u8).collect()
}

fn header() -> ChangeHeader {
    ChangeHeader {
        document: DocumentId(PublicKey(DOCUMENT)),
        epoch: Hash(EPOCH),
        change: Hash(REFERENCE),
    }
}

/// Cuts `stream` into piece items with the production sink; returns their envelopes.
fn cut(stream: &[u8]) -> Vec<Vec<u8>> {
    let store = MemoryStore::new();
    let mut sink = PieceSink::new(header().document, &store);
    sink.write_all(stream).expect("cut");
    sink.finish().expect("last piece");
    sink.pieces
        .iter()
        .map(|h| {
            use crate::store::Store;
            store
                .get(h)
                .expect("store")
                .expect("piece")
                .envelope()
                .to_vec()
        })
        .collect()
}

fn generate_value() -> Value {
    let key = SymmetricKey::random();
    let mut stream = Vec::new();
    let length =
        encrypt_stream(&key, &DOCUMENT, plaintext().as_slice(), &mut stream).expect("stream");
    let pieces = cut(&stream);
    let body = encode(&Body::Stream {
        key: *key.expose(),
        length,
    });
    let h = header();
    let (change, change_key) = encrypt_with_epoch(
        h.document,
        h.epoch,
        &SymmetricKey::from_bytes(EPOCH_ROOT),
        h.change,
        &[],
        &body,
    )
    .expect("manifest");
    let manifest = Blob::Change {
        change,
        pieces: pieces.iter().map(|p| Hash::of_signed(p)).collect(),
    }
    .to_bytes();
    json!({
        "about": "specs/encryption.md §3.1 (REP-6, REP-20, REP-21): a change of 196,608 plaintext bytes (byte i = i mod 251) written as a stream. `manifest` is the Blob::Change item (its content op names Hash::of_content(manifest)); each piece is a Blob::Piece item addressed by Hash::of_signed(bytes) like every item. Salt and nonce were random when generated: check by opening, not by re-encrypting.",
        "document": hex::encode(DOCUMENT),
        "epoch": hex::encode(EPOCH),
        "epoch root": hex::encode(EPOCH_ROOT),
        "change reference": hex::encode(REFERENCE),
        "change key (CENC-2)": hex::encode(change_key.expose()),
        "manifest": hex::encode(&manifest),
        "manifest payload_hash (content op)": Hash::of_content(&manifest).to_string(),
        "manifest item hash": Hash::of_signed(&manifest).to_string(),
        "body (change content)": hex::encode(&body),
        "stream key": hex::encode(key.expose()),
        "plaintext length": length,
        "plaintext content hash": Hash::of_content(&plaintext()).to_string(),
        "pieces": pieces.iter().enumerate().map(|(i, p)| json!({
            "index": i,
            "item hash": Hash::of_signed(p).to_string(),
            "bytes": hex::encode(p),
        })).collect::<Vec<_>>(),
        "inline body of \"hi\"": hex::encode(encode(&Body::Inline(b"hi".to_vec()))),
        "entry point body": hex::encode(encode(&Body::EntryPoint)),
    })
}

fn read() -> Value {
    serde_json::from_str(&std::fs::read_to_string(path()).expect("file")).expect("json")
}

fn bytes(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().expect("hex")).expect("hex")
}

#[test]
#[ignore = "rewrites the REP-6 part of specs/vectors/encryption.json"]
fn generate() {
    let mut file = read();
    file[KEY] = generate_value();
    let text = serde_json::to_string_pretty(&file).expect("json");
    std::fs::write(path(), text + "\n").expect("write");
}

/// REP-6, REP-20, REP-21, CENC-2, CENC-7..9: the manifest opens with the CENC-2 key, its body
/// names the stream key and length, the listed pieces decrypt to the plaintext, and the
/// production cut of that stream gives exactly these piece items.
#[test]
fn large_change_vector() {
    let file = read();
    let v = &file[KEY];
    let h = header();
    let key = change_key(&SymmetricKey::from_bytes(EPOCH_ROOT), &h);
    assert_eq!(hex::encode(key.expose()), v["change key (CENC-2)"]);
    let manifest = bytes(&v["manifest"]);
    assert_eq!(
        Hash::of_content(&manifest).to_string(),
        v["manifest payload_hash (content op)"]
    );
    let Ok(Blob::Change { change, pieces }) = Blob::from_bytes(&manifest) else {
        panic!("manifest is a Blob::Change");
    };
    assert_eq!(change.header, h);
    let body = decrypt_with_key(&key, &change).expect("opens").content;
    assert_eq!(hex::encode(&body), v["body (change content)"]);
    let Ok(Body::Stream {
        key: stream_key,
        length,
    }) = decode_canonical::<Body>(&body, 64)
    else {
        panic!("a stream body");
    };
    assert_eq!(length, PLAINTEXT_LEN as u64);
    assert!(length as usize > INLINE_MAX);
    let listed: Vec<Vec<u8>> = v["pieces"]
        .as_array()
        .expect("pieces")
        .iter()
        .map(|p| bytes(&p["bytes"]))
        .collect();
    assert_eq!(
        pieces,
        listed
            .iter()
            .map(|p| Hash::of_signed(p))
            .collect::<Vec<_>>()
    );
    let mut stream = Vec::new();
    for (i, p) in listed.iter().enumerate() {
        let Ok(Blob::Piece {
            document,
            index,
            bytes,
        }) = Blob::from_bytes(p)
        else {
            panic!("piece {i} is a Blob::Piece");
        };
        assert_eq!((document, index as usize), (h.document, i));
        assert!(bytes.len() == PIECE_LEN || i == listed.len() - 1);
        stream.extend_from_slice(&bytes);
    }
    let mut out = Vec::new();
    decrypt_stream(
        &SymmetricKey::from_bytes(stream_key),
        &DOCUMENT,
        stream.as_slice(),
        &mut out,
    )
    .expect("the pieces decrypt");
    assert_eq!(out, plaintext());
    assert_eq!(cut(&stream), listed);
    // The two other bodies are fixed bytes.
    assert_eq!(
        v["inline body of \"hi\""],
        hex::encode(encode(&Body::Inline(b"hi".to_vec())))
    );
    assert_eq!(
        v["entry point body"],
        hex::encode(encode(&Body::EntryPoint))
    );
}
