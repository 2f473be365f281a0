//! KEYS-11 as an app meets it: a `Repo` opened from its own directory (`Repo::open_dir`)
//! survives restarts and kills. Alice shares a document with Bob through a relay on loopback,
//! both write (each write that re-keys makes new secrets), Alice's process ends without a
//! save step, and the reopened device reads everything Bob wrote before and after, and Bob
//! reads what it writes. Without the keeper a reopened device read nothing Bob wrote after its
//! own re-key (`ReplicaError::Unreadable`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use keyhive_core::capability::{Access, AgentId};
use keyhive_core::identity::{Device, DocumentId};
use keyhive_core::keystore::FileError;
use keyhive_sync::replica::{Event, ReplicaError, SecretKeeper, Subscription};
use keyhive_sync::repo::{KEY_FILE, OpenDirError, STORE_FILE};
use keyhive_sync::{Repo, Store};

/// Waits (hang guard only: 60 s) until `change` of `doc` is readable by `events`' device.
async fn readable(events: &mut Subscription, doc: DocumentId, change: keyhive_core::Hash) {
    let wait = async {
        loop {
            match events.next_event().await.expect("replica open") {
                Event::Readable {
                    document,
                    change: c,
                    ..
                } if document == doc && c == change => return,
                _ => {}
            }
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(60), wait)
        .await
        .expect("the change became readable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_opened_from_its_directory_reads_after_a_restart() {
    let relay = common::capability_relay().await;
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("alice");
    let bob = Repo::in_memory(Device::generate(Some("bob".into()))).unwrap();
    let mut bob_events = bob.subscribe();
    bob.connect(relay.url(), Some(relay.id())).await;

    let (doc, alice_id, before, revoked_era) = {
        let alice = Repo::open_dir(&home, Some("alice")).unwrap();
        let carol = Device::generate(Some("carol".into()));
        alice.add_contact(bob.contact_card().unwrap()).unwrap();
        alice.add_contact(carol.contact_card().unwrap()).unwrap();
        let doc = alice.create_document().unwrap();
        alice
            .grant(&doc.0, AgentId::Individual(bob.id()), Access::Write)
            .unwrap();
        alice
            .grant(&doc.0, AgentId::Individual(carol.id()), Access::Read)
            .unwrap();
        let mut alice_events = alice.subscribe();
        alice.connect(relay.url(), Some(relay.id())).await;
        alice.sync().await.unwrap();
        let first = alice.write(doc, b"from alice").unwrap();
        readable(&mut bob_events, doc, first).await;
        let before = bob.write(doc, b"bob, before the restart").unwrap();
        readable(&mut alice_events, doc, before).await;
        // A revocation re-keys: Alice's next write makes a fresh secret Bob then encrypts to.
        alice
            .revoke(&doc.0, AgentId::Individual(carol.id()))
            .unwrap();
        let revoked_era = alice.write(doc, b"after carol left").unwrap();
        readable(&mut bob_events, doc, revoked_era).await;
        // Alice's process ends here: nothing saves secrets (`shutdown` only stops the links,
        // which hold the store open in this process).
        alice.shutdown().await.unwrap();
        (doc, alice.id(), before, revoked_era)
    };
    let after = bob.write(doc, b"bob, while alice was away").unwrap();

    let alice = Repo::open_dir(&home, None).unwrap();
    assert_eq!(alice.id(), alice_id, "the same device");
    let mut alice_events = alice.subscribe();
    alice.connect(relay.url(), Some(relay.id())).await;
    alice.sync().await.unwrap();
    readable(&mut alice_events, doc, after).await;
    for (change, text) in [
        (before, &b"bob, before the restart"[..]),
        (revoked_era, b"after carol left"),
        (after, b"bob, while alice was away"),
    ] {
        assert_eq!(alice.read(doc, &change).unwrap(), text);
    }
    // And back: what the reopened device writes, Bob reads.
    let again = alice.write(doc, b"alice is back").unwrap();
    readable(&mut bob_events, doc, again).await;
    assert_eq!(bob.read(doc, &again).unwrap(), b"alice is back");
    alice.shutdown().await.unwrap();
    bob.shutdown().await.unwrap();
}

/// A directory holding a store but no key store is not silently a new device.
#[test]
fn a_store_without_its_key_store_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repo::open_dir(dir.path(), Some("laptop")).unwrap();
    repo.create_document().unwrap();
    drop(repo);
    std::fs::remove_file(dir.path().join(KEY_FILE)).unwrap();
    let err = Repo::open_dir(dir.path(), None).unwrap_err();
    assert!(matches!(err, OpenDirError::KeysMissing { .. }), "{err:?}");
    assert!(dir.path().join(STORE_FILE).exists(), "nothing was removed");
}

/// A keeper that fails: the key-agreement op that needs the secrets is not stored.
struct Failing;

impl SecretKeeper for Failing {
    fn keep(
        &mut self,
        secrets: Vec<(DocumentId, keyhive_core::cgka::CgkaSecrets)>,
    ) -> Result<(), FileError> {
        if secrets.is_empty() {
            return Ok(());
        }
        Err(FileError::Io(std::io::Error::other("disk full")))
    }
}

#[test]
fn a_key_agreement_op_is_not_stored_when_its_secrets_cannot_be_kept() {
    let store = std::sync::Arc::new(keyhive_sync::MemoryStore::new());
    let mut replica =
        keyhive_sync::replica::Replica::open(Device::generate(None), store.clone()).unwrap();
    replica.keep_secrets_with(Failing);
    let err = replica.create_document().unwrap_err();
    assert!(matches!(err, ReplicaError::KeepSecrets(_)), "{err:?}");
    let mut kinds = Vec::new();
    for subject in store.subjects().unwrap() {
        for hash in store.hashes(&subject).unwrap() {
            kinds.push(store.get(&hash).unwrap().unwrap().kind());
        }
    }
    assert!(!kinds.is_empty(), "the device's card is stored");
    assert!(
        !kinds.contains(&keyhive_sync::ItemKind::Cgka),
        "no key-agreement op stored: {kinds:?}"
    );
}
