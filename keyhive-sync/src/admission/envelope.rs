//! ADM-1: what an item is, derived from its bytes alone (dispatch on the domain tag, ENC-11).

use keyhive_core::capability::{AnySigned, AuthBody, ContentBody};
use keyhive_core::cgka::op::check_body;
use keyhive_core::cgka::{CgkaBody, SignedCgkaOp};
use keyhive_core::encoding::{DecodeError, SignedPayload, peek_tag};
use keyhive_core::identity::{ContactCard, Genesis};
use keyhive_core::signed::{OpBody, Signed};

use super::Refusal;
use crate::blob::{Blob, EntryPoint};
use crate::item::{Item, ItemKind, SubjectId};

/// A decoded item, signature not yet checked.
#[derive(Debug)]
pub(crate) enum Envelope {
    /// A genesis, delegation, revocation or content op.
    Op(AnySigned),
    /// A device's contact card.
    Card(Signed<ContactCard>),
    /// A key-agreement op (structure checked, CGKA-3/4).
    Cgka(SignedCgkaOp),
    /// A change or piece.
    Blob(Blob),
    /// A signed entry point.
    EntryPoint(Signed<EntryPoint>),
}

/// ADM-1: decodes `item` by its domain tag and requires the kind and subject it was sent
/// under to be the ones its bytes carry, so the same bytes can never be admitted twice under
/// different kinds or subjects (and storage keyed by hash alone cannot be shadowed).
pub(crate) fn classify(item: &Item) -> Result<Envelope, Refusal> {
    let bytes = item.envelope();
    let malformed = Refusal::Malformed;
    let (envelope, kind, subject) = match peek_tag(bytes) {
        Some(<AuthBody as OpBody>::TAG)
        | Some(<ContentBody as OpBody>::TAG)
        | Some(<Genesis as OpBody>::TAG) => {
            let op = AnySigned::decode(bytes).map_err(malformed)?;
            let kind = match op {
                AnySigned::Content(_) => ItemKind::Content,
                _ => ItemKind::Auth,
            };
            let subject = op.subject();
            (Envelope::Op(op), kind, subject)
        }
        Some(ContactCard::TAG) => {
            let card = Signed::<ContactCard>::decode(bytes).map_err(malformed)?;
            let subject = card.unverified_payload().device;
            (Envelope::Card(card), ItemKind::Auth, subject)
        }
        Some(<CgkaBody as OpBody>::TAG) => {
            let op = SignedCgkaOp::decode(bytes).map_err(malformed)?;
            check_body(op.unverified_payload()).map_err(malformed)?;
            // Only an init names its document; other key-agreement ops are tied to it by
            // their predecessors (ADM-6), checked at admission.
            let subject = match &op.unverified_payload().body {
                CgkaBody::Init { document, .. } => document.0,
                _ => item.subject().0,
            };
            (Envelope::Cgka(op), ItemKind::Cgka, subject)
        }
        Some(Blob::TAG) => {
            let blob = Blob::from_bytes(bytes).map_err(malformed)?;
            let subject = blob.document().0;
            (Envelope::Blob(blob), ItemKind::Blob, subject)
        }
        Some(EntryPoint::TAG) => {
            let entry = Signed::<EntryPoint>::decode(bytes).map_err(malformed)?;
            let subject = entry.unverified_payload().change.header.document.0;
            (Envelope::EntryPoint(entry), ItemKind::Blob, subject)
        }
        _ => {
            return Err(Refusal::Malformed(DecodeError::WrongTag {
                expected: "the domain tag of a keyhive item",
            }));
        }
    };
    if kind != item.kind() {
        return Err(Refusal::WrongKind {
            claimed: item.kind(),
            actual: kind,
        });
    }
    if SubjectId(subject) != item.subject() {
        return Err(Refusal::WrongSubject {
            claimed: item.subject(),
            actual: SubjectId(subject),
        });
    }
    Ok(envelope)
}

/// Puts `items` in the order a peer admits them without refusing any for want of a
/// predecessor (ADM-n): by [`apply_rank`], and the capability ops (which share one causal DAG)
/// parents first, ties by hash. A batch sent in store order lists an op before its parent
/// about half the time; the peer then refuses the op and everything that names it, and a
/// large change's pieces travel again next round. Key-agreement ops likewise go parents first,
/// ties by hash: each document's ops of the batch in its replay order (CGKA-12), so that a
/// receiver holding the ops before them appends each without replaying (CGKA-36).
pub fn apply_order(items: &mut [Item]) {
    items.sort_by_key(|i| (apply_rank(i), i.hash()));
    let ops = items.partition_point(|i| apply_rank(i) == 0);
    let decoded: Vec<Option<AnySigned>> = items[..ops]
        .iter()
        .map(|i| AnySigned::decode(i.envelope()).ok())
        .collect();
    // CAP-23: a subject's genesis is an implied parent of its version-2 auth ops.
    let geneses: std::collections::HashMap<_, keyhive_core::Hash> = decoded
        .iter()
        .zip(&items[..ops])
        .filter_map(|(op, i)| match op {
            Some(op @ AnySigned::Genesis(_)) => Some((op.subject(), i.hash())),
            _ => None,
        })
        .collect();
    let parents: Vec<Vec<keyhive_core::Hash>> = decoded
        .iter()
        .map(|op| {
            let Some(op) = op else { return Vec::new() };
            let mut parents = op.parents();
            parents.extend(
                op.implied_genesis()
                    .and_then(|subject| geneses.get(&subject).copied()),
            );
            parents
        })
        .collect();
    parents_first(&mut items[..ops], &parents);
    let agreement = ops + items[ops..].partition_point(|i| apply_rank(i) == 1);
    let parents: Vec<Vec<keyhive_core::Hash>> = items[ops..agreement]
        .iter()
        .map(|i| {
            SignedCgkaOp::decode(i.envelope())
                .map(|op| op.unverified_payload().predecessors.clone())
                .unwrap_or_default()
        })
        .collect();
    parents_first(&mut items[ops..agreement], &parents);
}

