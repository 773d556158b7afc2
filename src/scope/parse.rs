//! TOML → [`Scope`], with every error placed at a line and column.

use std::fmt;
use std::ops::Range;

use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use toml::Spanned;

use super::{Engagement, ProbeKind, ProbeKinds, Rule, RuleKind, Scope};
use crate::targets::{AddrRange, IpSet, PortSet, TargetSpec};

/// A scope file that cannot be used, and where and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScopeError {
    pub origin: String,
    /// From 1.
    pub line: usize,
    /// From 1, in characters.
    pub column: usize,
    pub message: String,
    pub hint: String,
    /// The offending line of the file, for display.
    pub source_line: String,
    /// Width of the offending text on that line, for the caret.
    pub width: usize,
}

impl fmt::Display for ScopeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{}:{}:{}: {}",
            self.origin, self.line, self.column, self.message
        )?;
        if !self.source_line.is_empty() {
            let gutter = self.line.to_string().len();
            writeln!(f, "{:gutter$} |", "")?;
            writeln!(f, "{} | {}", self.line, self.source_line)?;
            writeln!(
                f,
                "{:gutter$} | {}{}",
                "",
                " ".repeat(self.column.saturating_sub(1)),
                "^".repeat(self.width.max(1))
            )?;
        }
        write!(f, "hint: {}", self.hint)
    }
}

impl std::error::Error for ScopeError {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScope {
    engagement: RawEngagement,
    limits: RawLimits,
    probes: Option<Spanned<Vec<Spanned<String>>>>,
    spoof_sources: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    allow: Vec<Spanned<RawRule>>,
    #[serde(default)]
    deny: Vec<Spanned<RawRule>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEngagement {
    id: String,
    client: String,
    authorized_by: String,
    contact: String,
    not_before: Spanned<toml::value::Datetime>,
    not_after: Spanned<toml::value::Datetime>,
    notes: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    max_rate: Spanned<toml::Value>,
    max_probes: Option<Spanned<toml::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: Option<String>,
    targets: Spanned<Vec<Spanned<String>>>,
    ports: Option<Spanned<toml::Value>>,
    probes: Option<Spanned<Vec<Spanned<String>>>>,
    reason: Option<String>,
}

struct Ctx<'a> {
    text: &'a str,
    origin: &'a str,
}

impl Ctx<'_> {
    fn error(
        &self,
        span: Range<usize>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> ScopeError {
        let start = span.start.min(self.text.len());
        let before = &self.text[..start];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = self.text[line_start..start].chars().count() + 1;
        let line_end = self.text[line_start..]
            .find('\n')
            .map_or(self.text.len(), |i| line_start + i);
        let source_line = self.text[line_start..line_end]
            .trim_end_matches('\r')
            .to_string();
        let end = span.end.clamp(start, line_end);
        ScopeError {
            origin: self.origin.to_string(),
            line,
            column,
            message: message.into(),
            hint: hint.into(),
            width: self.text[start..end].chars().count(),
            source_line,
        }
    }

    fn line_of(&self, offset: usize) -> usize {
        self.text[..offset.min(self.text.len())]
            .matches('\n')
            .count()
            + 1
    }
}

const DOC_HINT: &str =
    "docs/scope-format.md describes every key; scopes/example-engagement.toml is a full example";

pub(super) fn parse(text: &str, origin: &str) -> Result<Scope, ScopeError> {
    let cx = Ctx { text, origin };
    let raw: RawScope = toml::from_str(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        let message = e.message().trim().to_string();
        let top_level = ["probes", "spoof_sources", "allow", "deny", "engagement", "limits"];
        // The unknown key's own name: "unknown field `x`, expected ...".
        let unknown = message
            .strip_prefix("unknown field `")
            .and_then(|rest| rest.split_once('`'))
            .map(|(name, _)| name);
        let hint = if unknown.is_some_and(|k| top_level.contains(&k)) {
            "a key written after a [table] header belongs to that table: move top-level keys such as probes above the first [table]".to_string()
        } else if message.contains("unknown field") {
            format!("check the key's spelling; {DOC_HINT}")
        } else if message.contains("missing field") {
            "a scope needs [engagement] (id, client, authorized_by, contact, not_before, not_after), \
             [limits] (max_rate) and at least one [[allow]] table with targets"
                .to_string()
        } else if message.contains("i128") || message.contains("out of range") || message.contains("overflow") {
            return cx.error(
                span,
                "this number is too large (whole numbers in a scope file go up to 9223372036854775807)",
                "max_rate is packets per second and max_probes a count of probes, e.g. max_rate = 1000",
            );
        } else if message.contains("invalid type") {
            format!("the value has the wrong type; {DOC_HINT}")
        } else {
            "this is not valid TOML: strings need quotes, dates are written 2026-01-31T00:00:00Z".to_string()
        };
        cx.error(span, message, hint)
    })?;

