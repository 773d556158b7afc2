//! Target specifications in nmap's syntax.
//!
//! `198.18.1.1`, `198.18.0.0/24`, `198.18.1.1-198.18.1.50`, the short form
//! `198.18.1.1-50`, IPv6 addresses, blocks and ranges, and host names. Host
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
}

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
ranges (198.18.1.1-198.18.1.50 or 198.18.1.1-50) or host names";

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
        if is_host_name(s) {
            return Ok(TargetSpec::Host(s.to_ascii_lowercase()));
        }
        Err(err("not an address, block, range or host name".into()))
    }

    /// Resolve to an address range. A host name becomes its first IPv4
    /// address, or its first IPv6 address when it has no IPv4 one (nmap's
    /// choice without --resolve-all).
    pub fn resolve(
        &self,
        spec: &str,
        resolver: &dyn Resolver,
    ) -> Result<ResolvedTarget, TargetError> {
        match self {
            TargetSpec::Range(r) => Ok(ResolvedTarget {
                spec: spec.to_string(),
                host: None,
                range: *r,
            }),
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
                Ok(ResolvedTarget {
                    spec: spec.to_string(),
                    host: Some(h.clone()),
                    range: AddrRange::single(*chosen),
                })
            }
        }
    }
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
        }
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
            t.resolve("dual.lab.test", &Fixed)
                .unwrap()
                .range
                .to_string(),
            "198.18.0.5"
        );
        let t = TargetSpec::parse("v6.lab.test").unwrap();
        assert_eq!(
            t.resolve("v6.lab.test", &Fixed).unwrap().range.to_string(),
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
