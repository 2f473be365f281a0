//! A change carried inside its content op (`specs/encryption.md` §1b, INL-1..INL-7).
//!
//! A small change travels as one item: the signed content op carries the ciphertext
//! ([`Payload::Inline`]), and the AEAD authenticates the op's signed header as associated data
//! (INL-4), so the ciphertext is bound to this op and the op to this ciphertext (the signature
//! covers it). The change's reference, how later changes and entry points name it, is its
//! content-op hash (INL-6).

use std::sync::LazyLock;

use serde::Serialize;
use zeroize::{Zeroize, Zeroizing};

use crate::capability::{ContentHeader, ContentOp, INLINE_SALT_LEN, InlineChange, Payload};
use crate::cgka::Cgka;
use crate::crypto::aead::{self, Sealed, TAG_LEN};
use crate::crypto::derive;
use crate::crypto::hash::Hash;
use crate::crypto::secret::SymmetricKey;
use crate::crypto::signing::PublicKey;
use crate::encoding::{DecodeError, encode};
use crate::identity::DocumentId;
use crate::signed::OpBody;

use super::change::{DecryptError, DecryptedChange, EncryptError};

/// INL-5: most predecessor keys an inline change carries (a content op names at most this
/// many predecessors).
pub const MAX_INLINE_PREDECESSORS: usize =
    <crate::capability::ContentBody as OpBody>::MAX_PREDECESSORS;

/// INL-5: bytes of the ciphertext of an inline change carrying `predecessors` keys and
/// `content` bytes (count byte, 64 bytes per key, the content, the tag).
pub fn inline_ciphertext_len(predecessors: usize, content: usize) -> usize {
    1 + 64 * predecessors + content + TAG_LEN
}

static INLINE_KEY_HASHER: LazyLock<blake3::Hasher> =
    LazyLock::new(|| blake3::Hasher::new_derive_key(derive::INLINE_CHANGE_KEY));

/// INL-3: the change key, one-way from the epoch root and unique per (document, epoch,
/// author, salt): `derive_key(INLINE_CHANGE_KEY, root || document || epoch || issuer || salt)`.
pub fn inline_key(
    epoch_root: &SymmetricKey,
    document: DocumentId,
    epoch: &Hash,
    issuer: &PublicKey,
    salt: &[u8; INLINE_SALT_LEN],
) -> SymmetricKey {
    let mut hasher = INLINE_KEY_HASHER.clone();
    hasher.update(epoch_root.expose());
    hasher.update(document.public_key().as_bytes());
    hasher.update(epoch.as_bytes());
    hasher.update(issuer.as_bytes());
    hasher.update(salt);
    let key = SymmetricKey::from_bytes(*hasher.finalize().as_bytes());
    hasher.zeroize();
    key
}

/// INL-4: what the associated data encodes after its label (postcard, in this order).
#[derive(Serialize)]
struct AssociatedData<'a> {
    issuer: &'a PublicKey,
    predecessors: &'a [Hash],
    document: DocumentId,
    auth_heads: &'a [Hash],
    proof: &'a crate::capability::Proof,
    epoch: &'a Hash,
    salt: &'a [u8; INLINE_SALT_LEN],
}

/// INL-4: the associated data: `postcard(INLINE_CHANGE_AD) || postcard(issuer, predecessors,
/// document, auth_heads, proof, epoch, salt)`, i.e. everything the op signs but the
/// commitment and the ciphertext, under its own domain label.
pub fn associated_data(
    header: ContentHeader<'_>,
    epoch: &Hash,
    salt: &[u8; INLINE_SALT_LEN],
) -> Vec<u8> {
    let mut out = encode(&derive::INLINE_CHANGE_AD);
    out.extend_from_slice(&encode(&AssociatedData {
        issuer: header.issuer,
        predecessors: header.predecessors,
        document: header.document,
        auth_heads: header.auth_heads,
        proof: header.proof,
        epoch,
        salt,
    }));
    out
}

/// INL-3: the XChaCha20 nonce, `salt || 0^8`. The key is used for this one message, so the
/// nonce need not be stored.
fn nonce(salt: &[u8; INLINE_SALT_LEN]) -> [u8; 24] {
    let mut out = [0u8; 24];
    out[..INLINE_SALT_LEN].copy_from_slice(salt);
    out
}

/// INL-5: `count (1 byte) || count × (reference (32) || key (32)) || content`, with room for
/// the tag so sealing in place never reallocates.
fn encode_plaintext(predecessors: &[(Hash, SymmetricKey)], content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(inline_ciphertext_len(predecessors.len(), content.len()));
    out.push(predecessors.len() as u8);
    for (reference, key) in predecessors {
        out.extend_from_slice(reference.as_bytes());
        out.extend_from_slice(key.expose());
    }
    out.extend_from_slice(content);
    out
}

type Plaintext = (Vec<(Hash, SymmetricKey)>, Zeroizing<Vec<u8>>);

