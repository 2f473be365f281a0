//! Replay vectors for `specs/cgka.md` §4 (CGKA-12..15, CGKA-19): signed ops of a small
//! scenario with a concurrent add and remove and then concurrent updates, and what replaying
//! them gives: the replay order, the tree (every node's entries, conflict keys, the root's
//! resolution), the agreed epoch, and which epoch roots each device derives from the ops and
//! its own prekey alone. Stored in `specs/vectors/cgka.json` under [`KEY`].
//!
//! Update ops carry fresh random leaf secrets, so the op bytes were random when generated; the
//! check replays the stored bytes (in file order and in shuffled orders) and compares.
//! Regenerate with `cargo test -p keyhive-core cgka::replay_vectors::generate -- --ignored`.

use std::collections::BTreeSet;

use serde_json::{Value, json};
use zeroize::Zeroizing;

use super::tests::shuffle;
use super::{Cgka, CgkaBody, CgkaOp, CgkaSecrets, ReceiveError, Received, StaticAuthority};
use crate::crypto::hash::Hash;
use crate::crypto::prekey::PrekeySecret;
use crate::crypto::secret::SymmetricKey;
use crate::crypto::signing::{PublicKey, SigningKey};
use crate::identity::{Device, DocumentId};
use crate::signed::Signed;

/// The key of this scenario in `specs/vectors/cgka.json`.
pub(super) const KEY: &str = "CGKA-12 replay scenario";
const NAMES: [&str; 4] = ["A", "B", "C", "D"];
const DOCUMENT: [u8; 32] = [0x22; 32];

/// Device `i`: Ed25519 seed `0xA0 + i` repeated, one prekey with secret `0xB0 + i` repeated.
fn device(i: usize) -> Device {
    Device::from_parts(
        SigningKey::from_seed(&[0xA0 + i as u8; 32]),
        vec![PrekeySecret::from_bytes([0xB0 + i as u8; 32])],
        Some(NAMES[i].into()),
    )
}

/// Every device is an admin reader with its one prekey.
fn authority() -> StaticAuthority {
    let mut auth = StaticAuthority::new();
    for i in 0..4 {
        let d = device(i);
        auth.grant_admin(d.id(), d.prekeys()[0].public());
    }
    auth
}

fn document() -> DocumentId {
    DocumentId(PublicKey(DOCUMENT))
}

/// The secrets device `owner` created for its own updates among `ops` (the key store part no
/// replay can recover, CGKA-22): every path node secret and the epoch root of each.
fn own_secrets(file_secrets: &Value, owner: usize, ops: &[Vec<u8>]) -> CgkaSecrets {
    let present: BTreeSet<String> = ops.iter().map(|b| Hash::of_signed(b).to_string()).collect();
    let mut out = CgkaSecrets {
        node_keys: Vec::new(),
        epochs: Vec::new(),
    };
    for u in file_secrets[NAMES[owner]].as_array().expect("own updates") {
        let hash = u["update"].as_str().expect("hash");
        if !present.contains(hash) {
            continue;
        }
        let root: [u8; 32] = unhex(&u["epoch root"]);
        out.epochs
            .push((Hash(unhex(&u["update"])), SymmetricKey::from_bytes(root)));
        for k in u["node secrets"].as_array().expect("node secrets") {
            out.node_keys.push(Zeroizing::new(unhex(k)));
        }
    }
    out
}

fn unhex<const N: usize>(v: &Value) -> [u8; N] {
    hex::decode(v.as_str().expect("hex"))
        .expect("hex")
        .try_into()
        .expect("length")
}

/// A replica of device `owner` (or of no device) fed `ops` (the init first) in that order.
fn replay(ops: &[Vec<u8>], owner: Option<usize>) -> Cgka {
    let auth = authority();
    let owner = owner.map(device);
    let init = Signed::decode(&ops[0]).expect("init decodes");
    let binding = super::InitBinding {
        document: document(),
        creator: device(0).id(),
        init: init.hash(),
    };
    let mut cgka = Cgka::from_init(&binding, init, owner.as_ref(), &auth).expect("init");
    for bytes in &ops[1..] {
        let op = Signed::decode(bytes).expect("op decodes");
        match cgka.receive(op, &auth) {
            Ok(Received::Applied | Received::Pending(_) | Received::Duplicate) => {}
            Err(e) => panic!("op refused: {e:?}"),
        }
    }
    cgka
}

