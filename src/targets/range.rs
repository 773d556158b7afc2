//! Address ranges and sets over the flat integer space of one address family.
//!
//! IPv4 and IPv6 addresses are mapped to `u128` so one implementation of
//! interval arithmetic serves both; a set keeps the two families apart so an
//! IPv4 value can never be confused with the IPv6 address of the same number.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The address family of a range or set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn of(ip: IpAddr) -> Family {
        match ip {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    /// The largest address value of the family.
    pub fn max_value(self) -> u128 {
        match self {
            Family::V4 => u32::MAX as u128,
            Family::V6 => u128::MAX,
        }
    }

    pub fn bits(self) -> u32 {
        match self {
            Family::V4 => 32,
            Family::V6 => 128,
        }
    }

    pub fn addr(self, value: u128) -> IpAddr {
        match self {
            Family::V4 => IpAddr::V4(Ipv4Addr::from(value as u32)),
            Family::V6 => IpAddr::V6(Ipv6Addr::from(value)),
        }
    }
}

/// The integer value of an address within its family.
pub fn addr_value(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u32::from(a) as u128,
        IpAddr::V6(a) => u128::from(a),
    }
}

/// IPv6 addresses that carry an IPv4 address: IPv4-mapped `::ffff:a.b.c.d`.
const MAPPED: (u128, u128) = (0xffff_0000_0000, 0xffff_ffff_ffff);
/// The deprecated IPv4-compatible form `::a.b.c.d`, less `::` and `::1`
/// (the unspecified and loopback addresses, which are IPv6's own).
const COMPATIBLE: (u128, u128) = (2, 0xffff_ffff);

/// The address a packet to `ip` would really reach: an IPv4-mapped or
/// IPv4-compatible IPv6 address stands for its IPv4 address, so rules are
/// judged on that (a deny rule for 198.18.1.2 must also stop
/// `::ffff:198.18.1.2`). Every other address is returned as it is.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    if let IpAddr::V6(a) = ip {
        let v = u128::from(a);
        for (lo, hi) in [MAPPED, COMPATIBLE] {
            if (lo..=hi).contains(&v) {
                return IpAddr::V4(Ipv4Addr::from((v - lo + (lo & 0xffff_ffff)) as u32));
            }
        }
    }
    ip
}

/// An inclusive range of addresses of one family: `start..=end`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AddrRange {
    family: Family,
    start: u128,
    end: u128,
}

/// Why a range could not be formed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RangeError {
    MixedFamilies,
    Inverted,
    PrefixTooLong { prefix: u8, max: u32 },
}

impl fmt::Display for RangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RangeError::MixedFamilies => write!(f, "a range cannot mix IPv4 and IPv6 ends"),
            RangeError::Inverted => write!(f, "the range's first address is after its last"),
            RangeError::PrefixTooLong { prefix, max } => {
                write!(f, "prefix length {prefix} is longer than {max}")
            }
        }
    }
}

impl AddrRange {
    pub fn single(ip: IpAddr) -> AddrRange {
        let v = addr_value(ip);
        AddrRange {
            family: Family::of(ip),
            start: v,
            end: v,
        }
    }

    pub fn new(first: IpAddr, last: IpAddr) -> Result<AddrRange, RangeError> {
        if Family::of(first) != Family::of(last) {
            return Err(RangeError::MixedFamilies);
        }
        let (start, end) = (addr_value(first), addr_value(last));
        if start > end {
            return Err(RangeError::Inverted);
        }
        Ok(AddrRange {
            family: Family::of(first),
            start,
            end,
        })
    }

    /// The block `base/prefix`; host bits of `base` are ignored, as nmap does.
    pub fn cidr(base: IpAddr, prefix: u8) -> Result<AddrRange, RangeError> {
        let family = Family::of(base);
        let bits = family.bits();
        if u32::from(prefix) > bits {
            return Err(RangeError::PrefixTooLong { prefix, max: bits });
        }
        let host_bits = bits - u32::from(prefix);
        let host_mask: u128 = if host_bits == 128 {
            u128::MAX
        } else {
            (1u128 << host_bits) - 1
        };
        let start = addr_value(base) & !host_mask & family.max_value();
        Ok(AddrRange {
            family,
            start,
            end: start | host_mask,
        })
    }

