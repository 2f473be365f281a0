//! CGKA op wire types (`specs/cgka.md` §2, CGKA-1..CGKA-4).

use serde::{Deserialize, Serialize};

use crate::crypto::prekey::PrekeyPublic;
use crate::encoding::DecodeError;
use crate::identity::{DocumentId, IndividualId};
use crate::signed::{Op, OpBody, Signed, Verified};

/// Most levels an update path may carry: a tree of 2^31 leaves (CGKA-3).
pub const MAX_PATH_LEN: usize = 32;

/// Most nodes one fill op may carry (CGKA-3, CGKA-27).
pub const MAX_FILL_NODES: usize = 1 << 16;

/// Most seats one batched add may carry (CGKA-3, CGKA-33, CGKA-34): 2,048 seats of at most 64
/// bytes keep the op within [`FILL_MAX_BYTES`], so that it fits one sync item.
pub const MAX_SEATS: usize = 2_048;

/// Largest encoded fill op a replica builds: the ops of one fill are cut so that each fits
/// one sync item (256 KiB, `specs/sync.md` SYNC-2) with room for the envelope (CGKA-4, CGKA-27).
pub const FILL_MAX_BYTES: usize = 192 * 1024;

/// The body of a signed CGKA op. Variant order is the wire tag: never reorder (CGKA-1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CgkaBody {
    /// Genesis of a document's CGKA: binds it to `document` and seats the issuer at leaf 0
    /// with `prekey` as its leaf key (CGKA-2).
    Init {
        /// The document this CGKA belongs to.
        document: DocumentId,
        /// The creator's signed prekey, its first leaf key.
        prekey: PrekeyPublic,
    },
    /// Seats `device` at the leftmost free leaf with `prekey` as its leaf key (CGKA-13).
    Add {
        /// The device added.
        device: IndividualId,
        /// One of the device's signed prekeys.
        prekey: PrekeyPublic,
    },
    /// Empties `device`'s leaf and blanks its path (CGKA-14).
    Remove {
        /// The device removed.
        device: IndividualId,
    },
    /// Replaces the issuer's leaf key and every key on its path to the root (CGKA-15).
    Update(UpdatePath),
    /// Gives blank inner nodes off the issuer's path fresh keys (CGKA-27, CGKA-28), naming
    /// each wrap's recipient in full: what replicas built before CGKA-35, still applied.
    Fill(FillNodes),
    /// Seats several devices, each as an [`CgkaBody::Add`] would, in the order listed: one
    /// signed op for many adds (CGKA-33).
    AddMany {
        /// The seats, strictly ascending by device; 1 to [`MAX_SEATS`].
        seats: Vec<Seat>,
    },
    /// Seats several devices on their device keys, in the order listed: each device's leaf
    /// key is the X25519 form of its Ed25519 device key, so the op names devices only and no
    /// contact card is needed to check it (CGKA-33, CGKA-34). What a replica builds.
    AddDevices {
        /// The devices, strictly ascending; 1 to [`MAX_SEATS`].
        devices: Vec<IndividualId>,
    },
    /// Gives blank inner nodes off the issuer's path fresh keys, as [`CgkaBody::Fill`], with
    /// each wrap naming its recipient by position and the op committing to the recipients'
    /// keys (CGKA-35). What a replica builds.
    FillByPosition(PositionedFill),
}

/// One device seated by [`CgkaBody::AddMany`] with its leaf key (CGKA-33).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seat {
    /// The device added.
    pub device: IndividualId,
    /// One of the device's signed prekeys.
    pub prekey: PrekeyPublic,
}

