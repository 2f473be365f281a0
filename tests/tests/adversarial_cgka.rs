//! Issue 9 items 5 and 7 end to end through a real relay on loopback: Mallory, a reader of
//! Alice's document, pushes a second key-agreement init for it (`specs/cgka.md` CGKA-25) and
//! 200 removals of devices that were never seated (CGKA-26); Eve, who holds nothing, pushes a
//! removal too (CGKA-17). Carol, added afterwards, is handed the forged init before anything
//! else, and still reads and writes with Alice and Mallory; no replica stores a forged op.

mod common;

use common::{Peer, relay};
use keyhive_core::Hash;
use keyhive_core::capability::{Access, PeerTag};
use keyhive_core::cgka::{Cgka, CgkaBody};
use keyhive_core::identity::{Device, DocumentId};
use keyhive_core::signed::{Op, Verified};
use keyhive_sync::protocol::PushOutcome;
use keyhive_sync::{Item, ItemKind, Store, SubjectId};

/// A key-agreement op `author` signs for `doc` on top of `predecessors`, bypassing every local
/// check, filed as a sync item.
fn forged(author: &Device, doc: DocumentId, predecessors: Vec<Hash>, body: CgkaBody) -> Item {
    let op = Op::new(author.id().0, predecessors, body);
    let op = Verified::sign(op, author.signing_key()).unwrap();
    Item::new(ItemKind::Cgka, SubjectId(doc.0), op.as_bytes().to_vec()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_init_and_no_op_removals_through_a_relay_do_not_split_a_document() {
    let dir = tempfile::tempdir().unwrap();
    let (handle, relay_store) = relay(dir.path()).await;
    let url = handle.url();
    let (alice, mallory, carol, eve) = (
        Peer::new("alice"),
        Peer::new("mallory"),
        Peer::new("carol"),
        Peer::new("eve"),
    );

    let doc = {
        let mut a = alice.replica.lock().unwrap();
        let doc = a.create_document().unwrap();
        a.add_contact(mallory.card()).unwrap();
        a.grant(&doc.0, mallory.id(), Access::Read).unwrap();
        a.write(doc, b"v1 by alice").unwrap();
        doc
    };
    alice.sync(&url).await;
    mallory.sync(&url).await;
    assert_eq!(mallory.read(doc).unwrap(), b"v1 by alice");

    // Mallory signs a second init for Alice's document and 200 removals of devices that were
    // never seated, on top of her current key-agreement heads.
    let m = mallory.device();
    let (_, init) = Cgka::create(doc, &m).unwrap();
    let forged_init =
        Item::new(ItemKind::Cgka, SubjectId(doc.0), init.as_bytes().to_vec()).unwrap();
    let heads: Vec<Hash> = {
        let r = mallory.replica.lock().unwrap();
        r.cgka(&doc).unwrap().heads().iter().copied().collect()
    };
    let removals: Vec<Item> = (0..200)
        .map(|_| {
            let nobody = Device::generate(None).id();
            forged(&m, doc, heads.clone(), CgkaBody::Remove { device: nobody })
        })
        .collect();
    let session = mallory.client.connect(&url).await.unwrap();
    let outcome = session
        .push(std::slice::from_ref(&forged_init))
        .await
        .unwrap();
    assert!(
        matches!(outcome[0], PushOutcome::Refused(_)),
        "relay stored a second init: {outcome:?}"
    );
    assert!(!relay_store.contains(&forged_init.hash()).unwrap());
    // The removed devices never held read, so never held a seat: the relay refuses the no-op
    // removals too (ADM-5 `NeverSeated`), though it holds no tree; replicas refuse them as well.
    let outcomes = session.push(&removals).await.unwrap();
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, PushOutcome::Refused(_))),
        "relay stored a no-op removal: {outcomes:?}"
    );
    for removal in &removals {
        assert!(!relay_store.contains(&removal.hash()).unwrap());
    }

    // Eve holds nothing: her removal of a non-reader is refused by the relay (RELAY-3) and by
    // Alice's replica (CGKA-17), and stored by neither.
    let stranger_removal = forged(
        &eve.device(),
        doc,
        heads.clone(),
        CgkaBody::Remove {
            device: Device::generate(None).id(),
        },
    );
    let session = eve.client.connect(&url).await.unwrap();
    let outcome = session
        .push(std::slice::from_ref(&stranger_removal))
        .await
        .unwrap();
    assert!(matches!(outcome[0], PushOutcome::Refused(_)));
    let eve_tag = PeerTag::from(eve.device().id().0);
    assert!(
        alice
            .replica
            .lock()
            .unwrap()
            .ingest(eve_tag, &stranger_removal)
            .is_err()
    );
    assert!(!alice.holds(&stranger_removal));

    // Alice adds Carol. A hostile peer hands Carol the capability graph and then the forged
    // init before she ever talks to the relay: she must refuse it (CGKA-25).
    {
        let mut a = alice.replica.lock().unwrap();
        a.add_contact(carol.card()).unwrap();
        a.grant(&doc.0, carol.id(), Access::Write).unwrap();
    }
    alice.sync(&url).await;
    {
        let mut c = carol.replica.lock().unwrap();
        let tag = PeerTag::from(m.id().0);
        for (hash, result) in c.ingest_all(tag, alice.auth_items()).unwrap() {
            result.unwrap_or_else(|e| panic!("{hash}: {e}"));
        }
        assert!(
            c.ingest(tag, &forged_init).is_err(),
            "carol accepted a second init"
        );
        for removal in &removals {
            let _ = c.ingest(tag, removal);
        }
    }
    assert!(!carol.holds(&forged_init));

    carol.sync(&url).await;
    assert_eq!(carol.read(doc).unwrap(), b"v1 by alice");
    carol.write(doc, b"v2 by carol");
    carol.sync(&url).await;
    alice.sync(&url).await;
    mallory.sync(&url).await;
    assert_eq!(alice.read(doc).unwrap(), b"v2 by carol");
    assert_eq!(mallory.read(doc).unwrap(), b"v2 by carol");
    alice.write(doc, b"v3 by alice");
    alice.sync(&url).await;
    carol.sync(&url).await;
    assert_eq!(carol.read(doc).unwrap(), b"v3 by alice");

    // Everyone runs the key agreement the genesis names, and nobody stored a forged op.
    let named = alice
        .replica
        .lock()
        .unwrap()
        .checker()
        .key_agreement(&doc)
        .unwrap()
        .init;
    for peer in [&alice, &mallory, &carol] {
        let r = peer.replica.lock().unwrap();
        let cgka = r.cgka(&doc).unwrap();
        assert_eq!(cgka.init_hash(), named);
        let applied: std::collections::BTreeSet<Hash> =
            cgka.ops_in_order().map(|op| op.hash()).collect();
        drop(r);
        assert!(!peer.holds(&forged_init));
        for removal in &removals {
            assert!(!peer.holds(removal), "a no-op removal was stored");
            assert!(
                !applied.contains(&removal.hash()),
                "a no-op removal applied"
            );
        }
    }

    drop(relay_store);
    handle.shutdown().await.unwrap();
}
