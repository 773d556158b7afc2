//! Port lists in nmap's syntax: `22,80,1000-2000`, `-` for all, open-ended
//! `1000-` and `-1024`, plus the `--top-ports` frequency list.

use std::fmt;

mod services;
mod top;

/// An error in a port list, with the byte offset (0-based) of the bad item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortError {
    pub offset: usize,
    pub item: String,
    pub message: String,
    pub hint: &'static str,
}

impl fmt::Display for PortError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "bad port list item {:?} at column {}: {} (hint: {})",
            self.item,
            self.offset + 1,
            self.message,
            self.hint
        )
    }
}

impl std::error::Error for PortError {}

/// A set of ports 1..=65535 as sorted, disjoint, non-adjacent inclusive ranges.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct PortSet {
    ranges: Vec<(u16, u16)>,
}

const PORT_HINT: &str = "ports are 1-65535, written like 22,80,1000-2000 or - for all";

/// nmap's name for a TCP port's service (`ssh` for 22), if it has one
/// (from Debian's nmap-services; `services.rs` records the command).
pub fn tcp_service(port: u16) -> Option<&'static str> {
    services::TCP_SERVICES
        .binary_search_by_key(&port, |&(p, _)| p)
        .ok()
        .map(|i| services::TCP_SERVICES[i].1)
}

impl PortSet {
    pub fn new() -> PortSet {
        PortSet::default()
    }

    pub fn all() -> PortSet {
        PortSet {
            ranges: vec![(1, 65535)],
        }
    }

    pub fn single(port: u16) -> PortSet {
        let mut s = PortSet::new();
        s.insert(port, port);
        s
    }

    /// Parse nmap's port syntax. Whitespace around items is ignored.
    pub fn parse(spec: &str) -> Result<PortSet, PortError> {
        let mut set = PortSet::new();
        if spec.trim() == "-" {
            return Ok(PortSet::all());
        }
        let mut offset = 0;
        for raw in spec.split(',') {
            let item_offset = offset + (raw.len() - raw.trim_start().len());
            offset += raw.len() + 1;
            let item = raw.trim();
            let err = |message: String| PortError {
                offset: item_offset,
                item: item.to_string(),
                message,
                hint: PORT_HINT,
            };
            if item.is_empty() {
                return Err(err("empty item".into()));
            }
            let (lo, hi) = match item.split_once('-') {
                None => {
                    let p = parse_port(item).map_err(err)?;
                    (p, p)
                }
                Some((a, b)) => {
                    let lo = if a.trim().is_empty() {
                        1
                    } else {
                        parse_port(a.trim()).map_err(err)?
                    };
                    let hi = if b.trim().is_empty() {
                        65535
                    } else {
                        parse_port(b.trim()).map_err(err)?
                    };
                    if lo > hi {
                        return Err(err(format!(
                            "range {lo}-{hi} is inverted: {lo} is greater than {hi}"
                        )));
                    }
                    (lo, hi)
                }
            };
            set.insert(lo, hi);
        }
        Ok(set)
    }

    /// The `n` most frequently open TCP ports, in nmap's frequency order.
    pub fn top(n: usize) -> Result<PortSet, String> {
        if n == 0 || n > top::TOP_TCP_PORTS.len() {
            return Err(format!(
                "--top-ports takes 1 to {}, not {n}; use -p for other port lists",
                top::TOP_TCP_PORTS.len()
            ));
        }
        let mut set = PortSet::new();
        for &p in &top::TOP_TCP_PORTS[..n] {
            set.insert(p, p);
        }
        Ok(set)
    }

    pub fn insert(&mut self, lo: u16, hi: u16) {
        debug_assert!(lo <= hi && lo >= 1);
        let (mut lo, mut hi) = (lo, hi);
        let mut out = Vec::with_capacity(self.ranges.len() + 1);
        let mut placed = false;
        for &(s, e) in &self.ranges {
            if e.saturating_add(1) < lo {
                out.push((s, e));
            } else if hi.saturating_add(1) < s {
                if !placed {
                    out.push((lo, hi));
                    placed = true;
                }
                out.push((s, e));
            } else {
                lo = lo.min(s);
                hi = hi.max(e);
            }
        }
        if !placed {
            out.push((lo, hi));
        }
        self.ranges = out;
    }