impl CgkaBody {
    /// The devices an add, a batched add or a device-key seat op seats, each with its leaf
    /// key, in order; empty for other ops. A device-key seat's leaf key is
    /// [`PrekeyPublic::of_device`] (CGKA-34), `None` for a device key that has no usable
    /// X25519 form (never seated).
    pub fn seats(&self) -> Vec<(IndividualId, Option<PrekeyPublic>)> {
        match self {
            CgkaBody::Add { device, prekey } => vec![(*device, Some(*prekey))],
            CgkaBody::AddMany { seats } => {
                seats.iter().map(|s| (s.device, Some(s.prekey))).collect()
            }
            CgkaBody::AddDevices { devices } => devices
                .iter()
                .map(|d| (*d, PrekeyPublic::of_device(&d.0)))
                .collect(),
            CgkaBody::Init { .. }
            | CgkaBody::Remove { .. }
            | CgkaBody::Update(_)
            | CgkaBody::Fill(_)
            | CgkaBody::FillByPosition(_) => Vec::new(),
        }
    }

    /// Whether this op seats devices (an add, a batched add or a device-key seat op).
    pub fn is_add(&self) -> bool {
        matches!(
            self,
            CgkaBody::Add { .. } | CgkaBody::AddMany { .. } | CgkaBody::AddDevices { .. }
        )
    }

    /// The devices this op names as seated (adds) or unseated (a remove), without their keys.
    pub fn named_devices(&self) -> Vec<IndividualId> {
        match self {
            CgkaBody::Add { device, .. } | CgkaBody::Remove { device } => vec![*device],
            CgkaBody::AddMany { seats } => seats.iter().map(|s| s.device).collect(),
            CgkaBody::AddDevices { devices } => devices.clone(),
            CgkaBody::Init { .. }
            | CgkaBody::Update(_)
            | CgkaBody::Fill(_)
            | CgkaBody::FillByPosition(_) => Vec::new(),
        }
    }
}

/// Fresh keys for blank inner nodes, each node's secret wrapped for its children's
/// resolution (CGKA-27).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FillNodes {
    /// The public half of the op's one-time sender key: every wrap in the op is made with it
    /// in place of the path node key of CGKA-9.
    pub ephemeral: PrekeyPublic,
    /// The filled nodes, strictly ascending by (level, node index): children before parents.
    pub nodes: Vec<FilledNode>,
}

/// One filled node: its index, its new public key, and its secret wrapped for every key of
/// the resolution of its two children (CGKA-27).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilledNode {
    /// The inner node's index (odd, CGKA-5).
    pub node: u32,
    /// The node's new X25519 public key (`node_key` of its secret, CGKA-8).
    pub public: PrekeyPublic,
    /// The node's 32-byte secret for each recipient, strictly ascending by recipient; never
    /// empty.
    pub wrapped: Vec<WrappedSecret>,
}

/// A fill whose wraps name their recipients by position in the filler's tree, with one
/// commitment to the recipients' keys (CGKA-35).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PositionedFill {
    /// The public half of the op's one-time sender key (as [`FillNodes::ephemeral`]).
    pub ephemeral: PrekeyPublic,
    /// `recipients_commitment` of the document, `ephemeral` and every wrap's recipient key,
    /// node by node in op order (CGKA-35).
    pub recipients: [u8; 32],
    /// The filled nodes, strictly ascending by (level, node index): children before parents.
    pub nodes: Vec<PositionedNode>,
}

/// One filled node of a [`PositionedFill`]: its index, its new public key, and its secret
/// wrapped for every key of its children's resolution, each named by position (CGKA-35).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PositionedNode {
    /// The inner node's index (odd, CGKA-5).
    pub node: u32,
    /// The node's new X25519 public key (`node_key` of its secret, CGKA-8).
    pub public: PrekeyPublic,
    /// The node's 32-byte secret for each recipient, strictly ascending by `(at, rank)`;
    /// never empty.
    pub wrapped: Vec<PositionedSecret>,
}

/// A 32-byte secret encrypted for the key at one position of the tree (CGKA-35).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PositionedSecret {
    /// The recipient's node, as its offset from the leftmost leaf of the filled node's
    /// subtree (so always strictly below the filled node; CGKA-3).
    pub at: u32,
    /// The recipient's index among the keys of that node, sorted ascending.
    pub rank: u32,
    /// XChaCha20 ciphertext of the 32-byte secret.
    pub ciphertext: [u8; 32],
    /// Poly1305 tag.
    pub tag: [u8; 16],
}

