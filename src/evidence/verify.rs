//! Checking a run's evidence again: the audit chain, the hash of every file
//! the audit log and the report recorded, the report's anchor in the chain,
//! the scope file when it is still there, and that the report's analysis
//! was made of the run's own capture. Pure file reading, no network: the
//! CLI prints the findings, tests inspect them.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::run_dir::{AUDIT, PCAP, REPORT, RESULTS, SENT};
use super::{file_sha256, verify_chain};
use crate::results::{MergeManifest, MergeRecord, ScanReport};

/// How one check came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// The hash or the chain holds.
    Ok,
    /// A file's content differs from its recorded hash.
    Changed,
    /// A recorded file is not there.
    Missing,
    /// The audit chain or the report is inconsistent.
    Broken,
    /// Could not be checked, and that is not evidence of tampering (a scope
    /// file no longer at its recorded path).
    Unchecked,
    /// The run was cut (killed, a power cut) before it finished: what its
    /// last checkpoint anchors holds, what came after is an unanchored
    /// tail, and `scan --resume` goes on from the checkpoint.
    Cut,
}

impl Status {
    pub fn label(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Changed => "CHANGED",
            Status::Missing => "MISSING",
            Status::Broken => "BROKEN",
            Status::Unchecked => "unchecked",
            Status::Cut => "CUT",
        }
    }

    pub fn is_failure(self) -> bool {
        matches!(self, Status::Changed | Status::Missing | Status::Broken)
    }
}

/// One check: what was checked and what was found.
#[derive(Clone, Debug)]
pub struct Finding {
    pub status: Status,
    pub subject: String,
    pub detail: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:<9} {}: {}",
            self.status.label(),
            self.subject,
            self.detail
        )
    }
}

/// What `verify` was pointed at.
#[derive(Debug)]
enum Target {
    /// A run directory, or its report.
    Run { dir: PathBuf },
    /// A bare audit log.
    AuditLog(PathBuf),
}

fn classify(path: &Path) -> std::io::Result<Target> {
    if path.is_dir() {
        return Ok(Target::Run {
            dir: path.to_path_buf(),
        });
    }
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    // A report is one JSON object with an `audit` member; an audit log is
    // JSON Lines, each record with `seq` and `prev`. Only the first JSON
    // value is read, streaming: a report's hosts are skipped, not held.
    #[derive(Deserialize)]
    struct Peek {
        audit: Option<IgnoredAny>,
        seq: Option<IgnoredAny>,
        prev: Option<IgnoredAny>,
    }
    let file = std::io::BufReader::with_capacity(1 << 16, super::open_regular(path, true)?);
    match serde_json::Deserializer::from_reader(file)
        .into_iter::<Peek>()
        .next()
    {
        Some(Ok(p)) if p.audit.is_some() => Ok(Target::Run { dir }),
        Some(Ok(p)) if p.seq.is_none() || p.prev.is_none() => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "a JSON document that is neither a scan report (no audit member) nor an audit log",
        )),
        _ => Ok(Target::AuditLog(path.to_path_buf())),
    }
}

/// A report as verify reads it: the one definition, its hosts (millions
/// of results in a large scan) skipped while parsing, never held.
type ReportView = ScanReport<serde::de::IgnoredAny>;

/// Hashes kept outside the run directory (the scan prints them at the
/// end): a directory rewritten consistently, every hash recomputed, still
/// fails against them.
#[derive(Clone, Debug, Default)]
pub struct Anchors {
    /// The SHA-256 of report.json.
    pub report_sha256: Option<String>,
    /// The audit log's final head (the hash of its last record).
    pub audit_head: Option<String>,
    /// Keys the run must be signed with (one of them): `verify --pubkey`.
    pub trusted_keys: Vec<ed25519_dalek::VerifyingKey>,
}

/// Check the evidence at `path`: a run directory, its `report.json`, or an
/// audit log. Errors only when `path` itself cannot be read.
pub fn verify(path: &Path) -> std::io::Result<Vec<Finding>> {
    verify_anchored(path, &Anchors::default())
}

