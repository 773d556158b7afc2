//! HTTP counted per message (issue 18, item 2, in part): a retransmitted or
//! duplicated segment that starts a request is the same request, and a
//! request line as attack tools write it (a space in the URI) is counted,
//! its URI kept as sent.

mod support;

use support::capture::*;

const MS: i64 = 1_000_000;

fn http_json(c: &Capture) -> serde_json::Value {
    serde_json::to_value(c.analyze()).unwrap()["http"].clone()
}

/// Regression: a Nikto capture of 195 requests reported 386 (every client
/// segment appeared twice, same IP ID and sequence number).
#[test]
fn a_duplicated_request_segment_is_one_request() {
    let mut c = Capture::default();
    for i in 0..5u16 {
        let req = format!("GET /page{i} HTTP/1.1\r\nHost: lab.test\r\n\r\n");
        let seg = tcp(
            "198.18.0.2",
            "198.18.1.10",
            40000 + i,
            80,
            ACK | PSH,
            req.as_bytes(),
        );
        c.push(i64::from(i) * 10 * MS, seg.clone());
        // The same segment again, 200 ms later (a retransmission).
        c.push(i64::from(i) * 10 * MS + 200 * MS, seg);
    }
    let http = http_json(&c);
    assert_eq!(http["requests"], 5, "{http}");
}

/// Regression: `GET /site/' UNION ALL SELECT ... HTTP/1.1` was dropped.
#[test]
fn a_request_line_with_spaces_in_the_uri_is_counted_as_sent() {
    let mut c = Capture::default();
    let req = b"GET /site/' UNION ALL SELECT 1,2-- HTTP/1.1\r\nHost: Victim.test\r\nUser-Agent: sqlmap/1.7\r\n\r\n";
    c.push(
        0,
        tcp("198.18.0.66", "198.18.1.10", 40000, 80, ACK | PSH, req),
    );
    // Not HTTP: a word, spaces, no version.
    c.push(
        MS,
        tcp(
            "198.18.0.66",
            "198.18.1.10",
            40001,
            80,
            ACK | PSH,
            b"GET me a coffee\r\n",
        ),
    );
    let http = http_json(&c);
    assert_eq!(http["requests"], 1, "{http}");
    assert_eq!(
        http["uris"][0]["value"], "/site/' UNION ALL SELECT 1,2--",
        "{http}"
    );
    assert_eq!(http["user_agents"][0]["value"], "sqlmap/1.7", "{http}");
}
