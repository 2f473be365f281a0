//! Encrypted changes (CENC-5) and encrypted streams (CENC-9) under a fixed key.
#![no_main]

use keyhive_core::crypto::secret::SymmetricKey;
use keyhive_core::encryption::change::EncryptedChange;
use keyhive_core::encryption::decrypt_stream;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = EncryptedChange::from_bytes(data);
    let key = SymmetricKey::from_bytes([7; 32]);
    let mut out = Vec::new();
    let _ = decrypt_stream(&key, b"fuzz", data, &mut out);
});
