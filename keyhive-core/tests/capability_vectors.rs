//! Known-answer vectors for `specs/capabilities.md` (`specs/vectors/capabilities.json`).
//!
//! Each case is a set of signed op envelopes (hex, in an order where parents come first) with
//! the expected verdict of every op (`valid`, or the refusing rule and reason), the effective
//! members and levels of every subject, and `explain` of every device on every subject.
//! `capability_vectors` applies each case in the given order, reversed and shuffled, and
//! checks every answer; `generate_capability_vectors` (ignored) adds the cases the file lacks
//! (delete a case to regenerate it).

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

fn cascade() -> (Vec<AnyVerified>, Vec<Device>) {
    let (alice, bob, carol) = (device(1, "alice"), device(2, "bob"), device(3, "carol"));
    let mut c = Checker::default();
    let doc = c.create_document(&alice).expect("doc").genesis.issuer;
    let ab = c
        .delegate(&alice, &doc, ind(&bob), Access::Admin)
        .expect("grant");
    c.delegate(&bob, &doc, ind(&carol), Access::Write)
        .expect("grant");
    c.write(&carol, DocumentId(doc), b"before").expect("write");
    c.revoke(&alice, &doc, &ab.hash()).expect("revoke");
    let mut case = Case::new();
    case.record(&c);
    (case.log, vec![alice, bob, carol])
}

fn mutual_revocation() -> (Vec<AnyVerified>, Vec<Device>) {
    let (alice, bob, carol) = (device(1, "alice"), device(2, "bob"), device(3, "carol"));
    let mut a = Checker::default();
    let doc = a.create_document(&alice).expect("doc").genesis.issuer;
    let ab = a
        .delegate(&alice, &doc, ind(&bob), Access::Admin)
        .expect("grant");
    let ac = a
        .delegate(&alice, &doc, ind(&carol), Access::Admin)
        .expect("grant");
    let mut b = Checker::default();
    sync(&a, &mut b);
    a.revoke(&bob, &doc, &ac.hash()).expect("bob revokes carol");
    b.revoke(&carol, &doc, &ab.hash())
        .expect("carol revokes bob");
    let mut case = Case::new();
    case.record(&a);
    case.record(&b);
    (case.log, vec![alice, bob, carol])
}

fn seniority_and_back_dating() -> (Vec<AnyVerified>, Vec<Device>) {
    let (alice, bob, dave) = (device(1, "alice"), device(2, "bob"), device(4, "dave"));
    let mut c = Checker::default();
    let doc = c.create_document(&alice).expect("doc").genesis.issuer;
    let ab = c
        .delegate(&alice, &doc, ind(&bob), Access::Admin)
        .expect("grant");
    let bd = c
        .delegate(&bob, &doc, ind(&dave), Access::Admin)
        .expect("grant");
    // Dave (depth 2) tries to revoke Bob (depth 1): CAP-9 seniority.
    let body = AuthBody {
        subject: doc,
        action: Action::Revoke {
            delegation: ab.hash(),
            proof: Proof::Via {
                delegation: bd.hash(),
                membership: vec![],
            },
        },
        content_heads: vec![],
    };
    let mut preds = c.auth_heads(&doc);
    preds.push(ab.hash());
    preds.sort_unstable();
    preds.dedup();
    let junior =
        Verified::sign(Op::new(dave.id().0, preds, body), dave.signing_key()).expect("sign");
    c.apply_verified(junior).expect("apply");
    // Dave is revoked, then claims the auth state from before his revocation.
    let mut heads_before = c.auth_heads(&doc);
    heads_before.push(bd.hash());
    heads_before.sort_unstable();
    heads_before.dedup();
    c.revoke(&alice, &doc, &bd.hash()).expect("revoke");
    let body = ContentBody {
        document: DocumentId(doc),
        auth_heads: heads_before,
        proof: Proof::Via {
            delegation: bd.hash(),
            membership: vec![],
        },
        payload_hash: Hash::of_content(b"late"),
        payload_len: 4,
    };
    let late =
        Verified::sign(Op::new(dave.id().0, vec![], body), dave.signing_key()).expect("sign");
    c.apply_verified(late).expect("apply");
    let mut case = Case::new();
    case.record(&c);
    (case.log, vec![alice, bob, dave])
}

