//! The keyed order a scan sends its probes in, beside the plan that
//! uses it: a position of the order names one index of a kind's space
//! ([`crate::targets::index::IndexSpace`]), and a resume's check of its
//! state goes back from an index to its position.

/// A keyed bijection on `0..n`: a four-round Feistel network over the
/// smallest even power of two ≥ n, with cycle-walking back into range
/// (on average fewer than two steps, since that domain is < 4n).
#[derive(Clone, Debug)]
pub struct Permutation {
    n: u64,
    half_bits: u32,
    keys: [u64; 4],
}

impl Permutation {
    pub fn new(n: u64, seed: u64) -> Permutation {
        let bits = 64 - n.saturating_sub(1).leading_zeros();
        let half_bits = bits.div_ceil(2).max(1);
        let mut s = seed ^ 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            // splitmix64: spreads the seed into independent round keys
            s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        Permutation {
            n,
            half_bits,
            keys: [next(), next(), next(), next()],
        }
    }

    fn round(&self, x: u64, key: u64) -> u64 {
        let mut z = (x ^ key).wrapping_mul(0xff51_afd7_ed55_8ccd);
        z ^= z >> 33;
        z = z.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        z ^ (z >> 29)
    }

    fn feistel(&self, x: u64) -> u64 {
        let mask = (1u64 << self.half_bits) - 1;
        let (mut l, mut r) = (x >> self.half_bits, x & mask);
        for k in self.keys {
            let t = l ^ (self.round(r, k) & mask);
            l = r;
            r = t;
        }
        (l << self.half_bits) | r
    }

    /// The Feistel network backwards: the rounds' keys in reverse order.
    fn feistel_inverse(&self, y: u64) -> u64 {
        let mask = (1u64 << self.half_bits) - 1;
        let (mut l, mut r) = (y >> self.half_bits, y & mask);
        for &k in self.keys.iter().rev() {
            let t = r ^ (self.round(l, k) & mask);
            r = l;
            l = t;
        }
        (l << self.half_bits) | r
    }

    /// Where `index` comes in the order: the `i` with `apply(i) == index`
    /// (`index < n`). Cycle walking backwards leaves the values past `n`
    /// the forward walk went through, so it ends at the one position.
    pub fn position_of(&self, index: u64) -> u64 {
        debug_assert!(index < self.n);
        let mut x = self.feistel_inverse(index);
        while x >= self.n {
            x = self.feistel_inverse(x);
        }
        x
    }

    /// The `i`-th element of the permuted order, `i < n`.
    pub fn apply(&self, i: u64) -> u64 {
        debug_assert!(i < self.n);
        let mut x = self.feistel(i);
        while x >= self.n {
            x = self.feistel(x);
        }
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::targets::PortSet;
    use crate::targets::index::tests::set;
    use crate::targets::index::{IndexSpace, Shard};

    #[test]
    fn permutation_is_a_bijection_for_many_sizes() {
        for n in [1u64, 2, 3, 7, 64, 100, 1000, 4097] {
            for seed in [0, 1, 0xdead_beef] {
                let p = Permutation::new(n, seed);
                let mut seen = vec![false; n as usize];
                for i in 0..n {
                    let x = p.apply(i);
                    assert!(
                        x < n && !seen[x as usize],
                        "n={n} seed={seed}: {x} twice or out of range"
                    );
                    seen[x as usize] = true;
                }
            }
        }
    }

    #[test]
    fn position_of_undoes_apply() {
        for n in [1u64, 2, 3, 7, 64, 100, 1000, 4097, 65_536 * 21] {
            for seed in [0, 1, 0xdead_beef] {
                let p = Permutation::new(n, seed);
                let step = (n / 5000).max(1);
                for i in (0..n).step_by(step as usize) {
                    assert_eq!(p.position_of(p.apply(i)), i, "n={n} seed={seed}");
                }
            }
        }
    }

    #[test]
    fn seeds_change_the_order_and_fix_it() {
        let (a, b) = (Permutation::new(10_000, 1), Permutation::new(10_000, 2));
        let first = |p: &Permutation| (0..20).map(|i| p.apply(i)).collect::<Vec<_>>();
        assert_ne!(first(&a), first(&b));
        assert_eq!(first(&a), first(&Permutation::new(10_000, 1)));
        // not the identity, nor sequential runs
        assert!(first(&a).windows(2).filter(|w| w[1] == w[0] + 1).count() < 3);
    }

    #[test]
    fn shards_are_disjoint_and_cover_everything() {
        let space = IndexSpace::new(
            &set(&["198.18.0.0/24", "198.18.9.7/32", "2001:db8::/126"]),
            Some(&PortSet::parse("22,80,443,8000-8010").unwrap()),
        )
        .unwrap();
        let order = Permutation::new(space.len(), 7);
        for count in [1u64, 2, 3, 5, 16] {
            let mut seen = vec![0u8; space.len() as usize];
            for index in 0..count {
                for i in (Shard { index, count })
                    .positions(order.n)
                    .map(|p| order.apply(p))
                {
                    seen[i as usize] += 1;
                }
            }
            assert!(
                seen.iter().all(|&c| c == 1),
                "{count} shards: an index visited {:?} times",
                seen.iter().find(|&&c| c != 1)
            );
        }
    }
}
