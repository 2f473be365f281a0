//! Each invariant's check catches a violation made on purpose: a world after the prologue (and
//! healing, where the check needs it) is broken in one way, and the check must report a
//! violation it did not report before. Differential, so that these tests do not depend on
//! whether the unbroken world keeps every invariant.

use std::collections::BTreeSet;

use keyhive_core::Hash;
use keyhive_core::capability::{Access, AgentId, PeerTag};
use keyhive_sync::{Item, Store};

use super::cast::{DIARY, TEAM};
use super::invariants::{
    Violation, agreement, attacks_refused, nothing_acked_lost, nothing_pending, readers_read,
    removed_cannot_read, served_closed_and_allowed, views_stored,
};
use super::oracle::Served;
use super::runner::{STEPS, run};
use super::steps::{Step, generate};
use super::world::World;

const ALICE_LAPTOP: usize = 0;
const ALICE_PHONE: usize = 1;
const BOB_LAPTOP: usize = 2;
const CAROL: usize = 4;
/// The link alice-laptop -> alice-phone.
const ALICE_LINK: usize = 14;

fn details(found: Vec<Violation>) -> BTreeSet<String> {
    found.into_iter().map(|v| v.detail).collect()
}

/// The violations `check` reports after `tamper` that it did not report before.
fn new_violations(
    world: &mut World,
    check: fn(&World) -> Vec<Violation>,
    tamper: impl FnOnce(&mut World),
) -> Vec<String> {
    let before = details(check(world));
    tamper(world);
    details(check(world))
        .into_iter()
        .filter(|d| !before.contains(d))
        .collect()
}

fn healed() -> World {
    let mut world = World::new();
    world.heal(24);
    world
}

fn item(world: &World, device: usize, hash: &Hash) -> Item {
    world.devices[device]
        .store
        .get(hash)
        .expect("get")
        .expect("the device stores its op")
}

/// Two grants by alice-laptop on the team, the second naming the first as a parent.
fn two_grants(world: &World) -> (Item, Item) {
    let team = world.subjects[TEAM].key;
    let mut r = world.devices[ALICE_LAPTOP].lock();
    let carol = AgentId::Individual(world.devices[CAROL].id());
    let first = r.grant(&team, carol, Access::Pull).expect("grant");
    let second = r.grant(&team, carol, Access::Read).expect("grant");
    drop(r);
    (
        item(world, ALICE_LAPTOP, &first),
        item(world, ALICE_LAPTOP, &second),
    )
}

#[test]
fn agreement_catches_a_replica_that_missed_a_grant() {
    let mut world = healed();
    let found = new_violations(&mut world, agreement, |w| {
        // Alice's laptop adds bob's laptop to the team directly; her phone does not hear of it.
        let team = w.subjects[TEAM].key;
        let bob = AgentId::Individual(w.devices[BOB_LAPTOP].id());
        w.devices[ALICE_LAPTOP]
            .lock()
            .grant(&team, bob, Access::Admin)
            .expect("alice grants");
    });
    assert!(
        found
            .iter()
            .any(|d| d.starts_with("alice-laptop and alice-phone disagree")
                && d.contains("members of subject 4")),
        "{found:#?}"
    );
}

#[test]
fn views_stored_catches_an_op_applied_but_not_stored() {
    let mut world = healed();
    let found = new_violations(&mut world, views_stored, |w| {
        let (first, _) = two_grants(w);
        w.devices[ALICE_LAPTOP]
            .store
            .remove(&[first.hash()])
            .expect("remove");
    });
    assert!(
        found
            .iter()
            .any(|d| d.starts_with("alice-laptop applied op") && d.contains("subject 4")),
        "{found:#?}"
    );
}

#[test]
fn readers_read_catches_a_write_that_never_reached_a_reader() {
    let mut world = healed();
    let found = new_violations(&mut world, readers_read, |w| {
        w.run(&Step::Write {
            device: ALICE_LAPTOP,
            doc: 0,
        })
        .expect("alice writes");
    });
    assert!(
        found
            .iter()
            .any(|d| d.starts_with("alice-phone holds read") && d.contains("by alice-laptop")),
        "{found:#?}"
    );
}

