//! `sonde completions SHELL` and `sonde man`: generated from the same clap
//! definitions as the parser, so they cannot drift from it (issue 16).

use support::cli::sonde;

#[test]
fn bash_completion_is_valid_bash_and_knows_every_subcommand() {
    let (code, script, err) = sonde(&["completions", "bash"]);
    assert_eq!(code, 0, "{err}");
    for sub in [
        "scan", "analyze", "craft", "verify", "report", "scope", "man",
    ] {
        assert!(script.contains(sub), "no {sub} in the bash completion");
    }
    assert!(script.contains("--evidence") && script.contains("--record"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sonde.bash");
    std::fs::write(&path, &script).unwrap();
    let check = std::process::Command::new("bash")
        .arg("-n")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let (code, zsh, _) = sonde(&["completions", "zsh"]);
    assert_eq!(code, 0);
    assert!(zsh.starts_with("#compdef sonde"));
    let (code, _, err) = sonde(&["completions", "tcsh"]);
    assert_eq!(code, 2);
    assert!(err.contains("possible values"), "{err}");
}

#[test]
fn the_man_page_is_roff_naming_every_subcommand_and_exit_codes() {
    let (code, page, err) = sonde(&["man"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        page.contains(".TH sonde 1"),
        "{}",
        &page[..200.min(page.len())]
    );
    for sub in ["scan", "analyze", "craft", "verify", "report", "scope"] {
        assert!(page.contains(sub), "no {sub} in the man page");
    }
    assert!(page.contains("Exit codes"));
}
