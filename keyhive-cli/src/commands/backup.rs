//! `keyhive backup FILE` and `keyhive restore FILE`: the whole home (key store, every stored
//! item, contacts, relays, pins and local names) in one passphrase-sealed archive
//! (`specs/encryption.md` KEYS-8, KEYS-9).

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result, bail};
use keyhive_core::encoding::{byte_vec, decode_canonical, encode};
use keyhive_core::keystore::{BackupParams, KeyStore, MAX_ARCHIVE_LEN, open_archive, seal_archive};
use keyhive_sync::{Item, ItemKind, RedbStore, Store, SubjectId};
use serde::{Deserialize, Serialize};
use serde_json::json;
use zeroize::Zeroizing;

use crate::device_store::{self, DEVICE_FILE};
use crate::home::Home;
use crate::out_file::OutFile;
use crate::output::Output;
use crate::session::{STORE_FILE, Session};
use crate::{contacts, names, passphrase, person, relays};

/// KEYS-9: the home files an archive carries, and the only ones `restore` writes.
const HOME_FILES: [&str; 6] = [
    contacts::CONTACTS_FILE,
    relays::RELAYS_FILE,
    relays::PINS_FILE,
    relays::CA_FILE,
    names::NAMES_FILE,
    person::PERSON_FILE,
];
/// Items put into the store per transaction on restore.
const RESTORE_BATCH: usize = 1_000;

/// KEYS-9: the sealed payload.
#[derive(Serialize, Deserialize)]
struct HomeArchive {
    /// Payload version (1).
    version: u8,
    /// The key store (KEYS-2 bytes).
    #[serde(with = "byte_vec")]
    keystore: Vec<u8>,
    /// Home files by name (only [`HOME_FILES`]).
    files: Vec<HomeFile>,
    /// Every item of the local store.
    items: Vec<ArchivedItem>,
}

#[derive(Serialize, Deserialize)]
struct HomeFile {
    name: String,
    #[serde(with = "byte_vec")]
    bytes: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct ArchivedItem {
    kind: ItemKind,
    subject: SubjectId,
    #[serde(with = "byte_vec")]
    envelope: Vec<u8>,
}

/// `keyhive backup FILE`.
pub fn backup(home: &Home, out: Output, file: &Path) -> Result<()> {
    let keys = device_store::load(home)?;
    let store = crate::session::open_store(home)?;
    let mut items = Vec::new();
    for subject in store.subjects()? {
        for hash in store.hashes(&subject)? {
            if let Some(item) = store.get(&hash)? {
                items.push(ArchivedItem {
                    kind: item.kind(),
                    subject: item.subject(),
                    envelope: item.envelope().to_vec(),
                });
            }
        }
    }
    drop(store);
    let mut files = Vec::new();
    for name in HOME_FILES {
        if let Some(bytes) = home.read_optional(name)? {
            files.push(HomeFile {
                name: name.to_owned(),
                bytes,
            });
        }
    }
    let archive = HomeArchive {
        version: 1,
        keystore: keys.to_bytes().to_vec(),
        files,
        items,
    };
    let payload = Zeroizing::new(encode(&archive));
    let (n_items, n_files) = (archive.items.len(), archive.files.len());
    drop(Zeroizing::new(archive.keystore));
    let phrase = passphrase::read(true)?;
    let sealed = seal_archive(&payload, phrase.as_bytes(), BackupParams::default())
        .context("cannot seal the backup")?;
    match OutFile::resolve(file)? {
        OutFile::Replace(path) => crate::home::write_atomic(&path, &sealed, true)?,
        OutFile::Into(path) => OutFile::open_into(&path)?
            .write_all(&sealed)
            .with_context(|| format!("cannot write {}", path.display()))?,
    }
    let device = keys.device().id().to_string();
    out.emit(
        &json!({"file": file, "bytes": sealed.len(), "items": n_items, "files": n_files, "device": device}),
        || {
            println!(
                "Backed up device {device}: {n_items} item(s) and {n_files} setting file(s) in {} ({} bytes, Argon2id + XChaCha20-Poly1305)",
                file.display(),
                sealed.len()
            );
            println!("Keep the passphrase: without it the backup cannot be opened.");
        },
    )
}

/// `keyhive restore FILE`: into a home without an identity or a store.
pub fn restore(home: &Home, out: Output, file: &Path) -> Result<()> {
    for existing in [DEVICE_FILE, STORE_FILE] {
        if home.path(existing).exists() {
            bail!(
                "{} already holds a device ({existing} exists); restore into a new --home",
                home.root().display()
            );
        }
    }
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let phrase = passphrase::read(false)?;
    let payload = open_archive(&bytes, phrase.as_bytes())
        .with_context(|| format!("cannot open the backup {}", file.display()))?;
    let archive: HomeArchive = decode_canonical(&payload, MAX_ARCHIVE_LEN)
        .with_context(|| format!("{} holds no keyhive home", file.display()))?;
    let archive_keys = Zeroizing::new(archive.keystore);
    if archive.version != 1 {
        bail!(
            "{} is a version {} home backup; this keyhive reads version 1",
            file.display(),
            archive.version
        );
    }
    let keys = KeyStore::from_bytes(&archive_keys)
        .with_context(|| format!("{} holds a damaged key store", file.display()))?;
    let items: Vec<Item> = archive
        .items
        .into_iter()
        .map(|i| Item::new(i.kind, i.subject, i.envelope))
        .collect::<Result<_, _>>()
        .with_context(|| format!("{} holds a malformed item", file.display()))?;
    for f in &archive.files {
        if !HOME_FILES.contains(&f.name.as_str()) {
            bail!(
                "{} names the file {:?}, which is not a home setting; nothing was restored",
                file.display(),
                f.name
            );
        }
    }
    home.ensure()?;
    let store = RedbStore::open(home.path(STORE_FILE)).context("cannot create the local store")?;
    for batch in items.chunks(RESTORE_BATCH) {
        store.put(batch)?;
    }
    drop(store);
    for f in &archive.files {
        home.write_atomic(&f.name, &f.bytes, false)?;
    }
    device_store::save(home, &keys)?;
    // Opening the home replays and verifies every restored item (REP-2).
    let mut s = Session::open(home.clone(), out)
        .context("the restored home does not open; remove it and retry")?;
    let documents = s.metas()?.len();
    let device = keys.device().id().to_string();
    out.emit(
        &json!({"device": device, "items": items.len(), "files": archive.files.len(), "documents": documents}),
        || {
            println!(
                "Restored device {device}: {} item(s), {documents} readable document(s) and folder(s)",
                items.len()
            );
            println!(
                "This home is now that device: use it instead of the old one, not beside it. Run `keyhive sync` for what changed since the backup."
            );
        },
    )
}
