//! `sonde scan`'s text: the events while it runs, the summary of its
//! outcome, and the dry run, as nmap and masscan users read them.

use std::io::Write;

use super::ScanArgs;
use crate::cli::write_err;
use crate::error::{Error, exit};
use crate::scan::preview::preview;
use crate::scan::request::{DEFAULT_WAIT, Prepared, ScanRequest};
use crate::scan::session::{Ended, SessionOutcome};
use crate::scope::ProbeKind;

/// Draws a scan's events on standard error: the progress line (only on a
/// terminal: `ScanConfig::progress`) and notes. A closed or full stderr
/// changes nothing: the scan and its exit code go on.
pub(in crate::cli) struct StderrObserver;

impl crate::scan::progress::Observer for StderrObserver {
    fn event(&self, event: &crate::scan::progress::ScanEvent) {
        use crate::scan::progress::ScanEvent;
        let text = match event {
            ScanEvent::Progress {
                probes,
                total,
                rate,
                open,
                other_replies,
                eta_seconds,
                pass,
            } => format!(
                "\r{:5.1}% {probes}/{total} probes, {rate:.0} pps achieved, {open} open ports, {other_replies} other replies, ETA {eta_seconds:.0} s (pass {})   ",
                100.0 * *probes as f64 / (*total).max(1) as f64,
                pass + 1
            ),
            ScanEvent::RateShortfall(short) => format!(
                "\rsonde: note: sending at {:.0} pps, below 90% of the {:.0} pps asked for, for 5 s; the limit is {}\n",
                short.achieved,
                short.requested,
                short.stage.describe()
            ),
            ScanEvent::SendingDone {
                probes,
                wait_seconds,
            } => format!(
                "\r{probes} probes sent, waiting {wait_seconds:.1} s for late replies{}\n",
                " ".repeat(30)
            ),
            ScanEvent::PassAdded { pass, new_answers } => format!(
                "\rsonde: note: pass {} found {new_answers} new answers: the link loses packets; retry pass {pass} follows\n",
                pass - 1
            ),
            ScanEvent::Note(text) => format!("\rsonde: {text}\n"),
        };
        note(&text);
    }
}

/// Write `text` to standard error; a closed or full stderr is ignored (it
/// must never change what the run does or its exit code).
fn note(text: &str) {
    let _ = std::io::stderr().write_all(text.as_bytes());
}

