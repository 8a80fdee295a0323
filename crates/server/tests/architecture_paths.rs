//! ARCHITECTURE.md's code map names real paths (issue 16): every `path/with/a/slash.ext` it
//! puts in backticks exists in the repository — from the root, under `crates/` or `ui/`, or
//! inside one of the crates (`tests/hostile.rs`) or their sources (`machine/playout.rs`).

#[test]
fn every_path_architecture_md_names_exists() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let text = std::fs::read_to_string(root.join("ARCHITECTURE.md")).unwrap();
    let crates: Vec<std::path::PathBuf> = std::fs::read_dir(root.join("crates")).unwrap().filter_map(|e| Some(e.ok()?.path())).collect();
    let mut named = 0;
    let mut missing = Vec::new();
    for (i, span) in text.split('`').enumerate() {
        // Odd pieces are inside backticks.
        let looks_like_path = i % 2 == 1
            && span.contains('/')
            && !span.contains(' ')
            && !span.contains("://")
            && !span.starts_with('/')
            && span.rsplit('/').next().is_some_and(|f| f.contains('.') && !f.ends_with('.'));
        if !looks_like_path {
            continue;
        }
        let path = span.trim_end_matches(':').split(['#', ':']).next().unwrap_or(span);
        // `shared/…` is the team's shared design folder beside the repository, not in it.
        if path.contains('*') || path.contains('<') || path.starts_with("shared/") {
            continue;
        }
        named += 1;
        let found = root.join(path).exists() || root.join("crates").join(path).exists() || root.join("ui").join(path).exists() || crates.iter().any(|c| c.join(path).exists() || c.join("src").join(path).exists());
        if !found {
            missing.push(path.to_string());
        }
    }
    assert!(named >= 10, "paths found: {named}");
    assert!(missing.is_empty(), "ARCHITECTURE.md names paths that do not exist: {missing:?}");
}

/// ARCHITECTURE.md's invariant (issue 16): no mutex or lock is reachable from the call's core —
/// the machine and its dispatch aggregate read the roster as a snapshot and ask its owner for
/// every change.
#[test]
fn the_call_core_takes_no_lock() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let machine = root.join("crates/bridge/src/machine");
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(&machine).unwrap().filter_map(|e| Some(e.ok()?.path())).filter(|p| p.file_name().is_some_and(|n| n != "tests.rs")).collect();
    files.push(root.join("crates/dispatch/src/call.rs"));
    assert!(files.len() >= 6, "{files:?}");
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        // Only the code before the unit tests: a test may drive the roster's owner itself.
        let code = text.split("#[cfg(test)]").next().unwrap_or(&text);
        for word in ["Mutex", "RwLock", ".lock()", ".read()", ".write()", "SharedRoster"] {
            assert!(!code.contains(word), "{} names {word}", file.display());
        }
    }
}

/// Issue 16: the desktop app carries neither the load generator nor its measuring crates
/// (`cargo tree -p watchfloor-desktop -e normal`).
#[test]
fn the_desktop_app_carries_no_load_generator() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .current_dir(&root)
        .args(["tree", "--offline", "--locked", "-p", "watchfloor-desktop", "-e", "normal", "--prefix", "none"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let tree = String::from_utf8_lossy(&out.stdout);
    assert!(tree.lines().any(|l| l.starts_with("watchfloor-server ")), "the tree names the server: {tree}");
    for name in ["procfs ", "rlimit ", "hdrhistogram "] {
        assert!(!tree.lines().any(|l| l.starts_with(name)), "the desktop app depends on {name}");
    }
}
