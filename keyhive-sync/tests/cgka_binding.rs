//! One key agreement per document (`specs/cgka.md` CGKA-25, `specs/encoding.md` GEN-2): a
//! second init signed by a reader, or by the creator with another prekey, is refused by every
//! replica in every delivery order, and all replicas converge on the init the genesis names.

mod replicas;

use std::sync::{Arc, Mutex};

use keyhive_core::capability::{Access, PeerTag};
use keyhive_core::cgka::{Cgka, CgkaBody};
use keyhive_core::crypto::prekey::PrekeySecret;
use keyhive_core::identity::DocumentId;
use keyhive_core::signed::{Op, Verified};
use keyhive_sync::client::sync::ingest;
use keyhive_sync::policy::Arrival;
use keyhive_sync::replica::{Ingested, Replica, ReplicaGate};
use keyhive_sync::{Item, ItemKind, MemoryStore, Store, SubjectId};
use proptest::prelude::*;
use replicas::{all_items, card, me, read, replica_with};

type R = Replica<Arc<MemoryStore>>;

fn replica(name: &str) -> R {
    replica_with(name, Arc::new(MemoryStore::new()))
}

fn cgka_item(doc: DocumentId, op: &keyhive_core::cgka::CgkaOp) -> Item {
    Item::new(ItemKind::Cgka, SubjectId(doc.0), op.as_bytes().to_vec()).unwrap()
}

fn shuffle<T>(items: &mut [T], mut seed: u64) {
    for i in (1..items.len()).rev() {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let j = (seed >> 33) as usize % (i + 1);
        items.swap(i, j);
    }
}

/// Offers every item to `to` one at a time in an order `seed` picks, round after round (a
/// sync offers again what is still waiting), until a round stores nothing new.
fn deliver(to: &mut R, items: &[Item], seed: u64) {
    let mut items = items.to_vec();
    let tag = PeerTag::LOCAL;
    for round in 0..12u64 {
        shuffle(&mut items, seed ^ round);
        let mut stored = 0;
        for item in &items {
            if let Ok(Ingested::Stored) = to.ingest(tag, item) {
                stored += 1;
            }
        }
        if stored == 0 {
            return;
        }
    }
}

/// Alice's document shared with Bob (who forges), Carol and Dave, with one change written; the
/// items she stores; Bob's second init and Alice's second init (same key, another prekey).
struct Shared {
    alice: R,
    observers: Vec<R>,
    doc: DocumentId,
    items: Vec<Item>,
    forged: [Item; 2],
}

fn shared() -> Shared {
    let mut alice = replica("alice");
    let observers = vec![replica("bob"), replica("carol"), replica("dave")];
    let doc = alice.create_document().unwrap();
    for o in &observers {
        alice.add_contact(card(o)).unwrap();
        alice.grant(&doc.0, me(o), Access::Read).unwrap();
    }
    alice.write(doc, b"v1 by alice").unwrap();
    let (_, by_reader) = Cgka::create(doc, observers[0].device()).unwrap();
    // `Cgka::create` seats the creator on its device key (CGKA-34) and signs deterministically,
    // so the creator's second init is signed by hand, on another key.
    let key = alice.device().signing_key();
    let by_creator = Verified::sign(
        Op::new(
            key.public_key(),
            Vec::new(),
            CgkaBody::Init {
                document: doc,
                prekey: PrekeySecret::generate().public(),
            },
        ),
        key,
    )
    .unwrap();
    let items = all_items(&alice);
    Shared {
        forged: [cgka_item(doc, &by_reader), cgka_item(doc, &by_creator)],
        alice,
        observers,
        doc,
        items,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]
    /// CGKA-25: whatever order Alice's items and the two forged inits arrive in, every replica
    /// refuses both forged inits, stores neither, starts from the init Alice's genesis names,
    /// ends with Alice's tree and epoch, and reads her change.
    #[test]
    fn second_inits_are_refused_in_every_delivery_order(seeds in prop::array::uniform3(any::<u64>())) {
        let mut s = shared();
        let named = s.alice.checker().key_agreement(&s.doc).unwrap().init;
        let alice_cgka = s.alice.cgka(&s.doc).unwrap();
        prop_assert_eq!(alice_cgka.init_hash(), named);
        let (tree, epoch) = (alice_cgka.tree().clone(), alice_cgka.current_epoch().map(|(h, _)| h));
        prop_assert!(epoch.is_some());
        let mut offered = s.items.clone();
        offered.extend(s.forged.iter().cloned());
        for (observer, seed) in s.observers.iter_mut().zip(seeds) {
            deliver(observer, &offered, seed);
            let cgka = observer.cgka(&s.doc).unwrap();
            prop_assert_eq!(cgka.init_hash(), named);
            prop_assert_eq!(cgka.tree(), &tree);
            prop_assert_eq!(cgka.current_epoch().map(|(h, _)| h), epoch);
            for forged in &s.forged {
                prop_assert!(!observer.store().contains(&forged.hash()).unwrap());
                prop_assert!(observer.ingest(PeerTag::LOCAL, forged).is_err());
            }
            prop_assert_eq!(read(observer, s.doc).unwrap(), b"v1 by alice".to_vec());
        }
    }
}

/// CGKA-25: the creator's replica, fed both forged inits by a peer the way a sync client feeds
/// it (validate through the replica's gate, store what passes), stores neither, and after a
/// restart replays the init its genesis names (not whichever stored init hashes lower).
#[test]
fn the_creator_keeps_its_init_across_a_restart() {
    let s = shared();
    let named = s.alice.checker().key_agreement(&s.doc).unwrap().init;
    let secrets: Vec<_> = s.alice.cgka_secrets().collect();
    let device = s.alice.device().clone();
    let store = s.alice.store().clone();
    let peer = s.observers[0].device().id();
    let alice = Arc::new(Mutex::new(s.alice));
    let gate = ReplicaGate::new(alice.clone());
    let client_store: Arc<dyn Store> = store.clone();
    let arrivals = ingest(&client_store, &gate, &peer, s.forged.to_vec()).unwrap();
    assert_eq!(arrivals.len(), 2);
    for (item, arrival) in &arrivals {
        assert!(
            matches!(arrival, Arrival::Refused(_)),
            "a forged init was admitted: {arrival:?}"
        );
        assert!(
            !client_store.contains(&item.hash()).unwrap(),
            "a forged init was stored"
        );
    }
    drop(gate);
    drop(alice);
    let mut reopened = Replica::open(device, store).unwrap();
    reopened.import_cgka_secrets(secrets);
    assert_eq!(reopened.cgka(&s.doc).unwrap().init_hash(), named);
    assert_eq!(read(&reopened, s.doc).unwrap(), b"v1 by alice");
}
