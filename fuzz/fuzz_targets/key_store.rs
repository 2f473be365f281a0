//! The device key store file (KEYS-n) and its journal (KEYS-12), as read from disk.
#![no_main]

use keyhive_core::keystore::KeyStore;
use keyhive_core::keystore::journal::{JOURNAL_TAG, JOURNAL_VERSION, apply_journal};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = KeyStore::from_bytes(data);
    // The journal of a key store whose check is the first 32 bytes: its header, so that the
    // records behind it (the rest) are read, and once as the input alone.
    let Some((base, records)) = data.split_first_chunk::<32>() else {
        return;
    };
    let mut journal = vec![JOURNAL_TAG.len() as u8];
    journal.extend_from_slice(JOURNAL_TAG.as_bytes());
    journal.push(JOURNAL_VERSION);
    journal.extend_from_slice(base);
    journal.extend_from_slice(records);
    let mut store = KeyStore::new(keyhive_core::identity::Device::from_parts(
        keyhive_core::crypto::signing::SigningKey::from_seed(&[7; 32]),
        Vec::new(),
        None,
    ));
    let path = std::path::Path::new("device.key.journal");
    let _ = apply_journal(&journal, path, base, &mut store);
    let _ = apply_journal(data, path, base, &mut store);
});
