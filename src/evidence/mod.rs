//! Evidence that holds up in an audit: the run directory every scan writes
//! (`run_dir`), the hash-chained audit log of what a run did (`audit`),
//! the compliance controls the evidence supports (`compliance`), and the
//! checks `sonde verify` runs again (`verify`).

pub mod audit;
pub mod lock;
pub mod run_dir;
pub mod sent_log;
pub mod signature;
pub mod verify;

pub use crate::results::EvidenceMode;

pub use audit::{AuditLog, ChainProblem, GENESIS, verify_chain};
pub use run_dir::RunDir;

/// SHA-256 (hex) and size of a file, read in 64 KiB pieces.
/// The SHA-256 of the first `len` bytes of the file at `path` (what an
/// append-only file held when an earlier segment of a resumed run recorded
/// it), or `None` when the file is shorter.
pub fn prefix_sha256(path: &std::path::Path, len: u64) -> std::io::Result<Option<String>> {
    use sha2::Digest;
    use std::io::Read;
    let f = open_regular(path, false)?;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut r = f.take(len);
    let mut got = 0u64;
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        got += n as u64;
    }
    Ok((got == len).then(|| hex::encode(h.finalize())))
}

/// Open `path` for reading only if it is a regular file. A FIFO, a device
/// or a socket is refused, and the open itself never blocks (a FIFO named
/// `capture.pcap` hung `verify`, `/dev/zero` was read forever: issue 26);
/// without `follow_links`, a symbolic link is refused too.
pub fn open_regular(path: &std::path::Path, follow_links: bool) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut flags = libc::O_NONBLOCK | libc::O_CLOEXEC;
    if !follow_links {
        flags |= libc::O_NOFOLLOW;
    }
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!(
                        "{} is a symbolic link: a run directory's files are never links",
                        path.display()
                    ),
                )
            } else {
                e
            }
        })?;
    let kind = f.metadata()?.file_type();
    if !kind.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{} is not a regular file", path.display()),
        ));
    }
    Ok(f)
}

/// `name` as a file of the run directory `dir`: one plain file name, never
/// a path (no `/`, `..` or absolute path: an audit record naming
/// `../../etc/shadow` made `verify` hash a file outside the run).
pub fn member(dir: &std::path::Path, name: &str) -> Result<std::path::PathBuf, String> {
    use std::path::Component;
    let mut parts = std::path::Path::new(name).components();
    match (parts.next(), parts.next()) {
        (Some(Component::Normal(n)), None) if !name.contains('/') && !n.is_empty() => {
            Ok(dir.join(n))
        }
        _ => Err(format!(
            "{name:?} is not a file of the run directory (a run directory names its files by plain names)"
        )),
    }
}

/// The probes a run's capture holds: packets to one of `targets` that are
/// a probe's shape (a TCP SYN without ACK, an ICMP or ICMPv6 echo request,
/// UDP to `dns_port`). With full evidence every probe sent is in the
/// capture, so a resumed run's budget is charged at least this many
/// whatever its report says (issue 26: an edited report's `counters.sent`
/// let a resumed run exceed `max_probes`). Anything probe-shaped a target
/// sent to us counts too: the charge errs high, never low.
pub fn probes_in_capture(
    path: &std::path::Path,
    targets: &crate::targets::IpSet,
    dns_port: u16,
) -> std::io::Result<u64> {
    let file = open_regular(path, false)?;
    // A capture cut before its header was whole (a run killed before its
    // first flush) holds no probe.
    if file.metadata()?.len() < 24 {
        return Ok(0);
    }
    let name = path.display().to_string();
    let mut reader = crate::pcap::reader::CaptureReader::new(file, &name)
        .map_err(|w| std::io::Error::new(std::io::ErrorKind::InvalidData, w.message))?;
    let mut probes = 0u64;
    // A damaged tail ends the count; what was read is charged.
    let _ = reader.for_each_frame(|f| {
        if is_probe(f.data, targets, dns_port) {
            probes += 1;
        }
    });
    Ok(probes)
}

