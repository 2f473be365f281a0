//! The one admission path for every item a relay, a device replica or a peer receives
//! (`specs/replica.md` §3, rules ADM-n).
//!
//! - ADM-1: an item's kind and subject are functions of its bytes (its domain tag and the
//!   subject the payload names); an item sent under another kind or subject is refused. So one
//!   set of bytes is admitted under at most one (kind, subject), and storage keyed by the
//!   content hash can never be shadowed by a mislabelled copy.
//! - ADM-2: every signature is checked (`verify_strict`) before anything is kept, queued or
//!   applied.
//! - ADM-3: ops go through the capability checker. A relay ([`Mode::Relay`]) refuses an op
//!   whose causal predecessors it does not hold (the sender offers it again after them) and an
//!   op the capability rules refuse, so it never acts on an op it has not stored; a replica
//!   ([`Mode::Replica`]) parks the former in the checker's bounded pending set (CAP-4) and keeps
//!   the latter marked invalid, so that every replica holds the same ops.
//! - ADM-4: a contact card is admitted under its own device.
//! - INV-9 (`specs/invitations.md`): a relay admits a redemption from anyone, member or not,
//!   when it is statically valid like any op (ADM-3), unless the invitation's uses are all
//!   taken by the redemptions it holds.
//! - ADM-5: a key-agreement op is admitted only for a document whose genesis is held, only
//!   from a device that holds or held `read` on it (a stranger never), and only as the one
//!   init the genesis names (CGKA-25); a removal only of a device that holds or held `read`
//!   (one that never did holds no seat); its non-init ops must name only predecessors of the
//!   same document (a relay requires them all). The replica's tree applies its own causal
//!   rules on top (CGKA-16..).
//! - REP-20..REP-22 (ciphertext): a change is admitted only when a held content op names its
//!   bytes, a piece only when a held change lists it, an entry point only when its publisher
//!   holds or held `read`. Nobody but a content op's author can supply or replace its
//!   ciphertext.

#[cfg(test)]
mod card_tests;
mod envelope;
mod index;
mod parallel;
mod refusal;

use std::collections::HashMap;

use keyhive_core::capability::{
    Access, AgentId, AnySigned, AnyVerified, Checker, IngestError, IngestOutcome, Payload, PeerTag,
};
use keyhive_core::cgka::{CgkaBody, CgkaOp, SignedCgkaOp, check_init};
use keyhive_core::crypto::hash::Hash;
use keyhive_core::crypto::signing::PublicKey;
use keyhive_core::identity::{DocumentId, IndividualId, SubjectKind};

pub(crate) use envelope::replay_rank;
pub use envelope::{PIECE_RANK, apply_order, apply_rank};
pub use index::BlobIndex;
pub use parallel::{RootSigners, check_signatures, signatures_hold};
pub use refusal::Refusal;

use crate::blob::Blob;
use crate::item::{Item, SubjectId};
use crate::replica::Directory;
pub(crate) use envelope::{Envelope, classify};

/// Who admits: the rules differ only where a relay must not keep what it cannot store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// A relay: refuses ops it cannot apply now and ops the capability rules refuse.
    Relay,
    /// A device replica or a peer: parks ops waiting for predecessors, keeps invalid ops.
    Replica,
}

/// Whether admission checks signatures (always, but for a relay's own marked items, RELAY-7,
/// and for items whose signatures the caller checked on other cores, ADM-2a).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Signatures {
    Check,
    Trusted,
    Checked,
}

/// What admitting an item did.
#[derive(Debug)]
#[non_exhaustive]
pub enum Admitted {
    /// An op was applied to the capability graph, with the parked ops it released.
    Op {
        /// Parked ops applied as a consequence, in apply order.
        released: Vec<Hash>,
    },
    /// A replica parked the op until its predecessors arrive (CAP-4, bounded).
    Parked,
    /// The item is already held.
    Duplicate,
    /// A contact card; `changed` if it was new or replaced an older card.
    Card {
        /// Whether the directory changed.
        changed: bool,
    },
    /// A key-agreement op that passed ADM-5 (signature checked); a replica applies it to its
    /// tree without checking the signature again.
    KeyAgreement(CgkaOp),
    /// A key-agreement op of a document whose genesis a replica does not hold yet (signature
    /// checked); the replica queues it, bounded.
    EarlyKeyAgreement(SignedCgkaOp),
    /// A change, piece or entry point bound to what names it.
    Ciphertext,
}

