//! Wire types of the capability graph: auth ops (delegation, revocation) and content ops
//! (`specs/capabilities.md` CAP-2).

use serde::{Deserialize, Serialize};

use crate::crypto::hash::Hash;
use crate::crypto::signing::PublicKey;
use crate::encoding::DecodeError;
use crate::identity::{DocumentId, Genesis};
use crate::signed::{Op, OpBody, Signed, Verified};

use super::access::{Access, AgentId};
use super::root_form::{RootFormOp, is_root_form};

/// CAP-2: most group-membership links a proof may name.
pub const MAX_MEMBERSHIP_LINKS: usize = 8;
/// CAP-2: most content heads an auth op may record.
pub const MAX_CONTENT_HEADS: usize = 1024;
/// CAP-2: most auth heads a content op may record.
pub const MAX_AUTH_HEADS: usize = 64;

/// CAP-6: why the issuer of an op holds authority on its subject.
///
/// Variant order is the wire tag: never reorder.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Proof {
    /// The issuer is the creator named in the subject's genesis (root, seniority depth 0).
    Root,
    /// The issuer holds authority through `delegation` (a delegation on the op's subject) and
    /// then the chain of group memberships `membership`: `membership[0]` is a delegation on the
    /// agent `delegation` names, `membership[i+1]` a delegation on the agent `membership[i]`
    /// names, and the last agent is the issuer, or a group or document the issuer created.
    Via {
        /// A delegation on the op's subject.
        delegation: Hash,
        /// Delegations down through nested groups to the issuer (at most
        /// [`MAX_MEMBERSHIP_LINKS`]).
        membership: Vec<Hash>,
    },
}

impl Proof {
    /// Every delegation the proof names.
    pub fn references(&self) -> Vec<Hash> {
        match self {
            Proof::Root => Vec::new(),
            Proof::Via {
                delegation,
                membership,
            } => {
                let mut refs = Vec::with_capacity(1 + membership.len());
                refs.push(*delegation);
                refs.extend_from_slice(membership);
                refs
            }
        }
    }

    fn check(&self) -> Result<(), DecodeError> {
        match self {
            Proof::Via { membership, .. } if membership.len() > MAX_MEMBERSHIP_LINKS => Err(
                DecodeError::InvalidStructure("proof names too many membership links"),
            ),
            _ => Ok(()),
        }
    }
}

/// What an auth op does.
///
/// Variant order is the wire tag: never reorder.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    /// CAP-8: grant `access` on the subject to `delegate`.
    Delegate {
        /// Who receives the access (a device, group or document).
        delegate: AgentId,
        /// The level granted.
        access: Access,
        /// The issuer's authority.
        proof: Proof,
    },
    /// CAP-9: revoke the delegation `delegation` (on the same subject).
    Revoke {
        /// Hash of the revoked delegation.
        delegation: Hash,
        /// The issuer's authority.
        proof: Proof,
    },
    /// INV-1: an invitation: whoever knows the secret behind `invite_key` may redeem it
    /// (INV-3) to be granted `access` on the subject, before `expires`, at most `max_uses`
    /// times (INV-5, INV-6). For authority it is a delegation to the invitation key
    /// (CAP-8, CAP-9), but it grants nothing by itself and is never a proof link.
    Invite {
        /// The Ed25519 key derived from the invitation secret (INV-2).
        invite_key: PublicKey,
        /// The level a redemption grants.
        access: Access,
        /// Unix seconds after which a redemption is refused (INV-5); `None`: never.
        expires: Option<u64>,
        /// How many redemptions may count (INV-6); at least 1.
        max_uses: u32,
        /// The issuer's authority.
        proof: Proof,
    },
    /// INV-3: a redemption of `invitation` by the issuing device, which then holds the
    /// invitation's level as if delegated by it (depth + 1, chain through the invitation).
    Redeem {
        /// Hash of the invitation (a direct predecessor).
        invitation: Hash,
        /// Unix seconds the redeemer claims (INV-5).
        redeemed_at: u64,
        /// The invitation key's signature binding the invitation, this device and
        /// `redeemed_at` (INV-4).
        proof_of_secret: ProofOfSecret,
    },
    /// INV-11: a delegation (CAP-8) that ends at `ends` (unix seconds): it grants exactly as
    /// `Delegate` until a revocation ends it; the devices able to revoke it do so on their
    /// first sync after `ends` (the causal end, `specs/invitations.md` §7).
    DelegateUntil {
        /// Who receives the access (a device, group or document).
        delegate: AgentId,
        /// The level granted.
        access: Access,
        /// Unix seconds after which the grant is to be revoked.
        ends: u64,
        /// The issuer's authority.
        proof: Proof,
    },
}

