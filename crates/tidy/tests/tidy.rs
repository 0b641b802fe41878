//! The rules of `tidy` over the real tree. A failure lists every violation as
//! `file:line: problem`.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::{Path, PathBuf};

/// The tree being checked: the package's directory as the test runner gives it now
/// (cargo and nextest both set it), so that a test binary built from another checkout
/// of the same tree (a shared target directory reuses it) checks this one; else the
/// directory it was built from.
fn root() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
        .join("../..")
        .canonicalize()
        .expect("the workspace root")
}

/// Every `.rs` file under `dir`, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                let name = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or_default();
                if name != "target" && !name.starts_with('.') {
                    stack.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The workspace's crates: `crates/<name>` with a manifest.
fn crates() -> Vec<(String, PathBuf)> {
    let mut out: Vec<(String, PathBuf)> = std::fs::read_dir(root().join("crates"))
        .expect("crates/")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("Cargo.toml").exists())
        .map(|p| {
            let name = p
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_owned();
            (name, p)
        })
        .collect();
    out.sort();
    out
}

fn relative(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .to_string_lossy()
        .into_owned()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn report(rule: &str, violations: Vec<tidy::Violation>) {
    let list: Vec<String> = violations.iter().map(ToString::to_string).collect();
    assert!(list.is_empty(), "{rule}:\n{}", list.join("\n"));
}

#[test]
fn seed_names_only_in_schema_modules() {
    let mut violations = Vec::new();
    for names in tidy::seed_names() {
        let src = root().join("crates").join(names.krate).join("src");
        assert!(src.is_dir(), "{} has no src/", names.krate);
        for file in rust_files(&src) {
            violations.extend(tidy::seed_names_outside_schema(
                &relative(&file),
                &read(&file),
                &names,
            ));
        }
    }
    report("seed key and table names outside `schema`", violations);
}

#[test]
fn domain_never_depends_on_schema_or_repo() {
    let mut violations = Vec::new();
    for names in tidy::seed_names() {
        let src = root().join("crates").join(names.krate).join("src");
        for file in rust_files(&src) {
            violations.extend(tidy::domain_depends_on_storage(
                &relative(&file),
                &read(&file),
            ));
        }
    }
    report("`domain` depending on `schema` or `repo`", violations);
}

#[test]
fn twilight_only_in_discord() {
    let mut violations = Vec::new();
    for (name, dir) in crates() {
        if name == "discord" || name == "tidy" {
            continue;
        }
        let manifest = dir.join("Cargo.toml");
        violations.extend(tidy::twilight_dependency(
            &relative(&manifest),
            &read(&manifest),
            name == "discord-sim",
        ));
        if name == "discord-sim" {
            // discord-sim's tests drive the real client against the fake on purpose.
            for file in rust_files(&dir.join("src")) {
                violations.extend(tidy::twilight_outside_discord(
                    &relative(&file),
                    &read(&file),
                ));
            }
            continue;
        }
        for file in rust_files(&dir) {
            violations.extend(tidy::twilight_outside_discord(
                &relative(&file),
                &read(&file),
            ));
        }
    }
    report("twilight outside `discord`", violations);
}

#[test]
fn no_unwrap_or_expect_allowed_outside_tests() {
    let mut violations = Vec::new();
    for (name, dir) in crates() {
        // testkit is test code through and through; the store harness is its feature-gated kin.
        if name == "testkit" || name == "tidy" {
            continue;
        }
        for file in rust_files(&dir.join("src")) {
            let rel = relative(&file);
            if rel.contains("crates/store/src/harness") {
                continue;
            }
            violations.extend(tidy::unwrap_allowed_outside_tests(&rel, &read(&file)));
        }
    }
    report("unwrap/expect allowed outside tests", violations);
}

/// The files of `files` that their parent declares `#[cfg(test)] mod x;`: test code.
fn test_module_files(files: &[PathBuf]) -> std::collections::BTreeSet<PathBuf> {
    let mut out = std::collections::BTreeSet::new();
    for file in files {
        let Some(parent) = file.parent() else {
            continue;
        };
        let stem = file
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default();
        // `lib.rs`, `main.rs` and `mod.rs` own their directory; `foo.rs` owns `foo/`.
        let dir = if ["lib", "main", "mod"].contains(&stem) {
            parent.to_path_buf()
        } else {
            parent.join(stem)
        };
        for module in tidy::out_of_line_test_modules(&read(file)) {
            out.insert(dir.join(format!("{module}.rs")));
            out.insert(dir.join(&module).join("mod.rs"));
        }
    }
    out
}

#[test]
fn no_unwrap_or_expect_outside_tests() {
    let mut violations = Vec::new();
    for (name, dir) in crates() {
        // The same exemptions as the `allow` rule above.
        if name == "testkit" || name == "tidy" {
            continue;
        }
        let files = rust_files(&dir.join("src"));
        let tests = test_module_files(&files);
        for file in files {
            let rel = relative(&file);
            if rel.contains("crates/store/src/harness") || tests.contains(&file) {
                continue;
            }
            violations.extend(tidy::unwrap_outside_tests(&rel, &read(&file)));
        }
    }
    report("unwrap/expect outside tests", violations);
}

#[test]
fn lua_lives_only_in_store() {
    let mut violations = Vec::new();
    for (name, dir) in crates() {
        if name == "tidy" {
            continue;
        }
        for file in rust_files(&dir) {
            violations.extend(tidy::lua_outside_store(&relative(&file), &read(&file)));
        }
    }
    report("Lua outside `store::lua`", violations);
}

#[test]
fn every_crate_inherits_the_workspace_lints() {
    let mut violations = Vec::new();
    for (_, dir) in crates() {
        let manifest = dir.join("Cargo.toml");
        violations.extend(tidy::missing_workspace_lints(
            &relative(&manifest),
            &read(&manifest),
        ));
    }
    report("crates without the workspace lints", violations);
}

#[test]
fn the_test_script_runs_fmt_and_clippy() {
    let script = root().join("scripts/test.sh");
    report(
        "scripts/test.sh",
        tidy::test_script_gaps(&relative(&script), &read(&script)),
    );
}
