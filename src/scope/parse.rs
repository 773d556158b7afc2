//! TOML → [`Scope`], with every error placed at a line and column.

use std::fmt;
use std::ops::Range;

use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use toml::Spanned;

use super::{Engagement, ProbeKind, ProbeKinds, Rule, RuleKind, Scope};
use crate::target::{AddrRange, IpSet, PortSet, TargetSpec};

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
        let top_level = ["probes", "allow", "deny", "engagement", "limits"];
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
        toml::Value::Float(f) if f.is_finite() && *f > 0.0 => *f,
        other => {
            return Err(cx.error(
                raw.limits.max_rate.span(),
                format!("max_rate must be a positive number of packets per second, not {other}"),
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
        None => ProbeKinds::all(),
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
    let allow = raw
        .allow
        .iter()
        .enumerate()
        .map(|(i, r)| rule(&cx, r, RuleKind::Allow, i, probes))
        .collect::<Result<Vec<_>, _>>()?;
    let deny = raw
        .deny
        .iter()
        .enumerate()
        .map(|(i, r)| rule(&cx, r, RuleKind::Deny, i, probes))
        .collect::<Result<Vec<_>, _>>()?;

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
) -> Result<Rule, ScopeError> {
    let r = raw.get_ref();
    let table = match kind {
        RuleKind::Allow => "allow",
        RuleKind::Deny => "deny",
    };
    // A rule's line is that of its own `[[allow]]`/`[[deny]]` header: the
    // index-th such header in the file.
    let line = cx
        .text
        .lines()
        .enumerate()
        .filter(|(_, l)| {
            let l = l.trim_start();
            l.strip_prefix("[[")
                .and_then(|rest| rest.split_once("]]"))
                .is_some_and(|(name, _)| name.trim() == table)
        })
        .nth(index)
        .map_or_else(|| cx.line_of(raw.span().start), |(n, _)| n + 1);
    if r.targets.get_ref().is_empty() {
        return Err(cx.error(
            r.targets.span(),
            format!("{table}[{index}] has an empty targets list"),
            "list addresses, CIDR blocks or ranges",
        ));
    }
    let mut targets = IpSet::new();
    let mut target_text = Vec::new();
    for t in r.targets.get_ref() {
        let range = target(cx, t)?;
        targets.insert(range);
        target_text.push(t.get_ref().clone());
    }
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
    let mut text = String::new();
    match v.get_ref() {
        toml::Value::String(s) => text.push_str(s),
        toml::Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    text.push(',');
                }
                match item {
                    toml::Value::Integer(n) => text.push_str(&n.to_string()),
                    toml::Value::String(s) if !s.contains(',') => text.push_str(s),
                    other => {
                        return Err(cx.error(
                            v.span(),
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
    if text.trim().is_empty() {
        return Err(cx.error(
            v.span(),
            "the port list is empty",
            "leave ports out to allow every port, or list them",
        ));
    }
    PortSet::parse(&text)
        .map_err(|e| cx.error(v.span(), format!("port {:?}: {}", e.item, e.message), hint))
}
