//! Optional TLS for relays and clients (`specs/sync.md` SYNC-35..SYNC-37).
//!
//! TLS only protects the transport: the handshake's device-key proof (SYNC-30..SYNC-34) runs
//! inside the WebSocket either way and never depends on it. Every configuration built here uses
//! rustls with the *ring* provider; no other provider and no native-tls are linked.
//!
//! - Relay: [`server_config`] or [`server_config_from_pem`], then
//!   [`crate::relay::RelayConfig::with_tls`].
//! - Client: `wss://` URLs are verified against the webpki (Mozilla) roots by default
//!   ([`default_client_config`]); pass a [`client_config_trusting`] configuration to
//!   [`crate::Session::connect_tls`] or [`crate::Client::new_with_tls`] to trust something else,
//!   such as a self-signed relay certificate.

use std::sync::{Arc, OnceLock};

pub use rustls;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsConfigError {
    /// The PEM input could not be parsed.
    #[error("invalid PEM")]
    Pem(#[source] rustls::pki_types::pem::Error),
    /// No certificate was given (an empty chain or trust list).
    #[error("no certificate given")]
    NoCertificate,
    /// rustls refused the certificate, key or trust anchor.
    #[error("TLS configuration refused")]
    Rustls(#[from] rustls::Error),
}

/// The one crypto provider used for every configuration (ring).
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// SYNC-37: a client configuration trusting the webpki (Mozilla) root certificates. Built once
/// per process and shared.
pub fn default_client_config() -> Arc<ClientConfig> {
    static DEFAULT: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    DEFAULT
        .get_or_init(|| {
            let roots = RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            Arc::new(client_config_with_roots(roots))
        })
        .clone()
}

/// A client configuration trusting exactly `anchors` (e.g. a relay's self-signed certificate).
/// The server certificate is still verified, including its name (SYNC-37).
pub fn client_config_trusting(
    anchors: impl IntoIterator<Item = CertificateDer<'static>>,
) -> Result<Arc<ClientConfig>, TlsConfigError> {
    let mut roots = RootCertStore::empty();
    for anchor in anchors {
        roots.add(anchor)?;
    }
    if roots.is_empty() {
        return Err(TlsConfigError::NoCertificate);
    }
    Ok(Arc::new(client_config_with_roots(roots)))
}

/// A client configuration trusting the webpki (Mozilla) roots and also `extra` (e.g. the
/// self-signed certificate or private CA of relays an app or person added by hand). The server
/// certificate is still verified, including its name (SYNC-37).
pub fn client_config_trusting_also(
    extra: impl IntoIterator<Item = CertificateDer<'static>>,
) -> Result<Arc<ClientConfig>, TlsConfigError> {
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    for anchor in extra {
        roots.add(anchor)?;
    }
    Ok(Arc::new(client_config_with_roots(roots)))
}

fn client_config_with_roots(roots: RootCertStore) -> ClientConfig {
    let builder = ClientConfig::builder_with_provider(provider());
    match builder.with_safe_default_protocol_versions() {
        Ok(b) => b.with_root_certificates(roots).with_no_client_auth(),
        // The ring provider supports the safe default versions, so this arm is unreachable;
        // fall back to the global default builder rather than panicking.
        Err(_) => ClientConfig::builder()
            .with_root_certificates(Arc::new(RootCertStore::empty()))
            .with_no_client_auth(),
    }
}

/// SYNC-35: a relay's TLS configuration from its certificate chain (leaf first) and private key.
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<ServerConfig>, TlsConfigError> {
    if chain.is_empty() {
        return Err(TlsConfigError::NoCertificate);
    }
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    // WebSocket upgrades are HTTP/1.1.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// [`server_config`] from PEM text: `cert_pem` holds the chain (leaf first), `key_pem` the
/// private key (PKCS#8, PKCS#1 or SEC1).
pub fn server_config_from_pem(
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<Arc<ServerConfig>, TlsConfigError> {
    let chain = certificates_from_pem(cert_pem)?;
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(TlsConfigError::Pem)?;
    server_config(chain, key)
}

/// Every certificate in PEM text, in order.
pub fn certificates_from_pem(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let chain = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(TlsConfigError::Pem)?;
    if chain.is_empty() {
        return Err(TlsConfigError::NoCertificate);
    }
    Ok(chain)
}
