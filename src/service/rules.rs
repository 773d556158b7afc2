//! The rules that name a service from what it said: readable data
//! (`rules.toml`, shipped in the binary), compiled once, matched in order.

use regex::bytes::{Captures, Regex};
use serde::Deserialize;

/// What a rule reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Field {
    /// What the service sent before sonde said anything.
    Greeting,
    /// An HTTP response's `Server` header.
    HttpServer,
    /// The answer to sonde's request for the port (Redis, PostgreSQL).
    Response,
    /// A DNS server's answer to `version.bind` (class CHAOS, TXT).
    DnsVersion,
}

/// A rule as the file writes it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleText {
    on: Field,
    #[serde(rename = "match")]
    pattern: String,
    service: String,
    #[serde(default)]
    product: Option<String>,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    extrainfo: Vec<String>,
    #[serde(default)]
    hostname: Option<String>,
    #[serde(default)]
    cpe: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesText {
    rule: Vec<RuleText>,
}

/// One compiled rule.
#[derive(Debug)]
struct Rule {
    on: Field,
    pattern: Regex,
    service: String,
    product: Option<String>,
    version: Option<String>,
    extrainfo: Vec<String>,
    hostname: Option<String>,
    cpe: Option<String>,
}

/// What a rule names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Named {
    pub service: String,
    pub product: Option<String>,
    pub version: Option<String>,
    pub extrainfo: Option<String>,
    pub hostname: Option<String>,
    pub cpe: Option<String>,
}

/// The rules, in order.
#[derive(Debug)]
pub struct Rules {
    rules: Vec<Rule>,
}

/// A rules file that cannot be used: where and why.
#[derive(Debug)]
pub struct RulesError {
    /// The rule's number (1 for the first), when one rule is at fault.
    pub rule: Option<usize>,
    pub message: String,
}

