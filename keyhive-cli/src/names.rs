//! Local names for groups (which have no content to carry a shared name).

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use keyhive_core::crypto::signing::PublicKey;

use crate::home::Home;

/// File holding local group names.
pub const NAMES_FILE: &str = "names.json";

/// Group id -> local name.
#[derive(Debug, Default)]
pub struct LocalNames {
    names: BTreeMap<String, String>,
}

impl LocalNames {
    /// Loads the names file (absent = empty).
    pub fn load(home: &Home) -> Result<Self> {
        let Some(bytes) = home.read_optional(NAMES_FILE)? else {
            return Ok(Self::default());
        };
        let names = serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is damaged", home.path(NAMES_FILE).display()))?;
        Ok(LocalNames { names })
    }

    /// Saves atomically.
    pub fn save(&self, home: &Home) -> Result<()> {
        home.write_atomic(NAMES_FILE, &serde_json::to_vec_pretty(&self.names)?, false)
    }

    /// Remembers a name.
    pub fn insert(&mut self, id: PublicKey, name: String) {
        self.names.insert(id.to_string(), name);
    }

    /// The name of `id`.
    pub fn get(&self, id: &PublicKey) -> Option<&str> {
        self.names.get(&id.to_string()).map(String::as_str)
    }

    /// Ids with this name.
    pub fn find(&self, name: &str) -> Vec<PublicKey> {
        self.names
            .iter()
            .filter(|(_, n)| n.as_str() == name)
            .filter_map(|(id, _)| id.parse().ok())
            .collect()
    }
}
