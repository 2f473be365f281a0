//! ADM-2a and ENC-5: a replica checks a batch's signatures on several cores and applies the
//! batch in order, with the verdicts of checking one item at a time; a signature that batch
//! verification accepts and `verify_strict` refuses (a mixed-order `R`) is refused in every
//! grouping, so replicas fed the same items in different batches agree.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::{Scalar, clamp_integer};
use keyhive_core::capability::{Access, AgentId, PeerTag};
use keyhive_core::identity::{Device, DocumentId};
use keyhive_sync::admission::Refusal;
use keyhive_sync::replica::{Replica, ReplicaError, SIGNATURE_CHUNK};
use keyhive_sync::{Item, ItemKind, MemoryStore, Store, SubjectId};
use sha2::{Digest, Sha512};

/// The point (0, -1), of order 2.
fn order_two() -> EdwardsPoint {
    let mut y = [0xffu8; 32];
    y[0] = 0xec;
    y[31] = 0x7f;
    let t = CompressedEdwardsY(y)
        .decompress()
        .expect("(0, -1) is on the curve");
    assert!(t.is_small_order() && t != EdwardsPoint::default());
    t
}

/// `envelope` (`payload || signature`) signed again by `device` with `R = rB + T`, T of order 2:
/// `s = r + H(R || A || payload) a`, so `sB - kA = R - T`. `verify_strict` recomputes `rB` and
/// refuses; dalek's batch verification checks `Σ z_i (R_i - s_i B + k_i A_i) = 0`, which holds
/// for this signature whenever its (transcript-derived) `z` is even.
fn mixed_order_signature(device: &Device, envelope: &[u8], r_seed: u8) -> Vec<u8> {
    let payload = &envelope[..envelope.len() - 64];
    let digest = Sha512::digest(device.signing_key().seed().as_slice());
    let mut lower = [0u8; 32];
    lower.copy_from_slice(&digest[..32]);
    let a = Scalar::from_bytes_mod_order(clamp_integer(lower));
    let public = device.id().0.0;
    let r = Scalar::from_bytes_mod_order_wide(&[r_seed; 64]);
    let big_r = (ED25519_BASEPOINT_POINT * r + order_two()).compress();
    let mut h = Sha512::new();
    h.update(big_r.as_bytes());
    h.update(public);
    h.update(payload);
    let k = Scalar::from_bytes_mod_order_wide(&h.finalize().into());
    let s = r + k * a;
    let mut out = payload.to_vec();
    out.extend_from_slice(big_r.as_bytes());
    out.extend_from_slice(s.as_bytes());
    out
}

/// Some grouping with other valid signatures in which dalek's batch verification accepts
/// `envelope` (its signature over its payload by `signer`); `None` if none of 64 does.
fn batch_accepting_grouping(signer: &Device, envelope: &[u8]) -> Option<usize> {
    let (payload, sig) = envelope.split_at(envelope.len() - 64);
    let crafted = ed25519_dalek::Signature::from_slice(sig).unwrap();
    let key = ed25519_dalek::VerifyingKey::from_bytes(&signer.id().0.0).unwrap();
    let others: Vec<(ed25519_dalek::SigningKey, Vec<u8>)> = (0..64u8)
        .map(|i| {
            (
                ed25519_dalek::SigningKey::from_bytes(&[i + 1; 32]),
                vec![i; 40],
            )
        })
        .collect();
    (0..others.len()).find(|&extra| {
        let mut messages: Vec<&[u8]> = vec![payload];
        let mut signatures = vec![crafted];
        let mut keys = vec![key];
        for (k, m) in &others[..extra] {
            messages.push(m);
            signatures.push(ed25519_dalek::Signer::sign(k, m));
            keys.push(k.verifying_key());
        }
        ed25519_dalek::verify_batch(&messages, &signatures, &keys).is_ok()
    })
}

/// A document with `n` members (one device each), written, one member revoked, written again.
fn history(n: usize) -> (Replica<MemoryStore>, Vec<Device>, DocumentId) {
    let mut alice =
        Replica::open(Device::generate(Some("alice".into())), MemoryStore::new()).unwrap();
    let doc = alice.create_document().unwrap();
    let members: Vec<Device> = (0..n).map(|_| Device::generate(None)).collect();
    for m in &members {
        alice.add_contact(m.contact_card().unwrap()).unwrap();
        alice
            .grant(&doc.0, AgentId::Individual(m.id()), Access::Read)
            .unwrap();
    }
    alice.write(doc, b"one").unwrap();
    alice
        .revoke(&doc.0, AgentId::Individual(members[0].id()))
        .unwrap();
    alice.write(doc, b"two").unwrap();
    (alice, members, doc)
}

