//! The simulated system: seven device replicas, two relays (a `MemoryStore` and a
//! `CapabilityPolicy` each, as `keyhive_sync::relay` runs them), the links between them, and the
//! reference. `World::new` runs the fixed prologue; `World::run` one step; `World::heal` brings
//! every link up and syncs until nothing changes.

use std::collections::BTreeSet;

use keyhive_core::capability::{Access, AgentId};
use keyhive_core::crypto::signing::PublicKey;
use keyhive_core::identity::{DocumentId, SubjectKind};
use keyhive_sync::SubjectId;

use super::cast::{AGENT_DEVICES, DEVICE_NAMES, DEVICES, LINKS, PEOPLE, RELAYS};
use super::oracle::{Acked, Oracle, Record};
use super::steps::Step;

pub use super::nodes::{DeviceNode, RelayNode};

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
    pub(super) dirty_devices: BTreeSet<usize>,
    pub(super) dirty_relays: BTreeSet<usize>,
    pub(super) step: usize,
}

pub(super) fn ok(note: impl Into<String>) -> Outcome {
    Ok(note.into())
}

pub(super) fn refused(e: impl std::fmt::Display) -> Outcome {
    Err(e.to_string())
}

impl World {
    /// The cast after the prologue (`prologue.rs`).
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

    /// The `i`-th agent a grant may name.
    fn agent(&self, i: usize) -> Option<AgentId> {
        if i < AGENT_DEVICES {
            return Some(AgentId::Individual(self.devices[i].id()));
        }
        let s = self.subjects.get(i - AGENT_DEVICES)?;
        Some(AgentId::subject(s.key, s.kind))
    }

    /// Every subject in a run-independent order: the run's subjects in creation order, then
    /// the devices (whose contact cards are subjects of their own).
    pub fn subject_order(&self) -> Vec<SubjectId> {
        self.subjects
            .iter()
            .map(|s| SubjectId(s.key))
            .chain(self.devices.iter().map(|d| SubjectId(d.id().0)))
            .collect()
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
            Step::Invite {
                by,
                subject,
                access,
                uses,
                redeemers,
                wire,
            } => {
                let mine = self.subjects_where(by, access, false);
                let Some(s) = pick(&mine, subject) else {
                    return refused("holds that level on no subject");
                };
                self.dirty_devices.insert(by);
                let made = self.devices[by].lock().invite(
                    &self.subjects[s].key,
                    access,
                    None,
                    uses,
                    "sim://relay",
                );
                let code = match made {
                    Ok((_, code)) => code,
                    Err(e) => return refused(e),
                };
                // As `keyhive invite` and `keyhive join` do (INV-9): the inviter syncs with
                // relay 0 before passing the code on; each redeemer pushes its redemption there
                // first and stores it only once the relay took it, so the relay keeps first
                // come and a refused redemption exists nowhere.
                let inviter_synced = self.sync(by, wire, false);
                let mut redeemed = vec![format!("inviter sync: {inviter_synced:?}")];
                for d in redeemers {
                    redeemed.push(self.redeem_through_relay(d, &code));
                }
                Ok(format!(
                    "subject {s}, {uses} use(s), redeemed by {redeemed:?}"
                ))
            }
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
}

/// The `n`-th of `options`, wrapping.
fn pick<T: Copy>(options: &[T], n: u32) -> Option<T> {
    (!options.is_empty()).then(|| options[n as usize % options.len()])
}
