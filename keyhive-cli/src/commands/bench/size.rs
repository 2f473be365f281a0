//! History bytes a new member receives, per member (issue 13, Deliver 3), through `Replica`:
//! one document with `n` members of one device each, granted one by one, then the first write
//! (as in [`super::device`]); a fresh member then receives every item a relay serves it (the
//! document's auth, key agreement and content ops, the genesis, and the admin's own contact
//! card). Members are seated on their device keys (`specs/cgka.md` CGKA-34), so no member's
//! contact card is needed: the admin is never given one, and the new member reads without
//! any. The figure is their total envelope bytes over `n`, broken down by item kind.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use keyhive_core::capability::{Access, AgentId, PeerTag};
use keyhive_core::cgka::{CgkaBody, SignedCgkaOp};
use keyhive_core::encoding::peek_tag;
use keyhive_core::identity::{Device, DocumentId};
use keyhive_sync::replica::Replica;
use keyhive_sync::{Item, ItemKind, MemoryStore, Store};
use serde::Serialize;

/// The kinds of item the figure is broken down by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Part {
    /// Delegations, revocations and other `keyhive/auth` ops.
    DelegationOps,
    /// Signed contact cards (`keyhive/contact-card`).
    ContactCards,
    /// The document's genesis (`keyhive/genesis`).
    Genesis,
    /// Key agreement init.
    CgkaInit,
    /// Key agreement adds and device-key seats.
    CgkaAdd,
    /// Key agreement removes.
    CgkaRemove,
    /// Key agreement fills of blank inner nodes (CGKA-27).
    CgkaFill,
    /// Key agreement update paths.
    CgkaUpdate,
    /// Encrypted content ops and blob chunks.
    Ciphertext,
    /// Anything else.
    Other,
}

impl Part {
    fn id(self) -> &'static str {
        match self {
            Part::DelegationOps => "delegation_ops",
            Part::ContactCards => "contact_cards",
            Part::Genesis => "genesis",
            Part::CgkaInit => "cgka_init",
            Part::CgkaAdd => "cgka_add",
            Part::CgkaRemove => "cgka_remove",
            Part::CgkaFill => "cgka_fill",
            Part::CgkaUpdate => "cgka_update",
            Part::Ciphertext => "ciphertext",
            Part::Other => "other",
        }
    }

    /// The part an item belongs to, from its kind and its envelope's domain tag.
    fn of(item: &Item) -> Self {
        match item.kind() {
            ItemKind::Content | ItemKind::Blob => Part::Ciphertext,
            ItemKind::Cgka => match SignedCgkaOp::decode(item.envelope()) {
                Ok(op) => match op.unverified_payload().body {
                    CgkaBody::Init { .. } => Part::CgkaInit,
                    CgkaBody::Add { .. }
                    | CgkaBody::AddMany { .. }
                    | CgkaBody::AddDevices { .. } => Part::CgkaAdd,
                    CgkaBody::Remove { .. } => Part::CgkaRemove,
                    CgkaBody::Update(_) => Part::CgkaUpdate,
                    CgkaBody::Fill(_) | CgkaBody::FillByPosition(_) => Part::CgkaFill,
                },
                Err(_) => Part::Other,
            },
            ItemKind::Auth => match peek_tag(item.envelope()) {
                Some("keyhive/auth") => Part::DelegationOps,
                Some("keyhive/contact-card") => Part::ContactCards,
                Some("keyhive/genesis") => Part::Genesis,
                _ => Part::Other,
            },
        }
    }
}

/// Items of one part: how many, their envelope bytes, and those bytes per member.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PartSize {
    /// Items of this part.
    pub items: usize,
    /// Their envelope bytes.
    pub bytes: usize,
    /// `bytes / n`.
    pub per_member: f64,
}

/// The history a new member receives at `n` members.
#[derive(Clone, Debug, Serialize)]
pub struct HistorySize {
    /// `history_bytes_per_member_<n>`.
    pub id: String,
    /// Members (one device each).
    pub n: usize,
    /// Items received.
    pub items: usize,
    /// Envelope bytes received in their wire form (what the sync layer moves, before framing;
    /// SYNC-110).
    pub bytes: usize,
    /// `bytes / n`.
    pub per_member: f64,
    /// Of which signatures (64 bytes an item), per member.
    pub signatures_per_member: f64,
    /// By part, keyed by [`Part`]'s identifier.
    pub parts: BTreeMap<&'static str, PartSize>,
}

/// Every item `replica` stores: what a relay holding the document serves a new member.
fn served(replica: &Replica<MemoryStore>) -> Result<Vec<Item>> {
    let store = replica.store();
    let mut out = Vec::new();
    for subject in store.subjects()? {
        for hash in store.hashes(&subject)? {
            out.extend(store.get(&hash)?);
        }
    }
    Ok(out)
}