thread_local! {
    /// The run directories being verified on this thread, outermost first:
    /// a merge's shards are verified inside it, and must not lead back.
    static VERIFYING: std::cell::RefCell<Vec<PathBuf>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// [`verify`], and compare the report and the audit log with `anchors`.
pub fn verify_anchored(path: &Path, anchors: &Anchors) -> std::io::Result<Vec<Finding>> {
    let key = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let key = if key.is_file() {
        key.parent().map(Path::to_path_buf).unwrap_or(key)
    } else {
        key
    };
    VERIFYING.with(|v| v.borrow_mut().push(key));
    let result = verify_anchored_inner(path, anchors);
    VERIFYING.with(|v| v.borrow_mut().pop());
    result
}

fn verify_anchored_inner(path: &Path, anchors: &Anchors) -> std::io::Result<Vec<Finding>> {
    let mut findings = Vec::new();
    let (dir, log) = match classify(path)? {
        Target::AuditLog(log) => (log.parent().unwrap_or(Path::new(".")).to_path_buf(), log),
        Target::Run { dir } => {
            let log = dir.join(AUDIT);
            (dir, log)
        }
    };
    // With trusted keys, the signature comes first: a run that is not
    // theirs has none of its files hashed (a hostile directory's files
    // are only read once someone trusted vouches for the run; issue 26).
    let signed_first = log == dir.join(AUDIT) && !anchors.trusted_keys.is_empty();
    if signed_first {
        let lines = read_member(&log)
            .map(|b| {
                String::from_utf8_lossy(&b)
                    .lines()
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let view = AuditView {
            lines,
            ..AuditView::default()
        };
        let before = findings.len();
        check_signature(&dir, &view, &anchors.trusted_keys, &mut findings);
        if findings[before..].iter().any(|f| f.status.is_failure()) {
            findings.push(Finding {
                status: Status::Unchecked,
                subject: dir.display().to_string(),
                detail: "the run's files were not hashed: its signature does not hold for the keys given".into(),
            });
            return Ok(findings);
        }
    }
    let audit = check_audit(&log, &dir, &mut findings);
    if log == dir.join(AUDIT) {
        // A run the scope accepted created its capture and results before
        // the first packet, whatever happened after: neither may be gone,
        // recorded or not (a file removed mid-run leaves no record).
        if audit.accepted {
            for name in [PCAP, RESULTS] {
                if !audit.written.iter().any(|w| w == name) && !dir.join(name).exists() {
                    findings.push(Finding {
                        status: Status::Missing,
                        subject: name.to_string(),
                        detail: "the run created it before its first packet, and it is gone".into(),
                    });
                }
            }
        }
        check_report(&dir, &audit, &mut findings);
        if audit.written.iter().any(|w| w == SENT) || dir.join(SENT).exists() {
            // A cut run's log: the prefix its checkpoint anchors.
            let limit = audit.cut.as_ref().map(|_| {
                audit
                    .cut_anchors
                    .iter()
                    .find(|(n, _)| n == SENT)
                    .map_or(0, |(_, s)| *s)
            });
            check_sent_log(&dir.join(SENT), limit, &mut findings);
        }
    }
    if log == dir.join(AUDIT) && !signed_first {
        check_signature(&dir, &audit, &anchors.trusted_keys, &mut findings);
    }
    if let Some(want) = &anchors.report_sha256 {
        hash_file(
            REPORT,
            &dir.join(REPORT),
            &want.to_ascii_lowercase(),
            None,
            "the anchor given",
            &mut findings,
        );
    }
    if let Some(want) = &anchors.audit_head {
        let found = audit
            .lines
            .last()
            .map(|l| hex::encode(Sha256::digest(l.as_bytes())));
        let subject = log.display().to_string();
        findings.push(match found {
            Some(h) if h.eq_ignore_ascii_case(want) => Finding {
                status: Status::Ok,
                subject,
                detail: format!("final head {h}, as the anchor given"),
            },
            found => Finding {
                status: Status::Broken,
                subject,
                detail: format!(
                    "the anchor given is final head {want}, the log's is {}",
                    found.as_deref().unwrap_or("absent")
                ),
            },
        });
    }
    Ok(findings)
}

/// What the audit log says, for the report checks.
#[derive(Default)]
struct AuditView {
    /// The log's lines, as read.
    lines: Vec<String>,
    /// Names of files the log records as written.
    written: Vec<String>,
    exit_status: Option<i64>,
    /// The scope accepted the run, so it created its output files.
    accepted: bool,
    /// The run was cut before it finished (no run_finished, no report):
    /// when, as the last record says.
    cut: Option<String>,
    /// A cut run's files and the lengths its last checkpoint anchors.
    cut_anchors: Vec<(String, u64)>,
}

fn hash_file(
    name: &str,
    path: &Path,
    want: &str,
    size: Option<u64>,
    who: &str,
    out: &mut Vec<Finding>,
) {
    let subject = name.to_string();
    match member_sha256(path) {
        Ok((found, n)) if found == want && size.is_none_or(|s| s == n) => out.push(Finding {
            status: Status::Ok,
            subject,
            detail: format!("sha256 {found}, {n} bytes, as {who} recorded"),
        }),
        Ok((found, n)) => out.push(Finding {
            status: Status::Changed,
            subject,
            detail: format!(
                "{who} recorded sha256 {want}{}, found {found} ({n} bytes)",
                size.map(|s| format!(" ({s} bytes)")).unwrap_or_default()
            ),
        }),
        Err(e) => out.push(Finding {
            status: Status::Missing,
            subject,
            detail: format!("{e} ({who} recorded sha256 {want})"),
        }),
    }
}

/// The bytes of a run directory's file: a regular file, not followed
/// through a symbolic link (an audit log linked to /dev/zero was read
/// until memory ran out).
fn read_member(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    super::open_regular(path, false)?.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// SHA-256 and size of a run directory's file: a regular file, not
/// followed through a symbolic link.
fn member_sha256(path: &Path) -> std::io::Result<(String, u64)> {
    super::sha256_of(super::open_regular(path, false)?)
}

/// A name a record gives as a file of the run: refused (a finding) unless
/// it is a plain name inside the directory.
fn member_or_finding(dir: &Path, name: &str, out: &mut Vec<Finding>) -> Option<PathBuf> {
    match super::member(dir, name) {
        Ok(p) => Some(p),
        Err(why) => {
            out.push(Finding {
                status: Status::Broken,
                subject: name.to_string(),
                detail: format!("{why}: not read"),
            });
            None
        }
    }
}

fn check_audit(log: &Path, dir: &Path, out: &mut Vec<Finding>) -> AuditView {
    let subject = log.display().to_string();
    let bytes = match read_member(log) {
        Ok(b) => b,
        Err(e) => {
            out.push(Finding {
                status: Status::Missing,
                subject,
                detail: format!("the audit log cannot be read: {e}"),
            });
            return AuditView::default();
        }
    };
    let text = String::from_utf8_lossy(&bytes);
    let (problems, head) = verify_chain(&text);
    // The first breaks say where; a file that is no audit log at all
    // breaks on every line.
    const SHOWN: usize = 20;
    for p in problems.iter().take(SHOWN) {
        out.push(Finding {
            status: Status::Broken,
            subject: subject.clone(),
            detail: p.to_string(),
        });
    }
    if problems.len() > SHOWN {
        out.push(Finding {
            status: Status::Broken,
            subject: subject.clone(),
            detail: format!(
                "{} more breaks (is this an audit log?)",
                problems.len() - SHOWN
            ),
        });
    }
    let records: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    // A run's log ends with run_finished. Without it, the run was cut
    // (killed outright: what its last checkpoint anchors holds, and it
    // resumes), unless a report is there: a finished run's log whose end
    // was cut off.
    let finished = records.last().and_then(|r| r["event"].as_str()) == Some("run_finished");
    let is_run_log = log == dir.join(AUDIT);
    let cut = !finished
        && problems.is_empty()
        && is_run_log
        && !records.is_empty()
        && !dir.join(REPORT).exists();
    if !finished && !cut {
        out.push(Finding {
            status: Status::Broken,
            subject: subject.clone(),
            detail: "the log does not end with run_finished (records were cut off the end, or the run did not finish)".into(),
        });
    }
    if problems.is_empty() {
        out.push(Finding {
            status: Status::Ok,
            subject: subject.clone(),
            detail: format!(
                "chain of {} records holds, head {head}",
                text.lines().count()
            ),
        });
    }
    let mut view = AuditView {
        lines: text.lines().map(str::to_string).collect(),
        ..AuditView::default()
    };
    if cut {
        view.cut = Some(
            records
                .last()
                .and_then(|r| r["time"].as_str())
                .unwrap_or("?")
                .to_string(),
        );
    }
    for (i, r) in records.iter().enumerate() {
        if r["event"] == "run_finished" {
            view.exit_status = r["exit_status"].as_i64();
        }
        if r["event"] == "scope_accepted" {
            view.accepted = true;
        }
        if r["event"] != "file_written" {
            continue;
        }
        let (Some(name), Some(want), Some(size)) =
            (r["path"].as_str(), r["sha256"].as_str(), r["size"].as_u64())
        else {
            out.push(Finding {
                status: Status::Broken,
                subject: subject.clone(),
                detail: format!("record {i}: a file_written record without path, sha256 and size"),
            });
            continue;
        };
        // A resumed run: a file an earlier segment recorded and a later
        // one rewrote was kept under the segment's name (run_resumed's
        // `archived`); one the run appends to (the pcap, the results) held
        // then what its first `size` bytes hold now.
        let later = &records[i + 1..];
        let archived = later
            .iter()
            .find(|r| r["event"] == "run_resumed" && r["archived"].get(name).is_some())
            .and_then(|r| r["archived"][name].as_str());
        // Appended to later: by a later segment, or by the segment a cut
        // ended (its checkpoints measure the file).
        let appended = later.iter().any(|r| {
            (r["event"] == "file_written" && r["path"] == name)
                || (r["event"] == "run_resumed" && [PCAP, RESULTS].contains(&name))
        });
        if let Some(kept) = archived {
            let Some(kept_path) = member_or_finding(dir, kept, out) else {
                continue;
            };
            hash_file(
                kept,
                &kept_path,
                want,
                Some(size),
                &format!("the audit log (as {name}, before the run was resumed)"),
                out,
            );
            continue;
        }
        let Some(path) = member_or_finding(dir, name, out) else {
            continue;
        };
        if appended {
            let subject = format!("{name} (its first {size} bytes)");
            out.push(match crate::evidence::prefix_sha256(&path, size) {
                Ok(Some(found)) if found == want => Finding {
                    status: Status::Ok,
                    subject,
                    detail: format!(
                        "sha256 {found}, as the audit log recorded before the run was resumed"
                    ),
                },
                Ok(found) => Finding {
                    status: Status::Changed,
                    subject,
                    detail: format!(
                        "the audit log recorded sha256 {want} before the run was resumed, found {}",
                        found.unwrap_or_else(|| "a shorter file".into())
                    ),
                },
                Err(e) => Finding {
                    status: Status::Missing,
                    subject,
                    detail: format!("{e} (the audit log recorded sha256 {want})"),
                },
            });
            continue;
        }
        // Names are plain names in the run directory, nothing else.
        hash_file(name, &path, want, Some(size), "the audit log", out);
        view.written.push(name.to_string());
    }
    if cut {
        view.cut_anchors = check_cut(&records, dir, out);
    }
    // The segments of a resumed run, as the log tells them.
    let resumed: Vec<&Value> = records
        .iter()
        .filter(|r| r["event"] == "run_resumed")
        .collect();
    if !resumed.is_empty() {
        for r in resumed {
            out.push(Finding {
                status: Status::Ok,
                subject: subject.clone(),
                detail: format!(
                    "segment {} resumed at {} (pass {}, kind {}) by {}",
                    r["segment"],
                    r["time"].as_str().unwrap_or("?"),
                    r["from"]["pass"],
                    r["from"]["kind"],
                    r["operator"].as_str().unwrap_or("?")
                ),
            });
        }
    }
    view
}

/// A cut run: the last checkpoint of its last segment anchors a prefix of
/// each file it measured and the state a resume starts from; the bytes
/// after those prefixes are an unanchored tail (said with their size).
/// Before its first checkpoint, what the segment's start anchors counts:
/// the files' lengths at the end of the segment before, or nothing.
fn check_cut(records: &[Value], dir: &Path, out: &mut Vec<Finding>) -> Vec<(String, u64)> {
    let last_start = records
        .iter()
        .rposition(|r| r["event"] == "run_started" || r["event"] == "run_resumed")
        .unwrap_or(0);
    let segment = &records[last_start..];
    let checkpoint = segment
        .iter()
        .rev()
        .find(|r| r["event"] == "scan_checkpoint");
    let end = records
        .last()
        .and_then(|r| r["time"].as_str())
        .unwrap_or("?");
    // What each measured file is anchored to: (name, size, sha256).
    let mut anchored: Vec<(String, u64, Option<String>)> = Vec::new();
    match checkpoint {
        Some(c) => {
            out.push(Finding {
                status: Status::Cut,
                subject: AUDIT.to_string(),
                detail: format!(
                    "the run was cut: its log ends at {end} without run_finished; checkpoint {} at {} (pass {}, {} probes) anchors what follows; `sonde scan --resume {}` goes on from it",
                    c["checkpoint"],
                    c["time"].as_str().unwrap_or("?"),
                    c["pass"],
                    c["probes"],
                    dir.display()
                ),
            });
            for f in c["files"].as_array().into_iter().flatten() {
                if let (Some(name), Some(size)) = (f["path"].as_str(), f["size"].as_u64()) {
                    anchored.push((
                        name.to_string(),
                        size,
                        f["sha256"].as_str().map(str::to_string),
                    ));
                }
            }
            // The state a resume starts from: the slot this checkpoint wrote.
            let state = &c["state"];
            if let (Some(name), Some(want)) = (state["path"].as_str(), state["sha256"].as_str())
                && let Some(path) = member_or_finding(dir, name, out)
            {
                hash_file(
                    name,
                    &path,
                    want,
                    state["size"].as_u64(),
                    &format!("checkpoint {}", c["checkpoint"]),
                    out,
                );
            }
        }
        None => {
            out.push(Finding {
                status: Status::Cut,
                subject: AUDIT.to_string(),
                detail: format!(
                    "the run was cut before its first checkpoint: its log ends at {end} without run_finished; nothing this segment wrote is anchored; `sonde scan --resume {}` starts the segment again",
                    dir.display()
                ),
            });
            for name in [PCAP, RESULTS] {
                let before = records[..last_start]
                    .iter()
                    .rev()
                    .find(|r| r["event"] == "file_written" && r["path"] == name)
                    .and_then(|r| r["size"].as_u64())
                    .unwrap_or(0);
                anchored.push((name.to_string(), before, None));
            }
        }
    }
    let sizes = anchored.iter().map(|(n, s, _)| (n.clone(), *s)).collect();
    for (name, size, sha256) in anchored {
        let Some(path) = member_or_finding(dir, &name, out) else {
            continue;
        };
        if let Some(want) = &sha256 {
            let subject = format!("{name} (its first {size} bytes)");
            out.push(match crate::evidence::prefix_sha256(&path, size) {
                Ok(Some(found)) if found == *want => Finding {
                    status: Status::Ok,
                    subject,
                    detail: format!("sha256 {found}, as the last checkpoint recorded"),
                },
                Ok(found) => Finding {
                    status: Status::Changed,
                    subject,
                    detail: format!(
                        "the last checkpoint recorded sha256 {want}, found {}",
                        found.unwrap_or_else(|| "a shorter file".into())
                    ),
                },
                Err(e) => Finding {
                    status: Status::Missing,
                    subject,
                    detail: format!("{e} (the last checkpoint recorded sha256 {want})"),
                },
            });
        }
        match super::open_regular(&path, false).and_then(|f| f.metadata()) {
            Ok(m) if m.len() > size => out.push(Finding {
                status: Status::Cut,
                subject: name.clone(),
                detail: format!(
                    "{} bytes after its first {size} were written after the last anchor: an unanchored tail (a resume keeps it aside, hashed)",
                    m.len() - size
                ),
            }),
            Ok(m) if m.len() < size => out.push(Finding {
                status: Status::Changed,
                subject: name.clone(),
                detail: format!(
                    "{} bytes, shorter than the {size} the last anchor recorded",
                    m.len()
                ),
            }),
            Ok(_) => {}
            Err(e) => out.push(Finding {
                status: Status::Missing,
                subject: name.clone(),
                detail: e.to_string(),
            }),
        }
    }
    sizes
}

/// `signature.json`, when the run was signed (or must be: `trusted` keys
/// given): it names the report's current hash and the log's final head,
/// holds for them, and is by a trusted key when keys were given.
fn check_signature(
    dir: &Path,
    audit: &AuditView,
    trusted: &[ed25519_dalek::VerifyingKey],
    out: &mut Vec<Finding>,
) {
    use super::signature::{RunSignature, SIGNATURE, fingerprint};
    let path = dir.join(SIGNATURE);
    let subject = path.display().to_string();
    let text = match read_member(&path) {
        Ok(t) => t,
        Err(_) if trusted.is_empty() => return,
        Err(e) => {
            out.push(Finding {
                status: Status::Missing,
                subject,
                detail: format!("the run is not signed ({e}), and --pubkey asks for a signature"),
            });
            return;
        }
    };
    let sig: RunSignature = match serde_json::from_slice(&text) {
        Ok(s) => s,
        Err(e) => {
            out.push(Finding {
                status: Status::Broken,
                subject,
                detail: format!("not a sonde run signature: {e}"),
            });
            return;
        }
    };
    let key = match sig.check() {
        Ok(k) => k,
        Err(e) => {
            out.push(Finding {
                status: Status::Broken,
                subject,
                detail: e,
            });
            return;
        }
    };
    let report_sha = file_sha256(&dir.join(REPORT)).map(|(h, _)| h).ok();
    let head = audit
        .lines
        .last()
        .map(|l| hex::encode(Sha256::digest(l.as_bytes())));
    if report_sha.as_deref() != Some(sig.report_sha256.as_str()) {
        out.push(Finding {
            status: Status::Broken,
            subject,
            detail: format!(
                "signed report sha256 {}, report.json is {}",
                sig.report_sha256,
                report_sha.unwrap_or_else(|| "absent".into())
            ),
        });
        return;
    }
    if head.as_deref() != Some(sig.audit_head.as_str()) {
        out.push(Finding {
            status: Status::Broken,
            subject,
            detail: format!(
                "signed audit head {}, the log's final head is {}",
                sig.audit_head,
                head.unwrap_or_else(|| "absent".into())
            ),
        });
        return;
    }
    if trusted.is_empty() {
        out.push(Finding {
            status: Status::Ok,
            subject,
            detail: format!(
                "signed with ed25519 key {} over the report and the final audit head (give --pubkey to check whose it is)",
                fingerprint(&key)
            ),
        });
    } else if trusted.contains(&key) {
        out.push(Finding {
            status: Status::Ok,
            subject,
            detail: format!(
                "signed with the trusted ed25519 key {} over the report and the final audit head",
                fingerprint(&key)
            ),
        });
    } else {
        out.push(Finding {
            status: Status::Broken,
            subject,
            detail: format!(
                "signed with ed25519 key {}, which is not one of the keys given",
                fingerprint(&key)
            ),
        });
    }
}

/// A merged run: the manifest says what the report says; each shard still
/// present verifies and is the run the merge read (its report's hash, its
/// audit head); the embedded analysis is of the shards' captures.
fn check_merge(dir: &Path, merge: &MergeRecord, report: &ReportView, out: &mut Vec<Finding>) {
    let manifest_name = merge.manifest.as_str();
    let subject = dir.join(manifest_name).display().to_string();
    match super::member(dir, manifest_name)
        .ok()
        .and_then(|p| read_member(&p).ok())
        .and_then(|b| serde_json::from_slice::<MergeManifest>(&b).ok())
    {
        Some(m) if m.shards == merge.shards => out.push(Finding {
            status: Status::Ok,
            subject: subject.clone(),
            detail: format!("names the {} shards the report merged", merge.shards.len()),
        }),
        Some(_) => out.push(Finding {
            status: Status::Broken,
            subject: subject.clone(),
            detail: "the manifest's shards are not the report's".into(),
        }),
        None => out.push(Finding {
            status: Status::Missing,
            subject: subject.clone(),
            detail: "the merge manifest cannot be read".into(),
        }),
    }
    let mut pcaps = Vec::new();
    for shard in &merge.shards {
        let name = &shard.shard;
        let shard_dir = Path::new(&shard.run_directory);
        if let Some(p) = &shard.pcap_sha256 {
            pcaps.push(p.clone());
        }
        let subject = format!("shard {name} ({})", shard_dir.display());
        if !shard_dir.is_dir() {
            out.push(Finding {
                status: Status::Unchecked,
                subject,
                detail: "the shard's run directory is no longer there; the manifest keeps its report hash and audit head".into(),
            });
            continue;
        }
        // A manifest naming its own directory (or a merge naming it) as a
        // shard overflowed the stack: a cycle is a finding, not recursion.
        let canonical = shard_dir
            .canonicalize()
            .unwrap_or_else(|_| shard_dir.to_path_buf());
        if VERIFYING.with(|v| v.borrow().contains(&canonical)) {
            out.push(Finding {
                status: Status::Broken,
                subject,
                detail: "names a run directory being verified (itself, or a merge that names it): a cycle".into(),
            });
            continue;
        }
        let findings = match verify(shard_dir) {
            Ok(f) => f,
            Err(e) => {
                out.push(Finding {
                    status: Status::Missing,
                    subject,
                    detail: format!("cannot be read: {e}"),
                });
                continue;
            }
        };
        if let Some(f) = findings.iter().find(|f| f.status.is_failure()) {
            out.push(Finding {
                status: Status::Broken,
                subject,
                detail: format!("does not verify: {}: {}", f.subject, f.detail),
            });
            continue;
        }
        let report_sha = file_sha256(&shard_dir.join(REPORT)).map(|(h, _)| h).ok();
        let head = std::fs::read_to_string(shard_dir.join(AUDIT))
            .map(|t| verify_chain(&t).1)
            .ok();
        if report_sha.as_deref() == Some(shard.report_sha256.as_str())
            && head.as_deref() == Some(shard.audit_head.as_str())
        {
            out.push(Finding {
                status: Status::Ok,
                subject,
                detail: "verifies, and is the run the merge read (report hash and audit head)"
                    .into(),
            });
        } else {
            out.push(Finding {
                status: Status::Changed,
                subject,
                detail: format!(
                    "the merge read report sha256 {} and audit head {}; the directory now holds {} and {}",
                    shard.report_sha256,
                    shard.audit_head,
                    report_sha.unwrap_or_default(),
                    head.unwrap_or_default()
                ),
            });
        }
    }
    let analyzed = report.analyzed_captures();
    if !analyzed.is_empty() && analyzed != pcaps {
        out.push(Finding {
            status: Status::Broken,
            subject: dir.join(REPORT).display().to_string(),
            detail: "capture_analysis was not made of the shards' captures".into(),
        });
    }
}

/// Compact evidence: rebuild every probe the sent-probe log records and
/// check its hash chain.
/// The compact evidence's sent-probe log, replayed; `limit`: a cut run's,
/// whose checkpoint anchors this many bytes (its key was never revealed).
fn check_sent_log(path: &Path, limit: Option<u64>, out: &mut Vec<Finding>) {
    use std::io::Read;
    let subject = SENT.to_string();
    if limit == Some(0) {
        out.push(Finding {
            status: Status::Cut,
            subject,
            detail: "nothing of it is anchored (the run was cut before its first checkpoint)"
                .into(),
        });
        return;
    }
    let replay = match super::open_regular(path, false).and_then(|f| {
        let r = std::io::BufReader::with_capacity(1 << 16, f.take(limit.unwrap_or(u64::MAX)));
        super::sent_log::replay(r)
    }) {
        Ok(r) => r,
        Err(e) => {
            out.push(Finding {
                status: Status::Missing,
                subject,
                detail: format!("the sent-probe log cannot be read: {e}"),
            });
            return;
        }
    };
    for p in &replay.problems {
        // A cut run never revealed its key: what its probes were cannot be
        // rebuilt, and that is the cut, not damage.
        let cut = limit.is_some() && p.starts_with("no end record");
        out.push(Finding {
            status: if cut { Status::Cut } else { Status::Broken },
            subject: subject.clone(),
            detail: p.clone(),
        });
    }
    if replay.more_problems > 0 {
        out.push(Finding {
            status: Status::Broken,
            subject: subject.clone(),
            detail: format!("{} more problems", replay.more_problems),
        });
    }
    if replay.problems.is_empty() {
        out.push(Finding {
            status: Status::Ok,
            subject,
            detail: format!(
                "{} probes rebuilt from the plan and the revealed key, {} batches, chain holds",
                replay.probes, replay.records
            ),
        });
    }
}

fn check_report(dir: &Path, audit: &AuditView, out: &mut Vec<Finding>) {
    let path = dir.join(REPORT);
    let subject = path.display().to_string();
    let recorded = audit.written.iter().any(|w| w == REPORT);
    let size = std::fs::metadata(&path).map(|m| m.len());
    // A refused or failed run records no report: it wrote none, or an
    // empty file opened before sending, or as much as a full disk took.
    // Its audit log says why; nothing there is evidence of tampering.
    if let Some(at) = &audit.cut {
        out.push(Finding {
            status: Status::Unchecked,
            subject,
            detail: format!("no report: the run was cut at {at} before its segment wrote one"),
        });
        return;
    }
    if !recorded && !audit.lines.is_empty() && audit.exit_status != Some(0) {
        let status = audit
            .exit_status
            .map_or("unknown".to_string(), |s| s.to_string());
        let detail = match size {
            Ok(n) if n > 0 => format!(
                "the run failed (exit status {status}) before it recorded its report; these {n} bytes are what it could write, unverified"
            ),
            _ => format!("no report: the run wrote none (exit status {status})"),
        };
        out.push(Finding {
            status: Status::Unchecked,
            subject,
            detail,
        });
        return;
    }
    let report: ReportView = match super::open_regular(&path, false) {
        Err(e) => {
            out.push(Finding {
                status: Status::Missing,
                subject,
                detail: format!("the report cannot be read: {e}"),
            });
            return;
        }
        Ok(f) => match serde_json::from_reader(std::io::BufReader::with_capacity(1 << 16, f)) {
            Ok(r) => r,
            Err(e) => {
                out.push(Finding {
                    status: Status::Broken,
                    subject,
                    detail: format!("the report is not a sonde scan report: {e}"),
                });
                return;
            }
        },
    };
    // The files the report recorded.
    let mut pcap_sha = None;
    for f in &report.files {
        let (name, want) = (&f.name, &f.sha256);
        let Ok(path) = super::member(dir, name) else {
            out.push(Finding {
                status: Status::Broken,
                subject: subject.clone(),
                detail: format!("files entry {name:?} is not a name inside the run directory"),
            });
            continue;
        };
        if f.role == "pcap" {
            pcap_sha = Some(want.clone());
        }
        hash_file(name, &path, want, Some(f.size), "the report", out);
    }
    // The report's anchor in the audit chain: the hash of the record it saw last.
    let (n, head) = (report.audit.records as usize, report.audit.head.as_str());
    let found = n
        .checked_sub(1)
        .and_then(|i| audit.lines.get(i))
        .map(|l| hex::encode(Sha256::digest(l.as_bytes())));
    match found {
        Some(h) if h == head => out.push(Finding {
            status: Status::Ok,
            subject: subject.clone(),
            detail: format!("anchored in the audit log at record {}, head {head}", n - 1),
        }),
        Some(h) => out.push(Finding {
            status: Status::Broken,
            subject: subject.clone(),
            detail: format!(
                "the report records audit head {head} after {n} records, but record {} hashes to {h}",
                n - 1
            ),
        }),
        None => out.push(Finding {
            status: Status::Broken,
            subject: subject.clone(),
            detail: format!(
                "the report records {n} audit records (head {head}), the log holds {}",
                audit.lines.len()
            ),
        }),
    }
    if !recorded {
        out.push(Finding {
            status: Status::Broken,
            subject: subject.clone(),
            detail: "the audit log holds no file_written record of the report".into(),
        });
    }
    // The analysis embedded in the report was made of the run's own capture.
    let analyzed = report.analyzed_captures();
    if let (Some(want), Some(analyzed)) = (&pcap_sha, analyzed.first())
        && want != analyzed
    {
        out.push(Finding {
            status: Status::Broken,
            subject: subject.clone(),
            detail: format!(
                "capture_analysis was made of a capture with sha256 {analyzed}, not the run's ({want})"
            ),
        });
    }
    if let Some(merge) = &report.merge {
        check_merge(dir, merge, &report, out);
    }
    // The scope file, when it is still where the run read it.
    let scope = &report.scope;
    let p = if scope.absolute_path.is_empty() {
        &scope.path
    } else {
        &scope.absolute_path
    };
    let want = &scope.sha256;
    {
        if Path::new(p).exists() {
            hash_file(p, Path::new(p), want, None, "the report", out);
        } else {
            out.push(Finding {
                status: Status::Unchecked,
                subject: p.to_string(),
                detail: format!(
                    "the scope file is no longer there (the report recorded sha256 {want})"
                ),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::AuditLog;
    use crate::evidence::run_dir::{PCAP, RESULTS};
    use serde_json::json;

    fn record(log: &mut AuditLog<std::fs::File>, event: &str, fields: Value) {
        let Value::Object(m) = fields else {
            unreachable!()
        };
        log.append(event, "2026-11-26T12:00:00Z", m).unwrap();
    }

    /// A run directory as a scan writes it, without a scan.
    fn run_dir(scope: &Path) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join(PCAP), b"pcap bytes").unwrap();
        std::fs::write(d.path().join(RESULTS), b"{\"target\":\"198.18.1.10\"}\n").unwrap();
        run_dir_in(d.path(), scope);
        d
    }

    /// Write (or rewrite) the audit log and report of the files in `p`,
    /// every hash computed afresh.
    fn run_dir_in<'a>(p: &'a Path, scope: &Path) -> &'a Path {
        let mut log = AuditLog::new(std::fs::File::create(p.join(AUDIT)).unwrap());
        record(&mut log, "run_started", json!({}));
        let mut files = Vec::new();
        for (name, role) in [(PCAP, "pcap"), (RESULTS, "results")] {
            let (sha, size) = file_sha256(&p.join(name)).unwrap();
            record(
                &mut log,
                "file_written",
                json!({"path": name, "sha256": sha, "size": size}),
            );
            files.push(json!({"name": name, "role": role, "sha256": sha, "size": size}));
        }
        // A whole report (the one definition), these files' and this log's.
        let mut report = serde_json::to_value(ScanReport::example()).unwrap();
        report["files"] = json!(files);
        report["audit"] = json!({"file": AUDIT, "records": log.records(), "head": log.head()});
        report["scope"]["absolute_path"] = json!(scope.display().to_string());
        report["scope"]["sha256"] = json!(file_sha256(scope).unwrap().0);
        report["capture_analysis"] = json!({"input": [{"sha256": files[0]["sha256"]}]});
        std::fs::write(p.join(REPORT), serde_json::to_vec(&report).unwrap()).unwrap();
        let (sha, size) = file_sha256(&p.join(REPORT)).unwrap();
        record(
            &mut log,
            "file_written",
            json!({"path": REPORT, "sha256": sha, "size": size}),
        );
        record(&mut log, "run_finished", json!({"exit_status": 0}));
        p
    }

    fn failures(f: &[Finding]) -> Vec<String> {
        f.iter()
            .filter(|f| f.status.is_failure())
            .map(|f| f.to_string())
            .collect()
    }

    fn scope_file() -> tempfile::NamedTempFile {
        let s = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(s.path(), b"[engagement]\n").unwrap();
        s
    }

    #[test]
    fn an_intact_run_holds_from_the_directory_and_from_the_report() {
        let scope = scope_file();
        let d = run_dir(scope.path());
        for target in [d.path().to_path_buf(), d.path().join(REPORT)] {
            let f = verify(&target).unwrap();
            assert!(failures(&f).is_empty(), "{f:#?}");
            // chain, 3 files by the log, 2 by the report, the anchor, the scope
            assert_eq!(
                f.iter().filter(|f| f.status == Status::Ok).count(),
                8,
                "{f:#?}"
            );
        }
    }

    #[test]
    fn a_changed_file_is_named_with_both_hashes() {
        let scope = scope_file();
        let d = run_dir(scope.path());
        std::fs::write(d.path().join(PCAP), b"pcap bytez").unwrap();
        let f = failures(&verify(d.path()).unwrap());
        assert_eq!(f.len(), 2, "the log's and the report's record: {f:#?}");
        assert!(
            f.iter()
                .all(|l| l.starts_with("CHANGED   capture.pcap: the"))
        );
        std::fs::write(scope.path(), b"[engagement]\nx=1\n").unwrap();
        let f = failures(&verify(d.path()).unwrap());
        assert!(
            f.iter()
                .any(|l| l.contains(&scope.path().display().to_string())),
            "{f:#?}"
        );
    }

    #[test]
    fn a_report_anchored_elsewhere_or_about_another_capture_is_broken() {
        let scope = scope_file();
        let d = run_dir(scope.path());
        let path = d.path().join(REPORT);
        let mut r: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        r["audit"]["records"] = json!(2);
        r["capture_analysis"]["input"][0]["sha256"] = json!("00");
        std::fs::write(&path, serde_json::to_vec(&r).unwrap()).unwrap();
        let f = failures(&verify(d.path()).unwrap());
        assert!(
            f.iter().any(|l| l.contains("CHANGED   report.json")),
            "{f:#?}"
        );
        assert!(f.iter().any(|l| l.contains("records audit head")), "{f:#?}");
        assert!(
            f.iter().any(|l| l.contains("capture_analysis was made of")),
            "{f:#?}"
        );
    }

    #[test]
    fn a_consistently_rewritten_run_fails_only_against_its_anchors() {
        let scope = scope_file();
        let d = run_dir(scope.path());
        let anchors = Anchors {
            report_sha256: Some(file_sha256(&d.path().join(REPORT)).unwrap().0),
            audit_head: Some(
                verify_chain(&std::fs::read_to_string(d.path().join(AUDIT)).unwrap()).1,
            ),
            trusted_keys: Vec::new(),
        };
        assert!(failures(&verify_anchored(d.path(), &anchors).unwrap()).is_empty());
        // Someone rewrites the capture and recomputes every hash and the
        // whole chain: the directory is consistent again.
        std::fs::write(d.path().join(PCAP), b"other bytes").unwrap();
        let rewritten = run_dir_in(d.path(), scope.path());
        assert!(failures(&verify(rewritten).unwrap()).is_empty());
        let f = failures(&verify_anchored(rewritten, &anchors).unwrap());
        assert_eq!(f.len(), 2, "{f:#?}");
        assert!(f[0].starts_with("CHANGED   report.json: the anchor given recorded"));
        assert!(f[1].contains("the anchor given is final head"));
    }

    #[test]
    fn an_analysis_report_is_not_evidence_of_a_run() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("analysis.json");
        std::fs::write(&p, b"{\"sonde_version\": \"0.1.0\", \"input\": []}").unwrap();
        let e = verify(&p).unwrap_err();
        assert!(e.to_string().contains("neither a scan report"), "{e}");
    }

    #[test]
    fn a_refused_run_has_no_report_to_check() {
        let d = tempfile::tempdir().unwrap();
        let mut log = AuditLog::new(std::fs::File::create(d.path().join(AUDIT)).unwrap());
        record(&mut log, "run_started", json!({}));
        record(&mut log, "scope_refused", json!({"reasons": ["x"]}));
        record(&mut log, "run_finished", json!({"exit_status": 3}));
        let f = verify(d.path()).unwrap();
        assert!(failures(&f).is_empty(), "{f:#?}");
        assert!(
            f.iter()
                .any(|f| f.status == Status::Unchecked && f.detail.contains("exit status 3"))
        );
        // Without its log there is nothing to vouch for the directory.
        std::fs::remove_file(d.path().join(AUDIT)).unwrap();
        let f = failures(&verify(d.path()).unwrap());
        assert!(f.iter().any(|l| l.starts_with("MISSING")), "{f:#?}");
    }

    /// Regression (issue 26): `capture.pcap` a FIFO, or a symbolic link to
    /// `/dev/zero`, hung `verify` forever. Each is a finding, at once.
    #[test]
    fn a_fifo_or_a_link_to_a_device_is_a_finding_not_a_hang() {
        let scope = scope_file();
        let d = run_dir(scope.path());
        let pcap = d.path().join(PCAP);
        std::fs::remove_file(&pcap).unwrap();
        let c = std::ffi::CString::new(pcap.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: mkfifo reads a NUL-terminated path, which `c` is.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let started = std::time::Instant::now();
        let f = verify(d.path()).unwrap();
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        let fails = failures(&f);
        assert!(
            fails
                .iter()
                .any(|f| f.contains("capture.pcap") && f.contains("not a regular file")),
            "{fails:#?}"
        );
        std::fs::remove_file(&pcap).unwrap();
        std::os::unix::fs::symlink("/dev/zero", &pcap).unwrap();
        let f = verify(d.path()).unwrap();
        assert!(
            failures(&f).iter().any(|f| f.contains("symbolic link")),
            "{f:#?}"
        );
    }

    /// Regression (issue 26): an audit record naming
    /// `../../../../etc/shadow` made `verify` hash and print a file outside
    /// the run. A name that is not a plain file of the directory is refused.
    #[test]
    fn a_record_naming_a_path_outside_the_run_is_refused_unread() {
        let scope = scope_file();
        let outer = tempfile::tempdir().unwrap();
        let run = outer.path().join("run");
        std::fs::create_dir(&run).unwrap();
        std::fs::write(run.join(PCAP), b"pcap bytes").unwrap();
        std::fs::write(run.join(RESULTS), b"{}\n").unwrap();
        run_dir_in(&run, scope.path());
        std::fs::write(outer.path().join("secret"), b"not the run's").unwrap();
        // A record appended and re-chained, as a hand edit would.
        let text = std::fs::read_to_string(run.join(AUDIT)).unwrap();
        let mut log = AuditLog::continuing(
            std::fs::OpenOptions::new()
                .append(true)
                .open(run.join(AUDIT))
                .unwrap(),
            text.lines().count() as u64,
            &verify_chain(&text).1,
        );
        let (sha, size) = file_sha256(&outer.path().join("secret")).unwrap();
        record(
            &mut log,
            "file_written",
            json!({"path": "../secret", "sha256": sha, "size": size}),
        );
        let f = verify(&run).unwrap();
        let fails = failures(&f);
        assert!(
            fails
                .iter()
                .any(|f| f.contains("../secret") && f.contains("not a file of the run directory")),
            "{fails:#?}"
        );
        assert!(!f.iter().any(|f| f.detail.contains(&sha)), "{f:#?}");
    }

    /// Regression (issue 26): a merged directory whose manifest named
    /// itself as a shard overflowed the stack (exit 134).
    #[test]
    fn a_merge_naming_itself_as_a_shard_is_a_cycle_not_a_crash() {
        let scope = scope_file();
        let d = run_dir(scope.path());
        let p = d.path();
        let shards = json!([{"shard": "1/1", "run_directory": p.display().to_string(),
                            "report_sha256": "x", "audit_head": "y", "pcap_sha256": null,
                            "started": "2026-12-07T06:00:00Z", "finished": "2026-12-07T06:00:02Z",
                            "host": "lab", "operator": "tester", "probes": 6,
                            "rate": {"requested": 1.0, "achieved": 1.0, "sending_seconds": 1.0,
                                     "discovery_seconds": 0.0, "shortfall": null}}]);
        let identity = serde_json::to_value(ScanReport::example().identity).unwrap();
        std::fs::write(
            p.join("merge.json"),
            serde_json::to_vec(&json!({"identity": identity, "shards": shards})).unwrap(),
        )
        .unwrap();
        let mut report: Value =
            serde_json::from_slice(&std::fs::read(p.join(REPORT)).unwrap()).unwrap();
        report["merge"] = json!({"manifest": "merge.json", "shards": shards});
        std::fs::write(p.join(REPORT), serde_json::to_vec(&report).unwrap()).unwrap();
        let f = verify(p).unwrap();
        assert!(f.iter().any(|f| f.detail.contains("a cycle")), "{f:#?}");
    }
}