impl Action {
    /// The issuer's proof (a redemption has none: the invitation stands in for it).
    pub fn proof(&self) -> Option<&Proof> {
        match self {
            Action::Delegate { proof, .. }
            | Action::Revoke { proof, .. }
            | Action::Invite { proof, .. }
            | Action::DelegateUntil { proof, .. } => Some(proof),
            Action::Redeem { .. } => None,
        }
    }

    /// Every op the issuer's authority rests on: the proof's delegations, or for a
    /// redemption its invitation (INV-3).
    pub fn references(&self) -> Vec<Hash> {
        match self {
            Action::Redeem { invitation, .. } => vec![*invitation],
            other => other.proof().map(Proof::references).unwrap_or_default(),
        }
    }
}

/// INV-4: an Ed25519 signature by an invitation key (64 bytes on the wire, as two halves
/// because serde derives arrays only up to 32).
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProofOfSecret {
    r: [u8; 32],
    s: [u8; 32],
}

impl ProofOfSecret {
    /// Wraps signature bytes.
    pub fn from_bytes(bytes: [u8; 64]) -> Self {
        let mut r = [0u8; 32];
        let mut s = [0u8; 32];
        r.copy_from_slice(&bytes[..32]);
        s.copy_from_slice(&bytes[32..]);
        ProofOfSecret { r, s }
    }

    /// The signature bytes.
    pub fn to_bytes(&self) -> [u8; 64] {
        let mut out = [0u8; 64];
        out[..32].copy_from_slice(&self.r);
        out[32..].copy_from_slice(&self.s);
        out
    }
}

impl core::fmt::Debug for ProofOfSecret {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("ProofOfSecret(")?;
        for b in self.r.iter().chain(self.s.iter()).take(8) {
            write!(f, "{b:02x}")?;
        }
        f.write_str("..)")
    }
}

/// The body of an auth op (tag `keyhive/auth`, version 2; version 1, the same layout, is still
/// read; version 3, the root form of CAP-24, omits the issuer of a `Root` proof and is read by
/// [`RootFormOp`]). Versions 2 and 3 travel in the compact wire form of SYNC-110 (no tag,
/// version or subject on the wire); version 1 travels in full, as it always did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthBody {
    /// The group or document this op changes (its self-certifying id).
    pub subject: PublicKey,
    /// Delegation or revocation.
    pub action: Action,
    /// Content ops the issuer had seen (strictly ascending). Part of the op's causal past
    /// (CAP-3): a revocation keeps exactly these (and their ancestors) valid (CAP-11).
    pub content_heads: Vec<Hash>,
}

impl OpBody for AuthBody {
    const TAG: &'static str = "keyhive/auth";
    const VERSION: u8 = 2;
    const MAX_LEN: usize = 40 * 1024;

    /// SYNC-110: a version-1 auth op has the version-2 layout; its bytes, and so its hash,
    /// stay as they were (it keeps travelling in full).
    fn decode_earlier_op(version: u8, body: &[u8]) -> Option<Result<Op<Self>, DecodeError>> {
        (version == 1).then(|| crate::encoding::decode_canonical::<Op<Self>>(body, Self::MAX_LEN))
    }

    fn check_body(&self) -> Result<(), DecodeError> {
        if let Some(proof) = self.action.proof() {
            proof.check()?;
        }
        if let Action::Invite { max_uses: 0, .. } = self.action {
            return Err(DecodeError::InvalidStructure(
                "an invitation must allow at least one use",
            ));
        }
        check_sorted(&self.content_heads, MAX_CONTENT_HEADS, "content heads")
    }
}

/// An auth op: `Op<AuthBody>`.
pub type AuthOp = Op<AuthBody>;

/// The signed header of a content op (tag `keyhive/content`, version 3; version 2, the same
/// layout, and version 1 are still read, INL-7). Version 3 travels in the compact wire form of
/// SYNC-110 (no tag, version or document on the wire); earlier versions travel in full. The change itself is either named ([`Payload::Blob`], carried by a blob item,
/// REP-20) or carried in the op ([`Payload::Inline`], INL-1).
///
/// `Op::predecessors` of a content op are its content predecessors (ops of the same document).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContentBody {
    /// The document edited.
    pub document: DocumentId,
    /// Auth ops the author had seen (strictly ascending): part of the causal past (CAP-3).
    pub auth_heads: Vec<Hash>,
    /// The author's authority to write (CAP-10; an addition to the design brief, see the spec).
    pub proof: Proof,
    /// The encrypted change, or the blob that holds it.
    pub payload: Payload,
}