    pub(crate) fn from_values(family: Family, start: u128, end: u128) -> AddrRange {
        debug_assert!(start <= end && end <= family.max_value());
        AddrRange { family, start, end }
    }

    pub fn family(&self) -> Family {
        self.family
    }
    pub fn start_value(&self) -> u128 {
        self.start
    }
    pub fn end_value(&self) -> u128 {
        self.end
    }
    pub fn first(&self) -> IpAddr {
        self.family.addr(self.start)
    }
    pub fn last(&self) -> IpAddr {
        self.family.addr(self.end)
    }

    /// Number of addresses, saturating at `u128::MAX` for all of IPv6.
    pub fn len(&self) -> u128 {
        (self.end - self.start).saturating_add(1)
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        Family::of(ip) == self.family && (self.start..=self.end).contains(&addr_value(ip))
    }

    /// The range with its IPv4-mapped and IPv4-compatible parts (see
    /// [`canonical_ip`]) given as the IPv4 ranges they stand for: one to
    /// five ranges that cover exactly the addresses the range reaches.
    pub fn canonical_parts(&self) -> Vec<AddrRange> {
        if self.family == Family::V4 {
            return vec![*self];
        }
        let mut rest = vec![(self.start, self.end)];
        let mut out = Vec::new();
        for (lo, hi) in [MAPPED, COMPATIBLE] {
            let mut next = Vec::new();
            for (s, e) in rest {
                if e < lo || s > hi {
                    next.push((s, e));
                    continue;
                }
                let (a, b) = (s.max(lo), e.min(hi));
                let base = lo & 0xffff_ffff;
                out.push(AddrRange::from_values(
                    Family::V4,
                    a - lo + base,
                    b - lo + base,
                ));
                if s < a {
                    next.push((s, a - 1));
                }
                if e > b {
                    next.push((b + 1, e));
                }
            }
            rest = next;
        }
        out.extend(
            rest.into_iter()
                .map(|(s, e)| AddrRange::from_values(Family::V6, s, e)),
        );
        out
    }

    /// The `i`-th address of the range, if there is one.
    pub fn nth(&self, i: u128) -> Option<IpAddr> {
        let v = self.start.checked_add(i)?;
        (v <= self.end).then(|| self.family.addr(v))
    }
}

impl fmt::Display for AddrRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.start == self.end {
            return write!(f, "{}", self.first());
        }
        // Print as CIDR when the range is exactly one aligned block.
        let span = self.end - self.start;
        if span.wrapping_add(1) & span == 0 && self.start & span == 0 {
            let host_bits = 128 - span.leading_zeros();
            let prefix = self.family.bits() - host_bits;
            return write!(f, "{}/{}", self.first(), prefix);
        }
        write!(f, "{}-{}", self.first(), self.last())
    }
}

/// A set of addresses kept as sorted, disjoint, non-adjacent ranges per family.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IpSet {
    v4: Vec<(u128, u128)>,
    v6: Vec<(u128, u128)>,
}

impl IpSet {
    pub fn new() -> IpSet {
        IpSet::default()
    }

    fn family_mut(&mut self, family: Family) -> &mut Vec<(u128, u128)> {
        match family {
            Family::V4 => &mut self.v4,
            Family::V6 => &mut self.v6,
        }
    }

