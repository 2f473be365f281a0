//! Syncing over links: one sync step, and healing (every link up, synced until quiet).

use keyhive_sync::invite_code::InviteCode;
use keyhive_sync::policy::{AccessPolicy, Arrival};
use keyhive_sync::{MemoryStore, Store};

use super::cast::{DEVICE_NAMES, FAULTY_RELAY, LINKS, Node};
use super::exchange::{Serving, Side, Wire, exchange};
use super::oracle::Served;
use super::world::{Outcome, World, ok, refused};

impl World {
    /// One sync over `link` if it is up; a peer-to-peer link syncs in the direction `wire`
    /// picks. `lossy` lets the faulty relay drop items.
    pub(super) fn sync(&mut self, link: usize, wire: u64, lossy: bool) -> Outcome {
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
        let order = self.subject_order();
        let c = &self.devices[client];
        let client_gate = c.gate();
        let client_side = Side {
            id: c.id(),
            policy: &client_gate,
            store: &*c.store,
        };
        let mut served = Serving::default();
        let server_name = match server {
            Node::Relay(r) => format!("relay-{r}"),
            Node::Device(d) => DEVICE_NAMES[d].to_string(),
        };
        match server {
            Node::Relay(r) => {
                let relay = &self.relays[r];
                let mut wire = Wire::new(wire, lossy && r == FAULTY_RELAY, order.clone());
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
                    &mut Wire::new(wire, false, order.clone()),
                    &mut served,
                );
                self.dirty_devices.insert(d);
            }
        }
        self.dirty_devices.insert(client);
        let n = served.items.len();
        let step = self.step;
        let id = self.devices[client].id();
        self.record
            .note_pullable(id, served.pullable.iter().copied());
        self.record
            .served
            .entry(client)
            .or_default()
            .extend(served.items.into_iter().map(|item| Served {
                item,
                step,
                server: server_name.clone(),
            }));
        ok(format!("{} served {n}", DEVICE_NAMES[client]))
    }

    /// Brings every link up and syncs every link, round after round, until two rounds in a row
    /// change nothing (at most `max_rounds`). Returns the rounds run. The faulty relay keeps
    /// dropping items while healing, except in a round after a quiet one: two quiet rounds
    /// could otherwise both have dropped the one item everything else waits on (seed 30236),
    /// and healing would end with it undelivered though its holder offers it every round.
    pub fn heal(&mut self, max_rounds: usize) -> usize {
        self.links_up.iter_mut().for_each(|up| *up = true);
        let mut quiet = 0;
        for round in 0..max_rounds {
            let before = self.fingerprint();
            let lossy = quiet == 0;
            for link in 0..LINKS.len() {
                let wire = (round * LINKS.len() + link) as u64;
                let _ = self.sync(link, wire, lossy);
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
}

impl World {
    /// INV-9: `device` redeems `code` as `keyhive join` does: its redemption goes to relay 0
    /// over its link first and is stored on the device only once the relay took it.
    pub(super) fn redeem_through_relay(&mut self, device: usize, code: &InviteCode) -> String {
        let name = DEVICE_NAMES[device];
        // LINKS[d] is device d's link to relay 0.
        if !self.links_up[device] {
            return format!("{name}: link to relay-0 down");
        }
        let item = match self.devices[device].lock().redemption(code, 0) {
            Ok(item) => item,
            Err(e) => return format!("{name} refused: {e}"),
        };
        let relay = &self.relays[0];
        let arrivals =
            relay
                .policy
                .admit_batch(&self.devices[device].id(), vec![item], &*relay.store);
        self.dirty_relays.insert(0);
        match arrivals.as_deref() {
            Ok([(_, Arrival::Stored | Arrival::Duplicate)]) => {
                self.dirty_devices.insert(device);
                match self.devices[device].lock().redeem(code, 0) {
                    Ok(_) => name.to_owned(),
                    Err(e) => format!("{name} refused locally: {e}"),
                }
            }
            Ok(other) => format!("{name}: relay-0 answered {other:?}"),
            Err(e) => format!("{name}: relay-0 failed: {e}"),
        }
    }
}
