//! SYNC-110: the compact wire form of auth and content ops, which omits the domain tag, the
//! version and the subject that the item framing already carries (`specs/sync.md` §2,
//! `specs/cgka.md` §12 step 4).
//!
//! The *signed* bytes are unchanged: `postcard(tag) || version || postcard(op)` followed by the
//! signature (ENC-4, ENC-5), and the content address stays `Hash::of_signed` of exactly those
//! full bytes, so predecessor links keep their meaning. Only the bytes that travel in an item or
//! rest in a store drop the tag, the version and the 32-byte subject:
//!
//! ```text
//! full    = postcard(tag) || version || issuer(32) || varint(n) || n × 32 || subject(32) || rest || signature(64)
//! compact = code(1)                  || issuer(32) || varint(n) || n × 32 ||               rest || signature(64)
//! ```
//!
//! A root-form auth op (`keyhive/auth` v3, CAP-24) has no issuer in its signed bytes, so its
//! full and compact forms start with the predecessor count instead:
//!
//! ```text
//! full    = postcard(tag) || 3       || varint(n) || n × 32 || subject(32) || rest || signature(64)
//! compact = code(1)                  || varint(n) || n × 32 ||               rest || signature(64)
//! ```
//!
//! `code` names the tag and version (`AUTH_CODE`: `keyhive/auth` v2, `AUTH_ROOT_CODE`:
//! `keyhive/auth` v3, `CONTENT_CODE`: `keyhive/content` v3); all are at least `0x80`, which no
//! tag length (ENC-11) can be. The
//! receiver re-inserts the tag, the version and the item's subject before decoding and
//! verifying, so the signature covers the subject exactly as before: an item sent under another
//! subject expands to other signed bytes and fails its signature check.
//!
//! Canonical (one form per op): ops of these versions travel only compact ([`expand`] refuses
//! their full form, [`WireFormError::NotCompact`]); earlier versions (`keyhive/auth` v1,
//! `keyhive/content` v1 and v2) and every other envelope travel as they are, as before.

use std::borrow::Cow;

use crate::capability::{AuthBody, ContentBody, ROOT_FORM_VERSION};
use crate::crypto::signing::PublicKey;
use crate::encoding::{encode, peek_tag};
use crate::signed::{OpBody, SIGNATURE_LEN};

/// SYNC-110: first byte of a compact `keyhive/auth` version-2 envelope.
pub const AUTH_CODE: u8 = 0xA2;
/// SYNC-110, CAP-24: first byte of a compact `keyhive/auth` version-3 (root-form) envelope.
pub const AUTH_ROOT_CODE: u8 = 0xA3;
/// SYNC-110: first byte of a compact `keyhive/content` version-3 envelope.
pub const CONTENT_CODE: u8 = 0xC3;

/// Bytes a compact envelope saves over its full form: the tag and version less the code, and
/// the subject.
pub fn saved_bytes(tag: &str) -> usize {
    encode(&tag).len() + 1 - 1 + 32
}

/// Which op type a compact envelope holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CompactKind {
    /// `keyhive/auth` version 2 or 3 (an auth op: delegation, revocation, invitation...).
    Auth,
    /// `keyhive/content` version 3 (a content op).
    Content,
}

/// One compact form: its code, the tag and version it stands for, and whether the signed
/// bytes start with a 32-byte issuer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Form {
    code: u8,
    tag: &'static str,
    version: u8,
    issuer_len: usize,
}

const AUTH_FORMS: &[Form] = &[
    Form {
        code: AUTH_CODE,
        tag: <AuthBody as OpBody>::TAG,
        version: <AuthBody as OpBody>::VERSION,
        issuer_len: 32,
    },
    Form {
        code: AUTH_ROOT_CODE,
        tag: <AuthBody as OpBody>::TAG,
        version: ROOT_FORM_VERSION,
        issuer_len: 0,
    },
];

const CONTENT_FORMS: &[Form] = &[Form {
    code: CONTENT_CODE,
    tag: <ContentBody as OpBody>::TAG,
    version: <ContentBody as OpBody>::VERSION,
    issuer_len: 32,
}];