/// The state admission decides with: the capability graph, the contact directory and the
/// indexes of what held items name.
#[derive(Debug, Default)]
pub struct Admission {
    /// The capability checker.
    pub(crate) checker: Checker,
    /// Known contact cards.
    pub(crate) directory: Directory,
    /// Ciphertext named by held ops.
    pub(crate) blobs: BlobIndex,
    /// Document of every admitted key-agreement op (ADM-5).
    key_agreement: HashMap<Hash, SubjectId>,
}

impl Admission {
    /// Admission over an existing checker (its pending limits decide CAP-4).
    pub fn new(checker: Checker) -> Self {
        Admission {
            checker,
            ..Admission::default()
        }
    }

    /// The capability checker.
    pub fn checker(&self) -> &Checker {
        &self.checker
    }

    /// Known contact cards.
    pub fn directory(&self) -> &Directory {
        &self.directory
    }

    /// ADM-1..ADM-5, REP-20..REP-22 for one item received from `from`.
    pub fn admit(&mut self, mode: Mode, from: PeerTag, item: &Item) -> Result<Admitted, Refusal> {
        self.admit_checked(mode, from, item, Signatures::Check)
    }

    /// RELAY-7: as [`Admission::admit`] for an item this relay admitted before (it holds a
    /// valid admission mark of it), without checking its signatures again (ADM-2 held when
    /// it was admitted); every other rule applies as for any item.
    pub fn admit_marked(
        &mut self,
        mode: Mode,
        from: PeerTag,
        item: &Item,
    ) -> Result<Admitted, Refusal> {
        self.admit_checked(mode, from, item, Signatures::Trusted)
    }

    /// ADM-2a: as [`Admission::admit`] for an item whose every signature
    /// [`signatures_hold`] found valid (`verify_strict` over these exact bytes, e.g. on
    /// another core while earlier items were admitted): the signatures are not checked again,
    /// every other rule applies as for any item. Only `verify_strict`'s own answer may be
    /// passed here, never a batch verification's (ENC-4).
    pub fn admit_signatures_checked(
        &mut self,
        mode: Mode,
        from: PeerTag,
        item: &Item,
    ) -> Result<Admitted, Refusal> {
        self.admit_checked(mode, from, item, Signatures::Checked)
    }

    fn admit_checked(
        &mut self,
        mode: Mode,
        from: PeerTag,
        item: &Item,
        signatures: Signatures,
    ) -> Result<Admitted, Refusal> {
        let trusted = signatures != Signatures::Check;
        match classify(item)? {
            Envelope::Op(op) => self.admit_op(mode, from, op, signatures),
            Envelope::Card(card) => {
                // ADM-4: the very bytes of a card held were verified when it was inserted;
                // inserting them again changes nothing (a card is pushed on every sync).
                if self
                    .directory
                    .holds(&card.unverified_payload().id(), &card.hash())
                {
                    return Ok(Admitted::Card { changed: false });
                }
                let card = if trusted {
                    card.assume_verified()
                } else {
                    card.verify().map_err(Refusal::BadSignature)?
                };
                Ok(Admitted::Card {
                    changed: self.directory.insert(card),
                })
            }
            Envelope::Cgka(op) => self.admit_key_agreement(mode, item.subject(), op, trusted),
            Envelope::Blob(Blob::Change { pieces, .. }) => {
                if !self.blobs.is_named(item.envelope()) {
                    return Err(Refusal::Unnamed);
                }
                self.blobs.list_pieces(&pieces);
                Ok(Admitted::Ciphertext)
            }
            Envelope::Blob(Blob::Piece { .. }) => {
                if self.blobs.is_listed(&item.hash()) {
                    Ok(Admitted::Ciphertext)
                } else {
                    Err(Refusal::Unnamed)
                }
            }
            Envelope::EntryPoint(entry) => {
                let entry = if trusted {
                    entry.assume_verified()
                } else {
                    entry.verify().map_err(Refusal::BadSignature)?
                };
                let publisher = IndividualId(entry.publisher);
                self.require_held_read("REP-22", &publisher, item.subject())?;
                Ok(Admitted::Ciphertext)
            }
        }
    }

