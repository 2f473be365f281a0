//! The authenticated key exchange (SYNC-30..SYNC-34, SYNC-38): a SIGMA-style signed
//! Diffie-Hellman built only from the workspace's fixed primitives (X25519, Ed25519, BLAKE3).
//!
//! 1. The server sends `Challenge { server_id, server_nonce, server_ephemeral }` (fresh nonce
//!    and fresh X25519 key per connection).
//! 2. The client checks `server_id` against the id it expects (SYNC-34), picks its own nonce
//!    and ephemeral key, and replies `Hello { client_id, client_nonce, client_ephemeral,
//!    signature }`, signing `tagged("keyhive/sync-handshake", v2, Transcript {role: Client,
//!    ..every field of both messages..})`.
//! 3. The server verifies with `verify_strict` and replies `Welcome { signature }` over the
//!    same transcript with `role: Server`; the client verifies it against `server_id`.
//! 4. Both compute the X25519 output (refusing a non-contributory one), and derive one
//!    ChaCha20-Poly1305 key per direction from it and the transcript hash (SYNC-38). Every later
//!    frame is sealed ([`super::transport`]).
//!
//! Both signatures cover both identities, both nonces and both ephemeral keys, so a middleman
//! that swaps an ephemeral key breaks a signature, and one that forwards the handshake
//! unchanged never learns the session keys. The role byte stops one side's signature being
//! reflected as the other's.

use core::fmt;

use keyhive_core::crypto::prekey::{AgreementError, PrekeyPublic, PrekeySecret};
use keyhive_core::crypto::signing::{PublicKey, SigningKey};
use keyhive_core::encoding::{SignedPayload, encode_tagged};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::message::{Challenge, Hello, Welcome};
use super::transport::{Opener, Sealer};

/// SYNC-38: BLAKE3 `derive_key` context for the transcript hash.
pub const SESSION_TRANSCRIPT_HASH: &str = "keyhive 2026-12-01 sync session transcript hash v1";
/// SYNC-38: BLAKE3 `derive_key` context for the client-to-server frame key.
pub const SESSION_KEY_CLIENT_TO_SERVER: &str =
    "keyhive 2026-12-01 sync session key client to server v1";
/// SYNC-38: BLAKE3 `derive_key` context for the server-to-client frame key.
pub const SESSION_KEY_SERVER_TO_CLIENT: &str =
    "keyhive 2026-12-01 sync session key server to client v1";

/// Who signs a transcript. Never reorder variants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// The connecting side.
    Client,
    /// The accepting side.
    Server,
}

/// The signed handshake transcript (SYNC-31): every field of `Challenge` and `Hello` except
/// the signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transcript {
    /// Which side signs.
    pub role: Role,
    /// The server's key.
    pub server_id: PublicKey,
    /// The server's nonce for this connection.
    pub server_nonce: [u8; 32],
    /// The server's ephemeral X25519 key for this connection.
    pub server_ephemeral: PrekeyPublic,
    /// The client's key.
    pub client_id: PublicKey,
    /// The client's nonce for this connection.
    pub client_nonce: [u8; 32],
    /// The client's ephemeral X25519 key for this connection.
    pub client_ephemeral: PrekeyPublic,
}

impl SignedPayload for Transcript {
    const TAG: &'static str = "keyhive/sync-handshake";
    /// Version 2 adds both ephemeral keys (SYNC-31).
    const VERSION: u8 = 2;
    const MAX_LEN: usize = 320;
}

impl Transcript {
    fn new(challenge: &Challenge, hello: &Hello, role: Role) -> Self {
        Transcript {
            role,
            server_id: challenge.server_id,
            server_nonce: challenge.server_nonce,
            server_ephemeral: challenge.server_ephemeral,
            client_id: hello.client_id,
            client_nonce: hello.client_nonce,
            client_ephemeral: hello.client_ephemeral,
        }
    }

    /// The signed bytes of this transcript (SYNC-31/32).
    pub fn signed_bytes(&self) -> Vec<u8> {
        encode_tagged(self)
    }
}

/// Why a handshake failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The signature is not 64 bytes or does not verify (SYNC-33).
    #[error("handshake signature does not verify")]
    BadSignature,
    /// The server is not the one the client expected (SYNC-34).
    #[error("server identity {found} is not the expected {expected}")]
    UnexpectedServer {
        /// Expected key.
        expected: PublicKey,
        /// Key presented.
        found: PublicKey,
    },
    /// The peer's ephemeral key gives an all-zero (low-order) X25519 output (SYNC-38).
    #[error("ephemeral key agreement refused")]
    Agreement(#[source] AgreementError),
}

