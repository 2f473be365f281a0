//! Structured: a device replica receives a valid history, mutated by the fuzzer (bit flips,
//! wrong kinds, truncation, reordering), and never panics; whatever it stores it can list.
#![no_main]

use keyhive_core::capability::PeerTag;
use keyhive_core::crypto::prekey::PrekeySecret;
use keyhive_core::crypto::signing::SigningKey;
use keyhive_core::identity::Device;
use keyhive_sync::replica::Replica;
use keyhive_sync::{Item, ItemKind, MemoryStore};
use libfuzzer_sys::fuzz_target;

mod history;

fn device(seed: u8) -> Device {
    let prekey = PrekeySecret::from_bytes([seed ^ 0x80; 32]);
    Device::from_parts(SigningKey::from_seed(&[seed; 32]), vec![prekey], None)
}

fuzz_target!(|data: &[u8]| {
    let items = history::items();
    let Ok(mut replica) = Replica::open(device(9), MemoryStore::new()) else {
        return;
    };
    for step in data.chunks_exact(4).take(256) {
        let Some(item) = items.get(step[0] as usize % items.len().max(1)) else {
            return;
        };
        let mut bytes = item.envelope().to_vec();
        let at = ((step[2] as usize) << 8 | step[3] as usize) % bytes.len().max(1);
        let kind = match step[1] % 8 {
            0 => ItemKind::Auth,
            1 => ItemKind::Content,
            2 => ItemKind::Blob,
            3 => ItemKind::Cgka,
            4 => {
                if let Some(b) = bytes.get_mut(at) {
                    *b ^= 1 << (step[3] % 8);
                }
                item.kind()
            }
            5 => {
                bytes.truncate(at);
                item.kind()
            }
            _ => item.kind(),
        };
        if let Ok(mutated) = Item::new(kind, item.subject(), bytes) {
            let _ = replica.ingest(PeerTag::LOCAL, &mutated);
        }
    }
    let _ = replica.reachable();
});
