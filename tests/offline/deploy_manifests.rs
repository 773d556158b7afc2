//! deploy/kubernetes (issue 17): the manifests are valid Kubernetes objects
//! (kubernetes-validate --strict, installed by the test command), and they
//! say one scan: the Indexed Job runs N pods, pod I scans shard I+1 of N with
//! the shared seed into its own directory /runs/index-I, and the merge Job waits for and
//! merges exactly those N directories. No cluster is reachable here, so the
//! semantics are checked by expanding each pod's command as its shell would.

use std::path::Path;
use std::process::Command;

fn deploy() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes")
}

fn yaml_files() -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(deploy())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| p.display().to_string())
        .collect();
    files.sort();
    files
}

#[test]
fn manifests_validate_strictly() {
    let files = yaml_files();
    assert_eq!(files.len(), 5, "{files:?}");
    let out = Command::new("kubernetes-validate")
        .arg("--strict")
        .args(&files)
        .output()
        .expect("kubernetes-validate (the test command installs it from PyPI)");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_indexed_job_and_the_merge_describe_one_scan_of_n_shards() {
    // Read with the YAML parser kubernetes-validate brings (PyYAML).
    let script = r#"
import sys, yaml, json
scan = yaml.safe_load(open(sys.argv[1]))
merge = yaml.safe_load(open(sys.argv[2]))
spec = scan["spec"]
pod = spec["template"]["spec"]
c = pod["containers"][0]
mc = merge["spec"]["template"]["spec"]["containers"][0]
wait = merge["spec"]["template"]["spec"]["initContainers"][0]["args"][0]
print(json.dumps({
  "mode": spec["completionMode"], "completions": spec["completions"],
  "parallelism": spec["parallelism"], "host_network": pod["hostNetwork"],
  "caps": c["securityContext"]["capabilities"], "non_root": pod["securityContext"]["runAsNonRoot"],
  "args": c["args"][0], "env": {e["name"]: e["value"] for e in c["env"]},
  "merge": mc["args"], "wait": wait,
  "mounts": {m["name"]: m for m in c["volumeMounts"]},
  "volumes": {v["name"]: v for v in pod["volumes"]},
  "merge_volumes": {v["name"]: v for v in merge["spec"]["template"]["spec"]["volumes"]},
  "seccomp": [pod["securityContext"]["seccompProfile"]["type"],
              merge["spec"]["template"]["spec"]["securityContext"]["seccompProfile"]["type"]],
}))
"#;
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(deploy().join("scan-job.yaml"))
        .arg(deploy().join("merge-job.yaml"))
        .output()
        .expect("python3 with PyYAML (installed with kubernetes-validate)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["mode"], "Indexed");
    let n = v["completions"].as_u64().unwrap();
    assert_eq!(v["parallelism"], n, "all shards at once");
    assert_eq!(v["host_network"], true);
    assert_eq!(v["non_root"], true);
    assert_eq!(v["caps"]["drop"], serde_json::json!(["ALL"]));
    // Raw sockets only (issue 26: NET_ADMIN was not needed).
    assert_eq!(v["caps"]["add"], serde_json::json!(["NET_RAW"]));
    assert_eq!(
        v["seccomp"],
        serde_json::json!(["RuntimeDefault", "RuntimeDefault"])
    );
    // Each scan pod writes only its own directory of the volume, and sees
    // only its own private key (issue 26: every pod shared one); the merge
    // holds only the public ones.
    assert_eq!(v["mounts"]["runs"]["mountPath"], "/out");
    assert_eq!(
        v["mounts"]["runs"]["subPathExpr"],
        "index-$(JOB_COMPLETION_INDEX)"
    );
    assert_eq!(v["mounts"]["keys"]["mountPath"], "/keys/scanner.key");
    assert_eq!(
        v["mounts"]["keys"]["subPathExpr"],
        "index-$(JOB_COMPLETION_INDEX).key"
    );
    assert_eq!(
        v["volumes"]["keys"]["secret"]["secretName"],
        "sonde-scanner-keys"
    );
    assert_eq!(
        v["merge_volumes"]["keys"]["secret"]["secretName"],
        "sonde-scanner-pubs"
    );

    // Each pod's command, as its shell expands it.
    let mut dirs = Vec::new();
    for index in 0..n {
        let line = v["args"]
            .as_str()
            .unwrap()
            .replace("exec /usr/local/bin/sonde", "printf '%s\\n'");
        let out = Command::new("sh")
            .args(["-c", &line])
            .env("JOB_COMPLETION_INDEX", index.to_string())
            .env("SONDE_SEED", v["env"]["SONDE_SEED"].as_str().unwrap())
            .output()
            .unwrap();
        let argv: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        let after = |flag: &str| {
            argv.iter()
                .position(|a| a == flag)
                .and_then(|i| argv.get(i + 1))
                .cloned()
                .unwrap_or_else(|| panic!("{flag} in {argv:?}"))
        };
        assert_eq!(argv[0], "scan");
        assert_eq!(after("--shard"), format!("{}/{n}", index + 1));
        assert_eq!(after("--seed"), v["env"]["SONDE_SEED"].as_str().unwrap());
        assert_eq!(
            after("--sign-key"),
            "/keys/scanner.key",
            "the pod's own key"
        );
        // As the merge sees it: the pod's /out is index-I of the volume.
        let own = after("-o");
        let inside = own
            .strip_prefix("/out/")
            .unwrap_or_else(|| panic!("-o {own} is not under /out"));
        dirs.push(format!("/runs/index-{index}/{inside}"));
    }
    // The merge takes exactly those directories, and waits for each.
    let merge: Vec<&str> = v["merge"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(merge[0], "merge");
    let given: Vec<&str> = merge[1..]
        .iter()
        .take_while(|a| !a.starts_with('-'))
        .copied()
        .collect();
    assert_eq!(given, dirs.iter().map(String::as_str).collect::<Vec<_>>());
    let wait = v["wait"].as_str().unwrap();
    assert!(
        wait.contains("/runs/index-$i/run/report.json"),
        "the merge waits for each pod's run: {wait}"
    );
    let listed: Vec<String> = (0..n).map(|i| i.to_string()).collect();
    assert!(
        wait.contains(&format!("for i in {};", listed.join(" "))),
        "the merge waits for every shard: {wait}"
    );
    // Shard I+1 is merged only under pod I's key.
    let bound: Vec<&str> = merge
        .iter()
        .skip_while(|a| **a != "--trust-shard")
        .skip(1)
        .take_while(|a| !a.starts_with('-'))
        .copied()
        .collect();
    let expected: Vec<String> = (0..n)
        .map(|i| format!("{}=/keys/index-{i}.pub", i + 1))
        .collect();
    assert_eq!(bound, expected, "each shard under its own scanner's key");
    assert!(
        !merge.contains(&"--trust"),
        "no key vouches for every shard"
    );
}
