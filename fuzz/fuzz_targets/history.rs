//! A small valid history (genesis, grants, key agreement, a change and its ciphertext, a
//! revocation) for the structured targets to mutate, built once per process.

use std::sync::OnceLock;

use keyhive_core::capability::{Access, AgentId};
use keyhive_core::crypto::prekey::PrekeySecret;
use keyhive_core::crypto::signing::SigningKey;
use keyhive_core::identity::Device;
use keyhive_sync::replica::Replica;
use keyhive_sync::{Item, MemoryStore, Store};

fn device(seed: u8) -> Device {
    let prekey = PrekeySecret::from_bytes([seed ^ 0x80; 32]);
    Device::from_parts(SigningKey::from_seed(&[seed; 32]), vec![prekey], None)
}

fn build() -> Option<Vec<Item>> {
    let bob = device(2);
    let mut alice = Replica::open(device(1), MemoryStore::new()).ok()?;
    alice.add_contact(bob.contact_card().ok()?).ok()?;
    let doc = alice.create_document().ok()?;
    let team = alice.create_group().ok()?;
    alice
        .grant(&doc.0, AgentId::Individual(bob.id()), Access::Write)
        .ok()?;
    alice
        .grant(&team.0, AgentId::Individual(bob.id()), Access::Read)
        .ok()?;
    alice.write(doc, b"hello").ok()?;
    alice.revoke(&doc.0, AgentId::Individual(bob.id())).ok()?;
    alice.write(doc, b"after").ok()?;
    let store = alice.store();
    let mut items = Vec::new();
    for subject in store.subjects().ok()? {
        for hash in store.hashes(&subject).ok()? {
            items.extend(store.get(&hash).ok()?);
        }
    }
    Some(items)
}

/// The history's items (empty if building it failed, which the targets tolerate).
pub fn items() -> &'static [Item] {
    static ITEMS: OnceLock<Vec<Item>> = OnceLock::new();
    ITEMS.get_or_init(|| build().unwrap_or_default())
}
