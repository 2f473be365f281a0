//! Replay (CGKA-12..CGKA-15, CGKA-28..CGKA-32): refreshing against the capability graph,
//! rebuilding the tree in op order, applying updates and fills, and learning secrets.

use super::*;

impl Cgka {
    /// Makes the tree reflect `authority` (CGKA-12, CGKA-20, CGKA-32). Call whenever the
    /// capability graph changes.
    ///
    /// Replay is a function of the ops, their order and the authority's answer on each add and
    /// remove (updates and fills ask nothing), so this replays from scratch only when one of
    /// those answers changed since the tree applied it. It asks again every remove and every
    /// refused add; the adds it allowed only when the authority gives no allowed-adds stamp
    /// or a different one than when they were last asked
    /// ([`CgkaAuthority::allowed_adds_stamp`]). A revocation through the device API thus costs
    /// one question per remove and per refused add, not a replay of the whole history.
    pub fn refresh(&mut self, authority: &dyn CgkaAuthority) {
        if self.answers_changed(authority) {
            self.rebuild(authority);
        } else if self.stale {
            self.replay_changed(authority);
        }
    }

    /// CGKA-36: defers the replays that ops arriving out of replay order would each cause,
    /// until [`Cgka::settle`]. A replica receiving a batch of ops (a sync round, or its store
    /// on open) calls this first and `settle` after the batch's last op, so the batch costs
    /// one replay, not one per op that sorts before an applied one. Until then [`Cgka::tree`],
    /// [`Cgka::heads`], [`Cgka::ops_in_order`] and the epoch accessors may describe the ops
    /// applied before the first deferred replay; receiving, [`Cgka::op_count`] and
    /// [`Cgka::contains_op`] stay exact, and making a local op, or receiving a remove (whose
    /// check needs the tree, CGKA-26), replays first.
    pub fn defer_replay(&mut self) {
        self.deferring = true;
    }

    /// Ends what [`Cgka::defer_replay`] began: replays once if an op arrived out of replay
    /// order since (CGKA-36). The tree is then exactly the one replaying op by op would give.
    pub fn settle(&mut self, authority: &dyn CgkaAuthority) {
        self.deferring = false;
        self.catch_up(authority);
    }

    /// Replays now if a deferred replay is owed (CGKA-36), staying in deferred mode.
    pub(super) fn catch_up(&mut self, authority: &dyn CgkaAuthority) {
        if self.stale {
            self.replay_changed(authority);
        }
    }

    /// CGKA-32: whether `authority` now answers some add or remove otherwise than the tree
    /// applied it.
    pub(super) fn answers_changed(&mut self, authority: &dyn CgkaAuthority) -> bool {
        let differs = |hash: &Hash| {
            self.ops.get(hash).is_some_and(|op| {
                self.verdict_of(op, authority).as_ref() != self.verdicts.get(hash)
            })
        };
        let stamp = authority.allowed_adds_stamp();
        if stamp.is_some() && stamp == self.adds_stamp {
            return self.recheck.iter().any(differs);
        }
        let changed = self.verdicts.keys().any(differs);
        if !changed {
            self.adds_stamp = stamp;
        }
        changed
    }

    /// Replays every op from scratch (what [`Cgka::refresh`] does when an answer changed);
    /// tests compare it with the refresh.
    #[cfg(test)]
    pub(crate) fn replay_from_scratch(&mut self, authority: &dyn CgkaAuthority) {
        self.rebuild(authority);
    }

    /// Replays every op from the init.
    pub(super) fn rebuild(&mut self, authority: &dyn CgkaAuthority) {
        self.stale = false;
        self.verdicts.clear();
        self.recheck.clear();
        self.adds_stamp = authority.allowed_adds_stamp();
        self.generation += 1;
        self.set_order(topological_order(&self.ops));
        self.tree = Tree::default();
        self.heads.clear();
        self.structural.clear();
        self.superseded.clear();
        self.superseded_at.clear();
        self.taint.clear();
        self.tainted_by.clear();
        self.replay_from(0, authority);
    }