/// Fresh 32 random bytes from the OS-seeded CSPRNG.
pub fn nonce() -> [u8; 32] {
    let mut out = [0u8; 32];
    rand::Rng::fill_bytes(&mut keyhive_core::crypto::csprng(), &mut out);
    out
}

fn verify(key: &PublicKey, message: &[u8], signature: &[u8]) -> Result<(), HandshakeError> {
    let sig: &[u8; 64] = signature
        .try_into()
        .map_err(|_| HandshakeError::BadSignature)?;
    key.verify_strict(message, sig)
        .map_err(|_| HandshakeError::BadSignature)
}

/// One side's sealed channel: the sealer for what it sends, the opener for what it receives.
#[derive(Debug)]
pub struct SessionKeys {
    /// Seals outgoing frames.
    pub sealer: Sealer,
    /// Opens incoming frames.
    pub opener: Opener,
}

/// SYNC-38: `k_dir = BLAKE3-derive_key(label_dir, dh || th)` with
/// `th = BLAKE3-derive_key(SESSION_TRANSCRIPT_HASH, signed bytes of the client transcript)`.
fn derive(
    ours: &PrekeySecret,
    theirs: &PrekeyPublic,
    client_transcript: &Transcript,
    role: Role,
) -> Result<SessionKeys, HandshakeError> {
    let dh = ours.agree(theirs).map_err(HandshakeError::Agreement)?;
    let th = blake3::derive_key(SESSION_TRANSCRIPT_HASH, &client_transcript.signed_bytes());
    let mut material = Zeroizing::new([0u8; 64]);
    material[..32].copy_from_slice(dh.as_ref());
    material[32..].copy_from_slice(&th);
    let c2s = Zeroizing::new(blake3::derive_key(
        SESSION_KEY_CLIENT_TO_SERVER,
        material.as_ref(),
    ));
    let s2c = Zeroizing::new(blake3::derive_key(
        SESSION_KEY_SERVER_TO_CLIENT,
        material.as_ref(),
    ));
    Ok(match role {
        Role::Client => SessionKeys {
            sealer: Sealer::new(&c2s),
            opener: Opener::new(&s2c),
        },
        Role::Server => SessionKeys {
            sealer: Sealer::new(&s2c),
            opener: Opener::new(&c2s),
        },
    })
}

/// The server between sending its challenge and receiving the hello.
pub struct ServerHandshake {
    challenge: Challenge,
    ephemeral: PrekeySecret,
}

impl fmt::Debug for ServerHandshake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerHandshake")
            .field("challenge", &self.challenge)
            .field("ephemeral", &"<redacted>")
            .finish()
    }
}

impl ServerHandshake {
    /// SYNC-30: a fresh nonce and ephemeral key for one connection of `server_id`.
    pub fn start(server_id: PublicKey) -> Self {
        Self::start_from(server_id, nonce(), PrekeySecret::generate())
    }

    /// [`Self::start`] with the nonce and ephemeral secret given: the one place that builds a
    /// challenge, so the known-answer transcript (`specs/vectors/sync.json`) runs this code.
    pub(crate) fn start_from(
        server_id: PublicKey,
        server_nonce: [u8; 32],
        ephemeral: PrekeySecret,
    ) -> Self {
        ServerHandshake {
            challenge: Challenge {
                server_id,
                server_nonce,
                server_ephemeral: ephemeral.public(),
            },
            ephemeral,
        }
    }

    /// The challenge to send.
    pub fn challenge(&self) -> &Challenge {
        &self.challenge
    }

    /// SYNC-32/33/38: verifies the client's signature over this connection's transcript, signs
    /// the server's, and derives the session keys.
    pub fn accept(
        self,
        hello: &Hello,
        key: &SigningKey,
    ) -> Result<(Welcome, SessionKeys), HandshakeError> {
        let client = Transcript::new(&self.challenge, hello, Role::Client);
        verify(&hello.client_id, &client.signed_bytes(), &hello.signature)?;
        let keys = derive(
            &self.ephemeral,
            &hello.client_ephemeral,
            &client,
            Role::Server,
        )?;
        let ours = Transcript::new(&self.challenge, hello, Role::Server);
        let welcome = Welcome {
            signature: key.sign(&ours.signed_bytes()).to_vec(),
        };
        Ok((welcome, keys))
    }
}

/// The client between sending its hello and receiving the welcome.
pub struct ClientHandshake {
    challenge: Challenge,
    hello: Hello,
    keys: SessionKeys,
}

