//! Target specifications in nmap's syntax.
//!
//! `198.18.1.1`, `198.18.0.0/24`, `198.18.1.1-198.18.1.50`, the short form
//! `198.18.1.1-50`, octet ranges (`198.18.1-2.1`, `198.18.1.*`,
//! `198.18.1.1,5,9-12`), IPv6 addresses, blocks and ranges, and host
//! names. Text made of digits, dots, `*`, `,` and `-` is never a host name:
//! a mistyped address must not become a DNS query. Host
//! names are resolved through a [`Resolver`] so this module stays free of I/O;
//! the address a name resolves to is what the scope gate judges.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use super::range::{AddrRange, RangeError};

/// One target as the user wrote it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TargetSpec {
    /// An address, block or range.
    Range(AddrRange),
    /// A host name still to be resolved.
    Host(String),
    /// nmap's octet ranges: the addresses as ranges of the last octet.
    Octets(Vec<AddrRange>),
}

/// The most ranges one octet-range target may expand to.
pub const MAX_OCTET_RANGES: usize = 65_536;

/// A target after name resolution.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedTarget {
    /// The text the user wrote.
    pub spec: String,
    /// The host name, when the target was one.
    pub host: Option<String>,
    pub range: AddrRange,
}

impl fmt::Display for ResolvedTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            Some(h) => write!(f, "{h} ({})", self.range),
            None => write!(f, "{}", self.range),
        }
    }
}

/// A target that could not be understood or resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetError {
    pub spec: String,
    pub message: String,
    pub hint: &'static str,
}

impl fmt::Display for TargetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "bad target {:?}: {} (hint: {})",
            self.spec, self.message, self.hint
        )
    }
}

impl std::error::Error for TargetError {}

const TARGET_HINT: &str = "targets are addresses (198.18.1.1, 2001:db8::1), blocks (198.18.0.0/24), \
ranges (198.18.1.1-198.18.1.50 or 198.18.1.1-50), octet ranges (198.18.1-2.*) or host names";

/// Resolves host names to addresses.
pub trait Resolver {
    fn resolve(&self, host: &str) -> Result<Vec<IpAddr>, String>;
}

/// The system resolver (getaddrinfo: /etc/hosts, then DNS as configured).
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemResolver;

impl Resolver for SystemResolver {
    fn resolve(&self, host: &str) -> Result<Vec<IpAddr>, String> {
        use std::net::ToSocketAddrs;
        let addrs = (host, 0u16).to_socket_addrs().map_err(|e| e.to_string())?;
        Ok(addrs.map(|a| a.ip()).collect())
    }
}

