//! The checks run after healing (issue 10, item 6):
//!
//! - (a) replicas agree on membership and validity: for every subject, the devices that may
//!   pull it (reference graph) see the same devices at every level, and every op two of them
//!   hold has the same validity in both; and each device's view is of what it stores: every
//!   op its checker applied is in its store (an op applied but never stored never reaches
//!   another replica nor survives a restart, so that device alone sees it: seed 61, CAP-19).
//! - (b) every device holding `read` on a document (reference graph) decrypts, as the writer
//!   wrote it, every acknowledged change the reference finds valid.
//! - (c) a device that no node's view ever counted among a document's readers from the moment
//!   of a write on (the writer's view at the write included) cannot decrypt that write.
//! - (d) nothing stays pending on any device, of a subject it may pull (reference graph).
//! - (e) what honest servers served each device of a subject it may pull is causally closed
//!   (every parent of a served op was served to it or is held by it), and nothing served
//!   belongs to a subject it never could pull in any honest node's view (contact cards aside,
//!   which are public) or to a subject it was removed from after taking part in it, or whose
//!   invitation it redeemed too late (REP-30, INV-9: the subject's ops, never its ciphertext
//!   or key agreement). A device removed from a subject may keep ops of it served just before
//!   a server learned of the removal, waiting for parents no longer served (CAP §7).
//! - (f) nothing acknowledged was lost: every write `Replica::write` returned `Ok` for (so its
//!   writer held `write` in its own view) is, after any crashes, in its writer's store and known
//!   to the reference, and is either valid in the reference, then stored by every relay (and
//!   read by every reader, b), or invalid only because of a revocation that did not see it
//!   (CAP-11: excluded, or its proof names a delegation excluded that way), never otherwise.
//! - (adm) attackers' items: no node stores a forged-signature item or a relabelled envelope
//!   under its false labels; no relay stores an unauthorised write, and every replica holding
//!   one finds it invalid.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use keyhive_core::Hash;
use keyhive_core::capability::{Access, AgentId, AnySigned, Checker, Reason, Validity};
use keyhive_core::identity::{DocumentId, IndividualId};
use keyhive_sync::{Item, ItemKind, Store};

use super::attacks::held_as_labelled;
use super::cast::{DEVICE_NAMES, SUBJECT_NAMES};
use super::oracle::Served;
use super::world::World;

/// One broken invariant.
#[derive(Clone, Debug)]
pub struct Violation {
    /// "a".."f" or "adm".
    pub invariant: &'static str,
    pub detail: String,
}

fn violation(invariant: &'static str, detail: String) -> Violation {
    Violation { invariant, detail }
}

/// Every check, in order.
pub fn check(world: &World) -> Vec<Violation> {
    let mut out = Vec::new();
    out.extend(views_stored(world));
    out.extend(agreement(world));
    out.extend(readers_read(world));
    out.extend(removed_cannot_read(world));
    out.extend(nothing_pending(world));
    out.extend(served_closed_and_allowed(world));
    out.extend(nothing_acked_lost(world));
    out.extend(attacks_refused(world));
    out
}

/// The index of `key` among the run's subjects, for messages.
fn subject_name(world: &World, key: &keyhive_core::crypto::signing::PublicKey) -> String {
    match world.subjects.iter().position(|s| s.key == *key) {
        Some(i) => match SUBJECT_NAMES.get(i) {
            Some(name) => format!("subject {i} ({name})"),
            None => format!("subject {i}"),
        },
        None => match world.devices.iter().position(|d| d.id().0 == *key) {
            Some(d) => format!("card of {}", DEVICE_NAMES[d]),
            None => "an unknown subject".into(),
        },
    }
}

fn device_name(world: &World, id: &IndividualId) -> String {
    match world.devices.iter().position(|d| d.id() == *id) {
        Some(i) => DEVICE_NAMES[i].into(),
        None => "a device outside the cast".into(),
    }
}

