//! DNS over UDP and TCP: message decoding (question names through
//! simple-dns, which handles compression) and the report's DNS summary.

use std::collections::BTreeMap;

use foldhash::HashMap;
use serde::Serialize;

/// One decoded DNS message: what the summary and the tunneling detector need.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsMessage {
    pub id: u16,
    pub response: bool,
    pub rcode: u8,
    pub answers: u16,
    /// The first question's name, lower case, without the trailing dot.
    pub qname: String,
    pub qtype: u16,
    /// In a successful answer to a name that cannot exist
    /// ([`cannot_exist`]), the first address it gives (read only then:
    /// it is what a resolver rewriting NXDOMAIN answers with).
    pub rewritten_to: Option<std::net::IpAddr>,
}

/// Whether no resolver should answer `qname` (lower case) with an
/// address: a name under a special-use domain that never resolves
/// (RFC 6761 `.invalid`, `.test`, `.example`; RFC 7686 `.onion`), or a
/// single label of 7 to 15 letters that reads as random, the shape of the
/// names Chromium asks to find resolvers that answer every name.
pub fn cannot_exist(qname: &str) -> bool {
    let tld = qname.rsplit('.').next().unwrap_or("");
    if qname.contains('.') {
        return matches!(tld, "invalid" | "test" | "example" | "onion");
    }
    (7..=15).contains(&qname.len())
        && qname.bytes().all(|b| b.is_ascii_lowercase())
        && qname != "localhost"
        && looks_random(qname)
}

/// Whether a label of letters reads as random rather than as a word: few
/// vowels (a tenth of English letters are 'e' alone; a random string of
/// letters has one in five), or four consonants in a row. `fileserver`,
/// `intranet` and `printers` are words; `xkqjzvbwpt` and `qwhdkzmsalp`
/// are not.
fn looks_random(label: &str) -> bool {
    let vowel = |b: u8| matches!(b, b'a' | b'e' | b'i' | b'o' | b'u' | b'y');
    let vowels = label.bytes().filter(|&b| vowel(b)).count();
    let mut run = 0;
    let mut longest = 0;
    for b in label.bytes() {
        run = if vowel(b) { 0 } else { run + 1 };
        longest = longest.max(run);
    }
    vowels * 5 <= label.len() || longest >= 4
}

