//! What a TLS service's certificates say, read with x509-parser (never by
//! hand): subject, names, issuer, validity and days left, key type and
//! size, self-signed or not. The handshake itself is the driver's
//! (rustls); this reads the DER it recorded.

use serde::{Deserialize, Serialize};
use x509_parser::prelude::*;
use x509_parser::public_key::PublicKey;

/// One certificate of a chain, as a report shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateInfo {
    /// The subject's distinguished name (RFC 4514 order, as OpenSSL's
    /// `-nameopt RFC2253` prints it).
    pub subject: String,
    /// The issuer's distinguished name.
    pub issuer: String,
    /// DNS names and IP addresses of the subject alternative names.
    pub subject_alt_names: Vec<String>,
    /// The serial number, hex, as OpenSSL prints it.
    pub serial: String,
    /// RFC 3339, UTC.
    pub not_before: String,
    pub not_after: String,
    /// Whole days from the handshake to `not_after` (negative: expired).
    pub days_left: i64,
    /// `RSA`, `EC P-256`, `EC P-384`, `Ed25519`, or the algorithm's OID.
    pub key_type: String,
    /// The key's size in bits (RSA modulus, EC curve).
    pub key_bits: Option<u32>,
    /// The signature algorithm, by name where sonde knows it.
    pub signature_algorithm: String,
    /// Issued by its own subject (and, when both are present, its
    /// authority key identifier is its own subject key identifier).
    pub self_signed: bool,
    /// The SHA-256 of the DER, hex (what `openssl x509 -fingerprint -sha256` prints, without colons).
    pub sha256: String,
}

/// Why a certificate could not be read.
#[derive(Debug, PartialEq, Eq)]
pub struct CertificateError(pub String);

impl std::fmt::Display for CertificateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "not an X.509 certificate: {}", self.0)
    }
}

impl std::error::Error for CertificateError {}

impl CertificateInfo {
    /// Read `der`; `now` (seconds since the epoch) is when it was seen.
    pub fn from_der(der: &[u8], now: i64) -> Result<CertificateInfo, CertificateError> {
        let (rest, cert) =
            X509Certificate::from_der(der).map_err(|e| CertificateError(e.to_string()))?;
        if !rest.is_empty() {
            return Err(CertificateError(format!(
                "{} bytes after the certificate",
                rest.len()
            )));
        }
        let text = |s: String| crate::text::visible(&s).into_owned();
        let mut names = Vec::new();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for n in &san.value.general_names {
                match n {
                    GeneralName::DNSName(d) => names.push(text(d.to_string())),
                    GeneralName::IPAddress(b) => match b.len() {
                        4 => names.push(
                            std::net::Ipv4Addr::from(<[u8; 4]>::try_from(*b).expect("4"))
                                .to_string(),
                        ),
                        16 => names.push(
                            std::net::Ipv6Addr::from(<[u8; 16]>::try_from(*b).expect("16"))
                                .to_string(),
                        ),
                        _ => {}
                    },
                    _ => {}
                }
            }
        }
        let validity = cert.validity();
        let not_after = validity.not_after.timestamp();
        let (key_type, key_bits) = key_of(cert.public_key());
        let aki = cert
            .extensions()
            .iter()
            .find_map(|e| match e.parsed_extension() {
                ParsedExtension::AuthorityKeyIdentifier(a) => {
                    a.key_identifier.as_ref().map(|k| k.0.to_vec())
                }
                _ => None,
            });
        let ski = cert
            .extensions()
            .iter()
            .find_map(|e| match e.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
                _ => None,
            });
        let same_name = cert.subject().as_raw() == cert.issuer().as_raw();
        let self_signed = same_name
            && match (&aki, &ski) {
                (Some(a), Some(s)) => a == s,
                _ => true,
            };
        Ok(CertificateInfo {
            subject: text(cert.subject().to_string()),
            issuer: text(cert.issuer().to_string()),
            subject_alt_names: names,
            serial: cert.raw_serial_as_string().replace(':', ""),
            not_before: rfc3339(validity.not_before.timestamp()),
            not_after: rfc3339(not_after),
            days_left: (not_after - now).div_euclid(86_400),
            key_type,
            key_bits,
            signature_algorithm: signature_name(&cert.signature_algorithm.algorithm.to_id_string()),
            self_signed,
            sha256: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(der)),
        })
    }
}

