//! Receiving ops (CGKA-20, CGKA-21): structure and signature checks, quarantine, the pending
//! set, and admission into the op DAG.

use super::*;

impl Cgka {
    /// Receives an op from the network or disk (CGKA-20, CGKA-21).
    pub fn receive(
        &mut self,
        op: SignedCgkaOp,
        authority: &dyn CgkaAuthority,
    ) -> Result<Received, ReceiveError> {
        if let Some(seen) = self.seen(&op.hash()) {
            return Ok(seen);
        }
        check_body(op.unverified_payload())?;
        let op = op.verify_cached(&mut self.issuer_keys.0)?;
        self.receive_verified(op, authority)
    }

    /// As [`Cgka::receive`] for an op whose signature the caller already checked
    /// (`verify_strict`, e.g. at admission, ADM-2): every other rule applies alike.
    pub fn receive_verified(
        &mut self,
        op: CgkaOp,
        authority: &dyn CgkaAuthority,
    ) -> Result<Received, ReceiveError> {
        let hash = op.hash();
        if let Some(seen) = self.seen(&hash) {
            return Ok(seen);
        }
        check_body(&op)?;
        let op = Arc::new(op);
        if matches!(op.body, CgkaBody::Init { .. }) {
            return Err(ReceiveError::ForeignInit);
        }
        self.learn_leaf_keys(&op.body);
        let refusal = if !self.authorised(&op, authority) {
            Some(ReceiveError::Unauthorized)
        } else if self.missing(&op).is_empty() {
            self.removes_nobody(&op, authority)
                .map(ReceiveError::NotSeated)
        } else {
            // CGKA-26 is checked once the predecessors are here (`release`).
            None
        };
        if let Some(refusal) = refusal {
            self.refuse(op, authority)?;
            return Err(refusal);
        }
        self.quarantine.remove(&hash);
        self.admit(Arc::clone(&op), authority)?;
        if self.ops.contains_key(&hash) {
            return Ok(Received::Applied);
        }
        if let Some(parked) = self.pending.get(&hash) {
            return Ok(Received::Pending(self.missing(parked)));
        }
        // Its predecessors were all here after all (a quarantined one was admitted as its
        // dependency) and `release` judged it a no-op remove (CGKA-26).
        match &op.body {
            CgkaBody::Remove { device } if self.quarantine.contains_key(&hash) => {
                Err(ReceiveError::NotSeated(*device))
            }
            _ => Ok(Received::Pending(Vec::new())),
        }
    }

    /// The answer for an op already applied or still parked (CGKA-21, CGKA-26: a parked op is
    /// not applied yet, so not to be stored yet either), if it is one.
    fn seen(&self, hash: &Hash) -> Option<Received> {
        if self.ops.contains_key(hash) {
            return Some(Received::Duplicate);
        }
        self.pending
            .get(hash)
            .map(|parked| Received::Pending(self.missing(parked)))
    }

    /// Holds a refused op (CGKA-20): in quarantine, or in the DAG at once if a parked op
    /// already names it (replay then judges it like any other op).
    pub(super) fn refuse(
        &mut self,
        op: Arc<CgkaOp>,
        authority: &dyn CgkaAuthority,
    ) -> Result<(), ReceiveError> {
        let hash = op.hash();
        if self.waiting.contains_key(&hash) {
            return self.admit(op, authority);
        }
        self.hold_in_quarantine(hash, op);
        Ok(())
    }

    /// Holds a refused op in the bounded quarantine, evicting the oldest (CGKA-20).
    pub(super) fn hold_in_quarantine(&mut self, hash: Hash, op: Arc<CgkaOp>) {
        if self.quarantine.len() >= MAX_QUARANTINE {
            self.quarantine.pop_first();
        }
        self.quarantine.insert(hash, op);
    }

    /// CGKA-26: for a remove whose predecessors are all applied, the removed device if it is
    /// not seated in the tree the op was made against, i.e. after replaying (CGKA-12) only the
    /// op's causal past under `authority`. `None` for any other op. The answer depends on the
    /// op and its past alone, so every replica gives the same one whatever else it holds.
    pub(super) fn removes_nobody(
        &mut self,
        op: &CgkaOp,
        authority: &dyn CgkaAuthority,
    ) -> Option<IndividualId> {
        let CgkaBody::Remove { device } = &op.body else {
            return None;
        };
        // The answer needs the tree and the replay order of what is applied.
        self.catch_up(authority);
        (!self.seated_after(&op.predecessors, device, authority)).then_some(*device)
    }

