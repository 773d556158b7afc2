//! Merging the run directories of one sharded
//! scan (`--shard I/N --seed S` on N machines) joined into one.
//!
//! Nothing is merged that does not hold: every shard must verify (as
//! `sonde verify`), have finished (an interrupted shard is resumed first),
//! and record the same scan identity but for its shard (scope hash,
//! targets, ports, probe kinds, DNS questions, retries, seed, the size of
//! the whole index space); every shard 1..N must be given exactly once.
//! The merge writes a run directory of its own: the shards' results one
//! after the other, a report whose hosts are folded across shards and whose
//! counters are summed (each shard's times and rate kept), the analysis of
//! every shard's capture as one capture set, a manifest (`merge.json`)
//! naming each shard's report SHA-256 and audit head, and an audit log.
//! `sonde verify` on it checks the merge and every shard still present.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::json;

use crate::error::{Error, exit};
use crate::evidence::run_dir::{self, RunDir, RunDirError};
use crate::results::{
    FileRecord, Identity, MergeManifest, MergeRecord, RateReport, ScanReport, ShardRecord,
};
use crate::scan::hosts::HostTable;
use crate::scan::progress::Observer;
use crate::scan::session::{
    Audit, analyze_captures, audit, create_in, file_written, lock_run_dir, now_rfc3339, sign_run,
    write_report,
};

/// The merge's manifest.
pub const MANIFEST: &str = "merge.json";

/// One shard, read and checked.
struct Shard {
    dir: PathBuf,
    /// The shard's report, its hosts taken out (into `hosts`).
    report: ScanReport,
    identity: Identity,
    hosts: HostTable,
    report_sha256: String,
    audit_head: String,
    index: u64,
    count: u64,
}

/// The identity fields a shard may differ in: only its shard.
fn identity_without_shard(id: &Identity) -> Identity {
    Identity {
        shard: String::new(),
        ..id.clone()
    }
}

fn read_shard(dir: &Path, trusted: &[ed25519_dalek::VerifyingKey]) -> Result<Shard, Error> {
    let name = dir.display().to_string();
    if !dir.is_dir() {
        return Err(Error::usage(
            format!("{name}: no such run directory"),
            "give each shard's run directory (its -o DIR)",
        ));
    }
    let anchors = crate::evidence::verify::Anchors {
        trusted_keys: trusted.to_vec(),
        ..Default::default()
    };
    let findings = crate::evidence::verify::verify_anchored(dir, &anchors)
        .map_err(|e| Error::runtime(format!("cannot read {name}"), e))?;
    if let Some(f) = findings.iter().find(|f| f.status.is_failure()) {
        // A shard signed by a key not trusted is not damaged: it is
        // someone else's (issue 26 called the message wrong).
        let why = if f.subject.ends_with(crate::evidence::signature::SIGNATURE) {
            "a shard not signed by a trusted key is not merged"
        } else {
            "a damaged shard is not merged"
        };
        return Err(Error::usage(
            format!(
                "shard {name} does not verify ({}: {}): {why}",
                f.subject, f.detail
            ),
            format!("sonde verify {name} names every problem"),
        ));
    }
    let report_path = dir.join(run_dir::REPORT);
    let bytes = std::fs::read(&report_path).map_err(|source| Error::Input {
        what: format!("the report {}", report_path.display()),
        source,
    })?;
    let mut report: ScanReport = serde_json::from_slice(&bytes).map_err(|e| {
        Error::usage(
            format!("{} is not a scan report: {e}", report_path.display()),
            "give scan run directories",
        )
    })?;
    drop(bytes);
    // The hosts, folded as the scan folded them.
    let hosts = HostTable::from_hosts(std::mem::take(&mut report.hosts));
    let Some(identity) = report.identity.clone() else {
        return Err(Error::usage(
            format!(
                "{name}: its report records no scan identity (made before sonde recorded one, or not a scan)"
            ),
            "scan the shards again with this version of sonde",
        ));
    };
    if report.interrupted
        || report
            .segments
            .last()
            .is_some_and(|s| s.stopped_at.is_some())
    {
        return Err(Error::usage(
            format!("shard {name} stopped before it sent every probe: its share is incomplete"),
            format!("resume it first: sonde scan --resume {name}"),
        ));
    }
    let (index, count) = identity
        .shard
        .split_once('/')
        .and_then(|(i, n)| Some((i.parse::<u64>().ok()?, n.parse::<u64>().ok()?)))
        .ok_or_else(|| {
            Error::usage(
                format!("{name}: its identity names no shard I/N"),
                "give scan run directories",
            )
        })?;
    let (report_sha256, _) = crate::evidence::file_sha256(&report_path)
        .map_err(|e| Error::runtime(format!("cannot read {}", report_path.display()), e))?;
    let audit_text =
        std::fs::read_to_string(dir.join(run_dir::AUDIT)).map_err(|source| Error::Input {
            what: format!("the audit log of {name}"),
            source,
        })?;
    let (_, audit_head) = crate::evidence::verify_chain(&audit_text);
    Ok(Shard {
        dir: dir.to_path_buf(),
        report,
        identity,
        hosts,
        report_sha256,
        audit_head,
        index,
        count,
    })
}

