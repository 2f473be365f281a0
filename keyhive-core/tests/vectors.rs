//! Interoperability test vectors for `specs/encoding.md` (`specs/vectors/encoding.json`).
//!
//! `generate_encoding_vectors` (ignored) rewrites the file from fixed seeds; `encoding_vectors`
//! checks every case against this implementation, so any change to the wire format shows up here.

use std::path::PathBuf;

use keyhive_core::cgka::{Cgka, CgkaBody};
use keyhive_core::crypto::aead::{Sealed, open, seal_with_nonce};
use keyhive_core::crypto::hash::Hash;
use keyhive_core::crypto::prekey::PrekeySecret;
use keyhive_core::crypto::secret::SymmetricKey;
use keyhive_core::crypto::signing::SigningKey;
use keyhive_core::encoding::{DecodeError, decode_canonical, encode, encode_tagged};
use keyhive_core::identity::{
    ContactCard, ContactCardError, Device, DocumentId, Genesis, IndividualId, SubjectKind,
};
use keyhive_core::signed::{Op, Signed, Verified, VerifyError};
use serde_json::{Value, json};

fn vectors_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../specs/vectors/encoding.json")
}

fn device() -> Device {
    let key = SigningKey::from_seed(&[0x11; 32]);
    let prekeys = vec![
        PrekeySecret::from_bytes([0x22; 32]),
        PrekeySecret::from_bytes([0x33; 32]),
    ];
    Device::from_parts(key, prekeys, Some("Alice laptop".into()))
}

/// Classifies a decode+verify outcome as the error code used in the vector file.
fn outcome<T: keyhive_core::signed::Signable>(bytes: &[u8]) -> Result<Verified<T>, String> {
    let signed = Signed::<T>::decode(bytes).map_err(|e| decode_code(&e))?;
    signed.verify().map_err(|e| match e {
        VerifyError::Signature(_) => "BadSignature".to_string(),
        _ => "Other".to_string(),
    })
}

fn decode_code(e: &DecodeError) -> String {
    match e {
        DecodeError::Oversize { .. } => "Oversize",
        DecodeError::Malformed(_) => "Malformed",
        DecodeError::TrailingBytes(_) => "TrailingBytes",
        DecodeError::NonCanonical => "NonCanonical",
        DecodeError::WrongTag { .. } => "WrongTag",
        DecodeError::UnsupportedVersion { .. } => "UnsupportedVersion",
        DecodeError::InvalidStructure(_) => "InvalidStructure",
        DecodeError::Truncated => "Truncated",
        _ => "Other",
    }
    .to_string()
}

/// The name of a CARD-1 import failure in the vector file.
fn card_error(e: &ContactCardError) -> String {
    match e {
        ContactCardError::MissingPrefix => "MissingPrefix".into(),
        ContactCardError::Base64 => "Base64".into(),
        ContactCardError::Decode(d) => decode_code(d),
        ContactCardError::Signature(_) => "BadSignature".into(),
        _ => "Other".into(),
    }
}

/// CARD-1 lines: accepted (with surrounding whitespace) and refused, with the error.
fn card_lines(line: &str) -> Value {
    let body = line.strip_prefix("keyhive-card1:").expect("prefix");
    let middle = body.len() / 2;
    let cases: Vec<(&str, String)> = vec![
        (
            "surrounding whitespace is ignored",
            format!(" \t{line}\r\n"),
        ),
        ("padding is refused", format!("{line}=")),
        (
            "whitespace inside is refused",
            format!("keyhive-card1:{} {}", &body[..middle], &body[middle..]),
        ),
        (
            "a control character inside is refused",
            format!("keyhive-card1:{}\u{7}{}", &body[..middle], &body[middle..]),
        ),
        (
            "the standard alphabet is refused",
            format!("keyhive-card1:{}", body.replace('-', "+").replace('_', "/")),
        ),
        ("another prefix", format!("keyhive-card2:{body}")),
        ("upper-case prefix", format!("KEYHIVE-CARD1:{body}")),
        (
            "longer than 1,454 characters after the prefix",
            format!("keyhive-card1:{}", "A".repeat(1455)),
        ),
        ("nothing after the prefix", "keyhive-card1:".to_string()),
    ];
    json!(
        cases
            .into_iter()
            .map(|(name, line)| {
                let error = ContactCard::from_line(&line).err().map(|e| card_error(&e));
                json!({ "name": name, "line": line, "error": error })
            })
            .collect::<Vec<_>>()
    )
}

/// Signs arbitrary payload bytes with the device key, as a malicious peer could.
fn resign(key: &SigningKey, payload: &[u8]) -> Vec<u8> {
    let mut out = payload.to_vec();
    out.extend_from_slice(&key.sign(payload));
    out
}

