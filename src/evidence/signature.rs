//! Signed runs: an Ed25519 signature over a run's report hash and final
//! audit head.
//!
//! A hash chain proves integrity only against an anchor kept elsewhere; a
//! signature binds the run to whoever holds the key (a scanner machine, an
//! operator). `sonde keygen` writes a key pair (PKCS#8 and SPKI PEM, as
//! OpenSSL writes them: `openssl pkey -in KEY -pubout` gives the same
//! public key); `scan --sign-key` and `merge --sign-key` write
//! `signature.json` once the run's audit log is final; `verify --pubkey`
//! and `merge --trust` check it. ed25519-dalek does the cryptography.
//!
//! ```
//! use sonde::evidence::signature::{generate, RunSignature};
//! let key = generate();
//! let sig = RunSignature::sign(&key, &"ab".repeat(32), &"cd".repeat(32));
//! assert!(sig.check().is_ok());
//! let mut forged = sig.clone();
//! forged.report_sha256 = "ef".repeat(32);
//! assert!(forged.check().is_err());
//! ```

use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

/// The signature's file in a run directory.
pub const SIGNATURE: &str = "signature.json";

/// What is signed: the report's SHA-256 and the audit log's final head,
/// in a fixed text that names what it is.
pub fn message(report_sha256: &str, audit_head: &str) -> Vec<u8> {
    format!("sonde run signature v1\nreport.json sha256 {report_sha256}\naudit head {audit_head}\n")
        .into_bytes()
}

/// A new signing key from the operating system's randomness.
pub fn generate() -> SigningKey {
    SigningKey::from_bytes(&rand::random::<[u8; 32]>())
}

/// A key's short name: the first 16 hex digits of its public key.
pub fn fingerprint(key: &VerifyingKey) -> String {
    hex::encode(&key.to_bytes()[..8])
}

/// Write a new key pair: `PREFIX.key` (PKCS#8 PEM, readable by its owner
/// only) and `PREFIX.pub` (SPKI PEM). Refuses to overwrite either.
pub fn write_key_pair(prefix: &Path) -> Result<(PathBuf, PathBuf, VerifyingKey), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let key = generate();
    let (secret, public) = (prefix.with_extension("key"), prefix.with_extension("pub"));
    let pem = key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| format!("cannot encode the key: {e}"))?;
    let pub_pem = key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| format!("cannot encode the public key: {e}"))?;
    // Both halves or neither: the public half is claimed first, so that an
    // existing NAME.pub leaves no orphan private key behind (issue 26).
    let mut written: Vec<&PathBuf> = Vec::new();
    for (path, text, mode) in [
        (&public, pub_pem.as_str(), 0o644),
        (&secret, pem.as_str(), 0o600),
    ] {
        let result = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(path)
            .map_err(|e| format!("cannot create {}: {e}", path.display()))
            .and_then(|mut f| {
                written.push(path);
                f.write_all(text.as_bytes())
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))
            });
        if let Err(e) = result {
            for p in &written {
                let _ = std::fs::remove_file(p);
            }
            return Err(e);
        }
    }
    Ok((secret, public, key.verifying_key()))
}

/// Read a signing key (PKCS#8 PEM, as `sonde keygen` or `openssl genpkey
/// -algorithm ed25519` write it).
pub fn load_signing_key(path: &Path) -> Result<SigningKey, String> {
    // As ssh does: a private key others can read may have been copied;
    // signing with it proves nothing (issue 26).
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map_err(|e| format!("{}: {e}", path.display()))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(format!(
                "{}: a private key others can read (mode {:04o}) is not used; chmod 600 {} (sonde keygen writes 0600)",
                path.display(),
                mode & 0o7777,
                path.display()
            ));
        }
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    SigningKey::from_pkcs8_pem(&text).map_err(|e| {
        format!(
            "{}: not an Ed25519 private key in PKCS#8 PEM ({e})",
            path.display()
        )
    })
}

/// Read a public key (SPKI PEM, as `sonde keygen` or `openssl pkey -pubout`
/// write it).
pub fn load_public_key(path: &Path) -> Result<VerifyingKey, String> {
    use std::io::Read;
    // A key is a few hundred bytes: /dev/zero is not read until memory
    // runs out.
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(64 << 10).read_to_end(&mut bytes))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let not_pem = || {
        format!(
            "{}: not a PEM public key (no -----BEGIN PUBLIC KEY----- line)",
            path.display()
        )
    };
    let text = String::from_utf8(bytes).map_err(|_| not_pem())?;
    if !text.contains("-----BEGIN ") {
        return Err(not_pem());
    }
    VerifyingKey::from_public_key_pem(&text)
        .map_err(|e| format!("{}: not an Ed25519 public key in PEM ({e})", path.display()))
}

