//! Error hygiene (issue 11, house style): along every error's source chain, no message repeats
//! its source's message, so `{:#}` and `Caused by:` listings say each thing once; and causes
//! stay typed (the chain reaches the original error, not a copy of its text).

use std::error::Error;

use keyhive_core::crypto::signing::SigningKey;
use keyhive_core::identity::ContactCard;
use keyhive_core::wire_form::CompactKind;
use keyhive_sync::client::{ConnectError, Session};
use keyhive_sync::{Item, ItemKind, SubjectId, WireItem};

/// Every message in `error`'s chain, outermost first, after checking that none contains the
/// next one.
fn chain_without_repeats(error: &(dyn Error + 'static)) -> Vec<String> {
    let mut messages = vec![error.to_string()];
    let mut current = error;
    while let Some(source) = current.source() {
        let (outer, inner) = (current.to_string(), source.to_string());
        assert!(
            inner.is_empty() || !outer.contains(&inner),
            "{outer:?} repeats its source {inner:?}"
        );
        messages.push(inner);
        current = source;
    }
    messages
}

#[test]
fn a_truncated_contact_card_names_each_cause_once() {
    let error = ContactCard::from_line("keyhive-card1:AAAA").unwrap_err();
    let chain = chain_without_repeats(&error);
    assert_eq!(chain[0], "contact card is malformed");
    assert!(
        chain.len() >= 2,
        "the decode error stays a typed source: {chain:?}"
    );
}

#[test]
fn a_malformed_compact_envelope_names_each_cause_once() {
    let error = Item::from_wire(WireItem {
        kind: ItemKind::Auth,
        subject: SubjectId(SigningKey::generate().public_key()),
        // A compact auth code, then too few bytes for the issuer, predecessors and signature.
        envelope: [CompactKind::Auth.codes().next().unwrap()]
            .into_iter()
            .chain([0; 70])
            .collect(),
    })
    .unwrap_err();
    let chain = chain_without_repeats(&error);
    assert!(
        chain.len() >= 2,
        "the wire-form error stays a typed source: {chain:?}"
    );
}

#[test]
fn bad_pem_keeps_the_parser_error_as_its_source() {
    let error = keyhive_sync::tls::server_config_from_pem(
        b"-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n",
        b"",
    )
    .unwrap_err();
    let chain = chain_without_repeats(&error);
    assert_eq!(chain[0], "invalid PEM");
    assert_eq!(chain.len(), 2, "{chain:?}");
}

#[tokio::test]
async fn a_refused_connection_keeps_the_io_error_as_its_source() {
    // A port nothing listens on: bind one, learn its number, close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let error = Session::connect(
        &format!("ws://127.0.0.1:{port}"),
        &SigningKey::generate(),
        None,
    )
    .await
    .err()
    .expect("nothing listens there");
    let ConnectError::Transport(io) = &error else {
        panic!("expected a transport error, got {error:?}");
    };
    let chain = chain_without_repeats(&error);
    assert_eq!(chain[0], "transport error");
    assert_eq!(chain[1], io.to_string());
}
