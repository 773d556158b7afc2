//! Scale-out (issue 17), as if on three machines: three scanner namespaces,
//! each its own host with its own address on its own link into the lab,
//! run shards 1/3, 2/3 and 3/3 of one scan at once. Merged, the open ports
//! equal the lab's single-machine scan exactly, no (target, port) was
//! probed by two shards (counted from the shards' pcaps), the merge
//! verifies, and a shard of another seed, a missing, a duplicate and a
//! tampered shard are each refused with a message naming the cause.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::process::{Command, Stdio};

use support::evidence::{open_ports, report_json};
use support::lab::*;

const TARGETS: &str = "198.18.1.0/24";
const PORTS: &str = "1-200,8080,8081";
const SEED: &str = "424242";

/// The (target, port) pairs a shard's own pcap shows it sent SYNs to.
fn probed(pcap: &std::path::Path, source: std::net::Ipv4Addr) -> BTreeSet<(String, String)> {
    support::evidence::syns_per_target(pcap, &source.to_string())
        .into_keys()
        .collect()
}

fn output(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn three_machines_scan_shards_that_merge_into_the_single_machine_scan() {
    let mut lab = Lab::new();
    let machines: Vec<(String, std::net::Ipv4Addr)> = (0..3).map(|_| lab.add_scanner()).collect();
    let dir = tempfile::tempdir().unwrap();

    // One machine, the whole scan.
    let single = dir.path().join("single");
    let (code, out, err) = lab.sonde(&[
        "scan",
        "--scope",
        "scopes/lab.toml",
        TARGETS,
        "-p",
        PORTS,
        "--rate",
        "20000",
        "--wait",
        "0.5",
        "-o",
        single.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let expected = open_ports(&report_json(&single.join("report.json")));
    assert!(expected.contains(&(IpAddr::V4(WEB_HOST_V4), 8080)));

    // Each machine signs its runs with its own key; the merge has one too.
    let keys = dir.path().join("keys");
    std::fs::create_dir(&keys).unwrap();
    for name in ["machine1", "machine2", "machine3", "merger", "stranger"] {
        let (code, out, err) =
            support::cli::sonde(&["keygen", "-o", keys.join(name).to_str().unwrap()]);
        assert_eq!(code, 0, "{out}{err}");
        assert!(out.contains(&format!("{name}.pub")), "{out}");
    }
    let key = |name: &str, ext: &str| keys.join(format!("{name}.{ext}")).display().to_string();

    // Three machines, one shard each, at once, each at the same per-host rate.
    let shard_dir = |k: usize| dir.path().join(format!("shard{k}"));
    let children: Vec<_> = machines
        .iter()
        .enumerate()
        .map(|(i, (ns, _))| {
            lab.sonde_in(ns)
                .args([
                    "scan",
                    "--scope",
                    "scopes/lab.toml",
                    TARGETS,
                    "-p",
                    PORTS,
                    "--rate",
                    "5000",
                    "--wait",
                    "0.5",
                    "--seed",
                    SEED,
                    "--shard",
                    &format!("{}/3", i + 1),
                    "--sign-key",
                    &key(&format!("machine{}", i + 1), "key"),
                    "-o",
                ])
                .arg(shard_dir(i + 1))
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for (i, c) in children.into_iter().enumerate() {
        let out = c.wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "shard {}: {}",
            i + 1,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // No (target, port) probed by two shards; together, every one.
    let sets: Vec<BTreeSet<(String, String)>> = machines
        .iter()
        .enumerate()
        .map(|(i, (_, addr))| probed(&shard_dir(i + 1).join("capture.pcap"), *addr))
        .collect();
    for a in 0..3 {
        for b in a + 1..3 {
            let both: Vec<_> = sets[a].intersection(&sets[b]).take(5).collect();
            assert!(
                both.is_empty(),
                "shards {} and {} both probed {both:?}",
                a + 1,
                b + 1
            );
        }
    }
    let all: usize = sets.iter().map(BTreeSet::len).sum();
    assert_eq!(
        all,
        256 * 202,
        "the shards together probed every (target, port)"
    );

    // Merged: the single machine's open ports, exactly; it verifies.
    let merged = dir.path().join("merged");
    let shard_args: Vec<String> = (1..=3)
        .map(|k| shard_dir(k).display().to_string())
        .collect();
    let trust: Vec<String> = (1..=3)
        .map(|k| key(&format!("machine{k}"), "pub"))
        .collect();
    let merger_key = key("merger", "key");
    let mut merge_args: Vec<&str> = vec!["merge"];
    merge_args.extend(shard_args.iter().map(String::as_str));
    merge_args.extend([
        "-o",
        merged.to_str().unwrap(),
        "--sign-key",
        &merger_key,
        "--trust",
    ]);
    merge_args.extend(trust.iter().map(String::as_str));
    let (code, out, err) = support::cli::sonde(&merge_args);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("signed with ed25519 key"), "{out}");
    assert!(out.contains("merged 3 shards of one scan"), "{out}");
    let r = report_json(&merged.join("report.json"));
    let found = open_ports(&r);
    assert!(
        found == expected,
        "merged open ports differ: missing {:?}, extra {:?}",
        expected.difference(&found).take(10).collect::<Vec<_>>(),
        found.difference(&expected).take(10).collect::<Vec<_>>()
    );
    assert_eq!(r["probes"], 256 * 202);
    assert_eq!(r["merge"]["shards"].as_array().unwrap().len(), 3);
    assert_eq!(
        r["capture_analysis"]["input"].as_array().unwrap().len(),
        3,
        "every shard's capture analyzed as one set"
    );
    let (code, verified, _) = support::cli::sonde(&[
        "verify",
        merged.to_str().unwrap(),
        "--pubkey",
        &key("merger", "pub"),
    ]);
    assert_eq!(code, 0, "{verified}");
    assert!(
        verified.contains("signed with the trusted ed25519 key"),
        "{verified}"
    );
    // Signed, but not by the key given.
    let (code, verified, _) = support::cli::sonde(&[
        "verify",
        merged.to_str().unwrap(),
        "--pubkey",
        &key("stranger", "pub"),
    ]);
    assert_eq!(code, 1, "{verified}");
    assert!(
        verified.contains("which is not one of the keys given"),
        "{verified}"
    );
    // The signature comes first: a run the keys given do not vouch for
    // has none of its files (nor its shards) read (issue 26).
    assert!(verified.contains("were not hashed"), "{verified}");
    assert!(!verified.contains("capture.pcap"), "{verified}");
    assert!(
        !verified.contains("is the run the merge read"),
        "{verified}"
    );

    let merge = |dirs: &[&std::path::Path]| {
        let out = dir.path().join(format!("m{}", rand_suffix()));
        let mut c = Command::new(env!("CARGO_BIN_EXE_sonde"));
        c.arg("merge").args(dirs).arg("-o").arg(&out);
        let r = output(&mut c);
        assert!(!out.exists(), "a refused merge created {}", out.display());
        r
    };
    let (s1, s2, s3) = (shard_dir(1), shard_dir(2), shard_dir(3));

    // A missing shard, a shard given twice.
    let (code, _, err) = merge(&[&s1, &s3]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("shard 2/3 missing"), "{err}");
    let (code, _, err) = merge(&[&s1, &s2, &s2, &s3]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("shard 2/3 given twice"), "{err}");

    // Shard 2/3 of the same scan but for `changed` (flag and value).
    let shard_2_with = |name: &str, changed: [&str; 2]| {
        let out_dir = dir.path().join(name);
        let mut args = vec![
            "scan",
            "--scope",
            "scopes/lab.toml",
            TARGETS,
            "-p",
            PORTS,
            "--rate",
            "20000",
            "--wait",
            "0.3",
            "--seed",
            SEED,
            "--shard",
            "2/3",
        ];
        match args.iter().position(|a| *a == changed[0]) {
            Some(i) => args[i + 1] = changed[1],
            None => args.extend(changed),
        }
        args.extend(["-o", out_dir.to_str().unwrap()]);
        let (code, out, err) = output(lab.sonde_in(&machines[1].0).args(&args));
        assert_eq!(code, 0, "{out}{err}");
        out_dir
    };

    // A shard of another seed.
    let other = shard_2_with("other-seed", ["--seed", "7"]);
    let (code, _, err) = merge(&[&s1, &other, &s3]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("shards of different scans: their seed differs"),
        "{err}"
    );
    // Regression (issue 26): a shard that recorded other results
    // (--record all) merged silently into a set that did not.
    let other = shard_2_with("other-record", ["--record", "all"]);
    let (code, _, err) = merge(&[&s1, &other, &s3]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("shards of different scans: their record differs"),
        "{err}"
    );

    // Shards must be signed by a trusted key: machine 3's is left out.
    let untrusted_out = dir.path().join("untrusted");
    let (code, _, err) = output(
        Command::new(env!("CARGO_BIN_EXE_sonde"))
            .arg("merge")
            .args([&s1, &s2, &s3])
            .arg("-o")
            .arg(&untrusted_out)
            .args(["--trust", &key("machine1", "pub"), &key("machine2", "pub")]),
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&format!("shard {} does not verify", s3.display()))
            && err.contains("which is not one of the keys given")
            && err.contains("not signed by a trusted key is not merged")
            && !err.contains("damaged"),
        "{err}"
    );
    assert!(!untrusted_out.exists());

    // One key per scanner, bound to its shard (issue 26: with one key
    // trusted for every shard, one scanner's key vouched for the others').
    let bound = |keys: [&str; 3], out: &str| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sonde"));
        cmd.arg("merge")
            .args([&s1, &s2, &s3])
            .arg("-o")
            .arg(dir.path().join(out))
            .arg("--trust-shard");
        for (i, k) in keys.iter().enumerate() {
            cmd.arg(format!("{}={}", i + 1, key(k, "pub")));
        }
        output(&mut cmd)
    };
    let (code, out, err) = bound(["machine1", "machine2", "machine3"], "bound");
    assert_eq!(code, 0, "{out}{err}");
    let (code, _, err) = bound(["machine2", "machine1", "machine3"], "swapped");
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("shard 1/3 (")
            && err.contains("not by the key trusted for shard 1")
            && err.contains("merged only under its own scanner's key"),
        "{err}"
    );
    assert!(!dir.path().join("swapped").exists());
    let (code, _, err) = output(
        Command::new(env!("CARGO_BIN_EXE_sonde"))
            .arg("merge")
            .args([&s1, &s2, &s3])
            .arg("-o")
            .arg(dir.path().join("half"))
            .args(["--trust-shard", &format!("1={}", key("machine1", "pub"))]),
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&format!("shard {} does not verify", s2.display()))
            && err.contains("not signed by a trusted key is not merged"),
        "{err}"
    );
    let (code, _, err) = output(
        Command::new(env!("CARGO_BIN_EXE_sonde"))
            .arg("merge")
            .args([&s1, &s2, &s3])
            .arg("-o")
            .arg(dir.path().join("bad"))
            .args(["--trust-shard", "0=x.pub"]),
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("is not a shard number"), "{err}");

    // A tampered shard: one byte of its results changed.
    let tampered = dir.path().join("tampered");
    let cp = Command::new("cp")
        .arg("-a")
        .arg(&s3)
        .arg(&tampered)
        .status()
        .unwrap();
    assert!(cp.success());
    let results = tampered.join("results.ndjson");
    let mut bytes = std::fs::read(&results).unwrap();
    let i = bytes.iter().position(|&b| b == b'9').unwrap_or(10);
    bytes[i] = if bytes[i] == b'9' { b'8' } else { b'9' };
    std::fs::write(&results, bytes).unwrap();
    let (code, _, err) = merge(&[&s1, &s2, &tampered]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&format!("shard {} does not verify", tampered.display()))
            && err.contains("results.ndjson"),
        "{err}"
    );

    // A shard changed after the merge: verify of the merge says so.
    let report = s2.join("report.json");
    let mut text = std::fs::read(&report).unwrap();
    text.push(b'\n');
    std::fs::write(&report, text).unwrap();
    let (code, verified, _) = support::cli::sonde(&["verify", merged.to_str().unwrap()]);
    assert_ne!(code, 0, "{verified}");
    assert!(verified.contains("shard 2/3 ("), "{verified}");
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::SeqCst)
}
