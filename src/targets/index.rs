//! The scan's index space: every (address, port) pair of a target set and a
//! port list as one integer range, visited in a keyed pseudo-random order
//! (as masscan and zmap do; the order is the plan's,
//! `probe::order::Permutation`), split into shards with no overlap and no
//! gap.
//!
//! Nothing is materialized: a /8 × 65,535 ports is 2^40 indices and costs
//! the same few words as a single address.
//!
//! ```
//! use sonde::targets::{AddrRange, IpSet, PortSet};
//! use sonde::probe::order::Permutation;
//! use sonde::targets::index::IndexSpace;
//! let set: IpSet = [AddrRange::cidr("198.18.0.0".parse().unwrap(), 24).unwrap()].into_iter().collect();
//! let space = IndexSpace::new(&set, Some(&PortSet::parse("22,80,443").unwrap())).unwrap();
//! assert_eq!(space.len(), 256 * 3);
//! let order = Permutation::new(space.len(), 42);
//! let mut visited: Vec<u64> = (0..space.len()).map(|i| order.apply(i)).collect();
//! assert_ne!(visited[..5], [0, 1, 2, 3, 4]); // not sequential
//! visited.sort();
//! assert_eq!(visited, (0..space.len()).collect::<Vec<_>>()); // every probe exactly once
//! let (addr, port) = space.get(order.apply(0));
//! assert!(set.contains(addr) && [22, 80, 443].contains(&port.unwrap()));
//! ```

use std::net::IpAddr;

use super::{AddrRange, IpSet, PortSet};

/// Why a space cannot be formed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IndexError {
    Empty,
    /// More than 2^64 probes (an IPv6 block too large to scan).
    TooLarge,
}

impl std::fmt::Display for IndexError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IndexError::Empty => write!(f, "nothing to scan: no addresses (or no ports)"),
            IndexError::TooLarge => write!(f, "more than 2^64 probes: narrow the IPv6 blocks"),
        }
    }
}

impl std::error::Error for IndexError {}

/// Addresses × ports as one range of indices. Index `i` is address
/// `i / ports` and port `i % ports`; without a port list, one index per address.
#[derive(Clone, Debug)]
pub struct IndexSpace {
    ranges: Vec<AddrRange>,
    /// Addresses before each range.
    starts: Vec<u64>,
    addresses: u64,
    ports: Vec<u16>,
}

impl IndexSpace {
    pub fn new(targets: &IpSet, ports: Option<&PortSet>) -> Result<IndexSpace, IndexError> {
        let ranges: Vec<AddrRange> = targets.ranges().collect();
        let mut starts = Vec::with_capacity(ranges.len());
        let mut addresses: u64 = 0;
        for r in &ranges {
            starts.push(addresses);
            let n = u64::try_from(r.len()).map_err(|_| IndexError::TooLarge)?;
            addresses = addresses.checked_add(n).ok_or(IndexError::TooLarge)?;
        }
        if addresses == 0 || ports.is_some_and(PortSet::is_empty) {
            return Err(IndexError::Empty);
        }
        let ports: Vec<u16> = ports.map_or_else(Vec::new, |p| p.iter().collect());
        let space = IndexSpace {
            ranges,
            starts,
            addresses,
            ports,
        };
        space
            .addresses
            .checked_mul(space.ports.len().max(1) as u64)
            .ok_or(IndexError::TooLarge)?;
        Ok(space)
    }

    /// Number of indices.
    pub fn len(&self) -> u64 {
        self.addresses * self.ports.len().max(1) as u64
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The addresses of the space.
    pub fn addresses(&self) -> u64 {
        self.addresses
    }

    /// Indexes per address (its ports; 1 without ports): an index's
    /// address is its rank `index / per_address()`.
    pub fn per_address(&self) -> u64 {
        self.ports.len().max(1) as u64
    }

    /// The index of `addr` and `port` (the inverse of [`IndexSpace::get`]),
    /// if both are in the space; `port` is ignored by a space without ports.
    pub fn index_of(&self, addr: IpAddr, port: Option<u16>) -> Option<u64> {
        let family = super::Family::of(addr);
        let v = super::range::addr_value(addr);
        let r = self
            .ranges
            .partition_point(|r| (r.family(), r.end_value()) < (family, v));
        let range = self.ranges.get(r).filter(|r| r.contains(addr))?;
        let rank = self.starts[r] + u64::try_from(v - range.start_value()).ok()?;
        if self.ports.is_empty() {
            return Some(rank);
        }
        let p = self.ports.binary_search(&port?).ok()? as u64;
        Some(rank * self.ports.len() as u64 + p)
    }

    /// The address and port (if the space has ports) at index `i < len()`.
    pub fn get(&self, i: u64) -> (IpAddr, Option<u16>) {
        let per = self.ports.len().max(1) as u64;
        let (a, p) = (i / per, (i % per) as usize);
        let r = self.starts.partition_point(|&s| s <= a) - 1;
        let addr = self.ranges[r]
            .nth(u128::from(a - self.starts[r]))
            .expect("index within the range");
        (addr, self.ports.get(p).copied())
    }
}

/// Shard `index` of `count` (`--shard I/N`, 1-based in the CLI): the
/// positions `index, index + count, ...` of the permuted order. The shards
/// of one seed are disjoint and together cover every index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

impl Shard {
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    /// Parse `I/N` with 1 ≤ I ≤ N.
    pub fn parse(s: &str) -> Result<Shard, String> {
        let err = || format!("bad shard {s:?}: write I/N with 1 <= I <= N, e.g. --shard 2/4");
        let (i, n) = s.split_once('/').ok_or_else(err)?;
        let (i, n): (u64, u64) = (
            i.trim().parse().map_err(|_| err())?,
            n.trim().parse().map_err(|_| err())?,
        );
        if n == 0 || i == 0 || i > n {
            return Err(err());
        }
        Ok(Shard {
            index: i - 1,
            count: n,
        })
    }