/// The run's outcome as text: totals, hosts down, a line per host with
/// findings (what is not shown, as nmap's "Not shown: 998 closed ports"),
/// where the evidence is, then why the run ended early, if it did.
pub(super) fn summarize(o: &SessionOutcome, out: &mut dyn Write) -> Result<(), Error> {
    let c = &o.counters;
    writeln!(
        out,
        "scanned {} probes ({} sent at {:.0} pps of {:.0} asked, {} replies, {} invalid, {} kernel drops) under {} ({})",
        o.probes,
        c.sent,
        o.rate.achieved,
        o.rate.requested,
        c.matched,
        c.invalid,
        c.kernel_drops,
        o.engagement_id,
        o.scope_path.display()
    )
    .map_err(write_err)?;
    if let Some(r) = &o.resumed {
        writeln!(
            out,
            "segment {} of a resumed run: {} probes in all since {}",
            r.segment, r.probes_in_all, r.started
        )
        .map_err(write_err)?;
    }
    for d in &o.down {
        let shown: Vec<&str> = d.addresses.iter().take(8).map(String::as_str).collect();
        writeln!(
            out,
            "{} hosts down ({}, not probed): {}{}",
            d.count,
            d.reason,
            shown.join(", "),
            if d.addresses.len() > shown.len() {
                ", ..."
            } else {
                ""
            }
        )
        .map_err(write_err)?;
    }
    let mut quiet_hosts = 0usize;
    for h in &o.hosts {
        let open: Vec<String> = h.open_ports().map(|p| p.to_string()).collect();
        let up = h.answers_ping();
        // DNS servers that answered the scan's questions are findings too
        // (a DNS-only scan has no open ports to speak of).
        let dns: Vec<(u8, u16)> = h
            .results
            .iter()
            .filter_map(|r| match r.verdict {
                crate::probe::Verdict::DnsAnswer { rcode, answers, .. } => Some((rcode, answers)),
                _ => None,
            })
            .collect();
        if open.is_empty() && !up && dns.is_empty() {
            quiet_hosts += 1;
            continue;
        }
        let mut parts = Vec::new();
        if o.kinds.contains(&ProbeKind::Syn) {
            parts.push(if open.is_empty() {
                "no open ports".to_string()
            } else {
                format!("open {}", open.join(","))
            });
        }
        if up {
            parts.push("answers ping".to_string());
        }
        if !dns.is_empty() {
            let noerror = dns.iter().filter(|(rcode, _)| *rcode == 0).count();
            parts.push(format!(
                "answers DNS ({} of {} questions NOERROR, {} records)",
                noerror,
                dns.len(),
                dns.iter().map(|(_, n)| u64::from(*n)).sum::<u64>()
            ));
        }
        let not_shown: Vec<String> = h
            .not_shown
            .iter()
            .map(|f| format!("{} {} {} ({})", f.count, f.probe, f.state, f.reason))
            .collect();
        if !not_shown.is_empty() {
            parts.push(format!("not shown: {}", not_shown.join(", ")));
        }
        writeln!(out, "{}: {}", h.address, parts.join("; ")).map_err(write_err)?;
        // What runs on the open ports, as nmap -sV lists it.
        for sv in &h.services {
            writeln!(out, "  {}", crate::text::visible(&service_line(sv))).map_err(write_err)?;
            for f in &sv.findings {
                let sev = match f.severity {
                    crate::results::Severity::High => "HIGH",
                    crate::results::Severity::Medium => "MEDIUM",
                    crate::results::Severity::Low => "LOW",
                };
                writeln!(out, "    {sev}: {}", crate::text::visible(&f.summary))
                    .map_err(write_err)?;
            }
        }
    }
    if quiet_hosts > 0 {
        writeln!(
            out,
            "{quiet_hosts} hosts answered with closed, filtered or unreachable ports only (folded in report.json)"
        )
        .map_err(write_err)?;
    }
    writeln!(
        out,
        "evidence in {}/ (report.json sha256 {}); check it with: sonde verify {}",
        o.dir.display(),
        o.report_sha256,
        o.dir.display()
    )
    .map_err(write_err)?;
    crate::cli::print_anchors(
        out,
        &o.dir,
        o.signed_by.as_deref(),
        &o.audit_head,
        o.audit_records,
    )?;
    match &o.ended {
        Ended::Complete => {}
        Ended::OutputFailed(e) => say!(
            "sonde: {e}: stopped sending after {} probes; what was written before is kept (the pcap up to its last whole record)",
            o.probes
        ),
        Ended::WindowClosed(r) => say!(
            "sonde: stopped by the scope after {} probes: {r}; the pcap, results and report hold everything sent and received",
            o.probes
        ),
        Ended::BudgetSpent(r) => {
            say!("sonde: note: retries stopped early: {r} (the first pass was sent whole)")
        }
        Ended::Interrupted => say!(
            "sonde: interrupted: stopped sending after {} probes; the pcap, results and report hold everything sent and received",
            o.probes
        ),
    }
    if c.kernel_drops > 0 && !matches!(o.ended, Ended::OutputFailed(_)) {
        say!(
            "sonde: warning: the kernel dropped {} packets the sniffer could not take in time; results may be incomplete (try a lower --rate)",
            c.kernel_drops
        );
    }
    Ok(())
}