impl CompactKind {
    /// The first byte of this kind's compact envelopes of its newest version that carries an
    /// issuer (`keyhive/auth` v2, `keyhive/content` v3).
    pub fn code(self) -> u8 {
        match self {
            CompactKind::Auth => AUTH_CODE,
            CompactKind::Content => CONTENT_CODE,
        }
    }

    /// Every first byte this kind's compact envelopes may have.
    pub fn codes(self) -> impl Iterator<Item = u8> {
        self.forms().iter().map(|f| f.code)
    }

    fn forms(self) -> &'static [Form] {
        match self {
            CompactKind::Auth => AUTH_FORMS,
            CompactKind::Content => CONTENT_FORMS,
        }
    }

    /// The form of `kind` that a full envelope starting with its tag and version travels in.
    fn form_of_full(self, full: &[u8]) -> Option<Form> {
        let tag = peek_tag(full)?;
        let version = *full.get(1 + tag.len())?;
        self.forms()
            .iter()
            .find(|f| f.tag == tag && f.version == version)
            .copied()
    }
}

/// The form of any kind a full envelope travels compact in, if any.
fn any_form_of_full(full: &[u8]) -> Option<Form> {
    [CompactKind::Auth, CompactKind::Content]
        .into_iter()
        .find_map(|k| k.form_of_full(full))
}

/// Why a wire envelope could not be expanded to its signed form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireFormError {
    /// SYNC-110: an op of a version that travels compact arrived in its full form (it could
    /// then travel two ways).
    #[error("a {tag} op of this version must travel in its compact form")]
    NotCompact {
        /// The op's domain tag.
        tag: &'static str,
    },
    /// The compact envelope ends before its issuer, predecessors and signature.
    #[error("compact envelope is truncated")]
    Truncated,
    /// The predecessor count is not a varint of at most 64 (ENC-9).
    #[error("compact envelope has a malformed predecessor count")]
    BadPredecessorCount,
    /// A signed envelope starts with a compact code: no tagged payload does (ENC-11), and its
    /// wire form would read as a compact envelope.
    #[error("an envelope may not start with a compact wire code")]
    StartsWithCode,
}

/// SYNC-110: whether a signed (expanded) envelope may be held in an item whose ops travel as
/// `kind`: it must not start with `kind`'s compact code, or its wire form could be read two
/// ways. Every tagged payload starts with a tag length below `0x80` (ENC-11), so only bytes
/// that are no keyhive envelope are refused.
pub fn check_signed_form(full: &[u8], kind: CompactKind) -> Result<(), WireFormError> {
    match full.first() {
        Some(&code) if kind.codes().any(|c| c == code) => Err(WireFormError::StartsWithCode),
        _ => Ok(()),
    }
}

/// The form an envelope travels in, in an item whose ops travel as `kind` (SYNC-110): compact
/// when it is an op of `kind`'s compact version whose subject is `subject`, otherwise the
/// bytes as they are.
pub fn compact<'a>(full: &'a [u8], subject: &PublicKey, kind: CompactKind) -> Cow<'a, [u8]> {
    match split_full(full, subject, kind) {
        Some((form, head, tail)) => {
            let mut out = Vec::with_capacity(full.len() - saved_bytes(form.tag));
            out.push(form.code);
            out.extend_from_slice(head);
            out.extend_from_slice(tail);
            Cow::Owned(out)
        }
        None => Cow::Borrowed(full),
    }
}

/// The length of [`compact`]'s answer, without building it.
pub fn compact_len(full: &[u8], subject: &PublicKey, kind: CompactKind) -> usize {
    match split_full(full, subject, kind) {
        Some((form, _, _)) => full.len() - saved_bytes(form.tag),
        None => full.len(),
    }
}

/// Splits a full envelope of `kind`'s compact version into the bytes between the version and
/// the subject (issuer and predecessors) and the bytes after the subject; `None` when the
/// envelope is not one or does not name `subject` where the subject goes.
fn split_full<'a>(
    full: &'a [u8],
    subject: &PublicKey,
    kind: CompactKind,
) -> Option<(Form, &'a [u8], &'a [u8])> {
    let form = kind.form_of_full(full)?;
    let body = full.get(encode(&form.tag).len() + 1..)?;
    let at = subject_offset(body, form.issuer_len)?;
    let named = body.get(at..at + 32)?;
    if named != subject.as_bytes() || body.len() < at + 32 + SIGNATURE_LEN {
        return None;
    }
    Some((form, &body[..at], &body[at + 32..]))
}

