//! The public ratchet tree (`specs/cgka.md` §3, CGKA-5..CGKA-7).
//!
//! Nodes use the array layout of RFC 9420 §4: leaf `i` is node `2i`, inner nodes are odd, a
//! node's level is its number of trailing one bits, and a tree of `capacity` leaves (a power
//! of two) has its root at `capacity - 1`. Growing the tree keeps every node index.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::crypto::hash::Hash;
use crate::crypto::prekey::PrekeyPublic;
use crate::identity::IndividualId;

/// One public key held at a node, with the op that wrote it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The op (add, init or update) that wrote this key.
    pub op: Hash,
    /// The X25519 public key.
    pub public: PrekeyPublic,
}

/// An occupied leaf.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leaf {
    /// The device seated here.
    pub device: IndividualId,
    /// Its leaf keys: one normally, several after concurrent updates by the same device.
    pub keys: Vec<Entry>,
}

/// The public tree: leaves, inner-node keys (possibly several: conflict keys) and blanks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tree {
    capacity: u32,
    leaves: Vec<Option<Leaf>>,
    /// Inner-node entries by node index (even indices unused).
    inner: Vec<Vec<Entry>>,
    slots: BTreeMap<IndividualId, u32>,
    /// Where each key currently in the tree sits.
    located: HashMap<PrekeyPublic, u32>,
}

impl Default for Tree {
    fn default() -> Self {
        Tree {
            capacity: 1,
            leaves: vec![None],
            inner: vec![Vec::new()],
            slots: BTreeMap::new(),
            located: HashMap::new(),
        }
    }
}

/// Level of a node: its number of trailing one bits.
pub fn level(node: u32) -> u32 {
    node.trailing_ones()
}

/// The parent of a non-root node.
pub fn parent(node: u32) -> u32 {
    let k = level(node);
    if (node >> (k + 1)) & 1 == 0 {
        node + (1 << k)
    } else {
        node - (1 << k)
    }
}

/// Whether `node` is `root` or below it.
pub fn in_subtree(node: u32, root: u32) -> bool {
    let span = (1u32 << level(root)) - 1;
    node >= root - span && node <= root + span
}

/// The sibling of a non-root node.
pub fn sibling(node: u32) -> u32 {
    let p = parent(node);
    if node < p {
        p + (p - node)
    } else {
        p - (node - p)
    }
}

/// The two children of an inner node.
pub fn children(node: u32) -> (u32, u32) {
    let k = level(node);
    // Only called for inner nodes (k >= 1).
    let half = 1u32 << k.saturating_sub(1);
    (node - half, node + half)
}

impl Tree {
    /// Number of leaf slots (a power of two).
    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    /// The root node index.
    pub fn root(&self) -> u32 {
        self.capacity - 1
    }

    /// Levels above the leaves.
    pub fn depth(&self) -> u32 {
        self.capacity.trailing_zeros()
    }

    /// Number of occupied leaves.
    pub fn member_count(&self) -> usize {
        self.slots.len()
    }

    /// The occupied leaves, by device, with their slot.
    pub fn members(&self) -> &BTreeMap<IndividualId, u32> {
        &self.slots
    }

    /// The slot of `device`, if seated.
    pub fn slot_of(&self, device: &IndividualId) -> Option<u32> {
        self.slots.get(device).copied()
    }

    /// The leaf at `slot`.
    pub fn leaf(&self, slot: u32) -> Option<&Leaf> {
        self.leaves.get(slot as usize).and_then(Option::as_ref)
    }

    /// The nodes from leaf `slot` up to the root, leaf first (CGKA-5).
    pub fn direct_path(&self, slot: u32) -> Vec<u32> {
        let mut node = slot * 2;
        let root = self.root();
        let mut out = vec![node];
        while node != root {
            node = parent(node);
            out.push(node);
        }
        out
    }

    /// Entries at any node (leaf keys for a leaf).
    pub fn entries(&self, node: u32) -> &[Entry] {
        if node.is_multiple_of(2) {
            self.leaf(node / 2)
                .map(|l| l.keys.as_slice())
                .unwrap_or(&[])
        } else {
            self.inner
                .get(node as usize)
                .map(Vec::as_slice)
                .unwrap_or(&[])
        }
    }

    /// The resolution of `node` (CGKA-6): its keys if it holds any, else the resolutions of its
    /// children; a blank leaf resolves to nothing. Conflict keys are all listed: every member
    /// below a node knows every key still valid there (CGKA-7).
    pub fn resolution(&self, node: u32) -> Vec<PrekeyPublic> {
        let mut out = Vec::new();
        self.resolve_into(node, &mut out);
        out
    }

    fn resolve_into(&self, node: u32, out: &mut Vec<PrekeyPublic>) {
        let here = self.entries(node);
        if !here.is_empty() {
            out.extend(here.iter().map(|e| e.public));
        } else if node % 2 == 1 {
            let (l, r) = children(node);
            self.resolve_into(l, out);
            self.resolve_into(r, out);
        }
    }

    /// The leftmost empty slot, growing the tree when it is full (CGKA-13).
    fn free_slot(&mut self) -> u32 {
        if let Some(i) = self.leaves.iter().position(Option::is_none) {
            return i as u32;
        }
        let old = self.capacity;
        self.capacity = old * 2;
        self.leaves.resize(self.capacity as usize, None);
        self.inner
            .resize((2 * self.capacity - 1) as usize, Vec::new());
        old
    }

