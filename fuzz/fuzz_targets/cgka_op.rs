//! Key-agreement op envelopes, decoded and verified.
#![no_main]

use keyhive_core::cgka::CgkaBody;
use keyhive_core::signed::{Op, Signed};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(signed) = Signed::<Op<CgkaBody>>::decode(data) {
        let _ = signed.verify();
    }
});
