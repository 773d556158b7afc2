//! Every kind of bad scope file gets an error at the right line and column,
//! with a message saying what is wrong and a hint.

use sonde::scope::Scope;

const GOOD: &str = r#"probes = ["syn", "icmp"]

[engagement]
id = "E-1"
client = "c"
authorized_by = "a"
contact = "x@example.test"
not_before = 2026-01-01T00:00:00Z
not_after = 2026-12-31T00:00:00Z

[limits]
max_rate = 1000

[[allow]]
targets = ["198.18.0.0/24"]
ports = "22,80"
"#;

/// (what, replace this, with this, line, column, message fragment)
const CASES: &[(&str, &str, &str, usize, usize, &str)] = &[
    (
        "invalid TOML",
        "max_rate = 1000",
        "max_rate = = 1000",
        12,
        12,
        "",
    ),
    ("unquoted string", "client = \"c\"", "client = c", 5, 10, ""),
    (
        "unknown key",
        "contact =",
        "contakt =",
        7,
        1,
        "unknown field `contakt`",
    ),
    (
        "unknown key in a rule",
        "ports = \"22,80\"",
        "port = \"22\"",
        16,
        1,
        "unknown field `port`",
    ),
    (
        "top-level key after a table",
        "ports = \"22,80\"",
        "ports = \"22\"\n[limits2]\nx = 1",
        17,
        2,
        "unknown field `limits2`",
    ),
    (
        "bad CIDR",
        "198.18.0.0/24",
        "198.18.0.0/33",
        15,
        12,
        "prefix length 33",
    ),
    (
        "bad address",
        "198.18.0.0/24",
        "198.18.0.300",
        15,
        12,
        "bad target \"198.18.0.300\"",
    ),
    (
        "inverted address range",
        "198.18.0.0/24",
        "198.18.0.9-198.18.0.1",
        15,
        12,
        "after",
    ),
    (
        "host name",
        "198.18.0.0/24",
        "www.example.test",
        15,
        12,
        "host name",
    ),
    (
        "inverted port range",
        "\"22,80\"",
        "\"22,90-80\"",
        16,
        9,
        "inverted",
    ),
    // List items are placed at the item itself.
    ("port 0", "\"22,80\"", "[0]", 16, 10, "port 0"),
    (
        "port above 65535",
        "\"22,80\"",
        "[22, 70000]",
        16,
        14,
        "outside 1-65535",
    ),
    // Regression (issue 14, finding 3): [-1024] was read as "1-1024".
    (
        "negative port",
        "\"22,80\"",
        "[22, -1024]",
        16,
        14,
        "port -1024 is outside 1-65535",
    ),
    (
        "open range in a scope",
        "\"22,80\"",
        "[\"-1024\"]",
        16,
        10,
        "not a port or a closed range",
    ),
    (
        "spoofed source outside the allow rules",
        "probes = [\"syn\", \"icmp\"]",
        "probes = [\"syn\", \"icmp\"]\nspoof_sources = [\"203.0.113.0/24\"]",
        2,
        18,
        "not inside the scope's allow rules",
    ),
    (
        "a rate too large for TOML",
        "max_rate = 1000",
        "max_rate = 99999999999999999999",
        12,
        12,
        "too large",
    ),
    ("empty port list", "\"22,80\"", "[]", 16, 9, "empty"),
    (
        "window inverted",
        "not_after = 2026-12-31T00:00:00Z",
        "not_after = 2025-12-31T00:00:00Z",
        9,
        13,
        "not after not_before",
    ),
    (
        "window without offset",
        "not_before = 2026-01-01T00:00:00Z",
        "not_before = 2026-01-01T00:00:00",
        8,
        14,
        "needs a date, a time and an offset",
    ),
    (
        "empty allow list",
        "[[allow]]\ntargets = [\"198.18.0.0/24\"]\nports = \"22,80\"\n",
        "",
        1,
        1,
        "allows nothing",
    ),
    (
        "empty targets",
        "targets = [\"198.18.0.0/24\"]",
        "targets = []",
        15,
        11,
        "empty targets",
    ),
    (
        "zero rate",
        "max_rate = 1000",
        "max_rate = 0",
        12,
        12,
        "positive number",
    ),
    (
        "negative rate",
        "max_rate = 1000",
        "max_rate = -5.5",
        12,
        12,
        "positive number",
    ),
    (
        "rate as text",
        "max_rate = 1000",
        "max_rate = \"fast\"",
        12,
        12,
        "positive number",
    ),
    (
        "unknown probe kind",
        "probes = [\"syn\", \"icmp\"]",
        "probes = [\"syn\", \"udp\"]",
        1,
        18,
        "unknown probe kind",
    ),
    (
        "rule widens probe kinds",
        "ports = \"22,80\"",
        "ports = \"22,80\"\nprobes = [\"dns\"]",
        17,
        10,
        "top-level probes list does not allow",
    ),
    (
        "missing engagement key",
        "authorized_by = \"a\"\n",
        "",
        3,
        1,
        "missing field `authorized_by`",
    ),
    (
        "top-level key inside a table",
        "max_rate = 1000",
        "max_rate = 1000\nprobes = [\"syn\"]",
        13,
        1,
        "unknown field `probes`",
    ),
    (
        "max_probes zero",
        "max_rate = 1000",
        "max_rate = 1000\nmax_probes = 0",
        13,
        14,
        "max_probes",
    ),
];

#[test]
fn the_good_file_parses() {
    let s = Scope::from_toml(GOOD, "good.toml").unwrap();
    assert_eq!(s.allow.len(), 1);
    assert_eq!(s.max_rate, 1000.0);
}

#[test]
fn every_bad_file_is_placed_and_explained() {
    for &(what, from, to, line, column, fragment) in CASES {
        assert!(
            GOOD.contains(from),
            "{what}: the case's text is not in the good file"
        );
        let text = GOOD.replacen(from, to, 1);
        let err = Scope::from_toml(&text, "bad.toml").expect_err(what);
        assert_eq!(
            (err.line, err.column),
            (line, column),
            "{what}: wrong place\n{err}"
        );
        assert!(
            err.message.contains(fragment),
            "{what}: message lacks {fragment:?}\n{err}"
        );
        assert!(!err.hint.is_empty(), "{what}: no hint");
        let shown = err.to_string();
        assert!(
            shown.starts_with(&format!("bad.toml:{line}:{column}: ")),
            "{what}: {shown}"
        );
        assert!(shown.contains("hint: "), "{what}: {shown}");
    }
}

#[test]
fn a_top_level_key_under_a_table_gets_the_table_hint() {
    let text = GOOD.replacen("max_rate = 1000", "max_rate = 1000\nprobes = [\"syn\"]", 1);
    let err = Scope::from_toml(&text, "t").unwrap_err();
    assert!(err.hint.contains("move top-level keys"), "{err}");
    let text = GOOD.replacen("contact =", "contakt =", 1);
    assert!(
        !Scope::from_toml(&text, "t")
            .unwrap_err()
            .hint
            .contains("move top-level")
    );
}
