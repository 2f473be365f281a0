//! The simulated system: seven device replicas, two relays (a `MemoryStore` and a
//! `CapabilityPolicy` each, as `keyhive_sync::relay` runs them), the links between them, and the
//! reference. `World::new` runs the fixed prologue; `World::run` one step; `World::heal` brings
//! every link up and syncs until nothing changes.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard};

use keyhive_core::capability::{Access, AgentId};
use keyhive_core::cgka::CgkaSecrets;
use keyhive_core::crypto::signing::{PublicKey, SigningKey};
use keyhive_core::identity::{Device, DocumentId, IndividualId, SubjectKind};
use keyhive_sync::capability_policy::CapabilityPolicy;
use keyhive_sync::replica::{Replica, ReplicaGate};
use keyhive_sync::{MemoryStore, SubjectId};

use super::cast::{
    AGENT_DEVICES, DEVICE_NAMES, DEVICES, FAULTY_RELAY, LINKS, MALLORY, Node, PEOPLE, RELAYS,
};
use super::exchange::{Side, Wire, exchange};
use super::oracle::{Acked, Oracle, Record, Served};
use super::steps::Step;

/// A device replica shared with its gate.
pub type Shared = Arc<Mutex<Replica<Arc<MemoryStore>>>>;

/// One device: its keys, its store (which survives a crash), its replica and its key store.
pub struct DeviceNode {
    pub device: Device,
    pub store: Arc<MemoryStore>,
    pub replica: Shared,
    /// Key-agreement secrets as the key store last saved them (after every step).
    key_store: Vec<(DocumentId, CgkaSecrets)>,
}

