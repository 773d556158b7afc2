//! Probe packets, from the IP header on (the sender adds the link layer),
//! built with etherparse into a reusable buffer: lengths and checksums are
//! computed, IPv4 and IPv6 alike.

use std::net::IpAddr;

use etherparse::{PacketBuilder, TcpOptionElement};

use super::cookie::Marks;
use crate::scope::ProbeKind;

/// A DNS question a DNS probe asks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsQuestion {
    pub name: String,
    pub qtype: u16,
}

/// Query types by name, as dig and nslookup spell them.
const QTYPES: [(&str, u16); 9] = [
    ("A", 1),
    ("NS", 2),
    ("CNAME", 5),
    ("SOA", 6),
    ("PTR", 12),
    ("MX", 15),
    ("TXT", 16),
    ("AAAA", 28),
    ("ANY", 255),
];

/// A query type's name, or its number when it has none here.
pub fn qtype_name(qtype: u16) -> String {
    QTYPES
        .iter()
        .find(|(_, n)| *n == qtype)
        .map_or_else(|| qtype.to_string(), |(name, _)| (*name).to_string())
}

impl DnsQuestion {
    /// `NAME[:TYPE]`, the type by name (A, AAAA, MX, ...) or number; A by default.
    pub fn parse(s: &str) -> Result<DnsQuestion, String> {
        let (name, qtype) = s.rsplit_once(':').unwrap_or((s, "A"));
        let upper = qtype.to_ascii_uppercase();
        let qtype = match QTYPES.iter().find(|(n, _)| *n == upper) {
            Some((_, v)) => *v,
            None => upper.parse().map_err(|_| {
                format!(
                    "unknown DNS query type {qtype:?} in {s:?}; types: A, AAAA, NS, MX, TXT, SOA, PTR, CNAME, ANY or a number"
                )
            })?,
        };
        if name.is_empty() {
            return Err(format!("{s:?} has no name to ask about"));
        }
        // What DNS allows (RFC 1035 2.3.4), checked before any run starts.
        let trimmed = name.strip_suffix('.').unwrap_or(name);
        if let Some(label) = trimmed.split('.').find(|l| l.is_empty() || l.len() > 63) {
            return Err(if label.is_empty() {
                format!("{name:?} has an empty label (two dots in a row, or a leading dot)")
            } else {
                format!(
                    "label {:?} of {name:?} is {} bytes long; DNS labels hold at most 63",
                    crate::text::visible(label),
                    label.len()
                )
            });
        }
        if trimmed.len() > 253 {
            return Err(format!(
                "{name:?} is {} bytes long; DNS names hold at most 253",
                trimmed.len()
            ));
        }
        Ok(DnsQuestion {
            name: name.to_string(),
            qtype,
        })
    }
}

/// Header values that are the same for every probe of a run.
#[derive(Clone, Copy, Debug)]
pub struct ProbeTemplate {
    pub ttl: u8,
    /// The MSS option of SYN probes (nmap and the kernel send one too).
    pub mss: u16,
    pub window: u16,
}

impl Default for ProbeTemplate {
    fn default() -> ProbeTemplate {
        ProbeTemplate {
            ttl: 64,
            mss: 1460,
            window: 1024,
        }
    }
}

/// What cannot be built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BuildError {
    MixedFamilies,
    PortRequired,
    DnsQuestionRequired,
    BadDnsName(String),
    /// Service identification is a kernel connection, not a crafted packet.
    NotCrafted,
}

impl std::fmt::Display for BuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BuildError::MixedFamilies => write!(
                f,
                "source and destination are of different address families"
            ),
            BuildError::PortRequired => write!(f, "this probe kind needs a destination port"),
            BuildError::DnsQuestionRequired => write!(f, "a DNS probe needs a question"),
            BuildError::NotCrafted => write!(
                f,
                "service identification connects through the kernel; it has no crafted probe"
            ),
            BuildError::BadDnsName(n) => write!(f, "{n:?} is not a DNS name"),
        }
    }
}