fn cycle_and_folder_witness() -> (Vec<AnyVerified>, Vec<Device>) {
    let (alice, bob, xavier) = (device(1, "alice"), device(2, "bob"), device(5, "xavier"));
    let mut c = Checker::default();
    let folder = c.create_group(&alice).expect("group").issuer;
    let team = c.create_group(&alice).expect("group").issuer;
    // A cycle: the team is in the folder and the folder in the team.
    c.delegate(
        &alice,
        &folder,
        AgentId::Group(GroupId(team)),
        Access::Write,
    )
    .expect("grant");
    c.delegate(&alice, &team, AgentId::Group(GroupId(folder)), Access::Read)
        .expect("grant");
    c.delegate(&alice, &team, ind(&bob), Access::Write)
        .expect("grant");
    let one = c.create_document(&alice).expect("doc").genesis.issuer;
    let two = c.create_document(&alice).expect("doc").genesis.issuer;
    for doc in [one, two] {
        c.delegate(&alice, &doc, AgentId::Group(GroupId(folder)), Access::Write)
            .expect("grant");
    }
    let fx = c
        .delegate(&alice, &folder, ind(&xavier), Access::Write)
        .expect("grant");
    c.write(&xavier, DocumentId(one), b"1").expect("write");
    c.write(&xavier, DocumentId(two), b"2").expect("write");
    c.write(&bob, DocumentId(two), b"bob").expect("write");
    // CAP-22: the revocation witnesses Xavier's earlier edits in both documents.
    c.revoke(&alice, &folder, &fx.hash()).expect("revoke");
    let mut case = Case::new();
    case.record(&c);
    (case.log, vec![alice, bob, xavier])
}

fn conflicted_genesis_and_out_of_scope_parent() -> (Vec<AnyVerified>, Vec<Device>) {
    let (alice, mallory) = (device(1, "alice"), device(6, "mallory"));
    let mut c = Checker::default();
    let kept = SigningKey::from_seed(&[0x77; 32]);
    for creator in [&alice, &mallory] {
        let genesis = Verified::sign(
            Op::new(
                kept.public_key(),
                vec![],
                Genesis {
                    kind: SubjectKind::Group,
                    creator: creator.id(),
                    key_agreement: None,
                },
            ),
            &kept,
        )
        .expect("sign");
        c.apply_verified(genesis).expect("apply");
    }
    let shared = c.create_document(&alice).expect("doc").genesis.issuer;
    let diary = c.create_document(&alice).expect("doc").genesis.issuer;
    // CAP-20: an edit of `shared` naming the diary's genesis as an auth head.
    let mut auth_heads = c.auth_heads(&shared);
    auth_heads.extend(c.auth_heads(&diary));
    auth_heads.sort_unstable();
    let body = ContentBody {
        document: DocumentId(shared),
        auth_heads,
        proof: Proof::Root,
        payload_hash: Hash::of_content(b"x"),
        payload_len: 1,
    };
    let edit =
        Verified::sign(Op::new(alice.id().0, vec![], body), alice.signing_key()).expect("sign");
    c.apply_verified(edit).expect("apply");
    let mut case = Case::new();
    case.record(&c);
    (case.log, vec![alice, mallory])
}

