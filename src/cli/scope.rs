//! `sonde scope check FILE [TARGET[:PORT]]...`

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Subcommand};
use time::OffsetDateTime;

use super::targets::TargetArgs;
use super::write_err;
use crate::error::{Error, exit};
use crate::scope::{Decision, HARD_DENY, ProbeKind, Rule, ScopeGate};
use crate::targets::{Family, PortSet, SystemResolver};

#[derive(Debug, Subcommand)]
pub enum ScopeCommand {
    /// Validate a scope file, summarize it, and judge targets against it (exit 3 if any is refused).
    Check(CheckArgs),
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The scope file (TOML, see docs/scope-format.md).
    pub file: PathBuf,

    #[command(flatten)]
    pub targets: TargetArgs,

    /// Probe kind to judge: syn, icmp or dns (default: syn when a port is given, else icmp).
    #[arg(long = "probe", value_name = "KIND", value_parser = clap::value_parser!(String))]
    pub probe: Option<String>,

    /// Judge at this instant instead of now (RFC 3339, e.g.
    /// 2026-12-01T09:00:00+01:00): check a scope before its window opens,
    /// or see what it allowed on a given day.
    #[arg(long, value_name = "TIME", value_parser = parse_instant)]
    pub at: Option<OffsetDateTime>,
}

/// `--at TIME`: an RFC 3339 instant with its offset, to the second.
pub(crate) fn parse_instant(s: &str) -> Result<OffsetDateTime, String> {
    let t = OffsetDateTime::parse(s.trim(), &time::format_description::well_known::Rfc3339)
        .map_err(|e| {
            format!(
                "{s:?} is not an instant ({e}): give RFC 3339 with an offset, \
                 e.g. 2026-12-01T09:00:00Z or 2026-12-01T09:00:00+01:00"
            )
        })?;
    Ok(t.to_offset(time::UtcOffset::UTC)
        .replace_nanosecond(0)
        .expect("0 is a valid nanosecond"))
}

pub fn run(cmd: ScopeCommand, out: &mut dyn Write) -> Result<i32, Error> {
    match cmd {
        ScopeCommand::Check(args) => check(args, out),
    }
}

fn check(args: CheckArgs, out: &mut dyn Write) -> Result<i32, Error> {
    let file = crate::scope::ScopeFile::load(&args.file)?;
    let probe: Option<ProbeKind> = match &args.probe {
        None => None,
        Some(p) => Some(
            p.parse()
                .map_err(|m: String| Error::usage(m, "--probe syn, --probe icmp or --probe dns"))?,
        ),
    };
    let ports = args.targets.port_set()?;
    let given = args.targets.resolve(&SystemResolver, true)?;
    // Exclusions only narrow: each target is judged without them, and a
    // target they cover entirely is shown as excluded.
    let excluded = args.targets.excluded(&SystemResolver)?;
    let mut targets = Vec::with_capacity(given.len());
    let mut wholly_excluded = Vec::new();
    for t in given {
        if excluded.is_empty() {
            targets.push(t);
            continue;
        }
        let mut rest: crate::targets::IpSet =
            t.target.range.canonical_parts().into_iter().collect();
        rest.subtract(&excluded);
        if rest.is_empty() {
            wholly_excluded.push(t.target.to_string());
        }
        for range in rest.ranges() {
            let mut part = t.clone();
            part.target.range = range;
            part.target.host = None;
            targets.push(part);
        }
    }
    let now = args.at.unwrap_or_else(|| {
        OffsetDateTime::now_utc()
            .replace_nanosecond(0)
            .expect("0 is a valid nanosecond")
    });
    let gate = ScopeGate::with_clock(file.scope.clone(), None, Arc::new(move || now))
        .map_err(Error::from)?;
    summarize(&file, &gate, now, out).map_err(write_err)?;

    let mut refused = 0usize;
    if !targets.is_empty() {
        writeln!(
            out,
            "\ntargets (judged at {}):",
            crate::scope::gate_time(now)
        )
        .map_err(write_err)?;
    }
    for t in &targets {
        // What `scan` would send: SYN probes unless --probe says otherwise,
        // to the ports named or the scan's default ports (DNS: 53).
        let kind = probe.unwrap_or(ProbeKind::Syn);
        let port_list: Option<PortSet> = match kind {
            ProbeKind::Icmp => None,
            ProbeKind::Syn | ProbeKind::Service => Some(
                t.port
                    .map(PortSet::single)
                    .or_else(|| ports.clone())
                    .unwrap_or_else(|| file.scope.default_syn_ports()),
            ),
            ProbeKind::Dns => Some(
                t.port
                    .map(PortSet::single)
                    .or_else(|| ports.clone())
                    .unwrap_or_else(|| PortSet::single(53)),
            ),
        };
        let label = t.target.to_string();
        let what = match &port_list {
            // A default list (nmap's top 1,000) is counted, not spelled out.
            Some(p) if p.to_string().len() > 60 => format!("{label} {} ports/{kind}", p.len()),
            Some(p) => format!("{label} port {p}/{kind}"),
            None => format!("{label} ({kind})"),
        };
        // A refusal names the target, the port and the kind itself: it is
        // printed alone, so nothing appears twice.
        match crate::scope::judge_ports(
            &gate,
            &t.target.range,
            port_list.as_ref(),
            kind,
            &label,
            now,
        ) {
            Decision::Allowed { rule } => writeln!(out, "  ALLOWED  {what}: by {rule}"),
            Decision::Refused(r) => {
                refused += 1;
                writeln!(out, "  REFUSED  {r}")
            }
        }
        .map_err(write_err)?;
    }
    for t in &wholly_excluded {
        writeln!(
            out,
            "  EXCLUDED {t}: every address is in --exclude/--excludefile"
        )
        .map_err(write_err)?;
    }
    if refused > 0 {
        writeln!(out, "\n{refused} of {} targets refused", targets.len()).map_err(write_err)?;
        let judged: crate::targets::IpSet = targets
            .iter()
            .flat_map(|t| t.target.range.canonical_parts())
            .collect();
        if let Some(note) = file.scope.exclude_hint(&judged) {
            writeln!(out, "{note}").map_err(write_err)?;
        }
        return Ok(exit::REFUSED);
    }
    Ok(exit::OK)
}

