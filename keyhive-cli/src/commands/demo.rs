//! `keyhive demo`: the whole story in one process, with an embedded relay on loopback and
//! temporary homes, printed step by step.

use std::path::Path;

use anyhow::{Context, Result, bail};
use keyhive_core::capability::{Access, AgentId};
use keyhive_core::identity::{ContactCard, Device, DocumentId};
use serde_json::json;

use super::content::{latest_file, put_file};
use super::subjects::create_document;
use super::sync::sync_session;
use crate::contacts::ContactBook;
use crate::device_store;
use crate::home::Home;
use crate::output::Output;
use crate::session::Session;
use keyhive_sync::record::MetadataKind;

const V1: &str = "v1: launch plan - do not share outside the team";
const V2: &str = "v2: launch plan, edited by Carol";
const V3: &str = "v3: written after Bob was removed";

struct Demo {
    out: Output,
    url: String,
    steps: Vec<serde_json::Value>,
}

impl Demo {
    fn say(&mut self, who: &str, what: String) {
        if !self.out.json {
            println!("[{who:>5}] {what}");
        }
        self.steps.push(json!({"who": who, "what": what}));
    }

    fn open(&self, home: &Home) -> Result<Session> {
        Session::open(home.clone(), Output { json: true })
    }

    async fn sync(&mut self, who: &str, s: Session) -> Result<Session> {
        let (s, summary) = sync_session(s, std::slice::from_ref(&self.url)).await?;
        crate::commands::sync::all_synced(&summary)?;
        let (pulled, pushed) = summary
            .iter()
            .fold((0, 0), |(a, b), r| (a + r.pulled, b + r.pushed));
        self.say(
            who,
            format!("sync: pulled {pulled} item(s), pushed {pushed}"),
        );
        Ok(s)
    }
}

fn read_latest(s: &Session, doc: DocumentId) -> Result<Option<String>> {
    let mut bytes = Vec::new();
    Ok(latest_file(s, doc, &mut bytes)?.map(|_| String::from_utf8_lossy(&bytes).into_owned()))
}

fn write_text(s: &mut Session, doc: DocumentId, dir: &Path, text: &str) -> Result<()> {
    let path = dir.join("edit.txt");
    std::fs::write(&path, text)?;
    put_file(s, doc, &path)?;
    s.save()
}

/// Runs the demo.
pub fn run(out: Output) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run_async(out))
}

