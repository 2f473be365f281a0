//! `keyhive relay serve`: the relay that stores and forwards ciphertext, over `ws://` or, with
//! `--tls-cert`/`--tls-key`, `wss://` (specs/sync.md SYNC-35); its items in the embedded redb
//! store, or with `--store postgres://...` in a database several relays share (SYNC-100..103).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use keyhive_core::crypto::signing::PublicKey;
use keyhive_core::identity::{Device, IndividualId};
use keyhive_core::keystore::{self, KeyStore};
use keyhive_sync::capability_policy::CapabilityPolicy;
use keyhive_sync::client::Client;
use keyhive_sync::relay::fanout::Feed;
use keyhive_sync::relay::{AddressLimits, Limits, Relay, RelayConfig, RelayHandle, StrangerQuota};
use keyhive_sync::store::{PostgresConfig, PostgresStore};
use keyhive_sync::{RedbStore, Store};
use serde_json::json;
use tokio::net::TcpListener;

use crate::output::Output;

/// Relay identity file in the data directory (mode 0600).
pub const RELAY_KEY: &str = "relay.key";
/// Relay item store in the data directory.
pub const RELAY_STORE: &str = "relay.redb";

/// PEM files for serving `wss://`.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// Certificate chain, leaf first.
    pub cert: PathBuf,
    /// Private key.
    pub key: PathBuf,
}

impl TlsFiles {
    fn server_config(&self) -> Result<Arc<keyhive_sync::tls::rustls::ServerConfig>> {
        let cert = std::fs::read(&self.cert)
            .with_context(|| format!("cannot read --tls-cert {}", self.cert.display()))?;
        let key = std::fs::read(&self.key)
            .with_context(|| format!("cannot read --tls-key {}", self.key.display()))?;
        keyhive_sync::tls::server_config_from_pem(&cert, &key).with_context(|| {
            format!(
                "cannot use {} and {} for TLS",
                self.cert.display(),
                self.key.display()
            )
        })
    }
}

/// `--store postgres://...`: the database several relays share.
#[derive(Debug, Clone)]
pub struct SharedStore {
    /// The PostgreSQL URL.
    pub url: String,
    /// Most pooled connections.
    pub pool_size: usize,
}

/// A running relay and, if any, its links to other relays.
pub struct RunningRelay {
    /// The server.
    pub handle: RelayHandle,
    /// Links syncing this relay's store with other relays.
    pub links: Vec<keyhive_sync::client::Link>,
    /// Live forwarding between this relay and its links (stops when dropped).
    _forwarding: Option<keyhive_sync::relay::Forwarding>,
}

/// Parses one `--sync-with RELAY_ID@URL`; without the id the relay refuses to start, since it
/// would push every subject it holds to whatever server answers at the URL.
pub fn parse_sync_with(arg: &str) -> Result<(PublicKey, String)> {
    let Some((id, url)) = arg.split_once('@') else {
        bail!(
            "--sync-with {arg:?} lacks the peer relay's id: use RELAY_ID@URL, with the id the \
             other relay prints when it starts, so this relay syncs only with that relay"
        );
    };
    let id = crate::relays::parse_id(id).context("--sync-with expects RELAY_ID@URL")?;
    Ok((id, crate::relays::normalize(url)?))
}

