//! SYNC-108: limits per network address, over every connection and key from it.
//!
//! A key pair costs nothing, so per-key limits (SYNC-104, SYNC-105) alone let one host multiply
//! its budget by generating keys. An address is an IPv4 address (an IPv4-mapped IPv6 address
//! counts as its IPv4 address) or the /64 prefix of an IPv6 address (the smallest block a host
//! is usually given). Loopback addresses are exempt unless configured otherwise
//! ([`AddressLimits::exempt_loopback`]). Every table is bounded: connection counts are held only
//! for addresses with a live connection; rate buckets for at most [`MAX_TRACKED`] addresses
//! (full buckets, which carry no information, are forgotten first); stranger usage for at most
//! [`MAX_TRACKED`] addresses in memory.
//!
//! Stranger usage outlives the process (SYNC-108, STORE-18): after each push that stored
//! anything for a stranger, the address's usage is written to the store
//! ([`crate::store::Store::put_address_usage`]), and an address not held in memory (after a
//! restart, or evicted) is read back from the store before its first stranger push is judged,
//! so neither a restart nor an eviction gives it a fresh budget.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::limits::{AddressLimits, TokenBucket};
use crate::store::{AddressKey, AddressUsage, Store, StoreError};

/// Most addresses whose rate buckets or stranger usage are held at once.
pub(crate) const MAX_TRACKED: usize = 16_384;

/// An address as SYNC-108 counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Address(IpAddr);

impl Address {
    fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Address(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Address(IpAddr::V4(v4)),
                None => {
                    let s = v6.segments();
                    Address(IpAddr::V6(Ipv6Addr::new(
                        s[0], s[1], s[2], s[3], 0, 0, 0, 0,
                    )))
                }
            },
        }
    }
}

impl Address {
    /// STORE-18: the address as the store keys it (IPv4 as IPv4-mapped IPv6; an IPv6 /64
    /// prefix with zero low bytes).
    pub(crate) fn key(&self) -> AddressKey {
        match self.0 {
            IpAddr::V4(v4) => AddressKey(v4.to_ipv6_mapped().octets()),
            IpAddr::V6(v6) => AddressKey(v6.octets()),
        }
    }
}

type Usage = AddressUsage;

/// Per-address state shared by every connection of a relay.
pub(crate) struct Addresses {
    limits: AddressLimits,
    connections: Mutex<HashMap<Address, usize>>,
    items: Mutex<HashMap<Address, TokenBucket>>,
    bytes: Mutex<HashMap<Address, TokenBucket>>,
    stored: Mutex<HashMap<Address, Usage>>,
    refused_connections: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned lock only follows a panic elsewhere; counters stay usable.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One connection's hold on its address's connection count, given back on drop.
pub(crate) struct Slot {
    table: Arc<Addresses>,
    address: Address,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut connections = lock(&self.table.connections);
        if let Some(n) = connections.get_mut(&self.address) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                connections.remove(&self.address);
            }
        }
    }
}

/// Takes `cost` from `address`'s bucket in `table`, making one (full) if needed.
fn take(
    table: &Mutex<HashMap<Address, TokenBucket>>,
    address: Address,
    cost: f64,
    make: impl FnOnce() -> TokenBucket,
) -> Result<(), Option<Duration>> {
    let mut buckets = lock(table);
    if !buckets.contains_key(&address) && buckets.len() >= MAX_TRACKED {
        buckets.retain(|_, bucket| !bucket.is_full());
        if buckets.len() >= MAX_TRACKED
            && let Some(k) = buckets.keys().next().copied()
        {
            buckets.remove(&k);
        }
    }
    let bucket = buckets.entry(address).or_insert_with(make);
    if bucket.try_take(cost) {
        Ok(())
    } else {
        Err(bucket.wait_for(cost))
    }
}

impl Addresses {
    pub(crate) fn new(limits: AddressLimits) -> Self {
        Addresses {
            limits,
            connections: Mutex::new(HashMap::new()),
            items: Mutex::new(HashMap::new()),
            bytes: Mutex::new(HashMap::new()),
            stored: Mutex::new(HashMap::new()),
            refused_connections: AtomicU64::new(0),
        }
    }

    /// The address `ip` is counted under, or `None` when it is exempt.
    pub(crate) fn address(&self, ip: IpAddr) -> Option<Address> {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        if self.limits.exempt_loopback && ip.is_loopback() {
            None
        } else {
            Some(Address::of(ip))
        }
    }

    /// Connections refused for their address so far.
    pub(crate) fn refused_connections(&self) -> u64 {
        self.refused_connections.load(Ordering::Relaxed)
    }

