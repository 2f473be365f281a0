//! The random part of a run: a list of steps drawn from the seed. Steps name devices, links
//! and relays by index into the fixed cast (`cast.rs`) and pick subjects, agents and items by a
//! number resolved against the state when the step runs, so a step list stays meaningful when
//! the shrinker drops steps from it.

use keyhive_core::capability::Access;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use super::cast::{ATTACKERS, DEVICES, LINKS, MALLORY, RELAYS};

/// How an attacker misbehaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attack {
    /// A copy of a known item with one signature byte flipped.
    BadSignature,
    /// An item the attacker holds, sent again (twice).
    Replay,
    /// A known item's envelope under another subject and kind.
    Mislabel,
    /// A content op validly signed by the attacker on a document it may at most read.
    UnauthorisedWrite,
}

/// One step of a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// `by` grants `access` on the `subject`-th subject it administers to the `to`-th agent.
    Grant {
        by: usize,
        subject: u32,
        to: u32,
        access: Access,
    },
    /// `by` revokes the `pick`-th (subject, direct member) pair among subjects it administers.
    Revoke { by: usize, pick: u32 },
    /// `by` revokes `agent` (an index into the cast's agents) on `subject` (a cast subject).
    RevokeMember {
        by: usize,
        subject: usize,
        agent: usize,
    },
    /// `device` removes itself (or its person) from the `pick`-th subject it is a member of.
    Leave { device: usize, pick: u32 },
    /// `device` writes to the `doc`-th document it may write.
    Write { device: usize, doc: u32 },
    /// `device` creates a document, placed in the `folder`-th folder it may write if any.
    CreateDocument {
        device: usize,
        folder: Option<u32>,
        is_folder: bool,
    },
    /// `by` invites whoever holds the code to the `subject`-th subject where it holds
    /// `access`, for `uses` redemptions, after syncing with relay 0 (its wire shuffled by
    /// `wire`); the devices `redeemers` (never the stranger) then redeem it through relay 0 in
    /// turn, as `keyhive join` does (INV-3..INV-6, INV-9).
    Invite {
        by: usize,
        subject: u32,
        access: Access,
        uses: u32,
        redeemers: [usize; 2],
        wire: u64,
    },
    /// One sync over `link`, its wire shuffled (and, at a faulty relay, lossy) by `wire`.
    Sync { link: usize, wire: u64 },
    /// Partition: `link` goes down.
    LinkDown { link: usize },
    /// `link` comes back.
    LinkUp { link: usize },
    /// `device` crashes and restarts from its store and key store.
    RestartDevice { device: usize },
    /// `relay` crashes and restarts from its store.
    RestartRelay { relay: usize },
    /// `attacker` sends `target` (a device index, or `DEVICES + relay`) a bad item.
    Attack {
        attacker: usize,
        target: usize,
        attack: Attack,
        pick: u32,
    },
}

/// Steps of a run with `seed`: `count` random steps; the revocation of the revoked device
/// (dave, from the team) is placed a third of the way in.
pub fn generate(seed: u64, count: usize) -> Vec<Step> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut steps = Vec::with_capacity(count + 1);
    for i in 0..count {
        if i == count / 3 {
            steps.push(super::cast::revoke_dave());
        }
        steps.push(random_step(&mut rng));
    }
    steps
}

fn random_step(rng: &mut StdRng) -> Step {
    let device = rng.random_range(0..DEVICES);
    let roll = rng.random_range(0..100u32);
    match roll {
        0..25 => Step::Write {
            device,
            doc: rng.random(),
        },
        25..55 => Step::Sync {
            link: rng.random_range(0..LINKS.len()),
            wire: rng.random(),
        },
        55..63 => Step::Grant {
            by: device,
            subject: rng.random(),
            to: rng.random(),
            access: match rng.random_range(0..10u32) {
                0..2 => Access::Pull,
                2..5 => Access::Read,
                5..9 => Access::Write,
                _ => Access::Admin,
            },
        },
        63..69 => Step::Revoke {
            by: device,
            pick: rng.random(),
        },
        69..71 => Step::Leave {
            device,
            pick: rng.random(),
        },
        71..76 => Step::CreateDocument {
            device,
            folder: rng.random_bool(0.6).then(|| rng.random()),
            is_folder: rng.random_bool(0.2),
        },
        76..80 => Step::LinkDown {
            link: rng.random_range(0..LINKS.len()),
        },
        80..84 => Step::LinkUp {
            link: rng.random_range(0..LINKS.len()),
        },
        84..87 => Step::RestartDevice { device },
        87..89 => Step::RestartRelay {
            relay: rng.random_range(0..RELAYS),
        },
        89..92 => Step::Invite {
            by: device,
            subject: rng.random(),
            access: match rng.random_range(0..3u32) {
                0 => Access::Pull,
                1 => Access::Read,
                _ => Access::Write,
            },
            uses: rng.random_range(1..3),
            redeemers: [rng.random_range(0..MALLORY), rng.random_range(0..MALLORY)],
            wire: rng.random(),
        },
        _ => Step::Attack {
            attacker: ATTACKERS[rng.random_range(0..ATTACKERS.len())],
            target: rng.random_range(0..DEVICES + RELAYS),
            attack: match rng.random_range(0..4u32) {
                0 => Attack::BadSignature,
                1 => Attack::Replay,
                2 => Attack::Mislabel,
                _ => Attack::UnauthorisedWrite,
            },
            pick: rng.random(),
        },
    }
}