/// INV-4..INV-6: concurrent redemptions of a single-use invitation (one is used up), a
/// redemption after expiry, and a proof of secret copied by another device.
fn invitation_limits() -> (Vec<AnyVerified>, Vec<Device>) {
    let (alice, bob, carol) = (device(1, "alice"), device(2, "bob"), device(3, "carol"));
    let (dave, eve) = (device(4, "dave"), device(5, "eve"));
    let mut c = Checker::default();
    let doc = c.create_document(&alice).expect("doc").genesis.issuer;
    let once = c
        .invite(&alice, &doc, Access::Write, None, 1)
        .expect("invite");
    let timed = c
        .invite(&alice, &doc, Access::Read, Some(100), 2)
        .expect("invite");
    let rb = c
        .redeem(&bob, &once.op.hash(), &once.secret, 50)
        .expect("redeem");
    c.redeem(&carol, &once.op.hash(), &once.secret, 50)
        .expect("redeem");
    c.redeem(&dave, &timed.op.hash(), &timed.secret, 200)
        .expect("redeem");
    let Action::Redeem {
        proof_of_secret, ..
    } = rb.body.action
    else {
        unreachable!("a redemption")
    };
    let body = AuthBody {
        subject: doc,
        action: Action::Redeem {
            invitation: once.op.hash(),
            redeemed_at: 50,
            proof_of_secret,
        },
        content_heads: vec![],
    };
    let stolen = Verified::sign(
        Op::new(eve.id().0, vec![once.op.hash()], body),
        eve.signing_key(),
    )
    .expect("sign");
    c.apply_verified(stolen).expect("apply");
    let mut case = Case::new();
    case.record(&c);
    (case.log, vec![alice, bob, carol, dave, eve])
}

/// INV-7: revoking an invitation removes whom it admitted (CAP-13) and excludes a redemption
/// concurrent with the revocation (CAP-11).
fn invitation_revoked() -> (Vec<AnyVerified>, Vec<Device>) {
    let (alice, bob, carol) = (device(1, "alice"), device(2, "bob"), device(3, "carol"));
    let mut a = Checker::default();
    let doc = a.create_document(&alice).expect("doc").genesis.issuer;
    let inv = a
        .invite(&alice, &doc, Access::Read, None, 3)
        .expect("invite");
    a.redeem(&bob, &inv.op.hash(), &inv.secret, 1)
        .expect("redeem");
    let mut b = Checker::default();
    sync(&a, &mut b);
    a.revoke(&alice, &doc, &inv.op.hash()).expect("revoke");
    b.redeem(&carol, &inv.op.hash(), &inv.secret, 2)
        .expect("redeem");
    let mut case = Case::new();
    case.record(&a);
    case.record(&b);
    (case.log, vec![alice, bob, carol])
}

/// INV-11: a grant that ends, then revoked after its end (the causal end), and one still
/// running.
fn grant_that_ends() -> (Vec<AnyVerified>, Vec<Device>) {
    let (alice, bob, carol) = (device(1, "alice"), device(2, "bob"), device(3, "carol"));
    let mut c = Checker::default();
    let doc = c.create_document(&alice).expect("doc").genesis.issuer;
    let ended = c
        .delegate_until(&alice, &doc, ind(&bob), Access::Write, 100)
        .expect("grant");
    c.delegate_until(&alice, &doc, ind(&carol), Access::Read, u64::MAX)
        .expect("grant");
    c.revoke(&alice, &doc, &ended.hash()).expect("revoke");
    let mut case = Case::new();
    case.record(&c);
    (case.log, vec![alice, bob, carol])
}

fn verdict(v: &Validity) -> String {
    match v {
        Validity::Valid => "valid".into(),
        Validity::Invalid(r) => {
            let reason = format!("{:?}", r.reason);
            let name: String = reason
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect();
            format!("{}:{name}", r.rule)
        }
    }
}

fn explained(e: &Explanation) -> String {
    match e {
        Explanation::Granted { level, .. } => format!("granted:{level}"),
        Explanation::Refused(r) => format!("refused:{}", verdict(&Validity::Invalid(r.clone()))),
    }
}

/// What a case asks `explain` beyond `pull` on the subjects held: further levels
/// (`explain_levels`, e.g. `["admin"]`, answered as `explain_admin`) and subject keys no op
/// creates (`unknown_subjects`, asked at every level). Both absent in the older cases.
#[derive(Default)]
struct Queries {
    levels: Vec<Access>,
    unknown: Vec<PublicKey>,
}

