//! Defects the whole-system simulation (`simulation.rs`) found besides issue 10 item 1, reduced
//! to the relay policy or replica calls that show them, each named by the invariant it broke.

mod common;

use common::replica;
use keyhive_core::Hash;
use keyhive_core::capability::{Access, AgentId, ContentBody, Proof};
use keyhive_core::signed::{Op, Verified};
use keyhive_sync::capability_policy::CapabilityPolicy;
use keyhive_sync::policy::AccessPolicy;
use keyhive_sync::{Item, ItemKind, MemoryStore, Store, SubjectId};

/// A relay holding every item of `r`, admitted in rounds (a relay never parks).
fn relay_of(r: &common::R) -> (CapabilityPolicy, MemoryStore) {
    let policy = CapabilityPolicy::new([]);
    let store = MemoryStore::new();
    let items = common::all_items(r);
    for _ in 0..items.len() {
        policy
            .admit_batch(&r.device().id(), items.clone(), &store)
            .expect("admit");
    }
    (policy, store)
}

/// RELAY-2: the relay refuses an invalid content op once, but its checker keeps the op, so the
/// same op pushed again is answered `Duplicate` by admission and stored (simulation: "(adm)
/// relay-0 stored the unauthorised write ... (reference: Invalid(CAP-5 ...))").
#[test]
fn a_relay_refuses_an_invalid_op_every_time_it_is_pushed() {
    let mut alice = replica("alice");
    let mallory = replica("mallory");
    let doc = alice.create_document().expect("document");
    let (policy, _store) = relay_of(&alice);
    let body = ContentBody {
        document: doc,
        auth_heads: Vec::new(),
        proof: Proof::Root,
        payload: keyhive_core::capability::Payload::Blob {
            hash: Hash::of_content(b"x"),
            len: 1,
        },
    };
    let op = Op::new(mallory.device().id().0, Vec::new(), body);
    let op = Verified::sign(op, mallory.device().signing_key()).expect("sign");
    let item =
        Item::new(ItemKind::Content, SubjectId(doc.0), op.as_bytes().to_vec()).expect("item");
    let from = mallory.device().id();
    assert!(policy.check_push(&from, &item).is_err(), "first push");
    assert!(policy.check_push(&from, &item).is_err(), "second push");
}

/// REP-30: a device that never held `pull` on a document is served its ops as a "removed"
/// device when a revoked delegation lies on a path to it, though that path never granted
/// anything while the device was on it (simulation: "(e) alice-laptop was served a Content
/// item of subject 8, which it never could pull, by relay-1").
#[test]
fn a_device_that_never_had_access_is_not_served_as_removed() {
    let mut alice = replica("alice");
    let carol = replica("carol");
    let doc = alice.create_document().expect("document");
    let group = alice.create_group().expect("group");
    alice
        .grant(&doc.0, AgentId::Group(group), Access::Read)
        .expect("grant");
    alice.revoke(&doc.0, AgentId::Group(group)).expect("revoke");
    // Carol joins the group only after it lost the document.
    alice
        .grant(
            &group.0,
            AgentId::Individual(carol.device().id()),
            Access::Read,
        )
        .expect("grant");
    let (policy, _store) = relay_of(&alice);
    let doc = SubjectId(doc.0);
    let carol = carol.device().id();
    assert!(!policy.may_pull(&carol, &doc));
    assert!(!policy.removed_from(&carol, &doc));
}

