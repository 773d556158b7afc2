//! The audit log: JSON Lines, one record per event, each carrying the
//! SHA-256 of the previous record's line (`prev`), the first one carrying
//! `GENESIS`. Deleting, reordering, inserting or editing any record breaks
//! the chain at the record after it; `verify_chain` names that record.
//! Editing the last record is caught by whoever holds the hash of the
//! final line (the run's report records it).

use std::io::{self, Write};

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// The `prev` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// An append-only audit log over any writer (a file in a run directory).
///
/// ```
/// use sonde::evidence::{AuditLog, verify_chain};
///
/// let mut log = AuditLog::new(Vec::new());
/// for event in ["run_started", "scope_accepted", "run_finished"] {
///     log.append(event, "2026-11-26T12:00:00Z", serde_json::Map::new()).unwrap();
/// }
/// let head = log.head().to_string();
/// let text = String::from_utf8(log.into_inner()).unwrap();
/// let (problems, last) = verify_chain(&text);
/// assert!(problems.is_empty() && last == head);
///
/// // Drop the middle record: the chain breaks at the record after it.
/// let lines: Vec<&str> = text.lines().collect();
/// let cut = format!("{}\n{}\n", lines[0], lines[2]);
/// assert_eq!(verify_chain(&cut).0[0].line, 2);
/// ```
pub struct AuditLog<W: Write> {
    out: W,
    seq: u64,
    prev: String,
}

impl<W: Write> AuditLog<W> {
    /// A new, empty log.
    pub fn new(out: W) -> AuditLog<W> {
        AuditLog {
            out,
            seq: 0,
            prev: GENESIS.to_string(),
        }
    }

    /// A log that goes on after `records` records whose last line hashes
    /// to `head` (a resumed run appends to its own chain).
    pub fn continuing(out: W, records: u64, head: &str) -> AuditLog<W> {
        AuditLog {
            out,
            seq: records,
            prev: head.to_string(),
        }
    }

    /// Append one record: `event`, the time (RFC 3339, UTC), `fields`, and
    /// the chain fields `seq` and `prev`. Written and flushed at once, so
    /// a crash loses no record already appended.
    pub fn append(
        &mut self,
        event: &str,
        time: &str,
        fields: Map<String, Value>,
    ) -> io::Result<()> {
        let mut record = Map::new();
        record.insert("seq".into(), Value::from(self.seq));
        record.insert("time".into(), Value::from(time));
        record.insert("event".into(), Value::from(event));
        for (k, v) in fields {
            if !matches!(k.as_str(), "seq" | "time" | "event" | "prev") {
                record.insert(k, v);
            }
        }
        record.insert("prev".into(), Value::from(self.prev.clone()));
        let line = serde_json::to_string(&Value::Object(record)).map_err(io::Error::other)?;
        self.out.write_all(line.as_bytes())?;
        self.out.write_all(b"\n")?;
        self.out.flush()?;
        self.prev = hex::encode(Sha256::digest(line.as_bytes()));
        self.seq += 1;
        Ok(())
    }

    /// The SHA-256 of the last record's line (GENESIS when empty): what a
    /// report records so the last record cannot be edited unseen.
    pub fn head(&self) -> &str {
        &self.prev
    }

    /// How many records were appended.
    pub fn records(&self) -> u64 {
        self.seq
    }

    /// The output (to sync a log on a file to the disk).
    pub fn get_ref(&self) -> &W {
        &self.out
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

/// Where a chain breaks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainProblem {
    /// 1-based line number in the log.
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for ChainProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "audit log line {}: {}", self.line, self.message)
    }
}

/// Check a whole log: every line a JSON object, `seq` counting from 0,
/// `prev` the SHA-256 of the line before (GENESIS first). Returns the
/// problems (empty when the chain holds) and the hash of the last line.
pub fn verify_chain(text: &str) -> (Vec<ChainProblem>, String) {
    let mut problems = Vec::new();
    let mut prev = GENESIS.to_string();
    let lines: Vec<&str> = text.split_terminator('\n').collect();
    if !text.is_empty() && !text.ends_with('\n') {
        problems.push(ChainProblem {
            line: lines.len(),
            message: "the last record is cut short (no newline)".into(),
        });
    }
    for (i, line) in lines.iter().enumerate() {
        let n = i + 1;
        let mut problem = |m: String| {
            problems.push(ChainProblem {
                line: n,
                message: m,
            })
        };
        match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(r)) => {
                match r.get("seq").and_then(Value::as_u64) {
                    Some(s) if s == i as u64 => {}
                    Some(s) => problem(format!(
                        "seq is {s}, expected {i} (a record was removed, inserted or moved)"
                    )),
                    None => problem("no seq".into()),
                }
                match r.get("prev").and_then(Value::as_str) {
                    Some(p) if p == prev => {}
                    Some(p) => problem(format!(
                        "prev is {p}, but the record before hashes to {prev} (the record before was changed, removed or moved)"
                    )),
                    None => problem("no prev".into()),
                }
            }
            _ => problem("not a JSON object".into()),
        }
        prev = hex::encode(Sha256::digest(line.as_bytes()));
    }
    (problems, prev)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log() -> (String, String) {
        let mut a = AuditLog::new(Vec::new());
        for (i, e) in [
            "run_started",
            "scope_accepted",
            "rate_applied",
            "run_finished",
        ]
        .iter()
        .enumerate()
        {
            let mut f = Map::new();
            f.insert("n".into(), Value::from(i));
            a.append(e, "2026-11-26T12:00:00Z", f).unwrap();
        }
        let head = a.head().to_string();
        (String::from_utf8(a.into_inner()).unwrap(), head)
    }

    #[test]
    fn an_intact_chain_verifies_and_ends_at_the_head() {
        let (text, head) = log();
        let (problems, last) = verify_chain(&text);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(last, head);
        assert!(text.lines().next().unwrap().contains(GENESIS));
    }

    #[test]
    fn every_removal_reordering_and_edit_is_caught() {
        let (text, head) = log();
        let lines: Vec<&str> = text.lines().collect();
        let join = |ls: &[&str]| ls.iter().map(|l| format!("{l}\n")).collect::<String>();
        for i in 0..lines.len() {
            let mut removed = lines.clone();
            removed.remove(i);
            let (p, last) = verify_chain(&join(&removed));
            assert!(
                !p.is_empty() || last != head,
                "removing record {i} went unnoticed"
            );
        }
        for i in 0..lines.len() - 1 {
            let mut swapped = lines.clone();
            swapped.swap(i, i + 1);
            assert!(
                !verify_chain(&join(&swapped)).0.is_empty(),
                "swapping {i} and {}",
                i + 1
            );
        }
        for i in 0..lines.len() {
            let edited: Vec<String> = lines
                .iter()
                .enumerate()
                .map(|(j, l)| {
                    if j == i {
                        l.replace("\"n\":", "\"n\": ")
                    } else {
                        l.to_string()
                    }
                })
                .collect();
            let text = edited.iter().map(|l| format!("{l}\n")).collect::<String>();
            let (p, last) = verify_chain(&text);
            // An edit breaks the next record's prev, or (the last one) the head.
            assert!(
                !p.is_empty() || last != head,
                "editing record {i} went unnoticed"
            );
            if i + 1 < lines.len() {
                assert_eq!(p[0].line, i + 2, "{p:?}");
            }
        }
        assert!(
            !verify_chain(&text[..text.len() - 1]).0.is_empty(),
            "a cut last line"
        );
    }
}
