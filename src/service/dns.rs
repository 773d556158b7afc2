//! Asking a DNS server what it is: `version.bind`, class CHAOS, type TXT
//! (BIND, dnsmasq, Unbound and others answer it unless told not to), built
//! and read with simple-dns.

use simple_dns::rdata::RData;
use simple_dns::{CLASS, Name, Packet, QCLASS, QTYPE, Question, TYPE};

/// The query, with `id`.
pub fn version_bind_query(id: u16) -> Vec<u8> {
    let mut p = Packet::new_query(id);
    p.questions.push(Question::new(
        Name::new_unchecked("version.bind"),
        QTYPE::TYPE(TYPE::TXT),
        QCLASS::CLASS(CLASS::CH),
        false,
    ));
    p.build_bytes_vec().expect("a fixed, valid query")
}

/// The version text of an answer to the query with `id` (its TXT
/// strings joined), or why there is none: `Err(rcode)` when the server
/// refused or has no such name, `Ok(None)` when `bytes` is not an answer
/// to that query.
pub fn version_bind_answer(bytes: &[u8], id: u16) -> Result<Option<String>, String> {
    let Ok(p) = Packet::parse(bytes) else {
        return Ok(None);
    };
    if p.id() != id || !p.has_flags(simple_dns::PacketFlag::RESPONSE) {
        return Ok(None);
    }
    let rcode = p.rcode();
    if rcode != simple_dns::RCODE::NoError {
        return Err(format!("version.bind: {rcode:?}"));
    }
    let text = p.answers.iter().find_map(|a| match &a.rdata {
        RData::TXT(t) => String::try_from(t.clone()).ok(),
        _ => None,
    });
    match text {
        Some(t) => Ok(Some(crate::text::visible(&t).into_owned())),
        None => Err("version.bind: no TXT answer".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_asks_chaos_txt_and_an_answer_is_read() {
        let q = version_bind_query(0x1234);
        let p = Packet::parse(&q).unwrap();
        assert_eq!(p.id(), 0x1234);
        assert_eq!(p.questions[0].qname.to_string(), "version.bind");
        assert_eq!(p.questions[0].qclass, QCLASS::CLASS(CLASS::CH));
        // dnsmasq's answer, as a server builds it.
        let mut a = Packet::new_reply(0x1234);
        a.questions.push(p.questions[0].clone());
        a.answers.push(simple_dns::ResourceRecord::new(
            Name::new_unchecked("version.bind"),
            CLASS::CH,
            0,
            RData::TXT(
                simple_dns::rdata::TXT::new()
                    .with_string("dnsmasq-2.90")
                    .unwrap(),
            ),
        ));
        let bytes = a.build_bytes_vec().unwrap();
        assert_eq!(
            version_bind_answer(&bytes, 0x1234),
            Ok(Some("dnsmasq-2.90".into()))
        );
        assert_eq!(version_bind_answer(&bytes, 0x4321), Ok(None), "another id");
        assert_eq!(version_bind_answer(b"junk", 0x1234), Ok(None));
        let mut refused = Packet::new_reply(0x1234);
        *refused.rcode_mut() = simple_dns::RCODE::Refused;
        let bytes = refused.build_bytes_vec().unwrap();
        assert!(
            version_bind_answer(&bytes, 0x1234)
                .unwrap_err()
                .contains("Refused")
        );
    }
}