    /// Records what an item made on this device names (its ops were checked as they were
    /// built), so that items referring to it are admitted later.
    pub(crate) fn note_local(&mut self, item: &Item) {
        match classify(item) {
            Ok(Envelope::Op(AnySigned::Content(op))) => {
                if let Payload::Blob { hash, .. } = op.unverified_payload().body.payload {
                    self.blobs.name_change(hash);
                }
            }
            Ok(Envelope::Cgka(op)) => {
                self.key_agreement.insert(op.hash(), item.subject());
            }
            Ok(Envelope::Blob(Blob::Change { pieces, .. })) => self.blobs.list_pieces(&pieces),
            _ => {}
        }
    }

    /// [`Admission::note_local`] for an op this device just signed, without decoding it: a
    /// content op names its change blob (REP-20); other ops name nothing admission indexes.
    pub(crate) fn note_local_op(&mut self, op: &AnyVerified) {
        if let AnyVerified::Content(c) = op
            && let Payload::Blob { hash, .. } = c.body.payload
        {
            self.blobs.name_change(hash);
        }
    }

    /// [`Admission::note_local`] for a key-agreement op this device just built, without
    /// decoding it (its item hash is the op's hash, ENC-5).
    pub(crate) fn note_local_key_agreement(&mut self, item: &Item) {
        self.key_agreement.insert(item.hash(), item.subject());
    }

    /// [`Admission::note_local`] for a change blob this device just sealed, listing `pieces`,
    /// and the content op naming it by `named` (`Hash::of_content` of the blob's bytes).
    pub(crate) fn note_local_change(&mut self, named: Hash, pieces: &[Hash]) {
        self.blobs.name_change(named);
        self.blobs.list_pieces(pieces);
    }

    /// Forgets a key-agreement op the replica did not apply (queued or refused by its tree),
    /// so that it is admitted afresh when offered again.
    pub(crate) fn forget_key_agreement(&mut self, hash: &Hash) {
        self.key_agreement.remove(hash);
    }

    fn admit_op(
        &mut self,
        mode: Mode,
        from: PeerTag,
        op: AnySigned,
        signatures: Signatures,
    ) -> Result<Admitted, Refusal> {
        let hash = op.hash();
        if self.checker.op(&hash).is_some() {
            // RELAY-1/2: the relay's checker keeps an op it refused (it must, to agree with
            // every other replica); the same op pushed again is refused again, never stored.
            if mode == Mode::Relay
                && let Some(Err(r)) = self.checker.static_refusal(&hash)
            {
                return Err(Refusal::InvalidOp(r));
            }
            return Ok(Admitted::Duplicate);
        }
        if mode == Mode::Relay {
            // INV-9: a redeemer pushing its own redemption of an invitation whose uses the
            // redemptions held here already take is refused (and `keyhive join` never stores
            // it), so that through one relay first come keeps its seat. Anyone else pushing
            // that op has it stored (RELAY-2): every replica can then hold the same redemptions.
            if let AnySigned::Auth(signed) = &op
                && from == PeerTag::from(signed.unverified_payload().issuer)
                && let Some(r) = self.checker.redemption_over_limit(&op)
            {
                return Err(Refusal::InvalidOp(r));
            }
            // CAP-23: an implied genesis not held is a missing parent too (nothing waits at
            // a relay).
            let missing = op
                .parents()
                .iter()
                .filter(|p| self.checker.op(p).is_none())
                .count()
                + op.implied_genesis()
                    .filter(|s| self.checker.subject_info(s).is_none())
                    .map_or(0, |_| 1);
            if missing > 0 {
                return Err(Refusal::MissingPredecessors(missing));
            }
        }
        let outcome = match signatures {
            Signatures::Trusted | Signatures::Checked => {
                // CAP-24: a root form is an op once its genesis names its issuer; one whose
                // genesis is not held (or conflicted) is checked as if never checked.
                match self.checker.resolve_root_form(op).assume_verified() {
                    // RELAY-7: marked by this relay when it verified it.
                    Ok(op) if signatures == Signatures::Trusted => self.checker.apply_verified(op),
                    // ADM-2a: `verify_strict` held on these bytes; parked for `from` like any op.
                    Ok(op) => self.checker.ingest_verified(from, op),
                    Err(op) => self.checker.ingest_signed(from, *op),
                }
            }
            Signatures::Check => self.checker.ingest_signed(from, op),
        };
        let released = match outcome {
            Ok(IngestOutcome::Applied { released, .. }) => released,
            Ok(IngestOutcome::Pending { .. }) => return Ok(Admitted::Parked),
            // Applied ops were answered above: this one is already parked.
            Ok(IngestOutcome::Duplicate { .. }) => return Ok(Admitted::Parked),
            Ok(_) => return Ok(Admitted::Parked),
            Err(IngestError::Signature(e)) => return Err(Refusal::BadSignature(e)),
            Err(IngestError::Decode(e)) => return Err(Refusal::Malformed(e)),
            Err(e) => return Err(Refusal::Checker(e)),
        };
        for h in std::iter::once(&hash).chain(&released) {
            // INL-1: an inline change names no blob; it is admitted with its op.
            if let Some(AnyVerified::Content(c)) = self.checker.op(h)
                && let Payload::Blob { hash, .. } = c.body.payload
            {
                self.blobs.name_change(hash);
            }
        }
        // RELAY-1/2: a relay refuses what is statically unauthorised and stores what a
        // revocation excludes now, since valid ops may name it as a parent (CAP-19).
        if mode == Mode::Relay
            && let Some(Err(r)) = self.checker.static_refusal(&hash)
        {
            return Err(Refusal::InvalidOp(r));
        }
        Ok(Admitted::Op { released })
    }