    pub fn union_with(&mut self, other: &PortSet) {
        for &(lo, hi) in &other.ranges {
            self.insert(lo, hi);
        }
    }

    pub fn contains(&self, port: u16) -> bool {
        let i = self.ranges.partition_point(|&(_, e)| e < port);
        self.ranges.get(i).is_some_and(|&(s, _)| s <= port)
    }

    pub fn len(&self) -> usize {
        self.ranges
            .iter()
            .map(|&(s, e)| usize::from(e - s) + 1)
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    pub fn ranges(&self) -> &[(u16, u16)] {
        &self.ranges
    }

    pub fn iter(&self) -> impl Iterator<Item = u16> + '_ {
        self.ranges.iter().flat_map(|&(s, e)| s..=e)
    }
}

impl fmt::Display for PortSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, &(s, e)) in self.ranges.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if s == e {
                write!(f, "{s}")?;
            } else {
                write!(f, "{s}-{e}")?;
            }
        }
        Ok(())
    }
}

fn parse_port(s: &str) -> Result<u16, String> {
    match s.parse::<u32>() {
        Ok(0) => Err("port 0 is not a port that can be probed".into()),
        Ok(p) if p > 65535 => Err(format!("port {p} is greater than 65535")),
        Ok(p) => Ok(p as u16),
        Err(_) => Err(format!("{s:?} is not a port number")),
    }
}

/// A port list as the text `-p` takes (`22,80,1000-2000`).
impl serde::Serialize for PortSet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for PortSet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<PortSet, D::Error> {
        let text = <String as serde::Deserialize>::deserialize(d)?;
        PortSet::parse(&text).map_err(|e| serde::de::Error::custom(e.message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_names_are_nmaps() {
        assert_eq!(tcp_service(22), Some("ssh"));
        assert_eq!(tcp_service(80), Some("http"));
        assert_eq!(tcp_service(443), Some("https"));
        assert_eq!(tcp_service(3306), Some("mysql"));
        assert_eq!(tcp_service(65535), None);
        assert!(
            super::services::TCP_SERVICES
                .windows(2)
                .all(|w| w[0].0 < w[1].0)
        );
    }

    #[test]
    fn nmap_syntax() {
        let s = PortSet::parse("22,80, 1000-2000,81").unwrap();
        assert_eq!(s.to_string(), "22,80-81,1000-2000");
        assert_eq!(s.len(), 1004);
        assert_eq!(PortSet::parse("-").unwrap().len(), 65535);
        assert_eq!(PortSet::parse("60000-").unwrap().to_string(), "60000-65535");
        assert_eq!(PortSet::parse("-3").unwrap().to_string(), "1-3");
    }

    #[test]
    fn errors_point_at_the_item() {
        let e = PortSet::parse("22, 0").unwrap_err();
        assert_eq!((e.offset, e.item.as_str()), (4, "0"));
        let e = PortSet::parse("22,2000-1000").unwrap_err();
        assert!(e.message.contains("inverted"), "{e}");
        assert!(
            PortSet::parse("65536")
                .unwrap_err()
                .message
                .contains("greater than 65535")
        );
        assert!(PortSet::parse("22,,80").is_err());
        assert!(PortSet::parse("http").is_err());
    }

    #[test]
    fn top_ports_follow_frequency_order() {
        let top = PortSet::top(3).unwrap();
        assert_eq!(top.to_string(), "23,80,443");
        assert_eq!(PortSet::top(1000).unwrap().len(), 1000);
        assert!(PortSet::top(0).is_err());
        assert!(PortSet::top(1001).is_err());
    }
}
