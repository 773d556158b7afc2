//! Target and port arguments shared by every command that names targets.

use std::path::PathBuf;

use clap::Args;

use crate::error::Error;
use crate::targets::spec::{parse_target_list, split_target_port};
use crate::targets::{PortSet, ResolvedTarget, Resolver, TargetSpec};

#[derive(Debug, Clone, Args)]
pub struct TargetArgs {
    /// Targets: addresses, CIDR blocks, ranges (198.18.1.1-50), octet ranges (198.18.1-2.*), host names; TARGET:PORT where a port is meant.
    #[arg(value_name = "TARGET")]
    pub targets: Vec<String>,

    /// Read targets from FILE (nmap's -iL; '-' for standard input): white-space separated, '#' starts a comment.
    #[arg(long = "input-list", value_name = "FILE")]
    pub input_list: Option<PathBuf>,

    /// Ports: 22,80,1000-2000; '-' (as in -p-) for all 65535.
    #[arg(
        short = 'p',
        long = "ports",
        value_name = "PORTS",
        allow_hyphen_values = true,
        conflicts_with = "top_ports"
    )]
    pub ports: Option<String>,

    /// The N most common TCP ports, in nmap's frequency order (1-1000).
    #[arg(long = "top-ports", value_name = "N")]
    pub top_ports: Option<usize>,

    /// Never resolve names (nmap's -n): a host name is an error, so no DNS
    /// query leaves this machine because of the target list.
    #[arg(short = 'n', long = "no-resolve")]
    pub no_resolve: bool,

    /// Leave these targets out (nmap's --exclude: comma-separated, any
    /// target syntax). Exclusions only narrow what is probed.
    #[arg(long, value_name = "TARGETS", value_delimiter = ',')]
    pub exclude: Vec<String>,

    /// Leave the targets listed in FILE out (as -iL's format).
    #[arg(long = "excludefile", value_name = "FILE")]
    pub exclude_file: Option<PathBuf>,
}

/// One target with the port it named, if any.
#[derive(Debug, Clone)]
pub struct TargetWithPort {
    pub target: ResolvedTarget,
    pub port: Option<u16>,
}

impl TargetArgs {
    /// The port list from -p or --top-ports, if either was given.
    pub fn port_set(&self) -> Result<Option<PortSet>, Error> {
        if let Some(p) = &self.ports {
            return PortSet::parse(p).map(Some).map_err(|mut e| {
                e.message = format!("in -p {p:?}: {}", e.message);
                Error::Ports(e)
            });
        }
        match self.top_ports {
            Some(n) => PortSet::top(n).map(Some).map_err(|m| {
                Error::usage(m, "--top-ports 100 scans nmap's 100 most common TCP ports")
            }),
            None => Ok(None),
        }
    }

    /// The addresses --exclude and --excludefile name (IPv4-mapped IPv6
    /// as IPv4), resolved like targets; empty when neither was given.
    pub fn excluded(&self, resolver: &dyn Resolver) -> Result<crate::targets::IpSet, Error> {
        let mut specs: Vec<(String, TargetSpec)> = Vec::new();
        for t in &self.exclude {
            specs.push((t.clone(), TargetSpec::parse(t)?));
        }
        if let Some(path) = &self.exclude_file {
            let text = read_list(path, &format!("exclude list {}", path.display()))?;
            specs.extend(parse_target_list(&text, &path.display().to_string())?);
        }
        // Collected, then sorted and merged at once: an insert per entry
        // made 65,536 scattered entries take 10 s (issue 26).
        let mut parts = Vec::new();
        for (text, spec) in specs {
            if let (true, TargetSpec::Host(h)) = (self.no_resolve, &spec) {
                return Err(Error::usage(
                    format!("{h:?} (in --exclude) is a host name, and -n forbids resolving it"),
                    "give its address instead, or drop -n",
                ));
            }
            for t in spec.resolve(&text, resolver)? {
                parts.extend(t.range.canonical_parts());
            }
        }
        Ok(parts.into_iter().collect())
    }

    /// Whether any target source was given (targets or -iL), even one that
    /// turned out empty: "no targets" means "everything the scope allows"
    /// only when none was.
    pub fn has_source(&self) -> bool {
        !self.targets.is_empty() || self.input_list.is_some()
    }

    /// Every target from the command line and -iL, resolved. An -iL file
    /// without a target is an error, never "no targets given".
    pub fn resolve(
        &self,
        resolver: &dyn Resolver,
        allow_port: bool,
    ) -> Result<Vec<TargetWithPort>, Error> {
        let mut specs = Vec::new();
        for t in &self.targets {
            let (host, port) = if allow_port {
                split_target_port(t)?
            } else {
                (t.as_str(), None)
            };
            specs.push((t.clone(), TargetSpec::parse(host)?, port));
        }
        if let Some(path) = &self.input_list {
            let text = read_list(path, &format!("target list {}", path.display()))?;
            let listed = parse_target_list(&text, &path.display().to_string())?;
            if listed.is_empty() {
                return Err(Error::usage(
                    format!(
                        "target list {} holds no target (it is empty or only comments)",
                        path.display()
                    ),
                    "list targets in the file, one or more per line; an empty list never means the whole scope",
                ));
            }
            for (word, spec) in listed {
                specs.push((word, spec, None));
            }
        }
        let mut out = Vec::with_capacity(specs.len());
        for (text, spec, port) in specs {
            if let (true, TargetSpec::Host(h)) = (self.no_resolve, &spec) {
                return Err(Error::usage(
                    format!("{h:?} is a host name, and -n forbids resolving it"),
                    "give its address instead, or drop -n",
                ));
            }
            for target in spec.resolve(&text, resolver)? {
                out.push(TargetWithPort { target, port });
            }
        }
        Ok(out)
    }
}

/// The most a target or exclude list may hold: 256 MiB (about ten million
/// lines). A list from `/dev/zero` was read until memory ran out.
pub const MAX_LIST_BYTES: u64 = 256 << 20;

/// Read a target or exclude list (`-` is standard input), at most
/// [`MAX_LIST_BYTES`].
fn read_list(path: &std::path::Path, what: &str) -> Result<String, Error> {
    use std::io::Read;
    let source: Box<dyn Read> = if path == std::path::Path::new("-") {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::fs::File::open(path).map_err(|source| Error::Input {
            what: what.to_string(),
            source,
        })?)
    };
    read_bounded(source, MAX_LIST_BYTES, what)
}

/// Read `source` as UTF-8 text of at most `limit` bytes; more is an input
/// error naming the limit.
pub(crate) fn read_bounded(
    source: impl std::io::Read,
    limit: u64,
    what: &str,
) -> Result<String, Error> {
    use std::io::Read;
    let mut bytes = Vec::new();
    source
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| Error::Input {
            what: what.to_string(),
            source,
        })?;
    if bytes.len() as u64 > limit {
        return Err(Error::usage(
            format!("{what} is over {} MiB: not read further", limit >> 20),
            "split it, or narrow it to the ranges it stands for",
        ));
    }
    String::from_utf8(bytes).map_err(|e| {
        Error::usage(
            format!(
                "{what} is not UTF-8 text (byte {} is not)",
                e.utf8_error().valid_up_to()
            ),
            "lists are text: addresses, ranges and names, one or more per line",
        )
    })
}