fn decode_plaintext(mut plain: Zeroizing<Vec<u8>>) -> Result<Plaintext, DecodeError> {
    let Some((&count, rest)) = plain.split_first() else {
        return Err(DecodeError::Truncated);
    };
    let count = usize::from(count);
    if count > MAX_INLINE_PREDECESSORS {
        return Err(DecodeError::InvalidStructure("too many predecessors"));
    }
    let Some((keys, _)) = rest.split_at_checked(count * 64) else {
        return Err(DecodeError::Truncated);
    };
    let predecessors = super::change::predecessor_keys(keys);
    plain.drain(..1 + count * 64);
    Ok((predecessors, plain))
}

/// Seals `content` as the inline change of the op whose header is `header`, under the
/// current epoch of `cgka` (CENC-4, INL-3..INL-5), carrying the `predecessors`' keys.
/// Returns the payload and the change key.
pub fn seal_inline(
    cgka: &Cgka,
    header: ContentHeader<'_>,
    predecessors: &[(Hash, SymmetricKey)],
    content: &[u8],
) -> Result<(Payload, SymmetricKey), EncryptError> {
    let (epoch, root) = cgka.current_epoch().ok_or(EncryptError::MustUpdate)?;
    let mut salt = [0u8; INLINE_SALT_LEN];
    rand::Rng::fill_bytes(&mut crate::crypto::csprng(), &mut salt);
    seal_inline_with(root, epoch, salt, header, predecessors, content)
}

/// As [`seal_inline`] with an explicit epoch root and salt: for test vectors.
pub fn seal_inline_with(
    epoch_root: &SymmetricKey,
    epoch: Hash,
    salt: [u8; INLINE_SALT_LEN],
    header: ContentHeader<'_>,
    predecessors: &[(Hash, SymmetricKey)],
    content: &[u8],
) -> Result<(Payload, SymmetricKey), EncryptError> {
    if predecessors.len() > MAX_INLINE_PREDECESSORS {
        return Err(EncryptError::TooManyPredecessors(predecessors.len()));
    }
    if inline_ciphertext_len(predecessors.len(), content.len())
        > crate::capability::INLINE_MAX_CIPHERTEXT
    {
        return Err(EncryptError::TooLarge);
    }
    let key = inline_key(epoch_root, header.document, &epoch, header.issuer, &salt);
    let ad = associated_data(header, &epoch, &salt);
    let sealed = aead::seal_in_place(
        &key,
        nonce(&salt),
        &ad,
        encode_plaintext(predecessors, content),
    )
    .map_err(|_| EncryptError::TooLarge)?;
    Ok((
        Payload::Inline(InlineChange {
            epoch,
            salt,
            commitment: sealed.commitment,
            ciphertext: sealed.ciphertext,
        }),
        key,
    ))
}

fn inline_of(op: &ContentOp) -> Result<&InlineChange, DecryptError> {
    match &op.body.payload {
        Payload::Inline(change) => Ok(change),
        Payload::Blob { .. } => Err(DecryptError::NotInline),
    }
}

/// Opens the inline change of `op` with the root of its epoch, which `cgka` must hold.
pub fn open_inline_with_epoch(
    cgka: &Cgka,
    op: &ContentOp,
) -> Result<DecryptedChange, DecryptError> {
    let change = inline_of(op)?;
    if op.body.document != cgka.document() {
        return Err(DecryptError::WrongDocument);
    }
    let root = cgka
        .epoch_secret(&change.epoch)
        .ok_or(DecryptError::UnknownEpoch(change.epoch))?;
    let key = inline_key(
        root,
        op.body.document,
        &change.epoch,
        &op.issuer,
        &change.salt,
    );
    open_inline_with_key(&key, op)
}