    let e = &raw.engagement;
    let not_before = datetime(&cx, &e.not_before, "not_before")?;
    let not_after = datetime(&cx, &e.not_after, "not_after")?;
    if not_after <= not_before {
        return Err(cx.error(
            e.not_after.span(),
            format!(
                "not_after ({}) is not after not_before ({})",
                e.not_after.get_ref(),
                e.not_before.get_ref()
            ),
            "the validity window runs from not_before to not_after; swap or correct them",
        ));
    }
    for (name, value) in [("id", &e.id), ("authorized_by", &e.authorized_by)] {
        if value.trim().is_empty() {
            return Err(cx.error(
                0..0,
                format!("engagement {name} is empty"),
                "say who authorized this work and under which id",
            ));
        }
    }

    let max_rate = match raw.limits.max_rate.get_ref() {
        toml::Value::Integer(i) if *i > 0 => *i as f64,
        toml::Value::Float(f) if f.is_finite() && *f >= super::gate::MIN_RATE => *f,
        other => {
            return Err(cx.error(
                raw.limits.max_rate.span(),
                format!(
                    "max_rate must be a positive number of packets per second, at least {}, not {other}",
                    super::gate::MIN_RATE
                ),
                "for example max_rate = 1000",
            ));
        }
    };
    let max_probes = match &raw.limits.max_probes {
        None => None,
        Some(v) => match v.get_ref() {
            toml::Value::Integer(i) if *i > 0 => Some(*i as u64),
            other => {
                return Err(cx.error(
                    v.span(),
                    format!("max_probes must be a positive whole number, not {other}"),
                    "leave it out for no limit on the number of probes",
                ));
            }
        },
    };

    let probes = match &raw.probes {
        // `service` (connections to services) only where a scope names it.
        None => ProbeKinds::crafted(),
        Some(list) => kinds(&cx, list)?,
    };

    if raw.allow.is_empty() {
        let span = text.find("allow").map_or(0..0, |i| i..i + 5);
        return Err(cx.error(
            span,
            "the scope allows nothing: there is no [[allow]] table",
            "scopes are default deny; add an [[allow]] table with the targets you are authorized to probe",
        ));
    }
    // Each rule's line is that of its own [[allow]]/[[deny]] header, found
    // in one pass over the file (not one pass per rule).
    let (mut allow_lines, mut deny_lines) = (Vec::new(), Vec::new());
    for (n, l) in text.lines().enumerate() {
        if let Some((name, _)) = l
            .trim_start()
            .strip_prefix("[[")
            .and_then(|rest| rest.split_once("]]"))
        {
            match name.trim() {
                "allow" => allow_lines.push(n + 1),
                "deny" => deny_lines.push(n + 1),
                _ => {}
            }
        }
    }
    let allow = raw
        .allow
        .iter()
        .enumerate()
        .map(|(i, r)| rule(&cx, r, RuleKind::Allow, i, probes, allow_lines.get(i)))
        .collect::<Result<Vec<_>, _>>()?;
    let deny = raw
        .deny
        .iter()
        .enumerate()
        .map(|(i, r)| rule(&cx, r, RuleKind::Deny, i, probes, deny_lines.get(i)))
        .collect::<Result<Vec<_>, _>>()?;

    let mut spoof_sources = IpSet::new();
    if let Some(list) = &raw.spoof_sources {
        let allowed = IpSet::union_of(allow.iter().map(|r| &r.targets));
        for t in list.get_ref() {
            let range = target(&cx, t)?;
            let set: IpSet = range.canonical_parts().into_iter().collect();
            if let Some(outside) = set.ranges().find_map(|r| allowed.first_missing(r)) {
                return Err(cx.error(
                    t.span(),
                    format!(
                        "spoof source {:?} is not inside the scope's allow rules ({outside} is not allowed)",
                        t.get_ref()
                    ),
                    "a spoofed source receives the replies: list only addresses the scope also authorizes",
                ));
            }
            spoof_sources.union_with(&set);
        }
    }