    /// The replayed ops that are not in `op`'s causal past, found by walking back from the
    /// current heads and from `op`'s predecessors in descending replay position, marking what
    /// each reaches, and stopping once every open path is known to lead into `op`'s past.
    /// Cost: the part of the DAG between them, not the whole history.
    pub(super) fn concurrent_with(&self, op: &CgkaOp) -> DigestSet {
        const FROM_HEADS: u8 = 1;
        const IN_PAST: u8 = 2;
        let mut flags: DigestMap<u8> = DigestMap::default();
        let mut queue: BinaryHeap<(usize, Hash)> = BinaryHeap::new();
        let mut open = 0usize; // queued nodes not (yet) known to be in the past
        let mark = |hash: Hash,
                    flag: u8,
                    flags: &mut DigestMap<u8>,
                    queue: &mut BinaryHeap<(usize, Hash)>,
                    open: &mut usize| {
            let Some(&pos) = self.position.get(&hash) else {
                return;
            };
            match flags.get_mut(&hash) {
                Some(existing) => {
                    if *existing & IN_PAST == 0 && flag & IN_PAST != 0 {
                        *open -= 1;
                    }
                    *existing |= flag;
                }
                None => {
                    flags.insert(hash, flag);
                    queue.push((pos, hash));
                    if flag & IN_PAST == 0 {
                        *open += 1;
                    }
                }
            }
        };
        for p in &op.predecessors {
            mark(*p, IN_PAST, &mut flags, &mut queue, &mut open);
        }
        for h in &self.heads {
            mark(*h, FROM_HEADS, &mut flags, &mut queue, &mut open);
        }
        let mut concurrent = DigestSet::default();
        while open > 0 {
            let Some((_, hash)) = queue.pop() else {
                break;
            };
            let flag = flags.get(&hash).copied().unwrap_or(0);
            if flag & IN_PAST == 0 {
                open -= 1;
                concurrent.insert(hash);
            }
            if let Some(node) = self.ops.get(&hash) {
                for parent in &node.predecessors {
                    mark(*parent, flag, &mut flags, &mut queue, &mut open);
                }
            }
        }
        concurrent
    }

    /// Test-only cross-check of [`Cgka::concurrent_with`] against a full ancestor walk.
    #[cfg(test)]
    pub(super) fn check_concurrent(&self, op: &CgkaOp, concurrent: &DigestSet) {
        let mut past = DigestSet::default();
        let mut stack: Vec<Hash> = op.predecessors.clone();
        while let Some(h) = stack.pop() {
            if past.insert(h)
                && let Some(parent) = self.ops.get(&h)
            {
                stack.extend(parent.predecessors.iter().copied());
            }
        }
        let applied = &self.order[..self
            .order
            .iter()
            .position(|h| *h == op.hash())
            .unwrap_or(self.order.len())];
        let expected: DigestSet = applied
            .iter()
            .filter(|h| !past.contains(h))
            .copied()
            .collect();
        assert_eq!(
            &expected, concurrent,
            "concurrent_with disagrees with a full walk"
        );
    }

