//! Identities: devices (individuals), self-certifying group and document ids, contact cards.

pub mod contact_card;
pub mod device;
pub mod genesis;
pub mod ids;

pub use contact_card::{ContactCard, ContactCardError};
pub use device::{Device, Individual};
pub use genesis::{Genesis, SubjectKind};
pub use ids::{DocumentId, GroupId, IndividualId};