/// (a)
pub fn agreement(world: &World) -> Vec<Violation> {
    let reference = world.oracle.checker();
    let mut out = Vec::new();
    for (index, subject) in world.subjects.iter().enumerate() {
        let pullers: Vec<usize> = (0..world.devices.len())
            .filter(|d| {
                reference.can(
                    AgentId::Individual(world.devices[*d].id()),
                    Access::Pull,
                    &subject.key,
                )
            })
            .collect();
        let mut first: Option<(usize, Vec<BTreeSet<IndividualId>>)> = None;
        let mut validity: BTreeMap<Hash, (usize, Validity)> = BTreeMap::new();
        for d in pullers {
            let r = world.devices[d].lock();
            let levels: Vec<_> = [Access::Pull, Access::Read, Access::Write, Access::Admin]
                .into_iter()
                .map(|l| r.devices_with(&subject.key, l))
                .collect();
            match &first {
                None => first = Some((d, levels)),
                Some((other, theirs)) if *theirs != levels => out.push(violation(
                    "a",
                    format!(
                        "{} and {} disagree on the members of subject {index}: {:?} vs {:?}",
                        DEVICE_NAMES[*other],
                        DEVICE_NAMES[d],
                        names(world, theirs),
                        names(world, &levels)
                    ),
                )),
                Some(_) => {}
            }
            for op in reference.ops_for(&subject.key) {
                let hash = op.hash();
                let Some(v) = r.validity(&hash) else { continue };
                match validity.get(&hash) {
                    None => {
                        validity.insert(hash, (d, v));
                    }
                    Some((other, theirs)) if *theirs != v => out.push(violation(
                        "a",
                        format!(
                            "{} finds op {hash} of subject {index} {theirs:?}, {} finds it {v:?}",
                            DEVICE_NAMES[*other], DEVICE_NAMES[d]
                        ),
                    )),
                    Some(_) => {}
                }
            }
        }
    }
    out
}

/// (a), second half: every op a device's checker applied is in that device's store.
pub fn views_stored(world: &World) -> Vec<Violation> {
    let mut out = Vec::new();
    for (d, node) in world.devices.iter().enumerate() {
        let r = node.lock();
        for op in r.checker().ops() {
            let hash = op.hash();
            if !node.store.contains(&hash).expect("contains") {
                out.push(violation(
                    "a",
                    format!(
                        "{} applied op {hash} of {} but does not store it",
                        DEVICE_NAMES[d],
                        subject_name(world, &op.subject())
                    ),
                ));
            }
        }
    }
    out
}

fn names(world: &World, levels: &[BTreeSet<IndividualId>]) -> Vec<Vec<String>> {
    levels
        .iter()
        .map(|set| set.iter().map(|id| device_name(world, id)).collect())
        .collect()
}

/// The plaintext `device` decrypts for change `op` of `doc`, if it can.
fn decrypt(world: &World, device: usize, doc: DocumentId, op: &Hash) -> Option<Vec<u8>> {
    let r = world.devices[device].lock();
    let mut out = Vec::new();
    r.read_change(doc, op, &mut out).ok().map(|_| out)
}

/// (b)
pub fn readers_read(world: &World) -> Vec<Violation> {
    let reference = world.oracle.checker();
    let mut out = Vec::new();
    for w in &world.record.acked {
        if reference.op_validity(&w.op) != Some(Validity::Valid) {
            continue;
        }
        let readers = reference.individuals_with(&w.doc, Access::Read);
        for (d, node) in world.devices.iter().enumerate() {
            if !readers.contains(&node.id()) {
                continue;
            }
            let got = decrypt(world, d, DocumentId(w.doc), &w.op);
            if got.as_deref() != Some(&w.plaintext[..]) {
                let held = node.store.contains(&w.op).expect("contains");
                out.push(violation(
                    "b",
                    format!(
                        "{} holds read on {} but cannot read the write of step {} by {} (op {}, {})",
                        DEVICE_NAMES[d],
                        subject_name(world, &w.doc),
                        w.step,
                        DEVICE_NAMES[w.writer],
                        w.op,
                        if held { "op held" } else { "op not held" }
                    ),
                ));
            }
        }
    }
    out
}

/// (c)
pub fn removed_cannot_read(world: &World) -> Vec<Violation> {
    let mut out = Vec::new();
    for w in &world.record.acked {
        for (d, node) in world.devices.iter().enumerate() {
            if w.may_read.contains(&node.id()) {
                continue;
            }
            if decrypt(world, d, DocumentId(w.doc), &w.op).is_some() {
                out.push(violation(
                    "c",
                    format!(
                        "{} reads the write of step {} by {} on {} though no view counted it a reader since",
                        DEVICE_NAMES[d],
                        w.step,
                        DEVICE_NAMES[w.writer],
                        subject_name(world, &w.doc)
                    ),
                ));
            }
        }
    }
    out
}