/// Check that `shards` are every shard of one scan, once.
fn check_set(shards: &[Shard]) -> Result<(), Error> {
    let first = &shards[0];
    let want = identity_without_shard(&first.identity);
    for s in &shards[1..] {
        let got = identity_without_shard(&s.identity);
        if got != want {
            // Named by member, as the report writes them.
            let want = serde_json::to_value(&want).unwrap_or_default();
            let got = serde_json::to_value(&got).unwrap_or_default();
            let field = want
                .as_object()
                .into_iter()
                .flatten()
                .find(|(k, v)| got.get(k.as_str()) != Some(v))
                .map_or("identity".to_string(), |(k, _)| k.clone());
            return Err(Error::usage(
                format!(
                    "{} and {} are shards of different scans: their {field} differs ({} / {})",
                    first.dir.display(),
                    s.dir.display(),
                    want[&field],
                    got[&field]
                ),
                "merge the shards of one scan: the same scope, targets, ports, probes and --seed",
            ));
        }
        if s.count != first.count {
            return Err(Error::usage(
                format!(
                    "{} is shard {}/{} and {} shard {}/{}: one scan has one shard count",
                    first.dir.display(),
                    first.index,
                    first.count,
                    s.dir.display(),
                    s.index,
                    s.count
                ),
                "merge the shards of one scan",
            ));
        }
    }
    let n = first.count;
    for i in 1..=n {
        let given: Vec<&Shard> = shards.iter().filter(|s| s.index == i).collect();
        match given.len() {
            0 => {
                return Err(Error::usage(
                    format!("shard {i}/{n} missing: the merge would leave a gap"),
                    format!("give the run directories of all {n} shards"),
                ));
            }
            1 => {}
            _ => {
                return Err(Error::usage(
                    format!(
                        "shard {i}/{n} given twice ({} and {})",
                        given[0].dir.display(),
                        given[1].dir.display()
                    ),
                    "give each shard once",
                ));
            }
        }
    }
    if shards.len() as u64 != n {
        return Err(Error::usage(
            format!("{} run directories for {n} shards", shards.len()),
            "give each shard once",
        ));
    }
    Ok(())
}

/// A shard bound to a key (`--trust-shard I=KEY`) is signed by that key;
/// one not bound is signed by a `--trust` key (verify checked that the
/// signature holds under the key it names, one of those given).
fn check_shard_key(
    shard: &Shard,
    trusted: &[ed25519_dalek::VerifyingKey],
    shard_keys: &[(u64, ed25519_dalek::VerifyingKey)],
) -> Result<(), Error> {
    use crate::evidence::signature::{RunSignature, SIGNATURE, fingerprint};
    if shard_keys.is_empty() {
        return Ok(());
    }
    let name = shard.dir.display();
    let bound = shard_keys
        .iter()
        .find(|(i, _)| *i == shard.index)
        .map(|(_, k)| k);
    // Verify read it already: a regular file inside the run.
    let signed_by = crate::evidence::open_regular(&shard.dir.join(SIGNATURE), false)
        .and_then(|f| {
            use std::io::Read;
            let mut b = Vec::new();
            f.take(1 << 16).read_to_end(&mut b).map(|_| b)
        })
        .ok()
        .and_then(|b| serde_json::from_slice::<RunSignature>(&b).ok())
        .and_then(|s| s.check().ok());
    match (bound, signed_by) {
        (Some(want), Some(got)) if got == *want => Ok(()),
        (Some(want), got) => Err(Error::usage(
            format!(
                "shard {}/{} ({name}) is signed by {}, not by the key trusted for shard {} ({}): a shard is merged only under its own scanner's key",
                shard.index,
                shard.count,
                got.map_or_else(
                    || "no key".to_string(),
                    |k| format!("ed25519 key {}", fingerprint(&k))
                ),
                shard.index,
                fingerprint(want)
            ),
            "give each shard's public key with --trust-shard I=PUBKEY, I as in its --shard I/N",
        )),
        (None, Some(got)) if trusted.contains(&got) => Ok(()),
        (None, _) => Err(Error::usage(
            format!(
                "shard {}/{} ({name}): no key is trusted for it (--trust-shard names other shards, and no --trust key signed it)",
                shard.index, shard.count
            ),
            "give its public key with --trust-shard I=PUBKEY",
        )),
    }
}