/// (f), REP-33: a valid write whose causal past holds its writer's own op made invalid by a
/// concurrent revocation never reaches a relay: the relay refuses the invalid op (RELAY-1), and
/// the writer, removed from that op's subject, no longer offers it (REP-33), so the relay
/// refuses the write for want of a parent, for good (simulation seed 1034, "(f) the write of
/// step 11 by bob-phone (valid) is not at relay-0; the relay lacks its parents [... of subject
/// 1 (Invalid(CAP-11 Excluded))]").
/// Fixed by CAP-20: the write's parents stay on its own subject, so the phone's excluded op on
/// the group is not one of them.
#[test]
fn a_valid_write_after_a_concurrently_revoked_op_reaches_the_relay() {
    use keyhive_core::capability::PeerTag;
    use keyhive_sync::replica::ReplicaGate;
    use std::sync::{Arc, Mutex};

    let mut laptop = replica("bob-laptop");
    let phone_device = keyhive_core::identity::Device::generate(Some("bob-phone".into()));
    let mut phone = common::replica_of(phone_device.clone());
    laptop
        .add_contact(phone_device.contact_card().expect("card"))
        .expect("contact");
    let me = AgentId::Individual(phone_device.id());
    let person = laptop.create_group().expect("bob's group");
    laptop
        .grant(&person.0, me, Access::Admin)
        .expect("phone in bob's group");
    let notes = laptop.create_document().expect("notes");
    laptop
        .grant(&notes.0, me, Access::Admin)
        .expect("notes to the phone");
    phone
        .ingest_all(PeerTag::LOCAL, common::all_items(&laptop))
        .expect("phone syncs");
    // Concurrently: the laptop removes the phone from bob's group; the phone, not knowing,
    // acts on the group, then writes the notes, which it may still write.
    laptop.revoke(&person.0, me).expect("revoke the phone");
    phone
        .grant(&person.0, AgentId::Document(notes), Access::Read)
        .expect("phone acts on the group");
    let write = phone.write(notes, b"still mine").expect("write");
    // The write is valid: a replica holding everything says so.
    let mut reference = replica("reference");
    for r in [&laptop, &phone] {
        reference
            .ingest_all(PeerTag::LOCAL, common::all_items(r))
            .expect("reference");
    }
    assert!(reference.validity(&write).is_some_and(|v| v.is_valid()));
    // The phone learns of its removal, so of bob's group it offers only its own valid ops
    // (REP-33), not its excluded grant.
    phone
        .ingest_all(PeerTag::LOCAL, common::all_items(&laptop))
        .expect("phone syncs");
    let phone = Arc::new(Mutex::new(phone));
    let gate = ReplicaGate::new(phone.clone());
    let held = common::all_items(&*phone.lock().expect("lock"));
    let offered: Vec<Item> = held
        .into_iter()
        .filter(|i| match gate.offers(&i.subject()) {
            keyhive_sync::Offer::Own(own) => {
                let h = i.hash();
                own.ops.contains_key(&h) || own.past.contains_key(&h) || own.keys.contains(&h)
            }
            _ => true,
        })
        .collect();
    // The relay gets everything from the laptop and, again and again, what the phone offers.
    let (policy, store) = relay_of(&laptop);
    for _ in 0..4 {
        policy
            .admit_batch(&phone_device.id(), offered.clone(), &store)
            .expect("admit");
    }
    let item = offered
        .iter()
        .find(|i| i.hash() == write)
        .expect("the phone offers its write");
    assert!(
        keyhive_sync::Store::contains(&store, &write).expect("contains"),
        "the valid write never reaches the relay: {:?}",
        policy.check_push(&phone_device.id(), item)
    );
}

