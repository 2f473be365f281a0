//! SYNC-53: the last collection offer a peer sent, kept in the local store (STORE-23) so that
//! a new client (each CLI `sync`, a restarted app) names its digest on its first collection
//! (SYNC-52) instead of downloading an offer that did not change.
//!
//! Layout: version byte `01`, then per subject, in the order offered (strictly ascending
//! subjects), `subject (32) || count_le64 || fingerprint (16)`. The bytes come from the local
//! disk and are not trusted: anything else decodes to nothing, and a wrong offer only costs
//! the whole offer, as the peer finds its digest unequal to its own.

use crate::item::SubjectId;
use crate::protocol::SubjectOffer;
use crate::reconcile::summary::FINGERPRINT_LEN;
use keyhive_core::crypto::signing::PublicKey;

const VERSION: u8 = 1;
const RECORD: usize = 32 + 8 + FINGERPRINT_LEN;

/// The stored form of `offer`.
pub(crate) fn encode(offer: &[SubjectOffer]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + offer.len() * RECORD);
    out.push(VERSION);
    for o in offer {
        out.extend_from_slice(o.subject.0.as_bytes());
        out.extend_from_slice(&o.count.to_le_bytes());
        out.extend_from_slice(&o.fingerprint);
    }
    out
}

/// The offer `bytes` hold, or `None` if they are not one [`encode`] wrote.
pub(crate) fn decode(bytes: &[u8]) -> Option<Vec<SubjectOffer>> {
    let (&version, records) = bytes.split_first()?;
    if version != VERSION || records.len() % RECORD != 0 {
        return None;
    }
    let mut out: Vec<SubjectOffer> = Vec::with_capacity(records.len() / RECORD);
    for record in records.chunks_exact(RECORD) {
        let (subject, rest) = record.split_at(32);
        let (count, fingerprint) = rest.split_at(8);
        let subject = SubjectId(PublicKey(subject.try_into().ok()?));
        if out.last().is_some_and(|last| last.subject >= subject) {
            return None;
        }
        out.push(SubjectOffer {
            subject,
            count: u64::from_le_bytes(count.try_into().ok()?),
            fingerprint: fingerprint.try_into().ok()?,
        });
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(n: u8) -> SubjectOffer {
        SubjectOffer {
            subject: SubjectId(PublicKey([n; 32])),
            count: u64::from(n) * 1_000_000_007,
            fingerprint: [n ^ 0x5a; FINGERPRINT_LEN],
        }
    }

    #[test]
    fn an_offer_round_trips_and_anything_else_is_refused() {
        let offers: Vec<SubjectOffer> = (1..=3).map(offer).collect();
        let bytes = encode(&offers);
        assert_eq!(bytes.len(), 1 + 3 * 56);
        assert_eq!(decode(&bytes), Some(offers.clone()));
        assert_eq!(decode(&encode(&[])), Some(Vec::new()));
        assert_eq!(decode(&[]), None, "empty");
        let mut other = bytes.clone();
        other[0] = 2;
        assert_eq!(decode(&other), None, "another version");
        assert_eq!(decode(&bytes[..bytes.len() - 1]), None, "truncated");
        let unsorted = encode(&[offer(2), offer(1)]);
        assert_eq!(decode(&unsorted), None, "not ascending");
        let repeated = encode(&[offer(1), offer(1)]);
        assert_eq!(decode(&repeated), None, "a subject twice");
    }
}