impl TargetSpec {
    pub fn parse(spec: &str) -> Result<TargetSpec, TargetError> {
        let s = spec.trim();
        let err = |message: String| TargetError {
            spec: spec.to_string(),
            message,
            hint: TARGET_HINT,
        };
        if s.is_empty() {
            return Err(err("empty target".into()));
        }
        let range_err = |e: RangeError| err(e.to_string());
        if let Some((base, prefix)) = s.split_once('/') {
            let base: IpAddr = base
                .parse()
                .map_err(|_| err(format!("{base:?} before '/' is not an IP address")))?;
            let prefix: u8 = prefix
                .parse()
                .map_err(|_| err(format!("{prefix:?} after '/' is not a prefix length")))?;
            return AddrRange::cidr(base, prefix)
                .map(TargetSpec::Range)
                .map_err(range_err);
        }
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(TargetSpec::Range(AddrRange::single(ip)));
        }
        if let Some((a, b)) = s.split_once('-')
            && let Ok(first) = a.parse::<IpAddr>()
        {
            let last = match (first, b.parse::<IpAddr>()) {
                (_, Ok(last)) => last,
                // nmap's short form: 198.18.1.1-50 ends at 198.18.1.50.
                (IpAddr::V4(f), Err(_)) => {
                    let octet: u8 = b.parse().map_err(|_| {
                        err(format!(
                            "{b:?} after '-' is neither an address nor a last octet 0-255"
                        ))
                    })?;
                    let o = f.octets();
                    IpAddr::V4(Ipv4Addr::new(o[0], o[1], o[2], octet))
                }
                (IpAddr::V6(_), Err(_)) => {
                    return Err(err(format!("{b:?} after '-' is not an IPv6 address")));
                }
            };
            return AddrRange::new(first, last)
                .map(TargetSpec::Range)
                .map_err(range_err);
        }
        if s.bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'*' | b',' | b'-'))
        {
            return octet_ranges(s).map(TargetSpec::Octets).map_err(err);
        }
        if is_host_name(s) {
            return Ok(TargetSpec::Host(s.to_ascii_lowercase()));
        }
        Err(err("not an address, block, range or host name".into()))
    }

    /// Resolve to address ranges (one, but for octet ranges). A host name
    /// becomes its first IPv4 address, or its first IPv6 address when it
    /// has no IPv4 one (nmap's choice without --resolve-all).
    pub fn resolve(
        &self,
        spec: &str,
        resolver: &dyn Resolver,
    ) -> Result<Vec<ResolvedTarget>, TargetError> {
        match self {
            TargetSpec::Range(r) => Ok(vec![ResolvedTarget {
                spec: spec.to_string(),
                host: None,
                range: *r,
            }]),
            TargetSpec::Octets(ranges) => Ok(ranges
                .iter()
                .map(|r| ResolvedTarget {
                    spec: spec.to_string(),
                    host: None,
                    range: *r,
                })
                .collect()),
            TargetSpec::Host(h) => {
                let err = |message: String| TargetError {
                    spec: spec.to_string(),
                    message,
                    hint: "check the name, or give the address itself",
                };
                let addrs = resolver
                    .resolve(h)
                    .map_err(|e| err(format!("host name {h:?} did not resolve: {e}")))?;
                let chosen = addrs
                    .iter()
                    .find(|a| a.is_ipv4())
                    .or_else(|| addrs.first())
                    .ok_or_else(|| err(format!("host name {h:?} has no addresses")))?;
                Ok(vec![ResolvedTarget {
                    spec: spec.to_string(),
                    host: Some(h.clone()),
                    range: AddrRange::single(*chosen),
                }])
            }
        }
    }
}

/// nmap's octet ranges: four dot-separated octets, each a comma list of
/// `N`, `N-M`, `-M`, `N-` or `*`; the addresses as ranges of the last
/// octet, at most [`MAX_OCTET_RANGES`].
fn octet_ranges(s: &str) -> Result<Vec<AddrRange>, String> {
    let parts: Vec<&str> = s.split('.').collect();
    if parts.len() != 4 {
        return Err(format!(
            "{} dot-separated parts; an IPv4 target has four octets",
            parts.len()
        ));
    }
    let mut octets: Vec<Vec<(u8, u8)>> = Vec::with_capacity(4);
    for (i, part) in parts.iter().enumerate() {
        let mut items: Vec<(u8, u8)> = Vec::new();
        for item in part.split(',') {
            let num = |t: &str, default: u8| -> Result<u8, String> {
                if t.is_empty() {
                    return Ok(default);
                }
                t.parse::<u8>()
                    .map_err(|_| format!("octet {} holds {t:?}, not a number 0-255", i + 1))
            };
            let (lo, hi) = match item {
                "*" => (0, 255),
                "" => return Err(format!("octet {} is empty", i + 1)),
                _ => match item.split_once('-') {
                    Some((a, b)) => (num(a, 0)?, num(b, 255)?),
                    None => {
                        let n = num(item, 0)?;
                        (n, n)
                    }
                },
            };
            if lo > hi {
                return Err(format!(
                    "octet {} range {item:?} ends before it starts",
                    i + 1
                ));
            }
            items.push((lo, hi));
        }
        items.sort_unstable();
        // Merge overlapping or adjacent items.
        let mut merged: Vec<(u8, u8)> = Vec::new();
        for (lo, hi) in items {
            match merged.last_mut() {
                Some(last) if u16::from(lo) <= u16::from(last.1) + 1 => last.1 = last.1.max(hi),
                _ => merged.push((lo, hi)),
            }
        }
        octets.push(merged);
    }
    let values = |o: &[(u8, u8)]| -> usize { o.iter().map(|(l, h)| usize::from(h - l) + 1).sum() };
    let count = values(&octets[0]) * values(&octets[1]) * values(&octets[2]) * octets[3].len();
    if count > MAX_OCTET_RANGES {
        return Err(format!(
            "it expands to {count} ranges (at most {MAX_OCTET_RANGES}); write it as CIDR blocks"
        ));
    }
    let each = |o: &[(u8, u8)]| -> Vec<u8> { o.iter().flat_map(|&(l, h)| l..=h).collect() };
    let mut out = Vec::with_capacity(count);
    for a in each(&octets[0]) {
        for b in each(&octets[1]) {
            for c in each(&octets[2]) {
                for &(lo, hi) in &octets[3] {
                    let first = IpAddr::V4(Ipv4Addr::new(a, b, c, lo));
                    let last = IpAddr::V4(Ipv4Addr::new(a, b, c, hi));
                    out.push(AddrRange::new(first, last).map_err(|e| e.to_string())?);
                }
            }
        }
    }
    Ok(out)
}