/// (b), REP-5: a change written concurrently with the seating of a new reader is readable by
/// that reader once the two meet, though nobody writes again (simulation: "(b) carol holds read
/// on doc but cannot read the write of step N by bob").
#[test]
fn a_change_concurrent_with_a_seat_is_readable_by_the_seated_reader() {
    use keyhive_core::capability::PeerTag;

    let mut alice = replica("alice");
    let bob_device = keyhive_core::identity::Device::generate(Some("bob".into()));
    let carol_device = keyhive_core::identity::Device::generate(Some("carol".into()));
    let mut bob = common::replica_of(bob_device.clone());
    let mut carol = common::replica_of(carol_device.clone());
    let doc = alice.create_document().expect("document");
    alice
        .add_contact(bob_device.contact_card().expect("card"))
        .expect("bob's card");
    alice
        .grant(&doc.0, AgentId::Individual(bob_device.id()), Access::Write)
        .expect("bob writes");
    alice.write(doc, b"first").expect("alice writes");
    bob.ingest_all(PeerTag::LOCAL, common::all_items(&alice))
        .expect("bob syncs");
    // Concurrently: Bob writes; Alice shares the document with Carol (seating her).
    let concurrent = bob
        .write(doc, b"bob's concurrent change")
        .expect("bob writes");
    alice
        .add_contact(carol_device.contact_card().expect("card"))
        .expect("carol's card");
    alice
        .grant(&doc.0, AgentId::Individual(carol_device.id()), Access::Read)
        .expect("carol reads");
    alice.prepare_all().expect("alice seats carol");
    // Everyone meets and syncs until quiet, as `sync_with` does (prepare between rounds).
    for _ in 0..4 {
        let items: Vec<Item> = [&alice, &bob, &carol]
            .iter()
            .flat_map(|r| common::all_items(*r))
            .collect();
        for r in [&mut alice, &mut bob, &mut carol] {
            r.ingest_all(PeerTag::LOCAL, items.clone()).expect("sync");
            r.prepare_all().expect("prepare");
        }
    }
    let mut out = Vec::new();
    carol
        .read_change(doc, &concurrent, &mut out)
        .expect("carol reads bob's concurrent change");
    assert_eq!(out, b"bob's concurrent change");
}

/// Every item of `items` that `relay` takes from `from`, admitted in rounds (a relay never
/// parks, so an item waits for the round after its predecessors).
fn feed(relay: &(CapabilityPolicy, MemoryStore), from: &common::R, items: &[Item]) {
    for _ in 0..items.len() {
        relay
            .0
            .admit_batch(&from.device().id(), items.to_vec(), &relay.1)
            .expect("admit");
    }
}

fn stored_of_kind(store: &MemoryStore, subject: SubjectId, kind: ItemKind) -> Vec<Hash> {
    let mut out: Vec<Hash> = store
        .hashes(&subject)
        .expect("hashes")
        .into_iter()
        .filter(|h| store.get(h).expect("get").is_some_and(|i| i.kind() == kind))
        .collect();
    out.sort();
    out
}

/// (b), ADM-5: whether a relay stores a key-agreement op must not depend on the order the
/// capability ops reached it in, or a later update naming a refused op as predecessor stays
/// unreadable behind one relay (simulation: "(b) ... not readable", 12 of 200 seeds).
/// `Checker::held` turns false as ops arrive (a redemption displaced by a concurrent one with
/// a smaller hash, INV-6; a path that never granted before its cut, REP-30) and caches its
/// positive answers, so it is order-dependent; ADM-5 now asks `Checker::ever_granted`, which
/// only grows. Here Bob's update reaches one relay before his redemption is displaced and the
/// other after. (This order did not split the relays before the change either: `held`'s
/// cache kept Bob; the test guards the property.)
#[test]
fn relays_fed_in_different_orders_store_the_same_key_agreement_ops() {
    use keyhive_core::capability::PeerTag;

    let mut alice = replica("alice");
    let doc = alice.create_document().expect("document");
    alice.write(doc, b"v1").expect("write");
    let (_, code) = alice
        .invite(&doc.0, Access::Write, None, 1, "ws://relay.invalid/sync")
        .expect("invite");
    let mut bob = replica("bob");
    let rb = bob.redeem(&code, 10).expect("bob redeems");
    alice
        .ingest_all(PeerTag::LOCAL, common::all_items(&bob))
        .expect("alice hears of bob");
    alice.prepare(doc).expect("alice seats bob");
    bob.ingest_all(PeerTag::LOCAL, common::all_items(&alice))
        .expect("bob syncs");
    bob.write(doc, b"from bob")
        .expect("bob writes, updating his key");
    // Carol redeems the single-use code concurrently; her redemption sorts first, so it
    // displaces Bob's (INV-6) once a replica holds both.
    let carols = (0..256)
        .find_map(|t| {
            let item = replica("carol").redemption(&code, t).ok()?;
            (item.hash() < rb).then_some(item)
        })
        .expect("a redemption ordered before Bob's");

    let (alices, bobs) = (common::all_items(&alice), common::all_items(&bob));
    let first = (CapabilityPolicy::new([]), MemoryStore::new());
    feed(&first, &alice, &alices);
    feed(&first, &bob, &bobs);
    feed(&first, &alice, std::slice::from_ref(&carols));
    // The second relay learns of both redemptions before any key-agreement op.
    let second = (CapabilityPolicy::new([]), MemoryStore::new());
    feed(&second, &alice, &common::auth_items(&alice));
    feed(&second, &alice, std::slice::from_ref(&carols));
    feed(&second, &alice, &alices);
    feed(&second, &bob, &bobs);

    let subject = SubjectId(doc.0);
    let held = stored_of_kind(&first.1, subject, ItemKind::Cgka);
    assert!(
        bobs.iter()
            .any(|i| i.kind() == ItemKind::Cgka && held.contains(&i.hash())),
        "the first relay took Bob's update while he held write"
    );
    assert_eq!(
        held,
        stored_of_kind(&second.1, subject, ItemKind::Cgka),
        "both relays store the same key-agreement ops"
    );
}

