//! Attackers (the reader carol, the revoked dave, the stranger mallory) sending bad items to a
//! device (as a peer serving it) or to a relay (as a push).

use keyhive_core::Hash;
use keyhive_core::capability::{Access, AgentId, AnySigned, ContentBody, Proof};
use keyhive_core::identity::{DocumentId, SubjectKind};
use keyhive_core::signed::{Op, Verified};
use keyhive_sync::policy::AccessPolicy;
use keyhive_sync::{Item, ItemKind, Store, SubjectId};

use super::cast::DEVICES;
use keyhive_sync::admission::apply_rank;

use super::exchange::{Side, deliver, rank_in};
use super::steps::Attack;
use super::world::{Outcome, World};

pub fn attack(
    world: &mut World,
    attacker: usize,
    target: usize,
    attack: Attack,
    pick: u32,
) -> Outcome {
    let pick = pick as usize;
    let items = match attack {
        Attack::BadSignature => {
            let Some(base) = nth(&world.oracle.pool, pick) else {
                return Err("nothing to copy".into());
            };
            let mut envelope = base.envelope().to_vec();
            let last = envelope.len() - 1;
            envelope[last] ^= 0x01;
            let forged = Item::new(base.kind(), base.subject(), envelope).expect("same length");
            world.record.forged.push(forged.clone());
            vec![forged]
        }
        Attack::Replay => {
            let order = world.subject_order();
            let mut held = all_items(&*world.devices[attacker].store);
            held.sort_by_key(|i| (rank_in(&order, &i.subject()), apply_rank(i)));
            let Some(item) = nth(&held, pick) else {
                return Err("holds nothing".into());
            };
            vec![item.clone(), item]
        }
        Attack::Mislabel => {
            let Some(base) = nth(&world.oracle.pool, pick) else {
                return Err("nothing to copy".into());
            };
            let subjects = &world.subjects;
            let mut subject = SubjectId(subjects[pick / 7 % subjects.len()].key);
            if subject == base.subject() {
                subject = SubjectId(subjects[(pick / 7 + 1) % subjects.len()].key);
            }
            // A third keep their kind (only the subject lies), the rest change it too.
            let label = if pick.is_multiple_of(3) {
                base.kind()
            } else {
                match base.kind() {
                    ItemKind::Auth => ItemKind::Content,
                    ItemKind::Content => ItemKind::Blob,
                    ItemKind::Blob => ItemKind::Cgka,
                    ItemKind::Cgka => ItemKind::Auth,
                }
            };
            let item = Item::new(label, subject, base.envelope().to_vec()).expect("valid length");
            world.record.mislabelled.push(item.clone());
            vec![item]
        }
        Attack::UnauthorisedWrite => match unauthorised_write(world, attacker, pick) {
            Ok(item) => {
                world.record.unauthorised.push(item.clone());
                vec![item]
            }
            Err(e) => return Err(e),
        },
    };
    send(world, attacker, target, items, attack)
}

fn send(
    world: &mut World,
    attacker: usize,
    target: usize,
    items: Vec<Item>,
    attack: Attack,
) -> Outcome {
    let from = world.devices[attacker].id();
    let n = items.len();
    if target >= DEVICES {
        let relay = &world.relays[(target - DEVICES) % world.relays.len()];
        let side = Side {
            id: relay.id,
            policy: &relay.policy,
            store: &*relay.store,
        };
        deliver(&from, &side, items);
        return Ok(format!("{attack:?}: {n} item(s) pushed"));
    }
    if target == attacker {
        return Err("attacks itself".into());
    }
    let victim = &world.devices[target];
    // An op with a valid signature whose parents the victim lacks would only wait in the
    // victim's bounded pending set (CAP-4); attackers send what would be applied.
    if matches!(attack, Attack::Replay | Attack::UnauthorisedWrite)
        && items.iter().any(|i| !has_parents(&*victim.store, i))
    {
        return Err("the victim lacks the item's causal past".into());
    }
    victim
        .gate()
        .admit_batch(&from, items, &*victim.store)
        .expect("admit a batch");
    Ok(format!("{attack:?}: {n} item(s) served"))
}

fn has_parents(store: &dyn Store, item: &Item) -> bool {
    match AnySigned::decode(item.envelope()) {
        Ok(op) => op
            .parents()
            .iter()
            .all(|p| store.contains(p).expect("contains")),
        Err(_) => true,
    }
}

/// A content op validly signed by `attacker` on a document neither its own view nor the
/// reference lets it write, naming the document's content heads it holds.
fn unauthorised_write(world: &World, attacker: usize, pick: usize) -> Result<Item, String> {
    let r = world.devices[attacker].lock();
    let me = r.device().id();
    let reference = world.oracle.checker();
    let docs: Vec<_> = world
        .subjects
        .iter()
        .filter(|s| s.kind == SubjectKind::Document)
        .filter(|s| {
            let agent = AgentId::Individual(me);
            !r.checker().can(agent, Access::Write, &s.key)
                && !reference.can(agent, Access::Write, &s.key)
        })
        .map(|s| s.key)
        .collect();
    let Some(doc) = nth(&docs, pick) else {
        return Err("may write every document".into());
    };
    let proof = r
        .checker()
        .find_proof(me, &doc, Access::Read, u32::MAX)
        .unwrap_or(Proof::Root);
    let body = ContentBody {
        document: DocumentId(doc),
        auth_heads: Vec::new(),
        proof,
        payload: keyhive_core::capability::Payload::Blob {
            hash: Hash::of_content(b"forged"),
            len: 6,
        },
    };
    let op = Op::new(me.0, r.checker().content_heads(&doc), body);
    let op = Verified::sign(op, r.device().signing_key()).map_err(|e| e.to_string())?;
    Ok(Item::new(ItemKind::Content, SubjectId(doc), op.as_bytes().to_vec()).expect("valid item"))
}

fn nth<T: Clone>(items: &[T], n: usize) -> Option<T> {
    (!items.is_empty()).then(|| items[n % items.len()].clone())
}

/// Every item of `store`.
pub fn all_items(store: &dyn Store) -> Vec<Item> {
    let mut out = Vec::new();
    for s in store.subjects().expect("subjects") {
        for h in store.hashes(&s).expect("hashes") {
            out.extend(store.get(&h).expect("get"));
        }
    }
    out
}

/// Whether any node holds `item` under its own labels.
pub fn held_as_labelled(world: &World, item: &Item) -> Option<String> {
    let same = |got: Option<Item>| {
        got.is_some_and(|g| g.kind() == item.kind() && g.subject() == item.subject())
    };
    for (i, d) in world.devices.iter().enumerate() {
        if same(d.store.get(&item.hash()).expect("get")) {
            return Some(super::cast::DEVICE_NAMES[i].to_string());
        }
    }
    for (i, r) in world.relays.iter().enumerate() {
        if same(r.store.get(&item.hash()).expect("get")) {
            return Some(format!("relay-{i}"));
        }
    }
    None
}
