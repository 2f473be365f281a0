//! One module per command family.

pub mod access;
pub mod bench;
pub mod contact;
pub mod content;
pub mod demo;
pub mod folder;
pub mod identity;
pub mod invite;
pub mod relay;
pub mod subjects;
pub mod sync;