/// What replaying `ops` gives (independent of their order, CGKA-12); each device replays with
/// the secrets of its own updates (`secrets`, as in its key store).
fn outcome(ops: &[Vec<u8>], secrets: &Value) -> Value {
    let observer = replay(ops, None);
    let tree = observer.tree();
    let order: Vec<String> = observer
        .ops_in_order()
        .map(|o| o.hash().to_string())
        .collect();
    let nodes: Vec<Value> = (0..2 * tree.capacity() - 1)
        .map(|n| {
            let entries: Vec<Value> = tree
                .entries(n)
                .iter()
                .map(|e| json!([e.op.to_string(), hex::encode(e.public.0)]))
                .collect();
            let device = (n % 2 == 0)
                .then(|| tree.leaf(n / 2).map(|l| l.device.to_string()))
                .flatten();
            json!({ "node": n, "device": device, "entries": entries })
        })
        .collect();
    let conflicts: Vec<u32> = (0..2 * tree.capacity() - 1)
        .filter(|n| n % 2 == 1 && tree.entries(*n).len() > 1)
        .collect();
    let updates: Vec<CgkaOp> = observer
        .ops_in_order()
        .filter(|o| matches!(o.payload().body, CgkaBody::Update(_)))
        .cloned()
        .collect();
    let devices: Vec<Value> = (0..4)
        .map(|i| {
            let mut mine = replay(ops, Some(i));
            mine.import_secrets(&own_secrets(secrets, i, ops), &authority());
            let roots: Vec<Value> = updates
                .iter()
                .map(|u| {
                    json!([
                        u.hash().to_string(),
                        mine.epoch_secret(&u.hash())
                            .map(|k| hex::encode(k.expose()))
                    ])
                })
                .collect();
            json!({
                "device": NAMES[i],
                "current epoch": mine.current_epoch().map(|(h, _)| h.to_string()),
                "epoch roots (update, root or null)": roots,
            })
        })
        .collect();
    json!({
        "replay order": order,
        "capacity": tree.capacity(),
        "members (device, slot)": tree.members().iter().map(|(d, s)| json!([d.to_string(), s])).collect::<Vec<_>>(),
        "nodes": nodes,
        "conflict nodes": conflicts,
        "root resolution": tree.resolution(tree.root()).iter().map(|k| hex::encode(k.0)).collect::<Vec<_>>(),
        "agreed epoch (the root's only entry)": match tree.entries(tree.root()) {
            [only] => Some(only.op.to_string()),
            _ => None,
        },
        "devices": devices,
    })
}