/// SYNC-110: the signed envelope a wire envelope stands for, in an item whose ops travel as
/// `kind`. An envelope starting with `kind`'s code is expanded with `subject` (the item's); an
/// envelope of any other form is returned as it is, unless it is the full form of an op that
/// must travel compact ([`WireFormError::NotCompact`]).
pub fn expand<'a>(
    wire: &'a [u8],
    subject: &PublicKey,
    kind: CompactKind,
) -> Result<Cow<'a, [u8]>, WireFormError> {
    let Some((&code, body)) = wire.split_first() else {
        return Ok(Cow::Borrowed(wire));
    };
    let Some(form) = kind.forms().iter().find(|f| f.code == code) else {
        if let Some(full) = any_form_of_full(wire) {
            return Err(WireFormError::NotCompact { tag: full.tag });
        }
        return Ok(Cow::Borrowed(wire));
    };
    let at = subject_offset(body, form.issuer_len).ok_or(WireFormError::BadPredecessorCount)?;
    if body.len() < at + SIGNATURE_LEN {
        return Err(WireFormError::Truncated);
    }
    let mut out = encode(&form.tag);
    out.reserve(1 + body.len() + 32);
    out.push(form.version);
    out.extend_from_slice(&body[..at]);
    out.extend_from_slice(subject.as_bytes());
    out.extend_from_slice(&body[at..]);
    Ok(Cow::Owned(out))
}