/// (b), REP-5b: a change that its successor does not carry (its writer held the op but could
/// not open it yet when it wrote) is readable by a reader seated later (simulation seed 35:
/// "(b) mallory holds read on subject 7 (plan) but cannot read the write of step 16 by
/// alice-laptop"; bob-laptop wrote on top of it before its change blob reached him). Before
/// REP-5b the seater's entry point carried the heads only, and no head carried the change.
#[test]
fn a_change_its_successor_could_not_open_is_readable_by_a_reader_seated_later() {
    use keyhive_core::capability::PeerTag;

    let mut alice = replica("alice");
    let bob_device = keyhive_core::identity::Device::generate(Some("bob".into()));
    let carol_device = keyhive_core::identity::Device::generate(Some("carol".into()));
    let mut bob = common::replica_of(bob_device.clone());
    let mut carol = common::replica_of(carol_device.clone());
    let doc = alice.create_document().expect("document");
    alice
        .add_contact(bob_device.contact_card().expect("card"))
        .expect("bob's card");
    alice
        .grant(&doc.0, AgentId::Individual(bob_device.id()), Access::Write)
        .expect("bob writes");
    alice.write(doc, b"first").expect("alice writes");
    bob.ingest_all(PeerTag::LOCAL, common::all_items(&alice))
        .expect("bob syncs");
    // Over the inline limit (INL-2), so the change travels as an op and a blob.
    let second_text = vec![b's'; 2048];
    let second = alice.write(doc, &second_text).expect("alice writes again");
    // Bob gets the op of Alice's second change, but not its blob yet: he cannot open it, and
    // his own change names it as a parent without carrying its key.
    let (blobs, ops): (Vec<Item>, Vec<Item>) = common::all_items(&alice)
        .into_iter()
        .partition(|i| i.kind() == ItemKind::Blob);
    bob.ingest_all(PeerTag::LOCAL, ops)
        .expect("bob gets the op");
    let mut out = Vec::new();
    assert!(
        bob.read_change(doc, &second, &mut out).is_err(),
        "bob cannot open the second change yet"
    );
    let third = bob.write(doc, b"third").expect("bob writes on top");
    bob.ingest_all(PeerTag::LOCAL, blobs)
        .expect("the blob arrives");
    alice
        .ingest_all(PeerTag::LOCAL, common::all_items(&bob))
        .expect("alice syncs");
    // Alice shares the document with Carol, seating her; everyone syncs until quiet.
    alice
        .add_contact(carol_device.contact_card().expect("card"))
        .expect("carol's card");
    alice
        .grant(&doc.0, AgentId::Individual(carol_device.id()), Access::Read)
        .expect("carol reads");
    alice.prepare_all().expect("alice seats carol");
    for _ in 0..4 {
        let items: Vec<Item> = [&alice, &bob, &carol]
            .iter()
            .flat_map(|r| common::all_items(*r))
            .collect();
        for r in [&mut alice, &mut bob, &mut carol] {
            r.ingest_all(PeerTag::LOCAL, items.clone()).expect("sync");
            r.prepare_all().expect("prepare");
        }
    }
    for (change, text) in [(third, &b"third"[..]), (second, &second_text[..])] {
        let mut out = Vec::new();
        carol
            .read_change(doc, &change, &mut out)
            .expect("carol reads the change");
        assert_eq!(out, text);
    }
}