/// Where a content op's encrypted change is (`specs/encryption.md` §1b).
///
/// Variant order is the wire tag: never reorder.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Payload {
    /// REP-20: the change is the blob item whose bytes hash (`Hash::of_content`) to `hash`.
    Blob {
        /// `Hash::of_content` of the blob bytes.
        hash: Hash,
        /// The blob's length in bytes.
        len: u64,
    },
    /// INL-1: the change travels inside the op, bound to its signature.
    Inline(InlineChange),
}

/// INL-1: an encrypted change carried by its content op. Its key is derived from the epoch
/// root, the op's document and author and `salt` (INL-3); the AEAD's associated data is the
/// op's signed header (INL-4).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InlineChange {
    /// The CGKA update whose epoch root the key is bound to.
    pub epoch: Hash,
    /// 16 random bytes making the change key unique (INL-3).
    pub salt: [u8; INLINE_SALT_LEN],
    /// The key commitment (ENC-7.2), checked before decryption.
    pub commitment: [u8; 32],
    /// The sealed INL-5 plaintext followed by the 16-byte Poly1305 tag.
    #[serde(with = "crate::encoding::byte_vec")]
    pub ciphertext: Vec<u8>,
}

/// INL-3: bytes of an inline change's salt.
pub const INLINE_SALT_LEN: usize = 16;
/// INL-2: the longest ciphertext (tag included) a content op may carry inline; a longer change
/// travels as a blob (REP-20).
pub const INLINE_MAX_CIPHERTEXT: usize = 1024;
/// INL-2: the shortest ciphertext an inline change can have: the predecessor count byte and
/// the tag.
pub const INLINE_MIN_CIPHERTEXT: usize = 1 + 16;

impl Payload {
    fn check(&self) -> Result<(), DecodeError> {
        match self {
            Payload::Inline(c) if c.ciphertext.len() > INLINE_MAX_CIPHERTEXT => Err(
                DecodeError::InvalidStructure("inline ciphertext exceeds the inline limit"),
            ),
            Payload::Inline(c) if c.ciphertext.len() < INLINE_MIN_CIPHERTEXT => Err(
                DecodeError::InvalidStructure("inline ciphertext is shorter than its tag"),
            ),
            _ => Ok(()),
        }
    }
}

/// What a content op signs besides its payload: the fields an inline change binds as
/// associated data (INL-4). [`Checker::write_with`](super::Checker::write_with) hands it to the
/// sealer before the op is signed.
#[derive(Clone, Copy, Debug)]
pub struct ContentHeader<'a> {
    /// The author.
    pub issuer: &'a PublicKey,
    /// The content predecessors.
    pub predecessors: &'a [Hash],
    /// The document.
    pub document: DocumentId,
    /// The auth heads.
    pub auth_heads: &'a [Hash],
    /// The author's proof.
    pub proof: &'a Proof,
}

impl ContentOp {
    /// The signed fields other than the payload (INL-4).
    pub fn header(&self) -> ContentHeader<'_> {
        ContentHeader {
            issuer: &self.issuer,
            predecessors: &self.predecessors,
            document: self.body.document,
            auth_heads: &self.body.auth_heads,
            proof: &self.body.proof,
        }
    }
}

impl OpBody for ContentBody {
    const TAG: &'static str = "keyhive/content";
    const VERSION: u8 = 3;
    const MAX_LEN: usize = 4 * 1024;

    fn check_body(&self) -> Result<(), DecodeError> {
        self.proof.check()?;
        self.payload.check()?;
        check_sorted(&self.auth_heads, MAX_AUTH_HEADS, "auth heads")
    }

    /// INL-7: a version-1 content op (`payload_hash`, `payload_len` where version 2 has the
    /// payload) is read as a [`Payload::Blob`]; a version-2 op has the version-3 layout
    /// (SYNC-110). Their bytes, and so their hashes, stay as they were.
    fn decode_earlier_op(version: u8, body: &[u8]) -> Option<Result<Op<Self>, DecodeError>> {
        if version == 2 {
            return Some(crate::encoding::decode_canonical::<Op<Self>>(
                body,
                Self::MAX_LEN,
            ));
        }
        (version == 1).then(|| {
            crate::encoding::decode_canonical::<Op<ContentBodyV1>>(body, Self::MAX_LEN).map(|op| {
                Op {
                    issuer: op.issuer,
                    predecessors: op.predecessors,
                    body: ContentBody {
                        document: op.body.document,
                        auth_heads: op.body.auth_heads,
                        proof: op.body.proof,
                        payload: Payload::Blob {
                            hash: op.body.payload_hash,
                            len: op.body.payload_len,
                        },
                    },
                }
            })
        })
    }
}