/// The node a [`PositionedSecret`] of filled node `node` names: `node`'s leftmost leaf plus
/// `at`, or `None` when that is not strictly below `node` (CGKA-35).
pub fn position_node(node: u32, at: u32) -> Option<u32> {
    let half = (1u64 << super::tree::level(node)) - 1;
    let at = u64::from(at);
    if at > 2 * half || at == half {
        return None;
    }
    u32::try_from(u64::from(node) - half + at).ok()
}

/// A fresh path from the issuer's leaf to the root (CGKA-3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdatePath {
    /// `nodes[0]` is the leaf, `nodes[last]` the root.
    pub nodes: Vec<PathNode>,
}

/// One node on an update path: its new public key and the next path secret up, wrapped for
/// every key in the resolution of this node's sibling (CGKA-9).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathNode {
    /// The node's new X25519 public key.
    pub public: PrekeyPublic,
    /// The parent's path secret for each resolution key of the sibling, strictly ascending by
    /// recipient. Empty for the root.
    pub wrapped: Vec<WrappedSecret>,
}

/// A 32-byte path secret encrypted for one X25519 public key (CGKA-9).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrappedSecret {
    /// The public key whose secret half can unwrap this.
    pub recipient: PrekeyPublic,
    /// XChaCha20 ciphertext of the 32-byte secret.
    pub ciphertext: [u8; 32],
    /// Poly1305 tag.
    pub tag: [u8; 16],
}

impl OpBody for CgkaBody {
    const TAG: &'static str = "keyhive/cgka";
    const VERSION: u8 = 1;
    /// 4 MiB: a full-resolution update for about 50,000 members (CGKA-4).
    const MAX_LEN: usize = 4 << 20;
}

/// A CGKA op as received: decoded, structure-checked, not yet verified.
pub type SignedCgkaOp = Signed<Op<CgkaBody>>;
/// A CGKA op whose signature has been checked.
pub type CgkaOp = Verified<Op<CgkaBody>>;

/// Structural rules of a CGKA op that the generic envelope cannot check (CGKA-3, CGKA-4).
pub fn check_body(op: &Op<CgkaBody>) -> Result<(), DecodeError> {
    match &op.body {
        CgkaBody::Init { .. } => {
            if !op.predecessors.is_empty() {
                return Err(DecodeError::InvalidStructure(
                    "cgka init must have no predecessors",
                ));
            }
        }
        CgkaBody::Add { .. }
        | CgkaBody::Remove { .. }
        | CgkaBody::Update(_)
        | CgkaBody::Fill(_)
        | CgkaBody::FillByPosition(_)
        | CgkaBody::AddMany { .. }
        | CgkaBody::AddDevices { .. } => {
            if op.predecessors.is_empty() {
                return Err(DecodeError::InvalidStructure(
                    "cgka op other than init needs predecessors",
                ));
            }
        }
    }
    if let CgkaBody::Fill(fill) = &op.body {
        check_fill(fill)?;
    }
    if let CgkaBody::FillByPosition(fill) = &op.body {
        check_positioned_fill(fill)?;
    }
    if let CgkaBody::AddMany { seats } = &op.body {
        // CGKA-3: 1 to MAX_SEATS seats, strictly ascending by device (one canonical order,
        // no device twice).
        if seats.is_empty() || seats.len() > MAX_SEATS {
            return Err(DecodeError::InvalidStructure(
                "batched add seat count out of range",
            ));
        }
        if seats.windows(2).any(|w| w[0].device >= w[1].device) {
            return Err(DecodeError::InvalidStructure(
                "batched add seats not strictly ascending by device",
            ));
        }
    }
    if let CgkaBody::AddDevices { devices } = &op.body {
        // CGKA-3, CGKA-34: 1 to MAX_SEATS devices, strictly ascending.
        if devices.is_empty() || devices.len() > MAX_SEATS {
            return Err(DecodeError::InvalidStructure(
                "device-key seat count out of range",
            ));
        }
        if devices.windows(2).any(|w| w[0] >= w[1]) {
            return Err(DecodeError::InvalidStructure(
                "device-key seats not strictly ascending",
            ));
        }
    }
    if let CgkaBody::Update(path) = &op.body {
        if path.nodes.is_empty() || path.nodes.len() > MAX_PATH_LEN {
            return Err(DecodeError::InvalidStructure(
                "update path length out of range",
            ));
        }
        for node in &path.nodes {
            if node
                .wrapped
                .windows(2)
                .any(|w| w[0].recipient >= w[1].recipient)
            {
                return Err(DecodeError::InvalidStructure(
                    "wrapped secrets not strictly ascending by recipient",
                ));
            }
        }
        if path
            .nodes
            .last()
            .is_some_and(|root| !root.wrapped.is_empty())
        {
            return Err(DecodeError::InvalidStructure(
                "root node carries wrapped secrets",
            ));
        }
    }
    Ok(())
}

