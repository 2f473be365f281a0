//! Known-answer vectors for the frames of `specs/sync.md` §4 (`specs/vectors/sync.json`): every
//! message type with its exact frame bytes, plus frames every implementation must reject with
//! the named error. `sync_vectors` decodes and re-encodes each; `generate_sync_vectors`
//! (ignored) rewrites the file.

use std::path::PathBuf;

use keyhive_core::Hash;
use keyhive_core::crypto::prekey::PrekeyPublic;
use keyhive_core::crypto::signing::PublicKey;
use keyhive_sync::protocol::message::{Challenge, Hello, Welcome};
use keyhive_sync::protocol::{
    ErrorCode, ErrorFrame, FrameError, Message, PushOutcome, SubjectOffer, decode_frame,
    encode_frame,
};
use keyhive_sync::reconcile::{Prefix, RangeAnswer, RangeQuery};
use keyhive_sync::{ItemKind, SubjectId, WireItem};
use serde_json::{Value, json};

fn vectors_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../specs/vectors/sync.json")
}

fn item() -> WireItem {
    WireItem {
        kind: ItemKind::Content,
        subject: SubjectId(PublicKey([0x53; 32])),
        envelope: vec![0xEE; 64],
    }
}

/// One message of every type, with fixed field values.
fn messages() -> Vec<(&'static str, Message)> {
    let subject = SubjectId(PublicKey([0x53; 32]));
    vec![
        (
            "Challenge",
            Message::Challenge(Challenge {
                server_id: PublicKey([0x01; 32]),
                server_nonce: [0x02; 32],
                server_ephemeral: PrekeyPublic([0x03; 32]),
            }),
        ),
        (
            "Hello",
            Message::Hello(Hello {
                client_id: PublicKey([0x04; 32]),
                client_nonce: [0x05; 32],
                client_ephemeral: PrekeyPublic([0x06; 32]),
                signature: vec![0x07; 64],
            }),
        ),
        (
            "Welcome",
            Message::Welcome(Welcome {
                signature: vec![0x08; 64],
            }),
        ),
        (
            "Error",
            Message::Error(ErrorFrame::new(
                Some(300),
                ErrorCode::Forbidden,
                "no pull access",
            )),
        ),
        (
            "Push",
            Message::Push {
                req: 1,
                items: vec![item()],
            },
        ),
        (
            "PushAck",
            Message::PushAck {
                req: 1,
                outcomes: vec![
                    PushOutcome::Stored,
                    PushOutcome::Duplicate,
                    PushOutcome::Invalid,
                    PushOutcome::Refused("unnamed".into()),
                ],
            },
        ),
        (
            "Pull",
            Message::Pull {
                req: 2,
                hashes: vec![Hash([0x0A; 32])],
            },
        ),
        (
            "Items",
            Message::Items {
                req: 2,
                items: vec![item()],
                last: true,
            },
        ),
        ("Collection", Message::Collection { req: 3 }),
        (
            "Offer",
            Message::Offer {
                req: 3,
                subjects: vec![SubjectOffer {
                    subject,
                    count: 1_000,
                    fingerprint: [0x0B; 16],
                }],
                last: true,
            },
        ),
        (
            "Reconcile",
            Message::Reconcile {
                req: 4,
                subject,
                queries: vec![RangeQuery {
                    prefix: Prefix {
                        len: 3,
                        bytes: vec![0xAB, 0xC0],
                    },
                    fingerprint: [0x0C; 16],
                }],
            },
        ),
        (
            "ReconcileReply",
            Message::ReconcileReply {
                req: 4,
                answers: vec![
                    RangeAnswer::Match,
                    RangeAnswer::Hashes(vec![Hash([0x0D; 32])]),
                    RangeAnswer::Split(vec![[0x0E; 16]; 16]),
                ],
            },
        ),
        (
            "Subscribe",
            Message::Subscribe {
                req: 5,
                subjects: vec![subject],
            },
        ),
        (
            "Subscribed",
            Message::Subscribed {
                req: 5,
                subjects: vec![subject],
            },
        ),
        (
            "Live",
            Message::Live {
                items: vec![item()],
            },
        ),
        (
            "CollectionSince",
            Message::CollectionSince {
                req: 6,
                digest: [0x0F; 32],
            },
        ),
        ("OfferUnchanged", Message::OfferUnchanged { req: 6 }),
    ]
    .into_iter()
    .chain(error_frames())
    .collect()
}

