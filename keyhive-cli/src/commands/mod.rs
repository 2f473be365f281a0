//! One module per command family.

pub mod contact;
pub mod identity;
