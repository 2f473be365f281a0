//! Range-based set reconciliation over the hash keyspace (SYNC-21..SYNC-25).
//!
//! Ranges are hash prefixes of `len` nibbles. The initiator sends `(prefix, fingerprint)`
//! queries; the responder answers each with `Match`, its full hash list when the range holds at
//! most [`LEAF_SIZE`] hashes, or the fingerprints of the range's 16 children. The initiator
//! compares children locally and queries only those that differ, so the bytes exchanged grow
//! with the number of differences times `log16(n)`, not with `n`.

use keyhive_core::Hash;
use serde::{Deserialize, Serialize};

use super::summary::{Fingerprint, Summary};

/// SYNC-22: a responder lists hashes instead of splitting when its range holds at most this many.
pub const LEAF_SIZE: usize = 16;
/// SYNC-21: children per split range.
pub const FANOUT: usize = 16;
/// SYNC-21: a prefix is at most 64 nibbles (a whole hash).
pub const MAX_PREFIX_NIBBLES: u8 = 64;

/// A range of the keyspace: all hashes starting with `len` given nibbles (SYNC-21).
///
/// Wire form: `len` then `ceil(len / 2)` bytes; an odd `len` leaves the low nibble of the last
/// byte zero. Any other form is rejected by [`Prefix::check`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prefix {
    /// Number of significant nibbles.
    pub len: u8,
    /// The nibbles, packed high nibble first.
    pub bytes: Vec<u8>,
}

/// Why a prefix is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PrefixError {
    /// Longer than a hash.
    #[error("prefix longer than 64 nibbles")]
    TooLong,
    /// The byte length does not match the nibble length, or padding bits are set.
    #[error("prefix bytes do not match its length")]
    NonCanonical,
}

impl Prefix {
    /// The whole keyspace.
    pub fn root() -> Self {
        Prefix {
            len: 0,
            bytes: Vec::new(),
        }
    }

    /// SYNC-21: validates a prefix received from the wire.
    pub fn check(&self) -> Result<(), PrefixError> {
        if self.len > MAX_PREFIX_NIBBLES {
            return Err(PrefixError::TooLong);
        }
        let want = usize::from(self.len).div_ceil(2);
        if self.bytes.len() != want {
            return Err(PrefixError::NonCanonical);
        }
        if self.len % 2 == 1 && self.bytes.last().is_some_and(|b| b & 0x0f != 0) {
            return Err(PrefixError::NonCanonical);
        }
        Ok(())
    }

    /// The `i`-th child (`i < 16`), or `None` at full depth.
    pub fn child(&self, i: u8) -> Option<Prefix> {
        if self.len >= MAX_PREFIX_NIBBLES || i >= 16 {
            return None;
        }
        let mut bytes = self.bytes.clone();
        if self.len.is_multiple_of(2) {
            bytes.push(i << 4);
        } else if let Some(last) = bytes.last_mut() {
            *last |= i;
        }
        Some(Prefix {
            len: self.len + 1,
            bytes,
        })
    }

    fn bounds(&self) -> ([u8; 32], [u8; 32]) {
        let mut lo = [0u8; 32];
        let mut hi = [0xffu8; 32];
        let full = usize::from(self.len / 2);
        let full = full.min(32).min(self.bytes.len());
        lo[..full].copy_from_slice(&self.bytes[..full]);
        hi[..full].copy_from_slice(&self.bytes[..full]);
        if self.len % 2 == 1 && full < 32 && full < self.bytes.len() {
            lo[full] = self.bytes[full] & 0xf0;
            hi[full] = self.bytes[full] | 0x0f;
        }
        (lo, hi)
    }

    /// The sub-slice of a sorted hash list that falls in this range. The prefix must have
    /// passed [`Prefix::check`].
    pub fn slice<'a>(&self, sorted: &'a [Hash]) -> &'a [Hash] {
        if self.check().is_err() {
            return &[];
        }
        let (lo, hi) = self.bounds();
        let start = sorted.partition_point(|h| h.0 < lo);
        let end = sorted.partition_point(|h| h.0 <= hi);
        &sorted[start..end.max(start)]
    }
}

/// One initiator query: "my fingerprint of this range is ...".
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeQuery {
    /// The range.
    pub prefix: Prefix,
    /// The initiator's fingerprint of its hashes in the range.
    pub fingerprint: Fingerprint,
}

