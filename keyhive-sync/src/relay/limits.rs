//! Per-connection, per-key and per-address limits (SYNC-70, SYNC-71, SYNC-104, SYNC-105,
//! SYNC-108, SYNC-111).

use std::time::{Duration, Instant};

/// Bounds applied to every connection.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Limits {
    /// SYNC-70: sustained frames per second per connection.
    pub frames_per_second: f64,
    /// SYNC-70: frames allowed in a burst.
    pub burst_frames: f64,
    /// SYNC-70: sustained bytes per second per connection.
    pub bytes_per_second: f64,
    /// SYNC-70: bytes allowed in a burst.
    pub burst_bytes: f64,
    /// SYNC-71: most items in one push.
    pub max_push_items: usize,
    /// SYNC-71: most hashes in one pull.
    pub max_pull_hashes: usize,
    /// SYNC-71: most range queries in one reconciliation round.
    pub max_queries: usize,
    /// SYNC-71: most subscribed subjects per connection.
    pub max_subscriptions: usize,
    /// SYNC-13: malformed frames tolerated before the connection is closed.
    pub max_errors: u32,
    /// SYNC-33: time allowed for the hello after the upgrade; the whole handshake gets twice
    /// this (SYNC-95).
    pub handshake_timeout: Duration,
    /// SYNC-95: time from TCP accept (or, with TLS, the end of the TLS handshake) to a
    /// WebSocket upgrade request; a connection silent or mid-request longer is closed.
    pub upgrade_timeout: Duration,
    /// SYNC-35, SYNC-95: time allowed for a TLS handshake (`wss://` only), from TCP accept.
    pub tls_handshake_timeout: Duration,
    /// SYNC-96: an authenticated connection from which nothing (not even a pong) arrives for
    /// this long is closed; the relay pings it from half of it on, every quarter.
    pub idle_timeout: Duration,
    /// SYNC-72, SYNC-97: most simultaneous connections, counted from TCP accept; more are
    /// refused with HTTP 503.
    pub max_connections: usize,
    /// SYNC-104: what a stranger (a key holding no grant from anyone) may store here.
    pub stranger_quota: StrangerQuota,
    /// SYNC-105: sustained pushed items (signature checks) per second per key, over all of
    /// its connections.
    pub items_per_second: f64,
    /// SYNC-105: pushed items allowed in a burst per key.
    pub burst_items: f64,
    /// SYNC-108: limits over every connection and key from one network address.
    pub per_address: AddressLimits,
    /// SYNC-111: sustained pushed items (signature checks) per second of a stranger (a key
    /// holding no grant from anyone, SYNC-104), over all of its connections; a stranger over
    /// it is not read from until its budget refills.
    pub stranger_checks_per_second: f64,
    /// SYNC-111: pushed items a stranger may send in a burst.
    pub stranger_burst_checks: f64,
    /// SYNC-111: sustained pushed items per second of all strangers together (a key pair
    /// costs nothing: a flood with a fresh key per frame never meets the per-key budget).
    pub all_strangers_checks_per_second: f64,
    /// SYNC-111: pushed items all strangers together may send in a burst.
    pub all_strangers_burst_checks: f64,
    /// SYNC-111: most slices of strangers' pushes (at most [`ADMISSION_SLICE`] items each)
    /// admitted at once, over all strangers; at least one.
    pub stranger_admissions: usize,
}

/// SYNC-111: most items of a stranger's push admitted in one piece of work (one task on the
/// blocking pool, one hold of a stranger admission slot).
pub const ADMISSION_SLICE: usize = 64;

/// SYNC-108: what all connections from one network address (an IPv4 address, or the /64
/// prefix of an IPv6 address) may use together, whatever keys they authenticate with.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct AddressLimits {
    /// Most simultaneous connections, counted from TCP accept; more get HTTP 503.
    pub max_connections: usize,
    /// Sustained pushed items (signature checks) per second over all keys of the address.
    pub items_per_second: f64,
    /// Pushed items allowed in a burst.
    pub burst_items: f64,
    /// Sustained frame bytes per second over all connections of the address.
    pub bytes_per_second: f64,
    /// Frame bytes allowed in a burst.
    pub burst_bytes: f64,
    /// Most that strangers (SYNC-104) pushing from the address may store here together; kept
    /// through the store (STORE-18), so a restart does not reset it.
    pub stranger_quota: StrangerQuota,
    /// Loopback addresses (tests, a reverse proxy on the same host) are exempt when set.
    pub exempt_loopback: bool,
}