/// Opens the inline change of `op` with a key learned from a successor or an entry point
/// (CENC-6): the commitment is checked first (ENC-7), then the ciphertext against the op's
/// header (INL-4), then the INL-5 layout.
pub fn open_inline_with_key(
    key: &SymmetricKey,
    op: &ContentOp,
) -> Result<DecryptedChange, DecryptError> {
    let change = inline_of(op)?;
    let ad = associated_data(op.header(), &change.epoch, &change.salt);
    let sealed = Sealed {
        nonce: nonce(&change.salt),
        commitment: change.commitment,
        ciphertext: change.ciphertext.clone(),
    };
    let plain = aead::open_in_place(key, &ad, sealed)?;
    let (predecessors, content) = decode_plaintext(plain).map_err(DecryptError::Plaintext)?;
    Ok(DecryptedChange {
        key: key.clone(),
        predecessors,
        content,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capability::{ContentBody, Proof};
    use crate::crypto::signing::SigningKey;
    use crate::signed::{Op, Signed, Verified};

    fn sealed(content: &[u8]) -> (Verified<ContentOp>, SymmetricKey, SigningKey) {
        let signer = SigningKey::from_seed(&[3; 32]);
        let mut op: ContentOp = Op::new(
            signer.public_key(),
            vec![Hash([9; 32])],
            ContentBody {
                document: DocumentId(PublicKey([2; 32])),
                auth_heads: vec![Hash([4; 32])],
                proof: Proof::Root,
                payload: Payload::Blob {
                    hash: Hash([0; 32]),
                    len: 0,
                },
            },
        );
        let pred = (Hash([9; 32]), SymmetricKey::from_bytes([8; 32]));
        let (payload, key) = seal_inline_with(
            &SymmetricKey::from_bytes([6; 32]),
            Hash([7; 32]),
            [5; INLINE_SALT_LEN],
            op.header(),
            &[pred],
            content,
        )
        .expect("seal");
        op.body.payload = payload;
        (Verified::sign(op, &signer).expect("sign"), key, signer)
    }

    /// INL-1, INL-3, INL-5: round trip through the signed envelope; the key carried is the
    /// predecessor's; a wrong key is a commitment failure.
    #[test]
    fn inline_changes_round_trip_and_refuse_a_wrong_key() {
        let (op, key, _) = sealed(b"hello");
        let decoded = Signed::<ContentOp>::decode(op.as_bytes()).expect("decode");
        let opened = open_inline_with_key(&key, decoded.unverified_payload()).expect("open");
        assert_eq!(opened.content.as_slice(), b"hello");
        assert_eq!(opened.predecessors.len(), 1);
        assert_eq!(opened.predecessors[0].0, Hash([9; 32]));
        assert_eq!(
            open_inline_with_key(&SymmetricKey::from_bytes([1; 32]), &op).map(|_| ()),
            Err(DecryptError::KeyCommitment)
        );
    }

    /// INL-4: the header is the associated data; a flipped ciphertext byte fails too.
    #[test]
    fn inline_changes_are_bound_to_their_header() {
        let (op, key, signer) = sealed(b"hello");
        let mut moved: ContentOp = (*op).clone();
        moved.body.auth_heads = vec![Hash([5; 32])];
        let moved = Verified::sign(moved, &signer).expect("sign");
        assert_eq!(
            open_inline_with_key(&key, &moved).map(|_| ()),
            Err(DecryptError::Authentication)
        );
        let mut flipped: ContentOp = (*op).clone();
        if let Payload::Inline(c) = &mut flipped.body.payload {
            c.ciphertext[0] ^= 1;
        }
        assert_eq!(
            open_inline_with_key(&key, &flipped).map(|_| ()),
            Err(DecryptError::Authentication)
        );
        let blob: ContentOp = Op::new(
            signer.public_key(),
            vec![],
            ContentBody {
                document: DocumentId(PublicKey([2; 32])),
                auth_heads: vec![],
                proof: Proof::Root,
                payload: Payload::Blob {
                    hash: Hash([0; 32]),
                    len: 0,
                },
            },
        );
        assert_eq!(
            open_inline_with_key(&key, &blob).map(|_| ()),
            Err(DecryptError::NotInline)
        );
    }

    /// INL-2: what does not fit is refused when sealing and when decoding.
    #[test]
    fn inline_changes_over_the_limit_are_refused() {
        let over = crate::capability::INLINE_MAX_CIPHERTEXT - 16 - 1 - 64 + 1;
        let signer = SigningKey::from_seed(&[3; 32]);
        let op: ContentOp = Op::new(
            signer.public_key(),
            vec![],
            ContentBody {
                document: DocumentId(PublicKey([2; 32])),
                auth_heads: vec![],
                proof: Proof::Root,
                payload: Payload::Blob {
                    hash: Hash([0; 32]),
                    len: 0,
                },
            },
        );
        let pred = (Hash([9; 32]), SymmetricKey::from_bytes([8; 32]));
        assert_eq!(
            seal_inline_with(
                &SymmetricKey::from_bytes([6; 32]),
                Hash([7; 32]),
                [5; INLINE_SALT_LEN],
                op.header(),
                &[pred],
                &vec![0; over],
            )
            .map(|_| ()),
            Err(EncryptError::TooLarge)
        );
        let (fits, _, _) = sealed(&vec![0; over - 1]);
        assert!(Signed::<ContentOp>::decode(fits.as_bytes()).is_ok());
    }

    /// INL-7: a version-1 content op decodes as a blob payload and keeps its bytes and hash.
    #[test]
    fn inl7_version_one_content_ops_still_decode() {
        let signer = SigningKey::from_seed(&[3; 32]);
        let mut bytes = encode(&"keyhive/content");
        bytes.push(1);
        bytes.extend_from_slice(signer.public_key().as_bytes());
        bytes.push(0); // no predecessors
        bytes.extend_from_slice(&[2; 32]); // document
        bytes.push(0); // no auth heads
        bytes.push(0); // Proof::Root
        bytes.extend_from_slice(&[7; 32]); // payload_hash
        bytes.push(5); // payload_len
        let signature = signer.sign(&bytes);
        bytes.extend_from_slice(&signature);
        let op = Signed::<ContentOp>::decode(&bytes).expect("v1 decodes");
        assert_eq!(
            op.unverified_payload().body.payload,
            Payload::Blob {
                hash: Hash([7; 32]),
                len: 5
            }
        );
        assert_eq!(op.hash(), Hash::of_signed(&bytes));
        assert!(
            op.verify().is_ok(),
            "the signature covers the v1 bytes as received"
        );
    }
}