/// The first A or AAAA record's address in the answer section.
fn first_address(msg: &[u8]) -> Option<std::net::IpAddr> {
    // Past a name: labels to the root, or up to a compression pointer.
    fn skip_name(msg: &[u8], mut at: usize) -> Option<usize> {
        loop {
            let len = *msg.get(at)?;
            match len {
                0 => return Some(at + 1),
                l if l & 0xc0 == 0xc0 => return Some(at + 2),
                l => at += 1 + usize::from(l),
            }
        }
    }
    let be16 = |at: usize| {
        msg.get(at..at + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
    };
    let (questions, answers) = (be16(4)?, be16(6)?);
    let mut at = 12;
    for _ in 0..questions {
        at = skip_name(msg, at)? + 4;
    }
    for _ in 0..answers {
        at = skip_name(msg, at)?;
        let (ty, len) = (be16(at)?, usize::from(be16(at + 8)?));
        let data = msg.get(at + 10..at + 10 + len)?;
        match (ty, len) {
            (1, 4) => return Some(<[u8; 4]>::try_from(data).ok()?.into()),
            (28, 16) => return Some(<[u8; 16]>::try_from(data).ok()?.into()),
            _ => at += 10 + len,
        }
    }
    None
}

/// Decode a DNS message; over TCP the payload starts with a 2-byte length.
pub fn parse(payload: &[u8], over_tcp: bool) -> Option<DnsMessage> {
    let msg = if over_tcp {
        let len = usize::from(u16::from_be_bytes([*payload.first()?, *payload.get(1)?]));
        payload.get(2..2 + len).or_else(|| payload.get(2..))?
    } else {
        payload
    };
    if msg.len() < 12 {
        return None;
    }
    let id = u16::from_be_bytes([msg[0], msg[1]]);
    let response = msg[2] & 0x80 != 0;
    let rcode = msg[3] & 0x0f;
    let qdcount = u16::from_be_bytes([msg[4], msg[5]]);
    let answers = u16::from_be_bytes([msg[6], msg[7]]);
    if qdcount == 0 {
        return Some(DnsMessage {
            id,
            response,
            rcode,
            answers,
            qname: String::new(),
            qtype: 0,
            rewritten_to: None,
        });
    }
    let (qname, qtype) = plain_question(&msg[12..]).or_else(|| any_question(msg))?;
    let rewritten_to = (response && rcode == 0 && answers > 0 && cannot_exist(&qname))
        .then(|| first_address(msg))
        .flatten();
    Some(DnsMessage {
        id,
        response,
        rcode,
        answers,
        qname,
        qtype,
        rewritten_to,
    })
}

/// The first question when its name is plain: uncompressed labels of ASCII
/// bytes other than `.` and `\`, at most 255 characters. simple-dns would
/// give the same name (it escapes only those two and replaces only
/// non-UTF-8 bytes), but decodes every record of the message to do it, at
/// a dozen allocations a message; most names are plain, and the rest go
/// through simple-dns.
fn plain_question(b: &[u8]) -> Option<(String, u16)> {
    let mut at = 0;
    loop {
        let len = usize::from(*b.get(at)?);
        if len == 0 {
            break;
        }
        let label = b.get(at + 1..at + 1 + len)?;
        if len > 63 || label.iter().any(|&c| c >= 0x80 || c == b'.' || c == b'\\') {
            return None;
        }
        at += 1 + len;
    }
    // Labels plus dots between them.
    if at.saturating_sub(1) > 255 {
        return None;
    }
    let qtype = u16::from_be_bytes([*b.get(at + 1)?, *b.get(at + 2)?]);
    // Built as bytes: pushing chars would re-encode each as UTF-8.
    let mut name = Vec::with_capacity(at);
    let mut i = 0;
    while i < at {
        let len = usize::from(b[i]);
        if i > 0 {
            name.push(b'.');
        }
        name.extend_from_slice(&b[i + 1..i + 1 + len]);
        i += 1 + len;
    }
    // Kept as sent (tunnels carry case-sensitive base64); compared
    // case-blind where names are counted.
    // Every byte was checked to be ASCII above.
    let name = String::from_utf8(name).ok()?;
    Some((name, qtype))
}

/// The first question, through simple-dns (compression, escapes).
fn any_question(msg: &[u8]) -> Option<(String, u16)> {
    // simple-dns rejects a whole message over one odd record; the question
    // alone is what matters here, so a TCP message cut at the segment end
    // or a response with unusual records still yields its question.
    let packet = simple_dns::Packet::parse(msg).ok();
    match packet.as_ref().and_then(|p| p.questions.first()) {
        Some(q) => Some((
            q.qname.to_string().trim_end_matches('.').to_string(),
            u16::from(q.qtype),
        )),
        None => parse_question(msg.get(12..)?),
    }
}

/// The first question of a message whose records simple-dns refused:
/// labels without compression (a question's name is never compressed
/// against earlier data, there being none).
fn parse_question(b: &[u8]) -> Option<(String, u16)> {
    let mut name = String::new();
    let mut at = 0;
    loop {
        let len = usize::from(*b.get(at)?);
        if len == 0 {
            at += 1;
            break;
        }
        if len > 63 {
            return None;
        }
        let label = b.get(at + 1..at + 1 + len)?;
        if !name.is_empty() {
            name.push('.');
        }
        name.extend(label.iter().map(|&c| c as char));
        at += 1 + len;
        if name.len() > 255 {
            return None;
        }
    }
    let qtype = u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]);
    Some((name, qtype))
}

