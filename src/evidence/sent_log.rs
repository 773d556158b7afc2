//! The sent-probe log of compact evidence (`--evidence compact`): instead
//! of a pcap record per probe, what regenerates every probe exactly.
//!
//! A scan's probes are a function of its plan (targets, ports, kinds, DNS
//! questions, seed, shard), its header template and its cookie key: the
//! position of a probe in its kind's keyed order names its target and
//! port, the key its source port, sequence number and ids. So the log
//! holds, as JSON Lines:
//!
//! 1. a header with the plan, the template and the SHA-256 of the key (a
//!    commitment: the key stays secret while replies can still arrive);
//! 2. records of consecutive probes of one sending thread, kind, pass and
//!    source (the scan's writer gathers a thread's batches until its next
//!    half-second flush): the first probe's time, kind, pass, source
//!    address, the positions sent (as runs of `[first, count]` with the
//!    thread's stride) and a chained hash: `chain = SHA-256(previous chain
//!    ‖ SHA-256(the record's frames, each prefixed by its length as two
//!    bytes, big-endian) ‖ t ‖ pass ‖ step)` (t as 8 bytes, pass as 4,
//!    step as 8, big-endian: what the frames alone do not show), the first
//!    previous chain being the SHA-256 of the header line;
//! 3. once the run ends, an `end` record revealing the key, with the
//!    number of probes and the final chain.
//!
//! `sonde verify` ([`replay`]) rebuilds every frame from the header, the
//! positions and the revealed key, and checks the chain record by record:
//! the log proves which bytes were sent, in which order of records, at
//! about 160 bytes per record (a /16 × 1,000-port scan: 0.3 MB for 65.5M
//! probes) instead of 60-80 bytes per probe.

use std::io::{BufRead, Write};
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::probe::plan::ProbePlan;
use crate::probe::{CookieKey, DnsQuestion, ProbeTemplate, qtype_name};
use crate::scope::ProbeKind;
use crate::targets::index::Shard;
use crate::targets::{AddrRange, IpSet, PortSet};

/// The log's format name, in its header. Version 2 chains each record's
/// time, pass and stride with its frames (issue 26: a record's time could
/// be edited unseen, since frames do not depend on it).
pub const FORMAT: &str = "sonde-sent-log/2";
/// The first format, still read: its chain covers the frames only.
pub const FORMAT_V1: &str = "sonde-sent-log/1";

/// What the probes of a run are made from.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SentLogHeader {
    pub format: String,
    /// SHA-256 of the cookie key's 16 bytes; the key itself is in the
    /// `end` record.
    pub key_sha256: String,
    pub seed: u64,
    /// `I/N`.
    pub shard: String,
    pub kinds: Vec<String>,
    /// Target ranges, each `[first, last]`.
    pub targets: Vec<[IpAddr; 2]>,
    pub ports: String,
    pub dns_port: u16,
    /// `NAME:TYPE`.
    pub dns_questions: Vec<String>,
    pub ttl: u8,
    pub mss: u16,
    pub window: u16,
}

/// What a scan's header is made of.
pub struct PlanParts<'a> {
    pub targets: &'a IpSet,
    pub ports: &'a PortSet,
    pub kinds: &'a [ProbeKind],
    pub dns_questions: &'a [DnsQuestion],
    pub dns_port: u16,
    pub seed: u64,
    pub shard: Shard,
    pub template: ProbeTemplate,
}

impl SentLogHeader {
    pub fn new(parts: &PlanParts<'_>, key: &CookieKey) -> SentLogHeader {
        SentLogHeader {
            format: FORMAT.into(),
            key_sha256: hex::encode(Sha256::digest(key.to_bytes())),
            seed: parts.seed,
            shard: format!("{}/{}", parts.shard.index + 1, parts.shard.count),
            kinds: parts.kinds.iter().map(|k| k.name().to_string()).collect(),
            targets: parts
                .targets
                .ranges()
                .map(|r| [r.first(), r.last()])
                .collect(),
            ports: parts.ports.to_string(),
            dns_port: parts.dns_port,
            dns_questions: parts
                .dns_questions
                .iter()
                .map(|q| format!("{}:{}", q.name, qtype_name(q.qtype)))
                .collect(),
            ttl: parts.template.ttl,
            mss: parts.template.mss,
            window: parts.template.window,
        }
    }
}