/// A run's signature, as `signature.json` holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSignature {
    /// Always `ed25519`.
    pub algorithm: String,
    /// The signer's public key (32 bytes, hex).
    pub public_key: String,
    pub report_sha256: String,
    pub audit_head: String,
    /// Over [`message`] (64 bytes, hex).
    pub signature: String,
}

impl RunSignature {
    pub fn sign(key: &SigningKey, report_sha256: &str, audit_head: &str) -> RunSignature {
        let sig = key.sign(&message(report_sha256, audit_head));
        RunSignature {
            algorithm: "ed25519".into(),
            public_key: hex::encode(key.verifying_key().to_bytes()),
            report_sha256: report_sha256.into(),
            audit_head: audit_head.into(),
            signature: hex::encode(sig.to_bytes()),
        }
    }

    /// The signer's key, once the signature holds for the hashes it names.
    pub fn check(&self) -> Result<VerifyingKey, String> {
        if self.algorithm != "ed25519" {
            return Err(format!(
                "algorithm {:?}: only ed25519 is known",
                self.algorithm
            ));
        }
        let key: [u8; 32] = hex::decode(&self.public_key)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or("public_key is not 32 bytes of hex")?;
        let key = VerifyingKey::from_bytes(&key).map_err(|e| format!("public_key: {e}"))?;
        let sig: [u8; 64] = hex::decode(&self.signature)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or("signature is not 64 bytes of hex")?;
        key.verify(
            &message(&self.report_sha256, &self.audit_head),
            &Signature::from_bytes(&sig),
        )
        .map_err(|_| "the signature does not hold for the hashes it names".to_string())?;
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression (issue 26): a --trust file of garbage was reported as a
    /// "NUL byte" error, and /dev/zero was read until memory ran out.
    #[test]
    fn garbage_is_not_a_pem_public_key() {
        let dir = tempfile::tempdir().unwrap();
        let garbage = dir.path().join("g.pub");
        std::fs::write(&garbage, [0xffu8, 0, 7, 0x80, 1]).unwrap();
        for path in [garbage.as_path(), Path::new("/dev/zero")] {
            let e = load_public_key(path).unwrap_err();
            assert!(e.contains("not a PEM public key"), "{e}");
        }
    }

    #[test]
    fn a_key_pair_round_trips_through_pem_files() {
        let dir = tempfile::tempdir().unwrap();
        let (secret, public, vk) = write_key_pair(&dir.path().join("scanner")).unwrap();
        let key = load_signing_key(&secret).unwrap();
        assert_eq!(key.verifying_key(), vk);
        assert_eq!(load_public_key(&public).unwrap(), vk);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&secret).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // Never overwritten.
        assert!(write_key_pair(&dir.path().join("scanner")).is_err());
        // A public key is not a private one.
        assert!(load_signing_key(&public).is_err());
    }

    #[test]
    fn a_signature_binds_both_hashes_and_the_key() {
        let key = generate();
        let sig = RunSignature::sign(&key, &"1".repeat(64), &"2".repeat(64));
        assert_eq!(sig.check().unwrap(), key.verifying_key());
        let mut other_head = sig.clone();
        other_head.audit_head = "3".repeat(64);
        assert!(other_head.check().is_err());
        let mut other_key = sig.clone();
        other_key.public_key = hex::encode(generate().verifying_key().to_bytes());
        assert!(other_key.check().is_err());
        let mut garbled = sig;
        garbled.signature = "00".into();
        assert!(garbled.check().unwrap_err().contains("64 bytes"));
    }

    #[test]
    fn a_private_key_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let (secret, _, _) = write_key_pair(&dir.path().join("k")).unwrap();
        assert!(load_signing_key(&secret).is_ok());
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = load_signing_key(&secret).unwrap_err();
        assert!(
            err.contains("mode 0644") && err.contains("chmod 600"),
            "{err}"
        );
    }

    /// Regression (issue 26): `keygen -o p` with `p.pub` already there
    /// wrote `p.key` first, then failed: an orphan private key.
    #[test]
    fn an_existing_half_leaves_no_orphan_key() {
        let dir = tempfile::tempdir().unwrap();
        let prefix = dir.path().join("p");
        std::fs::write(dir.path().join("p.pub"), b"someone else's key").unwrap();
        assert!(write_key_pair(&prefix).is_err());
        assert!(!dir.path().join("p.key").exists());
        assert_eq!(
            std::fs::read(dir.path().join("p.pub")).unwrap(),
            b"someone else's key"
        );
        std::fs::remove_file(dir.path().join("p.pub")).unwrap();
        std::fs::write(dir.path().join("p.key"), b"an old private key").unwrap();
        assert!(write_key_pair(&prefix).is_err());
        assert!(
            !dir.path().join("p.pub").exists(),
            "the new public half is taken back"
        );
        assert_eq!(
            std::fs::read(dir.path().join("p.key")).unwrap(),
            b"an old private key"
        );
    }
}