impl Queries {
    fn of_case(case: &Value) -> Queries {
        let strings = |key: &str| -> Vec<String> {
            case[key]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|v| v.as_str().expect("string").to_owned())
                        .collect()
                })
                .unwrap_or_default()
        };
        Queries {
            levels: strings("explain_levels")
                .iter()
                .map(|l| l.parse().expect("level"))
                .collect(),
            unknown: strings("unknown_subjects")
                .iter()
                .map(|k| k.parse().expect("key"))
                .collect(),
        }
    }

    /// The optional fields of a case that asks these queries.
    fn to_case_fields(&self) -> Value {
        let mut fields = serde_json::Map::new();
        if !self.levels.is_empty() {
            fields.insert(
                "explain_levels".into(),
                json!(
                    self.levels
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                ),
            );
        }
        if !self.unknown.is_empty() {
            fields.insert(
                "unknown_subjects".into(),
                json!(
                    self.unknown
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                ),
            );
        }
        Value::Object(fields)
    }
}

/// Every answer the vectors pin, for a checker holding a case's ops.
fn answers(c: &Checker, ops: &[Hash], devices: &[PublicKey], queries: &Queries) -> Value {
    let validity: BTreeMap<String, String> = ops
        .iter()
        .map(|h| {
            let v = c.op_validity(h).expect("every op applied");
            (h.to_string(), verdict(&v))
        })
        .collect();
    let mut subjects: Vec<PublicKey> = c.subjects().copied().collect();
    subjects.sort();
    let mut members = BTreeMap::new();
    for s in &subjects {
        let m: BTreeMap<String, String> = c
            .members(s)
            .iter()
            .map(|(a, l)| (a.to_string(), l.to_string()))
            .collect();
        members.insert(s.to_string(), m);
    }
    subjects.extend(queries.unknown.iter().copied());
    let mut out = json!({ "validity": validity, "members": members });
    for level in std::iter::once(Access::Pull).chain(queries.levels.iter().copied()) {
        let mut explain = BTreeMap::new();
        for s in &subjects {
            for d in devices {
                let agent = AgentId::Individual(keyhive_core::identity::IndividualId(*d));
                explain.insert(
                    format!("{s} {agent}"),
                    explained(&c.explain(agent, level, s)),
                );
            }
        }
        out[format!("explain_{level}")] = json!(explain);
    }
    out
}

/// Signs `body` by `by` with `parents` (sorted, as CAP-2 requires) and applies it, whatever
/// its verdict: a statically invalid op is still held (CAP-10). Returns its hash.
fn hand_signed<B: keyhive_core::signed::OpBody>(
    c: &mut Checker,
    by: &Device,
    mut parents: Vec<Hash>,
    body: B,
) -> Hash
where
    Verified<Op<B>>: Into<AnyVerified>,
{
    parents.sort_unstable();
    parents.dedup();
    let op = Verified::sign(Op::new(by.id().0, parents, body), by.signing_key()).expect("sign");
    let hash = op.hash();
    c.apply_verified(op).expect("apply");
    hash
}