/// Where the subject goes in `issuer || varint(n) || n × 32 || ...` (`issuer_len` 32, or 0 for
/// the root form, CAP-24): after the issuer and the predecessors. `None` when the bytes end
/// first or the count is not a varint of at most 64.
fn subject_offset(body: &[u8], issuer_len: usize) -> Option<usize> {
    let mut at = issuer_len;
    let mut count: usize = 0;
    let mut shift = 0;
    loop {
        let byte = *body.get(at)?;
        at += 1;
        count |= usize::from(byte & 0x7f).checked_shl(shift)?;
        if byte & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 14 {
            return None;
        }
    }
    if count > <AuthBody as OpBody>::MAX_PREDECESSORS {
        return None;
    }
    let end = at + count * 32;
    (body.len() >= end).then_some(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(tag: &str, version: u8, preds: u8, subject: [u8; 32]) -> Vec<u8> {
        let mut out = encode(&tag);
        out.push(version);
        out.extend_from_slice(&[1; 32]);
        out.push(preds);
        for i in 0..preds {
            out.extend_from_slice(&[i + 10; 32]);
        }
        out.extend_from_slice(&subject);
        out.extend_from_slice(&[5; 7]);
        out.extend_from_slice(&[9; SIGNATURE_LEN]);
        out
    }

    #[test]
    fn sync110_compact_round_trips_and_saves_the_tag_version_and_subject() {
        let subject = PublicKey([3; 32]);
        for (kind, tag, version, saved) in [
            (CompactKind::Auth, "keyhive/auth", 2, 45),
            (CompactKind::Content, "keyhive/content", 3, 48),
        ] {
            for preds in [0, 1, 2] {
                let f = full(tag, version, preds, subject.0);
                let c = compact(&f, &subject, kind);
                assert_eq!(c.len(), f.len() - saved, "{tag}");
                assert_eq!(compact_len(&f, &subject, kind), c.len());
                assert_eq!(c[0], kind.code());
                assert_eq!(expand(&c, &subject, kind).unwrap().as_ref(), f.as_slice());
                assert_eq!(
                    expand(&f, &subject, kind),
                    Err(WireFormError::NotCompact { tag })
                );
                assert_eq!(
                    check_signed_form(&c, kind),
                    Err(WireFormError::StartsWithCode)
                );
                assert_eq!(check_signed_form(&f, kind), Ok(()));
            }
        }
    }

    /// CAP-24: a root-form auth op (`keyhive/auth` v3) has no issuer; its compact form drops
    /// the tag, version and subject like version 2's, under its own code.
    #[test]
    fn cap24_root_form_round_trips_under_its_own_code() {
        let subject = PublicKey([3; 32]);
        let auth = CompactKind::Auth;
        for preds in [0u8, 1, 2] {
            let mut f = encode(&"keyhive/auth");
            f.push(3);
            f.push(preds);
            for i in 0..preds {
                f.extend_from_slice(&[i + 10; 32]);
            }
            f.extend_from_slice(&subject.0);
            f.extend_from_slice(&[5; 7]);
            f.extend_from_slice(&[9; SIGNATURE_LEN]);
            let c = compact(&f, &subject, auth);
            assert_eq!(c.len(), f.len() - 45);
            assert_eq!(c[0], AUTH_ROOT_CODE);
            assert_eq!(c[1], preds, "no issuer before the predecessor count");
            assert_eq!(compact_len(&f, &subject, auth), c.len());
            assert_eq!(expand(&c, &subject, auth).unwrap().as_ref(), f.as_slice());
            assert_eq!(
                expand(&f, &subject, auth),
                Err(WireFormError::NotCompact {
                    tag: "keyhive/auth"
                })
            );
            assert_eq!(
                check_signed_form(&c, auth),
                Err(WireFormError::StartsWithCode)
            );
            // Not a content item's form: it travels there as it is (and ADM-1 refuses it).
            let content = CompactKind::Content;
            assert_eq!(compact(&f, &subject, content).as_ref(), f.as_slice());
            assert_eq!(expand(&c, &subject, content).unwrap().as_ref(), &c[..]);
        }
        assert_eq!(
            expand(&[AUTH_ROOT_CODE, 1, 0, 0], &subject, auth),
            Err(WireFormError::BadPredecessorCount)
        );
        let mut short = vec![AUTH_ROOT_CODE, 0];
        short.extend_from_slice(&[0; 63]);
        assert_eq!(
            expand(&short, &subject, auth),
            Err(WireFormError::Truncated)
        );
    }

    #[test]
    fn sync110_earlier_versions_other_kinds_and_other_subjects_travel_as_they_are() {
        let subject = PublicKey([3; 32]);
        for (kind, f) in [
            (CompactKind::Auth, full("keyhive/auth", 1, 1, subject.0)),
            (
                CompactKind::Content,
                full("keyhive/content", 2, 1, subject.0),
            ),
            (
                CompactKind::Content,
                full("keyhive/content", 1, 1, subject.0),
            ),
            (CompactKind::Auth, full("keyhive/genesis", 2, 0, subject.0)),
            (CompactKind::Auth, full("keyhive/auth", 2, 1, [4; 32])),
            (CompactKind::Content, full("keyhive/auth", 2, 1, subject.0)),
        ] {
            assert_eq!(compact(&f, &subject, kind).as_ref(), f.as_slice());
            assert_eq!(compact_len(&f, &subject, kind), f.len());
        }
        for (kind, f) in [
            (CompactKind::Auth, full("keyhive/auth", 1, 1, subject.0)),
            (
                CompactKind::Content,
                full("keyhive/content", 2, 0, subject.0),
            ),
            (CompactKind::Content, vec![AUTH_CODE; 100]),
        ] {
            assert_eq!(expand(&f, &subject, kind).unwrap().as_ref(), f.as_slice());
        }
    }

    #[test]
    fn sync110_malformed_compact_envelopes_are_refused() {
        let subject = PublicKey([3; 32]);
        let auth = CompactKind::Auth;
        assert_eq!(
            expand(&[AUTH_CODE; 10], &subject, auth),
            Err(WireFormError::BadPredecessorCount)
        );
        let mut too_many = vec![AUTH_CODE];
        too_many.extend_from_slice(&[0; 32]);
        too_many.push(65);
        too_many.extend_from_slice(&[0; 65 * 32 + 64]);
        assert_eq!(
            expand(&too_many, &subject, auth),
            Err(WireFormError::BadPredecessorCount)
        );
        let mut short = vec![CONTENT_CODE];
        short.extend_from_slice(&[0; 32]);
        short.push(0);
        short.extend_from_slice(&[0; 63]);
        assert_eq!(
            expand(&short, &subject, CompactKind::Content),
            Err(WireFormError::Truncated)
        );
    }
}
