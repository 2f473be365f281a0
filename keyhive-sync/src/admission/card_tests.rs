//! ADM-4: a card whose exact bytes are held is admitted as unchanged without verifying it
//! again; any other bytes, even the same card with another signature, are verified.

use keyhive_core::capability::PeerTag;
use keyhive_core::identity::Device;

use super::{Admission, Admitted, Mode, Refusal};
use crate::item::{Item, ItemKind, SubjectId};

fn card_item(bytes: Vec<u8>, device: &Device) -> Item {
    Item::new(ItemKind::Auth, SubjectId(device.id().0), bytes).unwrap()
}

#[test]
fn a_held_card_is_unchanged_and_a_forged_copy_of_it_is_still_refused() {
    let device = Device::generate(Some("dev".into()));
    let card = device.contact_card().unwrap();
    let bytes = card.as_bytes().to_vec();
    for mode in [Mode::Relay, Mode::Replica] {
        let mut admission = Admission::default();
        let from = PeerTag::from(device.id().0);
        let first = admission.admit(mode, from, &card_item(bytes.clone(), &device));
        assert!(matches!(first, Ok(Admitted::Card { changed: true })));
        let again = admission.admit(mode, from, &card_item(bytes.clone(), &device));
        assert!(matches!(again, Ok(Admitted::Card { changed: false })));
        // The same payload under a flipped signature bit: other bytes, so verified, refused.
        let mut forged = bytes.clone();
        let last = forged.len() - 1;
        forged[last] ^= 1;
        let refused = admission.admit(mode, from, &card_item(forged, &device));
        assert!(
            matches!(refused, Err(Refusal::BadSignature(_))),
            "{refused:?}"
        );
    }
}