/// `scan --dry-run`: the library's [`preview`] as text; exit 3 when the
/// scan would be refused.
pub(super) fn dry_run(
    args: &ScanArgs,
    request: &ScanRequest,
    out: &mut dyn Write,
) -> Result<i32, Error> {
    let p = preview(request, args.at, &crate::net::link::KernelNetwork)?;
    let Prepared {
        file,
        gate,
        targets,
        ports,
        refusals,
    } = &p.prepared;
    let scope = gate.scope();
    let e = &scope.engagement;
    let plural = |n: usize, one: &str, many: &str| if n == 1 { one } else { many }.to_string();
    let mut lines = vec![
        "dry run: nothing is sent and nothing is written".to_string(),
        format!(
            "scope {} (sha256 {}), engagement {}, valid {} to {}",
            file.path.display(),
            file.sha256,
            e.id,
            crate::scope::gate_time(e.not_before),
            crate::scope::gate_time(e.not_after)
        ),
        format!(
            "rate {:.0} pps (the scope's ceiling {:.0}); probe budget {}",
            gate.rate(),
            scope.max_rate,
            scope
                .max_probes
                .map_or("none".to_string(), |m| format!("{m} probes per run"))
        ),
    ];
    let ranges: Vec<String> = targets
        .ranges()
        .map(|r| format!("  {r} ({})", r.len()))
        .collect();
    let excluded: Vec<String> = request.exclude.ranges().map(|r| r.to_string()).collect();
    lines.push(format!(
        "targets: {} address{} in {} range{}{}",
        p.addresses(),
        if p.addresses() == 1 { "" } else { "es" },
        ranges.len(),
        plural(ranges.len(), "", "s"),
        if excluded.is_empty() {
            String::new()
        } else {
            format!(" (excluded: {})", excluded.join(", "))
        }
    ));
    lines.extend(ranges);
    match &p.links {
        Ok(groups) => {
            lines.push(format!("links: {} (one run drives them all)", groups.len()));
            for g in groups {
                for r in g.targets.ranges() {
                    lines.push(format!("  {r} via {}", g.describe()));
                }
            }
        }
        Err(e) => lines.push(format!("links: the scan would fail: {e}")),
    }
    let addresses = p.addresses();
    let per_kind: Vec<String> = p
        .kinds
        .iter()
        .map(|k| match (k.kind, k.probes) {
            (ProbeKind::Syn, Some(n)) => {
                format!("syn {addresses} x {} ports ({ports}) = {n}", k.per_address)
            }
            (ProbeKind::Icmp, Some(n)) => format!("icmp {addresses} = {n}"),
            (ProbeKind::Dns, Some(n)) => {
                format!("dns {addresses} x {} questions = {n}", k.per_address)
            }
            _ => format!(
                "service: one connection per open port found (at most {addresses} x {} ports)",
                k.per_address
            ),
        })
        .collect();
    lines.push(format!(
        "probes: {}; {} in all (shard {}/{})",
        per_kind.join("; "),
        p.total,
        request.shard.index + 1,
        request.shard.count
    ));
    let wait = match request.wait {
        Some(_) => format!("{} s", request.wait_seconds()),
        None => format!("up to {DEFAULT_WAIT} s (less once the round trips are known)"),
    };
    lines.push(format!(
        "time: about {} for the first pass at {:.0} pps; at most {} more for {} retry pass{} (only unanswered probes are sent again); then {wait} for late replies; on-link targets are first asked for by ARP/NDP (up to 0.85 s)",
        duration(p.first_pass_seconds),
        gate.rate(),
        duration(p.first_pass_seconds * f64::from(request.retries)),
        request.retries,
        plural(request.retries as usize, "", "es"),
    ));
    if !args.exports().is_empty() {
        lines.push("-oX/-oG/-oL/-oJ: not written in a dry run".into());
    }
    lines.extend(refusals.iter().map(|r| format!("refused: {r}")));
    lines.extend(p.exclude_hint.clone());
    lines.push(if p.allowed() {
        "the scope allows every probe: `sonde scan` without --dry-run sends them".into()
    } else {
        format!(
            "{} refusal{}: the scan would send nothing (exit 3)",
            refusals.len(),
            plural(refusals.len(), "", "s")
        )
    });
    for l in lines {
        writeln!(out, "{l}").map_err(write_err)?;
    }
    Ok(if p.allowed() { exit::OK } else { exit::REFUSED })
}

/// Seconds as people read them: `0.3 s`, `42 s`, `1 h 5 min`.
fn duration(secs: f64) -> String {
    if secs < 10.0 {
        format!("{secs:.1} s")
    } else if secs < 120.0 {
        format!("{secs:.0} s")
    } else if secs < 7200.0 {
        format!("{:.0} min", secs / 60.0)
    } else {
        format!(
            "{:.0} h {:.0} min",
            (secs / 3600.0).floor(),
            (secs % 3600.0) / 60.0
        )
    }
}

/// One service as `nmap -sV` lists it: `22/tcp ssh OpenSSH 9.2p1
/// (protocol 2.0)`, with TLS and the title when there are.
fn service_line(s: &crate::results::ServiceResult) -> String {
    let mut line = format!(
        "{}/tcp {}{}",
        s.port,
        if s.tunnel.is_some() { "ssl/" } else { "" },
        s.service.as_deref().unwrap_or("unknown")
    );
    for part in [&s.product, &s.version].into_iter().flatten() {
        line.push(' ');
        line.push_str(part);
    }
    if let Some(x) = &s.extrainfo {
        line.push_str(&format!(" ({x})"));
    }
    if let Some(t) = &s.tls {
        line.push_str(&format!("; {}", t.version));
        if let Some(c) = t.chain.first() {
            line.push_str(&format!(
                ", certificate {} ({} days left{})",
                c.subject,
                c.days_left,
                if c.self_signed { ", self-signed" } else { "" }
            ));
        }
    }
    if let Some(t) = s.http.as_ref().and_then(|h| h.title.as_ref()) {
        line.push_str(&format!("; title {t:?}"));
    }
    if s.product.is_none()
        && let Some(b) = &s.banner
    {
        line.push_str(&format!(
            "; said {:?}",
            b.chars().take(80).collect::<String>()
        ));
    }
    if let Some(e) = &s.error {
        line.push_str(&format!("; {e}"));
    }
    line
}