/// CAP-3..CAP-10, INV-3/4: ops the builders refuse to make, signed by hand, each refused by
/// the rule that names its defect.
fn static_refusals() -> (Vec<AnyVerified>, Vec<Device>) {
    let (alice, bob, mallory) = (device(1, "alice"), device(2, "bob"), device(6, "mallory"));
    let mut c = Checker::default();
    let doc_genesis = c.create_document(&alice).expect("doc").genesis.hash();
    let doc = c.op(&doc_genesis).expect("held").subject();
    let group_genesis = c.create_group(&alice).expect("group").hash();
    let group = c.op(&group_genesis).expect("held").subject();
    let read = c
        .delegate(&alice, &doc, ind(&bob), Access::Read)
        .expect("grant")
        .hash();
    let on_group = c
        .delegate(&alice, &group, ind(&bob), Access::Write)
        .expect("grant")
        .hash();
    let content = |document: PublicKey, proof: Proof, mut auth_heads: Vec<Hash>| {
        auth_heads.sort_unstable();
        ContentBody {
            document: DocumentId(document),
            auth_heads,
            proof,
            payload_hash: Hash::of_content(b"x"),
            payload_len: 1,
        }
    };
    let via = |delegation: Hash| Proof::Via {
        delegation,
        membership: vec![],
    };
    // NotADocument: an edit of a group.
    hand_signed(
        &mut c,
        &alice,
        vec![group_genesis],
        content(group, Proof::Root, vec![group_genesis]),
    );
    // InsufficientAccess: a reader writes.
    hand_signed(
        &mut c,
        &bob,
        vec![doc_genesis, read],
        content(doc, via(read), vec![doc_genesis, read]),
    );
    // NotRoot: a root proof by someone who did not create the document.
    hand_signed(
        &mut c,
        &mallory,
        vec![doc_genesis],
        content(doc, Proof::Root, vec![doc_genesis]),
    );
    // ProofNotInPast: the named delegation is not a direct parent.
    hand_signed(
        &mut c,
        &bob,
        vec![doc_genesis],
        content(doc, via(read), vec![doc_genesis]),
    );
    // ProofWrongSubject: a delegation on the group used as authority on the document.
    hand_signed(
        &mut c,
        &bob,
        vec![doc_genesis, on_group],
        content(doc, via(on_group), vec![doc_genesis, on_group]),
    );
    // UnknownSubject: a delegation on the document whose genesis is not in its past.
    hand_signed(
        &mut c,
        &alice,
        vec![],
        AuthBody {
            subject: doc,
            action: Action::Delegate {
                delegate: ind(&mallory),
                access: Access::Read,
                proof: Proof::Root,
            },
            content_heads: vec![],
        },
    );
    // BadTarget: revoking a delegation of another subject.
    hand_signed(
        &mut c,
        &alice,
        vec![doc_genesis, on_group],
        AuthBody {
            subject: doc,
            action: Action::Revoke {
                delegation: on_group,
                proof: Proof::Root,
            },
            content_heads: vec![],
        },
    );
    // ProofInvalid: authority through a delegation that is itself refused (NotRoot).
    let forged = Verified::sign(
        Op::new(
            mallory.id().0,
            vec![doc_genesis],
            AuthBody {
                subject: doc,
                action: Action::Delegate {
                    delegate: ind(&mallory),
                    access: Access::Write,
                    proof: Proof::Root,
                },
                content_heads: vec![],
            },
        ),
        mallory.signing_key(),
    )
    .expect("sign");
    let forged_hash = forged.hash();
    c.apply_verified(forged).expect("apply");
    hand_signed(
        &mut c,
        &mallory,
        vec![doc_genesis, forged_hash],
        content(doc, via(forged_hash), vec![doc_genesis, forged_hash]),
    );
    // ProofWrongSubject (second form): the group's delegation on the document, then a
    // "membership" link that is not a delegation on that group. (BrokenMembership, a chain
    // that does not end at the issuer, is in `chain_and_invitation_refusals`.)
    let group_on_doc = c
        .delegate(&alice, &doc, AgentId::Group(GroupId(group)), Access::Write)
        .expect("grant")
        .hash();
    hand_signed(
        &mut c,
        &bob,
        vec![doc_genesis, group_on_doc, read],
        content(
            doc,
            Proof::Via {
                delegation: group_on_doc,
                membership: vec![read],
            },
            vec![doc_genesis, group_on_doc, read],
        ),
    );
    // NotAnInvitation: a redemption naming an ordinary delegation.
    let invite = c
        .invite(&alice, &doc, Access::Read, None, 1)
        .expect("invite");
    let Action::Redeem {
        proof_of_secret, ..
    } = c
        .redeem(&mallory, &invite.op.hash(), &invite.secret, 1)
        .expect("redeem")
        .body
        .action
    else {
        unreachable!("a redemption")
    };
    hand_signed(
        &mut c,
        &mallory,
        vec![read],
        AuthBody {
            subject: doc,
            action: Action::Redeem {
                invitation: read,
                redeemed_at: 1,
                proof_of_secret,
            },
            content_heads: vec![],
        },
    );
    let mut case = Case::new();
    case.record(&c);
    (case.log, vec![alice, bob, mallory])
}