    /// Applies one op at the end of the replay (CGKA-12..CGKA-15).
    pub(super) fn apply(&mut self, hash: Hash, authority: &dyn CgkaAuthority) {
        let Some(op) = self.ops.get(&hash).cloned() else {
            return;
        };
        let past = if self
            .heads
            .iter()
            .all(|h| op.predecessors.binary_search(h).is_ok())
        {
            Past::All
        } else {
            let concurrent = self.concurrent_with(&op);
            #[cfg(test)]
            self.check_concurrent(&op, &concurrent);
            Past::AllExcept(concurrent)
        };
        self.generation += 1;
        let verdict = self.verdict_of(&op, authority);
        if let Some(answers) = &verdict {
            // CGKA-32: an allowed add is asked again only when the allowed-adds stamp moves.
            let adds = op.body.is_add();
            if adds && answers.iter().all(|a| *a) {
                self.recheck.remove(&hash);
            } else {
                self.recheck.insert(hash);
            }
            self.verdicts.insert(hash, answers.clone());
        }
        let allowed = |i: usize| verdict.as_ref().is_some_and(|v| v.get(i) == Some(&true));
        let issuer = IndividualId(op.issuer);
        match &op.body {
            CgkaBody::Init { prekey, .. } => {
                let entry = Entry {
                    op: hash,
                    public: *prekey,
                };
                if self.tree.seat(issuer, entry).is_some() {
                    self.structural.push(hash);
                }
            }
            // CGKA-33, CGKA-34: each seat as an add of its own, in order, answered on its own.
            CgkaBody::Add { .. } | CgkaBody::AddMany { .. } | CgkaBody::AddDevices { .. } => {
                for (i, (device, key)) in self.seats_of(&op.body).into_iter().enumerate() {
                    let Some(public) = key.filter(|_| allowed(i)) else {
                        continue;
                    };
                    let entry = Entry { op: hash, public };
                    if let Some(slot) = self.tree.seat(device, entry) {
                        self.structural_change(hash, &past, slot);
                    }
                }
            }
            CgkaBody::Remove { device } => {
                if allowed(0)
                    && self.seated_in_past(&op, device, &past, authority)
                    && let Some(slot) = self.tree.unseat(device)
                {
                    self.structural_change(hash, &past, slot);
                    self.blank_tainted(device);
                }
            }
            CgkaBody::Update(update) => self.apply_update(hash, issuer, update, &past),
            CgkaBody::Fill(fill) => self.apply_fill(hash, issuer, fill, &past),
            CgkaBody::FillByPosition(fill) => {
                // CGKA-35: a fill whose positions do not resolve, or resolve to keys other
                // than those it committed to, is inert here: nothing written, nothing learned.
                let resolved = match self.resolve_fill(fill, &past) {
                    Some(resolved) => Some(resolved),
                    // A membership change concurrent with the fill keeps it from being
                    // written (CGKA-28) but not from being read: its past is replayed alone.
                    None if self.owner.is_some_and(|o| o != issuer)
                        && !self.no_concurrent_change(&past) =>
                    {
                        self.resolve_in_own_past(&op, fill, authority)
                    }
                    None => None,
                };
                if let Some(resolved) = resolved {
                    self.apply_fill(hash, issuer, &resolved, &past);
                }
            }
        }
        for p in &op.predecessors {
            self.heads.remove(p);
        }
        self.heads.insert(hash);
    }

    /// CGKA-26 on replay: a remove takes effect only if its device is seated in the tree the
    /// remove was made against (its causal past under `authority`). A remove that entered the
    /// DAG while another view seated the device (e.g. before a revocation made that add
    /// unauthorised, or as a parked op's dependency) is then a no-op everywhere, as on replicas
    /// that refused it on receipt; otherwise it would unseat a concurrent re-add on some
    /// replicas only.
    fn seated_in_past(
        &self,
        op: &CgkaOp,
        device: &IndividualId,
        past: &Past,
        authority: &dyn CgkaAuthority,
    ) -> bool {
        match past {
            Past::All => self.tree.slot_of(device).is_some(),
            Past::AllExcept(_) => self.seated_after(&op.predecessors, device, authority),
        }
    }

    /// CGKA-12: a membership change invalidates every inner key written concurrently with it.
    /// Keys superseded on the changed slot's path are forgotten too: a device removed from
    /// below them may know them, so no later update may use them as targets (CGKA-15 (c)).
    pub(super) fn structural_change(&mut self, hash: Hash, past: &Past, slot: u32) {
        if let Past::AllExcept(concurrent) = past {
            self.tree.retain_inner(|op| !concurrent.contains(op));
        }
        for node in self.tree.direct_path(slot) {
            for key in self.superseded_at.remove(&node).unwrap_or_default() {
                self.superseded.remove(&key);
            }
        }
        if self.structural.last() != Some(&hash) {
            self.structural.push(hash);
        }
    }

