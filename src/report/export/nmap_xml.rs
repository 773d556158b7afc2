//! nmap XML, as Debian's `/usr/share/nmap/nmap.dtd` defines it: nmap.xsl
//! renders it, python-libnmap, Metasploit's `db_import` and DefectDojo read
//! it. Where sonde's results have no element of their own:
//!
//! * the folded closed and ICMP-filtered ports are `extraports` with their
//!   `extrareasons` (ports given when known), as nmap writes "Not shown";
//! * SYN ports that got no answer are `extraports state="filtered"`,
//!   reason `no-response`;
//! * an echo reply is the host's status reason (`echo-reply`);
//! * a DNS answer is `udp/53` open (`udp-response`) with a `dns-answer`
//!   script element saying the question, rcode and answer count;
//! * hosts that answered nothing (no probe, or no ARP request or neighbour
//!   solicitation) are counted down in `runstats` and not listed, as nmap
//!   does without `-v` (a sparse /8 would list 16 million of them).
//!
//! `scanner` is `nmap` (the DTD allows nothing else); `version` and
//! `profile_name` say sonde.

use std::io::{self, Write};

use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesPI, BytesText, Event};

use super::{HostExport, ScanExport, epoch, folded_reason, nmap_state, nmap_time, reason};
use crate::results::{HostResults, ScanReport, ScanResult, ServiceResult};
use crate::scope::ProbeKind;

/// The xmloutputversion nmap 7.9x writes.
const XML_OUTPUT_VERSION: &str = "1.05";

pub(super) fn write(scan: &ScanReport, out: &mut dyn Write) -> io::Result<()> {
    let mut w = Writer::new_with_indent(out, b' ', 0);
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    w.write_event(Event::DocType(BytesText::from_escaped("nmaprun")))?;
    w.write_event(Event::PI(BytesPI::new(
        "xml-stylesheet href=\"file:///usr/share/nmap/nmap.xsl\" type=\"text/xsl\"",
    )))?;
    let (start, end) = scan.start_end();
    // From the command line (a scope file's or a run directory's name):
    // characters XML 1.0 forbids are escaped, so xmllint accepts the file.
    let args = crate::text::one_line(&scan.command.join(" ")).into_owned();
    let version = format!("sonde-{}", scan.sonde_version);
    let scanned = scan.syn_ports();
    w.create_element("nmaprun")
        .with_attributes([
            ("scanner", "nmap"),
            ("args", args.as_str()),
            ("start", start.to_string().as_str()),
            ("startstr", nmap_time(&scan.started).as_str()),
            ("version", version.as_str()),
            ("profile_name", "sonde"),
            ("xmloutputversion", XML_OUTPUT_VERSION),
        ])
        .write_inner_content(|w| {
            if let Some(ports) = &scanned {
                w.create_element("scaninfo")
                    .with_attributes([
                        ("type", "syn"),
                        ("protocol", "tcp"),
                        ("numservices", ports.len().to_string().as_str()),
                        ("services", ports.to_string().as_str()),
                    ])
                    .write_empty()?;
            }
            if scan.parameters.probes.contains(&ProbeKind::Dns) {
                w.create_element("scaninfo")
                    .with_attributes([
                        ("type", "udp"),
                        ("protocol", "udp"),
                        ("numservices", "1"),
                        ("services", "53"),
                    ])
                    .write_empty()?;
            }
            w.create_element("verbose")
                .with_attribute(("level", "0"))
                .write_empty()?;
            w.create_element("debugging")
                .with_attribute(("level", "0"))
                .write_empty()?;
            for host in &scan.hosts {
                write_host(w, host, scanned.as_ref(), start, end)?;
            }
            let up = scan.hosts.len() as u128;
            let total = scan.target_count().max(up);
            let elapsed = (epoch(&scan.finished) - epoch(&scan.started)).max(0);
            let summary = format!(
                "Nmap done at {}; {} IP address{} ({} host{} up) scanned in {} seconds",
                nmap_time(&scan.finished),
                total,
                if total == 1 { "" } else { "es" },
                up,
                if up == 1 { "" } else { "s" },
                elapsed
            );
            w.create_element("runstats").write_inner_content(|w| {
                let mut finished = w.create_element("finished").with_attributes([
                    ("time", end.to_string().as_str()),
                    ("timestr", nmap_time(&scan.finished).as_str()),
                    ("elapsed", elapsed.to_string().as_str()),
                    ("summary", summary.as_str()),
                ]);
                finished = if scan.interrupted {
                    finished.with_attributes([
                        ("exit", "error"),
                        (
                            "errormsg",
                            "interrupted: not every probe was sent (see the run's audit log)",
                        ),
                    ])
                } else {
                    finished.with_attribute(("exit", "success"))
                };
                finished.write_empty()?;
                w.create_element("hosts")
                    .with_attributes([
                        ("up", up.to_string().as_str()),
                        ("down", (total - up).to_string().as_str()),
                        ("total", total.to_string().as_str()),
                    ])
                    .write_empty()?;
                Ok(())
            })?;
            Ok(())
        })?;
    w.get_mut().write_all(b"\n")
}