    /// The positions of the order (of `n`) this shard visits: `index`,
    /// `index + count`, ...
    pub fn positions(&self, n: u64) -> impl Iterator<Item = u64> + use<> {
        self.positions_from(n, 0)
    }

    /// The positions this shard visits from `from` on (a resumed scan
    /// continues where a sending thread stopped).
    pub fn positions_from(&self, n: u64, from: u64) -> impl Iterator<Item = u64> + use<> {
        let step = self.count;
        let start = if from <= self.index {
            Some(self.index)
        } else {
            (from - self.index)
                .div_ceil(step)
                .checked_mul(step)
                .and_then(|k| k.checked_add(self.index))
        };
        std::iter::successors(start.filter(|&s| s < n), move |&p| {
            p.checked_add(step).filter(|&q| q < n)
        })
    }
}

/// `I/N`, as `--shard` takes it.
impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index + 1, self.count)
    }
}

impl serde::Serialize for Shard {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Shard {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Shard, D::Error> {
        let text = <String as serde::Deserialize>::deserialize(d)?;
        Shard::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod positions_tests {
    use super::*;

    #[test]
    fn positions_from_continue_the_same_walk() {
        let share = Shard { index: 2, count: 3 };
        let all: Vec<u64> = share.positions(20).collect();
        assert_eq!(all, [2, 5, 8, 11, 14, 17]);
        for from in 0..22 {
            let rest: Vec<u64> = share.positions_from(20, from).collect();
            let want: Vec<u64> = all.iter().copied().filter(|&p| p >= from).collect();
            assert_eq!(rest, want, "from {from}");
        }
        assert_eq!(share.positions_from(20, u64::MAX).count(), 0);
    }
}

#[cfg(test)]
mod index_of_tests {
    use super::*;

    #[test]
    fn index_of_inverts_get() {
        let set: IpSet = [
            AddrRange::cidr("198.18.0.0".parse().unwrap(), 30).unwrap(),
            AddrRange::new("198.18.5.1".parse().unwrap(), "198.18.5.3".parse().unwrap()).unwrap(),
            AddrRange::cidr("2001:db8::".parse().unwrap(), 126).unwrap(),
        ]
        .into_iter()
        .collect();
        let ports = PortSet::parse("22,80,1000-1002").unwrap();
        let space = IndexSpace::new(&set, Some(&ports)).unwrap();
        for i in 0..space.len() {
            let (a, p) = space.get(i);
            assert_eq!(space.index_of(a, p), Some(i), "{a} {p:?}");
        }
        assert_eq!(
            space.index_of("198.18.5.4".parse().unwrap(), Some(22)),
            None
        );
        assert_eq!(
            space.index_of("198.18.0.1".parse().unwrap(), Some(23)),
            None
        );
        assert_eq!(space.index_of("198.18.0.1".parse().unwrap(), None), None);
        let pings = IndexSpace::new(&set, None).unwrap();
        for i in 0..pings.len() {
            assert_eq!(pings.index_of(pings.get(i).0, None), Some(i));
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn set(cidrs: &[&str]) -> IpSet {
        cidrs
            .iter()
            .map(|c| {
                let (b, p) = c.split_once('/').unwrap();
                AddrRange::cidr(b.parse().unwrap(), p.parse().unwrap()).unwrap()
            })
            .collect()
    }

    #[test]
    fn index_maps_to_every_address_and_port() {
        let space = IndexSpace::new(
            &set(&["198.18.0.0/30", "2001:db8::/127"]),
            Some(&PortSet::parse("22,80").unwrap()),
        )
        .unwrap();
        let all: Vec<String> = (0..space.len())
            .map(|i| format!("{:?}", space.get(i)))
            .collect();
        assert_eq!(space.len(), (4 + 2) * 2);
        assert_eq!(all[0], "(198.18.0.0, Some(22))");
        assert_eq!(all[1], "(198.18.0.0, Some(80))");
        assert_eq!(all[11], "(2001:db8::1, Some(80))");
        let no_ports = IndexSpace::new(&set(&["198.18.0.0/30"]), None).unwrap();
        assert_eq!(no_ports.get(3), ("198.18.0.3".parse().unwrap(), None));
    }

    #[test]
    fn a_slash_8_times_all_ports_costs_no_memory() {
        let space = IndexSpace::new(&set(&["10.0.0.0/8"]), Some(&PortSet::all())).unwrap();
        assert_eq!(space.len(), (1 << 24) * 65_535);
        let order = crate::probe::order::Permutation::new(space.len(), 99);
        let last = order.apply(space.len() - 1);
        assert!(last < space.len());
        let (addr, port) = space.get(last);
        assert!(
            AddrRange::cidr("10.0.0.0".parse().unwrap(), 8)
                .unwrap()
                .contains(addr)
                && port.is_some()
        );
        assert!(
            std::mem::size_of_val(&space) + space.ranges.len() * 40 + space.ports.len() * 2
                < 200_000
        );
    }

    #[test]
    fn too_large_and_empty_spaces_are_errors() {
        assert_eq!(
            IndexSpace::new(&set(&["2001:db8::/32"]), None).unwrap_err(),
            IndexError::TooLarge
        );
        assert_eq!(
            IndexSpace::new(&IpSet::new(), None).unwrap_err(),
            IndexError::Empty
        );
        assert!(
            Shard::parse("0/4").is_err()
                && Shard::parse("5/4").is_err()
                && Shard::parse("x").is_err()
        );
        assert_eq!(Shard::parse("2/4").unwrap(), Shard { index: 1, count: 4 });
    }
}
