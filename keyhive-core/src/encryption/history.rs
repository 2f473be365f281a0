//! Reading a document's history back from its heads (`specs/encryption.md` §2, CENC-6).

use std::collections::{BTreeMap, BTreeSet};

use zeroize::Zeroizing;

use crate::cgka::Cgka;
use crate::crypto::hash::Hash;
use crate::crypto::secret::SymmetricKey;

use super::change::{DecryptError, EncryptedChange, decrypt_with_epoch, decrypt_with_key};

/// Why a history walk stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HistoryError {
    /// A change named as a predecessor is not available.
    #[error("change {0} is not available")]
    Missing(Hash),
    /// A change failed to decrypt.
    #[error("change {change} failed to decrypt: {error}")]
    Decrypt {
        /// The change.
        change: Hash,
        /// Why.
        error: DecryptError,
    },
    /// No head could be decrypted with a known epoch root.
    #[error("no entry point: no head is under an epoch this device knows")]
    NoEntryPoint,
}

/// CENC-6: decrypts every change reachable from `heads`. A head is opened with its epoch's
/// root if `cgka` knows it; every other change with the key its successor carries. Each change
/// is decrypted once, so the walk is linear in the history. Returns content by reference.
pub fn decrypt_history(
    cgka: &Cgka,
    heads: &[Hash],
    fetch: impl Fn(&Hash) -> Option<EncryptedChange>,
) -> Result<BTreeMap<Hash, Zeroizing<Vec<u8>>>, HistoryError> {
    let mut out = BTreeMap::new();
    let mut known: BTreeMap<Hash, SymmetricKey> = BTreeMap::new();
    let mut queue: Vec<Hash> = Vec::new();
    let mut entered = false;
    for head in heads {
        let change = fetch(head).ok_or(HistoryError::Missing(*head))?;
        match decrypt_with_epoch(cgka, &change) {
            Ok(d) => {
                entered = true;
                for (p, k) in d.predecessors {
                    known.entry(p).or_insert(k);
                    queue.push(p);
                }
                out.insert(*head, d.content);
            }
            Err(DecryptError::UnknownEpoch(_)) => {}
            Err(error) => {
                return Err(HistoryError::Decrypt {
                    change: *head,
                    error,
                });
            }
        }
    }
    if !entered {
        return Err(HistoryError::NoEntryPoint);
    }
    let mut done: BTreeSet<Hash> = out.keys().copied().collect();
    while let Some(next) = queue.pop() {
        if !done.insert(next) {
            continue;
        }
        let change = fetch(&next)
            .filter(|c| c.header.change == next)
            .ok_or(HistoryError::Missing(next))?;
        let Some(key) = known.get(&next) else {
            continue;
        };
        let d = decrypt_with_key(key, &change).map_err(|error| HistoryError::Decrypt {
            change: next,
            error,
        })?;
        for (p, k) in d.predecessors {
            known.entry(p).or_insert(k);
            queue.push(p);
        }
        out.insert(next, d.content);
    }
    Ok(out)
}