/// Measures the history at `n` members; checks that the newest member, fed exactly those
/// items, can read the first write (so the figure counts what a member needs, no less).
pub fn measure(n: usize) -> Result<HistorySize> {
    let mut alice = Replica::open(Device::generate(Some("alice".into())), MemoryStore::new())?;
    let doc: DocumentId = alice.create_document()?;
    let members: Vec<Device> = (0..n).map(|_| Device::generate(None)).collect();
    for m in &members {
        // CGKA-34: no contact card; the grant names the device and seats it on its key.
        alice.grant(&doc.0, AgentId::Individual(m.id()), Access::Read)?;
    }
    let written = alice.write(doc, &[5u8; 1024])?;
    let items = served(&alice)?;
    let size = breakdown(n, &items);

    let newcomer = members.last().context("at least one member")?;
    let mut fresh = Replica::open(newcomer.clone(), MemoryStore::new())?;
    // The newcomer receives the wire form (SYNC-110) and expands it.
    let received = items
        .iter()
        .map(|i| Item::from_wire(i.to_wire()))
        .collect::<Result<Vec<_>, _>>()?;
    fresh.ingest_all(PeerTag::from(alice.device().id().0), received)?;
    fresh.prepare(doc)?;
    let mut sink = Vec::new();
    fresh
        .read_change(doc, &written, &mut sink)
        .context("the new member reads the first write from the history it received")?;
    anyhow::ensure!(sink.len() == 1024, "the new member read the whole change");
    Ok(size)
}

/// Sums `items` by part, per member of `n`.
pub fn breakdown(n: usize, items: &[Item]) -> HistorySize {
    let per = |bytes: usize| bytes as f64 / n.max(1) as f64;
    let mut parts: BTreeMap<Part, PartSize> = BTreeMap::new();
    for item in items {
        let part = parts.entry(Part::of(item)).or_default();
        part.items += 1;
        // SYNC-110: what travels is the wire form (auth and content ops without tag, version
        // and subject).
        part.bytes += item.wire_len();
    }
    let bytes: usize = parts.values().map(|p| p.bytes).sum();
    let parts = parts
        .into_iter()
        .map(|(part, mut size)| {
            size.per_member = per(size.bytes);
            (part.id(), size)
        })
        .collect();
    HistorySize {
        id: format!("history_bytes_per_member_{n}"),
        n,
        items: items.len(),
        bytes,
        per_member: per(bytes),
        signatures_per_member: per(items.len() * keyhive_core::signed::SIGNATURE_LEN),
        parts,
    }
}

/// Prints one line per N and its breakdown.
pub fn print(sizes: &[HistorySize]) {
    for s in sizes {
        println!(
            "history a new member receives, N = {}: {:.0} B per member ({} items, {} B; signatures {:.0} B per member)",
            s.n, s.per_member, s.items, s.bytes, s.signatures_per_member
        );
        for (part, p) in &s.parts {
            println!(
                "  {part:<16} {:>7} items {:>10} B {:>7.1} B per member",
                p.items, p.bytes, p.per_member
            );
        }
    }
}

/// Measures at each of `sizes`, recording a failure in `errors` and going on.
pub fn run(sizes: &[usize], errors: &mut Vec<String>) -> Vec<HistorySize> {
    let mut out = Vec::new();
    for &n in sizes {
        match measure(n) {
            Ok(size) => out.push(size),
            Err(e) => errors.push(format!("history size at N = {n}: {e:#}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_new_member_reads_from_what_is_counted_and_every_byte_is_in_one_part() {
        let n: usize = std::env::var("KEYHIVE_SIZE_N")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(20);
        let size = measure(n).expect("measured");
        println!("{}", serde_json::to_string_pretty(&size).expect("json"));
        assert_eq!(size.id, format!("history_bytes_per_member_{n}"));
        assert_eq!(
            size.bytes,
            size.parts.values().map(|p| p.bytes).sum::<usize>()
        );
        assert_eq!(
            size.items,
            size.parts.values().map(|p| p.items).sum::<usize>()
        );
        // One delegation per member, and the key agreement seats each of them; no member's
        // card (CGKA-34), only the admin's own.
        assert!(size.parts["delegation_ops"].items >= n);
        assert!(size.parts["contact_cards"].items <= 1);
        assert!(size.parts["ciphertext"].items >= 1);
        assert!(!size.parts.contains_key("other"));
        assert!((size.per_member - size.bytes as f64 / n as f64).abs() < 1e-9);
    }
}
