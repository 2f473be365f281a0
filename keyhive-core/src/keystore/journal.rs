//! KEYS-12: the key store's journal. Making a document's new key-agreement secrets durable
//! (KEYS-11) appends one record to `PATH.journal` instead of rewriting the whole key store at
//! `PATH`, so that a device holding thousands of documents pays for what changed, not for
//! everything it holds.
//!
//! Format version 1: `postcard("keyhive/keystore-journal") || 0x01 || base[32]`, then records
//! `len (u32 little-endian) || record (len bytes, a KEYS-12 record) || check[32]`, where `base`
//! is the KEYS-7 check of the key store file the journal extends and `check_i = BLAKE3
//! derive_key(`[`RECORD_CONTEXT`]`, check_{i-1} || len || record)`, `check_0 = base`. A
//! journal whose `base` is not the check of the key store file beside it is stale (the key
//! store was saved whole since, holding everything the journal held) and is ignored; saving
//! the key store whole removes it. A record cut short at the end (a crash while appending,
//! before the append returned) is ignored and cut off before the next append; a whole record
//! whose check fails is damage ([`FileError::JournalIntegrity`]).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::file::{FileError, load, read_private, save};
use super::store::{KeyStore, MAX_KEYSTORE_LEN};
use crate::encoding::encode;
use crate::identity::DocumentId;

/// KEYS-12: the domain tag that starts a journal.
pub const JOURNAL_TAG: &str = "keyhive/keystore-journal";

/// KEYS-12: the journal format version.
pub const JOURNAL_VERSION: u8 = 1;

/// KEYS-12: the BLAKE3 `derive_key` context of each record's check.
pub const RECORD_CONTEXT: &str = "keyhive 2026-12-03 key store journal record v1";

const CHECK_LEN: usize = 32;
const LEN_LEN: usize = 4;

/// A journal shorter than this is never folded into the key store, whatever its size.
const MIN_FOLD: u64 = 64 << 10;

/// The journal beside the key store file `path`: `PATH.journal`.
pub fn journal_path(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".journal");
    path.with_file_name(name)
}

fn header(base: &[u8; CHECK_LEN]) -> Vec<u8> {
    let mut out = encode(&JOURNAL_TAG);
    out.push(JOURNAL_VERSION);
    out.extend_from_slice(base);
    out
}

fn record_check(previous: &[u8; CHECK_LEN], record: &[u8]) -> [u8; CHECK_LEN] {
    let len = u32::try_from(record.len()).unwrap_or(u32::MAX);
    *blake3::Hasher::new_derive_key(RECORD_CONTEXT)
        .update(previous)
        .update(&len.to_le_bytes())
        .update(record)
        .finalize()
        .as_bytes()
}

/// Where a journal's whole records end, and the check of the last one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct End {
    base: [u8; CHECK_LEN],
    len: u64,
    last: [u8; CHECK_LEN],
}

/// Reads the records of `bytes`, a journal (at `path`) extending the key store whose check is
/// `base`, calling `each` on every whole one. `Ok(None)`: not a journal of that key store
/// (stale, or its header was cut short). A record cut short at the end stops the walk.
fn walk(
    bytes: &[u8],
    path: &Path,
    base: &[u8; CHECK_LEN],
    mut each: impl FnMut(&[u8]) -> Result<(), FileError>,
) -> Result<Option<End>, FileError> {
    let damaged = || FileError::JournalIntegrity(path.to_path_buf());
    let head = header(base);
    let Some(mut rest) = bytes.strip_prefix(head.as_slice()) else {
        return Ok(None);
    };
    let mut end = End {
        base: *base,
        len: head.len() as u64,
        last: *base,
    };
    while rest.len() >= LEN_LEN {
        let (len, after) = rest.split_at(LEN_LEN);
        let len = u32::from_le_bytes(len.try_into().map_err(|_| damaged())?) as usize;
        if len > MAX_KEYSTORE_LEN {
            return Err(damaged());
        }
        if after.len() < len + CHECK_LEN {
            break;
        }
        let (record, after) = after.split_at(len);
        let (check, after) = after.split_at(CHECK_LEN);
        let expected = record_check(&end.last, record);
        if !bool::from(expected.ct_eq(check)) {
            return Err(damaged());
        }
        each(record)?;
        end.last = expected;
        end.len += (LEN_LEN + len + CHECK_LEN) as u64;
        rest = after;
    }
    Ok(Some(end))
}

