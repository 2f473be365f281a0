//! A local-first Automerge app on keyhive: devices share one Automerge document through a
//! relay on loopback that only ever holds ciphertext.
//!
//! - Alice and Bob edit concurrently and converge to equal Automerge heads.
//! - Carol, a writer, edits offline while Alice (offline too) revokes her. Bob applies Carol's
//!   edit first; when the revocation reaches him he is told the edit became invalid and
//!   rebuilds without it. Carol cannot read what is written after her removal.
//!
//! The app uses only the [`Repo`] handle and its events: it writes each Automerge change as a
//! keyhive change, applies every change an event says is readable, and rebuilds when an event
//! says a change it applied became invalid. No polling.
//!
//! Run it with `cargo run -p keyhive-sync --example automerge_two_devices`; CI runs it as a test.

use std::error::Error;
use std::sync::Arc;
use std::time::Duration;

use automerge::transaction::Transactable;
use automerge::{ActorId, AutoCommit, ChangeHash, ROOT, ReadDoc};
use keyhive_core::Hash;
use keyhive_core::capability::{Access, AgentId};
use keyhive_core::crypto::signing::SigningKey;
use keyhive_core::identity::{Device, DocumentId};
use keyhive_sync::capability_policy::CapabilityPolicy;
use keyhive_sync::replica::{ChangeStatus, Event, Subscription};
use keyhive_sync::{MemoryStore, Relay, RelayConfig, RelayHandle, Repo};

type Result<T> = std::result::Result<T, Box<dyn Error + Send + Sync>>;

/// Longest wait for an event (a relay on loopback delivers in milliseconds).
const PATIENCE: Duration = Duration::from_secs(20);

/// One device running the app: its keyhive handle, its events and its Automerge document.
struct App {
    repo: Repo,
    events: Subscription,
    doc: DocumentId,
    automerge: AutoCommit,
    /// keyhive changes applied to `automerge`.
    applied: Vec<Hash>,
}

impl App {
    fn new(name: &str) -> Result<App> {
        let repo = Repo::in_memory(Device::generate(Some(name.into())))?;
        let events = repo.subscribe();
        let automerge = AutoCommit::new().with_actor(ActorId::from(repo.id().0.as_bytes()));
        Ok(App {
            repo,
            events,
            doc: DocumentId(SigningKey::generate().public_key()),
            automerge,
            applied: Vec::new(),
        })
    }

    /// Makes an Automerge change and writes it as one keyhive change (encrypted, signed,
    /// pushed by the background link at once).
    fn edit(&mut self, key: &str, value: &str) -> Result<Hash> {
        let heads = self.automerge.get_heads();
        self.automerge.put(ROOT, key, value)?;
        self.automerge.commit();
        let change = self
            .repo
            .write(self.doc, &self.automerge.save_after(&heads))?;
        self.applied.push(change);
        Ok(change)
    }

    /// Handles events until `done` holds: applies readable valid changes, rebuilds when a
    /// change of the document changed validity or events were missed. Fails when no event
    /// comes for [`PATIENCE`].
    async fn until(&mut self, mut done: impl FnMut(&App) -> bool) -> Result<()> {
        while !done(self) {
            let next = tokio::time::timeout(PATIENCE, self.events.next_event());
            let event = next.await?.ok_or("replica closed")?;
            match event {
                Event::Readable {
                    document,
                    change,
                    valid: true,
                    ..
                } if document == self.doc => self.apply(change)?,
                Event::ValidityChanged {
                    subject,
                    content: true,
                    ..
                } if subject == self.doc.0 => self.rebuild()?,
                Event::Lagged { .. } => self.rebuild()?,
                _ => {}
            }
        }
        Ok(())
    }

    fn apply(&mut self, change: Hash) -> Result<()> {
        if !self.applied.contains(&change) {
            self.automerge
                .load_incremental(&self.repo.read(self.doc, &change)?)?;
            self.applied.push(change);
        }
        Ok(())
    }

    /// Rebuilds the Automerge document from the valid changes this device can read.
    fn rebuild(&mut self) -> Result<()> {
        let actor = self.automerge.get_actor().clone();
        self.automerge = AutoCommit::new().with_actor(actor);
        self.applied.clear();
        for c in self.repo.changes(self.doc)? {
            if c.status == ChangeStatus::Valid && c.length.is_some() {
                self.apply(c.op)?;
            }
        }
        Ok(())
    }

    fn get(&self, key: &str) -> Option<String> {
        let (value, _) = self.automerge.get(ROOT, key).ok()??;
        value.to_str().map(str::to_owned)
    }

    fn heads(&mut self) -> Vec<ChangeHash> {
        let mut heads = self.automerge.get_heads();
        heads.sort();
        heads
    }
}