fn load_or_create_identity(data: &Path) -> Result<KeyStore> {
    let path = data.join(RELAY_KEY);
    if path.exists() {
        return keystore::load(&path).with_context(|| format!("cannot read {}", path.display()));
    }
    let store = KeyStore::new(Device::generate(Some("keyhive relay".into())));
    keystore::save(&store, &path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(store)
}

/// Parses `--stranger-quota ITEMS,BYTES` (SYNC-104).
pub fn parse_stranger_quota(arg: &str) -> Result<StrangerQuota> {
    parse_quota("--stranger-quota", arg)
}

/// SYNC-108: the per-address limits of `keyhive relay serve`, over every connection and key
/// from one network address (an IPv4 address, or the /64 prefix of an IPv6 address).
#[derive(Debug, Clone, clap::Args)]
pub struct AddressFlags {
    /// Most simultaneous connections from one network address (an IPv4 address or an IPv6
    /// /64), whatever keys they use; more get HTTP 503 (specs/sync.md SYNC-108).
    #[arg(
        long = "address-max-connections",
        value_name = "N",
        default_value_t = AddressLimits::default().max_connections
    )]
    pub address_max_connections: usize,
    /// Sustained pushed items (signature checks) per second from one address, over all its
    /// keys.
    #[arg(
        long = "address-items-per-second",
        value_name = "N",
        default_value_t = AddressLimits::default().items_per_second,
        value_parser = parse_rate
    )]
    pub address_items_per_second: f64,
    /// Pushed items one address may send in a burst.
    #[arg(
        long = "address-burst-items",
        value_name = "N",
        default_value_t = AddressLimits::default().burst_items,
        value_parser = parse_rate
    )]
    pub address_burst_items: f64,
    /// Sustained frame bytes per second from one address, over all its connections.
    #[arg(
        long = "address-bytes-per-second",
        value_name = "N",
        default_value_t = AddressLimits::default().bytes_per_second,
        value_parser = parse_rate
    )]
    pub address_bytes_per_second: f64,
    /// Frame bytes one address may send in a burst.
    #[arg(
        long = "address-burst-bytes",
        value_name = "N",
        default_value_t = AddressLimits::default().burst_bytes,
        value_parser = parse_rate
    )]
    pub address_burst_bytes: f64,
    /// Most that keys holding no grant from anyone, pushing from one address, may store here
    /// together, as ITEMS,BYTES; kept in the store, so a restart does not reset it.
    #[arg(
        long = "address-quota",
        value_name = "ITEMS,BYTES",
        default_value = "10000,41943040"
    )]
    pub address_stranger_quota: String,
    /// Hold loopback clients to the per-address limits too. By default they are exempt (a
    /// reverse proxy on the same host would put every client behind one address).
    #[arg(long)]
    pub limit_loopback: bool,
}

impl AddressFlags {
    /// The limits these flags set (SYNC-108).
    pub fn limits(&self) -> Result<AddressLimits> {
        let mut limits = AddressLimits::default();
        limits.max_connections = self.address_max_connections;
        limits.items_per_second = self.address_items_per_second;
        limits.burst_items = self.address_burst_items;
        limits.bytes_per_second = self.address_bytes_per_second;
        limits.burst_bytes = self.address_burst_bytes;
        limits.stranger_quota = parse_quota("--address-quota", &self.address_stranger_quota)?;
        limits.exempt_loopback = !self.limit_loopback;
        Ok(limits)
    }
}

/// SYNC-111: what a stranger's (a key holding no grant from anyone) pushes may cost in
/// signature checks, per key, over all its connections. Past it the relay stops reading the
/// stranger's connection until the budget refills.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct StrangerFlags {
    /// Sustained pushed items (signature checks) per second of a key that holds no grant from
    /// anyone (specs/sync.md SYNC-111).
    #[arg(
        long = "stranger-checks-per-second",
        value_name = "N",
        default_value_t = Limits::default().stranger_checks_per_second,
        value_parser = parse_rate
    )]
    pub stranger_checks_per_second: f64,
    /// Pushed items such a key may send in a burst.
    #[arg(
        long = "stranger-burst-checks",
        value_name = "N",
        default_value_t = Limits::default().stranger_burst_checks,
        value_parser = parse_rate
    )]
    pub stranger_burst_checks: f64,
}

impl StrangerFlags {
    /// Sets the limits these flags give (SYNC-111).
    pub fn apply(&self, limits: &mut Limits) {
        limits.stranger_checks_per_second = self.stranger_checks_per_second;
        limits.stranger_burst_checks = self.stranger_burst_checks;
    }
}

/// A rate or burst: a finite number, not negative.
fn parse_rate(arg: &str) -> std::result::Result<f64, String> {
    match arg.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!("{arg:?} is not a number of at least 0")),
    }
}

