//! The mutual handshake (SYNC-30..SYNC-34).
//!
//! 1. The server sends `Challenge { server_id, server_nonce }` (fresh random nonce).
//! 2. The client replies `Hello { client_id, client_nonce, signature }`, signing the client
//!    transcript `tagged("keyhive/sync-handshake", v1, {role: Client, server_id, server_nonce,
//!    client_nonce, client_id})`.
//! 3. The server verifies with `verify_strict` and replies `Welcome { signature }` over the same
//!    transcript with `role: Server`; the client verifies it against `server_id` (and against the
//!    id it expected, if any).
//!
//! The server nonce is fresh per connection, so a recorded `Hello` fails on any other
//! connection (SYNC-33); the role byte prevents reflecting one side's signature as the other's.

use keyhive_core::crypto::signing::{PublicKey, SigningKey};
use keyhive_core::encoding::{SignedPayload, encode_tagged};
use serde::{Deserialize, Serialize};

use super::message::{Challenge, Hello, Welcome};

/// Who signs a transcript. Never reorder variants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// The connecting side.
    Client,
    /// The accepting side.
    Server,
}

/// The signed handshake transcript (SYNC-31).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transcript {
    /// Which side signs.
    pub role: Role,
    /// The server's key.
    pub server_id: PublicKey,
    /// The server's nonce for this connection.
    pub server_nonce: [u8; 32],
    /// The client's nonce for this connection.
    pub client_nonce: [u8; 32],
    /// The client's key.
    pub client_id: PublicKey,
}

impl SignedPayload for Transcript {
    const TAG: &'static str = "keyhive/sync-handshake";
    const VERSION: u8 = 1;
    const MAX_LEN: usize = 256;
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
}

/// Fresh 32 random bytes from the OS-seeded CSPRNG.
pub fn nonce() -> [u8; 32] {
    let mut out = [0u8; 32];
    rand::Rng::fill_bytes(&mut rand::rng(), &mut out);
    out
}

fn transcript(
    role: Role,
    challenge: &Challenge,
    client_id: PublicKey,
    client_nonce: [u8; 32],
) -> Vec<u8> {
    encode_tagged(&Transcript {
        role,
        server_id: challenge.server_id,
        server_nonce: challenge.server_nonce,
        client_nonce,
        client_id,
    })
}

fn verify(key: &PublicKey, message: &[u8], signature: &[u8]) -> Result<(), HandshakeError> {
    let sig: &[u8; 64] = signature
        .try_into()
        .map_err(|_| HandshakeError::BadSignature)?;
    key.verify_strict(message, sig)
        .map_err(|_| HandshakeError::BadSignature)
}

/// Client: answers a challenge (SYNC-31).
pub fn answer(challenge: &Challenge, key: &SigningKey) -> Hello {
    let client_nonce = nonce();
    let client_id = key.public_key();
    let signature = key
        .sign(&transcript(
            Role::Client,
            challenge,
            client_id,
            client_nonce,
        ))
        .to_vec();
    Hello {
        client_id,
        client_nonce,
        signature,
    }
}

/// Server: checks a hello against the challenge it sent and signs its welcome (SYNC-32/33).
pub fn accept(
    challenge: &Challenge,
    hello: &Hello,
    key: &SigningKey,
) -> Result<Welcome, HandshakeError> {
    let message = transcript(Role::Client, challenge, hello.client_id, hello.client_nonce);
    verify(&hello.client_id, &message, &hello.signature)?;
    let ours = transcript(Role::Server, challenge, hello.client_id, hello.client_nonce);
    Ok(Welcome {
        signature: key.sign(&ours).to_vec(),
    })
}

/// Client: checks the server's welcome (SYNC-32/34).
pub fn confirm(
    challenge: &Challenge,
    hello: &Hello,
    welcome: &Welcome,
    expected_server: Option<&PublicKey>,
) -> Result<(), HandshakeError> {
    if let Some(expected) = expected_server
        && *expected != challenge.server_id
    {
        return Err(HandshakeError::UnexpectedServer {
            expected: *expected,
            found: challenge.server_id,
        });
    }
    let message = transcript(Role::Server, challenge, hello.client_id, hello.client_nonce);
    verify(&challenge.server_id, &message, &welcome.signature)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn challenge(server: &SigningKey) -> Challenge {
        Challenge {
            server_id: server.public_key(),
            server_nonce: nonce(),
        }
    }

    #[test]
    fn mutual_proof_and_replay() {
        let server = SigningKey::generate();
        let client = SigningKey::generate();
        let c1 = challenge(&server);
        let hello = answer(&c1, &client);
        let welcome = accept(&c1, &hello, &server).expect("accepts");
        assert_eq!(
            confirm(&c1, &hello, &welcome, Some(&server.public_key())),
            Ok(())
        );
        // Replay on a new connection (fresh server nonce) fails.
        let c2 = challenge(&server);
        assert_eq!(
            accept(&c2, &hello, &server),
            Err(HandshakeError::BadSignature)
        );
        // A hello bound to another server id fails.
        let other = SigningKey::generate();
        let c3 = Challenge {
            server_id: other.public_key(),
            server_nonce: c1.server_nonce,
        };
        assert_eq!(
            accept(&c3, &hello, &server),
            Err(HandshakeError::BadSignature)
        );
        // Claiming another client's id fails.
        let mut forged = hello.clone();
        forged.client_id = other.public_key();
        assert_eq!(
            accept(&c1, &forged, &server),
            Err(HandshakeError::BadSignature)
        );
        // The client refuses an unexpected server and a reflected client signature.
        assert!(matches!(
            confirm(&c1, &hello, &welcome, Some(&other.public_key())),
            Err(HandshakeError::UnexpectedServer { .. })
        ));
        let reflected = Welcome {
            signature: hello.signature.clone(),
        };
        assert_eq!(
            confirm(&c1, &hello, &reflected, None),
            Err(HandshakeError::BadSignature)
        );
        let short = Welcome {
            signature: vec![0; 3],
        };
        assert_eq!(
            confirm(&c1, &hello, &short, None),
            Err(HandshakeError::BadSignature)
        );
    }
}
