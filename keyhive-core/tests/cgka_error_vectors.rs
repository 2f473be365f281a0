//! Known-answer vectors for the refusals of `specs/cgka.md` (`specs/vectors/cgka-errors.json`).
//!
//! Every case is an op received by an observer replica (no local device) that holds every op
//! of the `CGKA-12 replay scenario` of `cgka.json`, with devices A..D admin readers (as in that
//! scenario); the op must be refused with the named `ReceiveError`: a second init
//! (`ForeignInit`, CGKA-2, CGKA-25), a remove by a stranger (`Unauthorized`, CGKA-17), a remove
//! of a device the op's past had already removed (`NotSeated`, CGKA-26). The ops are signed
//! by hand (Ed25519 is deterministic, so the bytes are fixed by the inputs).
//!
//! Three more sections pin what a received op cannot show on its own:
//! - `pending full`: the observer parks 4,096 ops whose predecessor it lacks (`MAX_PENDING`,
//!   CGKA-21) and refuses the next with `PendingFull`;
//! - `local`: refusals of a device's own builder or sealer on a given view: a remove of a device
//!   that is not seated (`CreateError::NotSeated`, CGKA-26) and sealing while the view ends in
//!   a remove nobody updated after (`EncryptError::MustUpdate`, CGKA-19);
//! - `forged path`: a two-device document whose second op, an update by A, announces a root
//!   public key its path secret does not derive; B applies the op, records the path as bad and
//!   learns no epoch from it (`PathError::KeyMismatch`, CGKA-11). The update was made with
//!   fresh randomness, so its bytes are stored, not re-derived.
//!
//! `cgka_error_vectors` checks every case; `generate_cgka_error_vectors` (ignored) rewrites
//! the file.

use std::path::PathBuf;

use keyhive_core::cgka::path::{self, PathError};
use keyhive_core::cgka::state::MAX_PENDING;
use keyhive_core::cgka::{
    Cgka, CgkaBody, CreateError, InitBinding, ReceiveError, Received, SignedCgkaOp, StaticAuthority,
};
use keyhive_core::crypto::hash::Hash;
use keyhive_core::crypto::prekey::PrekeySecret;
use keyhive_core::crypto::signing::{PublicKey, SigningKey};
use keyhive_core::encryption::{EncryptError, encrypt_change};
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

/// A replica of the scenario's document started from its init, for `owner` (`None`: an
/// observer holding no secrets).
fn started(owner: Option<&Device>, auth: &StaticAuthority) -> Cgka {
    let init: SignedCgkaOp = Signed::decode(&scenario()[0].1).expect("init");
    let binding = InitBinding {
        document: document(),
        creator: device(0).id(),
        init: init.hash(),
    };
    Cgka::from_init(&binding, init, owner, auth).expect("init")
}