fn build() -> Value {
    let device = device();
    let key = device.signing_key();
    let card = device.contact_card().expect("card");
    let card_bytes = card.as_bytes().to_vec();
    let payload = &card_bytes[..card_bytes.len() - 64];

    let mut bad_sig = card_bytes.clone();
    bad_sig[payload.len()] ^= 0x01;

    let mut trailing = payload.to_vec();
    trailing.push(0);

    // The prekey count (2) sits after tag, version and the 32-byte device key.
    let header_len = encode(&"keyhive/contact-card").len() + 1;
    let count_at = header_len + 32;
    assert_eq!(payload[count_at], 2);
    let mut overlong = payload[..count_at].to_vec();
    overlong.extend_from_slice(&[0x82, 0x00]);
    overlong.extend_from_slice(&payload[count_at + 1..]);

    let mut wrong_tag = encode(&"keyhive/contact-cart");
    wrong_tag.extend_from_slice(&payload[header_len - 1..]);

    let mut wrong_version = payload.to_vec();
    wrong_version[header_len - 1] = 2;

    let truncated = card_bytes[..card_bytes.len() / 2].to_vec();

    // ENC-15 step 1: an envelope one byte over the card's limit (1,024 + 64), whatever it holds.
    let mut oversize = payload.to_vec();
    oversize.resize(1_025, 0);
    let oversize = resign(key, &oversize);
    assert_eq!(oversize.len(), 1_024 + 64 + 1);

    // CARD-3: a name with a terminal escape, signed by the device as a malicious peer could.
    let mut evil = card.payload().clone();
    evil.name = Some("Alice\u{1b}[2J".into());
    let control_name = resign(key, &encode_tagged(&evil));

    // GEN-2: the document's genesis names its key agreement's init (Ed25519 signing is
    // deterministic, so the init is a fixed vector too).
    let genesis_key = SigningKey::from_seed(&[0x44; 32]);
    let document = DocumentId(genesis_key.public_key());
    let (_, init) = Cgka::create(document, &device).expect("cgka init");
    let genesis_body = |kind, key_agreement| {
        Op::new(
            genesis_key.public_key(),
            vec![],
            Genesis {
                kind,
                creator: device.id(),
                key_agreement,
            },
        )
    };
    let genesis = Verified::sign(
        genesis_body(SubjectKind::Document, Some(init.hash())),
        &genesis_key,
    )
    .expect("genesis");
    let unbound_document = resign(
        &genesis_key,
        &encode_tagged(&genesis_body(SubjectKind::Document, None)),
    );
    let bound_group = resign(
        &genesis_key,
        &encode_tagged(&genesis_body(SubjectKind::Group, Some(init.hash()))),
    );

    let aead_key = SymmetricKey::from_bytes([0x55; 32]);
    let sealed = seal_with_nonce(&aead_key, [0x66; 24], b"header", b"hello keyhive").expect("seal");

    let case = |name: &str, ty: &str, bytes: &[u8], expect: Result<Hash, &str>| match expect {
        Ok(hash) => {
            json!({"name": name, "type": ty, "hex": hex::encode(bytes), "valid": true, "hash": hash.to_string()})
        }
        Err(code) => {
            json!({"name": name, "type": ty, "hex": hex::encode(bytes), "valid": false, "error": code})
        }
    };
    json!({
        "description": "keyhive encoding vectors (specs/encoding.md). Signed envelopes: payload || 64-byte Ed25519 signature.",
        "signed": [
            case("contact card", "contact-card", &card_bytes, Ok(card.hash())),
            case("genesis op", "genesis", genesis.as_bytes(), Ok(genesis.hash())),
            case("the document's cgka init op, named by the genesis", "cgka", init.as_bytes(), Ok(init.hash())),
            case("GEN-2: document genesis naming no cgka init", "genesis", &unbound_document, Err("InvalidStructure")),
            case("GEN-2: group genesis naming a cgka init", "genesis", &bound_group, Err("InvalidStructure")),
            case("bad signature", "contact-card", &bad_sig, Err("BadSignature")),
            case("trailing byte inside signed payload", "contact-card", &resign(key, &trailing), Err("TrailingBytes")),
            case("overlong varint inside signed payload", "contact-card", &resign(key, &overlong), Err("NonCanonical")),
            case("wrong domain tag", "contact-card", &resign(key, &wrong_tag), Err("WrongTag")),
            case("unknown version", "contact-card", &resign(key, &wrong_version), Err("UnsupportedVersion")),
            case("truncated", "contact-card", &truncated, Err("Malformed")),
            case("shorter than a signature", "contact-card", &card_bytes[..10], Err("Truncated")),
            case("envelope one byte over the limit (1,024 + 64)", "contact-card", &oversize, Err("Oversize")),
            case("CARD-3: control character in the name", "contact-card", &control_name, Err("InvalidStructure")),
        ],
        "contact_card_line": ContactCard::to_line(&card),
        "contact_card_lines": card_lines(&ContactCard::to_line(&card)),
        "device_seed": hex::encode([0x11; 32]),
        "device_id": device.id().to_string(),
        "prekey_secrets": [hex::encode([0x22; 32]), hex::encode([0x33; 32])],
        "content_hash": {"input": hex::encode(b"abc"), "hash": Hash::of_content(b"abc").to_string()},
        "aead": {
            "key": hex::encode([0x55; 32]), "nonce": hex::encode([0x66; 24]),
            "associated_data": hex::encode(b"header"), "plaintext": hex::encode(b"hello keyhive"),
            "sealed": hex::encode(encode(&sealed)),
        },
        "tagged_u32_example": hex::encode(encode_tagged_example()),
    })
}