    Ok(Scope {
        engagement: Engagement {
            id: e.id.clone(),
            client: e.client.clone(),
            authorized_by: e.authorized_by.clone(),
            contact: e.contact.clone(),
            not_before,
            not_after,
            notes: e.notes.clone(),
        },
        max_rate,
        max_probes,
        probes,
        allow,
        deny,
        spoof_sources,
    })
}

fn datetime(
    cx: &Ctx,
    value: &Spanned<toml::value::Datetime>,
    key: &str,
) -> Result<OffsetDateTime, ScopeError> {
    let dt = value.get_ref();
    let hint = format!("write a full date, time and UTC offset, e.g. {key} = 2026-01-31T00:00:00Z");
    if dt.date.is_none() || dt.time.is_none() || dt.offset.is_none() {
        return Err(cx.error(
            value.span(),
            format!("{key} = {dt} is not a point in time: it needs a date, a time and an offset"),
            hint,
        ));
    }
    OffsetDateTime::parse(&dt.to_string(), &Rfc3339).map_err(|err| {
        cx.error(
            value.span(),
            format!("{key} = {dt} is not a valid time: {err}"),
            hint,
        )
    })
}

fn kinds(cx: &Ctx, list: &Spanned<Vec<Spanned<String>>>) -> Result<ProbeKinds, ScopeError> {
    let mut set = ProbeKinds::default();
    for item in list.get_ref() {
        let kind: ProbeKind = item.get_ref().parse().map_err(|m: String| {
            cx.error(item.span(), m, "probes = [\"syn\", \"icmp\", \"dns\"]")
        })?;
        set.insert(kind);
    }
    if set.is_empty() {
        return Err(cx.error(
            list.span(),
            "the probe list is empty",
            "leave the key out to allow every kind the scope allows, or name them",
        ));
    }
    Ok(set)
}

fn rule(
    cx: &Ctx,
    raw: &Spanned<RawRule>,
    kind: RuleKind,
    index: usize,
    scope_probes: ProbeKinds,
    header_line: Option<&usize>,
) -> Result<Rule, ScopeError> {
    let r = raw.get_ref();
    let table = match kind {
        RuleKind::Allow => "allow",
        RuleKind::Deny => "deny",
    };
    let line = header_line.map_or_else(|| cx.line_of(raw.span().start), |l| *l);
    if r.targets.get_ref().is_empty() {
        return Err(cx.error(
            r.targets.span(),
            format!("{table}[{index}] has an empty targets list"),
            "list addresses, CIDR blocks or ranges",
        ));
    }
    // IPv4-mapped and -compatible IPv6 blocks are kept as the IPv4
    // addresses they stand for, as the gate judges them.
    let mut ranges = Vec::new();
    let mut target_text = Vec::new();
    for t in r.targets.get_ref() {
        ranges.extend(target(cx, t)?.canonical_parts());
        target_text.push(t.get_ref().clone());
    }
    let targets: IpSet = ranges.into_iter().collect();
    let ports = match &r.ports {
        None => None,
        Some(v) => Some(ports(cx, v)?),
    };
    let probes = match &r.probes {
        None => None,
        Some(list) => {
            let k = kinds(cx, list)?;
            if let Some(extra) = k.iter().find(|k| !scope_probes.contains(*k)) {
                return Err(cx.error(
                    list.span(),
                    format!("{table}[{index}] names probe kind {extra}, which the scope's top-level probes list does not allow"),
                    "add it to the top-level probes list or remove it here",
                ));
            }
            Some(k)
        }
    };
    Ok(Rule {
        kind,
        index,
        name: r.name.clone(),
        line,
        targets,
        target_text,
        ports,
        probes,
        reason: r.reason.clone(),
    })
}

