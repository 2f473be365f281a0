//! Contact cards known to a replica: the signed prekeys the key agreement seats devices with,
//! and the seat keys (CGKA-34) derived from device keys.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use keyhive_core::crypto::hash::Hash;
use keyhive_core::crypto::prekey::PrekeyPublic;
use keyhive_core::identity::{ContactCard, IndividualId};
use keyhive_core::signed::Verified;

/// Verified contact cards by device. Cards travel as auth items whose subject is the device.
#[derive(Debug, Default)]
pub struct Directory {
    cards: BTreeMap<IndividualId, Verified<ContactCard>>,
    /// Bumped whenever a card is added or replaced.
    generation: u64,
    /// Bumped whenever a card is replaced (which may drop a prekey; adding a card never does).
    replaced: u64,
    /// CGKA-34: seat keys already derived (a point decompression and an inversion each; a
    /// replica opening thousands of documents asked for its own a few times per document).
    seat_keys: Mutex<HashMap<IndividualId, Option<PrekeyPublic>>>,
}

/// Most seat keys remembered; the memo starts again empty once full.
const SEAT_KEYS_KEPT: usize = 1 << 16;

impl Directory {
    /// Remembers a verified card; returns whether it was new. When a device publishes several
    /// cards, the one with the greatest hash wins, so every replica picks the same prekey.
    pub fn insert(&mut self, card: Verified<ContactCard>) -> bool {
        let id = card.id();
        match self.cards.get(&id) {
            Some(existing) if existing.hash() >= card.hash() => false,
            found => {
                if found.is_some() {
                    self.replaced += 1;
                }
                self.cards.insert(id, card);
                self.generation += 1;
                true
            }
        }
    }

    /// A counter that changes whenever a card is replaced: the one change that can take a
    /// prekey away, so while it stands every `has_prekey` that was true stays true.
    pub fn replacements(&self) -> u64 {
        self.replaced
    }

    /// A counter that changes whenever a card is added or replaced (so that what is derived
    /// from the prekeys can be cached).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Whether the card `device` is known by has exactly these envelope bytes (`hash` is
    /// `Hash::of_signed` of them, ENC-5): a card held was verified when it was inserted.
    pub fn holds(&self, device: &IndividualId, hash: &Hash) -> bool {
        self.cards.get(device).is_some_and(|c| c.hash() == *hash)
    }

    /// The card of `device`.
    pub fn card(&self, device: &IndividualId) -> Option<&Verified<ContactCard>> {
        self.cards.get(device)
    }

    /// Whether `prekey` is one `device` signed.
    pub fn has_prekey(&self, device: &IndividualId, prekey: &PrekeyPublic) -> bool {
        self.cards
            .get(device)
            .is_some_and(|c| c.prekeys.contains(prekey))
    }

    /// The prekey a device is seated with: the first (smallest) on its card.
    pub fn prekey_of(&self, device: &IndividualId) -> Option<PrekeyPublic> {
        self.cards
            .get(device)
            .and_then(|c| c.prekeys.first().copied())
    }

    /// CGKA-34: `device`'s seat key, [`PrekeyPublic::of_device`] of its device key.
    pub fn seat_key(&self, device: &IndividualId) -> Option<PrekeyPublic> {
        // A poisoned memo still holds correct entries: each is a pure function of its key.
        let mut memo = self
            .seat_keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(known) = memo.get(device) {
            return *known;
        }
        if memo.len() >= SEAT_KEYS_KEPT {
            memo.clear();
        }
        let key = PrekeyPublic::of_device(&device.0);
        memo.insert(*device, key);
        key
    }

    /// Every known card.
    pub fn cards(&self) -> impl Iterator<Item = &Verified<ContactCard>> {
        self.cards.values()
    }
}
