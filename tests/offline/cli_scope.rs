//! `sonde scope check` through the real binary: output and exit codes.

use std::process::Command;

fn sonde(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sonde"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run sonde");
    (
        out.status.code().expect("exited"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// An instant inside `scopes/example-engagement.toml`'s validity window.
/// Regression: tests judged that scope "now" and all failed once its
/// window closed on 2026-12-04; no test may depend on today's date.
const INSIDE_EXAMPLE_WINDOW: &str = "2026-12-01T09:00:00+01:00";

/// The example engagement with its window around today, for the commands
/// that are always judged by the clock (a real scan).
fn example_engagement_open_now(dir: &std::path::Path) -> std::path::PathBuf {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scopes/example-engagement.toml"),
    )
    .unwrap();
    let now = time::OffsetDateTime::now_utc();
    let fmt = &time::format_description::well_known::Rfc3339;
    let window = |l: &str| {
        if l.starts_with("not_before") {
            format!(
                "not_before = {}",
                (now - time::Duration::days(1)).format(fmt).unwrap()
            )
        } else if l.starts_with("not_after") {
            format!(
                "not_after = {}",
                (now + time::Duration::days(1)).format(fmt).unwrap()
            )
        } else {
            l.to_string()
        }
    };
    let path = dir.join("engagement.toml");
    std::fs::write(
        &path,
        text.lines().map(window).collect::<Vec<_>>().join("\n"),
    )
    .unwrap();
    path
}

#[test]
fn help_and_version() {
    let (code, out, _) = sonde(&["--help"]);
    assert_eq!(code, 0);
    assert!(out.contains("scope") && out.contains("Exit codes"), "{out}");
    let (code, out, _) = sonde(&["--version"]);
    assert_eq!(
        (code, out.trim()),
        (0, concat!("sonde ", env!("CARGO_PKG_VERSION")))
    );
}

#[test]
fn readme_main_command_allows_loopback() {
    let (code, out, err) = sonde(&["scope", "check", "scopes/loopback.toml", "127.0.0.1:22"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("ALLOWED  127.0.0.1 port 22/syn: by allow[0] \"loopback\""),
        "{out}"
    );
    assert!(out.contains("engagement: LOCAL-LOOPBACK"), "{out}");
}

#[test]
fn every_shipped_scope_is_valid() {
    for f in [
        "scopes/loopback.toml",
        "scopes/lab.toml",
        "scopes/example-engagement.toml",
    ] {
        let (code, out, err) = sonde(&["scope", "check", f]);
        // the example engagement's window is in the past or future on most days
        assert!(code == 0, "{f}: {code}\n{out}{err}");
        assert!(out.contains("is valid"), "{f}: {out}");
    }
}

#[test]
fn refusal_exits_3_and_names_target_and_rule() {
    let (code, out, _) = sonde(&[
        "scope",
        "check",
        "scopes/lab.toml",
        "198.18.7.7:80",
        "192.0.2.1:80",
    ]);
    assert_eq!(code, 3, "{out}");
    assert!(
        out.contains("ALLOWED  198.18.7.7 port 80/syn: by allow[0] \"lab ranges\""),
        "{out}"
    );
    assert!(
        out.contains("REFUSED  192.0.2.1 port 80/syn is outside every allow rule"),
        "{out}"
    );
    assert!(out.contains("1 of 2 targets refused"), "{out}");
}

#[test]
fn nmap_style_ports_and_target_lists() {
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("targets.txt");
    std::fs::write(
        &list,
        "# lab hosts\n198.18.0.1 198.18.0.2\n2001:db8::/120 # v6\n",
    )
    .unwrap();
    let l = list.to_str().unwrap();
    let (code, out, err) = sonde(&["scope", "check", "scopes/lab.toml", "-iL", l, "-p-"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out.matches("ALLOWED").count(), 3, "{out}");
    assert!(out.contains("2001:db8::/120 port 1-65535/syn"), "{out}");
    let (code, out, _) = sonde(&[
        "scope",
        "check",
        "scopes/lab.toml",
        "198.18.0.1-20",
        "--top-ports",
        "10",
    ]);
    assert_eq!(code, 0);
    assert!(
        out.contains("198.18.0.1-198.18.0.20 port 21-23,25,80,110,139,443,445,3389/syn"),
        "{out}"
    );
}

#[test]
fn bad_input_exits_2_with_a_precise_message() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["scope", "check", "scopes/nope.toml"],
            "cannot read scope file scopes/nope.toml",
        ),
        (
            &[
                "scope",
                "check",
                "scopes/lab.toml",
                "198.18.0.1",
                "-p",
                "80,0",
            ],
            "port 0",
        ),
        (
            &["scope", "check", "scopes/lab.toml", "198.18.0.300"],
            "bad target \"198.18.0.300\"",
        ),
        (
            &[
                "scope",
                "check",
                "scopes/lab.toml",
                "198.18.0.1",
                "--probe",
                "udp",
            ],
            "unknown probe kind",
        ),
        (
            &["scope", "check", "scopes/lab.toml", "--top-ports", "5000"],
            "--top-ports takes 1 to 1000",
        ),
        (
            &[
                "scope",
                "check",
                "scopes/lab.toml",
                "-iL",
                "/nonexistent/list",
            ],
            "cannot read target list",
        ),
        (&["scope", "frobnicate"], "unrecognized subcommand"),
    ];
    for (args, want) in cases {
        let (code, out, err) = sonde(args);
        assert_eq!(code, 2, "{args:?}: {out}{err}");
        assert!(err.contains(want), "{args:?}: stderr lacks {want:?}: {err}");
    }
}

