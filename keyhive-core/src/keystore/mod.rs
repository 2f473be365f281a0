//! Key store.
