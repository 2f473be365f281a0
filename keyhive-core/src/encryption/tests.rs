//! Causal encryption tests (CENC-1..CENC-10).

use std::collections::BTreeMap;

use super::*;
use crate::cgka::tests::{Replica, broadcast, network};
use crate::cgka::{CgkaOp, StaticAuthority};
use crate::crypto::hash::Hash;
use crate::crypto::secret::SymmetricKey;

fn add(rs: &mut [Replica], actor: usize, target: usize, auth: &StaticAuthority) -> CgkaOp {
    let (id, pk) = (rs[target].id(), rs[target].prekey());
    let key = rs[actor].device.signing_key().clone();
    let op = rs[actor].cgka.add(&key, id, pk, auth).unwrap();
    broadcast(rs, &op, auth);
    op
}

fn update(rs: &mut [Replica], actor: usize, auth: &StaticAuthority) -> CgkaOp {
    let key = rs[actor].device.signing_key().clone();
    let op = rs[actor].cgka.update(&key, auth).unwrap();
    broadcast(rs, &op, auth);
    op
}

#[test]
fn round_trip_and_typed_tamper_errors() {
    let (mut rs, auth) = network(2);
    add(&mut rs, 0, 1, &auth);
    assert_eq!(
        encrypt_change(&rs[0].cgka, Hash([1; 32]), &[], b"x").unwrap_err(),
        EncryptError::MustUpdate
    );
    update(&mut rs, 0, &auth);
    let (enc, key) = encrypt_change(&rs[0].cgka, Hash([1; 32]), &[], b"hello").unwrap();
    let enc = EncryptedChange::from_bytes(&enc.to_bytes()).unwrap();
    let dec = decrypt_with_epoch(&rs[1].cgka, &enc).unwrap();
    assert_eq!(dec.content.as_slice(), b"hello");
    assert_eq!(dec.key, key);

    let mut bad = enc.clone();
    bad.sealed.ciphertext[3] ^= 1;
    assert_eq!(
        decrypt_with_epoch(&rs[1].cgka, &bad).unwrap_err(),
        DecryptError::Authentication
    );
    let mut bad = enc.clone();
    bad.sealed.nonce[0] ^= 1;
    assert_eq!(
        decrypt_with_epoch(&rs[1].cgka, &bad).unwrap_err(),
        DecryptError::KeyCommitment
    );
    // A header naming another change derives another key: the commitment catches it.
    let mut bad = enc.clone();
    bad.header.change = Hash([2; 32]);
    assert_eq!(
        decrypt_with_epoch(&rs[1].cgka, &bad).unwrap_err(),
        DecryptError::KeyCommitment
    );
    // The same header under the right key but altered AAD fails authentication.
    let mut bad = enc.clone();
    bad.header.change = Hash([2; 32]);
    assert_eq!(
        decrypt_with_key(&key, &bad).unwrap_err(),
        DecryptError::Authentication
    );
    let mut bad = enc.clone();
    bad.header.epoch = Hash([7; 32]);
    assert_eq!(
        decrypt_with_epoch(&rs[1].cgka, &bad).unwrap_err(),
        DecryptError::UnknownEpoch(Hash([7; 32]))
    );
    assert_eq!(
        decrypt_with_key(&SymmetricKey::random(), &enc).unwrap_err(),
        DecryptError::KeyCommitment
    );
    let mut bytes = enc.to_bytes();
    bytes.push(0);
    assert!(EncryptedChange::from_bytes(&bytes).is_err());
}

