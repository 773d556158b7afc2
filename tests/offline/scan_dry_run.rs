//! `sonde scan --dry-run` (issue 16): the scan judged and planned as a
//! real one would be, nothing sent and nothing created; every refusal
//! listed, exit 3 when there is one. No root needed: no socket is opened.

use support::cli::sonde_in_crate;

#[test]
fn dry_run_prints_the_plan_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let xml = dir.path().join("scan.xml");
    let (code, out, err) = sonde_in_crate(&[
        "scan",
        "--scope",
        "scopes/lab.toml",
        "198.18.1.0/24",
        "--exclude",
        "198.18.1.128/25",
        "-p",
        "22,80,443",
        "--probe",
        "syn,icmp",
        "--rate",
        "100",
        "--shard",
        "1/2",
        "--seed",
        "7",
        "--dry-run",
        "-oX",
        xml.to_str().unwrap(),
        "-o",
        run.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.starts_with("dry run: nothing is sent and nothing is written\n"),
        "{out}"
    );
    assert!(out.contains("engagement LAB-0001"), "{out}");
    assert!(
        out.contains(
            "targets: 128 addresses in 1 range (excluded: 198.18.1.128/25)\n  198.18.1.0/25 (128)\n"
        ),
        "{out}"
    );
    // The shard's half of 128 x 3 SYNs and 128 pings.
    assert!(
        out.contains(
            "probes: syn 128 x 3 ports (22,80,443) = 192; icmp 128 = 64; 256 in all (shard 1/2)"
        ),
        "{out}"
    );
    assert!(
        out.contains("time: about 2.6 s for the first pass at 100 pps"),
        "{out}"
    );
    assert!(
        out.contains("-oX/-oG/-oL/-oJ: not written in a dry run"),
        "{out}"
    );
    assert!(!run.exists(), "a dry run made the run directory");
    assert!(!xml.exists(), "a dry run wrote -oX");
}

#[test]
fn dry_run_lists_every_refusal_and_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    let scope = dir.path().join("small.toml");
    let lab = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scopes/lab.toml"),
    )
    .unwrap();
    std::fs::write(
        &scope,
        lab.replace("max_rate = 2000000", "max_rate = 2000000\nmax_probes = 100"),
    )
    .unwrap();
    let (code, out, err) = sonde_in_crate(&[
        "scan",
        "--scope",
        scope.to_str().unwrap(),
        "198.18.1.0/24",
        "-p",
        "22,80",
        "--source-ip",
        "198.18.200.200",
        "--dry-run",
    ]);
    assert_eq!(code, 3, "{out}{err}");
    assert!(out.contains("probe budget 100 probes per run"), "{out}");
    let refused: Vec<&str> = out.lines().filter(|l| l.starts_with("refused: ")).collect();
    assert_eq!(refused.len(), 2, "{out}");
    assert!(
        refused[0].contains("512"),
        "the budget refusal names the plan: {out}"
    );
    assert!(refused[1].contains("198.18.200.200"), "{out}");
    assert!(
        out.ends_with("2 refusals: the scan would send nothing (exit 3)\n"),
        "{out}"
    );
}

#[test]
fn dry_run_names_the_exclusion_that_carves_out_a_deny_rule() {
    // The example engagement, its window widened so the test does not date.
    let dir = tempfile::tempdir().unwrap();
    let scope = dir.path().join("engagement.toml");
    let example = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scopes/example-engagement.toml"),
    )
    .unwrap()
    .lines()
    .map(|l| {
        if l.starts_with("not_before") {
            "not_before = 2024-01-01T00:00:00Z"
        } else if l.starts_with("not_after") {
            "not_after = 2099-12-31T23:59:59Z"
        } else {
            l
        }
    })
    .collect::<Vec<_>>()
    .join("\n");
    std::fs::write(&scope, example).unwrap();
    let (code, out, err) = sonde_in_crate(&[
        "scan",
        "--scope",
        scope.to_str().unwrap(),
        "198.18.10.0/24",
        "--dry-run",
    ]);
    assert_eq!(code, 3, "{out}{err}");
    assert!(
        out.contains("refused: 198.18.10.0/24 port 22/syn is denied by deny[0]"),
        "{out}"
    );
    assert!(
        out.contains("--exclude 198.18.10.128/25 takes that out"),
        "{out}"
    );
}

/// Issue 17: shards of different seeds overlap and leave gaps, so
/// `--shard` without `--seed` is refused, with the fix.
#[test]
fn a_shard_without_a_seed_is_refused() {
    let (code, out, err) = sonde_in_crate(&[
        "scan",
        "--scope",
        "scopes/lab.toml",
        "198.18.1.0/24",
        "--shard",
        "2/4",
        "--dry-run",
    ]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("--shard 2/4 without --seed"), "{err}");
    assert!(err.contains("give every shard the same --seed N"), "{err}");
    // The whole scan (1/1) needs no seed.
    let (code, _, err) = sonde_in_crate(&[
        "scan",
        "--scope",
        "scopes/lab.toml",
        "198.18.1.0/24",
        "--shard",
        "1/1",
        "--dry-run",
    ]);
    assert_eq!(code, 0, "{err}");
}
