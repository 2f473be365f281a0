//! The local device's own ops (CGKA-13..CGKA-15, CGKA-27): add, remove, update and fill,
//! signing, and the secrets it keeps.

use super::*;

impl Cgka {
    /// The predecessors of a local op: the heads, at most `MAX_PREDECESSORS` of them (CGKA-4).
    /// With more heads (e.g. a flood of concurrent ops) each new op merges that many, so the
    /// head count still falls op by op.
    pub(super) fn own_predecessors(&self) -> Vec<Hash> {
        self.heads
            .iter()
            .take(CgkaBody::MAX_PREDECESSORS)
            .copied()
            .collect()
    }

    pub(super) fn sign_and_apply(
        &mut self,
        key: &SigningKey,
        body: CgkaBody,
        authority: &dyn CgkaAuthority,
    ) -> Result<CgkaOp, CreateError> {
        self.learn_leaf_keys(&body);
        let op = Verified::sign(
            Op::new(key.public_key(), self.own_predecessors(), body),
            key,
        )?;
        self.insert(Arc::new(op.clone()), authority);
        Ok(op)
    }

    pub(super) fn check_owner(&self, key: &SigningKey) -> Result<IndividualId, CreateError> {
        let id = IndividualId(key.public_key());
        if self.owner != Some(id) {
            return Err(CreateError::NotOwner);
        }
        Ok(id)
    }

    /// Adds `device` with leaf key `prekey` (CGKA-13, CGKA-16).
    pub fn add(
        &mut self,
        key: &SigningKey,
        device: IndividualId,
        prekey: PrekeyPublic,
        authority: &dyn CgkaAuthority,
    ) -> Result<CgkaOp, CreateError> {
        self.catch_up(authority);
        let me = self.check_owner(key)?;
        if !authority.may_add(&me, &device, &prekey) {
            return Err(CreateError::Unauthorized);
        }
        self.sign_and_apply(key, CgkaBody::Add { device, prekey }, authority)
    }

    /// Adds every device of `seats` (with its leaf key) in batched adds of at most
    /// [`MAX_SEATS`] seats each, ascending by device (CGKA-33, CGKA-13, CGKA-16). Seats whose
    /// leaf key is the device's own seat key go in device-key seat ops, which name devices
    /// only (as [`Cgka::add_devices`], CGKA-34); the others (a card's prekey) in batched adds,
    /// a single one as an ordinary add. Returns the ops in order.
    pub fn add_many(
        &mut self,
        key: &SigningKey,
        seats: &[(IndividualId, PrekeyPublic)],
        authority: &dyn CgkaAuthority,
    ) -> Result<Vec<CgkaOp>, CreateError> {
        self.catch_up(authority);
        let me = self.check_owner(key)?;
        let mut seats: Vec<Seat> = seats
            .iter()
            .map(|(device, prekey)| Seat {
                device: *device,
                prekey: *prekey,
            })
            .collect();
        seats.sort_by_key(|s| s.device);
        seats.dedup_by_key(|s| s.device);
        if seats
            .iter()
            .any(|s| !authority.may_add(&me, &s.device, &s.prekey))
        {
            return Err(CreateError::Unauthorized);
        }
        let (on_device, on_prekey): (Vec<Seat>, Vec<Seat>) = seats
            .into_iter()
            .partition(|s| PrekeyPublic::of_device(&s.device.0) == Some(s.prekey));
        let mut ops = Vec::with_capacity((on_device.len() + on_prekey.len()).div_ceil(MAX_SEATS));
        for chunk in on_device.chunks(MAX_SEATS) {
            let devices = chunk.iter().map(|s| s.device).collect();
            ops.push(self.sign_and_apply(key, CgkaBody::AddDevices { devices }, authority)?);
        }
        for chunk in on_prekey.chunks(MAX_SEATS) {
            let body = match chunk {
                [one] => CgkaBody::Add {
                    device: one.device,
                    prekey: one.prekey,
                },
                many => CgkaBody::AddMany {
                    seats: many.to_vec(),
                },
            };
            ops.push(self.sign_and_apply(key, body, authority)?);
        }
        Ok(ops)
    }

    /// Seats every device of `devices` on its device key (CGKA-34), in device-key seat ops of
    /// at most [`MAX_SEATS`] devices each, ascending (CGKA-33, CGKA-13, CGKA-16). Refused if
    /// some device has no seat key or is not allowed. Returns the ops in order.
    pub fn add_devices(
        &mut self,
        key: &SigningKey,
        devices: &[IndividualId],
        authority: &dyn CgkaAuthority,
    ) -> Result<Vec<CgkaOp>, CreateError> {
        let mut seats = Vec::with_capacity(devices.len());
        for device in devices {
            let seat = PrekeyPublic::of_device(&device.0).ok_or(CreateError::Unauthorized)?;
            seats.push((*device, seat));
        }
        self.add_many(key, &seats, authority)
    }