/// (b), REP-5a: a change written concurrently with a reader's seat, whose author then loses
/// `read`, is readable by that reader though nobody writes after it (simulation seed 183: "(b)
/// carol holds read on subject 7 (plan) but cannot read the write of step 44 by alice-phone";
/// alice-phone wrote while alice-laptop seated carol, then revoked alice's group from the
/// team). Only the author of an uncovered head published an entry point for it, and an author
/// without `read` never will; now a device that opened the head publishes it once its author
/// no longer reads. Here Alice opens Dave's change only after removing him (its blob arrives
/// late), so she must look again when she opens it, not only when the members change.
#[test]
fn a_change_concurrent_with_a_seat_whose_author_lost_read_is_readable_by_the_seated_reader() {
    use keyhive_core::capability::PeerTag;

    let mut alice = replica("alice");
    let dave_device = keyhive_core::identity::Device::generate(Some("dave".into()));
    let carol_device = keyhive_core::identity::Device::generate(Some("carol".into()));
    let mut dave = common::replica_of(dave_device.clone());
    let mut carol = common::replica_of(carol_device.clone());
    let doc = alice.create_document().expect("document");
    alice
        .add_contact(dave_device.contact_card().expect("card"))
        .expect("dave's card");
    alice
        .grant(&doc.0, AgentId::Individual(dave_device.id()), Access::Write)
        .expect("dave writes");
    alice
        .write(doc, b"first")
        .expect("alice writes, seating dave");
    dave.ingest_all(PeerTag::LOCAL, common::all_items(&alice))
        .expect("dave syncs");
    // Concurrently: Dave writes (over the inline limit, INL-2: an op and a blob); Alice shares
    // the document with Carol, seating her under a new epoch.
    let text = vec![b'd'; 2048];
    let concurrent = dave.write(doc, &text).expect("dave writes");
    alice
        .add_contact(carol_device.contact_card().expect("card"))
        .expect("carol's card");
    alice
        .grant(&doc.0, AgentId::Individual(carol_device.id()), Access::Read)
        .expect("carol reads");
    alice.prepare_all().expect("alice seats carol");
    // Alice receives Dave's op, then removes him (so his change is valid); its blob arrives
    // after she re-keyed. Dave, who never learned of Carol's seat, no longer reads.
    let (blobs, ops): (Vec<Item>, Vec<Item>) = common::all_items(&dave)
        .into_iter()
        .partition(|i| i.kind() == ItemKind::Blob);
    alice.ingest_all(PeerTag::LOCAL, ops).expect("dave's op");
    alice
        .revoke(&doc.0, AgentId::Individual(dave_device.id()))
        .expect("alice removes dave");
    alice.prepare_all().expect("alice re-keys without dave");
    alice
        .ingest_all(PeerTag::LOCAL, blobs)
        .expect("dave's blob arrives");
    // Alice and Carol sync until quiet, as `sync_with` does (prepare between rounds).
    for _ in 0..4 {
        let items: Vec<Item> = [&alice, &carol]
            .iter()
            .flat_map(|r| common::all_items(*r))
            .collect();
        for r in [&mut alice, &mut carol] {
            r.ingest_all(PeerTag::LOCAL, items.clone()).expect("sync");
            r.prepare_all().expect("prepare");
        }
    }
    assert!(
        carol.validity(&concurrent).is_some_and(|v| v.is_valid()),
        "dave's change is valid"
    );
    let mut out = Vec::new();
    carol
        .read_change(doc, &concurrent, &mut out)
        .expect("carol reads dave's concurrent change");
    assert_eq!(out, text);
}

