//! `keyhive contact export|add|list|remove|rename`.

use anyhow::{Context, Result, bail};
use keyhive_core::identity::ContactCard;
use serde_json::json;

use crate::contacts::ContactBook;
use crate::device_store;
use crate::home::Home;
use crate::output::{Output, print_table};

/// Prints this device's card as one line.
pub fn export(home: &Home, out: Output) -> Result<()> {
    let device = device_store::load_device(home)?;
    let card = ContactCard::to_line(&device.contact_card()?);
    // PERSON-2: a device linked into a person group sends the group with its card.
    let person = crate::person::load(home)?;
    let line = match person {
        Some(group) => crate::person::line(group, &card),
        None => card,
    };
    out.emit(
        &json!({"id": device.id().to_string(), "card": line, "person": person.map(|g| g.to_string())}),
        || println!("{line}"),
    )
}

/// Adds a contact from a line or a file holding it.
pub fn add(home: &Home, out: Output, card: &str, name: Option<String>) -> Result<()> {
    let trimmed = card.trim_start();
    let line = if trimmed.starts_with(keyhive_core::identity::contact_card::CARD_PREFIX)
        || trimmed.starts_with(crate::person::PERSON_PREFIX)
    {
        card.to_owned()
    } else {
        std::fs::read_to_string(card).with_context(|| {
            format!("{card:?} is neither a keyhive-card1: line nor a readable file")
        })?
    };
    let mut book = ContactBook::load(home)?;
    let known: Vec<_> = book.all().iter().map(|c| (c.id, c.name.clone())).collect();
    let contact = book.add(&line, name)?;
    // The same device again (a newer card, a person line, another name): one contact, updated.
    let was = known
        .into_iter()
        .find(|(id, _)| *id == contact.id)
        .map(|(_, name)| name);
    if contact.id == crate::device_store::load_device(home)?.id() {
        bail!(
            "this is this device's own card: give it to others (`keyhive contact export`); this device is `me` here"
        );
    }
    book.save(home)?;
    out.emit(
        &json!({"name": contact.name, "id": contact.id.to_string(), "person": contact.person.map(|g| g.to_string()), "replaced": was}),
        || {
            let done = match &was {
                Some(old) if *old == contact.name => format!("Updated contact {}", contact.name),
                Some(old) => format!("Updated contact {old}, now named {}", contact.name),
                None => format!("Added contact {}", contact.name),
            };
            match contact.person {
                Some(group) => println!(
                    "{done} ({}); grants to {} reach every device of their person group {group}",
                    contact.id, contact.name
                ),
                None => println!("{done} ({})", contact.id),
            }
        },
    )
}

/// Lists contacts.
pub fn list(home: &Home, out: Output) -> Result<()> {
    let book = ContactBook::load(home)?;
    let rows: Vec<_> = book
        .all()
        .iter()
        .map(|c| json!({"name": c.name, "id": c.id.to_string()}))
        .collect();
    out.emit(&rows, || {
        print_table(
            &["name", "id"],
            book.all()
                .iter()
                .map(|c| vec![c.name.clone(), c.id.to_string()])
                .collect(),
        )
    })
}

/// Forgets a contact. Its card stays in the store (ops it signed still verify) and grants to
/// it stay until revoked.
pub fn remove(home: &Home, out: Output, contact: &str) -> Result<()> {
    let mut book = ContactBook::load(home)?;
    let removed = book.remove(contact)?;
    book.save(home)?;
    out.emit(
        &json!({"name": removed.name, "id": removed.id.to_string(), "removed": true}),
        || {
            println!(
                "Removed contact {} ({}); grants to it stay until `keyhive revoke`",
                removed.name, removed.id
            )
        },
    )
}

/// Renames a contact.
pub fn rename(home: &Home, out: Output, contact: &str, name: String) -> Result<()> {
    let mut book = ContactBook::load(home)?;
    let old = book.rename(contact, name.clone())?;
    book.save(home)?;
    out.emit(&json!({"old": old, "name": name}), || {
        println!("Renamed contact {old} to {name}")
    })
}