fn target(cx: &Ctx, t: &Spanned<String>) -> Result<AddrRange, ScopeError> {
    match TargetSpec::parse(t.get_ref()) {
        Ok(TargetSpec::Range(r)) => Ok(r),
        Ok(TargetSpec::Octets(_)) => Err(cx.error(
            t.span(),
            format!("{:?} is an octet range; scope files list blocks and ranges", t.get_ref()),
            "write it as CIDR blocks or first-last ranges: what a scope allows must read at a glance",
        )),
        Ok(TargetSpec::Host(h)) => Err(cx.error(
            t.span(),
            format!("{h:?} is a host name; scope files list addresses"),
            "a name can resolve elsewhere tomorrow: write the address or block it stands for",
        )),
        Err(e) => Err(cx.error(
            t.span(),
            format!("bad target {:?}: {}", t.get_ref(), e.message),
            e.hint,
        )),
    }
}

fn ports(cx: &Ctx, v: &Spanned<toml::Value>) -> Result<PortSet, ScopeError> {
    let hint =
        "ports = \"22,80,1000-2000\" or ports = [22, 80, \"1000-2000\"]; ports run from 1 to 65535";
    let mut set = PortSet::new();
    // One item: a port number 1-65535, or a string of ports and closed
    // ranges. Open ranges (nmap's -1024) and "-" are not taken here: in a
    // scope file they read like a negative number or a typo.
    let item = |text: &str, span: Range<usize>| -> Result<PortSet, ScopeError> {
        let mut set = PortSet::new();
        for part in text.split(',') {
            let p = part.trim();
            let open = p.starts_with('-') || p.ends_with('-');
            if p.is_empty() || open {
                return Err(cx.error(
                    span.clone(),
                    format!("port range {p:?} is not a port or a closed range"),
                    "write both ends of a range, e.g. \"1-1024\"",
                ));
            }
            let parsed = PortSet::parse(p).map_err(|e| {
                cx.error(
                    span.clone(),
                    format!("port {:?}: {}", e.item, e.message),
                    hint,
                )
            })?;
            set.union_with(&parsed);
        }
        Ok(set)
    };
    match v.get_ref() {
        toml::Value::String(s) if s.trim().is_empty() => {}
        toml::Value::String(s) => set = item(s, v.span())?,
        toml::Value::Array(items) => {
            let spans = array_item_spans(cx.text, v.span());
            for (i, value) in items.iter().enumerate() {
                let span = spans.get(i).cloned().unwrap_or_else(|| v.span());
                match value {
                    toml::Value::Integer(n) if (1..=65535).contains(n) => {
                        set.insert(*n as u16, *n as u16)
                    }
                    toml::Value::Integer(n) => {
                        return Err(cx.error(span, format!("port {n} is outside 1-65535"), hint));
                    }
                    toml::Value::String(s) if !s.trim().is_empty() => {
                        set.union_with(&item(s, span)?)
                    }
                    other => {
                        return Err(cx.error(
                            span,
                            format!(
                                "port list item {other} is neither a port number nor a range string"
                            ),
                            hint,
                        ));
                    }
                }
            }
        }
        other => {
            return Err(cx.error(
                v.span(),
                format!("ports must be a string or a list, not {other}"),
                hint,
            ));
        }
    }
    if set.is_empty() {
        return Err(cx.error(
            v.span(),
            "the port list is empty",
            "leave ports out to allow every port, or list them",
        ));
    }
    Ok(set)
}

/// The byte spans of the items of the TOML array at `span`, in order, for
/// errors that point at one item (toml gives spans for the array only).
fn array_item_spans(text: &str, span: Range<usize>) -> Vec<Range<usize>> {
    let bytes = text.as_bytes();
    let end = span.end.min(bytes.len());
    let mut out = Vec::new();
    let mut i = span.start;
    if bytes.get(i) != Some(&b'[') {
        return out;
    }
    i += 1;
    while i < end {
        match bytes[i] {
            b' ' | b'\t' | b'\r' | b'\n' | b',' => i += 1,
            b'#' => {
                while i < end && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b']' => break,
            q @ (b'"' | b'\'') => {
                let start = i;
                i += 1;
                while i < end && bytes[i] != q {
                    i += if q == b'"' && bytes[i] == b'\\' { 2 } else { 1 };
                }
                i = (i + 1).min(end);
                out.push(start..i);
            }
            _ => {
                let start = i;
                while i < end
                    && !matches!(bytes[i], b',' | b']' | b' ' | b'\t' | b'\r' | b'\n' | b'#')
                {
                    i += 1;
                }
                out.push(start..i);
            }
        }
    }
    out
}
