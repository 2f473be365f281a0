//! CAP-24 (`specs/capabilities.md`) through admission (ADM-2, ADM-3): a root-form auth op
//! (`keyhive/auth` v3, no issuer on the wire, code `0xA3` in SYNC-110's compact form) is
//! checked under the creator its subject's genesis names. A relay refuses one whose genesis it
//! does not hold (`MissingPredecessors`, offered again after the genesis) and a forged one
//! (`BadSignature`); a replica parks it until the genesis arrives, in any order, and never
//! stores a forgery.

mod replicas;

use std::collections::BTreeMap;

use keyhive_core::Hash;
use keyhive_core::capability::{Access, Action, AgentId, AuthBody, PeerTag, Proof, Validity};
use keyhive_core::encoding::encode;
use keyhive_core::identity::{Device, GroupId};
use keyhive_core::wire_form::AUTH_ROOT_CODE;
use keyhive_sync::admission::{Admission, Admitted, Mode, Refusal, apply_order};
use keyhive_sync::{Item, ItemKind, SubjectId};
use replicas::{R, all_items, card, me, replica};

/// Alice's document and team, members granted and one revoked: her capability ops (not her
/// card), in the order a relay serves them (the genesis before what it implies).
fn history() -> (R, SubjectId, Vec<Item>) {
    let mut alice = replica("alice");
    let doc = alice.create_document().expect("doc");
    let team = alice.create_group().expect("team");
    let mut members = Vec::new();
    for name in ["bob", "carol", "dave"] {
        let r = replica(name);
        alice.add_contact(card(&r)).expect("contact");
        members.push(me(&r));
    }
    alice
        .grant(&doc.0, members[0], Access::Admin)
        .expect("grant");
    alice
        .grant(&doc.0, members[1], Access::Read)
        .expect("grant");
    alice
        .grant(&team.0, members[2], Access::Write)
        .expect("grant");
    alice
        .grant(&doc.0, AgentId::Group(GroupId(team.0)), Access::Read)
        .expect("grant");
    alice.revoke(&doc.0, members[1]).expect("revoke");
    let mut items: Vec<Item> = all_items(&alice)
        .into_iter()
        .filter(|i| i.kind() == ItemKind::Auth && alice.checker().op(&i.hash()).is_some())
        .collect();
    apply_order(&mut items);
    (alice, SubjectId(doc.0), items)
}

/// A root-form grant of admin on `subject` to `to`, signed by `by` (not its creator).
fn forged(subject: SubjectId, to: &Device, by: &Device) -> Item {
    let body = AuthBody {
        subject: subject.0,
        action: Action::Delegate {
            delegate: AgentId::Individual(to.id()),
            access: Access::Admin,
            proof: Proof::Root,
        },
        content_heads: Vec::new(),
    };
    let mut bytes = encode(&"keyhive/auth");
    bytes.push(3);
    bytes.extend_from_slice(&encode(&Vec::<Hash>::new()));
    bytes.extend_from_slice(&encode(&body));
    let signature = by.signing_key().sign(&bytes);
    bytes.extend_from_slice(&signature);
    let item = Item::new(ItemKind::Auth, subject, bytes).expect("item");
    // It travels compact like a genuine one, and expands to the same bytes.
    assert_eq!(item.wire_envelope()[0], AUTH_ROOT_CODE);
    Item::from_wire(item.to_wire()).expect("expands")
}

fn genesis_of(items: &[Item], subject: SubjectId) -> Item {
    items
        .iter()
        .find(|i| i.subject() == subject && i.envelope().starts_with(&encode(&"keyhive/genesis")))
        .expect("genesis")
        .clone()
}

