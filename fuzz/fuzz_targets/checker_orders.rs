//! Structured: fuzz bytes drive grants, revocations and edits by three devices (CAP-19
//! builders); two fresh checkers then ingest the resulting ops in opposite orders and must
//! agree on every op's validity and every subject's members (CAP-3, CAP-12).
#![no_main]

use keyhive_core::capability::{Access, AgentId, Checker, PeerTag};
use keyhive_core::crypto::prekey::PrekeySecret;
use keyhive_core::crypto::signing::SigningKey;
use keyhive_core::identity::{Device, DocumentId, GroupId};
use libfuzzer_sys::fuzz_target;

fn device(seed: u8) -> Device {
    let prekey = PrekeySecret::from_bytes([seed ^ 0x80; 32]);
    Device::from_parts(SigningKey::from_seed(&[seed; 32]), vec![prekey], None)
}

fuzz_target!(|data: &[u8]| {
    let devices: Vec<Device> = (1..=3).map(device).collect();
    let mut c = Checker::default();
    let Ok(doc) = c.create_document(&devices[0]) else {
        return;
    };
    let doc = doc.genesis.issuer;
    let Ok(group) = c.create_group(&devices[0]) else {
        return;
    };
    let group = group.issuer;
    let subjects = [doc, group];
    for step in data.chunks_exact(4).take(64) {
        let actor = &devices[step[1] as usize % 3];
        let subject = subjects[step[2] as usize % 2];
        match step[0] % 4 {
            0 => {
                let agent = match step[3] % 4 {
                    3 => AgentId::Group(GroupId(group)),
                    i => AgentId::Individual(devices[i as usize].id()),
                };
                let _ = c.delegate(actor, &subject, agent, Access::ALL[step[3] as usize % 4]);
            }
            1 => {
                let target = devices[step[3] as usize % 3].id();
                let _ = c.revoke_member(actor, &subject, AgentId::Individual(target));
            }
            _ => {
                let _ = c.write(actor, DocumentId(doc), &step[3..]);
            }
        }
    }
    let ops: Vec<Vec<u8>> = c.ops().map(|o| o.as_bytes().to_vec()).collect();
    let mut forward = Checker::default();
    let mut backward = Checker::default();
    for bytes in &ops {
        forward
            .ingest(PeerTag::LOCAL, bytes)
            .expect("a held op ingests");
    }
    for bytes in ops.iter().rev() {
        backward
            .ingest(PeerTag::LOCAL, bytes)
            .expect("a held op ingests");
    }
    assert_eq!(backward.pending_len(), 0);
    for op in c.ops() {
        let h = op.hash();
        assert_eq!(forward.op_validity(&h), backward.op_validity(&h));
        assert_eq!(forward.op_validity(&h), c.op_validity(&h));
    }
    for s in subjects {
        assert_eq!(*forward.members(&s), *backward.members(&s));
    }
});
