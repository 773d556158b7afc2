//! Command-line definitions (clap) and their translation into library calls.

/// `eprintln!` that never panics: a closed or full standard error (`2>&1 |
/// true`) changes neither what a command does nor its exit code.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

mod analyze;
mod craft;
mod merge;
mod report;
mod scan;
mod scope;
mod targets;
mod verify;

use std::ffi::OsString;
use std::io::Write;

use clap::{Parser, Subcommand};

use crate::error::{Error, exit};

pub use targets::TargetArgs;

/// Authorized active network probing: scope-gated scans, capture analysis, packet crafting.
#[derive(Debug, Parser)]
#[command(name = "sonde", version, about, long_about = None, after_help = EXIT_CODES)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

const EXIT_CODES: &str =
    "Exit codes: 0 ok, 1 runtime failure, 2 usage or input error, 3 refused by scope.";

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Work with scope files: the authorization every packet needs.
    #[command(subcommand)]
    Scope(scope::ScopeCommand),
    /// Analyze pcap/pcapng captures into a JSON report.
    Analyze(analyze::AnalyzeArgs),
    /// Scan what a scope file authorizes: SYN, ICMP echo and DNS probes, with evidence.
    Scan(Box<scan::ScanArgs>),
    /// Build one exact packet from a layered spec: dump it, write it to a pcap, or send it within scope.
    Craft(Box<craft::CraftArgs>),
    /// Check a run's evidence again: every recorded hash, the audit chain, the scope file.
    Verify(verify::VerifyArgs),
    /// Join the run directories of a sharded scan (--shard I/N --seed S) into one, each verified first.
    Merge(merge::MergeArgs),
    /// Write an Ed25519 key pair for signed runs: NAME.key (private) and NAME.pub.
    Keygen {
        /// NAME: writes NAME.key and NAME.pub (neither may exist).
        #[arg(long = "output", short = 'o', value_name = "NAME")]
        output: std::path::PathBuf,
    },
    /// Render a scan or analysis report as one self-contained HTML page.
    Report(report::ReportArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        #[arg(value_name = "SHELL")]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), e.g. `sonde man > /usr/local/share/man/man1/sonde.1`.
    Man,
}

/// nmap spells some options with one dash and two letters (`-iL`,
/// `-oX`); clap knows only one-letter short options, so those are
/// rewritten first.
pub(crate) fn nmap_aliases(args: Vec<OsString>) -> Vec<OsString> {
    args.into_iter()
        .map(|a| {
            let long = match a.to_str() {
                Some("-iL") => "--input-list",
                Some("-oX") => "--output-xml",
                Some("-oG") => "--output-grepable",
                Some("-oL") => "--output-list",
                Some("-oJ") => "--output-json",
                Some("-sV") => "--service-version",
                _ => return a,
            };
            OsString::from(long)
        })
        .collect()
}

/// Run the command line `args` (including the program name); returns the exit code.
pub fn main(args: Vec<OsString>) -> i32 {
    let cli = match Cli::try_parse_from(nmap_aliases(args)) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    exit::OK
                }
                _ => exit::INPUT,
            };
        }
    };
    let stdout = std::io::stdout().lock();
    // Names from scope files and captures reach the terminal escaped;
    // analyze's JSON on stdout keeps JSON's own escapes.
    let mut out: Box<dyn Write> = match &cli.command {
        // Documents, not terminal text: a JSON report, a completion
        // script, a man page.
        Command::Analyze(_) | Command::Completions { .. } | Command::Man => Box::new(stdout),
        // An HTML page on standard output is a document, not terminal text.
        Command::Report(a) if a.writes_stdout_document() => Box::new(stdout),
        // A scan's -oX - and the like: the document is on standard output
        // (its summary goes to standard error, escaped). The run is done
        // whatever the reader does: a closed pipe changes no exit code.
        Command::Scan(a) if a.exports_to_stdout() => {
            Box::new(crate::text::PipeTolerant::new(stdout))
        }
        // Terminal text: the exit code is the outcome's (a refusal is 3,
        // a failed check 1), also when the reader has gone.
        _ => Box::new(crate::text::VisibleWriter(crate::text::PipeTolerant::new(
            stdout,
        ))),
    };
    match run(cli, &mut out) {
        Ok(code) => code,
        // The reader went away (`| head`): nothing is wrong, as for
        // coreutils and ripgrep.
        Err(e) if e.is_broken_pipe() => exit::OK,
        Err(e) => {
            let _ = out.flush();
            say!("sonde: error: {}", crate::text::visible(&e.to_string()));
            e.exit_code()
        }
    }
}

/// Run a parsed command line, writing its output to `out`.
pub fn run(cli: Cli, out: &mut dyn Write) -> Result<i32, Error> {
    match cli.command {
        Command::Scope(cmd) => scope::run(cmd, out),
        Command::Analyze(args) => analyze::run(args, out),
        Command::Scan(args) => scan::run_scan(*args, out),
        Command::Craft(args) => craft::run_craft(*args, out),
        Command::Verify(args) => verify::run_verify(args, out),
        Command::Merge(args) => merge::run_merge(args, out),
        Command::Keygen { output } => {
            let (secret, public, key) = crate::evidence::signature::write_key_pair(&output)
                .map_err(|e| Error::usage(e, "name a key pair that does not exist yet"))?;
            writeln!(
                out,
                "wrote {} (private: keep it on the machine that signs, readable by its owner only) and {} (public: give it to whoever verifies); key {}",
                secret.display(),
                public.display(),
                crate::evidence::signature::fingerprint(&key)
            )
            .map_err(write_err)?;
            Ok(exit::OK)
        }
        Command::Report(args) => report::run_report(args, out),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "sonde", out);
            Ok(exit::OK)
        }
        Command::Man => {
            use clap::CommandFactory;
            clap_mangen::Man::new(Cli::command())
                .render(out)
                .map_err(write_err)?;
            Ok(exit::OK)
        }
    }
}

/// The longest any duration flag may be: an hour. Longer values are typos
/// (1e20) that would overflow the clock or hang a run.
pub(crate) const MAX_SECONDS: f64 = 3600.0;

/// Check a duration flag before anything is sent: finite, 0 or more, at
/// most [`MAX_SECONDS`].
pub(crate) fn seconds(flag: &str, value: f64, example: &str) -> Result<f64, Error> {
    if value.is_finite() && (0.0..=MAX_SECONDS).contains(&value) {
        Ok(value)
    } else {
        Err(Error::usage(
            format!("{flag} {value}: expected seconds from 0 to {MAX_SECONDS}"),
            example,
        ))
    }
}

/// Map an output error (a closed pipe, a full disk) to a runtime error.
pub(crate) fn write_err(e: std::io::Error) -> Error {
    Error::runtime("cannot write output", e)
}

/// A finished run's anchors, the last lines of `scan` and `merge`: the key
/// that signed it, if one did, and the audit log's final head. With the
/// report's hash printed before, what to keep outside the directory:
/// nothing in it can then be rewritten unseen.
pub(crate) fn print_anchors(
    out: &mut dyn std::io::Write,
    dir: &std::path::Path,
    signed_by: Option<&str>,
    audit_head: &str,
    audit_records: u64,
) -> Result<(), crate::error::Error> {
    if let Some(fingerprint) = signed_by {
        writeln!(
            out,
            "signed with ed25519 key {fingerprint}: {}/{}",
            dir.display(),
            crate::evidence::signature::SIGNATURE
        )
        .map_err(write_err)?;
    }
    writeln!(
        out,
        "audit log head {audit_head} after {audit_records} records"
    )
    .map_err(write_err)
}
