//! Known-answer vectors for `specs/capabilities.md` (`specs/vectors/capabilities.json`).
//!
//! Each case is a set of signed op envelopes (hex, in an order where parents come first) with
//! the expected verdict of every op (`valid`, or the refusing rule and reason), the effective
//! members and levels of every subject, and `explain` of every device on every subject.
//! `capability_vectors` applies each case in the given order, reversed and shuffled, and
//! checks every answer; `generate_capability_vectors` (ignored) adds the cases the file lacks
//! (delete a case to regenerate it).

mod answers;
use answers::{Queries, answers};
mod refusals;
mod scenarios;
use refusals::{chain_and_invitation_refusals, proof_too_long, static_refusals, unknown_subject};
use scenarios::{
    cascade, conflicted_genesis_and_out_of_scope_parent, cycle_and_folder_witness, grant_that_ends,
    invitation_limits, invitation_revoked, mutual_revocation, root_form, seniority_and_back_dating,
};

use std::collections::BTreeMap;
use std::path::PathBuf;

use keyhive_core::Hash;
use keyhive_core::capability::{
    Access, Action, AgentId, AnyVerified, AuthBody, Checker, ContentBody, Explanation,
    InviteSecret, MAX_CHAIN, PeerTag, Proof, ProofOfSecret, Validity, build_redemption,
};
use keyhive_core::crypto::derive::INVITATION_PROOF;
use keyhive_core::crypto::prekey::PrekeySecret;
use keyhive_core::crypto::signing::{PublicKey, SigningKey};
use keyhive_core::identity::{Device, DocumentId, Genesis, GroupId, SubjectKind};
use keyhive_core::signed::{Op, Verified};
use serde_json::{Value, json};

fn vectors_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../specs/vectors/capabilities.json")
}

fn device(seed: u8, name: &str) -> Device {
    let prekey = PrekeySecret::from_bytes([seed.wrapping_add(0x80); 32]);
    Device::from_parts(
        SigningKey::from_seed(&[seed; 32]),
        vec![prekey],
        Some(name.into()),
    )
}

fn ind(d: &Device) -> AgentId {
    AgentId::Individual(d.id())
}

/// A replica's ops, applied into the shared case log as they are made.
struct Case {
    log: Vec<AnyVerified>,
}

impl Case {
    fn new() -> Case {
        Case { log: Vec::new() }
    }

    /// Copies every op `c` holds that the log lacks, in `c`'s apply order.
    fn record(&mut self, c: &Checker) {
        for op in c.ops() {
            if !self.log.iter().any(|o| o.hash() == op.hash()) {
                self.log.push(op.clone());
            }
        }
    }
}

fn sync(from: &Checker, to: &mut Checker) {
    for op in from.ops() {
        to.ingest(PeerTag::LOCAL, op.as_bytes())
            .expect("a held op ingests");
    }
}

/// A case: its ops in apply order and the devices whose `explain` answers are pinned.
type Scenario = fn() -> (Vec<AnyVerified>, Vec<Device>);