/// One batch of probes: where in the plan they came from, and the chain.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SentRecord {
    /// When the batch's first probe was built (ns since the Unix epoch).
    pub t: i64,
    pub kind: String,
    pub pass: u32,
    pub src: IpAddr,
    /// The stride between positions in a run (the shard's, times the
    /// sending threads).
    pub step: u64,
    /// `[first position, count]`: positions first, first + step, ...
    pub runs: Vec<[u64; 2]>,
    /// The chained hash after this batch (hex).
    pub chain: String,
}

/// The last record: the key, revealed once nothing more is sent or awaited.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SentEnd {
    pub probes: u64,
    pub chain: String,
    /// The cookie key (hex, 16 bytes).
    pub key: String,
}

#[derive(Serialize, Deserialize)]
struct EndLine {
    end: SentEnd,
}

/// The hash of one batch's frames, as chained.
#[derive(Default)]
pub struct BatchDigest {
    h: Sha256,
}

impl BatchDigest {
    pub fn add(&mut self, frame: &[u8]) {
        self.h.update((frame.len() as u16).to_be_bytes());
        self.h.update(frame);
    }

    /// The chain after this batch; `meta` (t, pass, step) in format 2.
    fn chain(self, previous: &[u8; 32], meta: Option<(i64, u32, u64)>) -> [u8; 32] {
        let mut c = Sha256::new();
        c.update(previous);
        c.update(self.h.finalize());
        if let Some((t, pass, step)) = meta {
            c.update(t.to_be_bytes());
            c.update(pass.to_be_bytes());
            c.update(step.to_be_bytes());
        }
        c.finalize().into()
    }
}

/// Writes the log as the run goes (the scan's writer thread owns it).
pub struct SentLogWriter<W: Write> {
    w: std::io::BufWriter<W>,
    chain: [u8; 32],
    probes: u64,
}

impl<W: Write> SentLogWriter<W> {
    pub fn new(w: W, header: &SentLogHeader) -> std::io::Result<SentLogWriter<W>> {
        let mut w = std::io::BufWriter::with_capacity(1 << 16, w);
        let line = serde_json::to_string(header)?;
        w.write_all(line.as_bytes())?;
        w.write_all(b"\n")?;
        Ok(SentLogWriter {
            w,
            chain: Sha256::digest(line.as_bytes()).into(),
            probes: 0,
        })
    }

    /// Record one batch of `probes` probes from `src`, sent at the
    /// positions `runs` (each `[first, count]` with stride `step`), whose
    /// frames hashed to `digest`.
    #[allow(clippy::too_many_arguments)]
    pub fn record(
        &mut self,
        t: i64,
        kind: ProbeKind,
        pass: u32,
        src: IpAddr,
        step: u64,
        runs: Vec<[u64; 2]>,
        digest: BatchDigest,
    ) -> std::io::Result<()> {
        self.chain = digest.chain(&self.chain, Some((t, pass, step)));
        self.probes += runs.iter().map(|r| r[1]).sum::<u64>();
        let rec = SentRecord {
            t,
            kind: kind.name().into(),
            pass,
            src,
            step,
            runs,
            chain: hex::encode(self.chain),
        };
        serde_json::to_writer(&mut self.w, &rec)?;
        self.w.write_all(b"\n")
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        self.w.flush()
    }

    pub fn probes(&self) -> u64 {
        self.probes
    }

    /// Reveal the key: the last record. Gives the stream back.
    pub fn finish(mut self, key: &CookieKey) -> std::io::Result<W> {
        let end = EndLine {
            end: SentEnd {
                probes: self.probes,
                chain: hex::encode(self.chain),
                key: hex::encode(key.to_bytes()),
            },
        };
        serde_json::to_writer(&mut self.w, &end)?;
        self.w.write_all(b"\n")?;
        self.w.into_inner().map_err(|e| e.into_error())
    }
}

/// What a replay of the log found.
#[derive(Debug, Default, PartialEq)]
pub struct Replay {
    /// Probes rebuilt and found as the chain recorded.
    pub probes: u64,
    pub records: u64,
    /// Problems, in the order met (the first few; `more_problems` counts the rest).
    pub problems: Vec<String>,
    pub more_problems: u64,
}

const SHOWN_PROBLEMS: usize = 20;