/// The tagged encoding of a genesis body alone, showing the tag/version prefix layout.
fn encode_tagged_example() -> Vec<u8> {
    let creator = IndividualId(SigningKey::from_seed(&[0x11; 32]).public_key());
    encode_tagged(&Op::new(
        creator.0,
        vec![],
        Genesis {
            kind: SubjectKind::Group,
            creator,
            key_agreement: None,
        },
    ))
}

#[test]
#[ignore = "rewrites specs/vectors/encoding.json; run after an intentional format change"]
fn generate_encoding_vectors() {
    let text = serde_json::to_string_pretty(&build()).expect("json");
    std::fs::write(vectors_path(), text + "\n").expect("write vectors");
}

#[test]
fn encoding_vectors() {
    let text = std::fs::read_to_string(vectors_path()).expect("specs/vectors/encoding.json exists");
    let file: Value = serde_json::from_str(&text).expect("valid json");
    let cases = file["signed"].as_array().expect("signed cases");
    assert!(cases.len() >= 12);
    for case in cases {
        let bytes = hex::decode(case["hex"].as_str().expect("hex")).expect("hex");
        let result = match case["type"].as_str() {
            Some("contact-card") => outcome::<ContactCard>(&bytes).map(|v| v.hash()),
            Some("genesis") => outcome::<Op<Genesis>>(&bytes).map(|v| v.hash()),
            Some("cgka") => outcome::<Op<CgkaBody>>(&bytes).map(|v| v.hash()),
            other => panic!("unknown type {other:?}"),
        };
        if case["valid"] == true {
            let hash = result.unwrap_or_else(|e| panic!("{}: rejected: {e}", case["name"]));
            assert_eq!(
                hash.to_string(),
                case["hash"].as_str().expect("hash"),
                "{}",
                case["name"]
            );
        } else {
            assert_eq!(
                result.err().as_deref(),
                case["error"].as_str(),
                "{}",
                case["name"]
            );
        }
    }

    for case in file["contact_card_lines"].as_array().expect("card lines") {
        let line = case["line"].as_str().expect("line");
        let error = ContactCard::from_line(line).err().map(|e| card_error(&e));
        assert_eq!(json!(error), case["error"], "{}", case["name"]);
    }

    let line = file["contact_card_line"].as_str().expect("line");
    let card = ContactCard::from_line(line).expect("card line verifies");
    assert_eq!(
        card.id().to_string(),
        file["device_id"].as_str().expect("id")
    );
    assert_eq!(
        ContactCard::to_line(&device().contact_card().expect("card")),
        line
    );

    let ch = &file["content_hash"];
    let input = hex::decode(ch["input"].as_str().expect("input")).expect("hex");
    assert_eq!(
        Hash::of_content(&input).to_string(),
        ch["hash"].as_str().expect("hash")
    );

    let a = &file["aead"];
    let field = |k: &str| hex::decode(a[k].as_str().expect(k)).expect("hex");
    let key = SymmetricKey::from_bytes(field("key").try_into().expect("32 bytes"));
    let sealed: Sealed = decode_canonical(&field("sealed"), 4096).expect("sealed decodes");
    let nonce: [u8; 24] = field("nonce").try_into().expect("24 bytes");
    assert_eq!(sealed.nonce, nonce);
    let plaintext = open(&key, &field("associated_data"), &sealed).expect("opens");
    assert_eq!(plaintext.as_slice(), field("plaintext").as_slice());
    assert_eq!(
        hex::encode(encode_tagged_example()),
        file["tagged_u32_example"].as_str().expect("example")
    );
}
