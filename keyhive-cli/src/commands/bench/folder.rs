//! A folder revocation through `Replica`: one member loses a folder that holds `documents`
//! documents, so every one of them loses that member (issue 13's folder scaling curve).

use anyhow::{Context, Result};
use keyhive_core::capability::{Access, AgentId};
use keyhive_core::identity::Device;
use keyhive_sync::MemoryStore;
use keyhive_sync::replica::Replica;

use super::clock::Stopwatch;
use super::raw::micros;

/// What a folder revocation cost at one folder size (best of the rounds).
pub struct FolderRevocation {
    /// Documents in the folder.
    pub documents: usize,
    /// Microseconds to revoke the member from the folder.
    pub revoke_us: f64,
    /// Microseconds per document to write to each document after it (each write removes the
    /// member from the document's key agreement and re-keys).
    pub rekey_per_document_us: f64,
}

/// Members revoked one after the other (each followed by a write to every document); the
/// figures are the best of these rounds, so one scheduling stall on a shared machine does not
/// make them.
const ROUNDS: usize = 3;

/// Alice makes a folder with `documents` documents in it, grants `ROUNDS` members `read` on
/// the folder, writes once to each document (seating them), then, round by round, revokes one
/// member from the folder and writes to each document again.
pub fn measure(documents: usize) -> Result<FolderRevocation> {
    let mut alice = Replica::open(Device::generate(Some("alice".into())), MemoryStore::new())?;
    let members: Vec<Device> = (0..ROUNDS).map(|_| Device::generate(None)).collect();
    for m in &members {
        alice.add_contact(m.contact_card().context("a member's card")?)?;
    }
    let folder = alice.create_document()?;
    let mut docs = Vec::with_capacity(documents);
    for _ in 0..documents {
        let doc = alice.create_document()?;
        // REP-8: a grant to the folder by a device that holds `write` on it places the document.
        alice.grant(&doc.0, AgentId::Document(folder), Access::Read)?;
        docs.push(doc);
    }
    for m in &members {
        alice.grant(&folder.0, AgentId::Individual(m.id()), Access::Read)?;
    }
    let kib = vec![5u8; 1024];
    for doc in &docs {
        alice.write(*doc, &kib)?;
    }
    let (mut revoke_us, mut rekey_per_document_us) = (f64::MAX, f64::MAX);
    for gone in &members {
        let start = Stopwatch::one_core();
        alice.revoke(&folder.0, AgentId::Individual(gone.id()))?;
        revoke_us = revoke_us.min(micros(start.elapsed()));
        let start = Stopwatch::one_core();
        for doc in &docs {
            alice.write(*doc, &kib)?;
        }
        rekey_per_document_us =
            rekey_per_document_us.min(micros(start.elapsed()) / documents.max(1) as f64);
        for doc in &docs {
            let cgka = alice.cgka(doc).context("the document's key agreement")?;
            anyhow::ensure!(
                !cgka.members().contains(&gone.id()),
                "a revoked member is still seated in a document of the folder after the re-key"
            );
        }
    }
    Ok(FolderRevocation {
        documents,
        revoke_us,
        rekey_per_document_us,
    })
}
