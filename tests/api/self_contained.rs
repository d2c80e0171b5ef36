//! The repository stands alone: a fresh clone with nothing beside it must build and pass its tests. This test
//! reads every source, test and script file and fails when a path in it reaches outside the repository
//! (`include_str!("../../../x")`, `concat!(env!("CARGO_MANIFEST_DIR"), "/../x")`, `../shared/…` in a script).

use std::path::{Component, Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Files a build, a test or CI reads: Rust sources, scripts, the CI entry point and the manifests.
fn files() -> Vec<PathBuf> {
    let mut out = vec![PathBuf::from(ROOT).join("Cargo.toml")];
    let mut dirs: Vec<PathBuf> = ["src", "tests", "scripts", ".ci", "migrations"]
        .iter()
        .map(|d| PathBuf::from(ROOT).join(d))
        .collect();
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                if !path.ends_with("fixtures") {
                    dirs.push(path);
                }
            } else if matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("rs" | "sh" | "sql" | "toml") | None
            ) {
                out.push(path);
            }
        }
    }
    out
}

/// Joins `rel` to `base` lexically (no file system look-up, so a path to nothing is judged too) and says
/// whether the result stays inside the repository root.
fn stays_inside(base: &Path, rel: &str) -> bool {
    let mut depth: Vec<Component> = Vec::new();
    let root_depth = Path::new(ROOT).components().count();
    for c in base.join(rel).components() {
        match c {
            Component::ParentDir => {
                depth.pop();
                if depth.len() < root_depth {
                    return false;
                }
            }
            Component::CurDir => {}
            other => depth.push(other),
        }
    }
    true
}

/// Every string literal in `text` that starts with `../` or `/../`, with the directory it is relative to.
fn relative_paths(file: &Path, text: &str) -> Vec<(PathBuf, String)> {
    let mut found = Vec::new();
    let code = text.lines().filter(|l| !l.trim_start().starts_with("//"));
    for line in code {
        for (at, _) in line.match_indices('"') {
            let rest = &line[at + 1..];
            let literal = &rest[..rest.find('"').unwrap_or(rest.len())];
            push_if_relative(file, literal, &mut found);
        }
    }
    found
}

fn push_if_relative(file: &Path, literal: &str, found: &mut Vec<(PathBuf, String)>) {
    {
        if let Some(tail) = literal.strip_prefix(concat!("/", "../")) {
            // concat!(env!("CARGO_MANIFEST_DIR"), "/../x") is relative to the crate root.
            found.push((PathBuf::from(ROOT), format!("../{tail}")));
        } else if literal.starts_with("../") {
            found.push((file.parent().unwrap().to_path_buf(), literal.to_string()));
        }
    }
}

#[test]
fn no_file_reaches_outside_the_repository() {
    let mut outside = Vec::new();
    let files = files();
    assert!(files.len() > 50, "found only {} files", files.len());
    for file in files {
        // This file spells such paths on purpose, to test the check below.
        if file.ends_with("tests/api/self_contained.rs") {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        for (base, rel) in relative_paths(&file, &text) {
            if !stays_inside(&base, &rel) {
                outside.push(format!("{}: {rel}", file.display()));
            }
        }
        for (n, line) in text.lines().enumerate() {
            if line.contains("../shared") && !line.trim_start().starts_with("//") {
                outside.push(format!("{}:{}: {line}", file.display(), n + 1));
            }
        }
    }
    assert!(
        outside.is_empty(),
        "paths that reach outside the repository:\n{}",
        outside.join("\n")
    );
}

#[test]
fn the_check_itself_sees_a_path_outside() {
    let file = PathBuf::from(ROOT).join("tests/api/deploys.rs");
    let outside = format!("include_str!({}{})", "\"..", "/../../elsewhere/x.json\"");
    let found = relative_paths(&file, &outside);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(!stays_inside(&found[0].0, &found[0].1));
    let manifest_relative = format!("concat!(env!(X), {}{})", "\"/", "../elsewhere\"");
    let found = relative_paths(&file, &manifest_relative);
    assert!(!stays_inside(&found[0].0, &found[0].1));
    let inside = format!("include_str!({}{})", "\"..", "/fixtures/x.json\"");
    let found = relative_paths(&file, &inside);
    assert!(stays_inside(&found[0].0, &found[0].1));
}
