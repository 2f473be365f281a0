//! Test vectors for `specs/encryption.md` (`specs/vectors/encryption.json`). Regenerate with
//! `cargo test -p keyhive-core encryption::vectors::generate -- --ignored`.

use serde_json::{Value, json};

use super::change::{ChangeHeader, change_key, seal_change};
use super::stream::{chunk_nonce, encrypt_stream_with_salt};
use crate::crypto::hash::Hash;
use crate::crypto::secret::SymmetricKey;
use crate::crypto::signing::PublicKey;
use crate::identity::DocumentId;

fn compute() -> Value {
    let document = DocumentId(PublicKey([0x22; 32]));
    let root = SymmetricKey::from_bytes([0x66; 32]);
    let header = ChangeHeader {
        document,
        epoch: Hash([0x77; 32]),
        change: Hash([0x88; 32]),
    };
    let pred = (Hash([0x99; 32]), SymmetricKey::from_bytes([0xaa; 32]));
    let (enc, key) = seal_change(
        document,
        header.epoch,
        &root,
        header.change,
        std::slice::from_ref(&pred),
        b"hello, keyhive",
        [0xbb; 24],
    )
    .expect("seal");
    let stream_key = SymmetricKey::from_bytes([0xcc; 32]);
    let mut small = Vec::new();
    encrypt_stream_with_salt(
        &stream_key,
        [0xdd; 16],
        b"ad",
        &b"0123456789"[..],
        &mut small,
    )
    .expect("stream");
    let big_plain: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
    let mut big = Vec::new();
    encrypt_stream_with_salt(
        &stream_key,
        [0xdd; 16],
        b"ad",
        big_plain.as_slice(),
        &mut big,
    )
    .expect("stream");
    let inline = inline_vector();
    json!({
        "description": "keyhive causal-encryption vectors (specs/encryption.md). Hex.",
        "INL inline change": inline,
        "CENC-2 change key": {
            "epoch root": hex::encode([0x66u8; 32]),
            "document": hex::encode([0x22u8; 32]),
            "epoch": hex::encode([0x77u8; 32]),
            "change": hex::encode([0x88u8; 32]),
            "associated data": hex::encode(header.associated_data()),
            "change key": hex::encode(change_key(&root, &header).expose()),
        },
        "CENC-3 sealed change": {
            "predecessor": hex::encode([0x99u8; 32]),
            "predecessor key": hex::encode([0xaau8; 32]),
            "content": hex::encode(b"hello, keyhive"),
            "nonce": hex::encode([0xbbu8; 24]),
            "change key": hex::encode(key.expose()),
            "EncryptedChange bytes": hex::encode(enc.to_bytes()),
        },
        "CENC-8 stream": {
            "key": hex::encode([0xccu8; 32]),
            "salt": hex::encode([0xddu8; 16]),
            "associated data": hex::encode(b"ad"),
            "chunk nonce(5, last)": hex::encode(chunk_nonce(5, true)),
            "plaintext 0123456789 -> stream": hex::encode(&small),
            "plaintext 70000 bytes i%251 -> stream length": big.len(),
            "plaintext 70000 bytes i%251 -> content hash of stream": Hash::of_content(&big).to_string(),
        }
    })
}

/// INL-1..INL-6: a content op carrying a change inline, from a fixed device, epoch root and salt
/// (Ed25519 signatures are deterministic, so the whole envelope is fixed).
fn inline_vector() -> Value {
    use crate::capability::{ContentBody, ContentOp, Proof};
    use crate::crypto::signing::SigningKey;
    use crate::signed::{Op, Verified};
    let signer = SigningKey::from_seed(&[0x11; 32]);
    let document = DocumentId(PublicKey([0x22; 32]));
    let root = SymmetricKey::from_bytes([0x66; 32]);
    let epoch = Hash([0x77; 32]);
    let salt = [0x5a; 16];
    let pred = (Hash([0x99; 32]), SymmetricKey::from_bytes([0xaa; 32]));
    let mut op: ContentOp = Op::new(
        signer.public_key(),
        vec![Hash([0x99; 32])],
        ContentBody {
            document,
            auth_heads: vec![Hash([0x44; 32])],
            proof: Proof::Root,
            payload: crate::capability::Payload::Blob {
                hash: Hash([0; 32]),
                len: 0,
            },
        },
    );
    let (payload, key) = super::inline::seal_inline_with(
        &root,
        epoch,
        salt,
        op.header(),
        std::slice::from_ref(&pred),
        b"hello, keyhive",
    )
    .expect("seal");
    let ad = super::inline::associated_data(op.header(), &epoch, &salt);
    op.body.payload = payload;
    let signed = Verified::sign(op, &signer).expect("sign");
    json!({
        "signing seed": hex::encode([0x11u8; 32]),
        "document": hex::encode([0x22u8; 32]),
        "predecessor (content op hash, and reference)": hex::encode([0x99u8; 32]),
        "predecessor key": hex::encode([0xaau8; 32]),
        "auth head": hex::encode([0x44u8; 32]),
        "proof": "Root",
        "epoch root": hex::encode([0x66u8; 32]),
        "epoch": hex::encode([0x77u8; 32]),
        "salt": hex::encode(salt),
        "content": hex::encode(b"hello, keyhive"),
        "INL-3 change key": hex::encode(key.expose()),
        "INL-4 associated data": hex::encode(ad),
        "content op envelope (keyhive/content v3, signed bytes)": hex::encode(signed.as_bytes()),
        "content op wire envelope (SYNC-110 compact form, one item)": hex::encode(
            crate::wire_form::compact(
                signed.as_bytes(),
                &document.0,
                crate::wire_form::CompactKind::Content,
            )
        ),
        "content op hash (INL-6 reference)": signed.hash().to_string(),
    })
}

/// The large-change vector in the same file, written and checked by `keyhive-sync`
/// (`replica::content::vectors`), which owns the piece format.
const LARGE_CHANGE: &str = "REP-6 large change";

/// This module's part of the file: everything but [`LARGE_CHANGE`].
fn ours(mut file: Value) -> Value {
    if let Some(map) = file.as_object_mut() {
        map.remove(LARGE_CHANGE);
    }
    file
}

#[test]
#[ignore = "writes specs/vectors/encryption.json"]
fn generate() {
    let mut vectors = compute();
    if let Some(large) = crate::spec_vectors::read("encryption.json").get(LARGE_CHANGE) {
        vectors[LARGE_CHANGE] = large.clone();
    }
    crate::spec_vectors::write("encryption.json", &vectors);
}

#[test]
fn vectors_match_spec_file() {
    let stored = ours(crate::spec_vectors::read("encryption.json"));
    assert_eq!(
        stored,
        compute(),
        "specs/vectors/encryption.json differs from this implementation"
    );
}
