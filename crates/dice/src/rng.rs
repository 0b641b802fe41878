//! A small, seedable, reproducible random number generator.
//!
//! Dice results must be reproducible for tests and audits ("roll with seed
//! 42 again") and identical across platforms and releases of third-party
//! crates, so the generator is written here instead of borrowed: xoshiro256**
//! for the stream, seeded through splitmix64, with Lemire's multiply-and-reject
//! method for unbiased ranges (a plain `x % n` favours low faces).
//!
//! The crate does no I/O. Callers that want fresh randomness either pass in
//! their own entropy ([`Rng::from_seed_bytes`], e.g. 32 bytes from the OS) or
//! use [`Rng::from_random_state`], which draws on the per-process random keys
//! the standard library already keeps for `HashMap` (seeded by the OS once
//! per thread; each call yields a different key).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

/// xoshiro256** generator. Cheap to clone; the same seed always yields the
/// same sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rng {
    s: [u64; 4],
}

/// One step of splitmix64; used to expand seeds into generator state.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Rng {
    /// A generator whose sequence is fully determined by `seed`.
    pub fn seeded(seed: u64) -> Self {
        let mut sm = seed;
        let s = [
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
        ];
        Rng { s }
    }

    /// A generator from caller-supplied entropy (e.g. bytes read from the OS
    /// by the binary). Any length works; bytes are folded into the seed.
    pub fn from_seed_bytes(bytes: &[u8]) -> Self {
        let mut acc = 0x5DEE_CE66_D1CE_u64;
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            for (dst, src) in word.iter_mut().zip(chunk) {
                *dst = *src;
            }
            acc ^= u64::from_le_bytes(word);
            splitmix64(&mut acc);
        }
        Rng::seeded(acc)
    }

    /// A generator seeded from the standard library's `RandomState` keys,
    /// which the OS seeds once per thread. Not for cryptography; fine for
    /// dice.
    pub fn from_random_state() -> Self {
        let mut h = RandomState::new().build_hasher();
        h.write_u64(0x7A7E_2D1C);
        let a = h.finish();
        let mut h = RandomState::new().build_hasher();
        h.write_u64(a);
        Rng::seeded(a ^ h.finish().rotate_left(32))
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let [s0, s1, s2, s3] = &mut self.s;
        let result = s1.wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = *s1 << 17;
        *s2 ^= *s0;
        *s3 ^= *s1;
        *s1 ^= *s2;
        *s0 ^= *s3;
        *s2 ^= t;
        *s3 = s3.rotate_left(45);
        result
    }

    /// Uniform integer in `0..n` without modulo bias (Lemire 2019). Returns 0
    /// when `n == 0`, so callers never divide by zero.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        let mut m = u128::from(self.next_u64()) * u128::from(n);
        #[allow(clippy::cast_possible_truncation)]
        let mut low = m as u64;
        if low < n {
            let threshold = n.wrapping_neg() % n;
            while low < threshold {
                m = u128::from(self.next_u64()) * u128::from(n);
                #[allow(clippy::cast_possible_truncation)]
                {
                    low = m as u64;
                }
            }
        }
        #[allow(clippy::cast_possible_truncation)]
        let high = (m >> 64) as u64;
        high
    }

    /// Uniform integer in `lo..=hi` (returns `lo` if the range is empty).
    pub fn range_inclusive(&mut self, lo: i64, hi: i64) -> i64 {
        if hi <= lo {
            return lo;
        }
        let span = hi.abs_diff(lo);
        let offset = if span == u64::MAX {
            self.next_u64()
        } else {
            self.below(span + 1)
        };
        lo.wrapping_add_unsigned(offset)
    }

    /// Uniform float in `[0, 1)` with 53 random bits.
    #[allow(clippy::cast_precision_loss)]
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_matches_the_reference_sequence() {
        let mut s = 0;
        assert_eq!(splitmix64(&mut s), 0xE220_A839_7B1D_CDAF);
        assert_eq!(splitmix64(&mut s), 0x6E78_9E6A_A1B9_65F4);
        assert_eq!(splitmix64(&mut s), 0x06C4_5D18_8009_454F);
    }

    #[test]
    fn xoshiro_matches_the_reference_sequence() {
        let mut r = Rng { s: [1, 2, 3, 4] };
        assert_eq!(r.next_u64(), 11520);
        assert_eq!(r.next_u64(), 0);
        assert_eq!(r.next_u64(), 1_509_978_240);
        assert_eq!(r.next_u64(), 1_215_971_899_390_074_240);
    }

    #[test]
    fn same_seed_same_stream() {
        let mut a = Rng::seeded(42);
        let mut b = Rng::seeded(42);
        let mut c = Rng::seeded(43);
        let xa: Vec<u64> = (0..8).map(|_| a.next_u64()).collect();
        let xb: Vec<u64> = (0..8).map(|_| b.next_u64()).collect();
        let xc: Vec<u64> = (0..8).map(|_| c.next_u64()).collect();
        assert_eq!(xa, xb);
        assert_ne!(xa, xc);
    }

    #[test]
    fn ranges_stay_in_bounds_and_hit_every_face() {
        let mut r = Rng::seeded(7);
        let mut seen = [0u32; 6];
        for _ in 0..6000 {
            let v = r.range_inclusive(1, 6);
            assert!((1..=6).contains(&v));
            if let Some(slot) = usize::try_from(v - 1).ok().and_then(|i| seen.get_mut(i)) {
                *slot += 1;
            }
        }
        // Each face expected 1000 times; 5 sigma is about 150.
        for count in seen {
            assert!((850..=1150).contains(&count), "{seen:?}");
        }
        assert_eq!(r.range_inclusive(5, 5), 5);
        assert_eq!(r.range_inclusive(5, 1), 5);
        let wide = r.range_inclusive(i64::MIN, i64::MAX);
        let _ = wide; // any value is in range; this must simply not panic
        assert_eq!(r.below(0), 0);
    }

    #[test]
    fn lemire_is_unbiased_on_an_awkward_range() {
        // n = 3 * 2^62 makes a naive modulo badly biased toward small values:
        // values below 2^62 would appear twice as often.
        let n = 3u64 << 62;
        let mut r = Rng::seeded(1);
        let below_quarter = (0..30_000).filter(|_| r.below(n) < (1u64 << 62)).count();
        // Unbiased: 1/3 of draws (10_000); naive modulo would give 1/2.
        assert!((9_500..=10_500).contains(&below_quarter), "{below_quarter}");
    }

    #[test]
    fn entropy_helpers_differ() {
        assert_ne!(Rng::from_random_state(), Rng::from_random_state());
        assert_ne!(Rng::from_seed_bytes(b"abc"), Rng::from_seed_bytes(b"abd"));
        assert_eq!(Rng::from_seed_bytes(b"abc"), Rng::from_seed_bytes(b"abc"));
        let mut r = Rng::seeded(3);
        let f = r.next_f64();
        assert!((0.0..1.0).contains(&f));
    }
}