/// An observer holding every op of the scenario.
fn observer(auth: &StaticAuthority) -> Cgka {
    let ops = scenario();
    let mut cgka = started(None, auth);
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

/// The `k`-th op the observer parks: B removes C, naming one predecessor nobody has,
/// `BLAKE3-of-signed(k as 8 bytes LE)` (`Hash::of_signed`).
fn parked(k: u64) -> Vec<u8> {
    signed(
        &device(1),
        vec![Hash::of_signed(&k.to_le_bytes())],
        CgkaBody::Remove {
            device: device(2).id(),
        },
    )
}

/// Fills the observer's pending set with `MAX_PENDING` parked ops, then receives op
/// `MAX_PENDING`: its refusal.
fn pending_full() -> String {
    let auth = authority();
    let mut cgka = observer(&auth);
    for k in 0..MAX_PENDING as u64 {
        let op = Signed::decode(&parked(k)).expect("decodes");
        let received = cgka.receive(op, &auth).expect("parks");
        assert!(!matches!(received, Received::Applied), "op {k} waits");
    }
    let op = Signed::decode(&parked(MAX_PENDING as u64)).expect("decodes");
    match cgka.receive(op, &auth) {
        Err(e) => format!("ReceiveError::{}", error_name(&e)),
        Ok(other) => format!("{other:?}"),
    }
}

/// Device `i`'s replica holding the scenario's ops up to and including `last`.
fn replica_of(i: u8, last: &str, auth: &StaticAuthority) -> Cgka {
    let ops = scenario();
    let mut cgka = started(Some(&device(i)), auth);
    for (label, bytes) in &ops[1..] {
        cgka.receive(Signed::decode(bytes).expect("op"), auth)
            .expect(label);
        if label == last {
            return cgka;
        }
    }
    panic!("no op {last:?}")
}

/// `local` cases: (name, device, view ends at, action, refusal).
fn local_cases() -> Vec<(&'static str, u8, &'static str, &'static str, String)> {
    let auth = authority();
    let last = "B updates (concurrent with A)";
    let mut a = replica_of(0, last, &auth);
    let stranger = a
        .remove(device(0).signing_key(), device(4).id(), &auth)
        .expect_err("E was never seated");
    let removed_again = a
        .remove(device(0).signing_key(), device(2).id(), &auth)
        .expect_err("B removed C");
    let b = replica_of(1, "B removes C (concurrent with A adds D)", &auth);
    let sealed = encrypt_change(&b, Hash::of_signed(b"change"), &[], b"text")
        .map(|_| ())
        .expect_err("a remove heads B's view");
    let create = |e: CreateError| match e {
        CreateError::NotSeated(_) => "CreateError::NotSeated".to_owned(),
        other => format!("{other:?}"),
    };
    let encrypt = |e: EncryptError| match e {
        EncryptError::MustUpdate => "EncryptError::MustUpdate".to_owned(),
        other => format!("{other:?}"),
    };
    vec![
        (
            "A removes E, never seated",
            0,
            last,
            "remove E",
            create(stranger),
        ),
        (
            "A removes C, removed by B",
            0,
            last,
            "remove C",
            create(removed_again),
        ),
        (
            "B seals a change while its own remove of C heads its view",
            1,
            "B removes C (concurrent with A adds D)",
            "encrypt a change",
            encrypt(sealed),
        ),
    ]
}

/// The `forged path` case's document: A creates it and adds B (both deterministic).
fn two_device_start() -> (Vec<u8>, Vec<u8>) {
    let (a, b) = (device(0), device(1));
    let doc = DocumentId(PublicKey([0x33; 32]));
    let init = signed(
        &a,
        vec![],
        CgkaBody::Init {
            document: doc,
            prekey: a.prekeys()[0].public(),
        },
    );
    let add = signed(
        &a,
        vec![Hash::of_signed(&init)],
        CgkaBody::Add {
            device: b.id(),
            prekey: b.prekeys()[0].public(),
        },
    );
    (init, add)
}

/// `owner`'s replica of the two-device document holding its init and add, and its binding.
fn two_device_replica(owner: &Device, auth: &StaticAuthority) -> (Cgka, InitBinding) {
    let (init, add) = two_device_start();
    let init: SignedCgkaOp = Signed::decode(&init).expect("init");
    let binding = InitBinding {
        document: DocumentId(PublicKey([0x33; 32])),
        creator: device(0).id(),
        init: init.hash(),
    };
    let mut cgka = Cgka::from_init(&binding, init, Some(owner), auth).expect("init");
    cgka.receive(Signed::decode(&add).expect("add"), auth)
        .expect("add");
    (cgka, binding)
}

/// Makes the forged update: A's real update with the root's public key replaced by another
/// (a node key nobody holds), signed again by A.
fn forged_update(auth: &StaticAuthority) -> Vec<u8> {
    let a = device(0);
    let (mut cgka, _) = two_device_replica(&a, auth);
    let update = cgka.update(a.signing_key(), auth).expect("update");
    let CgkaBody::Update(mut path) = update.body.clone() else {
        panic!("an update")
    };
    let root = path.nodes.last_mut().expect("a root");
    root.public = PrekeySecret::from_bytes([0x44; 32]).public();
    signed(&a, update.predecessors.clone(), CgkaBody::Update(path))
}

/// What B makes of the forged update: it must be applied, recorded as a bad path, give no
/// epoch, and reading its path with B's leaf key must fail with the named error.
fn forged_outcome(forged: &[u8]) -> String {
    let auth = two_device_authority();
    let b = device(1);
    let (mut cgka, binding) = two_device_replica(&b, &auth);
    let op: SignedCgkaOp = Signed::decode(forged).expect("decodes");
    let hash = op.hash();
    let CgkaBody::Update(path) = op.unverified_payload().body.clone() else {
        panic!("an update")
    };
    let received = cgka.receive(op, &auth).expect("structurally valid");
    assert!(matches!(received, Received::Applied));
    assert!(cgka.bad_paths().contains(&hash), "recorded as a bad path");
    assert!(cgka.epoch_secret(&hash).is_none(), "no epoch learned");
    let leaf = b.prekeys()[0].clone();
    let read = path::read(&binding.document, &path, |pk| {
        (*pk == leaf.public()).then(|| leaf.clone())
    });
    match read {
        Err(PathError::KeyMismatch(_)) => "PathError::KeyMismatch".into(),
        other => format!("{:?}", other.map(|l| l.is_some())),
    }
}

/// A and B are admin readers of the two-device document.
fn two_device_authority() -> StaticAuthority {
    let mut auth = StaticAuthority::new();
    for i in 0..2 {
        let d = device(i);
        auth.grant_admin(d.id(), d.prekeys()[0].public());
    }
    auth
}

#[test]
#[ignore = "rewrites specs/vectors/cgka-errors.json"]
fn generate_cgka_error_vectors() {
    let forged = forged_update(&two_device_authority());
    let (init, add) = two_device_start();
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
        "pending full": {
            "about": "the observer above receives ops k = 0..4095: B removes C with the one predecessor Hash::of_signed(k as 8 bytes LE), all parked (CGKA-21); op k = 4096 must be refused with `error`",
            "parked": MAX_PENDING,
            "first parked op": hex::encode(parked(0)),
            "op": hex::encode(parked(MAX_PENDING as u64)),
            "error": pending_full(),
        },
        "local": local_cases()
            .into_iter()
            .map(|(name, device, view, action, error)| json!({
                "name": name,
                "device": (["A", "B", "C", "D", "E"][device as usize]),
                "view ends at": view,
                "action": action,
                "error": error,
            }))
            .collect::<Vec<_>>(),
        "forged path": {
            "about": "document 33x32; A (seed 0xA0, prekey 0xB0) inits and adds B (seed 0xA1, prekey 0xB1); `update` is an update by A whose root public key was replaced by the public key of scalar 44x32 and signed again. B, holding init and add, must apply it, record it as a bad path, learn no epoch, and reading its path with B's prekey must fail with `error`",
            "init": hex::encode(&init),
            "add": hex::encode(&add),
            "update": hex::encode(&forged),
            "error": forged_outcome(&forged),
        },
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

    let full = &file["pending full"];
    assert_eq!(full["parked"], MAX_PENDING);
    assert_eq!(full["first parked op"], hex::encode(parked(0)));
    assert_eq!(full["op"], hex::encode(parked(MAX_PENDING as u64)));
    assert_eq!(full["error"], pending_full());
    assert_eq!(full["error"], "ReceiveError::PendingFull");

    let local = file["local"].as_array().expect("local");
    let expected = local_cases();
    assert_eq!(local.len(), expected.len());
    for (case, (name, _, view, action, error)) in local.iter().zip(expected) {
        assert_eq!(case["name"], name);
        assert_eq!(case["view ends at"], view);
        assert_eq!(case["action"], action);
        assert_eq!(case["error"], error, "{name}");
    }

    let forged = &file["forged path"];
    let (init, add) = two_device_start();
    assert_eq!(forged["init"], hex::encode(&init));
    assert_eq!(forged["add"], hex::encode(&add));
    let update = hex::decode(forged["update"].as_str().expect("hex")).expect("hex");
    assert_eq!(forged_outcome(&update), forged["error"]);
    assert_eq!(forged["error"], "PathError::KeyMismatch");
}