    /// CGKA-15: writes an update's keys; inner keys only if no membership change is
    /// concurrent with it.
    pub(super) fn apply_update(
        &mut self,
        hash: Hash,
        issuer: IndividualId,
        update: &UpdatePath,
        past: &Past,
    ) {
        let Some(slot) = self.tree.slot_of(&issuer) else {
            // CGKA-38: its author was removed by a membership change ordered before it (a
            // concurrent removal or leave). Nothing of it enters the tree, but the secrets it
            // wrapped for this device are still learned: a change its author sealed under it
            // can be valid (made before the removal, CAP-11, or witnessed by the author's own
            // leave, CAP-22), and without its epoch no reader could ever open that change
            // (simulation seeds 51827, 105984). Learning is order-independent this way: had
            // the update replayed first, it would have been learned below.
            if self.owner.is_some() && self.owner != Some(issuer) {
                self.learn(hash, update);
            }
            return;
        };
        let nodes = self.tree.direct_path(slot);
        let Some(leaf) = update.nodes.first() else {
            return;
        };
        let superseded = |h: &Hash| past.contains(h);
        let inner_valid = self.no_concurrent_change(past)
            && nodes.len() == update.nodes.len()
            && self.wraps_stay_inside(&nodes, update, past);

        let mut dropped = self
            .tree
            .write(
                nodes[0],
                Entry {
                    op: hash,
                    public: leaf.public,
                },
                superseded,
            )
            .into_iter()
            .map(|e| (nodes[0], e))
            .collect::<Vec<_>>();
        if inner_valid {
            // CGKA-29: path node `j` is known to whoever holds a key its path secret was
            // wrapped for at a level below `j`.
            let mut taint: Vec<IndividualId> = Vec::new();
            for (j, (node, path_node)) in nodes.iter().zip(&update.nodes).enumerate().skip(1) {
                for w in &update.nodes[j - 1].wrapped {
                    if let Some(t) = self.taint.get(&w.recipient) {
                        taint.extend(t.iter().copied());
                    }
                }
                taint.sort_unstable();
                taint.dedup();
                let gone = self.tree.write(
                    *node,
                    Entry {
                        op: hash,
                        public: path_node.public,
                    },
                    superseded,
                );
                dropped.extend(gone.into_iter().map(|e| (*node, e)));
                self.set_taint(path_node.public, &taint);
            }
        }
        for (node, entry) in dropped {
            self.superseded.insert(
                entry.public,
                Superseded {
                    node,
                    by: hash,
                    op: entry.op,
                },
            );
            self.superseded_at
                .entry(node)
                .or_default()
                .push(entry.public);
        }
        if self.owner.is_some() && self.owner != Some(issuer) {
            self.learn(hash, update);
        }
    }

    /// CGKA-15 (a), CGKA-28: whether every membership change applied so far is in the past.
    pub(super) fn no_concurrent_change(&self, past: &Past) -> bool {
        match past {
            Past::All => true,
            Past::AllExcept(concurrent) => !self.structural.iter().any(|h| concurrent.contains(h)),
        }
    }

    /// CGKA-29: records the devices that may know `key`'s secret without being seated below
    /// its node.
    pub(super) fn set_taint(&mut self, key: PrekeyPublic, taint: &[IndividualId]) {
        if taint.is_empty() {
            return;
        }
        for device in taint {
            self.tainted_by.entry(*device).or_default().push(key);
        }
        self.taint.insert(key, taint.to_vec());
    }