type Ops = Vec<(&'static str, u8, Vec<u8>)>;

/// What a live replica knows: its current epoch and every epoch root it holds.
fn knowledge(cgka: &Cgka, ops: &Ops) -> Value {
    let mut known: Vec<String> = ops
        .iter()
        .map(|(_, _, b)| Hash::of_signed(b))
        .filter(|h| cgka.epoch_secret(h).is_some())
        .map(|h| h.to_string())
        .collect();
    // Compared as a set: concurrent updates replay in hash order, not creation order.
    known.sort_unstable();
    json!([cgka.current_epoch().map(|(h, _)| h.to_string()), known])
}

/// Runs the scenario on four live replicas. Returns the ops as (label, phase, bytes), what each
/// live replica knew after each phase, and each device's own-update secrets.
fn scenario() -> (Ops, Vec<Value>, Value) {
    let auth = authority();
    let devices: Vec<Device> = (0..4).map(device).collect();
    let (creator, init) = Cgka::create(document(), &devices[0]).expect("create");
    let binding = creator.binding();
    let mut rs = vec![creator];
    for d in &devices[1..] {
        let signed = Signed::decode(init.as_bytes()).expect("init");
        rs.push(Cgka::from_init(&binding, signed, Some(d), &auth).expect("from init"));
    }
    let mut ops: Ops = vec![("init by A", 1, init.as_bytes().to_vec())];
    let mut live = Vec::new();
    let key = |i: usize| devices[i].signing_key().clone();
    let sync = |rs: &mut Vec<Cgka>, ops: &Ops, live: &mut Vec<Value>| {
        for r in rs.iter_mut() {
            for (_, _, bytes) in ops {
                match r.receive(Signed::decode(bytes).expect("op"), &auth) {
                    Ok(_) | Err(ReceiveError::ForeignInit) => {}
                    Err(e) => panic!("{e:?}"),
                }
            }
        }
        live.push(json!(
            rs.iter().map(|r| knowledge(r, ops)).collect::<Vec<_>>()
        ));
    };
    let push = |ops: &mut Ops, label, phase, op: CgkaOp| {
        ops.push((label, phase, op.as_bytes().to_vec()));
    };
    // Phase 1: A seats B and C and updates: one agreed epoch.
    let (b, c, d) = (devices[1].id(), devices[2].id(), devices[3].id());
    let pk = |i: usize| devices[i].prekeys()[0].public();
    let op = rs[0].add(&key(0), b, pk(1), &auth).expect("add B");
    push(&mut ops, "A adds B", 1, op);
    let op = rs[0].add(&key(0), c, pk(2), &auth).expect("add C");
    push(&mut ops, "A adds C", 1, op);
    let op = rs[0].update(&key(0), &auth).expect("update");
    push(&mut ops, "A updates (epoch 1)", 1, op);
    sync(&mut rs, &ops, &mut live);
    // Phase 2, concurrently: A adds D and updates; B removes C and updates.
    let op = rs[0].add(&key(0), d, pk(3), &auth).expect("add D");
    push(&mut ops, "A adds D", 2, op);
    let op = rs[0].update(&key(0), &auth).expect("update");
    push(&mut ops, "A updates after adding D", 2, op);
    let op = rs[1].remove(&key(1), c, &auth).expect("remove C");
    push(&mut ops, "B removes C (concurrent with A adds D)", 2, op);
    let op = rs[1].update(&key(1), &auth).expect("update");
    push(&mut ops, "B updates after removing C", 2, op);
    sync(&mut rs, &ops, &mut live);
    // Phase 3: D, added concurrently with the removal, re-keys: an agreed epoch C cannot read.
    let op = rs[3].update(&key(3), &auth).expect("update");
    push(&mut ops, "D updates (epoch 2)", 3, op);
    sync(&mut rs, &ops, &mut live);
    // Phase 4: A and B update concurrently: conflict keys.
    let op = rs[0].update(&key(0), &auth).expect("update");
    push(&mut ops, "A updates (concurrent with B)", 4, op);
    let op = rs[1].update(&key(1), &auth).expect("update");
    push(&mut ops, "B updates (concurrent with A)", 4, op);
    sync(&mut rs, &ops, &mut live);
    let mut secrets = serde_json::Map::new();
    for (i, r) in rs.iter().enumerate() {
        let held = r.export_secrets();
        let by_public: Vec<([u8; 32], [u8; 32])> = held
            .node_keys
            .iter()
            .map(|k| (PrekeySecret::from_bytes(**k).public().0, **k))
            .collect();
        let own: Vec<Value> = ops
            .iter()
            .filter_map(|(_, _, bytes)| {
                let op: CgkaOp = Signed::decode(bytes).expect("op").verify().expect("verifies");
                let CgkaBody::Update(path) = &op.payload().body else {
                    return None;
                };
                (op.payload().issuer == devices[i].id().0).then(|| {
                    let nodes: Vec<String> = path
                        .nodes
                        .iter()
                        .map(|n| {
                            let (_, sk) = by_public
                                .iter()
                                .find(|(p, _)| *p == n.public.0)
                                .expect("the issuer holds its path secrets");
                            hex::encode(sk)
                        })
                        .collect();
                    json!({
                        "update": op.hash().to_string(),
                        "epoch root": hex::encode(r.epoch_secret(&op.hash()).expect("own root").expose()),
                        "node secrets": nodes,
                    })
                })
            })
            .collect();
        secrets.insert(NAMES[i].into(), json!(own));
    }
    (ops, live, Value::Object(secrets))
}

fn value() -> Value {
    let (ops, live, secrets) = scenario();
    let phases: Vec<Value> = (1..=4u8)
        .map(|p| {
            let upto: Vec<Vec<u8>> = ops
                .iter()
                .filter(|(_, q, _)| *q <= p)
                .map(|(_, _, b)| b.clone())
                .collect();
            let out = outcome(&upto, &secrets);
            // A replica rebuilt from the ops and its key store knows what the live one knew.
            for (i, d) in out["devices"]
                .as_array()
                .expect("devices")
                .iter()
                .enumerate()
            {
                let mut known: Vec<String> = d["epoch roots (update, root or null)"]
                    .as_array()
                    .expect("roots")
                    .iter()
                    .filter(|r| !r[1].is_null())
                    .filter_map(|r| r[0].as_str().map(str::to_owned))
                    .collect();
                known.sort_unstable();
                assert_eq!(
                    json!([d["current epoch"], known]),
                    live[p as usize - 1][i],
                    "phase {p}, device {i}"
                );
            }
            json!({ "after phase": p, "outcome": out })
        })
        .collect();
    json!({
        "about": "specs/cgka.md §4.1. Devices A..D: Ed25519 seed (0xA0 + i)×32, one prekey with secret (0xB0 + i)×32; all four are admin readers (CGKA-16/17). Document 22×32; its init is the one by A. `ops` are signed Op<CgkaBody> envelopes in creation order; each phase's outcome is what replaying every op of that phase and earlier gives, in any order (init first). Each device replays with `own update secrets` (what its key store holds for the updates it issued: no replay can recover them, CGKA-22) and derives everything else from the wraps.",
        "document": hex::encode(DOCUMENT),
        "devices": (0..4).map(|i| json!({
            "name": NAMES[i],
            "id": device(i).id().to_string(),
            "prekey": hex::encode(device(i).prekeys()[0].public().0),
        })).collect::<Vec<_>>(),
        "ops": ops.iter().map(|(label, phase, bytes)| json!({
            "label": label,
            "phase": phase,
            "hash": Hash::of_signed(bytes).to_string(),
            "envelope": hex::encode(bytes),
        })).collect::<Vec<_>>(),
        "own update secrets": secrets,
        "phases": phases,
    })
}

#[test]
#[ignore = "rewrites the replay scenario of specs/vectors/cgka.json"]
fn generate() {
    let mut file = crate::spec_vectors::read("cgka.json");
    file[KEY] = value();
    crate::spec_vectors::write("cgka.json", &file);
}

/// CGKA-12..15, CGKA-19: replaying the stored ops, in file order and in three shuffled orders
/// (init first), gives the stored outcome of every phase.
#[test]
fn replay_matches_spec_file() {
    let file = crate::spec_vectors::read("cgka.json");
    let v = &file[KEY];
    let ops: Vec<(u64, Vec<u8>)> = v["ops"]
        .as_array()
        .expect("ops")
        .iter()
        .map(|o| {
            let bytes = hex::decode(o["envelope"].as_str().expect("hex")).expect("hex");
            (o["phase"].as_u64().expect("phase"), bytes)
        })
        .collect();
    for phase in v["phases"].as_array().expect("phases") {
        let p = phase["after phase"].as_u64().expect("phase");
        let upto: Vec<Vec<u8>> = ops
            .iter()
            .filter(|(q, _)| *q <= p)
            .map(|(_, b)| b.clone())
            .collect();
        let secrets = &v["own update secrets"];
        assert_eq!(
            outcome(&upto, secrets),
            phase["outcome"],
            "phase {p}, file order"
        );
        for seed in [1u64, 7, 42] {
            let mut shuffled = upto[1..].to_vec();
            shuffle(&mut shuffled, seed);
            shuffled.insert(0, upto[0].clone());
            assert_eq!(
                outcome(&shuffled, secrets),
                phase["outcome"],
                "phase {p}, seed {seed}"
            );
        }
    }
}