/// CAP-19: every op `replica`'s checker applied is in its store (none applied but never stored).
fn assert_applied_ops_stored(replica: &common::R, context: &str) {
    for op in replica.checker().ops() {
        assert!(
            replica.store().contains(&op.hash()).expect("contains"),
            "applied {} without storing it ({context})",
            op.hash()
        );
    }
}

/// (a), CAP-19: a device removing a member that holds several delegations on a subject revokes
/// all of them or none (simulation seed 61, on about half the runs: "(a) bob-laptop and
/// bob-phone disagree on the members of subject 1 (bob's group): [bob-laptop, dave, bob-phone]
/// vs [bob-laptop]"). Bob-phone, admin of bob's group and a writer through its own invitation,
/// removed itself. When its admin delegation sorted first by hash, `revoke_member` revoked it,
/// then held no admin authority left to revoke the other one and failed: the first revocation
/// stayed applied to the phone's checker but was never stored, so it never left the phone,
/// which alone saw itself (and everyone it had added) removed, until a restart forgot it.
/// The order depends on hashes, so both orders are tried here.
#[test]
fn a_device_removing_itself_revokes_every_delegation_or_none() {
    use keyhive_core::capability::PeerTag;

    let mut seen = [false; 2];
    for _ in 0..256 {
        if seen == [true, true] {
            break;
        }
        let mut laptop = replica("bob-laptop");
        let phone_device = keyhive_core::identity::Device::generate(Some("bob-phone".into()));
        let mut phone = common::replica_of(phone_device.clone());
        laptop
            .add_contact(phone_device.contact_card().expect("card"))
            .expect("contact");
        let me = AgentId::Individual(phone_device.id());
        let group = laptop.create_group().expect("bob's group");
        let admin = laptop.grant(&group.0, me, Access::Admin).expect("admin");
        let write = laptop.grant(&group.0, me, Access::Write).expect("write");
        let admin_first = admin < write;
        seen[usize::from(admin_first)] = true;
        phone
            .ingest_all(PeerTag::LOCAL, common::all_items(&laptop))
            .expect("phone syncs");
        let revoked = phone.revoke(&group.0, me);
        // Whatever the answer, the phone's checker holds nothing its store lacks.
        assert_applied_ops_stored(&phone, &format!("admin delegation first: {admin_first}"));
        let revoked = revoked.expect("the phone may remove itself");
        assert_eq!(revoked.len(), 2, "both delegations revoked");
        laptop
            .ingest_all(PeerTag::LOCAL, common::all_items(&phone))
            .expect("laptop syncs");
        for level in [Access::Pull, Access::Admin] {
            let everyone = [
                laptop.devices_with(&group.0, level),
                phone.devices_with(&group.0, level),
            ];
            assert_eq!(
                everyone[0], everyone[1],
                "laptop and phone agree at {level}"
            );
            assert!(!everyone[0].contains(&phone_device.id()), "the phone left");
        }
    }
    assert_eq!(seen, [true, true], "both hash orders were tried");
}

/// (a), CAP-19, the "none" half: a member this device may remove only in part (one of its
/// delegations is more senior than the device, CAP-9) is not removed at all, whichever
/// delegation sorts first, and nothing is left applied but unstored.
#[test]
fn a_member_that_cannot_be_removed_completely_is_not_removed_at_all() {
    use keyhive_core::capability::PeerTag;
    use keyhive_core::identity::Device;

    let mut seen = [false; 2];
    for _ in 0..256 {
        if seen == [true, true] {
            break;
        }
        let mut root = replica("root");
        let (carol, erin, dave) = (
            Device::generate(Some("carol".into())),
            Device::generate(Some("erin".into())),
            Device::generate(Some("dave".into())),
        );
        let agent = |d: &Device| AgentId::Individual(d.id());
        let group = root.create_group().expect("group");
        root.grant(&group.0, agent(&carol), Access::Admin)
            .expect("carol, depth 1");
        let senior = root
            .grant(&group.0, agent(&dave), Access::Write)
            .expect("dave, depth 1");
        let mut carol = common::replica_of(carol);
        carol
            .ingest_all(PeerTag::LOCAL, common::all_items(&root))
            .expect("carol syncs");
        carol
            .grant(&group.0, agent(&erin), Access::Admin)
            .expect("erin, depth 2");
        let mut erin = common::replica_of(erin);
        erin.ingest_all(PeerTag::LOCAL, common::all_items(&carol))
            .expect("erin syncs");
        let junior = erin
            .grant(&group.0, agent(&dave), Access::Read)
            .expect("dave, depth 3");
        seen[usize::from(junior < senior)] = true;
        let before = erin.checker().len();
        let refused = erin.revoke(&group.0, agent(&dave));
        assert!(
            refused.is_err(),
            "erin may not revoke dave's senior delegation"
        );
        assert_eq!(erin.checker().len(), before, "nothing applied");
        assert_applied_ops_stored(&erin, "erin refused");
        assert!(
            erin.checker().can(agent(&dave), Access::Write, &group.0),
            "dave keeps both delegations"
        );
    }
    assert_eq!(seen, [true, true], "both hash orders were tried");
}