impl std::error::Error for BuildError {}

/// The payload of ICMP echo probes: says who sent it, for whoever captures it.
pub const ECHO_PAYLOAD: &[u8] = b"sonde authorized probe";

fn builder(
    src: IpAddr,
    dst: IpAddr,
    ttl: u8,
) -> Result<etherparse::PacketBuilderStep<etherparse::IpHeaders>, BuildError> {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => Ok(PacketBuilder::ipv4(s.octets(), d.octets(), ttl)),
        (IpAddr::V6(s), IpAddr::V6(d)) => Ok(PacketBuilder::ipv6(s.octets(), d.octets(), ttl)),
        _ => Err(BuildError::MixedFamilies),
    }
}

/// One probe: what to send, from where, to where.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Probe {
    pub kind: ProbeKind,
    pub src: IpAddr,
    pub dst: IpAddr,
    /// The destination port (SYN and DNS probes).
    pub port: Option<u16>,
}

/// Build `probe` into `buf` (cleared first), carrying `marks`.
pub fn build(
    buf: &mut Vec<u8>,
    probe: &Probe,
    marks: &Marks,
    template: &ProbeTemplate,
    question: Option<&DnsQuestion>,
) -> Result<(), BuildError> {
    let Probe {
        kind,
        src,
        dst,
        port,
    } = *probe;
    buf.clear();
    let b = builder(src, dst, template.ttl)?;
    let io = |e: etherparse::err::packet::BuildWriteError| {
        unreachable!("writing to a Vec cannot fail: {e}")
    };
    match kind {
        ProbeKind::Service => Err(BuildError::NotCrafted),
        ProbeKind::Syn => {
            let port = port.ok_or(BuildError::PortRequired)?;
            b.tcp(marks.source_port, port, marks.tcp_isn, template.window)
                .syn()
                .options(&[TcpOptionElement::MaximumSegmentSize(template.mss)])
                .expect("one MSS option fits")
                .write(buf, &[])
                .map_err(io)
        }
        ProbeKind::Icmp => match src {
            IpAddr::V4(_) => b
                .icmpv4_echo_request(marks.icmp_id, marks.icmp_seq)
                .write(buf, ECHO_PAYLOAD)
                .map_err(io),
            IpAddr::V6(_) => b
                .icmpv6_echo_request(marks.icmp_id, marks.icmp_seq)
                .write(buf, ECHO_PAYLOAD)
                .map_err(io),
        },
        ProbeKind::Dns => {
            let port = port.ok_or(BuildError::PortRequired)?;
            let q = question.ok_or(BuildError::DnsQuestionRequired)?;
            let payload = dns_query(marks.dns_id, q)?;
            b.udp(marks.source_port, port)
                .write(buf, &payload)
                .map_err(io)
        }
    }
}

/// A recursive DNS query (RD set) for one question, class IN.
pub fn dns_query(id: u16, q: &DnsQuestion) -> Result<Vec<u8>, BuildError> {
    use simple_dns::{CLASS, Name, Packet, QTYPE, Question, TYPE};
    let name = Name::new(&q.name).map_err(|_| BuildError::BadDnsName(q.name.clone()))?;
    let qtype = TYPE::from(q.qtype);
    let mut p = Packet::new_query(id);
    p.set_flags(simple_dns::PacketFlag::RECURSION_DESIRED);
    p.questions.push(Question::new(
        name,
        QTYPE::TYPE(qtype),
        CLASS::IN.into(),
        false,
    ));
    p.build_bytes_vec()
        .map_err(|_| BuildError::BadDnsName(q.name.clone()))
}

/// `NAME:TYPE`, as `--dns-query` takes it.
impl std::fmt::Display for DnsQuestion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.name, qtype_name(self.qtype))
    }
}

impl serde::Serialize for DnsQuestion {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for DnsQuestion {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<DnsQuestion, D::Error> {
        let text = <String as serde::Deserialize>::deserialize(d)?;
        DnsQuestion::parse(&text).map_err(serde::de::Error::custom)
    }
}
