//! What service identification found on one open port: a `service`
//! record of results.ndjson, and the port's entry in the report.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::CaptureTime;
use crate::service::http::HttpAnswer;
use crate::service::tls::CertificateInfo;

/// One port's service, as identified (or as far as it got).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceResult {
    pub target: IpAddr,
    pub port: u16,
    /// `tcp`; `udp` for a DNS server asked over UDP (absent: tcp).
    #[serde(default, skip_serializing_if = "Protocol::is_tcp")]
    pub protocol: Protocol,
    /// Always `service` (the record's kind in results.ndjson).
    pub probe: ServiceKind,
    /// nmap's name for the service (`ssh`, `http`); none when nothing
    /// named it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extrainfo: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpe: Option<String>,
    /// `ssl` when the service spoke inside TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel: Option<String>,
    /// nmap's `method`: `probed` (named from what it said) or `table`
    /// (from the port number only, when it said nothing sonde knows).
    pub method: String,
    /// nmap's confidence, 0-10: 10 for a rule's match, 3 for the table.
    pub conf: u8,
    /// What the service said, escaped and bounded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub banner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpAnswer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsResult>,
    /// Why identification stopped short (refused, timed out, TLS failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What a responder should act on (a certificate expired or about
    /// to, self-signed; passwords in clear text; TLS below 1.2).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<ServiceFinding>,
    /// Connections opened (a TLS port that answered plain HTTP: 2).
    pub connections: u32,
    /// Bytes read from the service.
    pub bytes_read: u64,
    /// When the first connection was opened.
    pub time: CaptureTime,
}

/// The transport a service was reached over.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    #[default]
    Tcp,
    Udp,
}

impl Protocol {
    pub fn is_tcp(&self) -> bool {
        *self == Protocol::Tcp
    }

    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

/// The kind tag of a service record.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceKind {
    #[default]
    Service,
}

/// A TLS session the service negotiated.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsResult {
    /// `TLSv1.3`, `TLSv1.2`.
    pub version: String,
    pub cipher: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alpn: Option<String>,
    /// The server's certificate first.
    pub chain: Vec<CertificateInfo>,
}

/// Something about a service a responder should act on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceFinding {
    pub kind: ServiceFindingKind,
    pub severity: Severity,
    /// One sentence, with the numbers.
    pub summary: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceFindingKind {
    CertificateExpired,
    CertificateExpiring,
    SelfSignedCertificate,
    CleartextAuthentication,
    /// The service refused TLS 1.2 and 1.3: a server that offers only
    /// TLS 1.0 or 1.1 answers so.
    LegacyTlsOnly,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
}

/// Days before expiry a certificate is reported as expiring.
pub const EXPIRING_DAYS: i64 = 30;

