//! Contact cards: the text line form (CARD-1) and the signed envelope.
#![no_main]

use keyhive_core::identity::ContactCard;
use keyhive_core::signed::Signed;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(line) = std::str::from_utf8(data) {
        let _ = ContactCard::from_line(line);
    }
    if let Ok(signed) = Signed::<ContactCard>::decode(data) {
        let _ = signed.verify();
    }
});