fn items_of(replica: &Replica<MemoryStore>) -> Vec<Item> {
    let store = replica.store();
    let mut out = Vec::new();
    for subject in store.subjects().unwrap() {
        for hash in store.hashes(&subject).unwrap() {
            out.extend(store.get(&hash).unwrap());
        }
    }
    // A reproducible shuffle (what a fresh member receives from several peers).
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for i in (1..out.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.swap(i, (state % (i as u64 + 1)) as usize);
    }
    out
}

/// What a replica ends up holding, to compare replicas.
fn state(replica: &Replica<MemoryStore>) -> Vec<keyhive_core::Hash> {
    let store = replica.store();
    let mut held = Vec::new();
    for subject in store.subjects().unwrap() {
        held.extend(store.hashes(&subject).unwrap());
    }
    held.sort();
    held
}

/// Every item's verdict as text (errors compared by their message).
fn verdicts(
    report: Vec<(
        keyhive_core::Hash,
        Result<keyhive_sync::replica::Ingested, ReplicaError>,
    )>,
) -> Vec<(keyhive_core::Hash, String)> {
    let mut v: Vec<_> = report
        .into_iter()
        .map(|(h, r)| (h, format!("{r:?}")))
        .collect();
    v.sort();
    v
}

fn ingest(
    newcomer: &Device,
    from: &Device,
    items: Vec<Item>,
    threads: usize,
) -> Replica<MemoryStore> {
    let mut fresh = Replica::open(newcomer.clone(), MemoryStore::new()).unwrap();
    fresh.set_signature_threads(threads);
    fresh.ingest_all(PeerTag::from(from.id().0), items).unwrap();
    fresh
}

/// ADM-2a: ingesting a shuffled history of more than two chunks (300 members: about two items
/// each since adds are batched, CGKA-33) with signatures checked on
/// one, two and three threads stores the same items with the same verdicts.
#[test]
fn adm2a_parallel_checks_give_the_verdicts_of_one_thread() {
    let (alice, members, _) = history(300);
    let mut items = items_of(&alice);
    assert!(items.len() > 2 * SIGNATURE_CHUNK, "{} items", items.len());
    // A tampered signature among them: refused alike.
    let bad = items
        .iter()
        .position(|i| i.kind() == ItemKind::Auth)
        .unwrap();
    let mut envelope = items[bad].envelope().to_vec();
    let last = envelope.len() - 1;
    envelope[last - 40] ^= 1;
    items.push(Item::new(items[bad].kind(), items[bad].subject(), envelope).unwrap());
    let newcomer = members.last().unwrap();
    let mut reports = Vec::new();
    let mut states = Vec::new();
    for threads in [1, 2, 3] {
        let mut fresh = Replica::open(newcomer.clone(), MemoryStore::new()).unwrap();
        fresh.set_signature_threads(threads);
        assert_eq!(fresh.signature_threads(), threads);
        let report = fresh
            .ingest_all(PeerTag::from(alice.device().id().0), items.clone())
            .unwrap();
        assert!(
            report
                .iter()
                .any(|(_, r)| matches!(r, Err(ReplicaError::Refused(Refusal::BadSignature(_))))),
            "the tampered item is refused for its signature"
        );
        reports.push(verdicts(report));
        states.push(state(&fresh));
    }
    assert_eq!(reports[0], reports[1]);
    assert_eq!(reports[0], reports[2]);
    assert_eq!(states[0], states[1]);
    assert_eq!(states[0], states[2]);
}