    /// CGKA-30: an effective remove of `device` also drops every inner key it may know
    /// without being seated below it (the keys it filled and the keys wrapped for those), and
    /// forgets such keys among the superseded ones (CGKA-15 (c)).
    pub(super) fn blank_tainted(&mut self, device: &IndividualId) {
        let Some(keys) = self.tainted_by.remove(device) else {
            return;
        };
        let keys: HashSet<PrekeyPublic> = keys.into_iter().collect();
        self.tree.drop_inner_keys(&keys);
        for key in &keys {
            self.superseded.remove(key);
        }
    }

    /// CGKA-28: writes a fill's nodes, in order, each only if it is a blank inner node off
    /// the issuer's path, its key is new, and every key it wraps for is held strictly below
    /// it (or was superseded there by an op concurrent with the fill); none if a membership
    /// change is concurrent with the fill.
    pub(super) fn apply_fill(
        &mut self,
        hash: Hash,
        issuer: IndividualId,
        fill: &FillNodes,
        past: &Past,
    ) {
        let Some(slot) = self.tree.slot_of(&issuer) else {
            return;
        };
        if self.no_concurrent_change(past) {
            let own: HashSet<u32> = self.tree.direct_path(slot).into_iter().collect();
            // CGKA-27/28: the nodes this fill wrote, by index, with their keys: a node whose
            // left child the fill names is chained from it, and written only if that child was.
            let mut written: HashMap<u32, PrekeyPublic> = HashMap::new();
            let listed = chained_children(fill);
            for (filled, chained) in fill.nodes.iter().zip(&listed) {
                let node = filled.node;
                let left = match chained {
                    Some(l) => match written.get(l) {
                        Some(key) => Some(*key),
                        None => continue,
                    },
                    None => None,
                };
                let fits = self.tree.is_inner_below_root(node)
                    && !own.contains(&node)
                    && self.tree.entries(node).is_empty()
                    && self.tree.locate(&filled.public).is_none()
                    && !self.superseded.contains_key(&filled.public)
                    && filled
                        .wrapped
                        .iter()
                        .all(|w| self.below(&w.recipient, node, past));
                if !fits {
                    continue;
                }
                let mut taint = vec![issuer];
                for key in filled
                    .wrapped
                    .iter()
                    .map(|w| &w.recipient)
                    .chain(left.as_ref())
                {
                    if let Some(t) = self.taint.get(key) {
                        taint.extend(t.iter().copied());
                    }
                }
                taint.sort_unstable();
                taint.dedup();
                let entry = Entry {
                    op: hash,
                    public: filled.public,
                };
                if self.tree.fill(node, entry) {
                    self.set_taint(filled.public, &taint);
                    written.insert(node, filled.public);
                }
            }
        }
        if self.owner.is_some() && self.owner != Some(issuer) {
            self.learn_fill(hash, fill);
        }
    }

    /// CGKA-35: the keys node `node` held in the tree the op being applied was made against
    /// (its causal past), ascending: the keys at `node` written by ops in that past, and those
    /// there that an op concurrent with it superseded (and that no membership change has
    /// forgotten since). With no membership change concurrent with the op, that is exactly
    /// the node's keys in the replay of the op's causal past alone: concurrent updates and
    /// fills only add entries (filtered out by their op) and supersede entries (put back).
    pub(super) fn keys_in_past(&self, node: u32, past: &Past) -> Vec<PrekeyPublic> {
        let mut keys: Vec<PrekeyPublic> = self
            .tree
            .entries(node)
            .iter()
            .filter(|e| past.contains(&e.op))
            .map(|e| e.public)
            .collect();
        if let Past::AllExcept(_) = past {
            for key in self.superseded_at.get(&node).into_iter().flatten() {
                if self.superseded.get(key).is_some_and(|s| {
                    s.node == node && !past.contains(&s.by) && past.contains(&s.op)
                }) {
                    keys.push(*key);
                }
            }
        }
        keys.sort_unstable();
        keys.dedup();
        keys
    }