/// Whether a raw IP packet is a probe to one of `targets`.
fn is_probe(ip: &[u8], targets: &crate::targets::IpSet, dns_port: u16) -> bool {
    use etherparse::{Icmpv4Type, Icmpv6Type, NetSlice, SlicedPacket, TransportSlice};
    let Ok(p) = SlicedPacket::from_ip(ip) else {
        return false;
    };
    let dst: std::net::IpAddr = match &p.net {
        Some(NetSlice::Ipv4(v4)) => v4.header().destination_addr().into(),
        Some(NetSlice::Ipv6(v6)) => v6.header().destination_addr().into(),
        _ => return false,
    };
    if !targets.contains(crate::targets::canonical_ip(dst)) {
        return false;
    }
    match &p.transport {
        Some(TransportSlice::Tcp(t)) => t.syn() && !t.ack(),
        Some(TransportSlice::Udp(u)) => u.destination_port() == dns_port,
        Some(TransportSlice::Icmpv4(i)) => matches!(i.icmp_type(), Icmpv4Type::EchoRequest(_)),
        Some(TransportSlice::Icmpv6(i)) => matches!(i.icmp_type(), Icmpv6Type::EchoRequest(_)),
        _ => false,
    }
}

/// SHA-256 and size of a regular file (following a symbolic link: the
/// scope file may be one).
pub fn file_sha256(path: &std::path::Path) -> std::io::Result<(String, u64)> {
    sha256_of(open_regular(path, true)?)
}

/// SHA-256 and size of everything `source` yields.
pub fn sha256_of(mut source: impl std::io::Read) -> std::io::Result<(String, u64)> {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = source.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        size += n as u64;
    }
    Ok((hex::encode(h.finalize()), size))
}

/// Who ran what, where, for a report or an audit record: `sonde_version`,
/// `command`, `operator` and `host`, then the fields of `fields` (an
/// object).
/// Who ran sonde, where, and how: the head of every report and of the
/// records that start a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Provenance {
    pub sonde_version: String,
    pub command: Vec<String>,
    pub operator: String,
    pub host: String,
}

impl Provenance {
    /// This process's.
    pub fn current() -> Provenance {
        Provenance {
            sonde_version: env!("CARGO_PKG_VERSION").to_string(),
            command: std::env::args().collect(),
            operator: operator(),
            host: hostname(),
        }
    }
}

pub fn provenance(fields: serde_json::Value) -> serde_json::Value {
    let mut out = serde_json::json!({
        "sonde_version": env!("CARGO_PKG_VERSION"),
        "command": std::env::args().collect::<Vec<_>>(),
        "operator": operator(),
        "host": hostname(),
    });
    if let (Some(out), serde_json::Value::Object(more)) = (out.as_object_mut(), fields) {
        out.extend(more);
    }
    out
}

/// Who runs sonde: the invoking user under sudo, else the account of the
/// real user id (from /etc/passwd), else `uid N`.
pub fn operator() -> String {
    if let Ok(u) = std::env::var("SUDO_USER")
        && !u.is_empty()
    {
        return u;
    }
    let uid = real_uid();
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|p| {
            p.lines().find_map(|l| {
                let mut f = l.split(':');
                let name = f.next()?;
                let id: u32 = f.nth(1)?.parse().ok()?;
                (id == uid).then(|| name.to_string())
            })
        })
        .unwrap_or_else(|| format!("uid {uid}"))
}

/// The real user id, from /proc/self/status ("Uid:\treal\teffective...").
fn real_uid() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().next().and_then(|u| u.parse().ok()))
        })
        .unwrap_or(u32::MAX)
}

/// This machine's host name.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn provenance_comes_with_the_fields_given() {
        let v = super::provenance(serde_json::json!({"segment": 2, "host": "not overwritten?"}));
        assert_eq!(v["sonde_version"], env!("CARGO_PKG_VERSION"));
        assert!(v["command"].is_array());
        assert!(v["operator"].is_string());
        assert_eq!(v["segment"], 2);
        // a caller's field of the same name is the caller's to set
        assert_eq!(v["host"], "not overwritten?");
    }
}
