//! Path secrets: derivation, wrapping for one recipient, and reading an update path
//! (`specs/cgka.md` §4, CGKA-8..CGKA-11).

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

use crate::crypto::derive::{self, derive_key};
use crate::crypto::prekey::{PrekeyPublic, PrekeySecret};
use crate::crypto::secret::SymmetricKey;
use crate::identity::DocumentId;

use super::op::{
    FilledNode, PathNode, PositionedNode, PositionedSecret, UpdatePath, WrappedSecret,
};

/// A 32-byte path secret (zeroized on drop).
pub type PathSecret = Zeroizing<[u8; 32]>;

/// CGKA-8: the next path secret up.
pub fn next_secret(secret: &[u8; 32]) -> PathSecret {
    Zeroizing::new(derive_key(derive::CGKA_PATH_SECRET, secret))
}

/// CGKA-8: a node's X25519 key pair from its path secret.
pub fn node_key(secret: &[u8; 32]) -> PrekeySecret {
    let mut bytes = Zeroizing::new(derive_key(derive::CGKA_NODE_KEY, secret));
    let key = PrekeySecret::from_bytes(*bytes);
    zeroize::Zeroize::zeroize(&mut *bytes);
    key
}

/// CGKA-27: the secret of a filled node whose left child the same fill filled, from that
/// child's node secret key: whoever holds the child's key derives the node's, so the fill
/// wraps the node's secret only for its right child's resolution.
pub fn chain_secret(left: &PrekeySecret) -> PathSecret {
    Zeroizing::new(derive_key(derive::CGKA_FILL_CHAIN, &*left.to_bytes()))
}

/// CGKA-10: the epoch root secret of an update whose root path secret is `secret`.
pub fn epoch_root(document: &DocumentId, secret: &[u8; 32]) -> SymmetricKey {
    let mut material = Zeroizing::new([0u8; 64]);
    material[..32].copy_from_slice(document.public_key().as_bytes());
    material[32..].copy_from_slice(secret);
    SymmetricKey::from_bytes(derive_key(derive::CGKA_EPOCH_ROOT, &*material))
}

/// CGKA-9: the one-time key wrapping a path secret from `sender` to `recipient`.
fn wrap_key(
    document: &DocumentId,
    shared: &[u8; 32],
    sender: &PrekeyPublic,
    recipient: &PrekeyPublic,
) -> Zeroizing<[u8; 32]> {
    let mut material = Zeroizing::new([0u8; 128]);
    material[..32].copy_from_slice(document.public_key().as_bytes());
    material[32..64].copy_from_slice(shared);
    material[64..96].copy_from_slice(&sender.0);
    material[96..].copy_from_slice(&recipient.0);
    Zeroizing::new(derive_key(derive::CGKA_PATH_WRAP, &*material))
}

/// Why an update path could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    /// A key in the path is of low order.
    #[error("non-contributory X25519 agreement in an update path")]
    NonContributory,
    /// A wrapped secret failed authentication.
    #[error("wrapped path secret failed authentication")]
    Unwrap,
    /// A decrypted path secret does not yield the public key the path announces (CGKA-11).
    #[error("path secret does not match the announced public key at level {0}")]
    KeyMismatch(usize),
}

/// CGKA-9: wraps `secret` for `recipient` using the sender node's secret key.
pub fn wrap(
    document: &DocumentId,
    sender: &PrekeySecret,
    recipient: &PrekeyPublic,
    secret: &[u8; 32],
) -> Result<WrappedSecret, PathError> {
    let shared = sender
        .agree(recipient)
        .map_err(|_| PathError::NonContributory)?;
    let key = wrap_key(document, &shared, &sender.public(), recipient);
    seal_secret(&key, *recipient, secret)
}

/// As [`wrap`] with the sender's public key already computed (saves a base multiplication).
pub(crate) fn wrap_from(
    document: &DocumentId,
    sender: &PrekeySecret,
    sender_public: &PrekeyPublic,
    recipient: &PrekeyPublic,
    secret: &[u8; 32],
) -> Result<WrappedSecret, PathError> {
    let shared = sender
        .agree(recipient)
        .map_err(|_| PathError::NonContributory)?;
    let key = wrap_key(document, &shared, sender_public, recipient);
    seal_secret(&key, *recipient, secret)
}

fn seal_secret(
    key: &[u8; 32],
    recipient: PrekeyPublic,
    secret: &[u8; 32],
) -> Result<WrappedSecret, PathError> {
    let cipher = XChaCha20Poly1305::new(key.into());
    // The key is unique per (fresh sender key, recipient), so the all-zero nonce is never
    // reused under one key (CGKA-9).
    let out = cipher
        .encrypt(&XNonce::default(), secret.as_slice())
        .map_err(|_| PathError::Unwrap)?;
    let mut ciphertext = [0u8; 32];
    let mut tag = [0u8; 16];
    if out.len() != 48 {
        return Err(PathError::Unwrap);
    }
    ciphertext.copy_from_slice(&out[..32]);
    tag.copy_from_slice(&out[32..]);
    Ok(WrappedSecret {
        recipient,
        ciphertext,
        tag,
    })
}