    /// CGKA-35: a positioned fill with each wrap's position resolved to a key, provided every
    /// position resolves and the keys are those the fill committed to; else `None` (the fill
    /// is inert). A position names a node strictly below the filled node (CGKA-3) and a rank:
    /// the key of that rank among the node's keys in the fill's causal past
    /// ([`Cgka::keys_in_past`]), or, for a node the same op filled earlier, rank 0 its key.
    pub(super) fn resolve_fill(&self, fill: &PositionedFill, past: &Past) -> Option<FillNodes> {
        let mut in_op: HashMap<u32, PrekeyPublic> = HashMap::with_capacity(fill.nodes.len());
        let mut views: HashMap<u32, Vec<PrekeyPublic>> = HashMap::new();
        let mut nodes = Vec::with_capacity(fill.nodes.len());
        let mut recipients: Vec<Vec<PrekeyPublic>> = Vec::with_capacity(fill.nodes.len());
        for filled in &fill.nodes {
            let mut wrapped = Vec::with_capacity(filled.wrapped.len());
            let mut keys = Vec::with_capacity(filled.wrapped.len());
            for w in &filled.wrapped {
                let at = position_node(filled.node, w.at)?;
                let key = match in_op.get(&at) {
                    Some(key) => (w.rank == 0).then_some(*key)?,
                    None => {
                        let view = views
                            .entry(at)
                            .or_insert_with(|| self.keys_in_past(at, past));
                        *view.get(usize::try_from(w.rank).ok()?)?
                    }
                };
                keys.push(key);
                wrapped.push(WrappedSecret {
                    recipient: key,
                    ciphertext: w.ciphertext,
                    tag: w.tag,
                });
            }
            in_op.insert(filled.node, filled.public);
            recipients.push(keys);
            nodes.push(FilledNode {
                node: filled.node,
                public: filled.public,
                wrapped,
            });
        }
        let commitment = path::recipients_commitment(
            &self.document,
            &fill.ephemeral,
            fill.nodes
                .iter()
                .zip(&recipients)
                .map(|(n, keys)| (n.node, keys.as_slice())),
        );
        let matches: bool =
            subtle::ConstantTimeEq::ct_eq(&commitment[..], &fill.recipients[..]).into();
        matches.then_some(FillNodes {
            ephemeral: fill.ephemeral,
            nodes,
        })
    }

    /// CGKA-35: `fill` (the body of `op`) resolved in a replay of `op`'s causal past alone,
    /// under `authority`, by a replica without secrets (so that replay reads nothing and
    /// resolves nothing this way in turn). For reading a fill that a membership change
    /// concurrent with it keeps from being written, where [`Cgka::resolve_fill`] may not
    /// find the keys it was made for: that change may have blanked or emptied their nodes.
    pub(super) fn resolve_in_own_past(
        &self,
        op: &CgkaOp,
        fill: &PositionedFill,
        authority: &dyn CgkaAuthority,
    ) -> Option<FillNodes> {
        let mut past: HashSet<Hash> = HashSet::new();
        let mut stack: Vec<Hash> = op.predecessors.clone();
        while let Some(h) = stack.pop() {
            if past.insert(h)
                && let Some(parent) = self.ops.get(&h)
            {
                stack.extend(parent.predecessors.iter().copied());
            }
        }
        let init = self.ops.get(&self.init)?.clone();
        let mut alone = Cgka::start(self.document, init, None);
        alone.ops = self
            .ops
            .iter()
            .filter(|(h, _)| past.contains(h))
            .map(|(h, op)| (*h, op.clone()))
            .collect();
        alone.leaf_keys = self.leaf_keys.clone();
        alone.rebuild(authority);
        alone.resolve_fill(fill, &Past::All)
    }

    /// CGKA-28: `key` is held strictly below `node` in this replica's tree, or was superseded
    /// there by an op concurrent with the one being applied (and not forgotten since).
    pub(super) fn below(&self, key: &PrekeyPublic, node: u32, past: &Past) -> bool {
        let strictly_below = |at: u32| at != node && crate::cgka::tree::in_subtree(at, node);
        self.tree.locate(key).is_some_and(strictly_below)
            || self
                .superseded
                .get(key)
                .is_some_and(|s| strictly_below(s.node) && !past.contains(&s.by))
    }

