//! Frame encoding: `frame = PROTOCOL_VERSION (1 byte) || postcard(Message)` in one binary
//! WebSocket message (SYNC-10..SYNC-12). After the handshake each frame is sealed before it
//! is sent ([`super::transport`], SYNC-38).

use keyhive_core::encoding::{DecodeError, decode_canonical, encode};

use super::message::{ErrorCode, Message};

/// SYNC-10: the protocol version this build speaks (2: ephemeral keys in the handshake and
/// sealed frames after it, SYNC-38).
pub const PROTOCOL_VERSION: u8 = 2;

/// SYNC-12: largest frame either side accepts (1 MiB).
pub const MAX_FRAME_LEN: usize = 1 << 20;

/// SYNC-12: the WebSocket layer drops messages larger than this outright (closing the
/// connection); frames between [`MAX_FRAME_LEN`] and this size get a typed `Oversize` error.
pub const MAX_WS_MESSAGE_LEN: usize = 2 * MAX_FRAME_LEN;

/// Why a frame was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// SYNC-12.
    #[error("frame of {0} bytes exceeds the limit")]
    Oversize(usize),
    /// SYNC-10.
    #[error("frame is empty")]
    Empty,
    /// SYNC-10.
    #[error("unsupported protocol version {0}")]
    UnsupportedVersion(u8),
    /// SYNC-11: the body does not decode canonically.
    #[error("malformed frame: {0}")]
    Malformed(DecodeError),
}

impl FrameError {
    /// The error code reported to the peer.
    pub fn code(&self) -> ErrorCode {
        match self {
            FrameError::Oversize(_) => ErrorCode::Oversize,
            FrameError::UnsupportedVersion(_) => ErrorCode::UnsupportedVersion,
            FrameError::Empty | FrameError::Malformed(_) => ErrorCode::Malformed,
        }
    }
}

/// Encodes a message as a frame.
pub fn encode_frame(message: &Message) -> Vec<u8> {
    let body = encode(message);
    let mut out = Vec::with_capacity(body.len() + 1);
    out.push(PROTOCOL_VERSION);
    out.extend_from_slice(&body);
    out
}

/// Decodes a frame (SYNC-10..SYNC-12): size, version, canonical body.
pub fn decode_frame(bytes: &[u8]) -> Result<Message, FrameError> {
    if bytes.len() > MAX_FRAME_LEN {
        return Err(FrameError::Oversize(bytes.len()));
    }
    let (&version, body) = bytes.split_first().ok_or(FrameError::Empty)?;
    if version != PROTOCOL_VERSION {
        return Err(FrameError::UnsupportedVersion(version));
    }
    decode_canonical(body, MAX_FRAME_LEN).map_err(FrameError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::message::ErrorFrame;

    #[test]
    fn round_trip_and_rejections() {
        let m = Message::Error(ErrorFrame::new(
            Some(3),
            ErrorCode::Forbidden,
            "x".repeat(999),
        ));
        let bytes = encode_frame(&m);
        let back = decode_frame(&bytes).expect("decodes");
        match &back {
            Message::Error(e) => assert_eq!(e.detail.len(), 256),
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(back, m);
        assert_eq!(decode_frame(&[]), Err(FrameError::Empty));
        assert_eq!(
            decode_frame(&[9, 0]),
            Err(FrameError::UnsupportedVersion(9))
        );
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(matches!(
            decode_frame(&trailing),
            Err(FrameError::Malformed(_))
        ));
        assert!(matches!(
            decode_frame(&vec![PROTOCOL_VERSION; MAX_FRAME_LEN + 1]),
            Err(FrameError::Oversize(_))
        ));
        assert!(matches!(
            decode_frame(&[PROTOCOL_VERSION, 200]),
            Err(FrameError::Malformed(_))
        ));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
            let _ = decode_frame(&bytes);
            let mut v = vec![PROTOCOL_VERSION];
            v.extend_from_slice(&bytes);
            let _ = decode_frame(&v);
        }
    }
}