/// CGKA-9: unwraps a path secret with the recipient's secret key.
pub fn unwrap(
    document: &DocumentId,
    recipient: &PrekeySecret,
    sender: &PrekeyPublic,
    wrapped: &WrappedSecret,
) -> Result<PathSecret, PathError> {
    let shared = recipient
        .agree(sender)
        .map_err(|_| PathError::NonContributory)?;
    let key = wrap_key(document, &shared, sender, &wrapped.recipient);
    let cipher = XChaCha20Poly1305::new((&*key).into());
    let mut input = [0u8; 48];
    input[..32].copy_from_slice(&wrapped.ciphertext);
    input[32..].copy_from_slice(&wrapped.tag);
    let plain = Zeroizing::new(
        cipher
            .decrypt(&XNonce::default(), input.as_slice())
            .map_err(|_| PathError::Unwrap)?,
    );
    let mut out = Zeroizing::new([0u8; 32]);
    if plain.len() != 32 {
        return Err(PathError::Unwrap);
    }
    out.copy_from_slice(&plain);
    Ok(out)
}

/// The secrets of a freshly generated update path, leaf first.
pub struct FreshPath {
    /// The public path to put in the op.
    pub path: UpdatePath,
    /// Node secret keys, leaf first, for the local secret store.
    pub node_keys: Vec<PrekeySecret>,
    /// The root's path secret.
    pub root_secret: PathSecret,
}

/// CGKA-15: generates a path of `resolutions.len()` nodes from a fresh random leaf secret.
/// `resolutions[i]` is the resolution of the sibling of path node `i` (empty for the root).
pub fn generate(
    document: &DocumentId,
    leaf_secret: PathSecret,
    resolutions: &[Vec<PrekeyPublic>],
) -> Result<FreshPath, PathError> {
    let mut secrets: Vec<PathSecret> = Vec::with_capacity(resolutions.len());
    secrets.push(leaf_secret);
    for i in 1..resolutions.len() {
        let next = next_secret(&secrets[i - 1]);
        secrets.push(next);
    }
    let mut nodes = Vec::with_capacity(resolutions.len());
    let mut node_keys = Vec::with_capacity(resolutions.len());
    for (i, resolution) in resolutions.iter().enumerate() {
        let sk = node_key(&secrets[i]);
        let public = sk.public();
        let mut wrapped = Vec::with_capacity(resolution.len());
        if let Some(parent_secret) = secrets.get(i + 1) {
            let mut recipients = resolution.clone();
            recipients.sort_unstable();
            recipients.dedup();
            for r in &recipients {
                wrapped.push(wrap_from(document, &sk, &public, r, parent_secret)?);
            }
        }
        nodes.push(PathNode { public, wrapped });
        node_keys.push(sk);
    }
    let root_secret = secrets
        .last()
        .map(|s| Zeroizing::new(**s))
        .unwrap_or_else(|| Zeroizing::new([0u8; 32]));
    Ok(FreshPath {
        path: UpdatePath { nodes },
        node_keys,
        root_secret,
    })
}

/// The secrets a reader learns from an update path.
pub struct LearnedPath {
    /// Node secret keys for path levels `first_level..`.
    pub node_keys: Vec<PrekeySecret>,
    /// The root's path secret.
    pub root_secret: PathSecret,
}

/// CGKA-11: reads an update path with whichever secret key `lookup` knows for a recipient.
/// Returns `Ok(None)` if no wrapped secret is addressed to a known key.
pub fn read(
    document: &DocumentId,
    path: &UpdatePath,
    lookup: impl Fn(&PrekeyPublic) -> Option<PrekeySecret>,
) -> Result<Option<LearnedPath>, PathError> {
    for (level, node) in path.nodes.iter().enumerate() {
        for wrapped in &node.wrapped {
            let Some(own) = lookup(&wrapped.recipient) else {
                continue;
            };
            let mut secret = unwrap(document, &own, &node.public, wrapped)?;
            let mut node_keys = Vec::new();
            for (offset, above) in path.nodes[level + 1..].iter().enumerate() {
                let sk = node_key(&secret);
                if sk.public() != above.public {
                    return Err(PathError::KeyMismatch(level + 1 + offset));
                }
                node_keys.push(sk);
                if level + 2 + offset < path.nodes.len() {
                    secret = next_secret(&secret);
                }
            }
            return Ok(Some(LearnedPath {
                node_keys,
                root_secret: secret,
            }));
        }
    }
    Ok(None)
}

