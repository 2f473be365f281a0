//! One module per command family.

pub mod access;
pub mod contact;
pub mod content;
pub mod folder;
pub mod identity;
pub mod subjects;