impl ServiceResult {
    /// The findings what was seen calls for.
    pub fn assess(&self) -> Vec<ServiceFinding> {
        let mut out = Vec::new();
        let mut add = |kind, severity, summary: String| {
            out.push(ServiceFinding {
                kind,
                severity,
                summary,
            })
        };
        let at = format!("{}:{}", self.target, self.port);
        if let Some(cert) = self.tls.as_ref().and_then(|t| t.chain.first()) {
            if cert.days_left < 0 {
                add(
                    ServiceFindingKind::CertificateExpired,
                    Severity::High,
                    format!(
                        "{at}: the certificate of {} expired {} days ago ({})",
                        cert.subject, -cert.days_left, cert.not_after
                    ),
                );
            } else if cert.days_left <= EXPIRING_DAYS {
                add(
                    ServiceFindingKind::CertificateExpiring,
                    Severity::Medium,
                    format!(
                        "{at}: the certificate of {} expires in {} days ({})",
                        cert.subject, cert.days_left, cert.not_after
                    ),
                );
            }
            if cert.self_signed {
                add(
                    ServiceFindingKind::SelfSignedCertificate,
                    Severity::Medium,
                    format!(
                        "{at}: the certificate of {} is self-signed: clients cannot tell it from an impostor's",
                        cert.subject
                    ),
                );
            }
        }
        let cleartext = matches!(
            self.service.as_deref(),
            Some("ftp" | "telnet" | "pop3" | "imap")
        ) && self.tunnel.is_none()
            && self.method == "probed";
        if cleartext {
            add(
                ServiceFindingKind::CleartextAuthentication,
                Severity::Medium,
                format!(
                    "{at}: {} without TLS: passwords cross the network in clear text",
                    self.service.as_deref().unwrap_or_default()
                ),
            );
        }
        if let Some(e) = &self.error
            && e.starts_with("TLS handshake failed")
            && (e.contains("ProtocolVersion") || e.contains("protocol version"))
        {
            add(
                ServiceFindingKind::LegacyTlsOnly,
                Severity::Medium,
                format!(
                    "{at}: the service refused TLS 1.2 and 1.3 ({e}); it likely offers TLS 1.0 or 1.1 only"
                ),
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(json: serde_json::Value) -> ServiceResult {
        let mut base = serde_json::json!({
            "target": "198.18.1.20", "port": 443, "probe": "service", "method": "probed",
            "conf": 10, "connections": 1, "bytes_read": 10, "time": "2026-12-07T06:00:00Z"
        });
        for (k, v) in json.as_object().unwrap() {
            base[k] = v.clone();
        }
        serde_json::from_value(base).unwrap()
    }

    fn tls(days_left: i64, self_signed: bool) -> serde_json::Value {
        serde_json::json!({"version": "TLSv1.3", "cipher": "TLS13_AES_128_GCM_SHA256", "chain": [{
            "subject": "CN=www.lab", "issuer": "CN=Lab CA", "subject_alt_names": [], "serial": "01",
            "not_before": "2026-01-01T00:00:00Z", "not_after": "2027-01-01T00:00:00Z",
            "days_left": days_left, "key_type": "RSA", "key_bits": 2048,
            "signature_algorithm": "sha256WithRSAEncryption", "self_signed": self_signed,
            "sha256": "0".repeat(64)}]})
    }

    fn kinds(s: &ServiceResult) -> Vec<(ServiceFindingKind, Severity)> {
        s.assess().iter().map(|f| (f.kind, f.severity)).collect()
    }

    #[test]
    fn certificates_expired_expiring_and_self_signed() {
        use ServiceFindingKind::*;
        let s =
            service(serde_json::json!({"service": "http", "tunnel": "ssl", "tls": tls(-3, false)}));
        assert_eq!(kinds(&s), [(CertificateExpired, Severity::High)]);
        assert!(
            s.assess()[0].summary.contains("expired 3 days ago"),
            "{:?}",
            s.assess()
        );
        let s =
            service(serde_json::json!({"service": "http", "tunnel": "ssl", "tls": tls(30, true)}));
        assert_eq!(
            kinds(&s),
            [
                (CertificateExpiring, Severity::Medium),
                (SelfSignedCertificate, Severity::Medium)
            ]
        );
        let s =
            service(serde_json::json!({"service": "http", "tunnel": "ssl", "tls": tls(31, false)}));
        assert_eq!(kinds(&s), []);
    }

    #[test]
    fn passwords_in_clear_text_and_legacy_tls() {
        use ServiceFindingKind::*;
        for name in ["ftp", "telnet", "pop3", "imap"] {
            let s = service(serde_json::json!({"port": 21, "service": name}));
            assert_eq!(
                kinds(&s),
                [(CleartextAuthentication, Severity::Medium)],
                "{name}"
            );
        }
        // Inside TLS, or only guessed from the port: no finding.
        let s = service(serde_json::json!({"port": 993, "service": "imap", "tunnel": "ssl"}));
        assert_eq!(kinds(&s), []);
        let s = service(
            serde_json::json!({"port": 21, "service": "ftp", "method": "table", "conf": 3}),
        );
        assert_eq!(kinds(&s), []);
        let s = service(serde_json::json!({
            "error": "TLS handshake failed: received fatal alert: ProtocolVersion"}));
        assert_eq!(kinds(&s), [(LegacyTlsOnly, Severity::Medium)]);
    }
}
