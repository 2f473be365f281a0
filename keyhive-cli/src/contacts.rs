//! The contact book: verified contact cards remembered under a local name.

use anyhow::{Context, Result, bail};
use keyhive_core::identity::{ContactCard, GroupId, IndividualId};
use serde::{Deserialize, Serialize};

use crate::home::Home;

/// File holding the contact book.
pub const CONTACTS_FILE: &str = "contacts.json";

/// One remembered contact.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Contact {
    /// Local name for the contact.
    pub name: String,
    /// The device id.
    pub id: IndividualId,
    /// The contact card line, re-verified on every load.
    pub card: String,
    /// PERSON-3: the group of the person's devices, when the card came in a person line;
    /// grants to the contact go to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub person: Option<GroupId>,
}

/// All contacts, sorted by name.
#[derive(Debug, Default)]
pub struct ContactBook {
    contacts: Vec<Contact>,
}

impl ContactBook {
    /// Loads the book, re-verifying every card (the file is untrusted input).
    pub fn load(home: &Home) -> Result<Self> {
        let Some(bytes) = home.read_optional(CONTACTS_FILE)? else {
            return Ok(ContactBook::default());
        };
        let contacts: Vec<Contact> = serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is damaged", home.path(CONTACTS_FILE).display()))?;
        for c in &contacts {
            let card = ContactCard::from_line(&c.card)
                .with_context(|| format!("stored card of contact {:?} is invalid", c.name))?;
            if card.id() != c.id {
                bail!(
                    "stored card of contact {:?} belongs to another device",
                    c.name
                );
            }
        }
        Ok(ContactBook { contacts })
    }

    /// Saves the book atomically.
    pub fn save(&self, home: &Home) -> Result<()> {
        home.write_atomic(
            CONTACTS_FILE,
            &serde_json::to_vec_pretty(&self.contacts)?,
            false,
        )
    }

    /// Adds or updates a contact from a card line or a person line (PERSON-2); returns the
    /// stored entry.
    pub fn add(&mut self, line: &str, name: Option<String>) -> Result<Contact> {
        let (person, line) = crate::person::split(line)?;
        let card = ContactCard::from_line(line).context("this contact card was refused")?;
        let name = name
            .or_else(|| card.name.clone())
            .context("the card carries no name: pass --name NAME")?;
        validate_name(&name)?;
        if let Some(other) = self
            .contacts
            .iter()
            .find(|c| c.name == name && c.id != card.id())
        {
            bail!(
                "the name {:?} already belongs to device {}; choose another --name",
                name,
                other.id
            );
        }
        self.contacts.retain(|c| c.id != card.id());
        let contact = Contact {
            name,
            id: card.id(),
            card: ContactCard::to_line(&card),
            person,
        };
        self.contacts.push(contact.clone());
        self.contacts.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(contact)
    }

    /// Forgets the contact with this name or device id; returns it.
    pub fn remove(&mut self, name_or_id: &str) -> Result<Contact> {
        let found = self
            .find(name_or_id)
            .cloned()
            .with_context(|| format!("no contact {name_or_id:?} (see `keyhive contact list`)"))?;
        self.contacts.retain(|c| c.id != found.id);
        Ok(found)
    }

    /// Renames the contact with this name or device id; returns the old name.
    pub fn rename(&mut self, name_or_id: &str, name: String) -> Result<String> {
        validate_name(&name)?;
        let id = self
            .find(name_or_id)
            .map(|c| c.id)
            .with_context(|| format!("no contact {name_or_id:?} (see `keyhive contact list`)"))?;
        if let Some(other) = self.contacts.iter().find(|c| c.name == name && c.id != id) {
            bail!(
                "the name {name:?} already belongs to device {}; choose another",
                other.id
            );
        }
        let contact = self
            .contacts
            .iter_mut()
            .find(|c| c.id == id)
            .with_context(|| format!("no contact {name_or_id:?}"))?;
        let old = std::mem::replace(&mut contact.name, name);
        self.contacts.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(old)
    }

    /// All contacts, sorted by name.
    pub fn all(&self) -> &[Contact] {
        &self.contacts
    }

    /// Finds a contact by exact name or device id.
    pub fn find(&self, name_or_id: &str) -> Option<&Contact> {
        self.contacts
            .iter()
            .find(|c| c.name == name_or_id || c.id.to_string() == name_or_id)
    }

    /// PERSON-3: the contact whose person group is `group`, if any.
    pub fn person(&self, group: &GroupId) -> Option<&Contact> {
        self.contacts.iter().find(|c| c.person == Some(*group))
    }

    /// The local name of a device, if known.
    pub fn name_of(&self, id: &IndividualId) -> Option<&str> {
        self.contacts
            .iter()
            .find(|c| c.id == *id)
            .map(|c| c.name.as_str())
    }
}

/// Names must be printable, non-empty and short, so tables stay readable and unambiguous.
pub fn validate_name(name: &str) -> Result<()> {
    if name.trim().is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
        bail!("invalid name {name:?}: use 1 to 128 printable characters");
    }
    Ok(())
}