impl DeviceNode {
    fn new(name: &str) -> DeviceNode {
        let device = Device::generate(Some(name.into()));
        let store = Arc::new(MemoryStore::new());
        let replica = Replica::open(device.clone(), store.clone()).expect("open a replica");
        DeviceNode {
            device,
            store,
            replica: Arc::new(Mutex::new(replica)),
            key_store: Vec::new(),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, Replica<Arc<MemoryStore>>> {
        self.replica.lock().expect("replica lock")
    }

    pub fn id(&self) -> IndividualId {
        self.device.id()
    }

    pub fn gate(&self) -> ReplicaGate<Arc<MemoryStore>> {
        ReplicaGate::new(self.replica.clone())
    }

    fn save_keys(&mut self) {
        let saved = self.lock().cgka_secrets().collect();
        self.key_store = saved;
    }

    /// Crash and restart: the replica is reopened over the same store and the saved keys.
    fn restart(&mut self) {
        let mut replica =
            Replica::open(self.device.clone(), self.store.clone()).expect("reopen a replica");
        replica.import_cgka_secrets(self.key_store.clone());
        self.replica = Arc::new(Mutex::new(replica));
    }
}

/// One relay: its identity, store and capability policy.
pub struct RelayNode {
    pub id: IndividualId,
    pub store: Arc<MemoryStore>,
    pub policy: CapabilityPolicy,
}

impl RelayNode {
    fn new() -> RelayNode {
        RelayNode {
            id: IndividualId(SigningKey::generate().public_key()),
            store: Arc::new(MemoryStore::new()),
            policy: CapabilityPolicy::new([]),
        }
    }

    /// Crash and restart: the policy is rebuilt from the store (relay start-up).
    fn restart(&mut self) {
        self.policy = CapabilityPolicy::new([]);
        self.policy
            .load(&*self.store)
            .expect("load the relay's policy");
    }
}

/// A group or document of the run, in creation order.
pub struct SubjectEntry {
    pub key: PublicKey,
    pub kind: SubjectKind,
    /// Documents may be placed in it.
    pub folder: bool,
}

/// What a step did: `Ok` with a note, or `Err` when the system (rightly or not) refused it.
pub type Outcome = Result<String, String>;

pub struct World {
    pub devices: Vec<DeviceNode>,
    pub relays: Vec<RelayNode>,
    pub links_up: Vec<bool>,
    pub subjects: Vec<SubjectEntry>,
    pub oracle: Oracle,
    pub record: Record,
    dirty_devices: BTreeSet<usize>,
    dirty_relays: BTreeSet<usize>,
    step: usize,
}

fn ok(note: impl Into<String>) -> Outcome {
    Ok(note.into())
}

fn refused(e: impl std::fmt::Display) -> Outcome {
    Err(e.to_string())
}

impl World {
    /// The cast after the prologue: contact cards exchanged (not the stranger's), a person
    /// group per person with both of their devices, a team, a shared folder, alice's private
    /// diary, a plan in the folder, bob's private notes, and a first write to each document.
    pub fn new() -> World {
        let mut world = World {
            devices: DEVICE_NAMES.iter().map(|n| DeviceNode::new(n)).collect(),
            relays: (0..RELAYS).map(|_| RelayNode::new()).collect(),
            links_up: vec![true; LINKS.len()],
            subjects: Vec::new(),
            oracle: Oracle::default(),
            record: Record::default(),
            dirty_devices: (0..DEVICES).collect(),
            dirty_relays: BTreeSet::new(),
            step: 0,
        };
        world.prologue();
        world.settle();
        world
    }

    fn prologue(&mut self) {
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
        let person = |i: usize, s: &[SubjectEntry]| {
            AgentId::Group(keyhive_core::identity::GroupId(s[i].key))
        };
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

    /// The `i`-th agent a grant may name.
    fn agent(&self, i: usize) -> Option<AgentId> {
        if i < AGENT_DEVICES {
            return Some(AgentId::Individual(self.devices[i].id()));
        }
        let s = self.subjects.get(i - AGENT_DEVICES)?;
        Some(AgentId::subject(s.key, s.kind))
    }

    /// `agent` as traces name it: a device's name or a subject's index.
    pub fn agent_name(&self, agent: &AgentId) -> String {
        if let Some(d) = self
            .devices
            .iter()
            .position(|d| d.id().0 == *agent.public_key())
        {
            return DEVICE_NAMES[d].to_string();
        }
        match self
            .subjects
            .iter()
            .position(|s| s.key == *agent.public_key())
        {
            Some(i) => format!("subject {i}"),
            None => "an agent outside the run".into(),
        }
    }

    fn agent_count(&self) -> usize {
        AGENT_DEVICES + self.subjects.len()
    }

    /// Subjects (creation order) on which `device` holds `level` in its own view.
    fn subjects_where(&self, device: usize, level: Access, documents: bool) -> Vec<usize> {
        let r = self.devices[device].lock();
        let me = AgentId::Individual(r.device().id());
        (0..self.subjects.len())
            .filter(|i| {
                let s = &self.subjects[*i];
                (!documents || s.kind == SubjectKind::Document)
                    && r.checker().can(me, level, &s.key)
            })
            .collect()
    }

    /// Runs one step, then feeds the reference and notes what every view allows.
    pub fn run(&mut self, step: &Step) -> Outcome {
        let outcome = self.execute(step);
        self.settle();
        self.step += 1;
        outcome
    }

    fn execute(&mut self, step: &Step) -> Outcome {
        match *step {
            Step::Grant {
                by,
                subject,
                to,
                access,
            } => {
                let mine = self.subjects_where(by, access, false);
                let Some(s) = pick(&mine, subject) else {
                    return refused("holds that level on no subject");
                };
                let agent = self
                    .agent(to as usize % self.agent_count())
                    .expect("agent in range");
                if agent.public_key() == &self.subjects[s].key {
                    return refused("a subject cannot be its own member");
                }
                self.dirty_devices.insert(by);
                let r = self.devices[by]
                    .lock()
                    .grant(&self.subjects[s].key, agent, access);
                let name = self.agent_name(&agent);
                r.map(|_| format!("subject {s} to {name}")).or_else(refused)
            }
            Step::Revoke { by, pick: n } => {
                let pairs = self.member_pairs(by, |_, _| true, Access::Admin);
                let Some((s, a)) = pick(&pairs, n) else {
                    return refused("administers no subject with members");
                };
                self.revoke(by, s, a)
            }
            Step::RevokeMember { by, subject, agent } => self.revoke(by, subject, agent),
            Step::Leave { device, pick: n } => {
                let me = AgentId::Individual(self.devices[device].id());
                let person = PEOPLE
                    .iter()
                    .position(|(_, ds)| ds.contains(&device))
                    .map(|p| AgentId::subject(self.subjects[p].key, SubjectKind::Group));
                let pairs =
                    self.member_pairs(device, |a, _| a == me || Some(a) == person, Access::Pull);
                let Some((s, a)) = pick(&pairs, n) else {
                    return refused("a member of nothing");
                };
                self.revoke(device, s, a)
            }
            Step::Write { device, doc } => self.write(device, doc),
            Step::CreateDocument {
                device,
                folder,
                is_folder,
            } => self.create_document(device, folder, is_folder),
            Step::Sync { link, wire } => self.sync(link, wire, true),
            Step::LinkDown { link } => {
                self.links_up[link] = false;
                ok("")
            }
            Step::LinkUp { link } => {
                self.links_up[link] = true;
                ok("")
            }
            Step::RestartDevice { device } => {
                self.devices[device].restart();
                self.dirty_devices.insert(device);
                ok("")
            }
            Step::RestartRelay { relay } => {
                self.relays[relay].restart();
                self.dirty_relays.insert(relay);
                ok("")
            }
            Step::Attack {
                attacker,
                target,
                attack,
                pick,
            } => super::attacks::attack(self, attacker, target, attack, pick),
        }
    }

    /// (subject, agent) pairs, in creation order, where `agent` is a direct member of a
    /// subject on which `device` holds `level`, filtered by `keep`.
    fn member_pairs(
        &self,
        device: usize,
        keep: impl Fn(AgentId, usize) -> bool,
        level: Access,
    ) -> Vec<(usize, usize)> {
        let subjects = self.subjects_where(device, level, false);
        let r = self.devices[device].lock();
        let mut pairs = Vec::new();
        for s in subjects {
            let members = r.checker().direct_members(&self.subjects[s].key);
            for a in 0..self.agent_count() {
                let agent = self.agent(a).expect("agent in range");
                if members.contains_key(&agent) && keep(agent, s) {
                    pairs.push((s, a));
                }
            }
        }
        pairs
    }

    fn revoke(&mut self, by: usize, subject: usize, agent: usize) -> Outcome {
        let (Some(s), Some(a)) = (self.subjects.get(subject), self.agent(agent)) else {
            return refused("no such subject or agent");
        };
        let key = s.key;
        self.dirty_devices.insert(by);
        let r = self.devices[by].lock().revoke(&key, a);
        let name = self.agent_name(&a);
        r.map(|ops| format!("{name} from subject {subject} ({} op)", ops.len()))
            .or_else(refused)
    }

    fn write(&mut self, device: usize, doc: u32) -> Outcome {
        let docs = self.subjects_where(device, Access::Write, true);
        let Some(d) = pick(&docs, doc) else {
            // A device that was removed without knowing it still writes where it thinks it
            // may; one that knows is refused locally.
            return refused("may write no document");
        };
        let key = self.subjects[d].key;
        let plaintext = format!("step {} by {}", self.step, DEVICE_NAMES[device]).into_bytes();
        self.dirty_devices.insert(device);
        let mut r = self.devices[device].lock();
        let mut may_read = r.devices_with(&key, Access::Read);
        may_read.insert(r.device().id());
        match r.write(DocumentId(key), &plaintext) {
            Ok(op) => {
                self.record.acked.push(Acked {
                    step: self.step,
                    writer: device,
                    doc: key,
                    op,
                    plaintext,
                    may_read,
                });
                ok(format!("doc {d}"))
            }
            Err(e) => refused(format!("doc {d}: {e}")),
        }
    }

    fn create_document(&mut self, device: usize, folder: Option<u32>, is_folder: bool) -> Outcome {
        self.dirty_devices.insert(device);
        let doc = match self.devices[device].lock().create_document() {
            Ok(doc) => doc,
            Err(e) => return refused(e),
        };
        let index = self.subjects.len();
        self.subjects.push(SubjectEntry {
            key: doc.0,
            kind: SubjectKind::Document,
            folder: is_folder,
        });
        let Some(n) = folder else {
            return ok(format!("doc {index}"));
        };
        let folders: Vec<usize> = self
            .subjects_where(device, Access::Write, true)
            .into_iter()
            .filter(|i| self.subjects[*i].folder)
            .collect();
        let Some(f) = pick(&folders, n) else {
            return ok(format!("doc {index}, no folder to place it in"));
        };
        let folder = AgentId::Document(DocumentId(self.subjects[f].key));
        let r = self.devices[device]
            .lock()
            .grant(&doc.0, folder, Access::Admin);
        r.map(|_| format!("doc {index} in folder {f}"))
            .or_else(|e| refused(format!("doc {index}, placing in {f}: {e}")))
    }

    /// One sync over `link` if it is up; a peer-to-peer link syncs in the direction `wire`
    /// picks. `lossy` lets the faulty relay drop items.
    fn sync(&mut self, link: usize, wire: u64, lossy: bool) -> Outcome {
        if !self.links_up[link] {
            return refused("link down");
        }
        let (a, b) = LINKS[link];
        let (client, server) = match b {
            Node::Device(d) if wire % 2 == 1 => (d, Node::Device(a)),
            _ => (a, b),
        };
        self.devices[client]
            .lock()
            .prepare_all()
            .map_err(|e| e.to_string())?;
        let c = &self.devices[client];
        let client_gate = c.gate();
        let client_side = Side {
            id: c.id(),
            policy: &client_gate,
            store: &*c.store,
        };
        let mut served = Vec::new();
        let server_name = match server {
            Node::Relay(r) => format!("relay-{r}"),
            Node::Device(d) => DEVICE_NAMES[d].to_string(),
        };
        match server {
            Node::Relay(r) => {
                let relay = &self.relays[r];
                let mut wire = Wire::new(wire, lossy && r == FAULTY_RELAY);
                let side = Side {
                    id: relay.id,
                    policy: &relay.policy,
                    store: &*relay.store,
                };
                exchange(&client_side, &side, &mut wire, &mut served);
                self.dirty_relays.insert(r);
            }
            Node::Device(d) => {
                let peer = &self.devices[d];
                let gate = peer.gate();
                let side = Side {
                    id: peer.id(),
                    policy: &gate,
                    store: &*peer.store,
                };
                exchange(
                    &client_side,
                    &side,
                    &mut Wire::new(wire, false),
                    &mut served,
                );
                self.dirty_devices.insert(d);
            }
        }
        self.dirty_devices.insert(client);
        let n = served.len();
        let step = self.step;
        self.record
            .served
            .entry(client)
            .or_default()
            .extend(served.into_iter().map(|item| Served {
                item,
                step,
                server: server_name.clone(),
            }));
        ok(format!("{} served {n}", DEVICE_NAMES[client]))
    }

    /// Brings every link up and syncs every link, round after round, until two rounds in a row
    /// change nothing (at most `max_rounds`). Returns the rounds run.
    pub fn heal(&mut self, max_rounds: usize) -> usize {
        self.links_up.iter_mut().for_each(|up| *up = true);
        let mut quiet = 0;
        for round in 0..max_rounds {
            let before = self.fingerprint();
            for link in 0..LINKS.len() {
                let wire = (round * LINKS.len() + link) as u64;
                let _ = self.sync(link, wire, true);
                self.settle();
            }
            if self.fingerprint() == before {
                quiet += 1;
                if quiet == 2 {
                    return round + 1;
                }
            } else {
                quiet = 0;
            }
        }
        max_rounds
    }

    /// Items held across all stores (they only grow).
    fn fingerprint(&self) -> usize {
        use keyhive_sync::Store;
        let count = |s: &MemoryStore| {
            s.subjects()
                .expect("subjects")
                .iter()
                .map(|x| s.hashes(x).expect("hashes").len())
                .sum::<usize>()
        };
        self.devices.iter().map(|d| count(&d.store)).sum::<usize>()
            + self.relays.iter().map(|r| count(&r.store)).sum::<usize>()
    }

    /// After a step: save the key store of every device that changed, feed the reference what
    /// changed nodes store, and note, in the reference and in every changed node's view, who
    /// may pull what and who may read each acknowledged write.
    fn settle(&mut self) {
        let devices = std::mem::take(&mut self.dirty_devices);
        let relays = std::mem::take(&mut self.dirty_relays);
        for d in &devices {
            self.devices[*d].save_keys();
            self.oracle.feed(&*self.devices[*d].store);
        }
        for r in &relays {
            self.oracle.feed(&*self.relays[*r].store);
        }
        let ids: Vec<IndividualId> = self.devices.iter().map(DeviceNode::id).collect();
        for id in &ids {
            let reach = self.oracle.pullable(id);
            self.record
                .note_pullable(*id, reach.into_iter().map(SubjectId));
            for d in &devices {
                let r = self.devices[*d].lock();
                let reach: Vec<SubjectId> = r
                    .checker()
                    .reachable(AgentId::Individual(*id))
                    .keys()
                    .map(|s| SubjectId(*s))
                    .collect();
                drop(r);
                self.record.note_pullable(*id, reach);
            }
            for r in &relays {
                use keyhive_sync::policy::AccessPolicy;
                let reach = self.relays[*r].policy.reachable(id);
                self.record.note_pullable(*id, reach);
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

/// The `n`-th of `options`, wrapping.
fn pick<T: Copy>(options: &[T], n: u32) -> Option<T> {
    (!options.is_empty()).then(|| options[n as usize % options.len()])
}