    /// Removes `device`, which must be seated (CGKA-14, CGKA-17, CGKA-26).
    pub fn remove(
        &mut self,
        key: &SigningKey,
        device: IndividualId,
        authority: &dyn CgkaAuthority,
    ) -> Result<CgkaOp, CreateError> {
        self.catch_up(authority);
        let me = self.check_owner(key)?;
        if !authority.may_remove(&me, &device) {
            return Err(CreateError::Unauthorized);
        }
        if !self.seated_after(&self.own_predecessors(), &device, authority) {
            return Err(CreateError::NotSeated(device));
        }
        self.sign_and_apply(key, CgkaBody::Remove { device }, authority)
    }

    /// Issues a key update: a fresh leaf key and path to the root, wrapped for the resolution
    /// of every copath node (CGKA-15). Afterwards this device knows the new epoch's root.
    pub fn update(
        &mut self,
        key: &SigningKey,
        authority: &dyn CgkaAuthority,
    ) -> Result<CgkaOp, CreateError> {
        self.catch_up(authority);
        let me = self.check_owner(key)?;
        let slot = self.tree.slot_of(&me).ok_or(CreateError::NotMember)?;
        let fresh = fresh_path(&self.tree, &self.document, slot)?;
        let op = Verified::sign(
            Op::new(
                key.public_key(),
                self.own_predecessors(),
                CgkaBody::Update(fresh.path.clone()),
            ),
            key,
        )?;
        let hash = op.hash();
        for (node, sk) in fresh.path.nodes.iter().zip(fresh.node_keys) {
            self.secrets.insert(node.public, sk);
        }
        self.epochs
            .insert(hash, path::epoch_root(&self.document, &fresh.root_secret));
        self.insert(Arc::new(op.clone()), authority);
        Ok(op)
    }

    /// Fills the blank inner nodes off this device's path whose children resolve to two or
    /// more keys (CGKA-27), so that later updates wrap one key per level there. Returns the
    /// ops to publish in order (none if nothing is blank), each encoded in at most
    /// [`FILL_MAX_BYTES`] so that it fits one sync item.
    pub fn fill(
        &mut self,
        key: &SigningKey,
        authority: &dyn CgkaAuthority,
    ) -> Result<Vec<CgkaOp>, CreateError> {
        self.fill_within(key, authority, FILL_MAX_BYTES, false)
    }

    /// As [`Cgka::fill`] with ops of at most `max_bytes`; with `keep`, the filler keeps the
    /// secrets it chose (what a dishonest filler could do: tests use it, with small ops, to
    /// check that CGKA-30 shuts such a filler out once removed).
    pub(crate) fn fill_within(
        &mut self,
        key: &SigningKey,
        authority: &dyn CgkaAuthority,
        max_bytes: usize,
        keep: bool,
    ) -> Result<Vec<CgkaOp>, CreateError> {
        self.catch_up(authority);
        let me = self.check_owner(key)?;
        let slot = self.tree.slot_of(&me).ok_or(CreateError::NotMember)?;
        let bodies = fill_bodies(&self.tree, &self.document, slot, max_bytes)?;
        let mut ops = Vec::with_capacity(bodies.len());
        for (body, secrets) in bodies {
            if keep {
                self.secrets
                    .extend(secrets.into_iter().map(|k| (k.public(), k)));
            }
            ops.push(self.sign_and_apply(key, CgkaBody::FillByPosition(body), authority)?);
        }
        Ok(ops)
    }

    /// The number of keys an update by this device would wrap its path secrets for now (the
    /// X25519 count of CGKA-15), or `None` if it is not seated.
    pub fn update_cost(&self) -> Option<usize> {
        let me = self.owner?;
        let slot = self.tree.slot_of(&me)?;
        let root = self.tree.root();
        Some(
            self.tree
                .direct_path(slot)
                .into_iter()
                .filter(|n| *n != root)
                .map(|n| self.tree.resolution(crate::cgka::tree::sibling(n)).len())
                .sum(),
        )
    }