/// What the run ended with (checked by the test below).
#[derive(Debug)]
pub struct Outcome {
    /// Alice's and Bob's final document, as key/value pairs.
    pub alice: Vec<(String, String)>,
    /// Bob's.
    pub bob: Vec<(String, String)>,
    /// Whether Alice and Bob had equal Automerge heads after their concurrent edits, and at
    /// the end.
    pub converged: [bool; 2],
    /// Whether Bob had applied Carol's edit before the revocation reached him.
    pub revoked_edit_applied_first: bool,
    /// Whether Carol's revoked edit is in Bob's document after the revocation reached him.
    pub revoked_edit_kept: bool,
    /// Whether Carol could read the change written after her removal.
    pub carol_reads_after_removal: bool,
}

async fn start_relay() -> Result<RelayHandle> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let policy = Arc::new(CapabilityPolicy::new([]));
    let config = RelayConfig::new(SigningKey::generate());
    Ok(Relay::serve(
        listener,
        Arc::new(MemoryStore::new()),
        policy,
        config,
    )?)
}

/// The whole story; returns what each device ended with.
pub async fn run() -> Result<Outcome> {
    let relay = start_relay().await?;
    let (url, relay_id) = (relay.url(), Some(relay.id()));
    let (mut alice, mut bob, mut carol) =
        (App::new("alice")?, App::new("bob")?, App::new("carol")?);

    // Alice creates the document and shares it (contact cards travel out of band).
    let doc = alice.repo.create_document()?;
    for app in [&mut alice, &mut bob, &mut carol] {
        app.doc = doc;
    }
    for other in [&bob, &carol] {
        alice.repo.add_contact(other.repo.contact_card()?)?;
        let agent = AgentId::Individual(other.repo.id());
        alice.repo.grant(&doc.0, agent, Access::Write)?;
    }
    let first = alice.edit("title", "groceries")?;
    for app in [&alice, &bob, &carol] {
        app.repo.connect(url.clone(), relay_id).await;
        app.repo.sync().await?;
    }
    bob.until(|b| b.applied.contains(&first)).await?;
    carol.until(|c| c.applied.contains(&first)).await?;

    // Concurrent edits: each writes before seeing the other's, then both converge.
    let a = alice.edit("alice", "milk")?;
    let b = bob.edit("bob", "eggs")?;
    alice.until(|x| x.applied.contains(&b)).await?;
    bob.until(|x| x.applied.contains(&a)).await?;
    let converged_concurrently = alice.heads() == bob.heads();

    // Alice goes offline and revokes Carol; Carol, offline too, edits concurrently.
    alice.repo.shutdown().await?;
    carol.repo.shutdown().await?;
    let carol_id = AgentId::Individual(carol.repo.id());
    alice.repo.revoke(&doc.0, carol_id)?;
    let edit = carol.edit("carol", "chocolate")?;
    // Carol comes back first: Bob applies her edit, it is valid as far as he knows.
    carol.repo.sync_with(&url, relay_id).await?;
    bob.until(|x| x.applied.contains(&edit)).await?;
    let revoked_edit_applied_first = bob.get("carol").as_deref() == Some("chocolate");
    // Alice comes back: the revocation reaches Bob, who is told and rebuilds without it.
    alice.repo.connect(url.clone(), relay_id).await;
    alice.repo.sync().await?;
    bob.until(|x| !x.applied.contains(&edit)).await?;
    let revoked_edit_kept = bob.get("carol").is_some();

    // Alice writes after the removal: Bob reads it, Carol cannot.
    let after = alice.edit("alice", "oat milk")?;
    bob.until(|x| x.applied.contains(&after)).await?;
    carol.repo.sync_with(&url, relay_id).await?;
    let carol_reads_after_removal = carol
        .repo
        .changes(doc)?
        .iter()
        .any(|c| c.op == after && c.length.is_some());
    let converged = [converged_concurrently, alice.heads() == bob.heads()];

    let entries = |app: &App| -> Vec<(String, String)> {
        ["title", "alice", "bob", "carol"]
            .iter()
            .filter_map(|k| app.get(k).map(|v| (k.to_string(), v)))
            .collect()
    };
    let outcome = Outcome {
        alice: entries(&alice),
        bob: entries(&bob),
        converged,
        revoked_edit_applied_first,
        revoked_edit_kept,
        carol_reads_after_removal,
    };
    for app in [&alice, &bob] {
        app.repo.shutdown().await?;
    }
    relay.shutdown().await?;
    Ok(outcome)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let outcome = run().await?;
    println!("Alice: {:?}", outcome.alice);
    println!("Bob:   {:?}", outcome.bob);
    println!(
        "equal Automerge heads after the concurrent edits and at the end: {:?}",
        outcome.converged
    );
    println!(
        "Carol's revoked edit kept by Bob: {}; Carol reads after her removal: {}",
        outcome.revoked_edit_kept, outcome.carol_reads_after_removal
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_example_converges_and_drops_the_revoked_edit() {
        let outcome = super::run().await.expect("the example runs");
        let expected: Vec<(String, String)> = [
            ("title", "groceries"),
            ("alice", "oat milk"),
            ("bob", "eggs"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(outcome.alice, expected);
        assert_eq!(outcome.bob, expected);
        assert_eq!(outcome.converged, [true, true]);
        assert!(outcome.revoked_edit_applied_first);
        assert!(!outcome.revoked_edit_kept);
        assert!(!outcome.carol_reads_after_removal);
    }
}