fn count(n: u128) -> String {
    if n >= 1 << 20 && n.is_power_of_two() {
        format!("2^{}", n.trailing_zeros())
    } else if n == u128::MAX {
        "2^128".to_string()
    } else {
        n.to_string()
    }
}

fn summarize(
    file: &crate::scope::ScopeFile,
    gate: &ScopeGate,
    now: OffsetDateTime,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let s = &file.scope;
    let e = &s.engagement;
    writeln!(
        out,
        "scope {} is valid (sha256 {})",
        file.path.display(),
        file.sha256
    )?;
    writeln!(
        out,
        "engagement: {} for {}, authorized by {}, contact {}",
        e.id, e.client, e.authorized_by, e.contact
    )?;
    let state = match gate.check_window(now) {
        Ok(()) => format!("open now, closes in {}", human_duration(e.not_after - now)),
        Err(r) => format!("CLOSED: {r}"),
    };
    writeln!(
        out,
        "window: {} to {} ({state})",
        crate::scope::gate_time(e.not_before),
        crate::scope::gate_time(e.not_after)
    )?;
    if let Some(n) = &e.notes {
        writeln!(out, "notes: {}", n.trim())?;
    }
    let budget = s
        .max_probes
        .map_or("no probe budget (max_probes not set)".to_string(), |n| {
            format!("probe budget: at most {n} probes per run")
        });
    writeln!(out, "limits: at most {} packets/s; {budget}", s.max_rate)?;
    writeln!(out, "probe kinds: {}", s.probes)?;
    writeln!(out, "allowed (after deny rules and the hard deny):")?;
    for kind in s.probes.iter() {
        let addrs = s.allowed_addresses(kind);
        let ports = if kind.has_port() {
            let p = s.allowed_ports(kind);
            format!(", {} ports ({})", p.len(), abbreviate(&p.to_string()))
        } else {
            String::new()
        };
        writeln!(
            out,
            "  {kind:<4}  {} IPv4 and {} IPv6 addresses{ports}",
            count(addrs.count(Family::V4)),
            count(addrs.count(Family::V6))
        )?;
    }
    for (title, rules) in [
        ("allow rules", &s.allow),
        ("deny rules (beat allow rules)", &s.deny),
    ] {
        if rules.is_empty() {
            continue;
        }
        writeln!(out, "{title}:")?;
        for r in rules.iter() {
            writeln!(out, "  {}", describe(r))?;
        }
    }
    let hard: Vec<&str> = HARD_DENY.iter().map(|(n, _)| *n).collect();
    writeln!(out, "hard deny (no scope can lift): {}", hard.join(", "))?;
    Ok(())
}

fn describe(r: &Rule) -> String {
    let ports = r.ports.as_ref().map_or("all ports".to_string(), |p| {
        format!("ports {}", abbreviate(&p.to_string()))
    });
    let probes = r.probes.map_or("all kinds".to_string(), |p| p.to_string());
    let mut s = format!("{r}: {}; {ports}; {probes}", r.target_text.join(", "));
    if let Some(reason) = &r.reason {
        s.push_str(&format!("; reason: {reason}"));
    }
    s
}

fn abbreviate(s: &str) -> String {
    if s.len() > 60 {
        let cut = s[..60].rfind(',').unwrap_or(60);
        format!("{},...", &s[..cut])
    } else {
        s.to_string()
    }
}

fn human_duration(d: time::Duration) -> String {
    let secs = d.whole_seconds().max(0);
    match secs {
        s if s >= 86_400 => format!("{} days", s / 86_400),
        s if s >= 3_600 => format!("{} hours", s / 3_600),
        s => format!("{} minutes", s / 60),
    }
}
