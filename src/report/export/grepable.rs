//! nmap's greppable output (`-oG`): one `Status` line and one `Ports`
//! line per host that answered,
//! `Host: ADDR ()\tPorts: 22/open/tcp//ssh///, ...\tIgnored State: closed (1021)`.
//! As nmap does, the largest folded group is the ignored state and every
//! other port is listed; a group whose ports were too scattered to keep
//! (report.json's `ports: null`) is left out of the list.

use std::io::{self, Write};

use super::{HostExport, ScanExport, nmap_state, nmap_time};
use crate::results::ScanReport;

pub(super) fn write(scan: &ScanReport, out: &mut dyn Write) -> io::Result<()> {
    writeln!(
        out,
        "# sonde {} scan initiated {} as: {}",
        scan.sonde_version,
        nmap_time(&scan.started),
        // One line, whatever the names in the command hold.
        crate::text::one_line(&scan.command.join(" "))
    )?;
    let scanned = scan.syn_ports();
    for host in &scan.hosts {
        writeln!(out, "Host: {} ()\tStatus: Up", host.address)?;
        // (port, state, protocol, service, version information)
        let mut ports: Vec<(u16, String, &str, String, String)> = Vec::new();
        let mut ignored: Option<(String, u64)> = None;
        if let Some(scanned) = &scanned {
            let a = host.syn_account(scanned);
            for r in &a.listed {
                let port = r.port.unwrap_or(0);
                let found = host
                    .services
                    .iter()
                    .find(|s| s.protocol.is_tcp() && s.port == port);
                let name = match found.and_then(|s| s.service.as_deref()) {
                    // nmap -sV writes a TLS service as ssl|NAME.
                    Some(n) if found.is_some_and(|s| s.tunnel.is_some()) => format!("ssl|{n}"),
                    Some(n) => n.to_string(),
                    None => r.service.as_deref().unwrap_or_default().to_string(),
                };
                let version = found.map(version_info).unwrap_or_default();
                ports.push((
                    port,
                    nmap_state(r.state()).to_string(),
                    "tcp",
                    name,
                    version,
                ));
            }
            let mut groups: Vec<(String, u64, Option<String>)> = a
                .folded
                .iter()
                .map(|(s, _, n, p)| (nmap_state(s).to_string(), *n, p.map(|p| p.to_string())))
                .collect();
            if a.no_response > 0 {
                groups.push((
                    "filtered".into(),
                    a.no_response,
                    a.no_response_ports.as_ref().map(|p| p.to_string()),
                ));
            }
            if let Some(i) = (0..groups.len()).max_by_key(|i| groups[*i].1) {
                let (state, n, _) = groups.remove(i);
                ignored = Some((state, n));
            }
            for (state, _, p) in groups {
                let Some(Ok(set)) = p.as_deref().map(crate::targets::PortSet::parse) else {
                    continue;
                };
                for port in set.iter() {
                    let service = crate::targets::ports::tcp_service(port).unwrap_or("");
                    ports.push((
                        port,
                        state.clone(),
                        "tcp",
                        service.to_string(),
                        String::new(),
                    ));
                }
            }
        }
        if host.dns().next().is_some() {
            let version = host
                .services
                .iter()
                .find(|s| !s.protocol.is_tcp() && s.port == 53)
                .map(version_info)
                .unwrap_or_default();
            ports.push((53, "open".into(), "udp", "domain".into(), version));
        }
        if ports.is_empty() && ignored.is_none() {
            continue;
        }
        ports.sort_by(|a, b| (a.2, a.0).cmp(&(b.2, b.0)));
        write!(out, "Host: {} ()", host.address)?;
        if !ports.is_empty() {
            let list: Vec<String> = ports
                .iter()
                .map(|(p, state, proto, service, version)| {
                    format!("{p}/{state}/{proto}//{service}//{version}/")
                })
                .collect();
            write!(out, "\tPorts: {}", list.join(", "))?;
        }
        if let Some((state, n)) = ignored {
            write!(out, "\tIgnored State: {state} ({n})")?;
        }
        writeln!(out)?;
    }
    let up = scan.hosts.len() as u128;
    let total = scan.target_count().max(up);
    let elapsed = (super::epoch(&scan.finished) - super::epoch(&scan.started)).max(0);
    writeln!(
        out,
        "# sonde done at {} -- {} IP address{} ({} host{} up) scanned in {} seconds",
        nmap_time(&scan.finished),
        total,
        if total == 1 { "" } else { "es" },
        up,
        if up == 1 { "" } else { "s" },
        elapsed
    )
}

/// nmap's version field: product, version and extra information, with
/// the characters that separate fields (`/`, `,`) replaced as nmap does.
fn version_info(s: &crate::results::ServiceResult) -> String {
    let mut v: Vec<String> = [&s.product, &s.version]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
    if let Some(x) = &s.extrainfo {
        v.push(format!("({x})"));
    }
    crate::text::one_line(&v.join(" "))
        .replace('/', "|")
        .replace(',', " ")
}