/// The version-1 layout of a content op's body (INL-7), read only.
#[derive(Serialize, Deserialize)]
struct ContentBodyV1 {
    document: DocumentId,
    auth_heads: Vec<Hash>,
    proof: Proof,
    payload_hash: Hash,
    payload_len: u64,
}

/// A content op: `Op<ContentBody>`.
pub type ContentOp = Op<ContentBody>;

fn check_sorted(hashes: &[Hash], max: usize, what: &'static str) -> Result<(), DecodeError> {
    if hashes.len() > max {
        return Err(DecodeError::InvalidStructure(match what {
            "content heads" => "too many content heads",
            _ => "too many auth heads",
        }));
    }
    if hashes.windows(2).any(|w| w[0] >= w[1]) {
        return Err(DecodeError::InvalidStructure(match what {
            "content heads" => "content heads not strictly ascending",
            _ => "auth heads not strictly ascending",
        }));
    }
    Ok(())
}

/// Any op the checker stores, decoded but not yet verified.
#[derive(Clone, Debug)]
pub enum AnySigned {
    /// A subject's genesis.
    Genesis(Signed<Op<Genesis>>),
    /// A delegation or revocation.
    Auth(Signed<AuthOp>),
    /// CAP-24: a root-form auth op, whose issuer (and so whose signature check) waits for its
    /// subject's genesis.
    RootForm(RootFormOp),
    /// A content op.
    Content(Signed<ContentOp>),
}

/// Any op the checker stores, verified.
#[derive(Clone, Debug)]
pub enum AnyVerified {
    /// A subject's genesis.
    Genesis(Verified<Op<Genesis>>),
    /// A delegation or revocation.
    Auth(Verified<AuthOp>),
    /// A content op.
    Content(Verified<ContentOp>),
}

impl AnySigned {
    /// Decodes an envelope of any of the three op types, dispatching on its domain tag
    /// (ENC-11): bytes of any other type fail with [`DecodeError::WrongTag`].
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        match crate::encoding::peek_tag(bytes) {
            Some(<AuthBody as OpBody>::TAG) if is_root_form(bytes) => {
                RootFormOp::decode(bytes).map(AnySigned::RootForm)
            }
            Some(<AuthBody as OpBody>::TAG) => Signed::<AuthOp>::decode(bytes).map(AnySigned::Auth),
            Some(<ContentBody as OpBody>::TAG) => {
                Signed::<ContentOp>::decode(bytes).map(AnySigned::Content)
            }
            Some(<Genesis as OpBody>::TAG) => {
                Signed::<Op<Genesis>>::decode(bytes).map(AnySigned::Genesis)
            }
            _ => Err(DecodeError::WrongTag {
                expected: "keyhive/auth, keyhive/content or keyhive/genesis",
            }),
        }
    }

    /// CAP-3: the op's parents as its (not yet verified) payload names them, to triage an op
    /// before verifying it; see [`AnyVerified::parents`].
    pub fn parents(&self) -> Vec<Hash> {
        match self {
            AnySigned::Genesis(_) => Vec::new(),
            // CAP-22: an auth op's content heads are witnesses, not parents.
            AnySigned::Auth(s) => s.unverified_payload().predecessors.clone(),
            AnySigned::RootForm(r) => r.predecessors().to_vec(),
            AnySigned::Content(s) => {
                let op = s.unverified_payload();
                merge(&op.predecessors, &op.body.auth_heads)
            }
        }
    }

    /// CAP-23: the subject whose genesis is an implied parent of this op, as its (not yet
    /// verified) bytes say; see [`AnyVerified::implied_genesis`].
    pub fn implied_genesis(&self) -> Option<PublicKey> {
        match self {
            AnySigned::Auth(s) if s.format_version() >= 2 => {
                Some(s.unverified_payload().body.subject)
            }
            AnySigned::RootForm(r) => Some(r.unverified_body().subject),
            _ => None,
        }
    }

    /// The subject the op belongs to, as its payload names it.
    pub fn subject(&self) -> PublicKey {
        match self {
            AnySigned::Genesis(s) => s.unverified_payload().issuer,
            AnySigned::Auth(s) => s.unverified_payload().body.subject,
            AnySigned::RootForm(r) => r.unverified_body().subject,
            AnySigned::Content(s) => s.unverified_payload().body.document.0,
        }
    }

    /// [`Signed::check_signature`] of whichever kind of op this is (`verify_strict`, ENC-4);
    /// a root-form op (CAP-24) has no signer until it is tied to its genesis
    /// ([`VerifyError::IssuerNotKnown`](crate::signed::VerifyError::IssuerNotKnown)).
    pub fn check_signature(&self) -> Result<(), crate::signed::VerifyError> {
        match self {
            AnySigned::Genesis(s) => s.check_signature(),
            AnySigned::Auth(s) => s.check_signature(),
            AnySigned::RootForm(_) => Err(crate::signed::VerifyError::IssuerNotKnown),
            AnySigned::Content(s) => s.check_signature(),
        }
    }

    /// Treats the op as verified without checking its signature: see
    /// [`Signed::assume_verified`] (a relay's own admission marks, RELAY-7). A root-form op
    /// (CAP-24) is handed back: it cannot be an op until its issuer is known
    /// ([`Checker::resolve_root_form`](super::Checker::resolve_root_form)).
    pub fn assume_verified(self) -> Result<AnyVerified, Box<Self>> {
        match self {
            AnySigned::Genesis(s) => Ok(AnyVerified::Genesis(s.assume_verified())),
            AnySigned::Auth(s) => Ok(AnyVerified::Auth(s.assume_verified())),
            AnySigned::RootForm(r) => Err(Box::new(AnySigned::RootForm(r))),
            AnySigned::Content(s) => Ok(AnyVerified::Content(s.assume_verified())),
        }
    }

    /// The content address.
    pub fn hash(&self) -> Hash {
        match self {
            AnySigned::Genesis(s) => s.hash(),
            AnySigned::Auth(s) => s.hash(),
            AnySigned::RootForm(r) => r.hash(),
            AnySigned::Content(s) => s.hash(),
        }
    }
}

