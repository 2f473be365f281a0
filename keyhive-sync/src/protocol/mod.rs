//! The wire protocol (`specs/sync.md` §4): frames, messages and the handshake.
pub mod frame;
pub mod handshake;
pub mod message;

pub use frame::{FrameError, MAX_FRAME_LEN, PROTOCOL_VERSION, decode_frame, encode_frame};
pub use message::{ErrorCode, ErrorFrame, Message, PushOutcome, RequestId, SubjectOffer};
