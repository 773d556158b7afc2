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
    /// Connections opened (a TLS port that answered plain HTTP: 2).
    pub connections: u32,
    /// Bytes read from the service.
    pub bytes_read: u64,
    /// When the first connection was opened.
    pub time: CaptureTime,
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
