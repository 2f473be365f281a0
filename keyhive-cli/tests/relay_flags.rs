//! `keyhive relay serve` sets the per-address limits (specs/sync.md SYNC-108) from its flags:
//! with `--address-max-connections 1 --limit-loopback`, a second connection from 127.0.0.1
//! while the first is open is refused with HTTP 503.

mod common;

use std::io::Read;
use std::net::TcpStream;

use common::RelayProcess;

#[test]
fn address_max_connections_flag_limits_one_address() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(
        &dir.path().join("relay"),
        &[
            "--address-max-connections".as_ref(),
            "1".as_ref(),
            "--limit-loopback".as_ref(),
        ],
    );
    let host = relay
        .url
        .trim_start_matches("ws://")
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    // Accepted first (the listener takes connections in order), and held open.
    let _first = TcpStream::connect(&host).unwrap();
    let mut second = TcpStream::connect(&host).unwrap();
    // Refused at accept: the relay answers without reading a request (sending one could make
    // its close a reset that discards the answer).
    let mut answer = Vec::new();
    second.read_to_end(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 503"),
        "the address's second connection is refused: {answer:?}"
    );
    relay.stop();
}