fn parse_quota(flag: &str, arg: &str) -> Result<StrangerQuota> {
    let parsed = arg
        .split_once(',')
        .and_then(|(items, bytes)| Some((items.trim().parse().ok()?, bytes.trim().parse().ok()?)));
    let Some((items, bytes)) = parsed else {
        bail!("{flag} {arg:?} is not ITEMS,BYTES (e.g. 1000,4194304)");
    };
    Ok(StrangerQuota::new(items, bytes))
}

/// `--sync-with` relays, and the certificates trusted for the wss:// ones among them.
#[derive(Default)]
pub struct Upstream<'a> {
    /// `--sync-with RELAY_ID@URL`.
    pub relays: &'a [String],
    /// `--sync-ca-cert FILE`: PEM certificates (a self-signed certificate or a private CA)
    /// trusted beside the webpki roots (SYNC-37).
    pub ca_certs: &'a [PathBuf],
}

impl Upstream<'_> {
    /// The TLS configuration for the links, when certificates beyond the webpki roots are
    /// trusted.
    fn tls(&self) -> Result<Option<Arc<keyhive_sync::tls::rustls::ClientConfig>>> {
        if self.ca_certs.is_empty() {
            return Ok(None);
        }
        let mut anchors = Vec::new();
        for path in self.ca_certs {
            let pem = std::fs::read(path)
                .with_context(|| format!("cannot read --sync-ca-cert {}", path.display()))?;
            anchors.extend(
                keyhive_sync::tls::certificates_from_pem(&pem).with_context(|| {
                    format!("--sync-ca-cert {} holds no PEM certificate", path.display())
                })?,
            );
        }
        let config = keyhive_sync::tls::client_config_trusting_also(anchors)
            .context("TLS cannot use the --sync-ca-cert certificates as trust anchors")?;
        Ok(Some(config))
    }
}

/// Starts a relay on `listen` with its state in `data`; `wss://` when `tls` is given.
pub async fn start(
    listen: &str,
    data: &Path,
    peers: &[String],
    upstream: &Upstream<'_>,
    tls: Option<&TlsFiles>,
) -> Result<RunningRelay> {
    start_with(listen, data, None, peers, upstream, tls, Limits::default()).await
}

/// [`start`], with its items in `shared` instead of the embedded store when given, under
/// `limits` (e.g. strangers held to a quota, SYNC-104; per-address limits, SYNC-108).
pub async fn start_with(
    listen: &str,
    data: &Path,
    shared: Option<&SharedStore>,
    peers: &[String],
    upstream: &Upstream<'_>,
    tls: Option<&TlsFiles>,
    limits: Limits,
) -> Result<RunningRelay> {
    let upstream_tls = upstream.tls()?;
    let upstream = upstream
        .relays
        .iter()
        .map(|arg| parse_sync_with(arg))
        .collect::<Result<Vec<_>>>()?;
    let tls = tls.map(TlsFiles::server_config).transpose()?;
    let peer_ids = peers
        .iter()
        .map(|p| {
            p.parse::<PublicKey>().map(IndividualId).map_err(|_| {
                anyhow::anyhow!(
                    "--peer {p:?} is not a relay id: give the 64 hex characters the other relay prints when it starts"
                )
            })
        })
        .collect::<Result<Vec<_>>>()?;
    if data.exists() && !data.is_dir() {
        bail!(
            "--data {} is not a directory: give a directory for the relay's identity and store",
            data.display()
        );
    }
    std::fs::create_dir_all(data).with_context(|| format!("cannot create {}", data.display()))?;
    // The port is taken before anything is loaded, so that one already in use is reported at
    // once; connections wait in the backlog until the relay serves.
    let listener = bind(listen).await?;
    let identity = load_or_create_identity(data)?;
    let key = identity.device().signing_key().clone();
    // RELAY-7: marks what it admits, so its next start checks no signature of it again.
    let policy = Arc::new(
        CapabilityPolicy::new(peer_ids)
            .with_marks(keyhive_sync::store::MarkKey::from_identity(&key)),
    );
    let mut config = RelayConfig::new(key.clone()).with_limits(limits);
    if let Some(tls) = tls {
        config = config.with_tls(tls);
    }
    let (store, handle): (Arc<dyn Store>, RelayHandle) = match shared {
        None => {
            // The error names the file and what to do (STORE-6..9).
            let store = Arc::new(
                RedbStore::open(data.join(RELAY_STORE)).context("cannot open the relay store")?,
            );
            let loaded = policy.load(store.as_ref())?;
            tracing::info!(ops = loaded, "capability graph loaded");
            let handle = Relay::serve(listener, store.clone(), policy.clone(), config)?;
            (store, handle)
        }
        Some(shared) => {
            let store = Arc::new(
                PostgresStore::open(
                    PostgresConfig::new(shared.url.clone()).with_pool_size(shared.pool_size),
                )
                .context("cannot open the relay's PostgreSQL store (--store)")?,
            );
            // SYNC-100: the log position is read before loading, so nothing committed by
            // another relay in between is missed (it is applied again, harmlessly, if loaded).
            let cursor = store.head()?;
            let loaded = policy.load(store.as_ref())?;
            tracing::info!(
                ops = loaded,
                cursor,
                "capability graph loaded from PostgreSQL"
            );
            let handle = Relay::serve_shared(
                listener,
                store.clone(),
                store.clone(),
                cursor,
                policy.clone(),
                config,
            )?;
            (store, handle)
        }
    };
    let mut links = Vec::new();
    let mut forwarding = None;
    if !upstream.is_empty() {
        let client = match upstream_tls {
            Some(config) => Client::new_with_tls(key, store, policy, config),
            None => Client::new(key, store, policy),
        };
        // SYNC-63, SYNC-63a: what devices push here leaves for the other relays at once, and
        // what they send reaches this relay's subscribers live.
        forwarding = Some(handle.forward_through(&client));
        // SYNC-34: each link syncs only once the peer relay has proved its id.
        for (id, url) in upstream {
            links.push(client.add_link(url, Some(id)));
        }
    }
    Ok(RunningRelay {
        handle,
        links,
        _forwarding: forwarding,
    })
}