impl AnyVerified {
    /// The content address.
    pub fn hash(&self) -> Hash {
        match self {
            AnyVerified::Genesis(v) => v.hash(),
            AnyVerified::Auth(v) => v.hash(),
            AnyVerified::Content(v) => v.hash(),
        }
    }

    /// The exact envelope bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            AnyVerified::Genesis(v) => v.as_bytes(),
            AnyVerified::Auth(v) => v.as_bytes(),
            AnyVerified::Content(v) => v.as_bytes(),
        }
    }

    /// CAP-3: the op's parents in the causal DAG (predecessors, plus the auth heads of a
    /// content op). An auth op's content heads are witnesses, not parents (CAP-22).
    pub fn parents(&self) -> Vec<Hash> {
        match self {
            AnyVerified::Genesis(_) => Vec::new(),
            AnyVerified::Auth(v) => v.predecessors.clone(),
            AnyVerified::Content(v) => merge(&v.predecessors, &v.body.auth_heads),
        }
    }

    /// CAP-23: the subject whose genesis is an implied parent of this op: the subject of a
    /// `keyhive/auth` op of version 2 or later (which need not name the genesis among its
    /// predecessors); `None` for every other op, whose parents are exactly the ones it names.
    pub fn implied_genesis(&self) -> Option<PublicKey> {
        match self {
            AnyVerified::Auth(v) if v.format_version() >= 2 => Some(v.body.subject),
            _ => None,
        }
    }

    /// The subject the op belongs to (for pending-set accounting).
    pub fn subject(&self) -> PublicKey {
        match self {
            AnyVerified::Genesis(v) => v.issuer,
            AnyVerified::Auth(v) => v.body.subject,
            AnyVerified::Content(v) => v.body.document.0,
        }
    }
}

impl From<Verified<Op<Genesis>>> for AnyVerified {
    fn from(v: Verified<Op<Genesis>>) -> Self {
        AnyVerified::Genesis(v)
    }
}

impl From<Verified<AuthOp>> for AnyVerified {
    fn from(v: Verified<AuthOp>) -> Self {
        AnyVerified::Auth(v)
    }
}

impl From<Verified<ContentOp>> for AnyVerified {
    fn from(v: Verified<ContentOp>) -> Self {
        AnyVerified::Content(v)
    }
}

fn merge(a: &[Hash], b: &[Hash]) -> Vec<Hash> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    out.extend_from_slice(a);
    out.extend_from_slice(b);
    out.sort_unstable();
    out.dedup();
    out
}