async fn run_async(out: Output) -> Result<()> {
    let tmp = tempfile::tempdir().context("cannot create a temporary directory")?;
    let relay_dir = tmp.path().join("relay");
    let relay = super::relay::start(
        "127.0.0.1:0",
        &relay_dir,
        &[],
        &super::relay::Upstream::default(),
        None,
    )
    .await?;
    let mut demo = Demo {
        out,
        url: relay.handle.url(),
        steps: Vec::new(),
    };
    demo.say(
        "relay",
        format!("listening on {} (data in a temporary directory)", demo.url),
    );

    let names = ["alice", "bob", "carol"];
    let homes: Vec<Home> = names
        .iter()
        .map(|n| Home::resolve(Some(tmp.path().join(n))))
        .collect::<Result<_>>()?;
    let mut cards = Vec::new();
    for (name, home) in names.iter().zip(&homes) {
        let device = Device::generate(Some(capitalise(name)));
        cards.push(ContactCard::to_line(&device.contact_card()?));
        demo.say(name, format!("created device {}", device.id()));
        device_store::create(home, device)?;
    }
    for (i, home) in homes.iter().enumerate() {
        let mut book = ContactBook::load(home)?;
        for (j, card) in cards.iter().enumerate() {
            if i != j {
                book.add(card, None)?;
            }
        }
        book.save(home)?;
    }
    demo.say(
        "all",
        "exchanged contact cards (one signed line each)".into(),
    );
    let (alice_home, bob_home, carol_home) = (&homes[0], &homes[1], &homes[2]);

    // Alice shares a folder.
    let mut alice = demo.open(alice_home)?;
    let folder = create_document(&mut alice, "Team", MetadataKind::Folder, None)?;
    let doc = create_document(
        &mut alice,
        "plan.txt",
        MetadataKind::Document,
        Some(&folder.to_string()),
    )?;
    write_text(&mut alice, doc, tmp.path(), V1)?;
    let bob_agent = alice.agent("Bob")?;
    let carol_agent = alice.agent("Carol")?;
    alice.replica.grant(&folder.0, bob_agent, Access::Read)?;
    alice.replica.grant(&folder.0, carol_agent, Access::Write)?;
    alice.save()?;
    demo.say(
        "alice",
        "created folder Team with plan.txt; granted Bob read and Carol write on Team".into(),
    );
    let alice = demo.sync("alice", alice).await?;
    drop(alice);

    // Bob and Carol read; Carol edits.
    let bob = demo.sync("bob", demo.open(bob_home)?).await?;
    let text = read_latest(&bob, doc)?.context("Bob could not read plan.txt")?;
    demo.say("bob", format!("reads plan.txt: {text:?}"));
    drop(bob);
    let mut carol = demo.sync("carol", demo.open(carol_home)?).await?;
    write_text(&mut carol, doc, tmp.path(), V2)?;
    demo.say("carol", "edits plan.txt".into());
    drop(demo.sync("carol", carol).await?);
    let bob = demo.sync("bob", demo.open(bob_home)?).await?;
    demo.say(
        "bob",
        format!(
            "reads plan.txt: {:?}",
            read_latest(&bob, doc)?.unwrap_or_default()
        ),
    );
    drop(bob);

    // Alice revokes Bob; Carol, who learns of it, writes next.
    let mut alice = demo.sync("alice", demo.open(alice_home)?).await?;
    alice
        .replica
        .revoke(&folder.0, AgentId::Individual(bob_id(&alice)?))?;
    alice.save()?;
    demo.say("alice", "revokes Bob's access to Team".into());
    drop(demo.sync("alice", alice).await?);
    let mut carol = demo.sync("carol", demo.open(carol_home)?).await?;
    write_text(&mut carol, doc, tmp.path(), V3)?;
    demo.say(
        "carol",
        "writes plan.txt again (the key is rotated first: Bob is out)".into(),
    );
    drop(demo.sync("carol", carol).await?);
    let bob = demo.sync("bob", demo.open(bob_home)?).await?;
    let seen = read_latest(&bob, doc)?.unwrap_or_default();
    if seen == V3 {
        bail!("demo failed: Bob read a change written after his removal");
    }
    demo.say(
        "bob",
        format!("the newest change he can read is still {seen:?}: the new one is beyond him"),
    );
    drop(bob);

    relay.handle.shutdown().await?;
    let leaks = scan_for(&relay_dir, &[V1, V2, V3])?;
    if !leaks.is_empty() {
        bail!("demo failed: the relay's files contain plaintext: {leaks:?}");
    }
    demo.say(
        "relay",
        "scanned every byte of the relay's data directory: no plaintext found".into(),
    );
    if out.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({"steps": demo.steps, "ok": true}))?
        );
    }
    Ok(())
}

fn bob_id(alice: &Session) -> Result<keyhive_core::identity::IndividualId> {
    alice
        .contacts
        .find("Bob")
        .map(|c| c.id)
        .context("Bob is not in Alice's contacts")
}

fn capitalise(name: &str) -> String {
    let mut chars = name.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().collect::<String>() + chars.as_str())
        .unwrap_or_default()
}

/// Every file under `dir` whose bytes contain one of `needles`.
pub fn scan_for(dir: &Path, needles: &[&str]) -> Result<Vec<String>> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        for entry in std::fs::read_dir(&current)? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                stack.push(entry.path());
                continue;
            }
            let bytes = std::fs::read(entry.path())?;
            for needle in needles {
                if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                    found.push(format!("{} contains {needle:?}", entry.path().display()));
                }
            }
        }
    }
    Ok(found)
}