/// Content ops of `document` naming `refs` (and nothing else) as auth heads: no content
/// predecessors, so CAP-20 holds and only the proof can refuse them.
fn edit(document: PublicKey, proof: Proof, mut refs: Vec<Hash>) -> ContentBody {
    refs.sort_unstable();
    refs.dedup();
    ContentBody {
        document: DocumentId(document),
        auth_heads: refs,
        proof,
        payload_hash: Hash::of_content(b"x"),
        payload_len: 1,
    }
}

fn via(delegation: Hash) -> Proof {
    Proof::Via {
        delegation,
        membership: vec![],
    }
}

/// A subject key no op of any case creates: `explain` on it is `CAP-5 UnknownSubject`.
fn unknown_subject() -> PublicKey {
    SigningKey::from_seed(&[0xEE; 32]).public_key()
}

/// CAP-6 BrokenMembership (a chain ending at another device, and at a group the issuer did not
/// create), CAP-8 and CAP-9 InsufficientAccess (a writer granting admin, a writer revoking),
/// INV-3 InvitationInvalid, INV-4 WrongDevice; and `explain` refusing
/// `CAP-14 Insufficient` (levels above pull) and `CAP-5 UnknownSubject` (an unknown key).
fn chain_and_invitation_refusals() -> (Vec<AnyVerified>, Vec<Device>) {
    let (alice, bob, carol, mallory) = (
        device(1, "alice"),
        device(2, "bob"),
        device(3, "carol"),
        device(6, "mallory"),
    );
    let mut c = Checker::default();
    let doc_genesis = c.create_document(&alice).expect("doc").genesis.hash();
    let doc = c.op(&doc_genesis).expect("held").subject();
    let group_genesis = c.create_group(&alice).expect("group").hash();
    let group = c.op(&group_genesis).expect("held").subject();
    let bob_writes = c
        .delegate(&alice, &doc, ind(&bob), Access::Write)
        .expect("grant")
        .hash();
    let group_writes = c
        .delegate(&alice, &doc, AgentId::Group(GroupId(group)), Access::Write)
        .expect("grant")
        .hash();
    // BrokenMembership: Mallory presents Bob's delegation; its chain ends at Bob.
    hand_signed(
        &mut c,
        &mallory,
        vec![],
        edit(doc, via(bob_writes), vec![bob_writes]),
    );
    // BrokenMembership: Bob presents the group's delegation with no membership link; the
    // chain ends at the group, whose creator is Alice, not Bob.
    hand_signed(
        &mut c,
        &bob,
        vec![],
        edit(doc, via(group_writes), vec![group_genesis, group_writes]),
    );
    // The same chain from the group's creator is valid (CAP-6: a group the issuer created).
    hand_signed(
        &mut c,
        &alice,
        vec![],
        edit(doc, via(group_writes), vec![group_genesis, group_writes]),
    );
    // CAP-8 InsufficientAccess: Bob, a writer, grants admin.
    hand_signed(
        &mut c,
        &bob,
        vec![bob_writes],
        AuthBody {
            subject: doc,
            action: Action::Delegate {
                delegate: ind(&mallory),
                access: Access::Admin,
                proof: via(bob_writes),
            },
            content_heads: vec![],
        },
    );
    // CAP-9 InsufficientAccess: Bob, a writer, revokes the group's delegation.
    hand_signed(
        &mut c,
        &bob,
        vec![bob_writes, group_writes],
        AuthBody {
            subject: doc,
            action: Action::Revoke {
                delegation: group_writes,
                proof: via(bob_writes),
            },
            content_heads: vec![],
        },
    );
    // InvitationInvalid: Mallory invites with a root proof she does not have (CAP-6 NotRoot);
    // Carol's redemption of it, with a correct proof of secret, is refused.
    let secret = InviteSecret::from_bytes([0x42; 32]);
    let forged = Verified::sign(
        Op::new(
            mallory.id().0,
            vec![doc_genesis],
            AuthBody {
                subject: doc,
                action: Action::Invite {
                    invite_key: secret.invite_key(),
                    access: Access::Write,
                    expires: None,
                    max_uses: 1,
                    proof: Proof::Root,
                },
                content_heads: vec![],
            },
        ),
        mallory.signing_key(),
    )
    .expect("sign");
    let forged_hash = forged.hash();
    c.apply_verified(forged).expect("apply");
    let redemption = build_redemption(&carol, &doc, &forged_hash, &secret, 1).expect("redemption");
    c.apply_verified(redemption).expect("apply");
    // WrongDevice: Alice's invitation names Carol's device key as its invitation key; Carol
    // redeems it with a proof of secret that verifies, but as the invitation key itself.
    let invitation = hand_signed(
        &mut c,
        &alice,
        vec![doc_genesis],
        AuthBody {
            subject: doc,
            action: Action::Invite {
                invite_key: carol.id().0,
                access: Access::Read,
                expires: None,
                max_uses: 1,
                proof: Proof::Root,
            },
            content_heads: vec![],
        },
    );
    let mut message = INVITATION_PROOF.as_bytes().to_vec();
    message.extend_from_slice(invitation.as_bytes());
    message.extend_from_slice(carol.id().0.as_bytes());
    message.extend_from_slice(&1u64.to_be_bytes());
    hand_signed(
        &mut c,
        &carol,
        vec![invitation],
        AuthBody {
            subject: doc,
            action: Action::Redeem {
                invitation,
                redeemed_at: 1,
                proof_of_secret: ProofOfSecret::from_bytes(carol.signing_key().sign(&message)),
            },
            content_heads: vec![],
        },
    );
    let mut case = Case::new();
    case.record(&c);
    (case.log, vec![alice, bob, carol, mallory])
}

