//! ENC-16: the one source of randomness of keyhive. Every key, salt, nonce and reference that
//! keyhive-core and keyhive-sync draw comes from [`csprng`]; no other call site reads the
//! operating system's generator.
//!
//! In production [`csprng`] draws from `rand::rng()`, a ChaCha-based generator reseeded from the
//! operating system. Test-only, behind the cargo feature `deterministic-rng` (enabled by the
//! cross-crate test crate, never by the CLI or relay binaries), `seeded` runs a closure with
//! the current thread's draws coming from a ChaCha generator (`rand`'s `StdRng`) seeded by the
//! caller, so that a whole-system simulation seed reproduces bit for bit. With the feature on
//! but no scope installed on the thread (as when `cargo test --workspace` unifies features),
//! every draw comes from `rand::rng()`, exactly as without the feature.

use core::convert::Infallible;

use rand::rngs::ThreadRng;
use rand::{TryCryptoRng, TryRng};

/// The generator [`csprng`] hands out: `rand::rng()`, or, inside a `seeded` scope of the
/// `deterministic-rng` feature, the scope's seeded generator.
pub struct Csprng {
    thread: ThreadRng,
}

/// ENC-16: the cryptographically secure generator for every key, salt, nonce and reference.
pub fn csprng() -> Csprng {
    Csprng {
        thread: rand::rng(),
    }
}

impl TryRng for Csprng {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        #[cfg(feature = "deterministic-rng")]
        if let Some(x) = scope::draw(rand::Rng::next_u32) {
            return Ok(x);
        }
        self.thread.try_next_u32()
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        #[cfg(feature = "deterministic-rng")]
        if let Some(x) = scope::draw(rand::Rng::next_u64) {
            return Ok(x);
        }
        self.thread.try_next_u64()
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        #[cfg(feature = "deterministic-rng")]
        if scope::draw(|r| rand::Rng::fill_bytes(r, dst)).is_some() {
            return Ok(());
        }
        self.thread.try_fill_bytes(dst)
    }
}

impl TryCryptoRng for Csprng {}

#[cfg(feature = "deterministic-rng")]
pub use scope::seeded;

/// The per-thread seeded generator of the `deterministic-rng` feature (test-only).
#[cfg(feature = "deterministic-rng")]
mod scope {
    use std::cell::RefCell;

    use rand::SeedableRng;
    use rand::rngs::StdRng;

    thread_local! {
        static SEEDED: RefCell<Option<StdRng>> = const { RefCell::new(None) };
    }

    /// Test-only (`deterministic-rng`): runs `f` with every draw of [`super::csprng`] on this
    /// thread coming from a ChaCha generator seeded with `seed`, so that the same seed draws
    /// the same keys, salts and nonces; the previous scope (or none) is restored afterwards,
    /// also when `f` panics. Never for production: the keys are as predictable as the seed.
    pub fn seeded<R>(seed: u64, f: impl FnOnce() -> R) -> R {
        struct Restore(Option<StdRng>);
        impl Drop for Restore {
            fn drop(&mut self) {
                let previous = self.0.take();
                let _ = SEEDED.try_with(|s| *s.borrow_mut() = previous);
            }
        }
        let previous = SEEDED.with(|s| s.borrow_mut().replace(StdRng::seed_from_u64(seed)));
        let _restore = Restore(previous);
        f()
    }

    /// A draw from this thread's seeded generator, or `None` outside a [`seeded`] scope.
    pub(super) fn draw<T>(f: impl FnOnce(&mut StdRng) -> T) -> Option<T> {
        SEEDED
            .try_with(|s| s.borrow_mut().as_mut().map(f))
            .ok()
            .flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes() -> [u8; 32] {
        let mut out = [0u8; 32];
        rand::Rng::fill_bytes(&mut csprng(), &mut out);
        out
    }

    #[test]
    fn draws_differ_outside_a_scope() {
        assert_ne!(bytes(), bytes());
    }

    #[cfg(feature = "deterministic-rng")]
    #[test]
    fn a_seeded_scope_repeats_its_draws_and_ends() {
        let first = seeded(7, || (bytes(), bytes()));
        let again = seeded(7, || (bytes(), bytes()));
        assert_eq!(first, again);
        assert_ne!(first.0, first.1);
        assert_ne!(seeded(8, bytes), first.0);
        // Outside the scope, draws are the operating system's again.
        assert_ne!(bytes(), first.0);
        assert_ne!(bytes(), bytes());
    }
}
