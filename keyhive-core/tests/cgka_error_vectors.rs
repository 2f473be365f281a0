//! Known-answer vectors for the refusals of `specs/cgka.md` (`specs/vectors/cgka-errors.json`).
//!
//! Every case is an op received by an observer replica (no local device) that holds every op
//! of the `CGKA-12 replay scenario` of `cgka.json`, with devices A..D admin readers (as in that
//! scenario); the op must be refused with the named `ReceiveError`: a second init
//! (`ForeignInit`, CGKA-2, CGKA-25), a remove by a stranger (`Unauthorized`, CGKA-17), a remove
//! of a device the op's past had already removed (`NotSeated`, CGKA-26). The ops are signed
//! by hand (Ed25519 is deterministic, so the bytes are fixed by the inputs).
//! `cgka_error_vectors` checks every case; `generate_cgka_error_vectors` (ignored) rewrites
//! the file.

use std::path::PathBuf;

use keyhive_core::cgka::{
    Cgka, CgkaBody, InitBinding, ReceiveError, Received, SignedCgkaOp, StaticAuthority,
};
use keyhive_core::crypto::hash::Hash;
use keyhive_core::crypto::prekey::PrekeySecret;
use keyhive_core::crypto::signing::{PublicKey, SigningKey};
use keyhive_core::identity::{Device, DocumentId};
use keyhive_core::signed::{Op, Signed, Verified};
use serde_json::{Value, json};

fn path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../specs/vectors/{name}"))
}

fn read(name: &str) -> Value {
    let text = std::fs::read_to_string(path(name)).expect("vectors file");
    serde_json::from_str(&text).expect("json")
}

/// Device `i` of the replay scenario: seed `0xA0 + i`, one prekey `0xB0 + i`. `i = 4` is a
/// stranger (E) the scenario never names.
fn device(i: u8) -> Device {
    Device::from_parts(
        SigningKey::from_seed(&[0xA0 + i; 32]),
        vec![PrekeySecret::from_bytes([0xB0 + i; 32])],
        None,
    )
}

fn document() -> DocumentId {
    DocumentId(PublicKey([0x22; 32]))
}

/// Devices A..D are admin readers with their one prekey.
fn authority() -> StaticAuthority {
    let mut auth = StaticAuthority::new();
    for i in 0..4 {
        let d = device(i);
        auth.grant_admin(d.id(), d.prekeys()[0].public());
    }
    auth
}

/// The replay scenario's ops (envelopes, the init first) and their labels.
fn scenario() -> Vec<(String, Vec<u8>)> {
    let file = read("cgka.json");
    file["CGKA-12 replay scenario"]["ops"]
        .as_array()
        .expect("ops")
        .iter()
        .map(|op| {
            (
                op["label"].as_str().expect("label").to_owned(),
                hex::decode(op["envelope"].as_str().expect("hex")).expect("hex"),
            )
        })
        .collect()
}

/// An observer holding every op of the scenario.
fn observer(auth: &StaticAuthority) -> Cgka {
    let ops = scenario();
    let init: SignedCgkaOp = Signed::decode(&ops[0].1).expect("init");
    let binding = InitBinding {
        document: document(),
        creator: device(0).id(),
        init: init.hash(),
    };
    let mut cgka = Cgka::from_init(&binding, init, None, auth).expect("init");
    for (label, bytes) in &ops[1..] {
        let op = Signed::decode(bytes).expect("op");
        let received = cgka.receive(op, auth).expect(label);
        assert!(matches!(received, Received::Applied), "{label}");
    }
    cgka
}

fn hash_of(label: &str) -> Hash {
    let ops = scenario();
    let (_, bytes) = ops
        .iter()
        .find(|(l, _)| l == label)
        .unwrap_or_else(|| panic!("no op {label:?}"));
    Hash::of_signed(bytes)
}

fn signed(by: &Device, predecessors: Vec<Hash>, body: CgkaBody) -> Vec<u8> {
    Verified::sign(Op::new(by.id().0, predecessors, body), by.signing_key())
        .expect("sign")
        .as_bytes()
        .to_vec()
}

fn cases() -> Vec<(&'static str, Vec<u8>)> {
    let (b, c, e) = (device(1), device(2), device(4));
    let init = hash_of("init by A");
    vec![
        (
            "B's own init for the document (the genesis names A's)",
            signed(
                &b,
                vec![],
                CgkaBody::Init {
                    document: document(),
                    prekey: b.prekeys()[0].public(),
                },
            ),
        ),
        (
            "a remove of A by a stranger E, after the init",
            signed(
                &e,
                vec![init],
                CgkaBody::Remove {
                    device: device(0).id(),
                },
            ),
        ),
        (
            "B removes C again, after its own removal of C",
            signed(
                &b,
                vec![hash_of("B removes C (concurrent with A adds D)")],
                CgkaBody::Remove { device: c.id() },
            ),
        ),
    ]
}

/// The refusal, `ReceiveError::Variant`, or `applied` / `pending`.
fn outcome(bytes: &[u8]) -> String {
    let auth = authority();
    let mut cgka = observer(&auth);
    let op = Signed::decode(bytes).expect("decodes");
    match cgka.receive(op, &auth) {
        Ok(Received::Applied) => "applied".into(),
        Ok(other) => format!("{other:?}"),
        Err(e) => format!("ReceiveError::{}", error_name(&e)),
    }
}

fn error_name(e: &ReceiveError) -> String {
    format!("{e:?}")
        .split(['(', ' '])
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[test]
#[ignore = "rewrites specs/vectors/cgka-errors.json"]
fn generate_cgka_error_vectors() {
    let file = json!({
        "about": "specs/cgka.md refusals: an observer replica (no local device) holding every op of cgka.json `CGKA-12 replay scenario`, with devices A..D admin readers (seeds 0xA0 + i, prekeys 0xB0 + i; E is seed 0xA4), receives `op` (a signed envelope, hex) and must refuse it with `error`.",
        "cases": cases()
            .iter()
            .map(|(name, bytes)| json!({
                "name": name,
                "op": hex::encode(bytes),
                "error": outcome(bytes),
            }))
            .collect::<Vec<_>>(),
    });
    let text = serde_json::to_string_pretty(&file).expect("json");
    std::fs::write(path("cgka-errors.json"), text + "\n").expect("write vectors");
}

#[test]
fn cgka_error_vectors() {
    let file = read("cgka-errors.json");
    let cases = file["cases"].as_array().expect("cases");
    assert_eq!(cases.len(), self::cases().len());
    for (case, (name, bytes)) in cases.iter().zip(self::cases()) {
        assert_eq!(case["name"], name);
        let stored = hex::decode(case["op"].as_str().expect("hex")).expect("hex");
        // Signing is deterministic: the inputs above give exactly the stored bytes.
        assert_eq!(stored, bytes, "{name}");
        assert_eq!(outcome(&stored), case["error"], "{name}");
        assert!(
            case["error"]
                .as_str()
                .is_some_and(|e| e.starts_with("ReceiveError::")),
            "{name}: every case is refused"
        );
    }
}
