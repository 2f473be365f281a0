//! The device key store file (KEYS-n), as read from disk.
#![no_main]

use keyhive_core::keystore::KeyStore;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = KeyStore::from_bytes(data);
});
