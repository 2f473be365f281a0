//! Keeping CGKA membership equal to the capability graph's readers (`specs/cgka.md` §7,
//! CGKA-23..CGKA-24).

use std::collections::BTreeMap;

use crate::crypto::hash::Hash;
use crate::crypto::prekey::PrekeyPublic;
use crate::crypto::signing::SigningKey;
use crate::identity::IndividualId;

use super::authority::CgkaAuthority;
use super::op::{CgkaBody, CgkaOp};
use super::state::{Cgka, CreateError};

/// Wraps per level past which [`Cgka::apply_membership`] fills before it updates (CGKA-24).
pub const FILL_WRAPS_PER_LEVEL: usize = 3;

/// The membership changes that make a CGKA's members equal a target set (CGKA-23).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MembershipPlan {
    /// Devices to remove, ascending.
    pub remove: Vec<IndividualId>,
    /// Devices to add with the prekey to seat them with, ascending.
    pub add: Vec<(IndividualId, PrekeyPublic)>,
}

impl MembershipPlan {
    /// True if nothing needs to change.
    pub fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.add.is_empty()
    }
}

impl Cgka {
    /// CGKA-23: the adds and removes that make the members exactly `target` (the devices that
    /// hold `read` or more on the document, with one signed prekey each).
    pub fn sync_membership(&self, target: &BTreeMap<IndividualId, PrekeyPublic>) -> MembershipPlan {
        let current = self.tree().members();
        MembershipPlan {
            remove: current
                .keys()
                .filter(|d| !target.contains_key(d))
                .copied()
                .collect(),
            add: target
                .iter()
                .filter(|(d, _)| !current.contains_key(d))
                .map(|(d, k)| (*d, *k))
                .collect(),
        }
    }

    /// CGKA-23: seated devices the capability graph no longer lets read.
    pub fn revoked_members(&self, authority: &dyn CgkaAuthority) -> Vec<IndividualId> {
        self.tree()
            .members()
            .keys()
            .filter(|d| !authority.is_member(d))
            .copied()
            .collect()
    }

    /// CGKA-19, CGKA-23: true when this device must not encrypt yet: the root is not agreed,
    /// or some seated device has lost `read` and has not been removed (run
    /// [`Cgka::sync_membership`] and [`Cgka::apply_membership`] first).
    pub fn must_rekey(&self, authority: &dyn CgkaAuthority) -> bool {
        self.must_update_before_encrypt() || !self.revoked_members(authority).is_empty()
    }

    /// CGKA-24: carries out `plan` (removes first, then adds) and, if the root is then not
    /// agreed, issues an update so that the next encryption excludes every removed device.
    /// Returns the ops to publish, in order.
    pub fn apply_membership(
        &mut self,
        key: &SigningKey,
        plan: &MembershipPlan,
        authority: &dyn CgkaAuthority,
    ) -> Result<Vec<CgkaOp>, CreateError> {
        let mut ops = Vec::with_capacity(plan.remove.len() + plan.add.len() + 1);
        for device in &plan.remove {
            ops.push(self.remove(key, *device, authority)?);
        }
        // CGKA-33: the seats go in batched adds, one signed op for up to MAX_SEATS devices.
        ops.extend(self.add_many(key, &plan.add, authority)?);
        if self.must_update_before_encrypt() {
            if self.should_fill() {
                ops.extend(self.fill(key, authority)?);
            }
            ops.push(self.update(key, authority)?);
        }
        Ok(ops)
    }

    /// CGKA-37: the device that re-keys a root left in conflict by concurrent updates: the
    /// issuer of the update with the greatest hash among those whose keys sit at the root,
    /// provided it is seated. `None` when the root holds fewer than two keys, or a key not
    /// written by an update. A function of the tree, so replicas holding the same ops under the
    /// same capability view name the same device.
    pub fn conflict_resolver(&self) -> Option<IndividualId> {
        let entries = self.tree().entries(self.tree().root());
        if entries.len() < 2 {
            return None;
        }
        let mut greatest: Option<(Hash, &CgkaOp)> = None;
        for entry in entries {
            let op = self.op(&entry.op)?;
            if !matches!(op.body, CgkaBody::Update(_)) {
                return None;
            }
            if greatest.is_none_or(|(h, _)| entry.op > h) {
                greatest = Some((entry.op, op));
            }
        }
        let issuer = IndividualId(greatest?.1.issuer);
        self.tree().slot_of(&issuer).map(|_| issuer)
    }

    /// CGKA-24: fill before updating when the update would wrap for more than
    /// [`FILL_WRAPS_PER_LEVEL`] keys per level (blank subtrees, e.g. after many adds): the
    /// fill costs about two X25519 per blank node once, and the update and every later one
    /// then wrap about one key per level there (CGKA-27).
    pub fn should_fill(&self) -> bool {
        let depth = self.tree().depth() as usize;
        self.update_cost()
            .is_some_and(|wraps| wraps > FILL_WRAPS_PER_LEVEL * depth.max(1))
    }
}