fn address<W: Write>(w: &mut Writer<W>, addr: std::net::IpAddr) -> io::Result<()> {
    w.create_element("address")
        .with_attributes([
            ("addr", addr.to_string().as_str()),
            ("addrtype", if addr.is_ipv4() { "ipv4" } else { "ipv6" }),
        ])
        .write_empty()?;
    Ok(())
}

fn write_host<W: Write>(
    w: &mut Writer<W>,
    host: &HostResults,
    scanned: Option<&crate::targets::PortSet>,
    start: i64,
    end: i64,
) -> io::Result<()> {
    let times: Vec<i64> = host.results.iter().map(|r| r.time.seconds()).collect();
    let first = times
        .iter()
        .copied()
        .filter(|t| *t > 0)
        .min()
        .unwrap_or(start);
    let last = times.iter().copied().max().unwrap_or(end).max(first);
    w.create_element("host")
        .with_attributes([
            ("starttime", first.to_string().as_str()),
            ("endtime", last.to_string().as_str()),
        ])
        .write_inner_content(|w| {
            let (why, ttl) = host.up_reason();
            w.create_element("status")
                .with_attributes([
                    ("state", "up"),
                    ("reason", why),
                    ("reason_ttl", ttl.to_string().as_str()),
                ])
                .write_empty()?;
            address(w, host.address)?;
            w.create_element("hostnames").write_empty()?;
            let account = scanned.map(|s| host.syn_account(s));
            let dns: Vec<_> = host.dns().collect();
            if account.is_none() && dns.is_empty() {
                return Ok(());
            }
            w.create_element("ports").write_inner_content(|w| {
                if let Some(a) = &account {
                    // nmap lists the folded states first, largest first.
                    let mut groups: Vec<(&str, String, u64, Option<String>)> = a
                        .folded
                        .iter()
                        .map(|(state, why, n, ports)| {
                            (
                                nmap_state(state),
                                folded_reason(why),
                                *n,
                                ports.map(|p| p.to_string()),
                            )
                        })
                        .collect();
                    if a.no_response > 0 {
                        groups.push((
                            "filtered",
                            "no-response".into(),
                            a.no_response,
                            a.no_response_ports.as_ref().map(|p| p.to_string()),
                        ));
                    }
                    // One extraports per state, its reasons inside.
                    let mut states: Vec<&str> = groups.iter().map(|g| g.0).collect();
                    states.dedup();
                    states.sort_unstable();
                    states.dedup();
                    for state in states {
                        let of_state: Vec<_> = groups.iter().filter(|g| g.0 == state).collect();
                        let count: u64 = of_state.iter().map(|g| g.2).sum();
                        w.create_element("extraports")
                            .with_attributes([
                                ("state", state),
                                ("count", count.to_string().as_str()),
                            ])
                            .write_inner_content(|w| {
                                for (_, why, n, ports) in of_state {
                                    let mut e = w.create_element("extrareasons").with_attributes([
                                        ("reason", why.as_str()),
                                        ("count", n.to_string().as_str()),
                                        ("proto", "tcp"),
                                    ]);
                                    if let Some(p) = ports {
                                        e = e.with_attribute(("ports", p.as_str()));
                                    }
                                    e.write_empty()?;
                                }
                                Ok(())
                            })?;
                    }
                    let mut listed = a.listed.clone();
                    listed.sort_by_key(|r| r.port);
                    for r in listed {
                        w.create_element("port")
                            .with_attributes([
                                ("protocol", "tcp"),
                                ("portid", r.port.unwrap_or(0).to_string().as_str()),
                            ])
                            .write_inner_content(|w| {
                                w.create_element("state")
                                    .with_attributes([
                                        ("state", nmap_state(r.state())),
                                        ("reason", reason(r)),
                                        ("reason_ttl", r.ttl.to_string().as_str()),
                                    ])
                                    .write_empty()?;
                                match host
                                    .services
                                    .iter()
                                    .find(|s| s.protocol.is_tcp() && Some(s.port) == r.port)
                                {
                                    Some(sv) if sv.service.is_some() => probed_service(w, sv)?,
                                    _ => {
                                        if let Some(name) = &r.service {
                                            service(w, name)?;
                                        }
                                    }
                                }
                                Ok(())
                            })?;
                    }
                }
                if let Some(first) = dns.first() {
                    w.create_element("port")
                        .with_attributes([("protocol", "udp"), ("portid", "53")])
                        .write_inner_content(|w| {
                            w.create_element("state")
                                .with_attributes([
                                    ("state", "open"),
                                    ("reason", "udp-response"),
                                    ("reason_ttl", first.ttl.to_string().as_str()),
                                ])
                                .write_empty()?;
                            match host
                                .services
                                .iter()
                                .find(|s| !s.protocol.is_tcp() && s.port == 53)
                            {
                                Some(sv) => probed_service(w, sv)?,
                                None => service(w, "domain")?,
                            }
                            for r in &dns {
                                w.create_element("script")
                                    .with_attributes([
                                        ("id", "dns-answer"),
                                        ("output", crate::text::one_line(&dns_text(r)).as_ref()),
                                    ])
                                    .write_empty()?;
                            }
                            Ok(())
                        })?;
                }
                Ok(())
            })?;
            Ok(())
        })?;
    Ok(())
}

