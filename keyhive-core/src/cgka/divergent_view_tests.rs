//! CGKA-28 property tests under divergent capability views: replicas that wrongly admit an
//! intruder never let it learn an epoch a strict replica encrypts under, and converge once
//! every replica shares the strict view.

use proptest::prelude::*;

use super::history_tests::{Action, action, action_with_fill};
use super::tests::{Replica, SMALL_FILL, add_and_broadcast, epoch_of, network, shuffled_ops};
use super::*;
use crate::crypto::hash::Hash;
use crate::signed::Signed;

/// Delivers with `to`'s own capability view, tolerating refusals of ops it finds unauthorised.
fn deliver_with(rs: &mut [Replica], from: usize, to: usize, seed: u64, view: &StaticAuthority) {
    if from == to {
        return;
    }
    for op in shuffled_ops(&rs[from], seed) {
        match rs[to].cgka.receive(op, view) {
            // Under `to`'s stricter view a remove may name a device it never seated (CGKA-26).
            Ok(_)
            | Err(ReceiveError::ForeignInit)
            | Err(ReceiveError::Unauthorized)
            | Err(ReceiveError::NotSeated(_)) => {}
            Err(e) => panic!("unexpected receive error {e:?}"),
        }
    }
}

/// Replicas 0..5 are honest; some of them (`lax_mask`) wrongly admit replica 5, an intruder,
/// as an admin. Whatever happens, no epoch an honest strict replica encrypts under is ever
/// known to the intruder, and once everyone shares the strict view they converge.
fn run_divergent(actions: &[Action], lax_mask: u8, seed: u64) -> Result<(), TestCaseError> {
    const N: usize = 6;
    const INTRUDER: usize = 5;
    let (mut rs, lax) = network(N);
    let mut strict = lax.clone();
    strict.revoke(&rs[INTRUDER].id());
    let views: Vec<StaticAuthority> = (0..N)
        .map(|i| {
            if i == INTRUDER || (lax_mask >> i) & 1 == 1 {
                lax.clone()
            } else {
                strict.clone()
            }
        })
        .collect();
    for i in 1..3 {
        add_and_broadcast(&mut rs, 0, i, &strict);
    }
    let mut strict_epochs: Vec<Hash> = Vec::new();
    for a in actions {
        match *a {
            Action::Add { actor, target } => {
                let (id, pk) = (rs[target].id(), rs[target].prekey());
                let key = rs[actor].device.signing_key().clone();
                if !rs[actor].cgka.members().contains(&id) {
                    let _ = rs[actor].cgka.add(&key, id, pk, &views[actor]);
                }
            }
            Action::Remove { actor, target } => {
                let id = rs[target].id();
                let key = rs[actor].device.signing_key().clone();
                if actor != target && rs[actor].cgka.members().contains(&id) {
                    let _ = rs[actor].cgka.remove(&key, id, &views[actor]);
                }
            }
            Action::Update { actor } => {
                let key = rs[actor].device.signing_key().clone();
                let _ = rs[actor].cgka.update(&key, &views[actor]);
            }
            Action::Fill { actor } => {
                let key = rs[actor].device.signing_key().clone();
                let _ = rs[actor]
                    .cgka
                    .fill_within(&key, &views[actor], SMALL_FILL, true);
            }
            Action::Deliver { from, to, seed } => {
                deliver_with(&mut rs, from, to, seed, &views[to]);
            }
            Action::Encrypt { actor } => {
                if (lax_mask >> actor) & 1 == 0
                    && actor != INTRUDER
                    && let Some((epoch, _)) = rs[actor].cgka.current_epoch()
                {
                    strict_epochs.push(epoch);
                }
            }
        }
    }
    // The intruder learns everything anyone ever wrote, with its lax view.
    for from in 0..N {
        deliver_with(&mut rs, from, INTRUDER, seed, &lax);
    }
    for epoch in &strict_epochs {
        prop_assert!(
            rs[INTRUDER].cgka.epoch_secret(epoch).is_none(),
            "the intruder knows an epoch a strict replica encrypted under"
        );
    }
    // Everyone adopts the strict view and syncs: the honest replicas converge.
    for r in rs.iter_mut() {
        r.cgka.refresh(&strict);
    }
    for round in 0..2u64 {
        for from in 0..N {
            for to in 0..INTRUDER {
                deliver_with(
                    &mut rs,
                    from,
                    to,
                    seed ^ round ^ (from * 7 + to) as u64,
                    &strict,
                );
            }
        }
    }
    for r in &rs[..INTRUDER] {
        prop_assert_eq!(r.cgka.tree(), rs[0].cgka.tree());
        prop_assert!(!r.cgka.members().contains(&rs[INTRUDER].id()));
    }
    let members = rs[0].cgka.members();
    let Some(updater) = (0..INTRUDER).find(|i| members.contains(&rs[*i].id())) else {
        return Ok(());
    };
    let key = rs[updater].device.signing_key().clone();
    let op = rs[updater].cgka.update(&key, &strict).unwrap();
    for (i, r) in rs.iter_mut().enumerate() {
        let view = if i == INTRUDER { &lax } else { &strict };
        let _ = r.cgka.receive(Signed::decode(op.as_bytes()).unwrap(), view);
    }
    let root = epoch_of(&rs[updater]);
    prop_assert!(root.is_some());
    for (i, r) in rs[..INTRUDER].iter().enumerate() {
        if std::env::var_os("CGKA_DEBUG").is_some() {
            eprintln!(
                "replica {i} member {} root entries {} knows {} bad {} heads {} ops {}",
                members.contains(&r.id()),
                r.cgka.tree().entries(r.cgka.tree().root()).len(),
                r.cgka.epoch_secret(&op.hash()).is_some(),
                r.cgka.bad_paths().len(),
                r.cgka.heads().len(),
                r.cgka.op_count()
            );
        }
        if members.contains(&r.id()) {
            prop_assert_eq!(epoch_of(r), root.clone());
        }
    }
    prop_assert!(rs[INTRUDER].cgka.epoch_secret(&op.hash()).is_none());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
    #[test]
    fn divergent_capability_views_never_leak_an_epoch(
        actions in prop::collection::vec(action(6), 10..50),
        lax_mask in 0u8..32,
        seed in any::<u64>(),
    ) {
        run_divergent(&actions, lax_mask, seed)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]
    #[test]
    #[ignore = "long run: cargo test -p keyhive-core -- --ignored"]
    fn divergent_capability_views_never_leak_an_epoch_long(
        actions in prop::collection::vec(action(6), 10..120),
        lax_mask in 0u8..32,
        seed in any::<u64>(),
    ) {
        run_divergent(&actions, lax_mask, seed)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
    /// CGKA-28: fills made where an intruder is admitted never let it learn a strict epoch.
    #[test]
    fn divergent_views_with_fills_never_leak_an_epoch(
        actions in prop::collection::vec(action_with_fill(6), 10..60),
        lax_mask in 0u8..32,
        seed in any::<u64>(),
    ) {
        run_divergent(&actions, lax_mask, seed)?;
    }
}
