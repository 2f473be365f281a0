//! Authorisation of CGKA ops against the capability graph (`specs/cgka.md` §5, CGKA-16..18).
//!
//! The CGKA does not know the capability graph; it asks a [`CgkaAuthority`]. The capability
//! checker implements this trait; [`StaticAuthority`] is an in-memory one for tests and tools.

use std::collections::{BTreeMap, BTreeSet};

use crate::crypto::prekey::PrekeyPublic;
use crate::identity::IndividualId;

/// The questions the CGKA asks the capability graph of its document.
pub trait CgkaAuthority {
    /// May `adder` seat `device` with leaf key `prekey`? True only if `adder` may change
    /// membership (`admin`), `device` holds `read` or more, and `prekey` is `device`'s seat
    /// key ([`PrekeyPublic::of_device`], CGKA-34: no card needed) or one of its prekeys signed
    /// by its device key (CGKA-16).
    fn may_add(&self, adder: &IndividualId, device: &IndividualId, prekey: &PrekeyPublic) -> bool;
    /// CGKA-34: may `adder` seat `device` on its seat key ([`PrekeyPublic::of_device`],
    /// which the CGKA has checked exists)? The same question as [`CgkaAuthority::may_add`]
    /// with the seat key, which is the default; an authority that accepts every device's seat
    /// key may skip converting it again.
    fn may_seat(&self, adder: &IndividualId, device: &IndividualId) -> bool {
        PrekeyPublic::of_device(&device.0).is_some_and(|key| self.may_add(adder, device, &key))
    }
    /// May `remover` remove `device`? Only if `remover` holds `read` now (so a stranger never
    /// may), and it is an admin, is `device` itself, or `device` no longer holds `read` (any
    /// reader may act on a revocation) (CGKA-17). Whether the remove changes anything is
    /// checked separately (CGKA-26).
    fn may_remove(&self, remover: &IndividualId, device: &IndividualId) -> bool;
    /// Does `device` currently hold `read` or more? (CGKA-18, CGKA-23)
    fn is_member(&self, device: &IndividualId) -> bool;
    /// CGKA-18: may an update or fill issued by `issuer` be received? The default is
    /// [`CgkaAuthority::is_member`]. An authority whose answer must not depend on when the op
    /// arrives answers whether `issuer` ever held `read` (the device API's does, ADM-5):
    /// replay applies an update only if its issuer is seated, so this check only keeps
    /// strangers' ops out of the DAG.
    fn may_update(&self, issuer: &IndividualId) -> bool {
        self.is_member(issuer)
    }
    /// The leaf key to seat `device` with, if it has one: its seat key (CGKA-34), or a signed
    /// prekey.
    fn prekey_of(&self, device: &IndividualId) -> Option<PrekeyPublic>;
    /// CGKA-32: a stamp that vouches for [`CgkaAuthority::may_add`]. While the stamp stays the
    /// same `Some`, every add this authority allowed stays allowed (a refused add may become
    /// allowed), so [`crate::cgka::Cgka::refresh`] asks again only removes and refused adds.
    /// `None`, the default, vouches for nothing: every add is asked again.
    fn allowed_adds_stamp(&self) -> Option<[u64; 2]> {
        None
    }
}

/// An in-memory authority: a set of admins and the readers with their prekeys. Every reader
/// may also be seated on its device key (CGKA-34).
#[derive(Clone, Debug, Default)]
pub struct StaticAuthority {
    admins: BTreeSet<IndividualId>,
    readers: BTreeMap<IndividualId, BTreeSet<PrekeyPublic>>,
}

impl StaticAuthority {
    /// An authority with no one in it.
    pub fn new() -> Self {
        Self::default()
    }

    /// Grants `read` to `device` with the given prekey (adds the prekey if already a reader).
    pub fn grant_read(&mut self, device: IndividualId, prekey: PrekeyPublic) {
        self.readers.entry(device).or_default().insert(prekey);
    }

    /// Grants `read` to `device` with no card prekey: it can be seated on its device key only
    /// (CGKA-34).
    pub fn grant_read_device(&mut self, device: IndividualId) {
        self.readers.entry(device).or_default();
    }

    /// Grants `admin` (which implies `read`) to `device`.
    pub fn grant_admin(&mut self, device: IndividualId, prekey: PrekeyPublic) {
        self.grant_read(device, prekey);
        self.admins.insert(device);
    }

    /// Revokes every access of `device`.
    pub fn revoke(&mut self, device: &IndividualId) {
        self.readers.remove(device);
        self.admins.remove(device);
    }

    /// The current readers (the CGKA's target membership), each with its seat key (CGKA-34),
    /// or a prekey when its device key has none.
    pub fn members(&self) -> BTreeMap<IndividualId, PrekeyPublic> {
        self.readers
            .keys()
            .filter_map(|d| self.prekey_of(d).map(|k| (*d, k)))
            .collect()
    }
}

impl CgkaAuthority for StaticAuthority {
    fn may_add(&self, adder: &IndividualId, device: &IndividualId, prekey: &PrekeyPublic) -> bool {
        self.admins.contains(adder)
            && self.readers.get(device).is_some_and(|keys| {
                keys.contains(prekey) || PrekeyPublic::of_device(&device.0) == Some(*prekey)
            })
    }

    fn may_remove(&self, remover: &IndividualId, device: &IndividualId) -> bool {
        // CGKA-17: a reader that is an admin, the device itself, or acts on a device that has
        // lost `read` (so any reader that learns of a revocation can act on it).
        self.is_member(remover)
            && (self.admins.contains(remover) || remover == device || !self.is_member(device))
    }

    fn is_member(&self, device: &IndividualId) -> bool {
        self.readers.contains_key(device)
    }

    fn prekey_of(&self, device: &IndividualId) -> Option<PrekeyPublic> {
        let keys = self.readers.get(device)?;
        PrekeyPublic::of_device(&device.0).or_else(|| keys.iter().next().copied())
    }
}