/// CAP-6 ProofTooLong: a line of `MAX_CHAIN + 2` admin delegations, each made through the one
/// before (Bob and Carol alternately re-granting each other). The delegation whose chain holds
/// `MAX_CHAIN` delegations is the last valid one; the next delegation and an edit through the
/// last are refused.
fn proof_too_long() -> (Vec<AnyVerified>, Vec<Device>) {
    let (alice, bob, carol) = (device(1, "alice"), device(2, "bob"), device(3, "carol"));
    let mut c = Checker::default();
    let doc = c.create_document(&alice).expect("doc").genesis.issuer;
    let mut last = c
        .delegate(&alice, &doc, ind(&bob), Access::Admin)
        .expect("grant")
        .hash();
    // Delegation k (k = 1 is Alice's) has a chain of k - 1 delegations.
    for k in 2..=MAX_CHAIN + 2 {
        let (by, to) = if k % 2 == 0 {
            (&bob, &carol)
        } else {
            (&carol, &bob)
        };
        let hash = hand_signed(
            &mut c,
            by,
            vec![last],
            AuthBody {
                subject: doc,
                action: Action::Delegate {
                    delegate: ind(to),
                    access: Access::Admin,
                    proof: via(last),
                },
                content_heads: vec![],
            },
        );
        if k <= MAX_CHAIN + 1 {
            last = hash;
        }
    }
    // Delegation MAX_CHAIN + 1 (odd: Carol to Bob) has a chain of MAX_CHAIN and is valid;
    // Bob's edit through it has a chain of MAX_CHAIN + 1.
    hand_signed(&mut c, &bob, vec![], edit(doc, via(last), vec![last]));
    let mut case = Case::new();
    case.record(&c);
    (case.log, vec![alice, bob, carol])
}

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