impl fmt::Debug for ClientHandshake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientHandshake")
            .field("challenge", &self.challenge)
            .field("hello", &self.hello)
            .field("keys", &self.keys)
            .finish()
    }
}

impl ClientHandshake {
    /// SYNC-31/34/38: checks the server id against `expected` before signing anything, then
    /// answers with a fresh nonce and ephemeral key and derives the session keys.
    pub fn answer(
        challenge: &Challenge,
        key: &SigningKey,
        expected: Option<&PublicKey>,
    ) -> Result<(Hello, ClientHandshake), HandshakeError> {
        Self::answer_from(challenge, key, expected, nonce(), PrekeySecret::generate())
    }

    /// [`Self::answer`] with the nonce and ephemeral secret given: the one place that builds a
    /// hello, so the known-answer transcript (`specs/vectors/sync.json`) runs this code.
    pub(crate) fn answer_from(
        challenge: &Challenge,
        key: &SigningKey,
        expected: Option<&PublicKey>,
        client_nonce: [u8; 32],
        ephemeral: PrekeySecret,
    ) -> Result<(Hello, ClientHandshake), HandshakeError> {
        if let Some(expected) = expected
            && *expected != challenge.server_id
        {
            return Err(HandshakeError::UnexpectedServer {
                expected: *expected,
                found: challenge.server_id,
            });
        }
        let mut hello = Hello {
            client_id: key.public_key(),
            client_nonce,
            client_ephemeral: ephemeral.public(),
            signature: Vec::new(),
        };
        let transcript = Transcript::new(challenge, &hello, Role::Client);
        let keys = derive(
            &ephemeral,
            &challenge.server_ephemeral,
            &transcript,
            Role::Client,
        )?;
        hello.signature = key.sign(&transcript.signed_bytes()).to_vec();
        Ok((
            hello.clone(),
            ClientHandshake {
                challenge: challenge.clone(),
                hello,
                keys,
            },
        ))
    }