/// SYNC-13: an `Error` frame with each error code, in wire-tag order (`Forbidden` above).
fn error_frames() -> Vec<(&'static str, Message)> {
    [
        ("Error/Malformed", ErrorCode::Malformed),
        ("Error/Oversize", ErrorCode::Oversize),
        ("Error/UnsupportedVersion", ErrorCode::UnsupportedVersion),
        ("Error/HandshakeFailed", ErrorCode::HandshakeFailed),
        ("Error/Unexpected", ErrorCode::Unexpected),
        ("Error/RateLimited", ErrorCode::RateLimited),
        ("Error/TooLarge", ErrorCode::TooLarge),
        ("Error/Internal", ErrorCode::Internal),
        ("Error/Lagged", ErrorCode::Lagged),
        ("Error/ShuttingDown", ErrorCode::ShuttingDown),
        ("Error/Unavailable", ErrorCode::Unavailable),
        ("Error/QuotaExceeded", ErrorCode::QuotaExceeded),
    ]
    .into_iter()
    .map(|(name, code)| (name, Message::Error(ErrorFrame::new(None, code, "detail"))))
    .collect()
}

/// The error code a frame error is reported with (SYNC-13): what an implementation sends.
fn error_name(e: &FrameError) -> String {
    format!("{:?}", e.code())
}

/// Frames that must be rejected, with the error (SYNC-10..12).
fn rejected() -> Vec<(&'static str, Vec<u8>)> {
    let collection = encode_frame(&Message::Collection { req: 3 });
    let mut trailing = collection.clone();
    trailing.push(0);
    let mut old_version = collection.clone();
    old_version[0] = 1;
    // `req` 3 as a non-minimal varint (0x83 0x00).
    let mut overlong = collection[..2].to_vec();
    overlong.extend_from_slice(&[0x83, 0x00]);
    let unknown_variant = vec![2, 99];
    let mut oversize = vec![2u8];
    oversize.resize((1 << 20) + 1, 0);
    vec![
        ("empty", Vec::new()),
        ("old_version", old_version),
        ("trailing_byte", trailing),
        ("non_minimal_varint", overlong),
        ("unknown_message", unknown_variant),
        ("oversize_1MiB_plus_1", oversize),
    ]
}

fn build() -> Value {
    let frames: Vec<Value> = messages()
        .into_iter()
        .map(|(name, m)| json!({ "message": name, "frame": hex::encode(encode_frame(&m)) }))
        .collect();
    let bad: Vec<Value> = rejected()
        .into_iter()
        .map(|(name, bytes)| {
            let error = decode_frame(&bytes).expect_err("must be rejected");
            // The oversize frame is described, not spelled out (1 MiB of zeros).
            let frame = if bytes.len() > 1024 {
                json!({ "version": bytes[0], "zeros_after_version": bytes.len() - 1 })
            } else {
                json!(hex::encode(&bytes))
            };
            json!({ "name": name, "frame": frame, "error": error_name(&error) })
        })
        .collect();
    json!({
        "about": "specs/sync.md §4: frame = version byte (2) || postcard(Message), before sealing (SYNC-38). `frames` decode to the named message and re-encode to the same bytes; `rejected` must fail with `error`.",
        "frames": frames,
        "rejected": bad,
    })
}

#[test]
#[ignore = "rewrites specs/vectors/sync.json"]
fn generate_sync_vectors() {
    // The handshake transcript and reconciliation exchange (`handshake`, `reconciliation`) are
    // generated by `protocol::vectors` inside the crate (they need its fixed-randomness seam);
    // keep them.
    let text = std::fs::read_to_string(vectors_path()).expect("vectors file");
    let mut file: Value = serde_json::from_str(&text).expect("json");
    let ours = build();
    for key in ["about", "frames", "rejected"] {
        file[key] = ours[key].clone();
    }
    let text = serde_json::to_string_pretty(&file).expect("json");
    std::fs::write(vectors_path(), text + "\n").expect("write vectors");
}

#[test]
fn sync_vectors() {
    let text = std::fs::read_to_string(vectors_path()).expect("vectors file");
    let file: Value = serde_json::from_str(&text).expect("json");
    let expected: Vec<(&str, Message)> = messages();
    let frames = file["frames"].as_array().expect("frames");
    assert_eq!(frames.len(), expected.len(), "one frame per message type");
    for ((name, message), vector) in expected.iter().zip(frames) {
        assert_eq!(vector["message"], *name);
        let bytes = hex::decode(vector["frame"].as_str().expect("hex")).expect("hex");
        assert_eq!(&decode_frame(&bytes).expect("decodes"), message, "{name}");
        assert_eq!(encode_frame(message), bytes, "{name}");
    }
    for vector in file["rejected"].as_array().expect("rejected") {
        let bytes = match &vector["frame"] {
            Value::String(h) => hex::decode(h).expect("hex"),
            described => {
                let mut b = vec![described["version"].as_u64().expect("version") as u8];
                b.resize(
                    described["zeros_after_version"].as_u64().expect("len") as usize + 1,
                    0,
                );
                b
            }
        };
        let error = decode_frame(&bytes).expect_err("must be rejected");
        assert_eq!(error_name(&error), vector["error"], "{}", vector["name"]);
    }
}