    fn family(&self, family: Family) -> &[(u128, u128)] {
        match family {
            Family::V4 => &self.v4,
            Family::V6 => &self.v6,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    /// Add `range`, merging it with the ranges it touches: found by binary
    /// search, replaced in place (a scope of 100,000 rules inserted one by
    /// one rebuilt the whole list each time).
    pub fn insert(&mut self, range: AddrRange) {
        let list = self.family_mut(range.family);
        let (start, end) = (range.start, range.end);
        // The ranges that overlap or touch [start, end]: i..j.
        let i = list.partition_point(|&(_, e)| e.saturating_add(1) < start);
        let j = list.partition_point(|&(s, _)| s <= end.saturating_add(1));
        let merged = if i < j {
            (start.min(list[i].0), end.max(list[j - 1].1))
        } else {
            (start, end)
        };
        list.splice(i..j, std::iter::once(merged));
    }

    /// Take `range` out: only the ranges it overlaps change.
    pub fn remove(&mut self, range: AddrRange) {
        let list = self.family_mut(range.family);
        let i = list.partition_point(|&(_, e)| e < range.start);
        let j = list.partition_point(|&(s, _)| s <= range.end);
        if i >= j {
            return;
        }
        let mut kept = Vec::with_capacity(2);
        if list[i].0 < range.start {
            kept.push((list[i].0, range.start - 1));
        }
        if list[j - 1].1 > range.end {
            kept.push((range.end + 1, list[j - 1].1));
        }
        list.splice(i..j, kept);
    }

    /// Every address of any of `sets`: sorted and merged once.
    pub fn union_of<'a>(sets: impl IntoIterator<Item = &'a IpSet>) -> IpSet {
        sets.into_iter().flat_map(IpSet::ranges).collect()
    }

    pub fn union_with(&mut self, other: &IpSet) {
        if other.v4.len() + other.v6.len() > 8 {
            // Many ranges at once: sort and merge, not one insert each.
            *self = self.ranges().chain(other.ranges()).collect();
            return;
        }
        for r in other.ranges() {
            self.insert(r);
        }
    }

    /// The set with every IPv4-mapped or IPv4-compatible IPv6 address
    /// replaced by the IPv4 address it stands for ([`canonical_ip`]).
    pub fn canonical(&self) -> IpSet {
        self.ranges().flat_map(|r| r.canonical_parts()).collect()
    }

    /// Take every address of `other` out: one pass over both sorted lists.
    pub fn subtract(&mut self, other: &IpSet) {
        for (mine, theirs) in [(&mut self.v4, &other.v4), (&mut self.v6, &other.v6)] {
            if theirs.is_empty() || mine.is_empty() {
                continue;
            }
            let mut out = Vec::with_capacity(mine.len());
            let mut k = 0;
            for &(s, e) in mine.iter() {
                // Ranges of `other` wholly before this one are before
                // every later one too.
                while k < theirs.len() && theirs[k].1 < s {
                    k += 1;
                }
                // What is left of [s, e] starts here (None: nothing).
                let mut rest = Some(s);
                let mut m = k;
                while let (Some(start), Some(&(ts, te))) = (rest, theirs.get(m)) {
                    if ts > e {
                        break;
                    }
                    if ts > start {
                        out.push((start, ts - 1));
                    }
                    rest = (te < e).then(|| te + 1);
                    m += 1;
                }
                if let Some(start) = rest {
                    out.push((start, e));
                }
            }
            *mine = out;
        }
    }

    fn find(&self, family: Family, v: u128) -> Option<(u128, u128)> {
        let list = self.family(family);
        let i = list.partition_point(|&(_, e)| e < v);
        list.get(i).copied().filter(|&(s, _)| s <= v)
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.find(Family::of(ip), addr_value(ip)).is_some()
    }

    /// True when every address of `range` is in the set.
    pub fn contains_range(&self, range: AddrRange) -> bool {
        self.find(range.family, range.start)
            .is_some_and(|(_, e)| e >= range.end)
    }

    /// True when at least one address of `range` is in the set.
    pub fn intersects(&self, range: AddrRange) -> bool {
        let list = self.family(range.family);
        let i = list.partition_point(|&(_, e)| e < range.start);
        list.get(i).is_some_and(|&(s, _)| s <= range.end)
    }

    /// The first address of `range` that is not in the set.
    pub fn first_missing(&self, range: AddrRange) -> Option<IpAddr> {
        let mut v = range.start;
        loop {
            match self.find(range.family, v) {
                None => return Some(range.family.addr(v)),
                Some((_, e)) if e >= range.end => return None,
                Some((_, e)) => v = e + 1,
            }
        }
    }

    /// The first address of `range` that is in the set.
    pub fn first_common(&self, range: AddrRange) -> Option<IpAddr> {
        let list = self.family(range.family);
        let i = list.partition_point(|&(_, e)| e < range.start);
        let &(s, _) = list.get(i)?;
        (s <= range.end).then(|| range.family.addr(s.max(range.start)))
    }

    pub fn ranges(&self) -> impl Iterator<Item = AddrRange> + '_ {
        let v4 = self
            .v4
            .iter()
            .map(|&(s, e)| AddrRange::from_values(Family::V4, s, e));
        let v6 = self
            .v6
            .iter()
            .map(|&(s, e)| AddrRange::from_values(Family::V6, s, e));
        v4.chain(v6)
    }