    fn admit_key_agreement(
        &mut self,
        mode: Mode,
        document: SubjectId,
        op: SignedCgkaOp,
        trusted: bool,
    ) -> Result<Admitted, Refusal> {
        let hash = op.hash();
        // A relay holds what it admitted; a replica's tree tells applied from waiting ops.
        if mode == Mode::Relay && self.key_agreement.contains_key(&hash) {
            return Ok(Admitted::Duplicate);
        }
        let Some(info) = self.checker.subject_info(&document.0) else {
            if mode == Mode::Relay {
                return Err(Refusal::UnknownSubject(document));
            }
            // ADM-2: verified before it is queued.
            op.check_signature().map_err(Refusal::BadSignature)?;
            return Ok(Admitted::EarlyKeyAgreement(op));
        };
        if info.kind != SubjectKind::Document {
            return Err(Refusal::UnknownSubject(document));
        }
        let verified = if trusted {
            op.assume_verified()
        } else {
            op.verify().map_err(Refusal::BadSignature)?
        };
        let issuer = IndividualId(verified.issuer);
        if let CgkaBody::Init { .. } = verified.body {
            // CGKA-25: the one init is the one the document's genesis names.
            let binding = self.checker.key_agreement(&DocumentId(document.0));
            check_init(binding.as_ref(), &verified).map_err(Refusal::ForeignInit)?;
        } else {
            self.require_held_read("ADM-5", &issuer, document)?;
            if let CgkaBody::Remove { device } = &verified.body
                && !held_read(&self.checker, device, &document.0)
            {
                return Err(Refusal::NeverSeated {
                    device: *device,
                    subject: document,
                });
            }
            let mut missing = 0;
            for p in &verified.predecessors {
                match self.key_agreement.get(p) {
                    Some(d) if *d != document => {
                        return Err(Refusal::WrongSubject {
                            claimed: document,
                            actual: *d,
                        });
                    }
                    Some(_) => {}
                    None => missing += 1,
                }
            }
            if mode == Mode::Relay && missing > 0 {
                return Err(Refusal::MissingPredecessors(missing));
            }
        }
        self.key_agreement.insert(hash, document);
        Ok(Admitted::KeyAgreement(verified))
    }

    fn require_held_read(
        &self,
        rule: &'static str,
        who: &IndividualId,
        subject: SubjectId,
    ) -> Result<(), Refusal> {
        if held_read(&self.checker, who, &subject.0) {
            Ok(())
        } else {
            Err(Refusal::NotAuthorised {
                rule,
                who: *who,
                needed: Access::Read,
                subject,
            })
        }
    }
}

/// ADM-5: whether `device` was ever given `read` on `document` (holds it now, or held it
/// through a path revoked, excluded or used up since): key-agreement history and entry points
/// stay admissible after a revocation (REP-1), and the answer only grows as ops arrive, so
/// relays fed in different orders store the same key-agreement ops.
pub(crate) fn held_read(checker: &Checker, device: &IndividualId, document: &PublicKey) -> bool {
    checker.ever_granted(AgentId::Individual(*device), Access::Read, document)
}
