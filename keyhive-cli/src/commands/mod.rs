//! One module per command family.

pub mod access;
pub mod backup;
pub mod bench;
pub mod contact;
pub mod content;
pub mod demo;
pub mod device;
pub mod folder;
pub mod folder_ls;
pub mod folder_pull;
pub mod identity;
pub mod invite;
pub mod relay;
pub mod status;
pub mod subjects;
pub mod sync;
pub mod sync_news;
pub mod tree;
