//! Typed identifiers. Every id is an Ed25519 public key, so it is self-certifying: a device's
//! id verifies its signatures; a group's or document's id verifies its genesis op.

use core::fmt;
use core::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::crypto::hash::ParseHexError;
use crate::crypto::signing::PublicKey;

macro_rules! public_key_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub struct $name(pub PublicKey);

        impl $name {
            /// The underlying public key.
            pub fn public_key(&self) -> &PublicKey {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.0)
            }
        }

        impl FromStr for $name {
            type Err = ParseHexError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                s.parse().map($name)
            }
        }
    };
}

public_key_id!(
    /// A device: the Ed25519 public key it signs with.
    IndividualId
);
public_key_id!(
    /// A group (person, team, folder): the public key that signed its genesis.
    GroupId
);
public_key_id!(
    /// A document: the public key that signed its genesis.
    DocumentId
);