/// KEYS-12: applies the journal beside `path` to `store`, read from the key store file whose
/// check is `base`; a missing or stale journal changes nothing.
pub(super) fn replay(
    path: &Path,
    base: &[u8; CHECK_LEN],
    store: &mut KeyStore,
) -> Result<(), FileError> {
    let journal = journal_path(path);
    let file = match File::open(&journal) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let bytes = read_private(file, &journal)?;
    apply_journal(&bytes, &journal, base, store)
}

/// KEYS-12: applies the records of journal `bytes` (read from `path`) to `store`, the key
/// store read from the file whose KEYS-7 check is `base`: nothing if the journal extends
/// another file (stale) or its header is cut short; a record cut short at the end is ignored;
/// a damaged one is [`FileError::JournalIntegrity`]. What `keystore::load` does with the
/// journal it finds.
pub fn apply_journal(
    bytes: &[u8],
    path: &Path,
    base: &[u8; 32],
    store: &mut KeyStore,
) -> Result<(), FileError> {
    walk(bytes, path, base, |record| Ok(store.apply_record(record)?))?;
    Ok(())
}

/// KEYS-12: removes the journal beside `path` (after the key store was saved whole).
pub(super) fn remove(path: &Path) -> io::Result<()> {
    match fs::remove_file(journal_path(path)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// The KEYS-7 check of the key store file at `path` (its last 32 bytes), and its length.
fn base_check(path: &Path) -> Result<([u8; CHECK_LEN], u64), FileError> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    if len < CHECK_LEN as u64 {
        return Err(FileError::Integrity);
    }
    file.seek(SeekFrom::End(-(CHECK_LEN as i64)))?;
    let mut check = [0u8; CHECK_LEN];
    file.read_exact(&mut check)?;
    Ok((check, len))
}

/// KEYS-12: makes documents' key-agreement secrets durable in the key store file at one path
/// by appending them to its journal, remembering where the journal ends between appends.
#[derive(Debug, Default)]
pub struct Journal {
    end: Option<End>,
}

impl Journal {
    /// Makes the secrets `store` holds for `documents` durable at `path` before returning: one
    /// record appended to the journal (fsynced), or, once the journal has grown past the key
    /// store file (and 64 KiB), the key store at `path` (with its journal) and these secrets
    /// saved whole (KEYS-3), which removes the journal. Only `documents`' secrets are taken
    /// from `store`: what others wrote to `path` meanwhile is kept.
    pub fn keep(
        &mut self,
        store: &KeyStore,
        path: &Path,
        documents: &[DocumentId],
    ) -> Result<(), FileError> {
        let (base, base_len) = base_check(path)?;
        let journal = journal_path(path);
        let end = self.end_for(&journal, &base)?;
        let record = store.record_bytes(documents);
        let framed = (LEN_LEN + record.len() + CHECK_LEN) as u64;
        if end.len + framed > base_len.max(MIN_FOLD) {
            self.end = None;
            let mut whole = load(path)?;
            whole.apply_record(&record)?;
            return save(&whole, path);
        }
        let check = record_check(&end.last, &record);
        let mut bytes = Zeroizing::new(Vec::with_capacity(framed as usize));
        let len = u32::try_from(record.len()).map_err(|_| FileError::TooLarge)?;
        bytes.extend_from_slice(&len.to_le_bytes());
        bytes.extend_from_slice(&record);
        bytes.extend_from_slice(&check);
        let mut file = OpenOptions::new().append(true).open(&journal)?;
        file.write_all(&bytes)?;
        file.sync_data()?;
        self.end = Some(End {
            base,
            len: end.len + framed,
            last: check,
        });
        Ok(())
    }

    /// Where the journal of the key store whose check is `base` ends: as remembered when
    /// nothing changed it since, else read again; a journal cut short is cut to its last whole
    /// record, and a missing or stale one is started afresh.
    fn end_for(&mut self, journal: &Path, base: &[u8; CHECK_LEN]) -> Result<End, FileError> {
        let on_disk = match fs::metadata(journal) {
            Ok(meta) => Some(meta.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e.into()),
        };
        if let Some(end) = self.end
            && end.base == *base
            && on_disk == Some(end.len)
        {
            return Ok(end);
        }
        if on_disk.is_some() {
            let bytes = read_private(File::open(journal)?, journal)?;
            if let Some(end) = walk(&bytes, journal, base, |_| Ok(()))? {
                if end.len != bytes.len() as u64 {
                    let file = OpenOptions::new().write(true).open(journal)?;
                    file.set_len(end.len)?;
                    file.sync_all()?;
                }
                return Ok(end);
            }
        }
        start(journal, base)
    }
}

/// Starts a journal extending the key store whose check is `base`, replacing any other:
/// mode 0600, header fsynced, then the directory.
fn start(journal: &Path, base: &[u8; CHECK_LEN]) -> Result<End, FileError> {
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let head = header(base);
    let mut file = options.open(journal)?;
    // A file left by someone else keeps its mode when reopened: made private again (KEYS-3).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(0o600))?;
    }
    file.write_all(&head)?;
    file.sync_all()?;
    if let Some(dir) = journal.parent().filter(|d| !d.as_os_str().is_empty()) {
        File::open(dir)?.sync_all()?;
    }
    Ok(End {
        base: *base,
        len: head.len() as u64,
        last: *base,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgka::CgkaSecrets;
    use crate::crypto::hash::Hash;
    use crate::crypto::secret::SymmetricKey;
    use crate::crypto::signing::PublicKey;
    use crate::identity::Device;

    fn doc(n: u8) -> DocumentId {
        DocumentId(PublicKey([n; 32]))
    }

    /// Distinct secrets for generation `g` of a document.
    fn secrets(g: u8) -> CgkaSecrets {
        CgkaSecrets {
            node_keys: vec![Zeroizing::new([g; 32])],
            epochs: vec![(
                Hash([g; 32]),
                SymmetricKey::from_bytes([g.wrapping_add(1); 32]),
            )],
        }
    }

    /// What a key store holds, comparable.
    fn held(store: &KeyStore) -> Vec<u8> {
        store.to_bytes().to_vec()
    }

    /// A key store with 50 documents saved at `path`.
    fn saved(path: &Path) -> KeyStore {
        let mut store = KeyStore::new(Device::generate(Some("me".into())));
        for n in 0..50 {
            store.set_cgka_secrets(doc(n), secrets(n));
        }
        save(&store, path).unwrap();
        store
    }

    #[test]
    fn keys12_kept_secrets_are_appended_and_loaded_without_rewriting_the_key_store() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("device.key");
        let mut store = saved(&path);
        let before = fs::read(&path).unwrap();
        let mut journal = Journal::default();
        for g in 100..110 {
            store.set_cgka_secrets(doc(3), secrets(g));
            store.set_cgka_secrets(doc(200), secrets(g));
            journal.keep(&store, &path, &[doc(3), doc(200)]).unwrap();
        }
        assert_eq!(
            fs::read(&path).unwrap(),
            before,
            "the key store was not rewritten"
        );
        assert!(journal_path(&path).exists());
        assert_eq!(held(&super::super::load(&path).unwrap()), held(&store));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(journal_path(&path))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // Saved whole: the journal is gone, and what it held is in the file.
        save(&store, &path).unwrap();
        assert!(!journal_path(&path).exists());
        assert_eq!(held(&super::super::load(&path).unwrap()), held(&store));
    }

    #[test]
    fn keys12_a_record_cut_short_is_ignored_then_cut_off_and_a_damaged_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("device.key");
        let mut store = saved(&path);
        let mut journal = Journal::default();
        store.set_cgka_secrets(doc(1), secrets(101));
        journal.keep(&store, &path, &[doc(1)]).unwrap();
        let durable = held(&store);
        // A crash while appending the next record: only part of it reached the disk.
        let whole = fs::read(journal_path(&path)).unwrap();
        let mut torn = OpenOptions::new()
            .append(true)
            .open(journal_path(&path))
            .unwrap();
        torn.write_all(&[200, 0, 0, 0, 9, 9, 9]).unwrap();
        drop(torn);
        assert_eq!(held(&super::super::load(&path).unwrap()), durable);
        // The next append (by a new process: nothing remembered) cuts it off first.
        store.set_cgka_secrets(doc(2), secrets(102));
        Journal::default().keep(&store, &path, &[doc(2)]).unwrap();
        assert_eq!(held(&super::super::load(&path).unwrap()), held(&store));
        assert!(fs::read(journal_path(&path)).unwrap().starts_with(&whole));
        // Every flipped bit of a whole record is refused, never read as other secrets.
        let bytes = fs::read(journal_path(&path)).unwrap();
        let header_len = header(&[0; CHECK_LEN]).len();
        for at in (header_len..bytes.len()).step_by(7) {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x10;
            fs::write(journal_path(&path), &damaged).unwrap();
            match super::super::load(&path) {
                Err(FileError::JournalIntegrity(p)) => assert_eq!(p, journal_path(&path)),
                // A flip in a length can make the last record look cut short: it is then
                // ignored, and only secrets the file or earlier records hold are read.
                Ok(loaded) => assert!(
                    held(&loaded) != held(&store),
                    "byte {at}: the damaged record was read"
                ),
                Err(e) => panic!("byte {at}: {e}"),
            }
        }
    }

    #[test]
    fn keys12_a_stale_journal_is_ignored_and_a_long_one_folded_into_the_key_store() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("device.key");
        let mut store = saved(&path);
        let mut journal = Journal::default();
        store.set_cgka_secrets(doc(1), secrets(150));
        journal.keep(&store, &path, &[doc(1)]).unwrap();
        let stale = fs::read(journal_path(&path)).unwrap();
        // Saved whole since (by another holder of the key store), with newer secrets.
        store.set_cgka_secrets(doc(1), secrets(151));
        save(&store, &path).unwrap();
        fs::write(journal_path(&path), &stale).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(journal_path(&path), fs::Permissions::from_mode(0o600)).unwrap();
        }
        assert_eq!(
            held(&super::super::load(&path).unwrap()),
            held(&store),
            "the older secrets of the stale journal were not applied"
        );
        // Appending past the file's size (and 64 KiB) saves the key store whole instead.
        let mut journal = Journal::default();
        let mut folded = false;
        for g in 0..2_000u32 {
            let n = (g % 50) as u8;
            store.set_cgka_secrets(doc(n), secrets(g as u8));
            journal.keep(&store, &path, &[doc(n)]).unwrap();
            let len = fs::metadata(journal_path(&path)).map_or(0, |m| m.len());
            assert!(len <= fs::metadata(&path).unwrap().len().max(MIN_FOLD));
            folded |= len == 0;
        }
        assert!(folded, "the journal was folded into the key store");
        assert_eq!(held(&super::super::load(&path).unwrap()), held(&store));
    }

    #[test]
    #[cfg(unix)]
    fn keys12_a_journal_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("device.key");
        let mut store = saved(&path);
        store.set_cgka_secrets(doc(1), secrets(99));
        Journal::default().keep(&store, &path, &[doc(1)]).unwrap();
        fs::set_permissions(journal_path(&path), fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            super::super::load(&path),
            Err(FileError::Permissions(p)) if p == journal_path(&path)
        ));
    }
}
