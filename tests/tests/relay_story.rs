//! Issue 5 acceptance: Alice shares a folder with Bob through a real relay on loopback; Bob
//! reads it; Carol, who has no access, gets nothing (not even ciphertext); Alice revokes Bob;
//! Bob cannot read anything written afterwards; a non-writer's write is refused by the relay
//! and by every replica; the relay's data directory holds none of the plaintexts.

mod common;

use common::{Peer, relay};
use keyhive_core::Hash;
use keyhive_core::capability::{Access, AgentId, ContentBody, PeerTag, Validity};
use keyhive_core::signed::{Op, Verified};
use keyhive_sync::protocol::PushOutcome;
use keyhive_sync::{Item, ItemKind, Store, SubjectId};

fn scan(dir: &std::path::Path, needle: &[u8]) -> bool {
    std::fs::read_dir(dir).unwrap().any(|e| {
        let bytes = std::fs::read(e.unwrap().path()).unwrap();
        bytes.windows(needle.len()).any(|w| w == needle)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn share_read_revoke_through_a_relay() {
    let dir = tempfile::tempdir().unwrap();
    let (handle, relay_store) = relay(dir.path()).await;
    let url = handle.url();
    let (alice, bob, carol) = (Peer::new("alice"), Peer::new("bob"), Peer::new("carol"));

    let (folder, doc) = {
        let mut a = alice.replica.lock().unwrap();
        let folder = a.create_document().unwrap();
        let doc = a.create_document().unwrap();
        a.grant(&doc.0, AgentId::Document(folder), Access::Admin)
            .unwrap();
        a.add_contact(bob.card()).unwrap();
        a.grant(&folder.0, bob.id(), Access::Read).unwrap();
        a.write(doc, b"secret plan v1").unwrap();
        (folder, doc)
    };
    alice.sync(&url).await;
    bob.sync(&url).await;
    assert_eq!(bob.read(doc).unwrap(), b"secret plan v1");

    // Carol has no access: she receives nothing of the folder or the document.
    carol.sync(&url).await;
    {
        let c = carol.replica.lock().unwrap();
        for subject in [folder.0, doc.0] {
            let held = c.store().hashes(&keyhive_sync::SubjectId(subject)).unwrap();
            assert!(held.is_empty(), "carol received {} item(s)", held.len());
        }
    }

    // Bob (read-only) cannot write: his replica refuses to build the op; a content op he forges
    // anyway is refused by the relay and found invalid by Alice's replica.
    assert!(
        bob.replica
            .lock()
            .unwrap()
            .write(doc, b"bob was here")
            .is_err()
    );
    let forged = {
        let b = bob.replica.lock().unwrap();
        let me = b.device().id();
        let proof = b
            .checker()
            .find_proof(me, &doc.0, Access::Read, u32::MAX)
            .unwrap();
        let body = ContentBody {
            document: doc,
            auth_heads: b.checker().auth_heads(&doc.0),
            proof,
            payload: keyhive_core::capability::Payload::Blob {
                hash: Hash::of_content(b"forged"),
                len: 6,
            },
        };
        let op = Op::new(me.0, b.checker().content_heads(&doc.0), body);
        let op = Verified::sign(op, b.device().signing_key()).unwrap();
        Item::new(ItemKind::Content, SubjectId(doc.0), op.as_bytes().to_vec()).unwrap()
    };
    let session = bob.client.connect(&url).await.unwrap();
    let outcome = session.push(std::slice::from_ref(&forged)).await.unwrap();
    assert!(
        matches!(outcome[0], PushOutcome::Refused(_)),
        "relay stored a forged edit: {outcome:?}"
    );
    assert!(!relay_store.contains(&forged.hash()).unwrap());
    let bob_peer = PeerTag::from(bob.replica.lock().unwrap().device().id().0);
    alice
        .replica
        .lock()
        .unwrap()
        .ingest(bob_peer, &forged)
        .unwrap();
    assert!(matches!(
        alice.replica.lock().unwrap().validity(&forged.hash()),
        Some(Validity::Invalid(_))
    ));

    alice
        .replica
        .lock()
        .unwrap()
        .revoke(&folder.0, bob.id())
        .unwrap();
    alice
        .replica
        .lock()
        .unwrap()
        .write(doc, b"secret plan v2")
        .unwrap();
    alice.sync(&url).await;
    bob.sync(&url).await;
    assert_ne!(bob.read(doc).as_deref(), Some(&b"secret plan v2"[..]));

    drop(relay_store);
    handle.shutdown().await.unwrap();
    for plaintext in [&b"secret plan v1"[..], b"secret plan v2"] {
        assert!(!scan(dir.path(), plaintext), "relay data holds plaintext");
    }
}