    /// CGKA-31: learns the secret of every filled node wrapped for a key this device holds,
    /// in order (a node's secret opens its parent's wrap). A wrong secret marks the fill bad.
    pub(super) fn learn_fill(&mut self, hash: Hash, fill: &FillNodes) {
        if self.bad_paths.contains(&hash) {
            return;
        }
        self.index_secrets();
        let listed = chained_children(fill);
        let publics: HashMap<u32, PrekeyPublic> =
            fill.nodes.iter().map(|n| (n.node, n.public)).collect();
        for (filled, chained) in fill.nodes.iter().zip(&listed) {
            if self.secrets.contains_key(&filled.public) {
                continue;
            }
            let secrets = &self.secrets;
            let left = chained.and_then(|l| publics.get(&l));
            match path::read_filled(&self.document, &fill.ephemeral, filled, left, |pk| {
                secrets.get(pk).cloned()
            }) {
                Ok(Some(key)) => {
                    self.secrets.insert(filled.public, key);
                }
                Ok(None) => {}
                Err(_) => {
                    self.bad_paths.insert(hash);
                    return;
                }
            }
        }
    }

    /// CGKA-15: every key the update wrapped a secret for at level `i` is a key now held at or
    /// below the sibling of path node `i` in this replica's tree, or one there that an update
    /// concurrent with this one superseded. So no device that is not seated here (e.g. one the
    /// author's capability view admitted and this one did not) can know the update's inner
    /// secrets.
    pub(super) fn wraps_stay_inside(
        &self,
        nodes: &[u32],
        update: &UpdatePath,
        past: &Past,
    ) -> bool {
        nodes.iter().zip(&update.nodes).all(|(node, path_node)| {
            if path_node.wrapped.is_empty() {
                return true;
            }
            if *node == self.tree.root() {
                return false;
            }
            let sibling = crate::cgka::tree::sibling(*node);
            path_node.wrapped.iter().all(|w| {
                self.tree
                    .locate(&w.recipient)
                    .is_some_and(|at| crate::cgka::tree::in_subtree(at, sibling))
                    || self.superseded.get(&w.recipient).is_some_and(|s| {
                        crate::cgka::tree::in_subtree(s.node, sibling) && !past.contains(&s.by)
                    })
            })
        })
    }

    /// CGKA-11: learns an update's path secrets if one is wrapped for a key this device holds.
    pub(super) fn learn(&mut self, hash: Hash, update: &UpdatePath) {
        if self.epochs.contains_key(&hash) || self.bad_paths.contains(&hash) {
            return;
        }
        self.index_secrets();
        let secrets = &self.secrets;
        match path::read(&self.document, update, |pk| secrets.get(pk).cloned()) {
            Ok(Some(learned)) => {
                let first = update.nodes.len() - learned.node_keys.len();
                for (node, key) in update.nodes[first..].iter().zip(learned.node_keys) {
                    self.secrets.insert(node.public, key);
                }
                self.epochs
                    .insert(hash, path::epoch_root(&self.document, &learned.root_secret));
            }
            Ok(None) => {}
            Err(_) => {
                self.bad_paths.insert(hash);
            }
        }
    }
}

/// CGKA-27: for each node of `fill`, in order, its left child if the same fill names that
/// child earlier (the node's secret is then chained from the child's), else `None`.
pub(super) fn chained_children(fill: &FillNodes) -> Vec<Option<u32>> {
    let mut seen: HashSet<u32> = HashSet::with_capacity(fill.nodes.len());
    fill.nodes
        .iter()
        .map(|n| {
            let (l, _) = crate::cgka::tree::children(n.node);
            let chained = seen.contains(&l).then_some(l);
            seen.insert(n.node);
            chained
        })
        .collect()
}