    /// Number of addresses of one family, saturating.
    pub fn count(&self, family: Family) -> u128 {
        self.family(family).iter().fold(0u128, |acc, &(s, e)| {
            acc.saturating_add((e - s).saturating_add(1))
        })
    }
}

impl FromIterator<AddrRange> for IpSet {
    /// Sorts and merges once: linear after the sort, where inserting one
    /// range at a time is quadratic (a scope with 40,000 rules).
    fn from_iter<I: IntoIterator<Item = AddrRange>>(iter: I) -> IpSet {
        let mut set = IpSet::new();
        for r in iter {
            set.family_mut(r.family).push((r.start, r.end));
        }
        for list in [&mut set.v4, &mut set.v6] {
            list.sort_unstable();
            let mut merged: Vec<(u128, u128)> = Vec::with_capacity(list.len());
            for &(s, e) in list.iter() {
                match merged.last_mut() {
                    Some(last) if s <= last.1.saturating_add(1) => last.1 = last.1.max(e),
                    _ => merged.push((s, e)),
                }
            }
            *list = merged;
        }
        set
    }
}

/// The text [`AddrRange`]'s `Display` writes (`ADDR`, `ADDR/PREFIX`,
/// `FIRST-LAST`), read back: how a recorded scan request names its targets.
impl std::str::FromStr for AddrRange {
    type Err = String;

    fn from_str(s: &str) -> Result<AddrRange, String> {
        let bad = |why: &str| format!("{s:?} is not an address range ({why})");
        if let Some((base, prefix)) = s.split_once('/') {
            let base: IpAddr = base.parse().map_err(|_| bad("address before '/'"))?;
            let prefix: u8 = prefix.parse().map_err(|_| bad("prefix length"))?;
            return AddrRange::cidr(base, prefix).map_err(|e| bad(&e.to_string()));
        }
        if let Some((a, b)) = s.split_once('-') {
            let (a, b): (IpAddr, IpAddr) = (
                a.parse().map_err(|_| bad("first address"))?,
                b.parse().map_err(|_| bad("last address"))?,
            );
            return AddrRange::new(a, b).map_err(|e| bad(&e.to_string()));
        }
        s.parse::<IpAddr>()
            .map(AddrRange::single)
            .map_err(|_| bad("an address, ADDR/PREFIX or FIRST-LAST"))
    }
}

/// A set as the list of its ranges' text, e.g. `["198.18.0.0/24", "::1"]`.
impl serde::Serialize for IpSet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.ranges().map(|r| r.to_string()))
    }
}