/// SYNC-109: listens with the relay's reconnect-burst backlog, not tokio's 1,024.
async fn bind(listen: &str) -> Result<TcpListener> {
    match keyhive_sync::relay::bind(listen).await {
        Ok(listener) => Ok(listener),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => bail!(
            "cannot listen on {listen}: the port is in use (another relay?); stop it or pick another with --listen"
        ),
        Err(e) => Err(e).with_context(|| {
            format!("cannot listen on {listen} (--listen takes HOST:PORT, e.g. 127.0.0.1:7420)")
        }),
    }
}

/// What `keyhive relay serve` is told besides where to listen and keep its state.
pub struct ServeOptions<'a> {
    /// `--peer`: relays allowed to sync everything (RELAY-6).
    pub peers: &'a [String],
    /// `--sync-with` and `--sync-ca-cert`: relays to keep in sync with.
    pub upstream: Upstream<'a>,
    /// `--tls-cert`/`--tls-key`.
    pub tls: Option<&'a TlsFiles>,
    /// `--stranger-quota` (SYNC-104).
    pub quota: StrangerQuota,
    /// `--address-*`, `--limit-loopback` (SYNC-108).
    pub per_address: AddressLimits,
    /// `--stranger-checks-per-second`, `--stranger-burst-checks` (SYNC-111).
    pub stranger_checks: StrangerFlags,
}

/// `keyhive relay serve --listen ADDR --data DIR [--store postgres://...] [--sync-with
/// RELAY_ID@URL]... [--tls-cert FILE --tls-key FILE] [--stranger-quota ITEMS,BYTES]
/// [--stranger-checks-per-second N] [--stranger-burst-checks N] [--address-... N]...
/// [--limit-loopback]`: runs until SIGINT or SIGTERM.
pub fn serve(
    out: Output,
    listen: &str,
    data: &Path,
    shared: Option<&SharedStore>,
    options: ServeOptions<'_>,
) -> Result<()> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // SYNC-99: a closed or full stderr never stops the relay; a log line is lost instead
        // (tracing-subscriber would otherwise report the failure with `eprintln!`, which
        // panics on a closed stderr).
        .log_internal_errors(false)
        .try_init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let shutdown = shutdown_signal()?;
        let ServeOptions {
            peers,
            upstream,
            tls,
            quota,
            per_address,
            stranger_checks,
        } = options;
        let mut limits = Limits::default();
        limits.stranger_quota = quota;
        limits.per_address = per_address;
        stranger_checks.apply(&mut limits);
        let relay = start_with(listen, data, shared, peers, &upstream, tls, limits).await?;
        let url = relay.handle.url();
        let id = relay.handle.id().to_string();
        out.emit(&json!({"url": url, "id": id, "data": data}), || {
            println!("keyhive relay listening on {url}");
            println!("relay id {id}");
        })?;
        use std::io::Write;
        std::io::stdout().flush()?;
        shutdown.await?;
        tracing::info!("shutting down");
        for link in relay.links {
            link.stop().await;
        }
        relay.handle.shutdown().await?;
        tracing::info!("stopped");
        Ok(())
    })
}