fn rfc3339(seconds: i64) -> String {
    ::time::OffsetDateTime::from_unix_timestamp(seconds)
        .ok()
        .and_then(|t| {
            t.format(&::time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| seconds.to_string())
}

/// The key's type and size.
fn key_of(spki: &SubjectPublicKeyInfo) -> (String, Option<u32>) {
    match spki.parsed() {
        Ok(PublicKey::RSA(rsa)) => ("RSA".into(), Some(rsa.key_size() as u32)),
        Ok(PublicKey::EC(point)) => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|o| o.to_id_string());
            match curve.as_deref() {
                Some("1.2.840.10045.3.1.7") => ("EC P-256".into(), Some(256)),
                Some("1.3.132.0.34") => ("EC P-384".into(), Some(384)),
                Some("1.3.132.0.35") => ("EC P-521".into(), Some(521)),
                Some(other) => (format!("EC {other}"), Some(point.key_size() as u32)),
                None => ("EC".into(), Some(point.key_size() as u32)),
            }
        }
        Ok(PublicKey::DSA(_)) => ("DSA".into(), None),
        _ => match spki.algorithm.algorithm.to_id_string().as_str() {
            "1.3.101.112" => ("Ed25519".into(), Some(256)),
            "1.3.101.113" => ("Ed448".into(), Some(456)),
            other => (other.to_string(), None),
        },
    }
}

/// Signature algorithms by name (their OIDs otherwise).
fn signature_name(oid: &str) -> String {
    match oid {
        "1.2.840.113549.1.1.5" => "sha1WithRSAEncryption",
        "1.2.840.113549.1.1.11" => "sha256WithRSAEncryption",
        "1.2.840.113549.1.1.12" => "sha384WithRSAEncryption",
        "1.2.840.113549.1.1.13" => "sha512WithRSAEncryption",
        "1.2.840.113549.1.1.10" => "rsassaPss",
        "1.2.840.10045.4.3.2" => "ecdsa-with-SHA256",
        "1.2.840.10045.4.3.3" => "ecdsa-with-SHA384",
        "1.2.840.10045.4.3.4" => "ecdsa-with-SHA512",
        "1.3.101.112" => "ED25519",
        "1.2.840.113549.1.1.4" => "md5WithRSAEncryption",
        other => other,
    }
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SELF_SIGNED: &[u8] = include_bytes!("../../tests/corpus/certs/selfsigned-rsa2048.der");
    const LEAF: &[u8] = include_bytes!("../../tests/corpus/certs/leaf-ec-p256-30days.der");
    /// 2026-12-07T06:28:36Z, when both were made.
    const MADE: i64 = 1_796_624_916;

    #[test]
    fn a_self_signed_rsa_certificate_as_openssl_prints_it() {
        let c = CertificateInfo::from_der(SELF_SIGNED, MADE).unwrap();
        assert_eq!(c.subject, "CN=lab.sonde.test, O=Sonde Lab");
        assert_eq!(c.issuer, c.subject);
        assert!(c.self_signed);
        assert_eq!(
            c.subject_alt_names,
            ["lab.sonde.test", "www.lab.sonde.test", "198.18.1.10"]
        );
        assert_eq!(c.serial, "1234");
        assert_eq!(c.not_before, "2026-12-07T06:28:36Z");
        assert_eq!(c.not_after, "2036-12-04T06:28:36Z");
        assert_eq!(c.days_left, 3650, "the -days it was made with");
        assert_eq!((c.key_type.as_str(), c.key_bits), ("RSA", Some(2048)));
        assert_eq!(c.signature_algorithm, "sha256WithRSAEncryption");
        assert_eq!(c.sha256.len(), 64);
    }

    #[test]
    fn an_issued_ec_certificate_and_its_days_left() {
        let c = CertificateInfo::from_der(LEAF, MADE).unwrap();
        assert_eq!(c.subject, "CN=mail.sonde.test");
        assert_eq!(c.issuer, "CN=Sonde Lab CA");
        assert!(!c.self_signed);
        assert_eq!((c.key_type.as_str(), c.key_bits), ("EC P-256", Some(256)));
        assert_eq!(c.days_left, 30);
        // A day after it expired.
        let later = CertificateInfo::from_der(LEAF, MADE + 31 * 86_400).unwrap();
        assert_eq!(later.days_left, -1);
    }

    #[test]
    fn garbage_and_trailing_bytes_are_refused() {
        assert!(CertificateInfo::from_der(b"\x16\x03\x01garbage", MADE).is_err());
        let mut more = SELF_SIGNED.to_vec();
        more.push(0);
        let e = CertificateInfo::from_der(&more, MADE).unwrap_err();
        assert!(e.to_string().contains("1 bytes after"), "{e}");
        assert!(CertificateInfo::from_der(&SELF_SIGNED[..100], MADE).is_err());
    }
}