    /// The local device's secrets, for the key store (KEYS-2).
    pub fn export_secrets(&self) -> CgkaSecrets {
        // CGKA-34: the seat secret is the device's signing scalar; the device key is stored on
        // its own and the seat secret derived from it again when the CGKA is started.
        let mut node_keys: Vec<Zeroizing<[u8; 32]>> = self
            .secrets
            .iter()
            .filter(|(public, _)| Some(**public) != self.own_seat)
            .map(|(_, secret)| secret.to_bytes())
            .chain(self.unindexed.iter().cloned())
            .collect();
        node_keys.sort_unstable_by(|a, b| a.as_slice().cmp(b.as_slice()));
        node_keys.dedup();
        let mut epochs: Vec<(Hash, SymmetricKey)> =
            self.epochs.iter().map(|(h, k)| (*h, k.clone())).collect();
        epochs.sort_unstable_by_key(|(h, _)| *h);
        CgkaSecrets { node_keys, epochs }
    }

    /// Restores secrets exported by [`Cgka::export_secrets`], then replays (KEYS-2).
    pub fn import_secrets(&mut self, secrets: &CgkaSecrets, authority: &dyn CgkaAuthority) {
        self.unindexed.extend(secrets.node_keys.iter().cloned());
        for (hash, key) in &secrets.epochs {
            self.epochs.insert(*hash, key.clone());
        }
        self.bad_paths.clear();
        self.rebuild(authority);
    }

    /// Bytes of secret state held for the local device (node keys and epoch roots).
    pub fn secret_bytes(&self) -> usize {
        (self.secrets.len() + self.unindexed.len()) * 64 + self.epochs.len() * 64
    }

    /// Derives the public half of every imported node secret, so that lookups by public key
    /// find them (see `unindexed`).
    pub(super) fn index_secrets(&mut self) {
        for raw in self.unindexed.drain(..) {
            let key = PrekeySecret::from_bytes(*raw);
            self.secrets.entry(key.public()).or_insert(key);
        }
    }
}

/// Builds a fresh update path for the device at `slot` against `tree` (CGKA-15).
pub fn fresh_path(
    tree: &Tree,
    document: &DocumentId,
    slot: u32,
) -> Result<path::FreshPath, PathError> {
    let nodes = tree.direct_path(slot);
    let resolutions: Vec<Vec<PrekeyPublic>> = nodes
        .iter()
        .map(|node| {
            if *node == tree.root() {
                Vec::new()
            } else {
                tree.resolution(crate::cgka::tree::sibling(*node))
            }
        })
        .collect();
    let mut leaf_secret = Zeroizing::new([0u8; 32]);
    rand::Rng::fill_bytes(&mut crate::crypto::csprng(), &mut *leaf_secret);
    path::generate(document, leaf_secret, &resolutions)
}

/// Room left in a fill op for everything but its nodes: the envelope (issuer, up to 64
/// predecessors, tags, signature), the ephemeral key and the commitment, rounded up.
const FILL_ENVELOPE_ROOM: usize = 4096;

/// An upper bound on the encoded size of a positioned filled node with `wraps` wrapped
/// secrets (CGKA-35).
pub(super) fn filled_node_len(wraps: usize) -> usize {
    5 + 32 + 5 + 58 * wraps
}

/// A key the fill can wrap for, where it sits: its node (absolute index) and its rank there.
#[derive(Clone, Copy)]
struct Placed {
    node: u32,
    rank: u32,
    key: PrekeyPublic,
}

/// The fill op being built: its one-time key, its nodes, the recipients of each (for the
/// commitment) and the secret keys chosen.
struct OpInProgress {
    ephemeral: PrekeySecret,
    ephemeral_public: PrekeyPublic,
    nodes: Vec<PositionedNode>,
    recipients: Vec<Vec<PrekeyPublic>>,
    chosen: Vec<PrekeySecret>,
    /// The nodes filled in this op, with their secret keys: a node whose left child is among
    /// them derives its secret from that child's (CGKA-27, the fill chain).
    keys: HashMap<u32, PrekeySecret>,
}

impl OpInProgress {
    fn new() -> Self {
        let ephemeral = PrekeySecret::generate();
        OpInProgress {
            ephemeral_public: ephemeral.public(),
            ephemeral,
            nodes: Vec::new(),
            recipients: Vec::new(),
            chosen: Vec::new(),
            keys: HashMap::new(),
        }
    }

    /// CGKA-35: the op's body, with its commitment to the recipients.
    fn finish(self, document: &DocumentId) -> (PositionedFill, Vec<PrekeySecret>) {
        let ephemeral = self.ephemeral_public;
        let recipients = path::recipients_commitment(
            document,
            &ephemeral,
            self.nodes
                .iter()
                .zip(&self.recipients)
                .map(|(n, keys)| (n.node, keys.as_slice())),
        );
        let body = PositionedFill {
            ephemeral,
            recipients,
            nodes: self.nodes,
        };
        (body, self.chosen)
    }
}