/// RFC 1123 host name: dot-separated labels of letters, digits and hyphens.
fn is_host_name(s: &str) -> bool {
    let s = s.strip_suffix('.').unwrap_or(s);
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        // all-numeric dotted text is a mistyped address, not a name
        && !s.split('.').all(|l| l.bytes().all(|b| b.is_ascii_digit()))
}

/// Split `TARGET[:PORT]`: `198.18.1.1:80`, `[2001:db8::1]:80`, `host:80`;
/// a bare IPv6 address has no port.
pub fn split_target_port(s: &str) -> Result<(&str, Option<u16>), TargetError> {
    let err = |message: String| TargetError {
        spec: s.to_string(),
        message,
        hint: "write TARGET:PORT, with IPv6 in brackets: [2001:db8::1]:80",
    };
    let parse_port = |p: &str| match p.parse::<u16>() {
        Ok(0) | Err(_) => Err(err(format!("{p:?} is not a port 1-65535"))),
        Ok(p) => Ok(p),
    };
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| err("'[' without a closing ']'".into()))?;
        return match after {
            "" => Ok((host, None)),
            _ => match after.strip_prefix(':') {
                Some(p) => Ok((host, Some(parse_port(p)?))),
                None => Err(err(format!("unexpected {after:?} after ']'"))),
            },
        };
    }
    match s.matches(':').count() {
        1 => {
            let (h, p) = s.split_once(':').expect("one colon");
            Ok((h, Some(parse_port(p)?)))
        }
        _ => Ok((s, None)),
    }
}

