//! Structured: the relay's admission (ADM-n over `CapabilityPolicy`) receives a valid history,
//! mutated by the fuzzer, from a stranger and never panics.
#![no_main]

use keyhive_core::crypto::signing::PublicKey;
use keyhive_core::identity::IndividualId;
use keyhive_sync::capability_policy::CapabilityPolicy;
use keyhive_sync::{AccessPolicy, Item, ItemKind};
use libfuzzer_sys::fuzz_target;

mod history;

fuzz_target!(|data: &[u8]| {
    let items = history::items();
    let policy = CapabilityPolicy::new([]);
    let stranger = IndividualId(PublicKey([5; 32]));
    for step in data.chunks_exact(3).take(256) {
        let Some(item) = items.get(step[0] as usize % items.len().max(1)) else {
            return;
        };
        let mut bytes = item.envelope().to_vec();
        let at = step[2] as usize * 7 % bytes.len().max(1);
        let kind = match step[1] % 6 {
            0 => ItemKind::Auth,
            1 => ItemKind::Content,
            2 => {
                if let Some(b) = bytes.get_mut(at) {
                    *b ^= 0x20;
                }
                item.kind()
            }
            3 => {
                bytes.truncate(at);
                item.kind()
            }
            _ => item.kind(),
        };
        if let Ok(mutated) = Item::new(kind, item.subject(), bytes) {
            if policy.check_push(&stranger, &mutated).is_ok() {
                policy.stored(std::slice::from_ref(&mutated));
            }
            let _ = policy.may_serve(&stranger, &mutated);
        }
    }
});