impl Replay {
    fn problem(&mut self, p: String) {
        if self.problems.len() < SHOWN_PROBLEMS {
            self.problems.push(p);
        } else {
            self.more_problems += 1;
        }
    }
}

/// Rebuild every probe the log records and check its chain, record by
/// record; `Err` only when the log cannot be read at all.
pub fn replay<R: BufRead>(log: R) -> std::io::Result<Replay> {
    replay_each(log, |_| {})
}

/// [`replay`], handing every rebuilt probe (an IP packet) to `on_probe`
/// in the order the log records them.
pub fn replay_each<R: BufRead>(log: R, mut on_probe: impl FnMut(&[u8])) -> std::io::Result<Replay> {
    let mut out = Replay::default();
    let mut lines = log.lines().enumerate();
    let Some((_, header_line)) = lines.next() else {
        out.problem("the log is empty: no header".into());
        return Ok(out);
    };
    let header_line = header_line?;
    let header: SentLogHeader = match serde_json::from_str(&header_line) {
        Ok(h) => h,
        Err(e) => {
            out.problem(format!("line 1: not a sent-log header: {e}"));
            return Ok(out);
        }
    };
    let chains_meta = match header.format.as_str() {
        FORMAT => true,
        FORMAT_V1 => false,
        other => {
            out.problem(format!(
                "line 1: format {other:?}, this sonde reads {FORMAT:?} and {FORMAT_V1:?}"
            ));
            return Ok(out);
        }
    };
    let plan = match Rebuild::from_header(&header) {
        Ok(p) => p,
        Err(e) => {
            out.problem(format!("line 1: {e}"));
            return Ok(out);
        }
    };
    // The records are kept (small: a few runs each) until the key is
    // revealed at the end; the frames are rebuilt then.
    let mut records: Vec<(usize, SentRecord)> = Vec::new();
    let mut end: Option<(usize, SentEnd)> = None;
    for (i, line) in lines {
        let line = line?;
        let n = i + 1;
        if end.is_some() {
            out.problem(format!("line {n}: a record after the end record"));
            continue;
        }
        if let Ok(e) = serde_json::from_str::<EndLine>(&line) {
            end = Some((n, e.end));
            continue;
        }
        match serde_json::from_str::<SentRecord>(&line) {
            Ok(r) => records.push((n, r)),
            Err(e) => out.problem(format!("line {n}: not a sent-log record: {e}")),
        }
    }
    let Some((end_line, end)) = end else {
        out.problem(
            "no end record: the run did not finish (a second Ctrl-C, a crash), so the key was never revealed and the probes cannot be rebuilt"
                .into(),
        );
        return Ok(out);
    };
    let key = match hex::decode(&end.key)
        .ok()
        .and_then(|b| <[u8; 16]>::try_from(b).ok())
    {
        Some(b) if hex::encode(Sha256::digest(b)) == header.key_sha256 => CookieKey::from_bytes(b),
        Some(_) => {
            out.problem(format!(
                "line {end_line}: the key revealed is not the one the header committed to"
            ));
            return Ok(out);
        }
        None => {
            out.problem(format!("line {end_line}: the key is not 32 hex digits"));
            return Ok(out);
        }
    };
    let mut chain: [u8; 32] = Sha256::digest(header_line.as_bytes()).into();
    let mut buf = Vec::with_capacity(128);
    for (n, rec) in &records {
        match plan.rebuild(rec, &key, &mut buf, &mut on_probe) {
            Ok((digest, probes)) => {
                let next = digest.chain(&chain, chains_meta.then_some((rec.t, rec.pass, rec.step)));
                if hex::encode(next) != rec.chain {
                    out.problem(format!(
                        "line {n}: the rebuilt probes hash to chain {}, the log recorded {}",
                        hex::encode(next),
                        rec.chain
                    ));
                }
                // The log's own chain goes on, so one bad record is
                // reported once, not at every record after it.
                chain = hex::decode(&rec.chain)
                    .ok()
                    .and_then(|b| <[u8; 32]>::try_from(b).ok())
                    .unwrap_or(next);
                out.probes += probes;
            }
            Err(e) => out.problem(format!("line {n}: {e}")),
        }
        out.records += 1;
    }
    if hex::encode(chain) != end.chain {
        out.problem(format!(
            "line {end_line}: the end record's chain {} is not the last record's {}",
            end.chain,
            hex::encode(chain)
        ));
    }
    if out.probes != end.probes {
        out.problem(format!(
            "line {end_line}: the end record counts {} probes, the records hold {}",
            end.probes, out.probes
        ));
    }
    Ok(out)
}