/// A query type's mnemonic.
pub fn qtype_name(t: u16) -> String {
    let s = match t {
        1 => "A",
        2 => "NS",
        5 => "CNAME",
        6 => "SOA",
        10 => "NULL",
        12 => "PTR",
        13 => "HINFO",
        15 => "MX",
        16 => "TXT",
        28 => "AAAA",
        33 => "SRV",
        35 => "NAPTR",
        41 => "OPT",
        43 => "DS",
        48 => "DNSKEY",
        64 => "SVCB",
        65 => "HTTPS",
        252 => "AXFR",
        251 => "IXFR",
        255 => "ANY",
        _ => return format!("TYPE{t}"),
    };
    s.to_string()
}

pub fn rcode_name(r: u8) -> String {
    let s = match r {
        0 => "NOERROR",
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        _ => return format!("RCODE{r}"),
    };
    s.to_string()
}

/// Distinct names kept for the top list; later new names are only counted.
const MAX_NAMES: usize = 20_000;

#[derive(Debug, Default)]
pub struct DnsStats {
    pub queries: u64,
    pub responses: u64,
    answer_records: u64,
    /// Lower-case name -> (the first spelling seen, when it differs; queries).
    names: HashMap<String, (Option<String>, u64)>,
    names_dropped: u64,
    qtypes: BTreeMap<u16, u64>,
    rcodes: BTreeMap<u8, u64>,
}

impl DnsStats {
    pub fn add(&mut self, m: &DnsMessage) {
        if m.response {
            self.responses += 1;
            self.answer_records += u64::from(m.answers);
            *self.rcodes.entry(m.rcode).or_default() += 1;
            return;
        }
        self.queries += 1;
        *self.qtypes.entry(m.qtype).or_default() += 1;
        // Counted case-blind (DNS names are; resolvers randomize case),
        // listed as first sent. Lower-case names, nearly all, need no copy.
        let lower;
        let key = if m.qname.bytes().any(|b| b.is_ascii_uppercase()) {
            lower = m.qname.to_ascii_lowercase();
            lower.as_str()
        } else {
            m.qname.as_str()
        };
        if let Some((_, n)) = self.names.get_mut(key) {
            *n += 1;
        } else if self.names.len() < MAX_NAMES {
            let spelling = (key != m.qname).then(|| m.qname.clone());
            self.names.insert(key.to_string(), (spelling, 1));
        } else {
            self.names_dropped += 1;
        }
    }

