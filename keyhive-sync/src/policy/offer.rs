//! SYNC-85, REP-33: what a client offers of a subject it holds, and what a removed device
//! still owes of one it was removed from.

use std::collections::{BTreeMap, BTreeSet};

use keyhive_core::Hash;

use crate::blob::Blob;
use crate::item::ItemKind;
use crate::store::{Store, StoreError};

/// SYNC-85, REP-33: what a client pushes of a subject it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Offer {
    /// Whatever the peer lacks.
    All,
    /// Only what this device still owes of a subject it was removed from (REP-33). Empty:
    /// nothing to offer.
    Own(OwnOffer),
}

/// REP-33: what a device removed from a subject still offers of it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct OwnOffer {
    /// The ops it authored there and holds valid, each with the ciphertext items it names
    /// (change blob, pieces).
    pub ops: BTreeMap<Hash, Vec<Hash>>,
    /// The ops of the subject in the causal past of `ops` that it holds (any author), each with
    /// the item hash of the change blob it names (the client adds the pieces a pushed blob
    /// lists): a peer lacking one cannot admit the own ops after it.
    pub past: BTreeMap<Hash, Vec<Hash>>,
    /// The key-agreement ops of the subject it holds (readers open its writes with them);
    /// empty when it authored no op and signed no key-agreement op there.
    pub keys: BTreeSet<Hash>,
}

impl OwnOffer {
    /// Whether there is nothing to offer.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty() && self.keys.is_empty()
    }
}

/// REP-33: what a peer already answered of what a removed device offered it: the items it
/// took (stored or already held, remembered per peer) and those it refused on this
/// connection (offered again only after a reconnect).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Answered {
    /// Items the peer stored or already held.
    pub taken: BTreeSet<Hash>,
    /// Items the peer refused on this connection.
    pub refused: BTreeSet<Hash>,
}

impl Offer {
    /// Whether there is nothing to offer.
    pub fn is_empty(&self) -> bool {
        matches!(self, Offer::Own(own) if own.is_empty())
    }

    /// REP-33: which of `have` (what the peer lacks, or does not show: a peer serving a
    /// removed device reconciles over the subject's ops only, so ciphertext and key agreement
    /// always show in `have`) to push, given what the peer `answered` before. `All` pushes
    /// `have`. `Own` pushes
    /// - an op of `ops` or `past` the peer lacks, with the ciphertext it names;
    /// - the ciphertext of an own op the peer holds, and the key-agreement ops, unless the
    ///   peer took them before (the peer does not show whether it holds them: a piece may have
    ///   been refused while its op was admitted);
    ///
    /// never what the peer refused on this connection, nor the ciphertext of an op it refused.
    pub fn select(&self, have: Vec<Hash>, answered: &Answered) -> Vec<Hash> {
        let Offer::Own(own) = self else {
            return have;
        };
        let lacked: BTreeSet<Hash> = have.into_iter().collect();
        let fresh = |h: &&Hash| lacked.contains(*h) && !answered.refused.contains(*h);
        let untaken = |h: &&Hash| fresh(h) && !answered.taken.contains(*h);
        let mut out = Vec::new();
        for (mine, entries) in [(true, &own.ops), (false, &own.past)] {
            for (op, cipher) in entries {
                if answered.refused.contains(op) {
                    continue;
                }
                if lacked.contains(op) {
                    out.push(*op);
                    out.extend(cipher.iter().filter(fresh));
                } else if mine {
                    out.extend(cipher.iter().filter(untaken));
                }
            }
        }
        out.extend(own.keys.iter().filter(untaken));
        out.sort_unstable();
        out.dedup();
        out
    }

