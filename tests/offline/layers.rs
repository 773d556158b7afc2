//! The layers `docs/architecture.md` documents hold in the code (issue 25,
//! item 6): every `crate::MODULE` a source file names outside its tests
//! is in a lower layer than the file's own module. A new import that goes
//! up fails here, naming the file and line, until the code or the table
//! changes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The layer of each top-level module, read from the architecture
/// document's "Layers" table.
fn layers() -> HashMap<String, u32> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/architecture.md"))
        .unwrap();
    let section = doc
        .split("\n## Layers\n")
        .nth(1)
        .expect("docs/architecture.md has a Layers section")
        .split("\n## ")
        .next()
        .unwrap();
    let mut map = HashMap::new();
    for line in section.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() < 4 {
            continue;
        }
        let Ok(layer) = cells[1].parse::<u32>() else {
            continue;
        };
        for m in cells[2].split(',').map(str::trim) {
            assert!(
                map.insert(m.to_string(), layer).is_none(),
                "{m} is listed twice"
            );
        }
    }
    assert!(map.len() > 10, "the Layers table was not read: {map:?}");
    map
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The `crate::NAME` references of a file's code, with their line
/// numbers: comments and everything from the first `#[cfg(test)]` on are
/// left out (tests may use any layer).
fn references(text: &str) -> Vec<(usize, String)> {
    let mut refs = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let code = line.trim_start();
        if code.starts_with("#[cfg(test)]") {
            break;
        }
        if code.starts_with("//") {
            continue;
        }
        let code = code.split(" // ").next().unwrap_or(code);
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            let after = &rest[i + "crate::".len()..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                refs.push((n + 1, name));
            }
            rest = after;
        }
    }
    refs
}

#[test]
fn no_module_imports_one_above_it() {
    let layers = layers();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut wrong = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(&src).unwrap();
        let module = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if module == "lib" || module == "main" {
            continue;
        }
        let own = *layers
            .get(&module)
            .unwrap_or_else(|| panic!("src/{module} is in no layer of docs/architecture.md"));
        let text = std::fs::read_to_string(f).unwrap();
        for (line, used) in references(&text) {
            if used == module {
                continue;
            }
            let Some(&theirs) = layers.get(&used) else {
                panic!("{}:{line}: crate::{used} is in no layer", rel.display());
            };
            if theirs >= own {
                wrong.push(format!(
                    "src/{}:{line}: {module} (layer {own}) uses {used} (layer {theirs})",
                    rel.display()
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the layers:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_scans_pure_cores_never_reach_the_sockets() {
    for f in ["correlate.rs", "timing.rs", "progress.rs", "hosts.rs"] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("src/scan")
            .join(f);
        let text = std::fs::read_to_string(&path).unwrap();
        for (line, used) in references(&text) {
            assert_ne!(used, "net", "src/scan/{f}:{line} reaches net");
        }
    }
}

/// The test itself: an import that goes up is caught, a test module's is not.
#[test]
fn references_skip_comments_and_tests() {
    let text = "use crate::wire::tcp;\n// crate::net in a comment\nlet x = crate::scan::run(); // crate::cli\n#[cfg(test)]\nuse crate::cli;\n";
    let refs: Vec<String> = references(text).into_iter().map(|r| r.1).collect();
    assert_eq!(refs, ["wire", "scan"]);
}
