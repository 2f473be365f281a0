//! The wire protocol (`specs/sync.md` §4, §6): frames, messages, the handshake and the sealed
//! transport after it.
pub mod frame;
pub mod handshake;
pub mod message;
pub mod transport;
#[cfg(test)]
mod vectors;

pub use frame::{FrameError, MAX_FRAME_LEN, PROTOCOL_VERSION, decode_frame, encode_frame};
pub use message::{
    ErrorCode, ErrorFrame, Message, PushOutcome, RequestId, STRANGER_QUOTA_WORDS, SubjectOffer,
    offer_digest,
};