#[test]
fn removed_cannot_read_catches_a_reader_no_view_counted() {
    let mut world = healed();
    world
        .run(&Step::Write {
            device: ALICE_LAPTOP,
            doc: 0,
        })
        .expect("alice writes");
    world
        .run(&Step::Sync {
            link: ALICE_LINK,
            wire: 0,
        })
        .expect("alice's devices sync");
    let phone = world.devices[ALICE_PHONE].id();
    let found = new_violations(&mut world, removed_cannot_read, |w| {
        let write = w
            .record
            .acked
            .last_mut()
            .expect("the write was acknowledged");
        write.may_read.remove(&phone);
    });
    assert!(
        found.iter().any(|d| d.starts_with("alice-phone reads")),
        "{found:#?}"
    );
}

#[test]
fn nothing_pending_catches_an_op_waiting_for_its_parent() {
    let mut world = World::new();
    let (_, second) = two_grants(&world);
    let found = new_violations(&mut world, nothing_pending, |w| {
        w.devices[BOB_LAPTOP]
            .lock()
            .ingest(PeerTag::LOCAL, &second)
            .expect("parked, not refused");
    });
    assert!(
        found.iter().any(|d| d.starts_with("bob-laptop keeps")),
        "{found:#?}"
    );
}

#[test]
fn served_check_catches_an_item_the_device_may_not_pull() {
    let mut world = World::new();
    let diary = world.subjects[DIARY].key;
    let diary_op = world.devices[ALICE_LAPTOP]
        .store
        .hashes(&keyhive_sync::SubjectId(diary))
        .expect("hashes")
        .into_iter()
        .map(|h| item(&world, ALICE_LAPTOP, &h))
        .find(|i| matches!(i.kind(), keyhive_sync::ItemKind::Auth))
        .expect("the diary's genesis");
    let found = new_violations(&mut world, served_closed_and_allowed, |w| {
        w.record.served.entry(BOB_LAPTOP).or_default().push(Served {
            item: diary_op,
            step: 0,
            server: "a test".into(),
        });
    });
    assert!(
        found
            .iter()
            .any(|d| d.starts_with("bob-laptop was served") && d.contains("never could pull")),
        "{found:#?}"
    );
}

#[test]
fn served_check_catches_a_served_set_that_is_not_causally_closed() {
    let mut world = World::new();
    let (_, second) = two_grants(&world);
    let found = new_violations(&mut world, served_closed_and_allowed, |w| {
        w.record.served.entry(CAROL).or_default().push(Served {
            item: second,
            step: 0,
            server: "a test".into(),
        });
    });
    assert!(
        found
            .iter()
            .any(|d| d.starts_with("carol was served op") && d.contains("never served")),
        "{found:#?}"
    );
}

#[test]
fn acked_check_catches_a_write_no_relay_holds() {
    let mut world = World::new();
    let found = new_violations(&mut world, nothing_acked_lost, |w| {
        w.run(&Step::Write {
            device: ALICE_LAPTOP,
            doc: 0,
        })
        .expect("alice writes");
    });
    assert!(
        found.iter().any(|d| d.contains("is not at relay-0")),
        "{found:#?}"
    );
}

#[test]
fn attack_check_catches_a_stored_forgery() {
    let mut world = World::new();
    let found = new_violations(&mut world, attacks_refused, |w| {
        let genuine = w.oracle.pool[0].clone();
        let mut envelope = genuine.envelope().to_vec();
        let last = envelope.len() - 1;
        envelope[last] ^= 1;
        let forged = Item::new(genuine.kind(), genuine.subject(), envelope).expect("item");
        w.record.forged.push(forged.clone());
        w.relays[0].store.put(&[forged]).expect("put");
    });
    assert!(
        found
            .iter()
            .any(|d| d.starts_with("relay-0 stored a forged item")),
        "{found:#?}"
    );
}

/// ENC-16, issue 10 ("a failing seed reproduces exactly"): the same seed run twice draws the
/// same keys, salts and nonces, so every device and relay stores the same items, bit for bit
/// (the trace digest hashes the trace and every stored item); another seed differs.
#[test]
fn a_seed_reproduces_bit_for_bit() {
    let seed = 210;
    let steps = generate(seed, STEPS);
    let first = run(seed, &steps);
    let again = run(seed, &steps);
    assert_eq!(first.trace, again.trace);
    assert_eq!(
        first.digest, again.digest,
        "the same seed stores the same items"
    );
    // The same steps under another seed draw other keys, so other items.
    assert_ne!(run(seed + 1, &steps).digest, first.digest);
}