#[test]
fn invalid_scope_file_shows_line_column_and_hint() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/scopes/lab.toml")).unwrap();
    std::fs::write(&bad, text.replace("198.18.0.0/15", "198.18.0.0/40")).unwrap();
    let (code, _, err) = sonde(&["scope", "check", bad.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(
        err.contains(
            "bad.toml:21:12: bad target \"198.18.0.0/40\": prefix length 40 is longer than 32"
        ),
        "{err}"
    );
    assert!(err.contains("hint:"), "{err}");
}

#[test]
fn expired_scope_refuses_with_exit_3() {
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("old.toml");
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/scopes/lab.toml")).unwrap();
    std::fs::write(
        &old,
        text.replace("2099-12-31T23:59:59Z", "2024-06-30T00:00:00Z"),
    )
    .unwrap();
    let (code, out, _) = sonde(&["scope", "check", old.to_str().unwrap(), "198.18.0.1"]);
    assert_eq!(code, 3, "{out}");
    assert!(
        out.contains("CLOSED") && out.contains("validity window closed at 2024-06-30T00:00:00Z"),
        "{out}"
    );
}

/// Regression (issue 16): `198.18.1-2.1` and `198.18.1.*` were taken for
/// host names and looked up in DNS. They are nmap's octet ranges; a
/// malformed one is an input error naming the octet, never a lookup.
#[test]
fn octet_ranges_are_targets_not_host_names() {
    let (code, out, err) = sonde(&[
        "scope",
        "check",
        "scopes/lab.toml",
        "198.18.1-2.10",
        "198.18.3.*",
        "-p",
        "22",
    ]);
    assert_eq!(code, 0, "{err}");
    for t in ["198.18.1.10 port", "198.18.2.10 port", "198.18.3.0/24 port"] {
        assert!(out.contains(&format!("ALLOWED  {t}")), "{t}: {out}");
    }
    let (code, _, err) = sonde(&["scope", "check", "scopes/lab.toml", "198.18.1-2.300"]);
    assert_eq!(code, 2);
    assert!(err.contains("octet 4 holds \"300\""), "{err}");
    assert!(!err.contains("did not resolve"), "no DNS lookup: {err}");
}

/// Regression (issue 16): `-iL -` was refused; it reads the list from
/// standard input, and an empty one is still an error, never "everything".
#[test]
fn target_list_from_standard_input() {
    use std::io::Write;
    let run = |input: &str| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sonde"))
            .args(["scope", "check", "scopes/lab.toml", "-iL", "-"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.code().unwrap(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) = run("198.18.1.10\n# a comment\n198.18.2.0/30\n");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("ALLOWED  198.18.1.10") && out.contains("ALLOWED  198.18.2.0/30"));
    let (code, _, err) = run("# nothing\n");
    assert_eq!(code, 2);
    assert!(err.contains("holds no target"), "{err}");
}

/// Regression (issue 16): without a port, `scope check` judged an ICMP
/// probe while `scan` sends SYNs to its default ports, so a SYN-only scope
/// printed a wrong refusal, naming the target twice. It judges what the
/// scan would send, and a refusal names the target once.
#[test]
fn check_judges_what_scan_would_send() {
    let dir = tempfile::tempdir().unwrap();
    let scope = dir.path().join("syn-only.toml");
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/scopes/lab.toml")).unwrap();
    std::fs::write(
        &scope,
        text.replace(
            "probes = [\"syn\", \"icmp\", \"dns\", \"service\"]",
            "probes = [\"syn\"]",
        ),
    )
    .unwrap();
    let s = scope.to_str().unwrap();
    let (code, out, err) = sonde(&["scope", "check", s, "198.18.1.10"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("ALLOWED  198.18.1.10 1000 ports/syn"), "{out}");
    // The limits line says which part is the budget.
    assert!(
        out.contains("packets/s; no probe budget (max_probes not set)"),
        "{out}"
    );
    let (code, out, _) = sonde(&["scope", "check", s, "198.18.1.10", "--probe", "icmp"]);
    assert_eq!(code, 3);
    assert_eq!(out.matches("198.18.1.10").count(), 1, "{out}");
    assert!(
        out.contains("REFUSED  198.18.1.10 (icmp): icmp probes are not allowed"),
        "{out}"
    );
}

/// Issue 16: `-n` (nmap's) never resolves: a host name is an input error
/// before any DNS query; addresses are judged as usual.
#[test]
fn no_resolve_refuses_host_names_before_any_lookup() {
    let (code, _, err) = sonde(&[
        "scope",
        "check",
        "scopes/lab.toml",
        "-n",
        "www.example.test",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("-n forbids resolving it"), "{err}");
    let (code, out, err) = sonde(&["scope", "check", "scopes/lab.toml", "-n", "198.18.1.1:22"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("ALLOWED  198.18.1.1 port 22/syn"), "{out}");
}

/// Issue 16: a target that touches a deny rule was refused whole, with no
/// way to carve the denied part out. `--exclude` and `--excludefile` only
/// narrow: the rest is judged on its own, a target excluded entirely says
/// so.
#[test]
fn exclude_carves_the_denied_part_out() {
    // Judged inside the example engagement's window, whatever today is.
    let args = |extra: &[&str]| {
        let mut a = vec![
            "scope",
            "check",
            "scopes/example-engagement.toml",
            "--at",
            INSIDE_EXAMPLE_WINDOW,
            "198.18.10.0/24",
            "-p",
            "443",
        ];
        a.extend_from_slice(extra);
        sonde(&a)
    };
    let (code, out, _) = args(&[]);
    assert_eq!(code, 3);
    assert!(
        out.contains("denied by deny[0] \"payment segment\""),
        "{out}"
    );
    // The refusal says which --exclude carves the denied part out.
    assert!(
        out.contains("--exclude 198.18.10.128/25 takes that out"),
        "{out}"
    );
    // scan says the same before it refuses (nothing is sent either way).
    // A real scan is judged by the clock: the engagement, its window open now.
    let dir0 = tempfile::tempdir().unwrap();
    let scope = example_engagement_open_now(dir0.path());
    let run = dir0.path().join("run");
    let (code, _, err) = sonde(&[
        "scan",
        "--scope",
        scope.to_str().unwrap(),
        "198.18.10.0/24",
        "-p",
        "443",
        "-o",
        run.to_str().unwrap(),
    ]);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("--exclude 198.18.10.128/25 takes that out"),
        "{err}"
    );
    let (code, out, err) = args(&["--exclude", "198.18.10.128/25"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("ALLOWED  198.18.10.0/25 port 443/syn"),
        "{out}"
    );
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("exclude.txt");
    std::fs::write(&list, "# the payment segment\n198.18.10.128/25\n").unwrap();
    let (code, out, _) = args(&["--excludefile", list.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    let (code, out, _) = args(&["--exclude", "198.18.10.*"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("EXCLUDED 198.18.10.0/24"), "{out}");
}

/// `scope check --at TIME` judges the window at another instant: a team
/// checks a scope before its window opens, or what it allowed on a day.
#[test]
fn scope_check_at_judges_the_window_at_that_instant() {
    let check = |at: &str| {
        sonde(&[
            "scope",
            "check",
            "scopes/example-engagement.toml",
            "--at",
            at,
            "198.18.10.5:443",
        ])
    };
    let (code, out, err) = check("2026-11-23T06:59:59Z");
    assert_eq!(code, 3, "{out}{err}");
    assert!(out.contains("window opens at 2026-11-23T"), "{out}");
    let (code, out, err) = check(INSIDE_EXAMPLE_WINDOW);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("judged at 2026-12-01T08:00:00Z"), "{out}");
    assert!(out.contains("ALLOWED  198.18.10.5 port 443/syn"), "{out}");
    let (code, out, _) = check("2026-12-04T17:00:01Z");
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("closed at 2026-12-04T18:00:00+01:00"), "{out}");
    // A malformed instant is a usage error naming the form expected.
    let (code, _, err) = check("next tuesday");
    assert_eq!(code, 2);
    assert!(err.contains("RFC 3339"), "{err}");
    // A real scan is judged by the clock only: --at needs --dry-run.
    let (code, _, err) = sonde(&[
        "scan",
        "--scope",
        "scopes/example-engagement.toml",
        "--at",
        INSIDE_EXAMPLE_WINDOW,
        "198.18.10.5",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--dry-run"), "{err}");
    let (code, out, err) = sonde(&[
        "scan",
        "--scope",
        "scopes/example-engagement.toml",
        "--dry-run",
        "--at",
        INSIDE_EXAMPLE_WINDOW,
        "198.18.10.5",
        "-p",
        "443",
    ]);
    assert_eq!(code, 0, "{out}{err}");
}

/// Regression (issue 26): a scope file, an -iL list or an --excludefile
/// read from /dev/zero was read until memory ran out. Each is bounded, and
/// the refusal names the limit.
#[test]
fn endless_inputs_are_refused_at_their_limit() {
    let (code, _, err) = sonde(&["scope", "check", "/dev/zero"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("over 64 MiB"), "{err}");
    let (code, _, err) = sonde(&["scope", "check", "scopes/lab.toml", "-iL", "/dev/zero"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("target list /dev/zero is over 256 MiB"),
        "{err}"
    );
    let (code, _, err) = sonde(&[
        "scope",
        "check",
        "scopes/lab.toml",
        "198.18.1.1",
        "--excludefile",
        "/dev/zero",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("exclude list /dev/zero is over 256 MiB"),
        "{err}"
    );
}

/// Regression (issue 26): 65,536 scattered --excludefile entries took
/// 10.4 s (an insert each into a sorted set); they are sorted once.
#[test]
fn a_long_scattered_exclude_list_is_read_in_one_sort() {
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("exclude.txt");
    let mut text = String::new();
    // Every other address of 198.18.0.0/15, in a scattered order.
    for i in 0..65_536u32 {
        let j = (i.wrapping_mul(40_503)) % 65_536;
        let a = 2 * j;
        text += &format!("198.{}.{}.{}\n", 18 + (a >> 16), (a >> 8) & 255, a & 255);
    }
    std::fs::write(&list, text).unwrap();
    let started = std::time::Instant::now();
    let (code, out, err) = sonde(&[
        "scope",
        "check",
        "scopes/lab.toml",
        "198.18.0.0/30",
        "--excludefile",
        list.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    // 198.18.0.0 and .2 are excluded: .1 and .3 are judged.
    assert!(out.contains("ALLOWED  198.18.0.1 "), "{out}");
    assert!(out.contains("ALLOWED  198.18.0.3 "), "{out}");
    // A hang guard, not a speed target (it takes well under a second).
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}