/// The responder's answer to one query. Never reorder variants.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RangeAnswer {
    /// The fingerprints agree: nothing to do in this range.
    Match,
    /// The responder's complete, sorted hash list for the range.
    Hashes(Vec<Hash>),
    /// The responder's fingerprints of the 16 children, in order.
    Split(Vec<Fingerprint>),
}

fn fingerprint(hashes: &[Hash]) -> Fingerprint {
    Summary::of(hashes).fingerprint()
}

/// SYNC-22: the responder's answers to `queries` against its sorted hash list.
pub fn respond(sorted: &[Hash], queries: &[RangeQuery]) -> Vec<RangeAnswer> {
    queries
        .iter()
        .map(|q| {
            let slice = q.prefix.slice(sorted);
            if fingerprint(slice) == q.fingerprint {
                RangeAnswer::Match
            } else if slice.len() <= LEAF_SIZE || q.prefix.len >= MAX_PREFIX_NIBBLES {
                RangeAnswer::Hashes(slice.to_vec())
            } else {
                RangeAnswer::Split(
                    (0..FANOUT as u8)
                        .filter_map(|i| q.prefix.child(i))
                        .map(|c| fingerprint(c.slice(slice)))
                        .collect(),
                )
            }
        })
        .collect()
}

/// The initiator's first query: the whole keyspace.
pub fn initial_queries(sorted: &[Hash]) -> Vec<RangeQuery> {
    vec![RangeQuery {
        prefix: Prefix::root(),
        fingerprint: fingerprint(sorted),
    }]
}

/// What one round taught the initiator.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RoundOutcome {
    /// Queries for the next round (empty when reconciliation is complete).
    pub next: Vec<RangeQuery>,
    /// Hashes the responder has and the initiator lacks.
    pub need: Vec<Hash>,
    /// Hashes the initiator has and the responder lacks.
    pub have: Vec<Hash>,
}

/// Why an answer set was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AnswerError {
    /// The number of answers differs from the number of queries.
    #[error("{got} answers for {sent} queries")]
    Count {
        /// Queries sent.
        sent: usize,
        /// Answers received.
        got: usize,
    },
    /// A split did not carry exactly 16 fingerprints, or a hash list is unsorted or out of range.
    #[error("malformed range answer")]
    Malformed,
}

/// SYNC-23: the initiator's processing of one round of answers.
pub fn process(
    sorted: &[Hash],
    queries: &[RangeQuery],
    answers: &[RangeAnswer],
) -> Result<RoundOutcome, AnswerError> {
    if queries.len() != answers.len() {
        return Err(AnswerError::Count {
            sent: queries.len(),
            got: answers.len(),
        });
    }
    let empty = fingerprint(&[]);
    let mut out = RoundOutcome::default();
    for (q, a) in queries.iter().zip(answers) {
        let local = q.prefix.slice(sorted);
        match a {
            RangeAnswer::Match => {}
            RangeAnswer::Hashes(theirs) => {
                if theirs.windows(2).any(|w| w[0] >= w[1])
                    || q.prefix.slice(theirs).len() != theirs.len()
                {
                    return Err(AnswerError::Malformed);
                }
                diff_sorted(local, theirs, &mut out.need, &mut out.have);
            }
            RangeAnswer::Split(children) => {
                if children.len() != FANOUT || q.prefix.len >= MAX_PREFIX_NIBBLES {
                    return Err(AnswerError::Malformed);
                }
                for (i, theirs) in children.iter().enumerate() {
                    let Some(child) = q.prefix.child(i as u8) else {
                        return Err(AnswerError::Malformed);
                    };
                    let mine = child.slice(local);
                    let fp = fingerprint(mine);
                    if fp == *theirs {
                        continue;
                    }
                    if *theirs == empty {
                        // SYNC-23: the responder has nothing here; everything of ours is new.
                        out.have.extend_from_slice(mine);
                        continue;
                    }
                    out.next.push(RangeQuery {
                        prefix: child,
                        fingerprint: fp,
                    });
                }
            }
        }
    }
    Ok(out)
}

