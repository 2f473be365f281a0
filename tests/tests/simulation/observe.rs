//! After every step: key stores saved, the reference fed, and who may pull or read what noted.

use std::collections::BTreeSet;

use keyhive_core::capability::{Access, AgentId};
use keyhive_core::crypto::signing::PublicKey;
use keyhive_core::identity::IndividualId;
use keyhive_sync::SubjectId;
use keyhive_sync::policy::AccessPolicy;

use super::nodes::DeviceNode;
use super::world::World;

impl World {
    /// After a step: save the key store of every device that changed, feed the reference what
    /// changed nodes store, and note, in the reference and in every changed node's view, who
    /// may pull what and who may read each acknowledged write.
    pub(super) fn settle(&mut self) {
        let devices = std::mem::take(&mut self.dirty_devices);
        let order = self.subject_order();
        let relays = std::mem::take(&mut self.dirty_relays);
        for d in &devices {
            self.devices[*d].save_keys();
            self.oracle.feed(&*self.devices[*d].store, &order);
        }
        for r in &relays {
            self.oracle.feed(&*self.relays[*r].store, &order);
        }
        let ids: Vec<IndividualId> = self.devices.iter().map(DeviceNode::id).collect();
        for id in &ids {
            let reach = self.oracle.pullable(id);
            self.record
                .note_pullable(*id, reach.into_iter().map(SubjectId));
            let scope = self.oracle.in_scope(id);
            self.record.note_in_scope(*id, scope);
            for d in &devices {
                let r = self.devices[*d].lock();
                let reach: Vec<SubjectId> = r
                    .checker()
                    .reachable(AgentId::Individual(*id))
                    .keys()
                    .map(|s| SubjectId(*s))
                    .collect();
                let scope = r.checker().served_subjects(AgentId::Individual(*id));
                drop(r);
                self.record.note_pullable(*id, reach);
                self.record.note_in_scope(*id, scope);
            }
            for r in &relays {
                // A relay offers every subject it serves anything of (CAP-21); only those it
                // lets the device pull count as pullable.
                let policy = &self.relays[*r].policy;
                let offered = policy.reachable(id);
                let pullable: Vec<SubjectId> = offered
                    .iter()
                    .copied()
                    .filter(|s| policy.may_pull(id, s))
                    .collect();
                self.record.note_pullable(*id, pullable);
                self.record
                    .note_in_scope(*id, offered.into_iter().map(|s| s.0));
            }
        }
        let docs: BTreeSet<PublicKey> = self.record.acked.iter().map(|a| a.doc).collect();
        for doc in docs {
            let mut readers = self.oracle.checker().individuals_with(&doc, Access::Read);
            for d in &devices {
                readers.extend(self.devices[*d].lock().devices_with(&doc, Access::Read));
            }
            for a in self.record.acked.iter_mut().filter(|a| a.doc == doc) {
                a.may_read.extend(readers.iter().copied());
            }
        }
    }
}