fn build() -> Value {
    let scenarios: Vec<(&str, &str, Scenario, Queries)> = vec![
        (
            "cascade",
            "CAP-13: revoking an admin removes whom it added; CAP-11/22: earlier edits stay valid",
            cascade,
            Queries::default(),
        ),
        (
            "mutual_revocation",
            "CAP-12: two admins of equal depth revoke each other concurrently; the smaller hash wins",
            mutual_revocation,
            Queries::default(),
        ),
        (
            "seniority_and_back_dating",
            "CAP-9: a junior cannot revoke a senior; CAP-11: a back-dated edit by a revoked writer is excluded",
            seniority_and_back_dating,
            Queries::default(),
        ),
        (
            "cycle_and_folder_witness",
            "CAP-14: groups in a cycle; CAP-22: a folder revocation witnesses earlier edits in two documents",
            cycle_and_folder_witness,
            Queries::default(),
        ),
        (
            "conflicted_genesis_and_out_of_scope_parent",
            "CAP-5: two geneses for one id; CAP-20: an edit naming another document's op as parent",
            conflicted_genesis_and_out_of_scope_parent,
            Queries::default(),
        ),
        (
            "invitation_limits",
            "INV-6: two concurrent redemptions of a single-use invitation, one used up; INV-5: a redemption after expiry; INV-4: a proof of secret copied by another device",
            invitation_limits,
            Queries::default(),
        ),
        (
            "invitation_revoked",
            "INV-7: revoking an invitation removes whom it admitted and excludes a concurrent redemption",
            invitation_revoked,
            Queries::default(),
        ),
        (
            "static_refusals",
            "CAP-3..CAP-10, INV-3: hand-signed ops the builders refuse to make, each refused by the rule naming its defect",
            static_refusals,
            Queries::default(),
        ),
        (
            "grant_that_ends",
            "INV-11: a grant that ends grants like a delegation until the revocation made after its end",
            grant_that_ends,
            Queries::default(),
        ),
        (
            "chain_and_invitation_refusals",
            "CAP-6: chains that do not end at the issuer (BrokenMembership); CAP-8/CAP-9: a writer granting admin and revoking (InsufficientAccess); INV-3: redeeming an invalid invitation; INV-4: the invitation key redeeming; explain: CAP-14 Insufficient above pull, CAP-5 UnknownSubject",
            chain_and_invitation_refusals,
            Queries {
                levels: vec![Access::Write, Access::Admin],
                unknown: vec![unknown_subject()],
            },
        ),
        (
            "root_form",
            "CAP-24: the creator's grants and revocation in the root form (keyhive/auth version 3, issuer implied by the genesis) beside a version-2 grant, an edit through a team and the revocation's cascade",
            root_form,
            Queries::default(),
        ),
        (
            "proof_too_long",
            "CAP-6: a delegation and an edit whose chains hold MAX_CHAIN + 1 (257) delegations (ProofTooLong)",
            proof_too_long,
            Queries::default(),
        ),
    ];
    // Genesis keys and invitation secrets are random: a case already in the file is kept as
    // it is (its answers stay pinned); only cases the file lacks are generated.
    let existing: Vec<Value> = std::fs::read_to_string(vectors_path())
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .and_then(|v| v["cases"].as_array().cloned())
        .unwrap_or_default();
    let cases: Vec<Value> = scenarios
        .into_iter()
        .map(|(name, about, make, queries)| {
            if let Some(kept) = existing.iter().find(|c| c["name"] == name) {
                return kept.clone();
            }
            let (ops, devices) = make();
            let mut c = Checker::default();
            for op in &ops {
                c.ingest(PeerTag::LOCAL, op.as_bytes()).expect("ingest");
            }
            let hashes: Vec<Hash> = ops.iter().map(AnyVerified::hash).collect();
            let keys: Vec<PublicKey> = devices.iter().map(|d| d.id().0).collect();
            let mut case = json!({
                "name": name,
                "about": about,
                "devices": keys.iter().map(PublicKey::to_string).collect::<Vec<_>>(),
            });
            if let Value::Object(fields) = queries.to_case_fields() {
                for (k, v) in fields {
                    case[k] = v;
                }
            }
            case["ops"] = json!(
                ops.iter()
                    .map(|o| hex::encode(o.as_bytes()))
                    .collect::<Vec<_>>()
            );
            case["expect"] = answers(&c, &hashes, &keys, &queries);
            case
        })
        .collect();
    json!({
        "about": "specs/capabilities.md known answers: apply `ops` (hex envelopes) in any order; every replica must give `expect`. Verdicts are `valid` or `RULE:Reason`; `explain_LEVEL` (pull, and each of the case's optional `explain_levels`) is `explain(device, LEVEL, subject)` keyed by `SUBJECT AGENT`, for every subject held and each of the case's optional `unknown_subjects`.",
        "cases": cases,
    })
}

#[test]
#[ignore = "adds missing cases to specs/vectors/capabilities.json"]
fn generate_capability_vectors() {
    let text = serde_json::to_string_pretty(&build()).expect("json");
    std::fs::write(vectors_path(), text + "\n").expect("write vectors");
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[test]
fn capability_vectors() {
    let text = std::fs::read_to_string(vectors_path()).expect("vectors file");
    let file: Value = serde_json::from_str(&text).expect("json");
    let cases = file["cases"].as_array().expect("cases");
    assert!(cases.len() >= 5);
    for case in cases {
        let name = case["name"].as_str().expect("name");
        let ops: Vec<Vec<u8>> = case["ops"]
            .as_array()
            .expect("ops")
            .iter()
            .map(|h| hex::decode(h.as_str().expect("hex")).expect("hex"))
            .collect();
        let devices: Vec<PublicKey> = case["devices"]
            .as_array()
            .expect("devices")
            .iter()
            .map(|d| d.as_str().expect("key").parse().expect("key"))
            .collect();
        let queries = Queries::of_case(case);
        let mut orders = vec![ops.clone(), ops.iter().rev().cloned().collect()];
        let mut seed = 7u64;
        for _ in 0..4 {
            let mut shuffled = ops.clone();
            for i in (1..shuffled.len()).rev() {
                let j = (splitmix(&mut seed) % (i as u64 + 1)) as usize;
                shuffled.swap(i, j);
            }
            orders.push(shuffled);
        }
        for order in orders {
            let mut c = Checker::default();
            for bytes in &order {
                c.ingest(PeerTag::LOCAL, bytes).expect("ingest");
            }
            assert_eq!(c.pending_len(), 0, "{name}: ops left pending");
            let hashes: Vec<Hash> = ops
                .iter()
                .map(|b| {
                    keyhive_core::capability::AnySigned::decode(b)
                        .expect("op")
                        .hash()
                })
                .collect();
            assert_eq!(
                answers(&c, &hashes, &devices, &queries),
                case["expect"],
                "{name}: answers differ"
            );
        }
    }
}