    /// SYNC-32: verifies the server's signature; only then are the session keys released.
    pub fn confirm(self, welcome: &Welcome) -> Result<SessionKeys, HandshakeError> {
        let server = Transcript::new(&self.challenge, &self.hello, Role::Server);
        verify(
            &self.challenge.server_id,
            &server.signed_bytes(),
            &welcome.signature,
        )?;
        Ok(self.keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(server: &SigningKey, client: &SigningKey) -> (SessionKeys, SessionKeys) {
        let sh = ServerHandshake::start(server.public_key());
        let (hello, ch) =
            ClientHandshake::answer(sh.challenge(), client, Some(&server.public_key())).unwrap();
        let (welcome, server_keys) = sh.accept(&hello, server).unwrap();
        (ch.confirm(&welcome).unwrap(), server_keys)
    }

    /// SYNC-38: both sides derive the same keys per direction, and the directions differ.
    #[test]
    fn keys_agree_per_direction() {
        let (server, client) = (SigningKey::generate(), SigningKey::generate());
        let (mut c, mut s) = run(&server, &client);
        let up = c.sealer.seal(b"to server".to_vec()).unwrap();
        assert_eq!(s.opener.open(up.clone()).unwrap(), b"to server");
        let down = s.sealer.seal(b"to client".to_vec()).unwrap();
        // Reflected back to the client in its own direction: refused.
        assert!(c.opener.open(up).is_err());
        assert_eq!(c.opener.open(down).unwrap(), b"to client");
        // Another session between the same devices has unrelated keys.
        let (mut c2, _) = run(&server, &client);
        assert!(
            s.opener
                .open(c2.sealer.seal(b"x".to_vec()).unwrap())
                .is_err()
        );
    }

    /// SYNC-33: a hello replayed on a new connection, bound to another server, or claiming
    /// another client's id fails.
    #[test]
    fn replay_and_rebinding_fail() {
        let server = SigningKey::generate();
        let client = SigningKey::generate();
        let other = SigningKey::generate();
        let sh1 = ServerHandshake::start(server.public_key());
        let (hello, _) = ClientHandshake::answer(sh1.challenge(), &client, None).unwrap();
        let sh2 = ServerHandshake::start(server.public_key());
        assert_eq!(
            sh2.accept(&hello, &server).err(),
            Some(HandshakeError::BadSignature)
        );
        let mut forged = hello.clone();
        forged.client_id = other.public_key();
        assert_eq!(
            sh1.accept(&forged, &server).err(),
            Some(HandshakeError::BadSignature)
        );
        let sh3 = ServerHandshake::start(other.public_key());
        let (hello3, _) = ClientHandshake::answer(sh3.challenge(), &client, None).unwrap();
        let sh4 = ServerHandshake::start(server.public_key());
        assert_eq!(
            sh4.accept(&hello3, &server).err(),
            Some(HandshakeError::BadSignature)
        );
    }

    /// SYNC-31/38: a middleman that substitutes either ephemeral key breaks a signature.
    #[test]
    fn substituted_ephemeral_keys_fail() {
        let server = SigningKey::generate();
        let client = SigningKey::generate();
        let mallory = PrekeySecret::generate();
        // Server's ephemeral swapped in the challenge: the client signs the swapped one, the
        // server verifies over its own.
        let sh = ServerHandshake::start(server.public_key());
        let mut swapped = sh.challenge().clone();
        swapped.server_ephemeral = mallory.public();
        let (hello, _) = ClientHandshake::answer(&swapped, &client, None).unwrap();
        assert_eq!(
            sh.accept(&hello, &server).err(),
            Some(HandshakeError::BadSignature)
        );
        // Client's ephemeral swapped in the hello: the server refuses the client signature.
        let sh = ServerHandshake::start(server.public_key());
        let (mut hello, ch) = ClientHandshake::answer(sh.challenge(), &client, None).unwrap();
        let genuine = hello.clone();
        hello.client_ephemeral = mallory.public();
        let challenge = sh.challenge().clone();
        assert_eq!(
            sh.accept(&hello, &server).err(),
            Some(HandshakeError::BadSignature)
        );
        // A welcome signed by the server over a transcript with another client ephemeral does
        // not confirm the client's own transcript.
        let mut other_hello = genuine;
        other_hello.client_ephemeral = mallory.public();
        let t = Transcript::new(&challenge, &other_hello, Role::Server);
        let welcome = Welcome {
            signature: server.sign(&t.signed_bytes()).to_vec(),
        };
        assert_eq!(
            ch.confirm(&welcome).err(),
            Some(HandshakeError::BadSignature)
        );
    }

    /// SYNC-33/34: the client refuses an unexpected server before signing, and refuses a
    /// reflected or short signature.
    #[test]
    fn unexpected_server_and_reflected_signature_fail() {
        let server = SigningKey::generate();
        let client = SigningKey::generate();
        let other = SigningKey::generate();
        let sh = ServerHandshake::start(server.public_key());
        assert!(matches!(
            ClientHandshake::answer(sh.challenge(), &client, Some(&other.public_key())),
            Err(HandshakeError::UnexpectedServer { expected, found })
                if expected == other.public_key() && found == server.public_key()
        ));
        let (hello, ch) = ClientHandshake::answer(sh.challenge(), &client, None).unwrap();
        let reflected = Welcome {
            signature: hello.signature.clone(),
        };
        assert_eq!(
            ch.confirm(&reflected).err(),
            Some(HandshakeError::BadSignature)
        );
        let (_, ch) = ClientHandshake::answer(sh.challenge(), &client, None).unwrap();
        assert_eq!(
            ch.confirm(&Welcome {
                signature: vec![0; 3]
            })
            .err(),
            Some(HandshakeError::BadSignature)
        );
    }

    /// SYNC-38: an all-zero (low-order) ephemeral key is refused on both sides.
    #[test]
    fn low_order_ephemeral_is_refused() {
        let server = SigningKey::generate();
        let client = SigningKey::generate();
        let sh = ServerHandshake::start(server.public_key());
        let mut zero = sh.challenge().clone();
        zero.server_ephemeral = PrekeyPublic([0; 32]);
        assert!(matches!(
            ClientHandshake::answer(&zero, &client, None),
            Err(HandshakeError::Agreement(AgreementError::NonContributory))
        ));
        // A client that signs a low-order ephemeral is refused by the server after the
        // signature check.
        let mut hello = Hello {
            client_id: client.public_key(),
            client_nonce: nonce(),
            client_ephemeral: PrekeyPublic([0; 32]),
            signature: Vec::new(),
        };
        let t = Transcript::new(sh.challenge(), &hello, Role::Client);
        hello.signature = client.sign(&t.signed_bytes()).to_vec();
        assert!(matches!(
            sh.accept(&hello, &server),
            Err(HandshakeError::Agreement(AgreementError::NonContributory))
        ));
        assert!(format!("{:?}", ServerHandshake::start(server.public_key())).contains("redacted"));
    }
}