    pub fn report(&self, top: usize) -> DnsReport {
        let mut names: Vec<(&String, u64)> = self
            .names
            .iter()
            .map(|(k, (spelling, n))| (spelling.as_ref().unwrap_or(k), *n))
            .collect();
        names.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        DnsReport {
            queries: self.queries,
            responses: self.responses,
            answer_records: self.answer_records,
            top_queried: names
                .into_iter()
                .take(top)
                .map(|(n, c)| NameCount {
                    name: n.clone(),
                    queries: c,
                })
                .collect(),
            query_types: self
                .qtypes
                .iter()
                .map(|(t, c)| (qtype_name(*t), *c))
                .collect(),
            rcodes: self
                .rcodes
                .iter()
                .map(|(r, c)| (rcode_name(*r), *c))
                .collect(),
            names_not_tracked: self.names_dropped,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct DnsReport {
    pub queries: u64,
    pub responses: u64,
    /// Answer records in all responses.
    pub answer_records: u64,
    pub top_queried: Vec<NameCount>,
    pub query_types: BTreeMap<String, u64>,
    pub rcodes: BTreeMap<String, u64>,
    /// Queries for names beyond the first 20,000 distinct ones (counted, not listed).
    pub names_not_tracked: u64,
}

#[derive(Debug, Serialize)]
pub struct NameCount {
    pub name: String,
    pub queries: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A query with one question of these labels.
    fn query(labels: &[Vec<u8>], qtype: u16) -> Vec<u8> {
        let mut q = vec![0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for l in labels {
            q.push(l.len() as u8);
            q.extend_from_slice(l);
        }
        q.push(0);
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&[0, 1]);
        q
    }

    fn label_byte() -> impl Strategy<Value = u8> {
        prop_oneof![
            8 => prop::sample::select(b"abcxyzABCXYZ019-_".to_vec()),
            1 => prop::sample::select(b". \\\x00\x7f\x80\xc3\xa9\xff".to_vec()),
        ]
    }

    proptest! {
        /// The fast path gives exactly what simple-dns gives, whenever it answers.
        #[test]
        fn a_plain_name_reads_as_simple_dns_reads_it(
            labels in prop::collection::vec(prop::collection::vec(label_byte(), 1..20), 0..6),
            qtype in any::<u16>(),
        ) {
            let msg = query(&labels, qtype);
            if let Some(fast) = plain_question(&msg[12..]) {
                prop_assert_eq!(Some(fast), any_question(&msg));
            }
        }
    }

    #[test]
    fn ordinary_names_take_the_fast_path_and_odd_ones_do_not() {
        let msg = query(
            &[b"Mail".to_vec(), b"example-1".to_vec(), b"ORG".to_vec()],
            15,
        );
        // Issue 18: kept as sent (case matters in tunnels' base64).
        assert_eq!(
            plain_question(&msg[12..]),
            Some(("Mail.example-1.ORG".into(), 15))
        );
        for odd in [&b"a.b"[..], b"a\\b", b"caf\xc3\xa9"] {
            let msg = query(&[odd.to_vec(), b"test".to_vec()], 1);
            assert_eq!(plain_question(&msg[12..]), None, "{odd:?}");
            assert!(parse(&msg, false).is_some_and(|m| m.qname.ends_with(".test")));
        }
        // A compressed name (pointer back into the header) is left to simple-dns.
        let mut msg = query(&[], 1);
        msg.splice(12..13, [0xc0, 0x0c]);
        assert_eq!(plain_question(&msg[12..]), None);
    }

    #[test]
    fn names_that_cannot_exist() {
        for name in [
            "xkqjzvbwpt",
            "qwhdkzmsalp",
            "pzmvkqhrt",
            "a.invalid",
            "x.y.onion",
            "host.test",
        ] {
            assert!(super::cannot_exist(name), "{name}");
        }
        for name in [
            "fileserver",
            "intranet",
            "printers",
            "localhost",
            "wpad",
            "example.com",
            "x.local",
        ] {
            assert!(!super::cannot_exist(name), "{name}");
        }
    }

    #[test]
    fn query_and_response_header() {
        // id 0x1234, RD, one question www.lab.test A IN
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        q.extend_from_slice(b"\x03www\x03LAB\x04test\x00\x00\x01\x00\x01");
        let m = parse(&q, false).unwrap();
        assert_eq!(
            (m.id, m.response, m.qname.as_str(), m.qtype),
            (0x1234, false, "www.LAB.test", 1)
        );
        let mut tcp = vec![0, q.len() as u8];
        tcp.extend_from_slice(&q);
        assert_eq!(parse(&tcp, true).unwrap(), m);
        assert!(parse(&q[..11], false).is_none());
        // a response whose answer section is cut still yields its question
        let mut r = q.clone();
        r[2] = 0x81;
        r[3] = 0x83;
        r[7] = 1;
        r.extend_from_slice(&[0xc0, 0x0c, 0, 1]);
        let m = parse(&r, false).unwrap();
        assert_eq!(
            (m.response, m.rcode, m.qname.as_str()),
            (true, 3, "www.LAB.test")
        );
    }

    /// Issue 18: names were lower-cased, which destroys the case-sensitive
    /// base64 tunnels carry; they are counted case-blind and listed as
    /// first sent.
    #[test]
    fn names_are_counted_case_blind_and_listed_as_first_sent() {
        let mut stats = DnsStats::default();
        for labels in [
            [b"WwW".to_vec(), b"Example".to_vec(), b"test".to_vec()],
            [b"www".to_vec(), b"example".to_vec(), b"test".to_vec()],
            [b"WWW".to_vec(), b"EXAMPLE".to_vec(), b"TEST".to_vec()],
        ] {
            stats.add(&parse(&query(&labels, 1), false).unwrap());
        }
        let r = stats.report(10);
        assert_eq!(r.top_queried.len(), 1);
        assert_eq!(r.top_queried[0].name, "WwW.Example.test");
        assert_eq!(r.top_queried[0].queries, 3);
    }
}
