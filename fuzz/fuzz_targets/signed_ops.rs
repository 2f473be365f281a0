//! Any bytes as an op envelope of any type (ENC-11 dispatch), verified and ingested.
#![no_main]

use keyhive_core::capability::{AnySigned, Checker, PeerTag};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(signed) = AnySigned::decode(data) {
        let _ = signed.parents();
        let mut checker = Checker::default();
        let _ = checker.ingest_signed(PeerTag::LOCAL, signed);
    }
});