/// ENC-5, ADM-2a: a card and a grant re-signed with a mixed-order `R` are accepted by batch
/// verification in some grouping and refused by `verify_strict`; a replica refuses them for
/// their signature alone, in a batch of their own, first, last, across a chunk boundary, on one
/// thread or several, and holds exactly what a replica that never saw them holds.
#[test]
fn enc5_a_mixed_order_signature_is_refused_in_every_grouping() {
    let (alice, members, doc) = history(100);
    let mut items = items_of(&alice);
    let newcomer = members.last().unwrap();
    let victim = &members[5];

    // The victim's card, re-signed by the victim with a mixed-order R.
    let card = victim.contact_card().unwrap();
    let forged_card = mixed_order_signature(victim, card.as_bytes(), 7);
    assert!(
        batch_accepting_grouping(victim, &forged_card).is_some(),
        "some grouping makes batch verification accept the forged card"
    );
    assert!(
        victim
            .id()
            .0
            .verify_strict(
                &forged_card[..forged_card.len() - 64],
                forged_card[forged_card.len() - 64..].try_into().unwrap()
            )
            .is_err(),
        "verify_strict refuses it"
    );
    let forged_card = Item::new(ItemKind::Auth, SubjectId(victim.id().0), forged_card).unwrap();

    // A grant by alice to a newcomer nobody granted, re-signed by alice the same way.
    let stranger = Device::generate(None);
    let mut granting = Replica::open(alice.device().clone(), MemoryStore::new()).unwrap();
    granting.ingest_all(PeerTag::LOCAL, items.clone()).unwrap();
    granting
        .add_contact(stranger.contact_card().unwrap())
        .unwrap();
    let before: std::collections::BTreeSet<_> = state(&granting).into_iter().collect();
    granting
        .grant(&doc.0, AgentId::Individual(stranger.id()), Access::Read)
        .unwrap();
    let grant = state(&granting)
        .into_iter()
        .filter(|h| !before.contains(h))
        .filter_map(|h| granting.store().get(&h).unwrap())
        .find(|i| i.kind() == ItemKind::Auth && i.subject() == SubjectId(doc.0))
        .expect("the grant is stored");
    let forged_grant_bytes = mixed_order_signature(alice.device(), grant.envelope(), 9);
    assert!(batch_accepting_grouping(alice.device(), &forged_grant_bytes).is_some());
    let forged_grant = Item::new(grant.kind(), grant.subject(), forged_grant_bytes).unwrap();

    let clean = ingest(newcomer, alice.device(), items.clone(), 1);
    let expected = state(&clean);
    let forged = [forged_card.hash(), forged_grant.hash()];
    let refused_for_signature = |report: &[(keyhive_core::Hash, Result<_, ReplicaError>)]| {
        for hash in &forged {
            let (_, verdict) = report.iter().find(|(h, _)| h == hash).expect("reported");
            match verdict {
                Err(ReplicaError::Refused(Refusal::BadSignature(_))) => {}
                // CAP-24: the grant is a root form (its signer is the creator the genesis
                // names): delivered before the genesis it waits unchecked, and is dropped
                // unstored when the genesis shows its signature false.
                Ok(_) | Err(ReplicaError::Refused(Refusal::Parked)) if *hash == forged[1] => {}
                other => panic!("a forged item was not refused for its signature: {other:?}"),
            }
        }
    };

    // Groupings: the forged items alone, first, last, straddling a chunk boundary.
    let mut groupings: Vec<Vec<Item>> = vec![vec![forged_card.clone(), forged_grant.clone()]];
    let mut first = vec![forged_card.clone(), forged_grant.clone()];
    first.extend(items.iter().cloned());
    groupings.push(first);
    let mut last = items.clone();
    last.extend([forged_card.clone(), forged_grant.clone()]);
    groupings.push(last);
    let boundary = SIGNATURE_CHUNK.min(items.len());
    items.insert(boundary, forged_grant.clone());
    items.insert(boundary - 1, forged_card.clone());
    groupings.push(items);

    for threads in [1, 2, 3] {
        for (g, batch) in groupings.iter().enumerate() {
            let mut fresh = Replica::open(newcomer.clone(), MemoryStore::new()).unwrap();
            fresh.set_signature_threads(threads);
            let report = fresh
                .ingest_all(PeerTag::from(alice.device().id().0), batch.clone())
                .unwrap();
            refused_for_signature(&report);
            assert!(!fresh.store().contains(&forged_grant.hash()).unwrap());
            if g == 0 {
                continue;
            }
            assert_eq!(state(&fresh), expected, "grouping {g}, {threads} threads");
            assert!(
                !fresh
                    .checker()
                    .can(AgentId::Individual(stranger.id()), Access::Read, &doc.0),
                "the forged grant gave nothing"
            );
        }
        // One at a time, after the history.
        let mut fresh = ingest(
            newcomer,
            alice.device(),
            groupings[2][..groupings[2].len() - 2].to_vec(),
            threads,
        );
        for item in [&forged_card, &forged_grant] {
            let refused = fresh.ingest(PeerTag::from(alice.device().id().0), item);
            assert!(
                matches!(
                    &refused,
                    Err(ReplicaError::Refused(Refusal::BadSignature(_)))
                ),
                "{refused:?}"
            );
        }
        assert_eq!(state(&fresh), expected);
    }
    // The genuine grant is accepted where the forged one was not.
    let mut fresh = ingest(newcomer, alice.device(), groupings[2].clone(), 2);
    fresh
        .ingest(PeerTag::from(alice.device().id().0), &grant)
        .unwrap();
    assert!(
        fresh
            .checker()
            .can(AgentId::Individual(stranger.id()), Access::Read, &doc.0)
    );
}