/// What to merge, where, trusting and signing with which keys.
pub struct MergeRequest {
    /// The shards' run directories (every shard 1..N of one scan, once).
    pub shards: Vec<PathBuf>,
    /// The merged run directory (created; new or empty).
    pub output_dir: PathBuf,
    /// Every shard must be signed by one of these keys (none, and no
    /// `shard_keys`: unsigned shards are merged too).
    pub trusted: Vec<ed25519_dalek::VerifyingKey>,
    /// Shard I (from 1, as `--shard I/N`) must be signed by exactly this
    /// key: with one key per scanner, a scanner's key cannot vouch for
    /// another's shard. Shards without one here take `trusted`.
    pub shard_keys: Vec<(u64, ed25519_dalek::VerifyingKey)>,
    /// Signs the merged run.
    pub sign_key: Option<ed25519_dalek::SigningKey>,
}

/// A merge done: where, and what the caller shows.
pub struct MergeOutcome {
    pub dir: PathBuf,
    pub shards: usize,
    pub probes: u64,
    /// Hosts that answered, and their open ports.
    pub hosts: usize,
    pub open_ports: usize,
    pub report_sha256: String,
    pub audit_head: String,
    pub audit_records: u64,
    /// The fingerprint of the key that signed the merged run.
    pub signed_by: Option<String>,
}

