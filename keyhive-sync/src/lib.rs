//! keyhive sync.