/// The plan and template a header describes.
struct Rebuild {
    plan: ProbePlan,
    shard: Shard,
    template: ProbeTemplate,
    questions: Vec<DnsQuestion>,
}

impl Rebuild {
    fn from_header(h: &SentLogHeader) -> Result<Rebuild, String> {
        let mut targets = IpSet::new();
        for [a, b] in &h.targets {
            targets.insert(AddrRange::new(*a, *b).map_err(|e| format!("target {a}-{b}: {e}"))?);
        }
        let ports = if h.ports.is_empty() {
            PortSet::new()
        } else {
            PortSet::parse(&h.ports).map_err(|e| format!("ports {:?}: {e}", h.ports))?
        };
        let kinds: Vec<ProbeKind> = h
            .kinds
            .iter()
            .map(|k| k.parse())
            .collect::<Result<_, _>>()?;
        let questions: Vec<DnsQuestion> = h
            .dns_questions
            .iter()
            .map(|q| DnsQuestion::parse(q))
            .collect::<Result<_, _>>()?;
        let shard = Shard::parse(&h.shard)?;
        let plan = ProbePlan::new(
            &targets,
            &ports,
            &kinds,
            questions.len(),
            h.dns_port,
            h.seed,
        )
        .map_err(|e| e.to_string())?;
        Ok(Rebuild {
            plan,
            shard,
            template: ProbeTemplate {
                ttl: h.ttl,
                mss: h.mss,
                window: h.window,
            },
            questions,
        })
    }

    /// The digest of a record's frames, rebuilt, and how many there are.
    fn rebuild(
        &self,
        rec: &SentRecord,
        key: &CookieKey,
        buf: &mut Vec<u8>,
        on_probe: &mut impl FnMut(&[u8]),
    ) -> Result<(BatchDigest, u64), String> {
        let kind: ProbeKind = rec.kind.parse()?;
        let plan = self
            .plan
            .kind(kind)
            .ok_or_else(|| format!("{kind} probes, which the header does not plan"))?;
        if rec.step == 0 || !rec.step.is_multiple_of(self.shard.count) {
            return Err(format!(
                "stride {} is not a multiple of the shard's {}",
                rec.step, self.shard.count
            ));
        }
        let mut digest = BatchDigest::default();
        let mut probes = 0u64;
        for &[first, count] in &rec.runs {
            if first % self.shard.count != self.shard.index {
                return Err(format!(
                    "position {first} is not in shard {}/{}",
                    self.shard.index + 1,
                    self.shard.count
                ));
            }
            let last = count
                .checked_sub(1)
                .and_then(|c| c.checked_mul(rec.step))
                .and_then(|d| first.checked_add(d))
                .filter(|&l| l < plan.len())
                .ok_or_else(|| {
                    format!(
                        "run [{first}, {count}] leaves the {} positions of the {kind} plan",
                        plan.len()
                    )
                })?;
            let mut pos = first;
            loop {
                let p = plan.at_position(pos);
                p.build(buf, rec.src, key, &self.template, &self.questions)
                    .map_err(|e| format!("position {pos}: {e}"))?;
                digest.add(buf);
                on_probe(buf);
                probes += 1;
                if pos == last {
                    break;
                }
                pos += rec.step;
            }
        }
        Ok((digest, probes))
    }
}