    /// [`Offer::select`], then, for `Own`, the pieces that each selected change blob lists
    /// (REP-21) that are in `have` and that the peer did not refuse on this connection: a blob
    /// travels with its pieces, so the offer need not read the blobs of the causal past it
    /// lists, most of which the peer holds. `All` selects `have` and reads nothing.
    pub fn select_in(
        &self,
        store: &dyn Store,
        have: Vec<Hash>,
        answered: &Answered,
    ) -> Result<Vec<Hash>, StoreError> {
        if matches!(self, Offer::All) {
            return Ok(have);
        }
        let lacked: BTreeSet<Hash> = have.iter().copied().collect();
        let mut picked = self.select(have, answered);
        let mut pieces = Vec::new();
        for hash in &picked {
            let Some(item) = store.get(hash)? else {
                continue;
            };
            if item.kind() == ItemKind::Blob
                && let Ok(Blob::Change { pieces: listed, .. }) = Blob::from_bytes(item.envelope())
            {
                pieces.extend(
                    listed
                        .into_iter()
                        .filter(|p| lacked.contains(p) && !answered.refused.contains(p)),
                );
            }
        }
        picked.extend(pieces);
        picked.sort_unstable();
        picked.dedup();
        Ok(picked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(n: u8) -> Hash {
        Hash([n; 32])
    }

    /// An own op 1 with blob 2 and piece 3; its parent 4 (another author's) with blob 5; key
    /// agreement 6.
    fn offer() -> Offer {
        Offer::Own(OwnOffer {
            ops: [(h(1), vec![h(2), h(3)])].into(),
            past: [(h(4), vec![h(5)])].into(),
            keys: [h(6)].into(),
        })
    }

    fn all() -> Vec<Hash> {
        (1..=7).map(h).collect()
    }

    #[test]
    fn a_peer_lacking_everything_gets_what_is_owed_and_nothing_else() {
        let picked = offer().select(all(), &Answered::default());
        assert_eq!(picked, (1..=6).map(h).collect::<Vec<_>>());
    }

    #[test]
    fn ciphertext_of_a_held_own_op_is_pushed_until_answered_but_not_a_held_parents() {
        // The peer holds ops 1 and 4 (it shows ops only): the own op's ciphertext and the
        // key agreement may still be missing; the parent's ciphertext travels only with it.
        let have = vec![h(2), h(3), h(5), h(6), h(7)];
        let picked = offer().select(have.clone(), &Answered::default());
        assert_eq!(picked, vec![h(2), h(3), h(6)]);
        let answered = Answered {
            taken: [h(2), h(6)].into(),
            refused: [h(3)].into(),
        };
        assert!(offer().select(have, &answered).is_empty());
    }

    #[test]
    fn an_op_the_peer_lost_is_pushed_again_but_never_what_it_refused_here() {
        let answered = Answered {
            taken: [h(1), h(2)].into(),
            refused: [h(4)].into(),
        };
        // Op 1 lacked again (the peer lost it): pushed with its ciphertext, taken or not.
        // Op 4 refused on this connection: neither it nor its ciphertext.
        let picked = offer().select(all(), &answered);
        assert_eq!(picked, vec![h(1), h(2), h(3), h(6)]);
    }

    #[test]
    fn a_selected_change_blob_carries_the_pieces_it_lists() {
        use crate::item::{Item, SubjectId};
        use crate::store::MemoryStore;
        use keyhive_core::crypto::aead::Sealed;
        use keyhive_core::crypto::signing::PublicKey;
        use keyhive_core::encryption::change::{ChangeHeader, EncryptedChange};
        use keyhive_core::identity::DocumentId;

        let document = DocumentId(PublicKey([9; 32]));
        let piece = |index: u32| {
            let bytes = Blob::Piece {
                document,
                index,
                bytes: vec![index as u8; 128],
            }
            .to_bytes();
            Item::new(ItemKind::Blob, SubjectId(document.0), bytes).unwrap()
        };
        let (p0, p1) = (piece(0), piece(1));
        let change = EncryptedChange {
            header: ChangeHeader {
                document,
                epoch: h(8),
                change: h(9),
            },
            sealed: Sealed {
                nonce: [0; 24],
                commitment: [0; 32],
                ciphertext: vec![0; 16],
            },
        };
        let blob = Blob::Change {
            change,
            pieces: vec![p0.hash(), p1.hash()],
        };
        let blob = Item::new(ItemKind::Blob, SubjectId(document.0), blob.to_bytes()).unwrap();
        let store = MemoryStore::new();
        store.put(&[blob.clone(), p0.clone(), p1.clone()]).unwrap();
        // Parent op 4 (lacked) names the blob; the peer refused piece 1 on this connection.
        let offer = Offer::Own(OwnOffer {
            ops: [(h(1), vec![])].into(),
            past: [(h(4), vec![blob.hash()])].into(),
            keys: BTreeSet::new(),
        });
        let have = vec![h(4), blob.hash(), p0.hash(), p1.hash()];
        let answered = Answered {
            taken: BTreeSet::new(),
            refused: [p1.hash()].into(),
        };
        let mut expected = vec![h(4), blob.hash(), p0.hash()];
        expected.sort_unstable();
        assert_eq!(offer.select_in(&store, have, &answered).unwrap(), expected);
    }

    #[test]
    fn everything_is_pushed_to_a_peer_the_device_may_write() {
        let answered = Answered {
            taken: [h(1)].into(),
            refused: [h(2)].into(),
        };
        assert_eq!(Offer::All.select(all(), &answered), all());
    }
}