    /// Whether `device` is seated after replaying the causal past of `predecessors` (all
    /// applied). When they include every head that past is everything applied, so the tree
    /// answers. Otherwise the past is walked and its membership ops about `device` are folded
    /// in replay order (the replay order restricted to a causally closed set is that set's own
    /// replay order): an authorised init or add seats, an authorised remove unseats.
    pub(super) fn seated_after(
        &self,
        predecessors: &[Hash],
        device: &IndividualId,
        authority: &dyn CgkaAuthority,
    ) -> bool {
        if self
            .heads
            .iter()
            .all(|h| predecessors.binary_search(h).is_ok())
        {
            return self.tree.slot_of(device).is_some();
        }
        let mut past = DigestSet::default();
        let mut stack = predecessors.to_vec();
        while let Some(h) = stack.pop() {
            if past.insert(h)
                && let Some(op) = self.ops.get(&h)
            {
                stack.extend(op.predecessors.iter().copied());
            }
        }
        let mut seated = false;
        for op in self
            .order
            .iter()
            .filter(|h| past.contains(*h))
            .filter_map(|h| self.ops.get(h))
        {
            let issuer = IndividualId(op.issuer);
            match &op.body {
                CgkaBody::Init { .. } if issuer == *device => seated = true,
                body if body.is_add() => {
                    let seat = self.seats_of(body).into_iter().find(|(d, _)| d == device);
                    if seat.is_some_and(|(d, key)| seat_allowed(body, &issuer, &d, key, authority))
                    {
                        seated = true;
                    }
                }
                CgkaBody::Remove { device: d }
                    if d == device && authority.may_remove(&issuer, d) =>
                {
                    seated = false;
                }
                _ => {}
            }
        }
        seated
    }

    pub(super) fn missing(&self, op: &CgkaOp) -> Vec<Hash> {
        op.predecessors
            .iter()
            .filter(|p| !self.ops.contains_key(p))
            .copied()
            .collect()
    }

    /// Applies `op` if its predecessors are present, else parks it (CGKA-21). A quarantined op
    /// that a parked op names is admitted too (it stays subject to the replay-time check,
    /// CGKA-20). Ops waiting on a predecessor are indexed by it, so each arrival only looks at
    /// the ops it unblocks.
    pub(super) fn admit(
        &mut self,
        op: Arc<CgkaOp>,
        authority: &dyn CgkaAuthority,
    ) -> Result<(), ReceiveError> {
        let mut work = vec![op];
        while let Some(op) = work.pop() {
            let hash = op.hash();
            if self.ops.contains_key(&hash) || self.pending.contains_key(&hash) {
                continue;
            }
            let missing = self.missing(&op);
            if missing.is_empty() {
                self.insert(op, authority);
                self.release(hash, authority);
                continue;
            }
            if self.pending.len() >= MAX_PENDING {
                return Err(ReceiveError::PendingFull);
            }
            for m in &missing {
                self.waiting.entry(*m).or_default().push(hash);
            }
            self.pending.insert(hash, op);
            for m in missing {
                if let Some(q) = self.quarantine.remove(&m) {
                    work.push(q);
                }
            }
        }
        Ok(())
    }

    /// Applies the parked ops that `arrived` unblocks, transitively.
    pub(super) fn release(&mut self, arrived: Hash, authority: &dyn CgkaAuthority) {
        let mut stack = vec![arrived];
        while let Some(h) = stack.pop() {
            for w in self.waiting.remove(&h).unwrap_or_default() {
                let ready = self
                    .pending
                    .get(&w)
                    .is_some_and(|op| self.missing(op).is_empty());
                if ready && let Some(op) = self.pending.remove(&w) {
                    // CGKA-26: a parked remove that removes nobody goes to quarantine unless
                    // a parked op already names it (as `receive` does once it is ready).
                    if self.removes_nobody(&op, authority).is_some()
                        && !self.waiting.contains_key(&w)
                    {
                        self.hold_in_quarantine(w, op);
                        continue;
                    }
                    self.insert(op, authority);
                    stack.push(w);
                }
            }
        }
    }

    /// Adds an applied op to the DAG: appended to the replay when the order allows it, else
    /// replayed from the init (CGKA-12), or, while replay is deferred, held for one replay at
    /// [`Cgka::settle`] (CGKA-36).
    pub(super) fn insert(&mut self, op: Arc<CgkaOp>, authority: &dyn CgkaAuthority) {
        let hash = op.hash();
        if self.stale {
            self.ops.insert(hash, op);
            return;
        }
        let appendable = self
            .heads
            .iter()
            .all(|h| op.predecessors.binary_search(h).is_ok())
            || {
                let last = op
                    .predecessors
                    .iter()
                    .filter_map(|p| self.position.get(p))
                    .max()
                    .copied()
                    .unwrap_or(0);
                self.order[last + 1..].iter().all(|h| *h < hash)
            };
        self.ops.insert(hash, op);
        if appendable {
            self.position.insert(hash, self.order.len());
            self.order.push(hash);
            self.apply(hash, authority);
        } else if self.deferring {
            self.stale = true;
        } else {
            self.replay_changed(authority);
        }
    }
}
