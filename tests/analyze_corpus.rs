//! `sonde analyze` agrees with tshark on the shared corpus of real captures.
//! Expected values: tests/corpus/expected.tsv, made by tests/corpus/expected.sh
//! (the command is in that script's header).

use std::path::PathBuf;

use sonde::analyze::{AnalyzeOptions, analyze};

fn corpus() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus");
    assert!(
        dir.is_dir(),
        "the shared capture corpus is missing at {}",
        dir.display()
    );
    dir
}

#[test]
fn counts_match_tshark_for_every_corpus_file() {
    let expected = include_str!("corpus/expected.tsv");
    let mut lines = expected.lines();
    let header: Vec<&str> = lines.next().unwrap().split('\t').collect();
    let mut mismatches = Vec::new();
    let mut files = 0;
    for line in lines {
        let cols: Vec<&str> = line.split('\t').collect();
        let file = cols[0];
        let report = analyze(&[corpus().join(file)], &AnalyzeOptions::default())
            .unwrap_or_else(|e| panic!("{file}: {}", e.message));
        assert!(
            report.warnings.is_empty() || file.starts_with("malformed/"),
            "{file}: {:?}",
            report.warnings
        );
        files += 1;
        for (name, want) in header.iter().zip(&cols).skip(1) {
            let want: u64 = want.parse().unwrap();
            let got = match *name {
                "frames" => report.stats.summary.packets,
                "tcp_convs" => report.stats.summary.tcp_conversations as u64,
                "udp_convs" => report.stats.summary.udp_conversations as u64,
                proto => report.stats.protocols.get(proto).map_or(0, |c| c.packets),
            };
            if got != want {
                mismatches.push(format!("{file}: {name}: sonde {got}, tshark {want}"));
            }
        }
    }
    assert!(files >= 30, "only {files} corpus files listed");
    assert!(
        mismatches.is_empty(),
        "differences from tshark:\n{}",
        mismatches.join("\n")
    );
}
