//! The capability graph answering the CGKA's questions (`specs/cgka.md` CGKA-16..18).
//!
//! REP-1: a device may seat another device in a document's key agreement iff both hold `read`
//! or more on the document and the leaf key is the seated device's seat key (the X25519 form
//! of its device key, CGKA-34: no contact card needed) or a prekey it signed (its contact card;
//! what ops made before CGKA-34 seat with).
//! Seating is not an escalation: the capability graph already entitles the device to the keys;
//! requiring only `read` of the adder lets any reader (not only an admin) bring a newly granted
//! device in, so access never waits for an admin to come online. A `pull`-only peer holds no
//! `read` and so can neither seat itself nor be seated.
//!
//! Seating is judged historically (the devices held `read` when the seat was made, even if it
//! was revoked since): a revocation does not erase a seat from the key agreement's history but
//! is carried out by an explicit remove op and a re-key (REP-3), so every replica, whenever it
//! replays, sees who could know which epoch. Updates and fills are received from devices that
//! held `read` too (CGKA-18; replay applies them only while their issuer is seated); removes
//! require `read` now (`specs/cgka.md` CGKA-17).

use keyhive_core::capability::{Access, AgentId, Checker};
use keyhive_core::cgka::CgkaAuthority;
use keyhive_core::crypto::prekey::PrekeyPublic;
use keyhive_core::crypto::signing::PublicKey;
use keyhive_core::identity::IndividualId;

use super::directory::Directory;

/// [`CgkaAuthority`] for one document, backed by the checker and the prekey directory.
pub struct GraphAuthority<'a> {
    /// The capability checker.
    pub checker: &'a Checker,
    /// Known contact cards (signed prekeys).
    pub directory: &'a Directory,
    /// The document.
    pub document: PublicKey,
}

impl GraphAuthority<'_> {
    fn holds(&self, device: &IndividualId, level: Access) -> bool {
        self.checker
            .can(AgentId::Individual(*device), level, &self.document)
    }

    /// Held `read` now, or held it through a path that has since been revoked.
    fn held_read(&self, device: &IndividualId) -> bool {
        crate::admission::held_read(self.checker, device, &self.document)
    }
}

impl CgkaAuthority for GraphAuthority<'_> {
    fn may_add(&self, adder: &IndividualId, device: &IndividualId, prekey: &PrekeyPublic) -> bool {
        self.held_read(adder)
            && self.held_read(device)
            && (self.directory.has_prekey(device, prekey)
                || self.directory.seat_key(device) == Some(*prekey))
    }

    /// CGKA-34: every device that held `read` may be seated on its seat key (the CGKA has
    /// checked that it has one), so nothing is converted again.
    fn may_seat(&self, adder: &IndividualId, device: &IndividualId) -> bool {
        self.held_read(adder) && self.held_read(device)
    }

    /// CGKA-17: the remover holds `read` now (a stranger never may remove), and removes
    /// itself, a device that no longer holds `read`, or is an admin.
    fn may_remove(&self, remover: &IndividualId, device: &IndividualId) -> bool {
        self.holds(remover, Access::Read)
            && (remover == device
                || !self.holds(device, Access::Read)
                || self.holds(remover, Access::Admin))
    }

    fn is_member(&self, device: &IndividualId) -> bool {
        self.holds(device, Access::Read)
    }

    /// CGKA-18, REP-4: an update or fill is received from a device that holds or held `read`
    /// (ADM-5), as admission and relays judge it. "Holds `read` now" made the op set depend on
    /// arrival order: an update made while its issuer held `read` (the epoch of a valid
    /// change) was applied by replicas that got it before a later revocation and refused by
    /// those that got it after, which then could never read that change (seed 210). Replay
    /// still applies an update only if its issuer is seated (CGKA-15), so a removed device's
    /// updates stay inert.
    fn may_update(&self, issuer: &IndividualId) -> bool {
        self.held_read(issuer)
    }

    /// CGKA-34: the device's seat key; its card's prekey only for a device key with no X25519
    /// form (which then cannot be seated on a card either: such a key signs nothing).
    fn prekey_of(&self, device: &IndividualId) -> Option<PrekeyPublic> {
        self.directory
            .seat_key(device)
            .or_else(|| self.directory.prekey_of(device))
    }

    /// CGKA-32: `may_add` is `ever_granted` twice (ADM-5: positive answers only ever become
    /// false when a subject becomes conflicted, CAP-5) and the seat key (a function of the
    /// device) or a prekey on a card (taken away only when the card is replaced). So while
    /// neither count moves, an allowed add stays allowed.
    fn allowed_adds_stamp(&self) -> Option<[u64; 2]> {
        Some([
            self.checker.conflicted_count(),
            self.directory.replacements(),
        ])
    }
}
