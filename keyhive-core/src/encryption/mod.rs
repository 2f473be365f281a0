//! Causal encryption.
