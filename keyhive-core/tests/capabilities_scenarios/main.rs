//! Named scenario tests, one or more per rule of `specs/capabilities.md`.
#![allow(clippy::unwrap_used)]

mod admission;
mod folders;
mod revocation;

use keyhive_core::Hash;
use keyhive_core::capability::{
    Access, Action, AgentId, AuthBody, AuthOp, Checker, ContentBody, ContentOp, Explanation,
    IngestError, IngestOutcome, PeerTag, PendingLimit, PendingLimits, Proof, Reason, Validity,
};
use keyhive_core::crypto::signing::PublicKey;
use keyhive_core::identity::{Device, DocumentId, GroupId, SubjectKind};
use keyhive_core::signed::{Op, Verified};

fn device(name: &str) -> Device {
    Device::generate(Some(name.into()))
}

fn ind(d: &Device) -> AgentId {
    AgentId::Individual(d.id())
}

/// Sends every op `from` holds to `to`.
fn sync(from: &Checker, to: &mut Checker) {
    let ops: Vec<Vec<u8>> = from.ops().map(|o| o.as_bytes().to_vec()).collect();
    for bytes in ops {
        to.ingest(PeerTag::LOCAL, &bytes).unwrap();
    }
}

fn invalid_rule(c: &Checker, h: &Hash) -> &'static str {
    match c.op_validity(h).unwrap() {
        Validity::Invalid(r) => r.rule,
        Validity::Valid => "valid",
    }
}

fn new_doc(c: &mut Checker, owner: &Device) -> PublicKey {
    c.create_document(owner).unwrap().genesis.issuer
}

fn new_group(c: &mut Checker, owner: &Device) -> PublicKey {
    c.create_group(owner).unwrap().issuer
}