/// (d)
pub fn nothing_pending(world: &World) -> Vec<Violation> {
    let reference = world.oracle.checker();
    let mut out = Vec::new();
    for (d, node) in world.devices.iter().enumerate() {
        let r = node.lock();
        let pending = r.checker().pending_len();
        if pending == 0 {
            continue;
        }
        // CAP-21 owes closure for the subjects a device may pull: a device removed from a
        // subject may keep ops of it that it was served just before the relay learned of the
        // removal, waiting for parents it is no longer served (a known limit, CAP §7).
        let id = node.id();
        if !r
            .checker()
            .pending_subjects()
            .iter()
            .any(|s| reference.can(AgentId::Individual(id), Access::Pull, s))
        {
            continue;
        }
        let waiting_for: BTreeSet<String> = r
            .checker()
            .missing()
            .iter()
            .map(|h| match reference.op(h) {
                Some(op) => subject_name(world, &op.subject()),
                None => format!("unknown op {h}"),
            })
            .collect();
        out.push(violation(
            "d",
            format!(
                "{} keeps {pending} op(s) pending, waiting for ops of {waiting_for:?}",
                DEVICE_NAMES[d]
            ),
        ));
    }
    out
}

/// (e)
pub fn served_closed_and_allowed(world: &World) -> Vec<Violation> {
    let reference = world.oracle.checker();
    let mut out = Vec::new();
    for (d, served) in &world.record.served {
        let node = &world.devices[*d];
        let id = node.id();
        let allowed = world
            .record
            .ever_pullable
            .get(&id)
            .cloned()
            .unwrap_or_default();
        let scope = world
            .record
            .ever_in_scope
            .get(&id)
            .cloned()
            .unwrap_or_default();
        let mut held: HashSet<Hash> = served.iter().map(|s| s.item.hash()).collect();
        for s in node.store.subjects().expect("subjects") {
            held.extend(node.store.hashes(&s).expect("hashes"));
        }
        let mut reported = BTreeSet::new();
        for Served { item, step, server } in served {
            let subject = item.subject().0;
            let is_card = world.oracle.checker().subject_info(&subject).is_none();
            // CAP-21: auth ops of a subject in the scope of one it pulls may be served too.
            let in_scope = item.kind() == ItemKind::Auth && scope.contains(&subject);
            // REP-30, INV-9: a device removed from a subject it took part in, or whose
            // redemption lost to the use limit, is served the subject's ops, so that it learns
            // the verdict (by the reference's graph: a redemption concurrent with its
            // invitation's revocation counts as removed though no view ever applied it).
            let removed = matches!(
                reference.explain(AgentId::Individual(id), Access::Pull, &subject),
                keyhive_core::capability::Explanation::Refused(r)
                    if matches!(r.reason, Reason::UsedUp { .. } | Reason::Revoked { .. })
            ) && reference.took_part(AgentId::Individual(id), &subject)
                && item.kind() != ItemKind::Blob
                && item.kind() != ItemKind::Cgka;
            if !is_card
                && !allowed.contains(&subject)
                && !in_scope
                && !removed
                && reported.insert(("pull", subject))
            {
                out.push(violation(
                    "e",
                    format!(
                        "{} was served a {:?} item of {}, which it never could pull, by {server} at step {step}",
                        DEVICE_NAMES[*d],
                        item.kind(),
                        subject_name(world, &subject)
                    ),
                ));
            }
            // Closure is owed for what the device may still pull (see (d)).
            if reference.can(AgentId::Individual(id), Access::Pull, &subject) {
                out.extend(closure_gap(
                    world,
                    *d,
                    (item, server, *step),
                    &held,
                    &mut reported,
                ));
            }
        }
    }
    out
}