/// Parse an nmap `-iL` list: targets separated by white space or new lines,
/// `#` starts a comment. Errors name the line.
pub fn parse_target_list(
    text: &str,
    origin: &str,
) -> Result<Vec<(String, TargetSpec)>, TargetError> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("");
        for word in line.split_whitespace() {
            let spec = TargetSpec::parse(word).map_err(|mut e| {
                e.message = format!("{origin}:{}: {}", n + 1, e.message);
                e
            })?;
            out.push((word.to_string(), spec));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed;
    impl Resolver for Fixed {
        fn resolve(&self, host: &str) -> Result<Vec<IpAddr>, String> {
            match host {
                "dual.lab.test" => Ok(vec![
                    "2001:db8::5".parse().unwrap(),
                    "198.18.0.5".parse().unwrap(),
                ]),
                "v6.lab.test" => Ok(vec!["2001:db8::6".parse().unwrap()]),
                _ => Err("no such host".into()),
            }
        }
    }

    fn range(s: &str) -> String {
        match TargetSpec::parse(s).unwrap() {
            TargetSpec::Range(r) => r.to_string(),
            TargetSpec::Host(h) => format!("host {h}"),
            TargetSpec::Octets(rs) => rs
                .iter()
                .map(|r| r.to_string())
                .collect::<Vec<_>>()
                .join(" "),
        }
    }

    /// Regression (issue 16): nmap's octet ranges were taken for host
    /// names and looked up in DNS.
    #[test]
    fn octet_ranges_expand_and_never_become_host_names() {
        assert_eq!(range("198.18.1-2.1"), "198.18.1.1 198.18.2.1");
        assert_eq!(range("198.18.1.*"), "198.18.1.0/24");
        assert_eq!(
            range("198.18.1.1,5,9-12,-0"),
            "198.18.1.0/31 198.18.1.5 198.18.1.9-198.18.1.12"
        );
        let open_ended = range("198.18.3-.250-");
        let parts: Vec<&str> = open_ended.split(' ').collect();
        assert_eq!(parts.len(), 253);
        assert_eq!(parts[0], "198.18.3.250-198.18.3.255");
        assert_eq!(parts[252], "198.18.255.250-198.18.255.255");
        for bad in [
            "198.18.1-2",
            "198.18.300.1",
            "198.18.2-1.1",
            "198.18..1",
            "*.*.*.*",
        ] {
            let e = TargetSpec::parse(bad).unwrap_err();
            assert!(!e.message.is_empty(), "{bad:?}");
        }
        assert!(
            TargetSpec::parse("*.*.*.*")
                .unwrap_err()
                .message
                .contains("CIDR")
        );
    }

    #[test]
    fn nmap_forms() {
        assert_eq!(range("198.18.1.1"), "198.18.1.1");
        assert_eq!(range("198.18.1.9/24"), "198.18.1.0/24");
        assert_eq!(range("198.18.1.1-198.18.1.50"), "198.18.1.1-198.18.1.50");
        assert_eq!(range("198.18.1.1-50"), "198.18.1.1-198.18.1.50");
        assert_eq!(range("2001:db8::/120"), "2001:db8::/120");
        assert_eq!(
            range("2001:db8::1-2001:db8::ff"),
            "2001:db8::1-2001:db8::ff"
        );
        assert_eq!(range("Scanme.Lab.Test"), "host scanme.lab.test");
    }

    #[test]
    fn bad_targets_say_why() {
        for bad in [
            "",
            "198.18.1.50-198.18.1.1",
            "198.18.1.1-300",
            "1.2.3.4/33",
            "1.2.3",
            "a_b",
            "198.18.1.1-::1",
        ] {
            assert!(TargetSpec::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(
            TargetSpec::parse("198.18.1.50-198.18.1.1")
                .unwrap_err()
                .message
                .contains("after")
        );
    }

    #[test]
    fn host_names_resolve_ipv4_first() {
        let t = TargetSpec::parse("dual.lab.test").unwrap();
        assert_eq!(
            t.resolve("dual.lab.test", &Fixed).unwrap()[0]
                .range
                .to_string(),
            "198.18.0.5"
        );
        let t = TargetSpec::parse("v6.lab.test").unwrap();
        assert_eq!(
            t.resolve("v6.lab.test", &Fixed).unwrap()[0]
                .range
                .to_string(),
            "2001:db8::6"
        );
        let t = TargetSpec::parse("nope.lab.test").unwrap();
        assert!(
            t.resolve("nope.lab.test", &Fixed)
                .unwrap_err()
                .message
                .contains("did not resolve")
        );
    }

    #[test]
    fn target_port_split() {
        assert_eq!(
            split_target_port("198.18.1.1:80").unwrap(),
            ("198.18.1.1", Some(80))
        );
        assert_eq!(
            split_target_port("[2001:db8::1]:53").unwrap(),
            ("2001:db8::1", Some(53))
        );
        assert_eq!(
            split_target_port("2001:db8::1").unwrap(),
            ("2001:db8::1", None)
        );
        assert_eq!(split_target_port("host").unwrap(), ("host", None));
        assert!(split_target_port("198.18.1.1:0").is_err());
        assert!(split_target_port("[::1").is_err());
    }

    #[test]
    fn target_list_with_comments() {
        let list = parse_target_list(
            "# lab\n198.18.1.1 198.18.1.2 # two\n\n2001:db8::/126\n",
            "t.txt",
        )
        .unwrap();
        assert_eq!(list.len(), 3);
        let e = parse_target_list("198.18.1.1\n1.2.3.4/40\n", "t.txt").unwrap_err();
        assert!(e.message.starts_with("t.txt:2:"), "{e}");
    }
}
