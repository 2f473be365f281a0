//! Invite codes (`specs/invitations.md` INV-8): what an invitee needs to redeem an invitation
//! from a fresh device, in one line.
//!
//! `khi1.` followed by unpadded base64url of `version (1) || subject (32) || invitation hash
//! (32) || secret (32) || relay URL (UTF-8, rest)`; the link form is
//! `keyhive://invite/<the same base64url>`. The code carries the secret: treat it like a
//! password (it is held in zeroizing buffers here and never printed by `Debug`).

use core::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use keyhive_core::capability::InviteSecret;
use keyhive_core::crypto::hash::Hash;
use keyhive_core::crypto::signing::PublicKey;
use zeroize::Zeroizing;

/// The text form's prefix (version 1).
pub const CODE_PREFIX: &str = "khi1.";
/// The link form's prefix.
pub const LINK_PREFIX: &str = "keyhive://invite/";
const VERSION: u8 = 1;
const FIXED: usize = 1 + 32 + 32 + 32;
/// Longest relay URL a code may carry.
pub const MAX_URL_LEN: usize = 512;

/// Everything an invitee needs to redeem an invitation.
pub struct InviteCode {
    /// Where the inviter syncs (the relay the redemption is pushed to).
    pub relay: String,
    /// The group or document invited to.
    pub subject: PublicKey,
    /// The invitation op's hash.
    pub invitation: Hash,
    /// The invitation secret (INV-2).
    pub secret: InviteSecret,
}

/// Why a text is not an invite code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InviteCodeError {
    /// Neither `khi1.` nor `keyhive://invite/` starts the text.
    #[error("an invite code starts with `khi1.` or `keyhive://invite/`")]
    Prefix,
    /// The rest is not unpadded base64url.
    #[error("the invite code is not valid base64url")]
    Base64,
    /// The decoded bytes are too short or of another version.
    #[error("the invite code is truncated or of an unknown version")]
    Layout,
    /// The relay URL is not UTF-8, empty or too long.
    #[error("the invite code's relay URL is not a URL")]
    Url,
}

impl InviteCode {
    /// The one-line text form (`khi1.…`), in a zeroizing buffer.
    pub fn encode(&self) -> Zeroizing<String> {
        let mut bytes = Zeroizing::new(Vec::with_capacity(FIXED + self.relay.len()));
        bytes.push(VERSION);
        bytes.extend_from_slice(self.subject.as_bytes());
        bytes.extend_from_slice(self.invitation.as_bytes());
        bytes.extend_from_slice(self.secret.expose());
        bytes.extend_from_slice(self.relay.as_bytes());
        let mut out = Zeroizing::new(String::with_capacity(CODE_PREFIX.len() + bytes.len() * 2));
        out.push_str(CODE_PREFIX);
        URL_SAFE_NO_PAD.encode_string(bytes.as_slice(), &mut out);
        out
    }

    /// The link form (`keyhive://invite/…`).
    pub fn link(&self) -> Zeroizing<String> {
        let code = self.encode();
        let body = code.strip_prefix(CODE_PREFIX).unwrap_or(&code);
        Zeroizing::new(format!("{LINK_PREFIX}{body}"))
    }

    /// Parses either form (surrounding whitespace ignored).
    pub fn parse(text: &str) -> Result<Self, InviteCodeError> {
        let text = text.trim();
        let body = text
            .strip_prefix(CODE_PREFIX)
            .or_else(|| text.strip_prefix(LINK_PREFIX))
            .ok_or(InviteCodeError::Prefix)?;
        let bytes = Zeroizing::new(
            URL_SAFE_NO_PAD
                .decode(body)
                .map_err(|_| InviteCodeError::Base64)?,
        );
        if bytes.len() <= FIXED || bytes[0] != VERSION {
            return Err(InviteCodeError::Layout);
        }
        let mut subject = [0u8; 32];
        subject.copy_from_slice(&bytes[1..33]);
        let mut invitation = [0u8; 32];
        invitation.copy_from_slice(&bytes[33..65]);
        let mut secret = Zeroizing::new([0u8; 32]);
        secret.copy_from_slice(&bytes[65..97]);
        let relay = std::str::from_utf8(&bytes[FIXED..]).map_err(|_| InviteCodeError::Url)?;
        if relay.len() > MAX_URL_LEN || !relay.contains("://") {
            return Err(InviteCodeError::Url);
        }
        Ok(InviteCode {
            relay: relay.to_owned(),
            subject: PublicKey(subject),
            invitation: Hash(invitation),
            secret: InviteSecret::from_bytes(*secret),
        })
    }
}

impl fmt::Debug for InviteCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InviteCode")
            .field("relay", &self.relay)
            .field("subject", &self.subject)
            .field("invitation", &self.invitation)
            .field("secret", &self.secret)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> InviteCode {
        InviteCode {
            relay: "ws://127.0.0.1:9000/sync".into(),
            subject: PublicKey([1; 32]),
            invitation: Hash::of_content(b"inv"),
            secret: InviteSecret::from_bytes([5; 32]),
        }
    }

    #[test]
    fn both_forms_round_trip_and_debug_hides_the_secret() {
        let code = sample();
        for text in [code.encode(), code.link()] {
            let back = InviteCode::parse(&text).expect("parses");
            assert_eq!(back.relay, code.relay);
            assert_eq!(back.subject, code.subject);
            assert_eq!(back.invitation, code.invitation);
            assert_eq!(back.secret, code.secret);
            assert!(!text.contains(char::is_whitespace));
        }
        assert!(format!("{code:?}").contains("<redacted>"));
    }

    #[test]
    fn garbage_is_refused_with_a_typed_error() {
        assert_eq!(
            InviteCode::parse("hello").err(),
            Some(InviteCodeError::Prefix)
        );
        assert_eq!(
            InviteCode::parse("khi1.***").err(),
            Some(InviteCodeError::Base64)
        );
        assert_eq!(
            InviteCode::parse("khi1.AQID").err(),
            Some(InviteCodeError::Layout)
        );
        let text = sample().encode();
        let cut = &text[..text.len() - 30];
        assert!(InviteCode::parse(cut).is_err());
        let mut bytes = vec![1u8];
        bytes.extend_from_slice(&[0u8; 96]);
        bytes.extend_from_slice(b"not a url");
        let text = format!("{CODE_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
        assert_eq!(InviteCode::parse(&text).err(), Some(InviteCodeError::Url));
    }
}