    /// Takes a connection slot of `address`; `None` (counted) when it holds all of them.
    pub(crate) fn connect(self: &Arc<Self>, address: Address) -> Option<Slot> {
        let mut connections = lock(&self.connections);
        let n = connections.entry(address).or_insert(0);
        if *n >= self.limits.max_connections {
            if *n == 0 {
                connections.remove(&address);
            }
            self.refused_connections.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        *n += 1;
        Some(Slot {
            table: self.clone(),
            address,
        })
    }

    /// Takes `items` signature checks from the address's bucket; when it has too few, how
    /// long until it has enough (`None`: never).
    pub(crate) fn take_items(
        &self,
        address: Address,
        items: usize,
    ) -> Result<(), Option<Duration>> {
        let (rate, burst) = (self.limits.items_per_second, self.limits.burst_items);
        take(&self.items, address, items as f64, || {
            TokenBucket::new(rate, burst)
        })
    }

    /// Takes `bytes` frame bytes from the address's bucket; `false` when it has too few.
    pub(crate) fn take_bytes(
        &self,
        address: Address,
        bytes: usize,
    ) -> Result<(), Option<Duration>> {
        let (rate, burst) = (self.limits.bytes_per_second, self.limits.burst_bytes);
        take(&self.bytes, address, bytes as f64, || {
            TokenBucket::new(rate, burst)
        })
    }

    /// SYNC-108, STORE-18: reads `address`'s stranger usage from `store` unless it is held in
    /// memory (the first stranger push from it since the relay started, or since it was
    /// evicted).
    pub(crate) fn recall(&self, address: Address, store: &dyn Store) -> Result<(), StoreError> {
        if lock(&self.stored).contains_key(&address) {
            return Ok(());
        }
        let held = store.address_usage(&address.key())?.unwrap_or_default();
        let mut stored = lock(&self.stored);
        if !stored.contains_key(&address)
            && stored.len() >= MAX_TRACKED
            && let Some(k) = stored.keys().next().copied()
        {
            stored.remove(&k);
        }
        stored.entry(address).or_insert(held);
        Ok(())
    }

    /// SYNC-108, STORE-18: writes `address`'s stranger usage to `store` (after a push stored
    /// something for a stranger from it).
    pub(crate) fn persist(&self, address: Address, store: &dyn Store) -> Result<(), StoreError> {
        let usage = lock(&self.stored).get(&address).copied();
        match usage {
            Some(usage) => store.put_address_usage(&address.key(), usage),
            None => Ok(()),
        }
    }

    /// Whether strangers from `address` may store one more item.
    pub(crate) fn has_room(&self, address: Address) -> bool {
        let quota = self.limits.stranger_quota;
        lock(&self.stored)
            .get(&address)
            .is_none_or(|u| u.items < quota.items && u.bytes < quota.bytes)
    }

    /// Takes room for one stranger item of `bytes` bytes; `false` when the address's quota has
    /// none.
    pub(crate) fn take_stored(&self, address: Address, bytes: usize) -> bool {
        let quota = self.limits.stranger_quota;
        let bytes = bytes as u64;
        let mut stored = lock(&self.stored);
        if !stored.contains_key(&address)
            && stored.len() >= MAX_TRACKED
            && let Some(k) = stored.keys().next().copied()
        {
            stored.remove(&k);
        }
        let used = stored.entry(address).or_default();
        if used.items.saturating_add(1) > quota.items
            || used.bytes.saturating_add(bytes) > quota.bytes
        {
            return false;
        }
        used.items += 1;
        used.bytes += bytes;
        true
    }

    /// Gives back room taken for an item that was not stored new.
    pub(crate) fn give_back(&self, address: Address, bytes: usize) {
        if let Some(used) = lock(&self.stored).get_mut(&address) {
            used.items = used.items.saturating_sub(1);
            used.bytes = used.bytes.saturating_sub(bytes as u64);
        }
    }

    /// The address's stranger quota (for refusal messages).
    pub(crate) fn stranger_quota(&self) -> super::StrangerQuota {
        self.limits.stranger_quota
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn strict() -> AddressLimits {
        AddressLimits {
            exempt_loopback: false,
            max_connections: 2,
            ..AddressLimits::default()
        }
    }

    #[test]
    fn ipv6_hosts_of_one_slash_64_are_one_address_and_mapped_ipv4_is_ipv4() {
        let t = Addresses::new(strict());
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(t.address(a), t.address(b));
        assert_ne!(t.address(a), t.address(c));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(
            t.address(mapped),
            t.address(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)))
        );
    }

    #[test]
    fn loopback_is_exempt_only_when_configured() {
        let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
        assert!(
            Addresses::new(AddressLimits::default())
                .address(lo)
                .is_none()
        );
        assert!(Addresses::new(strict()).address(lo).is_some());
    }

    #[test]
    fn connection_slots_are_per_address_and_given_back() {
        let t = Arc::new(Addresses::new(strict()));
        let a = t.address("192.0.2.1".parse().unwrap()).unwrap();
        let b = t.address("192.0.2.2".parse().unwrap()).unwrap();
        let first = t.connect(a).unwrap();
        let _second = t.connect(a).unwrap();
        assert!(t.connect(a).is_none());
        assert!(t.connect(b).is_some(), "another address is unaffected");
        drop(first);
        assert!(t.connect(a).is_some());
        assert_eq!(t.refused_connections(), 1);
    }
}