fn diff_sorted(mine: &[Hash], theirs: &[Hash], need: &mut Vec<Hash>, have: &mut Vec<Hash>) {
    let (mut i, mut j) = (0, 0);
    while i < mine.len() || j < theirs.len() {
        match (mine.get(i), theirs.get(j)) {
            (Some(a), Some(b)) if a == b => {
                i += 1;
                j += 1;
            }
            (Some(a), Some(b)) if a < b => {
                have.push(*a);
                i += 1;
            }
            (Some(_), Some(b)) => {
                need.push(*b);
                j += 1;
            }
            (Some(a), None) => {
                have.push(*a);
                i += 1;
            }
            (None, Some(b)) => {
                need.push(*b);
                j += 1;
            }
            (None, None) => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hashes(range: std::ops::Range<u32>) -> Vec<Hash> {
        let mut v: Vec<Hash> = range.map(|i| Hash::of_content(&i.to_le_bytes())).collect();
        v.sort();
        v
    }

    /// Runs the protocol in memory; returns (need, have, bytes exchanged, rounds).
    fn run(a: &[Hash], b: &[Hash]) -> (Vec<Hash>, Vec<Hash>, usize, usize) {
        let mut queries = initial_queries(a);
        let (mut need, mut have, mut bytes, mut rounds) = (vec![], vec![], 0, 0);
        while !queries.is_empty() {
            rounds += 1;
            let answers = respond(b, &queries);
            bytes += keyhive_core::encoding::encode(&queries).len();
            bytes += keyhive_core::encoding::encode(&answers).len();
            let out = process(a, &queries, &answers).expect("well-formed");
            need.extend(out.need);
            have.extend(out.have);
            queries = out.next;
        }
        need.sort();
        have.sort();
        (need, have, bytes, rounds)
    }

    #[test]
    fn prefix_rules() {
        assert_eq!(Prefix::root().check(), Ok(()));
        let c = Prefix::root().child(0xa).expect("child");
        assert_eq!(c.bytes, vec![0xa0]);
        let g = c.child(0x3).expect("grandchild");
        assert_eq!(g.bytes, vec![0xa3]);
        assert_eq!(
            Prefix {
                len: 1,
                bytes: vec![0xa1]
            }
            .check(),
            Err(PrefixError::NonCanonical)
        );
        assert_eq!(
            Prefix {
                len: 65,
                bytes: vec![0; 33]
            }
            .check(),
            Err(PrefixError::TooLong)
        );
        let all = hashes(0..200);
        let total: usize = (0..16)
            .map(|i| Prefix::root().child(i).expect("c").slice(&all).len())
            .sum();
        assert_eq!(total, 200);
    }

    #[test]
    fn bytes_grow_with_difference_not_total() {
        let n = 10_000u32;
        let base = hashes(0..n);
        let (need, have, bytes0, _) = run(&base, &base);
        assert!(need.is_empty() && have.is_empty());
        let mut fewer = base.clone();
        fewer.remove(1234);
        let (need, have, bytes1, _) = run(&fewer, &base);
        assert_eq!((need.len(), have.len()), (1, 0));
        // 100 differences spread across the keyspace (every 97th hash missing).
        let b100: Vec<Hash> = base
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 97 != 0 || *i >= 9700)
            .map(|(_, h)| *h)
            .collect();
        let (need, _, bytes100, _) = run(&b100, &base);
        assert_eq!(need.len(), 100);
        let full = keyhive_core::encoding::encode(&base).len();
        println!(
            "n=10000 d=0: {bytes0} B, d=1: {bytes1} B, d=100: {bytes100} B, full list {full} B"
        );
        assert!(bytes1 < full / 50);
        assert!(bytes100 < full / 2);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn reconciliation_finds_exact_difference(
            a in proptest::collection::btree_set(0u32..3000, 0..400),
            b in proptest::collection::btree_set(0u32..3000, 0..400),
        ) {
            let mut ha: Vec<Hash> = a.iter().map(|i| Hash::of_content(&i.to_le_bytes())).collect();
            let mut hb: Vec<Hash> = b.iter().map(|i| Hash::of_content(&i.to_le_bytes())).collect();
            ha.sort();
            hb.sort();
            let (need, have, _, _) = run(&ha, &hb);
            let mut want_need: Vec<Hash> = hb.iter().filter(|h| ha.binary_search(h).is_err()).copied().collect();
            let mut want_have: Vec<Hash> = ha.iter().filter(|h| hb.binary_search(h).is_err()).copied().collect();
            want_need.sort();
            want_have.sort();
            prop_assert_eq!(need, want_need);
            prop_assert_eq!(have, want_have);
        }
    }
}