#[test]
fn cap24_a_relay_refuses_a_root_form_before_its_genesis_and_a_forged_one() {
    let (_alice, doc, items) = history();
    let roots: Vec<&Item> = items
        .iter()
        .filter(|i| i.wire_envelope()[0] == AUTH_ROOT_CODE)
        .collect();
    assert!(roots.len() >= 4, "every grant and the revocation by alice");
    let grant = roots
        .iter()
        .find(|i| i.subject() == doc)
        .expect("a root grant on the document");
    let genesis = genesis_of(&items, doc);
    let mallory = Device::generate(Some("mallory".into()));
    let forgery = forged(doc, &mallory, &mallory);
    let from = PeerTag::from(mallory.id().0);

    let mut relay = Admission::default();
    // No genesis: nothing to check it under; refused, offered again later.
    assert!(matches!(
        relay.admit(Mode::Relay, from, grant),
        Err(Refusal::MissingPredecessors(1))
    ));
    assert!(matches!(
        relay.admit(Mode::Relay, from, &forgery),
        Err(Refusal::MissingPredecessors(1))
    ));
    assert!(matches!(
        relay.admit(Mode::Relay, from, &genesis),
        Ok(Admitted::Op { .. })
    ));
    assert!(matches!(
        relay.admit(Mode::Relay, from, grant),
        Ok(Admitted::Op { .. })
    ));
    assert!(matches!(
        relay.admit(Mode::Relay, from, &forgery),
        Err(Refusal::BadSignature(_))
    ));
    assert!(relay.checker().op(&forgery.hash()).is_none());

    // A replica parks the forgery until the genesis, then drops it: never stored.
    let mut replica = Admission::default();
    assert!(matches!(
        replica.admit(Mode::Replica, from, &forgery),
        Ok(Admitted::Parked)
    ));
    match replica.admit(Mode::Replica, from, &genesis) {
        Ok(Admitted::Op { released }) => assert!(released.is_empty()),
        other => panic!("{other:?}"),
    }
    assert!(replica.checker().op(&forgery.hash()).is_none());
    assert_eq!(replica.checker().pending_len(), 0);
    assert!(matches!(
        replica.admit(Mode::Replica, from, &forgery),
        Err(Refusal::BadSignature(_))
    ));
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// CAP-24 with CAP-4 and ADM-3: alice's history and a forgery, in random orders, to replicas
/// (which park what waits) and to relays (which refuse it, and are offered it again each round
/// until nothing changes): every genuine op is admitted with the verdict alice gives it,
/// nothing stays pending and the forgery is held nowhere.
#[test]
fn cap24_root_forms_are_admitted_in_any_delivery_order() {
    let (alice, doc, items) = history();
    let mallory = Device::generate(Some("mallory".into()));
    let forgery = forged(doc, &mallory, &mallory);
    let expected: BTreeMap<Hash, Validity> = items
        .iter()
        .map(|i| {
            let v = alice.checker().op_validity(&i.hash()).expect("held");
            (i.hash(), v)
        })
        .collect();
    let from = PeerTag::from(mallory.id().0);
    let mut state = 0x2401_u64;
    for _ in 0..24 {
        let mut order: Vec<Item> = items.clone();
        order.push(forgery.clone());
        for i in (1..order.len()).rev() {
            let j = (splitmix(&mut state) % (i as u64 + 1)) as usize;
            order.swap(i, j);
        }
        let mut replica = Admission::default();
        for item in &order {
            match replica.admit(Mode::Replica, from, item) {
                Ok(_) => {}
                Err(Refusal::BadSignature(_)) => assert_eq!(item.hash(), forgery.hash()),
                Err(e) => panic!("{e:?}"),
            }
        }
        let mut relay = Admission::default();
        let mut offered = order;
        loop {
            let before = offered.len();
            offered.retain(|item| match relay.admit(Mode::Relay, from, item) {
                Ok(_) => false,
                Err(Refusal::MissingPredecessors(_)) => true,
                Err(Refusal::BadSignature(_)) => {
                    assert_eq!(item.hash(), forgery.hash());
                    false
                }
                Err(e) => panic!("{e:?}"),
            });
            if offered.len() == before {
                break;
            }
        }
        assert!(offered.is_empty(), "every op admitted once its past was");
        for held in [&replica, &relay] {
            let checker = held.checker();
            assert_eq!(checker.pending_len(), 0);
            assert!(checker.op(&forgery.hash()).is_none());
            let got: BTreeMap<Hash, Validity> = items
                .iter()
                .map(|i| (i.hash(), checker.op_validity(&i.hash()).expect("admitted")))
                .collect();
            assert_eq!(got, expected);
            assert_eq!(checker.members(&doc.0), alice.checker().members(&doc.0));
        }
    }
}