/// Fold positions (in the order sent) into runs of stride `step`.
pub fn runs(positions: impl IntoIterator<Item = u64>, step: u64) -> Vec<[u64; 2]> {
    let mut out: Vec<[u64; 2]> = Vec::new();
    for p in positions {
        match out.last_mut() {
            Some([first, count]) if *first + *count * step == p => *count += 1,
            _ => out.push([p, 1]),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts<'a>(targets: &'a IpSet, ports: &'a PortSet, q: &'a [DnsQuestion]) -> PlanParts<'a> {
        PlanParts {
            targets,
            ports,
            kinds: &[ProbeKind::Syn, ProbeKind::Icmp, ProbeKind::Dns],
            dns_questions: q,
            dns_port: 53,
            seed: 42,
            shard: Shard { index: 1, count: 2 },
            template: ProbeTemplate::default(),
        }
    }

    /// A log written as a scan writes it: every position of the shard,
    /// in batches of 5, frames built by the scan's own code.
    fn write_log(key: &CookieKey) -> Vec<u8> {
        let targets: IpSet = [AddrRange::cidr("198.18.0.0".parse().unwrap(), 29).unwrap()]
            .into_iter()
            .collect();
        let ports = PortSet::parse("22,80,443").unwrap();
        let q = vec![
            DnsQuestion::parse("example.com:A").unwrap(),
            DnsQuestion::parse("example.org:AAAA").unwrap(),
        ];
        let p = parts(&targets, &ports, &q);
        let header = SentLogHeader::new(&p, key);
        let plan = ProbePlan::new(&targets, &ports, p.kinds, 2, 53, 42).unwrap();
        let src: IpAddr = "198.18.1.1".parse().unwrap();
        let mut w = SentLogWriter::new(Vec::new(), &header).unwrap();
        let mut buf = Vec::new();
        for k in plan.kinds() {
            let positions: Vec<u64> = p.shard.positions(k.len()).collect();
            for batch in positions.chunks(5) {
                let mut d = BatchDigest::default();
                for &pos in batch {
                    let pp = k.at_position(pos);
                    pp.build(&mut buf, src, key, &p.template, &q).unwrap();
                    d.add(&buf);
                }
                let r = runs(batch.iter().copied(), 2);
                w.record(1, k.kind, 0, src, 2, r, d).unwrap();
            }
        }
        w.finish(key).unwrap()
    }

    #[test]
    fn a_written_log_replays_whole() {
        let key = CookieKey::from_parts(7, 9);
        let log = write_log(&key);
        let r = replay(&log[..]).unwrap();
        assert_eq!(r.problems, Vec::<String>::new());
        // Shard 2/2 of 8 hosts × (3 ports + 1 echo + 2 questions).
        assert_eq!(r.probes, 8 * 6 / 2);
    }

    #[test]
    fn a_changed_record_or_key_is_found() {
        let key = CookieKey::from_parts(7, 9);
        let log = String::from_utf8(write_log(&key)).unwrap();
        let lines: Vec<&str> = log.lines().collect();
        // Another position in the second record: the chain breaks there.
        let mut rec: SentRecord = serde_json::from_str(lines[2]).unwrap();
        rec.runs[0][0] += 2;
        let mut changed = lines.clone();
        let s = serde_json::to_string(&rec).unwrap();
        changed[2] = &s;
        let r = replay(changed.join("\n").as_bytes()).unwrap();
        assert_eq!(r.problems.len(), 1, "{:?}", r.problems);
        assert!(r.problems[0].starts_with("line 3: the rebuilt probes hash"));
        // Another key than the one committed to.
        let other = log.replace(
            &hex::encode(key.to_bytes()),
            &hex::encode(CookieKey::from_parts(1, 1).to_bytes()),
        );
        let r = replay(other.as_bytes()).unwrap();
        assert!(r.problems[0].contains("not the one the header committed to"));
        // Another time for a record (format 2 chains it; the frames do not
        // show it).
        let mut rec: SentRecord = serde_json::from_str(lines[2]).unwrap();
        rec.t += 1_000_000_000;
        let mut changed = lines.clone();
        let s = serde_json::to_string(&rec).unwrap();
        changed[2] = &s;
        let r = replay(changed.join("\n").as_bytes()).unwrap();
        assert_eq!(r.problems.len(), 1, "{:?}", r.problems);
        assert!(r.problems[0].starts_with("line 3: the rebuilt probes hash"));
        // No end record: nothing can be rebuilt, and it says why.
        let cut = lines[..lines.len() - 1].join("\n");
        let r = replay(cut.as_bytes()).unwrap();
        assert!(r.problems[0].starts_with("no end record"));
        // A dropped record: the next one's chain breaks, and the count.
        let mut dropped = lines.clone();
        dropped.remove(3);
        let r = replay(dropped.join("\n").as_bytes()).unwrap();
        assert!(!r.problems.is_empty());
    }

    #[test]
    fn runs_fold_strided_positions() {
        assert_eq!(runs([1, 3, 5, 9, 11, 4], 2), vec![[1, 3], [9, 2], [4, 1]]);
        assert_eq!(runs([], 2), Vec::<[u64; 2]>::new());
    }
}