/// Merge the shards of one scan into a run directory of its own; a set
/// that does not hold (a shard that does not verify, another scan's, one
/// missing or given twice) is refused before anything is created.
pub fn merge(request: MergeRequest, observer: &dyn Observer) -> Result<MergeOutcome, Error> {
    let MergeRequest {
        shards: shard_dirs,
        output_dir,
        trusted,
        shard_keys,
        sign_key,
    } = request;
    // Verified against every key given; each shard's own key is checked
    // once its report says which shard it is.
    let any_key: Vec<_> = trusted
        .iter()
        .chain(shard_keys.iter().map(|(_, k)| k))
        .copied()
        .collect();
    let mut shards = Vec::new();
    for d in &shard_dirs {
        let shard = read_shard(d, &any_key)?;
        check_shard_key(&shard, &trusted, &shard_keys)?;
        shards.push(shard);
    }
    check_set(&shards)?;
    shards.sort_by_key(|s| s.index);
    // Hosts folded across the shards.
    let mut hosts = HostTable::new();
    for s in &mut shards {
        hosts.absorb(std::mem::take(&mut s.hosts));
    }

    let dir =
        RunDir::create(Some(&output_dir), crate::clock::now_nanos()).map_err(|e| match e {
            RunDirError::Io(..) => Error::runtime("cannot create the merged run directory", e),
            _ => Error::usage(e.to_string(), "name a new or empty directory with -o"),
        })?;
    // One writer per run directory: a second merge into an empty -o DIR
    // at the same moment is refused, naming this one.
    let _writer = lock_run_dir(dir.path())?;
    let mut log: Audit = crate::evidence::AuditLog::new(create_in(&dir, run_dir::AUDIT)?);
    let started = now_rfc3339();
    let manifest_shards: Vec<ShardRecord> = shards
        .iter()
        .map(|s| {
            let r = &s.report;
            ShardRecord {
                shard: format!("{}/{}", s.index, s.count),
                run_directory: std::fs::canonicalize(&s.dir)
                    .unwrap_or_else(|_| s.dir.clone())
                    .display()
                    .to_string(),
                report_sha256: s.report_sha256.clone(),
                audit_head: s.audit_head.clone(),
                pcap_sha256: r.file_with_role("pcap").map(|f| f.sha256.clone()),
                started: r.started.clone(),
                finished: r.finished.clone(),
                host: r.host.clone(),
                operator: r.operator.clone(),
                probes: r.probes,
                rate: r.rate.clone(),
            }
        })
        .collect();
    audit(
        &mut log,
        "merge_started",
        crate::evidence::provenance(json!({
            "run_directory": dir.path().display().to_string(),
            "shards": manifest_shards,
        })),
    )?;

    // The results, shard after shard.
    {
        let mut results = std::io::BufWriter::new(create_in(&dir, run_dir::RESULTS)?);
        for s in &shards {
            let p = s.dir.join(run_dir::RESULTS);
            let mut f = std::fs::File::open(&p).map_err(|source| Error::Input {
                what: p.display().to_string(),
                source,
            })?;
            std::io::copy(&mut f, &mut results)
                .map_err(|e| Error::runtime("cannot write the merged results", e))?;
        }
        results
            .flush()
            .map_err(|e| Error::runtime("cannot write the merged results", e))?;
    }
    let (results_sha, results_size) = file_written(&mut log, &dir, run_dir::RESULTS)?;

    // The manifest.
    let first = &shards[0].report;
    let identity = Identity {
        shard: "1/1".to_string(),
        ..shards[0].identity.clone()
    };
    let manifest = MergeManifest {
        identity: identity.clone(),
        shards: manifest_shards.clone(),
    };
    {
        let mut f = create_in(&dir, MANIFEST)?;
        serde_json::to_writer_pretty(&mut f, &manifest)
            .map_err(|e| Error::runtime("cannot write merge.json", e))?;
        f.write_all(b"\n")
            .map_err(|e| Error::runtime("cannot write merge.json", e))?;
    }
    let (manifest_sha, manifest_size) = file_written(&mut log, &dir, MANIFEST)?;

    let hosts = hosts.into_hosts();

    // Every shard's capture, analyzed as one capture set.
    let pcaps: Vec<PathBuf> = shards.iter().map(|s| s.dir.join(run_dir::PCAP)).collect();
    let (capture_analysis, cost) = analyze_captures(&pcaps, None, &mut log, observer)?;

    let finished = now_rfc3339();
    let first_started = shards
        .iter()
        .map(|s| s.report.started.as_str())
        .min()
        .unwrap_or(&started)
        .to_string();
    let last_finished = shards
        .iter()
        .map(|s| s.report.finished.as_str())
        .max()
        .unwrap_or(&finished)
        .to_string();
    let probes: u64 = shards.iter().map(|s| s.report.probes).sum();
    let rates = || shards.iter().map(|s| &s.report.rate);
    let mut counters = crate::results::Counters::default();
    let mut unanswered = std::collections::BTreeMap::new();
    for s in &shards {
        counters += s.report.counters;
        crate::results::add_per_kind(&mut unanswered, &s.report.unanswered);
    }
    let who = crate::evidence::Provenance::current();
    let report = ScanReport {
        sonde_version: who.sonde_version,
        command: who.command,
        operator: who.operator,
        host: who.host,
        started: first_started,
        finished: last_finished,
        run_directory: dir.path().display().to_string(),
        scope: first.scope.clone(),
        parameters: crate::results::Parameters {
            shard: "1/1".to_string(),
            ..first.parameters.clone()
        },
        identity: Some(identity),
        merge: Some(MergeRecord {
            manifest: MANIFEST.to_string(),
            shards: manifest.shards,
        }),
        interrupted: false,
        output_error: None,
        planned_probes: shards.iter().map(|s| s.report.planned_probes).sum(),
        max_probes: first.max_probes,
        scope_stopped: None,
        possibly_incomplete: shards.iter().any(|s| s.report.possibly_incomplete),
        counters,
        rate: RateReport {
            requested: rates().map(|r| r.requested).sum(),
            achieved: rates().map(|r| r.achieved).sum(),
            sending_seconds: rates().map(|r| r.sending_seconds).fold(0.0, f64::max),
            discovery_seconds: rates().map(|r| r.discovery_seconds).fold(0.0, f64::max),
            shortfall: None,
        },
        neighbour_discovery: first.neighbour_discovery.clone(),
        links: Vec::new(),
        passes: None,
        probes,
        unanswered,
        segments: Vec::new(),
        files: vec![
            FileRecord {
                name: run_dir::RESULTS.to_string(),
                role: "results".to_string(),
                sha256: results_sha,
                size: results_size,
            },
            FileRecord {
                name: MANIFEST.to_string(),
                role: "merge-manifest".to_string(),
                sha256: manifest_sha,
                size: manifest_size,
            },
        ],
        audit: crate::scan::session::files::anchor(&log),
        compliance: crate::results::compliance::controls(),
        capture_analysis,
        capture_analysis_cost: cost,
        hosts,
    };
    let report_file = create_in(&dir, run_dir::REPORT_PARTIAL)?;
    write_report(report_file, &report)
        .map_err(|e| Error::runtime("cannot write the merged report", e))?;
    std::fs::rename(dir.file(run_dir::REPORT_PARTIAL), dir.file(run_dir::REPORT))
        .map_err(|e| Error::runtime("cannot put the merged report in place", e))?;
    let (report_sha, _) = file_written(&mut log, &dir, run_dir::REPORT)?;
    audit(&mut log, "run_finished", json!({ "exit_status": exit::OK }))?;
    let signed_by = match &sign_key {
        Some(key) => {
            let f = create_in(&dir, crate::evidence::signature::SIGNATURE)?;
            Some(sign_run(key, f, &dir, &log)?)
        }
        None => None,
    };
    Ok(MergeOutcome {
        dir: dir.path().to_path_buf(),
        shards: shards.len(),
        probes,
        hosts: report.hosts.len(),
        open_ports: report.hosts.iter().map(|h| h.open_ports().count()).sum(),
        report_sha256: report_sha,
        audit_head: log.head().to_string(),
        audit_records: log.records(),
        signed_by,
    })
}
