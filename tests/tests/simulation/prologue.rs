//! The fixed start of every run (`cast::PROLOGUE` describes it for traces).

use keyhive_core::capability::{Access, AgentId};
use keyhive_core::identity::{GroupId, SubjectKind};

use super::cast::{MALLORY, PEOPLE};
use super::world::{SubjectEntry, World};

impl World {
    /// Contact cards exchanged (not the stranger's), a person group per person with both of
    /// their devices, a team, a shared folder, alice's private diary, a plan in the folder,
    /// bob's private notes, and a first write to each of those documents. Nothing is synced.
    pub(super) fn prologue(&mut self) {
        let cards: Vec<_> = self
            .devices
            .iter()
            .map(|d| d.device.contact_card().expect("card"))
            .collect();
        for (i, d) in self.devices.iter().enumerate() {
            let mut r = d.lock();
            for (j, card) in cards.iter().enumerate() {
                if i != j && j != MALLORY {
                    r.add_contact(card.clone()).expect("add a contact");
                }
            }
        }
        for (_, devices) in PEOPLE {
            let first = devices[0];
            let group = self.devices[first].lock().create_group().expect("group");
            self.subjects.push(SubjectEntry {
                key: group.0,
                kind: SubjectKind::Group,
                folder: false,
            });
            for other in &devices[1..] {
                let other = AgentId::Individual(self.devices[*other].id());
                self.devices[first]
                    .lock()
                    .grant(&group.0, other, Access::Admin)
                    .expect("add a device to its person");
            }
        }
        let person = |i: usize, s: &[SubjectEntry]| AgentId::Group(GroupId(s[i].key));
        let mut alice = self.devices[0].lock();
        let team = alice.create_group().expect("team");
        for (i, level) in [Access::Admin, Access::Write, Access::Read, Access::Write]
            .into_iter()
            .enumerate()
        {
            alice
                .grant(&team.0, person(i, &self.subjects), level)
                .expect("team member");
        }
        let folder = alice.create_document().expect("folder");
        alice
            .grant(&folder.0, AgentId::Group(team), Access::Write)
            .expect("share the folder");
        let diary = alice.create_document().expect("diary");
        alice
            .grant(&diary.0, person(0, &self.subjects), Access::Admin)
            .expect("diary to alice");
        let plan = alice.create_document().expect("plan");
        alice
            .grant(&plan.0, AgentId::Document(folder), Access::Admin)
            .expect("plan in the folder");
        alice.write(diary, b"dear diary").expect("diary");
        alice.write(plan, b"plan v1").expect("plan");
        drop(alice);
        let mut bob = self.devices[2].lock();
        let notes = bob.create_document().expect("notes");
        bob.grant(&notes.0, person(1, &self.subjects), Access::Admin)
            .expect("notes to bob");
        bob.write(notes, b"bob's notes").expect("notes");
        drop(bob);
        for (key, kind, folder) in [
            (team.0, SubjectKind::Group, false),
            (folder.0, SubjectKind::Document, true),
            (diary.0, SubjectKind::Document, false),
            (plan.0, SubjectKind::Document, false),
            (notes.0, SubjectKind::Document, false),
        ] {
            self.subjects.push(SubjectEntry { key, kind, folder });
        }
    }
}
