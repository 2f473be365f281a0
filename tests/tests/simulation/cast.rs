//! The fixed cast of every run: seven devices of five people, two relays (one faulty), the
//! links between them, and the subjects the prologue creates.

use super::steps::Step;

/// Devices, by index: two people with two devices each, a reader, a device that gets revoked
/// and a stranger.
pub const DEVICE_NAMES: [&str; 7] = [
    "alice-laptop",
    "alice-phone",
    "bob-laptop",
    "bob-phone",
    "carol",
    "dave",
    "mallory",
];
/// How many devices.
pub const DEVICES: usize = DEVICE_NAMES.len();
/// The stranger: no one shares anything with her or adds her contact card.
pub const MALLORY: usize = 6;
/// The devices that misbehave in `Attack` steps: a reader, the revoked device, the stranger.
pub const ATTACKERS: [usize; 3] = [4, 5, 6];
/// People: their devices (the first one creates the person's group).
pub const PEOPLE: [(&str, &[usize]); 4] = [
    ("alice", &[0, 1]),
    ("bob", &[2, 3]),
    ("carol", &[4]),
    ("dave", &[5]),
];
/// How many relays; relay 1 drops, reorders and duplicates what it serves and receives.
pub const RELAYS: usize = 2;
/// The relay that misbehaves.
pub const FAULTY_RELAY: usize = 1;

/// One end of a link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Node {
    Device(usize),
    Relay(usize),
}

/// Links: every device to both relays, and four peer-to-peer links. The first end syncs as
/// the client.
pub const LINKS: [(usize, Node); 18] = [
    (0, Node::Relay(0)),
    (1, Node::Relay(0)),
    (2, Node::Relay(0)),
    (3, Node::Relay(0)),
    (4, Node::Relay(0)),
    (5, Node::Relay(0)),
    (6, Node::Relay(0)),
    (0, Node::Relay(1)),
    (1, Node::Relay(1)),
    (2, Node::Relay(1)),
    (3, Node::Relay(1)),
    (4, Node::Relay(1)),
    (5, Node::Relay(1)),
    (6, Node::Relay(1)),
    (0, Node::Device(1)),
    (2, Node::Device(3)),
    (1, Node::Device(2)),
    (4, Node::Device(5)),
];

/// Names of the subjects the prologue creates, in creation order (their index in
/// `World::subjects`); later ones are documents created by steps.
pub const SUBJECT_NAMES: [&str; 9] = [
    "alice's group",
    "bob's group",
    "carol's group",
    "dave's group",
    "team",
    "folder",
    "diary",
    "plan",
    "bob-notes",
];

/// What the prologue (`World::new`) does before the steps, for traces.
pub const PROLOGUE: &str = "prologue: every device adds every contact card but mallory's; \
alice-laptop creates alice's group (alice-phone admin), bob-laptop bob's group (bob-phone \
admin), carol and dave their own; alice-laptop creates the team (alice admin, bob write, \
carol read, dave write), the folder (team write), the diary (alice's group admin), the plan \
(in the folder), writes the diary then the plan; bob-laptop creates bob-notes (bob's group \
admin) and writes it. Nothing is synced yet.";

/// The team (index into `World::subjects`).
pub const TEAM: usize = 4;
/// Alice's private diary (only her person group is a member).
pub const DIARY: usize = 6;
/// The person group of dave (index into `World::subjects`).
pub const DAVE_GROUP: usize = 3;

/// Agents a grant may name: the devices but the stranger, then every subject in creation
/// order.
pub const AGENT_DEVICES: usize = DEVICES - 1;

/// The step that makes dave the revoked device: alice-laptop removes dave's group from the
/// team.
pub fn revoke_dave() -> Step {
    Step::RevokeMember {
        by: 0,
        subject: TEAM,
        agent: AGENT_DEVICES + DAVE_GROUP,
    }
}

/// A legend for traces.
pub fn legend() -> String {
    let devices: Vec<String> = DEVICE_NAMES
        .iter()
        .enumerate()
        .map(|(i, n)| format!("{i}={n}"))
        .collect();
    let links: Vec<String> = LINKS
        .iter()
        .enumerate()
        .map(|(i, (a, b))| {
            let b = match b {
                Node::Device(d) => DEVICE_NAMES[*d].to_string(),
                Node::Relay(r) if *r == FAULTY_RELAY => format!("relay-{r}(faulty)"),
                Node::Relay(r) => format!("relay-{r}"),
            };
            format!("{i}={}->{b}", DEVICE_NAMES[*a])
        })
        .collect();
    format!(
        "devices: {}\nrelays: 0..{RELAYS} (attack target {DEVICES}+r)\nlinks: {}\nsubjects: {}; then documents created by steps",
        devices.join(" "),
        links.join(" "),
        SUBJECT_NAMES
            .iter()
            .enumerate()
            .map(|(i, n)| format!("{i}={n}"))
            .collect::<Vec<_>>()
            .join(" ")
    )
}