/// CGKA-27: a filled node with secret `secret`: its public key and `secret` wrapped (CGKA-9,
/// with the fill's one-time key `ephemeral` as sender) for every key in `recipients`, named
/// in full (the form before CGKA-35; [`fill_node_at`] names them by position).
/// Returns the node and its secret key.
pub fn fill_node(
    document: &DocumentId,
    ephemeral: &PrekeySecret,
    ephemeral_public: &PrekeyPublic,
    node: u32,
    secret: &[u8; 32],
    recipients: &[PrekeyPublic],
) -> Result<(FilledNode, PrekeySecret), PathError> {
    let sk = node_key(secret);
    let mut recipients = recipients.to_vec();
    recipients.sort_unstable();
    recipients.dedup();
    let wrapped = recipients
        .iter()
        .map(|r| wrap_from(document, ephemeral, ephemeral_public, r, secret))
        .collect::<Result<Vec<_>, _>>()?;
    let filled = FilledNode {
        node,
        public: sk.public(),
        wrapped,
    };
    Ok((filled, sk))
}

/// CGKA-31: reads one filled node: from `chained_from` (its left child's key, when the same
/// fill filled that child and `lookup` knows it, CGKA-27) if that gives the announced key,
/// else with whichever secret key
/// `lookup` knows for one of its recipients (the first such wrap). `Ok(None)` if neither;
/// [`PathError::KeyMismatch`] if the secret does not give the announced public key.
pub fn read_filled(
    document: &DocumentId,
    ephemeral: &PrekeyPublic,
    node: &FilledNode,
    chained_from: Option<&PrekeyPublic>,
    lookup: impl Fn(&PrekeyPublic) -> Option<PrekeySecret>,
) -> Result<Option<PrekeySecret>, PathError> {
    if let Some(left) = chained_from.and_then(&lookup) {
        let sk = node_key(&chain_secret(&left));
        if sk.public() == node.public {
            return Ok(Some(sk));
        }
        // A fill made before the chain wraps every node for both children: read it by its
        // wraps (whatever is learned is still checked against the announced key).
    }
    let Some((wrapped, own)) = node
        .wrapped
        .iter()
        .find_map(|w| lookup(&w.recipient).map(|sk| (w, sk)))
    else {
        return Ok(None);
    };
    let secret = unwrap(document, &own, ephemeral, wrapped)?;
    let sk = node_key(&secret);
    if sk.public() != node.public {
        return Err(PathError::KeyMismatch(0));
    }
    Ok(Some(sk))
}

/// CGKA-35: the commitment of a positioned fill to its recipients: `derive_key("keyhive
/// 2026-12-02 cgka fill recipients v1", document || ephemeral || per filled node in op order:
/// node (4 bytes LE) || wrap count (4 bytes LE) || each wrap's recipient key in wrap order)`.
pub fn recipients_commitment<'a>(
    document: &DocumentId,
    ephemeral: &PrekeyPublic,
    nodes: impl IntoIterator<Item = (u32, &'a [PrekeyPublic])>,
) -> [u8; 32] {
    let mut material = Vec::with_capacity(64 + 128);
    material.extend_from_slice(document.public_key().as_bytes());
    material.extend_from_slice(&ephemeral.0);
    for (node, keys) in nodes {
        material.extend_from_slice(&node.to_le_bytes());
        let count = u32::try_from(keys.len()).unwrap_or(u32::MAX);
        material.extend_from_slice(&count.to_le_bytes());
        for key in keys {
            material.extend_from_slice(&key.0);
        }
    }
    derive_key(derive::CGKA_FILL_RECIPIENTS, &material)
}

/// One recipient of a positioned fill node: its position (CGKA-35) and its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Target {
    /// Offset of the recipient's node from the filled node's leftmost leaf.
    pub at: u32,
    /// Index of the key among its node's keys, sorted ascending.
    pub rank: u32,
    /// The key.
    pub key: PrekeyPublic,
}

/// CGKA-27, CGKA-35: as [`fill_node`], with each wrap naming its recipient by position.
/// `targets` must be strictly ascending by position. Returns the node and its secret key.
pub fn fill_node_at(
    document: &DocumentId,
    ephemeral: &PrekeySecret,
    ephemeral_public: &PrekeyPublic,
    node: u32,
    secret: &[u8; 32],
    targets: &[Target],
) -> Result<(PositionedNode, PrekeySecret), PathError> {
    let sk = node_key(secret);
    let wrapped = targets
        .iter()
        .map(|t| {
            let w = wrap_from(document, ephemeral, ephemeral_public, &t.key, secret)?;
            Ok(PositionedSecret {
                at: t.at,
                rank: t.rank,
                ciphertext: w.ciphertext,
                tag: w.tag,
            })
        })
        .collect::<Result<Vec<_>, PathError>>()?;
    let filled = PositionedNode {
        node,
        public: sk.public(),
        wrapped,
    };
    Ok((filled, sk))
}