impl std::fmt::Display for RulesError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.rule {
            Some(n) => write!(f, "rule {n}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for RulesError {}

/// The rules sonde ships.
pub const BUILTIN: &str = include_str!("rules.toml");

impl Rules {
    /// The shipped rules.
    pub fn builtin() -> &'static Rules {
        static RULES: std::sync::OnceLock<Rules> = std::sync::OnceLock::new();
        RULES.get_or_init(|| Rules::parse(BUILTIN).expect("the shipped rules compile"))
    }

    /// Rules from a file's text.
    pub fn parse(text: &str) -> Result<Rules, RulesError> {
        let parsed: RulesText = toml::from_str(text).map_err(|e| RulesError {
            rule: None,
            message: e.to_string(),
        })?;
        let mut rules = Vec::with_capacity(parsed.rule.len());
        for (i, r) in parsed.rule.into_iter().enumerate() {
            let pattern = regex::bytes::RegexBuilder::new(&r.pattern)
                // Rules are small; a pathological one stays bounded.
                .size_limit(1 << 20)
                .build()
                .map_err(|e| RulesError {
                    rule: Some(i + 1),
                    message: format!("match {:?}: {e}", r.pattern),
                })?;
            for t in [&r.product, &r.version, &r.hostname, &r.cpe]
                .into_iter()
                .flatten()
                .chain(&r.extrainfo)
            {
                if let Some(g) = highest_group(t)
                    && g >= pattern.captures_len()
                {
                    return Err(RulesError {
                        rule: Some(i + 1),
                        message: format!(
                            "{t:?} names group ${g}; the match has {} groups",
                            pattern.captures_len() - 1
                        ),
                    });
                }
            }
            rules.push(Rule {
                on: r.on,
                pattern,
                service: r.service,
                product: r.product,
                version: r.version,
                extrainfo: r.extrainfo,
                hostname: r.hostname,
                cpe: r.cpe,
            });
        }
        Ok(Rules { rules })
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The first rule on `on` that matches `bytes`, and what it names.
    pub fn identify(&self, on: Field, bytes: &[u8]) -> Option<Named> {
        self.rules
            .iter()
            .filter(|r| r.on == on)
            .find_map(|r| r.pattern.captures(bytes).map(|c| r.named(&c)))
    }
}

impl Rule {
    fn named(&self, c: &Captures) -> Named {
        let fill =
            |t: &Option<String>| t.as_deref().map(|t| expand(t, c)).filter(|s| !s.is_empty());
        let extrainfo: Vec<String> = self
            .extrainfo
            .iter()
            .map(|t| expand(t, c))
            .filter(|s| !s.is_empty())
            .collect();
        Named {
            service: self.service.clone(),
            product: fill(&self.product),
            version: fill(&self.version),
            extrainfo: (!extrainfo.is_empty()).then(|| extrainfo.join("; ")),
            hostname: fill(&self.hostname),
            // A CPE template whose version group was absent names the product.
            cpe: self
                .cpe
                .as_deref()
                .map(|t| expand_all(t, c).trim_end_matches(':').to_string()),
        }
    }
}

/// `$N` in `template` replaced by group N (as text, control characters
/// escaped; an absent group is empty).
fn expand_all(template: &str, c: &Captures) -> String {
    expand_counting(template, c).0
}

/// As [`expand_all`], but a template whose groups were all absent is
/// empty as a whole (`protocol $1` when there is no group 1).
fn expand(template: &str, c: &Captures) -> String {
    match expand_counting(template, c) {
        (_, true, false) => String::new(),
        (s, _, _) => s.trim().to_string(),
    }
}

/// (expanded, named a group, filled a group).
fn expand_counting(template: &str, c: &Captures) -> (String, bool, bool) {
    let mut out = String::new();
    let (mut named, mut filled) = (false, false);
    let mut chars = template.chars().peekable();
    while let Some(ch) = chars.next() {
        if ch == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            let mut n = 0usize;
            while let Some(v) = chars.peek().and_then(|d| d.to_digit(10)) {
                n = n.saturating_mul(10).saturating_add(v as usize);
                chars.next();
            }
            named = true;
            if let Some(m) = c.get(n).filter(|m| !m.as_bytes().is_empty()) {
                filled = true;
                out.push_str(&crate::text::visible(&String::from_utf8_lossy(
                    m.as_bytes(),
                )));
            }
            continue;
        }
        out.push(ch);
    }
    (out, named, filled)
}

/// The highest `$N` a template names.
fn highest_group(template: &str) -> Option<usize> {
    let mut best = None;
    let mut rest = template;
    while let Some(i) = rest.find('$') {
        rest = &rest[i + 1..];
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if let Ok(n) = digits.parse::<usize>() {
            best = best.max(Some(n));
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(on: Field, bytes: &[u8]) -> Named {
        Rules::builtin()
            .identify(on, bytes)
            .unwrap_or_else(|| panic!("nothing names {:?}", String::from_utf8_lossy(bytes)))
    }

    #[test]
    fn the_shipped_rules_compile() {
        assert!(Rules::builtin().len() >= 25);
    }

    #[test]
    fn openssh_as_debian_and_upstream_greet() {
        let n = id(
            Field::Greeting,
            b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n",
        );
        assert_eq!(n.service, "ssh");
        assert_eq!(n.product.as_deref(), Some("OpenSSH"));
        assert_eq!(n.version.as_deref(), Some("9.2p1"));
        assert_eq!(
            n.extrainfo.as_deref(),
            Some("Debian-2+deb12u3; protocol 2.0")
        );
        assert_eq!(n.cpe.as_deref(), Some("cpe:/a:openbsd:openssh:9.2p1"));
        let n = id(Field::Greeting, b"SSH-2.0-OpenSSH_9.8\r\n");
        assert_eq!(n.version.as_deref(), Some("9.8"));
        assert_eq!(n.extrainfo.as_deref(), Some("protocol 2.0"));
        let n = id(Field::Greeting, b"SSH-2.0-dropbear_2022.83\r\n");
        assert_eq!(
            (n.product.as_deref(), n.version.as_deref()),
            (Some("Dropbear sshd"), Some("2022.83"))
        );
        // Another SSH server: the service, no product.
        let n = id(Field::Greeting, b"SSH-2.0-Go\r\n");
        assert_eq!((n.service.as_str(), n.product), ("ssh", None));
    }

    #[test]
    fn http_servers_by_their_server_header() {
        /// Server header, product, version, extra information.
        type Case<'a> = (&'a [u8], &'a str, Option<&'a str>, Option<&'a str>);
        let cases: [Case; 6] = [
            (b"nginx/1.22.1", "nginx", Some("1.22.1"), None),
            (b"nginx", "nginx", None, None),
            (
                b"Apache/2.4.62 (Debian)",
                "Apache httpd",
                Some("2.4.62"),
                Some("Debian"),
            ),
            (b"Apache", "Apache httpd", None, None),
            (b"lighttpd/1.4.69", "lighttpd", Some("1.4.69"), None),
            (
                b"Microsoft-IIS/10.0",
                "Microsoft IIS httpd",
                Some("10.0"),
                None,
            ),
        ];
        for (server, product, version, extra) in cases {
            let n = id(Field::HttpServer, server);
            assert_eq!(n.product.as_deref(), Some(product), "{server:?}");
            assert_eq!(n.version.as_deref(), version, "{server:?}");
            assert_eq!(n.extrainfo.as_deref(), extra, "{server:?}");
        }
        assert_eq!(
            id(Field::HttpServer, b"nginx").cpe.as_deref(),
            Some("cpe:/a:f5:nginx"),
            "a CPE without a version names the product"
        );
    }

    #[test]
    fn mail_and_file_transfer_greetings() {
        let n = id(
            Field::Greeting,
            b"220 mx.lab ESMTP Postfix (Debian/GNU)\r\n",
        );
        assert_eq!(
            (
                n.service.as_str(),
                n.product.as_deref(),
                n.hostname.as_deref()
            ),
            ("smtp", Some("Postfix smtpd"), Some("mx.lab"))
        );
        assert_eq!(n.extrainfo.as_deref(), Some("Debian/GNU"));
        let n = id(
            Field::Greeting,
            b"220 mx.lab ESMTP Exim 4.96 Mon, 07 Dec 2026 06:00:00 +0000\r\n",
        );
        assert_eq!(
            (n.product.as_deref(), n.version.as_deref()),
            (Some("Exim smtpd"), Some("4.96"))
        );
        let n = id(
            Field::Greeting,
            b"500 OOPS: vsftpd: both local and anonymous access disabled!\r\n",
        );
        assert_eq!(
            (
                n.service.as_str(),
                n.product.as_deref(),
                n.extrainfo.as_deref()
            ),
            (
                "ftp",
                Some("vsftpd"),
                Some("both local and anonymous access disabled!")
            )
        );
        let n = id(Field::Greeting, b"220 (vsFTPd 3.0.3)\r\n");
        assert_eq!(
            (
                n.service.as_str(),
                n.product.as_deref(),
                n.version.as_deref()
            ),
            ("ftp", Some("vsftpd"), Some("3.0.3"))
        );
        let n = id(
            Field::Greeting,
            b"220 ProFTPD 1.3.8 Server (Debian) [::ffff:198.18.1.10]\r\n",
        );
        assert_eq!(
            (
                n.product.as_deref(),
                n.version.as_deref(),
                n.extrainfo.as_deref()
            ),
            (Some("ProFTPD"), Some("1.3.8"), Some("Debian"))
        );
        let n = id(
            Field::Greeting,
            b"220 ProFTPD Server (Debian) [::ffff:198.18.1.10]\r\n",
        );
        assert_eq!((n.product.as_deref(), n.version), (Some("ProFTPD"), None));
        let n = id(
            Field::Greeting,
            b"* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ STARTTLS AUTH=PLAIN] Dovecot (Debian) ready.\r\n",
        );
        assert_eq!(
            (n.service.as_str(), n.product.as_deref()),
            ("imap", Some("Dovecot imapd"))
        );
        let n = id(Field::Greeting, b"+OK Dovecot (Debian) ready.\r\n");
        assert_eq!(
            (n.service.as_str(), n.product.as_deref()),
            ("pop3", Some("Dovecot pop3d"))
        );
        assert_eq!(
            id(Field::Greeting, b"220 files.lab FTP server ready\r\n").service,
            "ftp"
        );
        assert_eq!(
            id(Field::Greeting, b"220 mail.lab ESMTP Sendmail\r\n").service,
            "smtp"
        );
    }

    #[test]
    fn databases_by_their_handshakes() {
        // MariaDB 10.11's handshake: length, sequence, protocol 10, version.
        let mut g = vec![0x5b, 0, 0, 0, 0x0a];
        g.extend_from_slice(b"5.5.5-10.11.6-MariaDB-0+deb12u1\0rest");
        let n = id(Field::Greeting, &g);
        assert_eq!(
            (
                n.service.as_str(),
                n.product.as_deref(),
                n.version.as_deref()
            ),
            ("mysql", Some("MariaDB"), Some("10.11.6"))
        );
        assert_eq!(n.extrainfo.as_deref(), Some("-0+deb12u1"));
        let mut g = vec![0x4a, 0, 0, 0, 0x0a];
        g.extend_from_slice(b"8.0.36\0rest");
        let n = id(Field::Greeting, &g);
        assert_eq!(
            (n.product.as_deref(), n.version.as_deref()),
            (Some("MySQL"), Some("8.0.36"))
        );
        // PostgreSQL's answer to a startup message: an error, or a request
        // for a password (SCRAM: 10).
        let n = id(
            Field::Response,
            b"E\0\0\0\x65SFATAL\0VFATAL\0C28000\0Mno pg_hba.conf entry\0\0",
        );
        assert_eq!(n.service, "postgresql");
        let n = id(Field::Response, b"R\0\0\0\x17\0\0\0\x0aSCRAM-SHA-256\0\0");
        assert_eq!(n.service, "postgresql");
        let n = id(
            Field::Response,
            b"$3000\r\n# Server\r\nredis_version:7.0.15\r\nredis_git_sha1:00000000\r\n",
        );
        assert_eq!(
            (n.service.as_str(), n.version.as_deref()),
            ("redis", Some("7.0.15"))
        );
        let n = id(Field::Response, b"-NOAUTH Authentication required.\r\n");
        assert_eq!(n.extrainfo.as_deref(), Some("authentication required"));
    }

    #[test]
    fn dns_servers_by_version_bind() {
        let n = id(Field::DnsVersion, b"dnsmasq-2.89");
        assert_eq!(
            (n.product.as_deref(), n.version.as_deref()),
            (Some("dnsmasq"), Some("2.89"))
        );
        let n = id(Field::DnsVersion, b"9.18.28-1~deb12u2-Debian");
        assert_eq!(
            (
                n.product.as_deref(),
                n.version.as_deref(),
                n.extrainfo.as_deref()
            ),
            (Some("ISC BIND"), Some("9.18.28"), Some("1~deb12u2-Debian"))
        );
    }

    #[test]
    fn what_no_rule_names_is_none_and_telnet_by_its_negotiation() {
        assert!(
            Rules::builtin()
                .identify(Field::Greeting, b"hello\r\n")
                .is_none()
        );
        assert!(Rules::builtin().identify(Field::HttpServer, b"").is_none());
        assert_eq!(
            id(Field::Greeting, b"\xff\xfd\x18\xff\xfd\x20").service,
            "telnet"
        );
    }

    #[test]
    fn a_captured_group_is_escaped() {
        let n = id(Field::HttpServer, b"nginx/1.2 (\x1b[2J)");
        assert_eq!(n.version.as_deref(), Some("1.2"));
        let n = id(Field::HttpServer, b"Apache/2.4 (\x1b[2J)");
        assert!(
            !n.extrainfo.unwrap().contains('\x1b'),
            "a control character reached a field"
        );
    }

    #[test]
    fn a_bad_rules_file_names_the_rule_and_why() {
        let e = Rules::parse("[[rule]]\non = \"greeting\"\nmatch = \"(\"\nservice = \"x\"\n")
            .unwrap_err();
        assert_eq!(e.rule, Some(1));
        assert!(e.to_string().contains("rule 1: match \"(\""), "{e}");
        let e = Rules::parse(
            "[[rule]]\non = \"greeting\"\nmatch = \"a(b)\"\nservice = \"x\"\nversion = \"$2\"\n",
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("names group $2; the match has 1 groups"),
            "{e}"
        );
        let e =
            Rules::parse("[[rule]]\non = \"smell\"\nmatch = \"a\"\nservice = \"x\"\n").unwrap_err();
        assert_eq!(e.rule, None);
        assert!(e.to_string().contains("smell"), "{e}");
    }
}