/// Reorders `items` (sorted by hash) so that each comes after those of `parents` (its
/// parents' hashes, by index) that are among them: Kahn's algorithm taking the smallest hash
/// among the ready items.
fn parents_first(items: &mut [Item], parents: &[Vec<keyhive_core::Hash>]) {
    let count = items.len();
    let at: std::collections::HashMap<keyhive_core::Hash, usize> = items
        .iter()
        .enumerate()
        .map(|(n, i)| (i.hash(), n))
        .collect();
    let mut waiting = vec![0usize; count];
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); count];
    for (n, ps) in parents.iter().enumerate() {
        for p in ps {
            if let Some(&q) = at.get(p) {
                waiting[n] += 1;
                children[q].push(n);
            }
        }
    }
    // Kahn's algorithm; the heap keeps ties in hash (= current) order.
    let mut ready: std::collections::BTreeSet<usize> =
        (0..count).filter(|&n| waiting[n] == 0).collect();
    let mut order = Vec::with_capacity(count);
    while let Some(n) = ready.pop_first() {
        order.push(n);
        for &c in &children[n] {
            waiting[c] -= 1;
            if waiting[c] == 0 {
                ready.insert(c);
            }
        }
    }
    // A cycle cannot come from valid ops (hashes); anything left keeps its place at the end.
    let placed: std::collections::HashSet<usize> = order.iter().copied().collect();
    order.extend((0..count).filter(|n| !placed.contains(n)));
    let mut slots: Vec<Option<Item>> = items.iter().cloned().map(Some).collect();
    for (slot, n) in items.iter_mut().zip(order) {
        if let Some(item) = slots[n].take() {
            *slot = item;
        }
    }
}

/// [`apply_rank`] of a large change's pieces: last, after the change that lists them.
pub const PIECE_RANK: u8 = 3;

/// The order a batch is admitted in: the capability graph (auth and content ops share one
/// causal DAG), then key agreement, then changes, entry points and pieces, so that whatever
/// names an item is admitted before it.
pub fn apply_rank(item: &Item) -> u8 {
    match item.kind() {
        ItemKind::Auth | ItemKind::Content => 0,
        ItemKind::Cgka => 1,
        ItemKind::Blob => match Blob::from_bytes(item.envelope()) {
            Ok(Blob::Piece { .. }) => PIECE_RANK,
            _ => 2,
        },
    }
}

/// REP-70: the order a replica replays its stored items in: [`apply_rank`], and within the
/// capability ops every genesis first. A root-form op (CAP-24) replayed before its subject's
/// genesis waits unverified and has its signature checked when the genesis arrives, even when
/// its admission mark says it was checked before; after the genesis it is applied on its mark.
pub(crate) fn replay_rank(item: &Item) -> (u8, bool) {
    let genesis = item.kind() == ItemKind::Auth
        && peek_tag(item.envelope()) == Some(<Genesis as OpBody>::TAG);
    (apply_rank(item), !genesis)
}

#[cfg(test)]
mod tests {
    use keyhive_core::cgka::{Cgka, StaticAuthority};
    use keyhive_core::identity::{Device, DocumentId};
    use keyhive_core::signed::Signed;

    use super::*;

    /// CGKA-36: a batch of key-agreement ops, shuffled, comes out in the document's replay
    /// order (CGKA-12), so a receiver holding the ops before them appends every one.
    #[test]
    fn key_agreement_ops_come_out_in_replay_order() {
        let devices: Vec<Device> = (0..4).map(|_| Device::generate(None)).collect();
        let mut authority = StaticAuthority::new();
        for d in &devices {
            authority.grant_admin(d.id(), d.prekeys()[0].public());
        }
        let document = DocumentId(devices[0].id().0);
        let (mut creator, init) = Cgka::create(document, &devices[0]).expect("create");
        let key = devices[0].signing_key().clone();
        let others: Vec<_> = devices[1..].iter().map(Device::id).collect();
        creator
            .add_devices(&key, &others, &authority)
            .expect("seat");
        // The others update concurrently, each against the same tree.
        let mut replicas: Vec<Cgka> = devices[1..]
            .iter()
            .map(|d| {
                let mut r = Cgka::from_init(
                    &creator.binding(),
                    Signed::decode(init.as_bytes()).expect("init"),
                    Some(d),
                    &authority,
                )
                .expect("start");
                for op in creator.ops_in_order().skip(1) {
                    r.receive(Signed::decode(op.as_bytes()).expect("op"), &authority)
                        .expect("receive");
                }
                r
            })
            .collect();
        for (r, d) in replicas.iter_mut().zip(&devices[1..]) {
            let op = r.update(d.signing_key(), &authority).expect("update");
            creator
                .receive(Signed::decode(op.as_bytes()).expect("op"), &authority)
                .expect("receive");
        }
        creator.update(&key, &authority).expect("merge");
        let replay: Vec<_> = creator.ops_in_order().map(|op| op.hash()).collect();
        let mut items: Vec<Item> = creator
            .ops_in_order()
            .map(|op| {
                Item::new(
                    ItemKind::Cgka,
                    SubjectId(document.0),
                    op.as_bytes().to_vec(),
                )
                .expect("item")
            })
            .collect();
        items.reverse();
        apply_order(&mut items);
        let ordered: Vec<_> = items.iter().map(Item::hash).collect();
        assert_eq!(ordered, replay);
    }
}