/// The keys `node` holds in `tree`, each with its position: its node and its rank among them
/// in ascending order (CGKA-35).
fn node_keys(tree: &Tree, node: u32) -> Vec<Placed> {
    let mut keys: Vec<PrekeyPublic> = tree.entries(node).iter().map(|e| e.public).collect();
    keys.sort_unstable();
    keys.dedup();
    keys.into_iter()
        .enumerate()
        .map(|(rank, key)| Placed {
            node,
            rank: u32::try_from(rank).unwrap_or(u32::MAX),
            key,
        })
        .collect()
}

/// CGKA-27, CGKA-35: the fill ops' bodies for the device at `slot`: every blank inner node
/// off its direct path whose children resolve (counting the nodes filled so far) to two or
/// more keys gets a fresh secret wrapped for them, each wrap naming its recipient by
/// position, level by level from the leaves up, cut into bodies of at most `max_bytes`
/// encoded (with the envelope), each with its own one-time key and its commitment.
pub(super) fn fill_bodies(
    tree: &Tree,
    document: &DocumentId,
    slot: u32,
    max_bytes: usize,
) -> Result<Vec<(PositionedFill, Vec<PrekeySecret>)>, PathError> {
    let own: HashSet<u32> = tree.direct_path(slot).into_iter().collect();
    let budget = max_bytes.saturating_sub(FILL_ENVELOPE_ROOM).max(1);
    let nodes = 2 * tree.capacity() - 1;
    // The resolution of each inner node as it will be once the fills so far are applied.
    let mut resolved: HashMap<u32, Vec<Placed>> = HashMap::new();
    let mut bodies = Vec::new();
    let mut current = OpInProgress::new();
    let mut used = 0usize;
    for level in 1..=tree.depth() {
        let mut node = (1u32 << level) - 1;
        while node < nodes {
            let here = node_keys(tree, node);
            if !here.is_empty() {
                resolved.insert(node, here);
            } else {
                let (l, r) = crate::cgka::tree::children(node);
                let mut left_keys = Vec::new();
                let mut keys = Vec::new();
                for (child, out) in [(l, &mut left_keys), (r, &mut keys)] {
                    if child % 2 == 0 {
                        out.extend(node_keys(tree, child));
                    } else if let Some(below) = resolved.remove(&child) {
                        out.extend(below);
                    }
                }
                let right_keys = keys.clone();
                keys.splice(0..0, left_keys);
                if own.contains(&node) || node == tree.root() || keys.len() < 2 {
                    resolved.insert(node, keys);
                } else {
                    let len = filled_node_len(keys.len());
                    if used + len > budget && !current.nodes.is_empty() {
                        let full = std::mem::replace(&mut current, OpInProgress::new());
                        bodies.push(full.finish(document));
                        used = 0;
                    }
                    let (secret, recipients) = match current.keys.get(&l) {
                        Some(left) => (path::chain_secret(left), &right_keys),
                        None => {
                            let mut secret = Zeroizing::new([0u8; 32]);
                            rand::Rng::fill_bytes(&mut crate::crypto::csprng(), &mut *secret);
                            (secret, &keys)
                        }
                    };
                    // CGKA-35: positions relative to the node's leftmost leaf.
                    let leftmost = node - ((1u32 << level) - 1);
                    let mut targets: Vec<path::Target> = recipients
                        .iter()
                        .map(|p| path::Target {
                            at: p.node - leftmost,
                            rank: p.rank,
                            key: p.key,
                        })
                        .collect();
                    targets.sort_unstable();
                    targets.dedup_by_key(|t| (t.at, t.rank));
                    let (filled, chosen) = path::fill_node_at(
                        document,
                        &current.ephemeral,
                        &current.ephemeral_public,
                        node,
                        &secret,
                        &targets,
                    )?;
                    current.keys.insert(node, chosen.clone());
                    resolved.insert(
                        node,
                        vec![Placed {
                            node,
                            rank: 0,
                            key: filled.public,
                        }],
                    );
                    current
                        .recipients
                        .push(targets.iter().map(|t| t.key).collect());
                    current.nodes.push(filled);
                    current.chosen.push(chosen);
                    used += len;
                }
            }
            node += 1u32 << (level + 1);
        }
    }
    if !current.nodes.is_empty() {
        bodies.push(current.finish(document));
    }
    Ok(bodies)
}
