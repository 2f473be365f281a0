//! Sync protocol frames (SYNC-n), as a relay or client receives them.
#![no_main]

use keyhive_sync::protocol::decode_frame;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = decode_frame(data);
});