impl Default for AddressLimits {
    fn default() -> Self {
        AddressLimits {
            max_connections: 64,
            items_per_second: 10_000.0,
            burst_items: 40_000.0,
            bytes_per_second: 128.0 * 1024.0 * 1024.0,
            burst_bytes: 256.0 * 1024.0 * 1024.0,
            stranger_quota: StrangerQuota::new(10_000, 40 * 1024 * 1024),
            exempt_loopback: true,
        }
    }
}

/// SYNC-104: the most a stranger may store at a relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct StrangerQuota {
    /// Most items.
    pub items: u64,
    /// Most envelope bytes.
    pub bytes: u64,
}

impl StrangerQuota {
    /// A quota of `items` items and `bytes` bytes.
    pub fn new(items: u64, bytes: u64) -> Self {
        StrangerQuota { items, bytes }
    }
}

impl Default for StrangerQuota {
    fn default() -> Self {
        StrangerQuota {
            items: 1_000,
            bytes: 4 * 1024 * 1024,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            frames_per_second: 2_000.0,
            burst_frames: 4_000.0,
            bytes_per_second: 64.0 * 1024.0 * 1024.0,
            burst_bytes: 128.0 * 1024.0 * 1024.0,
            max_push_items: 4_096,
            max_pull_hashes: 4_096,
            max_queries: 512,
            max_subscriptions: 4_096,
            max_errors: 16,
            handshake_timeout: Duration::from_secs(10),
            upgrade_timeout: Duration::from_secs(10),
            tls_handshake_timeout: super::TLS_HANDSHAKE_TIMEOUT,
            idle_timeout: Duration::from_secs(120),
            max_connections: 1_024,
            stranger_quota: StrangerQuota::default(),
            items_per_second: 5_000.0,
            burst_items: 20_000.0,
            per_address: AddressLimits::default(),
            stranger_checks_per_second: 200.0,
            stranger_burst_checks: 1_000.0,
            all_strangers_checks_per_second: 2_000.0,
            all_strangers_burst_checks: 10_000.0,
            stranger_admissions: 1,
        }
    }
}

/// A token bucket (rates are not signed data, so floating point is fine here).
#[derive(Debug)]
pub(crate) struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub(crate) fn new(rate: f64, burst: f64) -> Self {
        TokenBucket {
            rate,
            burst,
            tokens: burst,
            last: Instant::now(),
        }
    }

    /// Whether the bucket has refilled to its burst (it then carries no information).
    pub(crate) fn is_full(&self) -> bool {
        let elapsed = self.last.elapsed().as_secs_f64();
        self.tokens + elapsed * self.rate >= self.burst
    }

    /// How long until `cost` tokens are available (`None`: never, more than a burst or no
    /// refill).
    pub(crate) fn wait_for(&self, cost: f64) -> Option<std::time::Duration> {
        if cost > self.burst || self.rate <= 0.0 {
            return None;
        }
        let missing = (cost - self.tokens).max(0.0);
        Some(Duration::from_secs_f64(missing / self.rate))
    }

    /// Gives back `cost` tokens taken for work that was not done.
    pub(crate) fn give_back(&mut self, cost: f64) {
        self.tokens = (self.tokens + cost).min(self.burst);
    }

    /// Takes `cost` tokens if available; otherwise how long until they are (`None`: never).
    pub(crate) fn take_or_wait(&mut self, cost: f64) -> Result<(), Option<Duration>> {
        if self.try_take(cost) {
            Ok(())
        } else {
            Err(self.wait_for(cost))
        }
    }

    /// Takes `cost` tokens if available.
    pub(crate) fn try_take(&mut self, cost: f64) -> bool {
        let now = Instant::now();
        let elapsed = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= cost {
            self.tokens -= cost;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_refuses_beyond_burst() {
        let mut b = TokenBucket::new(0.0, 3.0);
        assert!(b.try_take(1.0) && b.try_take(1.0) && b.try_take(1.0));
        assert!(!b.try_take(1.0));
    }
}
