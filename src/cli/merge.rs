//! `sonde merge SHARD_DIR... -o DIR`: flags to a [`MergeRequest`], its
//! outcome to text (the merge itself is `scan::merge`).

use std::io::Write;
use std::path::PathBuf;

use clap::Args;

use super::write_err;
use crate::error::{Error, exit};
use crate::scan::merge::{MergeRequest, merge};

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The shards' run directories (every shard 1..N of one scan, once).
    #[arg(value_name = "SHARD_DIR", required = true, num_args = 1..)]
    pub shards: Vec<PathBuf>,

    /// The merged run directory (created; it must be new or empty).
    #[arg(long = "output-dir", short = 'o', value_name = "DIR", required = true)]
    pub output_dir: PathBuf,

    /// Every shard must be signed by one of these Ed25519 public keys
    /// (PEM, from `sonde keygen`; repeat for several machines).
    #[arg(long = "trust", value_name = "PUBKEY", num_args = 1..)]
    pub trust: Vec<PathBuf>,

    /// Shard I (as in its --shard I/N) must be signed by exactly this
    /// public key: one key per scanner, so one scanner's key cannot vouch
    /// for another's shard (repeat, or give several).
    #[arg(long = "trust-shard", value_name = "I=PUBKEY", num_args = 1..)]
    pub trust_shard: Vec<String>,

    /// Sign the merged run with this key.
    #[arg(long = "sign-key", value_name = "FILE")]
    pub sign_key: Option<PathBuf>,
}

pub fn run_merge(args: MergeArgs, out: &mut dyn Write) -> Result<i32, Error> {
    let mut trusted = Vec::new();
    for p in &args.trust {
        trusted.push(crate::evidence::signature::load_public_key(p).map_err(|e| {
            Error::usage(
                format!("--trust {e}"),
                "give public keys from sonde keygen (NAME.pub)",
            )
        })?);
    }
    let mut shard_keys = Vec::new();
    for given in &args.trust_shard {
        let hint = "write --trust-shard I=PUBKEY, I as in the shard's --shard I/N, e.g. --trust-shard 2=scanner-2.pub";
        let (index, path) = given
            .split_once('=')
            .ok_or_else(|| Error::usage(format!("--trust-shard {given:?}: no '='"), hint))?;
        let index: u64 = index
            .trim()
            .parse()
            .ok()
            .filter(|&i| i >= 1)
            .ok_or_else(|| {
                Error::usage(
                    format!("--trust-shard {given:?}: {index:?} is not a shard number (1, 2, ...)"),
                    hint,
                )
            })?;
        if shard_keys.iter().any(|(i, _)| *i == index) {
            return Err(Error::usage(
                format!("--trust-shard names shard {index} twice"),
                "give each shard one key",
            ));
        }
        let key = crate::evidence::signature::load_public_key(std::path::Path::new(path)).map_err(
            |e| {
                Error::usage(
                    format!("--trust-shard {index}={e}"),
                    "give public keys from sonde keygen (NAME.pub)",
                )
            },
        )?;
        shard_keys.push((index, key));
    }
    let sign_key = args
        .sign_key
        .as_deref()
        .map(super::scan::load_sign_key)
        .transpose()?;
    let o = merge(
        MergeRequest {
            shards: args.shards,
            output_dir: args.output_dir,
            trusted,
            shard_keys,
            sign_key,
        },
        &super::scan::StderrObserver,
    )?;
    writeln!(
        out,
        "merged {} shards of one scan ({} probes, {} hosts answered, {} open ports) into {}/ (report.json sha256 {}); check it with: sonde verify {}",
        o.shards,
        o.probes,
        o.hosts,
        o.open_ports,
        o.dir.display(),
        o.report_sha256,
        o.dir.display()
    )
    .map_err(write_err)?;
    super::print_anchors(
        out,
        &o.dir,
        o.signed_by.as_deref(),
        &o.audit_head,
        o.audit_records,
    )?;
    Ok(exit::OK)
}