/// (e), closure: the parents of a served op that the device was never served and does not
/// hold (one report per device and subject of the missing parent).
pub fn closure_gap(
    world: &World,
    device: usize,
    (item, server, step): (&Item, &str, usize),
    held: &HashSet<Hash>,
    reported: &mut BTreeSet<(&'static str, keyhive_core::crypto::signing::PublicKey)>,
) -> Option<Violation> {
    if !matches!(item.kind(), ItemKind::Auth | ItemKind::Content) {
        return None;
    }
    let op = AnySigned::decode(item.envelope()).ok()?;
    let missing: Vec<Hash> = op
        .parents()
        .into_iter()
        .filter(|p| !held.contains(p))
        .collect();
    let first = missing.first()?;
    let parent_subject = world
        .oracle
        .checker()
        .op(first)
        .map(|o| o.subject())
        .unwrap_or(item.subject().0);
    if !reported.insert(("closure", parent_subject)) {
        return None;
    }
    Some(violation(
        "e",
        format!(
            "{} was served op {} of {} by {server} at step {step}, whose parent {first} (of {}) it was never served ({} parent(s) missing)",
            DEVICE_NAMES[device],
            item.hash(),
            subject_name(world, &item.subject().0),
            subject_name(world, &parent_subject),
            missing.len()
        ),
    ))
}

/// (f)
pub fn nothing_acked_lost(world: &World) -> Vec<Violation> {
    let reference = world.oracle.checker();
    let mut out = Vec::new();
    for w in &world.record.acked {
        let what = format!("the write of step {} by {}", w.step, DEVICE_NAMES[w.writer]);
        if !world.devices[w.writer]
            .store
            .contains(&w.op)
            .expect("contains")
        {
            out.push(violation(
                "f",
                format!("{what} is gone from its writer's store"),
            ));
            continue;
        }
        match reference.op_validity(&w.op) {
            None => out.push(violation(
                "f",
                format!("{what} is unknown to the reference"),
            )),
            Some(Validity::Valid) => {
                for (i, relay) in world.relays.iter().enumerate() {
                    if !relay.store.contains(&w.op).expect("contains") {
                        let why = missing_parents(world, &*relay.store, w.writer, &w.op);
                        out.push(violation(
                            "f",
                            format!("{what} (valid) is not at relay-{i}; {why}"),
                        ));
                    }
                }
            }
            Some(Validity::Invalid(r)) if excluded(reference, &r.reason, MAX_CHAIN) => {}
            Some(Validity::Invalid(r)) => out.push(violation(
                "f",
                format!("{what} was acknowledged but is invalid: {r}"),
            )),
        }
    }
    out
}

/// Which parents of `op` (held by `writer`) `store` lacks, for (f) reports.
fn missing_parents(world: &World, store: &dyn Store, writer: usize, op: &Hash) -> String {
    let Some(item) = world.devices[writer].store.get(op).expect("get") else {
        return "the writer no longer holds it".into();
    };
    let Ok(signed) = AnySigned::decode(item.envelope()) else {
        return "it does not decode".into();
    };
    let reference = world.oracle.checker();
    let missing: Vec<String> = signed
        .parents()
        .iter()
        .filter(|p| !store.contains(p).expect("contains"))
        .map(|p| match reference.op(p) {
            Some(o) => format!(
                "{p} of {} ({:?})",
                subject_name(world, &o.subject()),
                reference.op_validity(p)
            ),
            None => format!("{p} (unknown to the reference)"),
        })
        .collect();
    format!("the relay lacks its parents {missing:?}")
}

/// Most proof links (f) follows to find the revocation behind an invalid write.
const MAX_CHAIN: usize = 16;

/// CAP-11: whether `reason` comes down to a revocation that did not see the op: the op was
/// excluded, or a delegation its proof names is invalid because of such a revocation.
fn excluded(reference: &Checker, reason: &Reason, depth: usize) -> bool {
    match reason {
        Reason::Excluded { .. } => true,
        Reason::ProofInvalid(h) if depth > 0 => match reference.op_validity(h) {
            Some(Validity::Invalid(r)) => excluded(reference, &r.reason, depth - 1),
            _ => false,
        },
        _ => false,
    }
}

/// (adm)
pub fn attacks_refused(world: &World) -> Vec<Violation> {
    let mut out = Vec::new();
    for item in &world.record.forged {
        if let Some(holder) = held_as_labelled(world, item) {
            out.push(violation(
                "adm",
                format!("{holder} stored a forged item {}", item.hash()),
            ));
        }
    }
    for item in &world.record.mislabelled {
        if let Some(holder) = held_as_labelled(world, item) {
            out.push(violation(
                "adm",
                format!(
                    "{holder} stored {} as a {:?} item of {}",
                    item.hash(),
                    item.kind(),
                    subject_name(world, &item.subject().0)
                ),
            ));
        }
    }
    for item in &world.record.unauthorised {
        for (i, relay) in world.relays.iter().enumerate() {
            if relay.store.contains(&item.hash()).expect("contains") {
                let reference = world.oracle.checker().op_validity(&item.hash());
                out.push(violation(
                    "adm",
                    format!(
                        "relay-{i} stored the unauthorised write {} (reference: {reference:?})",
                        item.hash()
                    ),
                ));
            }
        }
        for (d, node) in world.devices.iter().enumerate() {
            if let Some(Validity::Valid) = node.lock().validity(&item.hash()) {
                out.push(violation(
                    "adm",
                    format!("{} finds an unauthorised write valid", DEVICE_NAMES[d]),
                ));
            }
        }
    }
    out
}