impl<'de> serde::Deserialize<'de> for IpSet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<IpSet, D::Error> {
        let texts = <Vec<String> as serde::Deserialize>::deserialize(d)?;
        let mut set = IpSet::new();
        for t in texts {
            set.insert(t.parse().map_err(serde::de::Error::custom)?);
        }
        Ok(set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidr_ignores_host_bits_and_prints_back() {
        let r = AddrRange::cidr(ip("198.18.1.77"), 24).unwrap();
        assert_eq!(r.first(), ip("198.18.1.0"));
        assert_eq!(r.last(), ip("198.18.1.255"));
        assert_eq!(r.to_string(), "198.18.1.0/24");
        assert_eq!(AddrRange::cidr(ip("::"), 0).unwrap().len(), u128::MAX);
        assert!(AddrRange::cidr(ip("1.2.3.4"), 33).is_err());
    }

    /// insert, remove and subtract against a bitmap of 0.0.0.0-0.0.0.255
    /// and the edges of the address space, with random ranges.
    #[test]
    fn set_operations_agree_with_a_bitmap() {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = |n: u32| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % u64::from(n)) as u32
        };
        let v4 = |a: u32| IpAddr::V4(std::net::Ipv4Addr::from(a));
        // Addresses near 0 and near the top, mapped to 0..512.
        let at = |i: u32| if i < 256 { i } else { u32::MAX - 511 + i };
        for _ in 0..300 {
            let mut set = IpSet::new();
            let mut bits = [false; 512];
            let mut other = IpSet::new();
            let mut other_bits = [false; 512];
            for _ in 0..next(12) {
                let (a, b) = (next(512), next(512));
                let (a, b) = (a.min(b), a.max(b));
                // One range may not straddle the gap between the two ends.
                let b = if a < 256 { b.min(255) } else { b };
                let r = AddrRange::new(v4(at(a)), v4(at(b))).unwrap();
                match next(3) {
                    0 => {
                        set.remove(r);
                        bits[a as usize..=b as usize].fill(false);
                    }
                    1 => {
                        other.insert(r);
                        other_bits[a as usize..=b as usize].fill(true);
                    }
                    _ => {
                        set.insert(r);
                        bits[a as usize..=b as usize].fill(true);
                    }
                }
            }
            set.subtract(&other);
            for (i, b) in bits.iter_mut().enumerate() {
                *b &= !other_bits[i];
            }
            for i in 0..512u32 {
                assert_eq!(set.contains(v4(at(i))), bits[i as usize], "{i}: {set:?}");
            }
            // Disjoint, sorted, merged.
            let list: Vec<_> = set.ranges().collect();
            for w in list.windows(2) {
                assert!(w[0].end.saturating_add(1) < w[1].start, "{list:?}");
            }
        }
    }

    #[test]
    fn set_merges_adjacent_and_subtracts() {
        let mut s = IpSet::new();
        s.insert(AddrRange::cidr(ip("198.18.0.0"), 24).unwrap());
        s.insert(AddrRange::cidr(ip("198.18.1.0"), 24).unwrap());
        assert_eq!(s.ranges().count(), 1);
        s.remove(AddrRange::single(ip("198.18.0.128")));
        assert_eq!(s.ranges().count(), 2);
        assert_eq!(s.count(Family::V4), 511);
        assert!(!s.contains(ip("198.18.0.128")));
        assert!(s.contains(ip("198.18.1.255")));
        let r = AddrRange::new(ip("198.18.0.100"), ip("198.18.0.200")).unwrap();
        assert!(!s.contains_range(r));
        assert!(s.intersects(r));
        assert_eq!(s.first_missing(r), Some(ip("198.18.0.128")));
        assert_eq!(s.first_common(r), Some(ip("198.18.0.100")));
    }

    #[test]
    fn mapped_and_compatible_forms_stand_for_their_ipv4_address() {
        assert_eq!(canonical_ip(ip("::ffff:198.18.128.2")), ip("198.18.128.2"));
        assert_eq!(canonical_ip(ip("::198.18.128.2")), ip("198.18.128.2"));
        assert_eq!(canonical_ip(ip("::1")), ip("::1"));
        assert_eq!(canonical_ip(ip("::")), ip("::"));
        assert_eq!(canonical_ip(ip("2001:db8::1")), ip("2001:db8::1"));
        let all = AddrRange::cidr(ip("::"), 0).unwrap().canonical_parts();
        let set: IpSet = all.into_iter().collect();
        assert!(set.contains(ip("198.18.128.2")));
        assert!(!set.contains(ip("::ffff:198.18.128.2")));
        assert!(!set.contains(ip("::198.18.128.2")));
        assert!(set.contains(ip("::1")) && set.contains(ip("::")));
        assert!(set.contains(ip("2001:db8::1")));
        assert_eq!(set.count(Family::V4), 1 << 32);
        let mapped = AddrRange::cidr(ip("::ffff:198.18.0.0"), 112).unwrap();
        assert_eq!(
            mapped.canonical_parts(),
            vec![AddrRange::cidr(ip("198.18.0.0"), 16).unwrap()]
        );
    }

    #[test]
    fn collecting_many_ranges_merges_as_inserting_does() {
        let ranges: Vec<AddrRange> = (0..300u32)
            .map(|i| {
                let a = IpAddr::V4(Ipv4Addr::from(0xc612_0000 + (i * 7919) % 4096));
                AddrRange::new(a, a).unwrap()
            })
            .collect();
        let mut one_by_one = IpSet::new();
        for r in &ranges {
            one_by_one.insert(*r);
        }
        assert_eq!(ranges.into_iter().collect::<IpSet>(), one_by_one);
    }

    #[test]
    fn families_never_mix() {
        let s: IpSet = [AddrRange::single(ip("0.0.0.1"))].into_iter().collect();
        assert!(!s.contains(ip("::1")));
    }
}