#[test]
fn later_member_reads_whole_history_and_removed_member_is_cut_off() {
    // BRIEF §9.5 and §9.7.
    let (mut rs, auth) = network(4);
    add(&mut rs, 0, 1, &auth);
    add(&mut rs, 0, 2, &auth);
    update(&mut rs, 0, &auth);
    let mut store: BTreeMap<Hash, EncryptedChange> = BTreeMap::new();
    let mut prev: Vec<(Hash, SymmetricKey)> = Vec::new();
    for i in 0..20u8 {
        if i == 7 {
            update(&mut rs, 1, &auth);
        }
        let r = &rs[(i % 3) as usize];
        let reference = Hash::of_content(&[i]);
        let (enc, key) = encrypt_change(&r.cgka, reference, &prev, &[i; 100]).unwrap();
        store.insert(reference, enc);
        prev = vec![(reference, key)];
    }
    // Replica 3 joins late; a member's update (for any reason) gives it an entry point:
    // the next change, whose predecessor chain reaches back to the first.
    add(&mut rs, 0, 3, &auth);
    assert!(rs[2].cgka.must_update_before_encrypt());
    update(&mut rs, 2, &auth);
    let head = Hash::of_content(b"head");
    let (enc, _) = encrypt_change(&rs[2].cgka, head, &prev, b"head").unwrap();
    store.insert(head, enc);
    let read = decrypt_history(&rs[3].cgka, &[head], |h| store.get(h).cloned()).unwrap();
    assert_eq!(read.len(), 21);
    assert_eq!(read[&Hash::of_content(&[0])].as_slice(), &[0u8; 100]);

    // Replica 0 removes 1; replica 2, having seen the removal, writes: 1 cannot read it.
    let key0 = rs[0].device.signing_key().clone();
    let id1 = rs[1].id();
    let removal = rs[0].cgka.remove(&key0, id1, &auth).unwrap();
    broadcast(&mut rs, &removal, &auth);
    assert_eq!(
        encrypt_change(&rs[2].cgka, Hash([9; 32]), &[], b"x").unwrap_err(),
        EncryptError::MustUpdate
    );
    update(&mut rs, 2, &auth);
    let secret = Hash::of_content(b"after removal");
    let (enc, _) = encrypt_change(&rs[2].cgka, secret, &[], b"secret").unwrap();
    assert!(matches!(
        decrypt_with_epoch(&rs[1].cgka, &enc),
        Err(DecryptError::UnknownEpoch(_))
    ));
    for i in [0, 3] {
        assert_eq!(
            decrypt_with_epoch(&rs[i].cgka, &enc)
                .unwrap()
                .content
                .as_slice(),
            b"secret"
        );
    }
}

fn stream_round_trip(len: usize) {
    let key = SymmetricKey::random();
    let data: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
    let mut ct = Vec::new();
    assert_eq!(
        encrypt_stream(&key, b"ad", data.as_slice(), &mut ct).unwrap(),
        len as u64
    );
    let chunks = len.div_ceil(CHUNK_LEN).max(1);
    assert_eq!(ct.len(), stream::HEADER_LEN + len + 16 * chunks);
    let mut out = Vec::new();
    assert_eq!(
        decrypt_stream(&key, b"ad", ct.as_slice(), &mut out).unwrap(),
        len as u64
    );
    assert_eq!(out, data);
}

#[test]
fn streams_round_trip_at_chunk_boundaries() {
    for len in [0, 1, CHUNK_LEN - 1, CHUNK_LEN, CHUNK_LEN + 1, 3 * CHUNK_LEN] {
        stream_round_trip(len);
    }
}