/// Installs the SIGINT and SIGTERM handlers at once, so a signal sent as soon as the relay has
/// announced itself stops it gracefully; the returned future resolves on the first signal.
pub(crate) fn shutdown_signal() -> Result<impl std::future::Future<Output = Result<()>>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut term = signal(SignalKind::terminate())?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = term.recv() => {}
            }
            Ok(())
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async { Ok(tokio::signal::ctrl_c().await?) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        address: AddressFlags,
        #[command(flatten)]
        stranger: StrangerFlags,
    }

    fn stranger_limits(args: &[&str]) -> Result<Limits> {
        let flags = Flags::try_parse_from(std::iter::once("relay").chain(args.iter().copied()))?;
        let mut limits = Limits::default();
        flags.stranger.apply(&mut limits);
        Ok(limits)
    }

    /// SYNC-111: without flags a stranger's budget is the library's default; each flag sets
    /// its part; a negative rate is refused.
    #[test]
    fn stranger_budget_flags() {
        let defaults = stranger_limits(&[]).unwrap();
        assert_eq!(
            defaults.stranger_checks_per_second,
            Limits::default().stranger_checks_per_second
        );
        assert_eq!(
            defaults.stranger_burst_checks,
            Limits::default().stranger_burst_checks
        );
        let set = stranger_limits(&[
            "--stranger-checks-per-second",
            "7",
            "--stranger-burst-checks",
            "70",
        ])
        .unwrap();
        assert_eq!(set.stranger_checks_per_second, 7.0);
        assert_eq!(set.stranger_burst_checks, 70.0);
        assert!(stranger_limits(&["--stranger-checks-per-second", "-1"]).is_err());
    }

    fn parse(args: &[&str]) -> Result<AddressLimits> {
        let flags = Flags::try_parse_from(std::iter::once("relay").chain(args.iter().copied()))?;
        flags.address.limits()
    }

    /// SYNC-108: without flags, the per-address limits are the library's defaults.
    #[test]
    fn address_flag_defaults_are_the_library_defaults() {
        assert_eq!(parse(&[]).unwrap(), AddressLimits::default());
    }

    /// SYNC-108: each flag sets its limit.
    #[test]
    fn address_flags_set_each_limit() {
        let limits = parse(&[
            "--address-max-connections",
            "3",
            "--address-items-per-second",
            "50",
            "--address-burst-items",
            "60",
            "--address-bytes-per-second",
            "1000",
            "--address-burst-bytes",
            "2000",
            "--address-quota",
            "7,700",
            "--limit-loopback",
        ])
        .unwrap();
        assert_eq!(limits.max_connections, 3);
        assert_eq!(limits.items_per_second, 50.0);
        assert_eq!(limits.burst_items, 60.0);
        assert_eq!(limits.bytes_per_second, 1000.0);
        assert_eq!(limits.burst_bytes, 2000.0);
        assert_eq!(limits.stranger_quota, StrangerQuota::new(7, 700));
        assert!(!limits.exempt_loopback);
    }

    #[test]
    fn bad_address_flags_are_refused() {
        assert!(parse(&["--address-items-per-second", "-1"]).is_err());
        assert!(parse(&["--address-burst-bytes", "NaN"]).is_err());
        let err = parse(&["--address-quota", "7"]).unwrap_err();
        assert!(err.to_string().contains("--address-quota"));
    }
}
