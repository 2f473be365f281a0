//! CGKA-36: replaying from a checkpoint. Inserting an op into the replay order (CGKA-12)
//! leaves every op before its position where it was, so the replay state after that prefix
//! is unchanged: a replay owed to ops that sort near the end of the order starts from a copy
//! of the state taken near the end, not from the init.

use super::*;

/// Ops from the end of the order at which a replay keeps a copy of its state (in tests a few,
/// so that the property tests' short histories replay from checkpoints inside them, each
/// cross-checked against a replay from the init).
const CHECKPOINT_WINDOW: usize = if cfg!(test) { 3 } else { 64 };

/// The replay state after the first `at` ops of the order (everything a replay rebuilds
/// except the per-op answers, which the ops after `at` overwrite as they are applied again).
#[derive(Clone)]
pub(super) struct Checkpoint {
    at: usize,
    tree: Tree,
    heads: BTreeSet<Hash>,
    structural: Vec<Hash>,
    superseded: HashMap<PrekeyPublic, Superseded>,
    superseded_at: HashMap<u32, Vec<PrekeyPublic>>,
    taint: HashMap<PrekeyPublic, Vec<IndividualId>>,
    tainted_by: HashMap<IndividualId, Vec<PrekeyPublic>>,
}

impl Cgka {
    /// Replays what ops received since the last replay changed: from the checkpoint if the
    /// new order keeps every op before it in place and no authority answer changed
    /// (CGKA-32), else from the init.
    pub(super) fn replay_changed(&mut self, authority: &dyn CgkaAuthority) {
        let order = topological_order(&self.ops);
        let usable = self.checkpoint.as_ref().is_some_and(|c| {
            c.at <= self.order.len() && order.get(..c.at) == Some(&self.order[..c.at])
        });
        if !usable || self.answers_changed(authority) {
            self.rebuild(authority);
            return;
        }
        let Some(checkpoint) = self.checkpoint.clone() else {
            self.rebuild(authority);
            return;
        };
        self.stale = false;
        self.generation += 1;
        self.set_order(order);
        self.tree = checkpoint.tree;
        self.heads = checkpoint.heads;
        self.structural = checkpoint.structural;
        self.superseded = checkpoint.superseded;
        self.superseded_at = checkpoint.superseded_at;
        self.taint = checkpoint.taint;
        self.tainted_by = checkpoint.tainted_by;
        self.replay_from(checkpoint.at, authority);
        #[cfg(test)]
        self.check_against_full_replay(authority);
    }

    /// Sets the replay order and each op's position in it.
    pub(super) fn set_order(&mut self, order: Vec<Hash>) {
        self.position = order.iter().enumerate().map(|(i, h)| (*h, i)).collect();
        self.order = order;
    }

    /// Applies the ops of the order from position `start` on, keeping a checkpoint
    /// [`CHECKPOINT_WINDOW`] ops from the end (or the one it has, if that is later).
    pub(super) fn replay_from(&mut self, start: usize, authority: &dyn CgkaAuthority) {
        let keep_at = self.order.len().saturating_sub(CHECKPOINT_WINDOW);
        let order = self.order.clone();
        for (i, hash) in order.into_iter().enumerate().skip(start) {
            if i == keep_at {
                self.checkpoint = Some(Checkpoint {
                    at: i,
                    tree: self.tree.clone(),
                    heads: self.heads.clone(),
                    structural: self.structural.clone(),
                    superseded: self.superseded.clone(),
                    superseded_at: self.superseded_at.clone(),
                    taint: self.taint.clone(),
                    tainted_by: self.tainted_by.clone(),
                });
            }
            if hash == self.init {
                self.apply(hash, &AllowAll);
            } else {
                self.apply(hash, authority);
            }
        }
    }

    /// Test-only: a replay from the checkpoint ends where a replay from the init does.
    #[cfg(test)]
    fn check_against_full_replay(&self, authority: &dyn CgkaAuthority) {
        let mut full = self.clone();
        full.rebuild(authority);
        assert_eq!(full.order, self.order, "order");
        assert_eq!(full.tree, self.tree, "replay from the checkpoint: tree");
        assert_eq!(full.heads, self.heads, "heads");
        assert_eq!(full.structural, self.structural, "structural");
        assert_eq!(full.superseded, self.superseded, "superseded");
        assert_eq!(full.superseded_at, self.superseded_at, "superseded_at");
        assert_eq!(full.taint, self.taint, "taint");
        assert_eq!(full.tainted_by, self.tainted_by, "tainted_by");
        assert_eq!(full.verdicts, self.verdicts, "verdicts");
        assert_eq!(full.recheck, self.recheck, "recheck");
    }
}