#[test]
fn stream_tampering_is_rejected() {
    let key = SymmetricKey::random();
    let data = vec![5u8; 2 * CHUNK_LEN + 10];
    let mut ct = Vec::new();
    encrypt_stream(&key, b"ad", data.as_slice(), &mut ct).unwrap();
    let dec = |bytes: &[u8], key: &SymmetricKey, ad: &[u8]| {
        decrypt_stream(key, ad, bytes, std::io::sink())
    };
    assert!(dec(&ct, &key, b"ad").is_ok());
    assert!(matches!(
        dec(&ct, &SymmetricKey::random(), b"ad"),
        Err(StreamError::KeyCommitment)
    ));
    assert!(matches!(
        dec(&ct, &key, b"ae"),
        Err(StreamError::Authentication(0))
    ));
    let mut bad = ct.clone();
    bad[10] ^= 1; // salt
    assert!(matches!(
        dec(&bad, &key, b"ad"),
        Err(StreamError::KeyCommitment)
    ));
    let mut bad = ct.clone();
    bad[stream::HEADER_LEN + 5] ^= 1;
    assert!(matches!(
        dec(&bad, &key, b"ad"),
        Err(StreamError::Authentication(0))
    ));
    // Truncated at a chunk boundary: the new last chunk was not sealed as last.
    let cut = stream::HEADER_LEN + 2 * (CHUNK_LEN + 16);
    assert!(matches!(
        dec(&ct[..cut], &key, b"ad"),
        Err(StreamError::Authentication(1))
    ));
    // Trailing bytes after the final chunk.
    let mut bad = ct.clone();
    bad.extend_from_slice(&[0; 20]);
    assert!(dec(&bad, &key, b"ad").is_err());
    // Chunks swapped.
    let mut bad = ct.clone();
    let a = stream::HEADER_LEN;
    let b = a + CHUNK_LEN + 16;
    let first: Vec<u8> = bad[a..b].to_vec();
    let second: Vec<u8> = bad[b..b + CHUNK_LEN + 16].to_vec();
    bad[a..b].copy_from_slice(&second);
    bad[b..b + CHUNK_LEN + 16].copy_from_slice(&first);
    assert!(matches!(
        dec(&bad, &key, b"ad"),
        Err(StreamError::Authentication(0))
    ));
    assert!(matches!(
        dec(&ct[..stream::HEADER_LEN], &key, b"ad"),
        Err(StreamError::Truncated)
    ));
    assert!(matches!(
        dec(&ct[..10], &key, b"ad"),
        Err(StreamError::BadHeader)
    ));
}

#[test]
fn large_change_streams_through_a_manifest() {
    let (mut rs, auth) = network(2);
    add(&mut rs, 0, 1, &auth);
    update(&mut rs, 1, &auth);
    let data: Vec<u8> = (0..(3 * CHUNK_LEN + 123))
        .map(|i| (i % 253) as u8)
        .collect();
    let mut ct = Vec::new();
    let (manifest, _key) =
        encrypt_large_change(&rs[0].cgka, Hash([4; 32]), &[], data.as_slice(), &mut ct).unwrap();
    let opened = decrypt_with_epoch(&rs[1].cgka, &manifest).unwrap();
    let mut out = Vec::new();
    assert_eq!(
        decrypt_large_change(&manifest, &opened, ct.as_slice(), &mut out).unwrap(),
        data.len() as u64
    );
    assert_eq!(out, data);
    // The stream is bound to its manifest's header.
    let mut other = manifest.clone();
    other.header.change = Hash([5; 32]);
    assert!(decrypt_large_change(&other, &opened, ct.as_slice(), std::io::sink()).is_err());
}

mod hostile {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
        #[test]
        fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
            let _ = EncryptedChange::from_bytes(&bytes);
            let key = SymmetricKey::from_bytes([1; 32]);
            let _ = decrypt_stream(&key, b"", bytes.as_slice(), std::io::sink());
            let _ = crate::keystore::import_backup(&bytes, b"x");
            let _ = crate::keystore::KeyStore::from_bytes(&bytes);
            let _ = crate::signed::Signed::<crate::signed::Op<crate::cgka::CgkaBody>>::decode(&bytes);
        }

        #[test]
        fn flipped_bits_in_a_change_are_rejected(pos in 0usize..2000, bit in 0u8..8) {
            let root = SymmetricKey::from_bytes([2; 32]);
            let doc = crate::identity::DocumentId(crate::crypto::signing::PublicKey([3; 32]));
            let (enc, _) = encrypt_with_epoch(doc, Hash([4; 32]), &root, Hash([5; 32]), &[], &[6; 300]).unwrap();
            let mut bytes = enc.to_bytes();
            let pos = pos % bytes.len();
            bytes[pos] ^= 1 << bit;
            if let Ok(bad) = EncryptedChange::from_bytes(&bytes) {
                let key = change_key(&root, &bad.header);
                prop_assert!(decrypt_with_key(&key, &bad).is_err());
            }
        }
    }
}