/// (b), CGKA-18, REP-4: a change its writer made while it held `read` stays readable after the
/// writer leaves, whenever its key update arrives (simulation seeds 166, 183, 210, 302, 355,
/// 360, 385 on most runs: "(b) alice-laptop holds read on subject 6 (diary) but cannot read
/// the write of step 8 by alice-phone"). Alice's phone, in the diary through alice's group,
/// writes it, then leaves the group; the laptop and carol learn of the write and the leave
/// together. Key updates were received only from devices holding `read` *now*, so both
/// refused the update the change is encrypted under (a replica that got it before the leave
/// applied it): they held a valid change they could never read. Updates are now received from
/// devices that held `read` (ADM-5); replay still applies them only while the issuer is seated.
#[test]
fn a_change_made_before_its_writer_left_is_readable_after_the_leave() {
    use keyhive_core::capability::PeerTag;
    use keyhive_core::identity::Device;

    let mut laptop = replica("alice-laptop");
    let (phone_device, carol_device) = (
        Device::generate(Some("alice-phone".into())),
        Device::generate(Some("carol".into())),
    );
    let mut phone = common::replica_of(phone_device.clone());
    let mut carol = common::replica_of(carol_device.clone());
    for card in [&phone_device, &carol_device] {
        laptop
            .add_contact(card.contact_card().expect("card"))
            .expect("contact");
    }
    let me = AgentId::Individual(phone_device.id());
    let alice = laptop.create_group().expect("alice's group");
    laptop
        .grant(&alice.0, me, Access::Admin)
        .expect("phone in alice's group");
    let diary = laptop.create_document().expect("diary");
    laptop
        .grant(&diary.0, AgentId::Group(alice), Access::Admin)
        .expect("diary to alice's group");
    laptop
        .grant(
            &diary.0,
            AgentId::Individual(carol_device.id()),
            Access::Read,
        )
        .expect("carol reads the diary");
    phone
        .ingest_all(PeerTag::LOCAL, common::all_items(&laptop))
        .expect("phone syncs");
    // The phone writes (seating itself and carol, then updating: the change's epoch is the
    // phone's update), then leaves alice's group, before syncing again.
    let change = phone.write(diary, b"from the phone").expect("phone writes");
    phone.revoke(&alice.0, me).expect("the phone leaves");
    for r in [&mut laptop, &mut carol] {
        r.ingest_all(PeerTag::LOCAL, common::all_items(&phone))
            .expect("sync with the phone");
    }
    carol
        .ingest_all(PeerTag::LOCAL, common::all_items(&laptop))
        .expect("carol syncs with the laptop");
    for (name, r) in [("laptop", &laptop), ("carol", &carol)] {
        assert!(
            r.validity(&change).is_some_and(|v| v.is_valid()),
            "{name}: the change was made while the phone held write"
        );
        let mut out = Vec::new();
        r.read_change(diary, &change, &mut out)
            .unwrap_or_else(|e| panic!("{name} reads the phone's change: {e}"));
        assert_eq!(out, b"from the phone", "{name}");
    }
}