fn service<W: Write>(w: &mut Writer<W>, name: &str) -> io::Result<()> {
    // method="table", conf="3": named from nmap-services, as nmap without
    // -sV does.
    w.create_element("service")
        .with_attributes([("name", name), ("method", "table"), ("conf", "3")])
        .write_empty()?;
    Ok(())
}

/// A service identification found (`-sV`): nmap's attributes in nmap's
/// order, and its CPE as a child element.
fn probed_service<W: Write>(w: &mut Writer<W>, sv: &ServiceResult) -> io::Result<()> {
    let one = |s: &Option<String>| s.as_deref().map(|v| crate::text::one_line(v).into_owned());
    let conf = sv.conf.min(10).to_string();
    let mut attrs: Vec<(&str, String)> = vec![("name", one(&sv.service).unwrap_or_default())];
    for (k, v) in [
        ("product", one(&sv.product)),
        ("version", one(&sv.version)),
        ("extrainfo", one(&sv.extrainfo)),
        ("hostname", one(&sv.hostname)),
        ("tunnel", sv.tunnel.as_ref().map(|_| "ssl".to_string())),
    ] {
        if let Some(v) = v {
            attrs.push((k, v));
        }
    }
    attrs.push(("method", sv.method.clone()));
    attrs.push(("conf", conf));
    let e = w
        .create_element("service")
        .with_attributes(attrs.iter().map(|(k, v)| (*k, v.as_str())));
    match &sv.cpe {
        Some(cpe) => {
            e.write_inner_content(|w| {
                w.create_element("cpe")
                    .write_text_content(quick_xml::events::BytesText::new(
                        &crate::text::one_line(cpe),
                    ))?;
                Ok(())
            })?;
        }
        None => {
            e.write_empty()?;
        }
    }
    Ok(())
}

/// What a DNS answer said, in one line.
fn dns_text(r: &ScanResult) -> String {
    let (rcode, n, recursion) = r.dns_answer().unwrap_or_default();
    let name = match rcode {
        0 => "NOERROR",
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        _ => "other",
    };

    format!(
        "question {}; rcode {rcode} ({name}); {n} answer{}; recursion {}",
        r.question.as_deref().unwrap_or("?"),
        if n == 1 { "" } else { "s" },
        if recursion {
            "available"
        } else {
            "not available"
        }
    )
}