    /// Seats `device` with one leaf key; blanks the leaf's path. Returns the slot, or `None`
    /// if the device is already seated (the op is then a no-op).
    pub(crate) fn seat(&mut self, device: IndividualId, key: Entry) -> Option<u32> {
        if self.slots.contains_key(&device) {
            return None;
        }
        let slot = self.free_slot();
        self.located.insert(key.public, slot * 2);
        self.leaves[slot as usize] = Some(Leaf {
            device,
            keys: vec![key],
        });
        self.slots.insert(device, slot);
        self.blank_path(slot);
        Some(slot)
    }

    /// Empties `device`'s leaf and blanks its path. Returns its former slot, or `None` if it
    /// was not seated.
    pub(crate) fn unseat(&mut self, device: &IndividualId) -> Option<u32> {
        let slot = self.slots.remove(device)?;
        if let Some(leaf) = self.leaves[slot as usize].take() {
            for e in leaf.keys {
                self.located.remove(&e.public);
            }
        }
        self.blank_path(slot);
        Some(slot)
    }

    fn blank_path(&mut self, slot: u32) {
        for node in self.direct_path(slot).into_iter().skip(1) {
            if let Some(entries) = self.inner.get_mut(node as usize) {
                for e in entries.drain(..) {
                    self.located.remove(&e.public);
                }
            }
        }
    }

    /// Keeps only inner entries whose op satisfies `keep` (CGKA-12).
    pub(crate) fn retain_inner(&mut self, mut keep: impl FnMut(&Hash) -> bool) {
        let located = &mut self.located;
        for entries in &mut self.inner {
            entries.retain(|e| {
                let kept = keep(&e.op);
                if !kept {
                    located.remove(&e.public);
                }
                kept
            });
        }
    }

    /// The node at which `key` currently sits, if it is in the tree.
    pub fn locate(&self, key: &PrekeyPublic) -> Option<u32> {
        self.located.get(key).copied()
    }

    /// Writes `entry` at `node`, dropping the entries `superseded` says are in its past.
    /// Returns the dropped entries.
    pub(crate) fn write(
        &mut self,
        node: u32,
        entry: Entry,
        mut superseded: impl FnMut(&Hash) -> bool,
    ) -> Vec<Entry> {
        let list = if node.is_multiple_of(2) {
            match self
                .leaves
                .get_mut((node / 2) as usize)
                .and_then(Option::as_mut)
            {
                Some(leaf) => &mut leaf.keys,
                None => return Vec::new(),
            }
        } else {
            match self.inner.get_mut(node as usize) {
                Some(list) => list,
                None => return Vec::new(),
            }
        };
        let mut dropped = Vec::new();
        list.retain(|e| {
            let keep = !superseded(&e.op);
            if !keep {
                dropped.push(*e);
            }
            keep
        });
        if !list.contains(&entry) {
            list.push(entry);
            list.sort_by_key(|e| e.op);
        }
        for e in &dropped {
            self.located.remove(&e.public);
        }
        self.located.insert(entry.public, node);
        dropped
    }

    /// Whether `node` is an inner node of this tree other than the root (CGKA-28).
    pub fn is_inner_below_root(&self, node: u32) -> bool {
        node % 2 == 1 && node < self.root() * 2 && node != self.root()
    }

    /// Writes `entry` at the blank inner node `node` (CGKA-28). Returns false, changing
    /// nothing, if the node is not an inner node or is not blank.
    pub(crate) fn fill(&mut self, node: u32, entry: Entry) -> bool {
        if node.is_multiple_of(2) {
            return false;
        }
        match self.inner.get_mut(node as usize) {
            Some(list) if list.is_empty() => {
                list.push(entry);
                self.located.insert(entry.public, node);
                true
            }
            _ => false,
        }
    }

    /// Removes every inner entry whose key is in `keys` (CGKA-30).
    pub(crate) fn drop_inner_keys(&mut self, keys: &HashSet<PrekeyPublic>) {
        for key in keys {
            let Some(node) = self.located.get(key).copied() else {
                continue;
            };
            if node % 2 == 1
                && let Some(list) = self.inner.get_mut(node as usize)
            {
                list.retain(|e| e.public != *key);
                self.located.remove(key);
            }
        }
    }

    /// Number of non-blank inner nodes and of inner entries (for size reports).
    pub fn inner_stats(&self) -> (usize, usize) {
        let nodes = self.inner.iter().filter(|e| !e.is_empty()).count();
        let entries = self.inner.iter().map(Vec::len).sum();
        (nodes, entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_layout() {
        // capacity 4: leaves 0,2,4,6; inner 1,5; root 3.
        assert_eq!(parent(0), 1);
        assert_eq!(parent(2), 1);
        assert_eq!(parent(1), 3);
        assert_eq!(parent(5), 3);
        assert_eq!(sibling(0), 2);
        assert_eq!(sibling(5), 1);
        assert_eq!(children(3), (1, 5));
        assert_eq!(children(1), (0, 2));
        let t = Tree {
            capacity: 4,
            ..Tree::default()
        };
        assert_eq!(t.direct_path(3), vec![6, 5, 3]);
        assert_eq!(t.direct_path(0), vec![0, 1, 3]);
    }
}