/// CGKA-3: what both fill forms require of their node list: 1 to [`MAX_FILL_NODES`] inner
/// nodes, strictly ascending by (level, index), each wrapping its secret for someone.
fn check_fill_nodes<N>(
    nodes: &[N],
    node: impl Fn(&N) -> u32,
    wraps: impl Fn(&N) -> usize,
) -> Result<(), DecodeError> {
    if nodes.is_empty() || nodes.len() > MAX_FILL_NODES {
        return Err(DecodeError::InvalidStructure(
            "fill node count out of range",
        ));
    }
    if nodes.iter().any(|n| node(n).is_multiple_of(2)) {
        return Err(DecodeError::InvalidStructure("fill names a leaf"));
    }
    let order = |n: &N| (super::tree::level(node(n)), node(n));
    if nodes.windows(2).any(|w| order(&w[0]) >= order(&w[1])) {
        return Err(DecodeError::InvalidStructure(
            "fill nodes not strictly ascending by level and index",
        ));
    }
    if nodes.iter().any(|n| wraps(n) == 0) {
        return Err(DecodeError::InvalidStructure(
            "filled node wraps for no one",
        ));
    }
    Ok(())
}

/// CGKA-3: a fill's node list as [`check_fill_nodes`], each node's wrapped secrets strictly
/// ascending by recipient.
fn check_fill(fill: &FillNodes) -> Result<(), DecodeError> {
    check_fill_nodes(&fill.nodes, |n| n.node, |n| n.wrapped.len())?;
    for node in &fill.nodes {
        if node
            .wrapped
            .windows(2)
            .any(|w| w[0].recipient >= w[1].recipient)
        {
            return Err(DecodeError::InvalidStructure(
                "wrapped secrets not strictly ascending by recipient",
            ));
        }
    }
    Ok(())
}

/// CGKA-3, CGKA-35: a positioned fill's node list as [`check_fill_nodes`], each node's wrapped
/// secrets strictly ascending by `(at, rank)`, each naming a node strictly below the filled
/// node.
fn check_positioned_fill(fill: &PositionedFill) -> Result<(), DecodeError> {
    check_fill_nodes(&fill.nodes, |n| n.node, |n| n.wrapped.len())?;
    for node in &fill.nodes {
        if node
            .wrapped
            .windows(2)
            .any(|w| (w[0].at, w[0].rank) >= (w[1].at, w[1].rank))
        {
            return Err(DecodeError::InvalidStructure(
                "wrapped secrets not strictly ascending by position",
            ));
        }
        if node
            .wrapped
            .iter()
            .any(|w| position_node(node.node, w.at).is_none())
        {
            return Err(DecodeError::InvalidStructure(
                "wrap names a position outside the filled node's subtree",
            ));
        }
    }
    Ok(())
}
