//! The TypeScript types of the console (`ui/src/lib/types/`) are generated from the Rust types
//! with ts-rs and committed; this test fails when they drift. To regenerate:
//! `WATCHFLOOR_WRITE_TYPES=1 cargo test -p watchfloor-server --test ts_types`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ts_rs::TS;

fn export(dir: &Path) {
    // ms timestamps and counters fit a JavaScript number (< 2^53).
    let cfg = ts_rs::Config::new().with_large_int("number").with_out_dir(dir);
    watchfloor_bridge::live::LiveMessage::export_all(&cfg).unwrap();
    watchfloor_bridge::live::ConsoleMessage::export_all(&cfg).unwrap();
    watchfloor_store::CallRecord::export_all(&cfg).unwrap();
    watchfloor_store::CallPage::export_all(&cfg).unwrap();
    watchfloor_store::AuditEntry::export_all(&cfg).unwrap();
    watchfloor_dispatch::units::Roster::export_all(&cfg).unwrap();
    watchfloor_dispatch::policy::Policy::export_all(&cfg).unwrap();
    watchfloor_server::settings::Settings::export_all(&cfg).unwrap();
    watchfloor_qa::Scorecard::export_all(&cfg).unwrap();
    watchfloor_qa::Review::export_all(&cfg).unwrap();
    watchfloor_qa::ReviewDraft::export_all(&cfg).unwrap();
    watchfloor_qa::Calibration::export_all(&cfg).unwrap();
    watchfloor_qa::Figures::export_all(&cfg).unwrap();
    watchfloor_server::scoring::CardsState::export_all(&cfg).unwrap();
    watchfloor_server::auth::SessionInfo::export_all(&cfg).unwrap();
}

fn files(dir: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "ts") {
                out.insert(p.strip_prefix(dir).unwrap().to_path_buf(), std::fs::read_to_string(&p).unwrap());
            }
        }
    }
    out
}

#[test]
fn committed_typescript_types_match_the_rust_types() {
    let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../ui/src/lib/types");
    let tmp = tempfile::tempdir().unwrap();
    export(tmp.path());
    let fresh = files(tmp.path());
    assert!(fresh.contains_key(Path::new("LiveCall.ts")), "{:?}", fresh.keys());
    if std::env::var_os("WATCHFLOOR_WRITE_TYPES").is_some() {
        let _ = std::fs::remove_dir_all(&committed);
        for (p, text) in &fresh {
            let to = committed.join(p);
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::write(to, text).unwrap();
        }
        return;
    }
    let old = files(&committed);
    let stale: Vec<_> = fresh.iter().filter(|(p, t)| old.get(*p) != Some(t)).map(|(p, _)| p.display().to_string()).collect();
    let extra: Vec<_> = old.keys().filter(|p| !fresh.contains_key(*p)).map(|p| p.display().to_string()).collect();
    assert!(stale.is_empty() && extra.is_empty(), "ui/src/lib/types is out of date (changed: {stale:?}, no longer generated: {extra:?}); run WATCHFLOOR_WRITE_TYPES=1 cargo test -p watchfloor-server --test ts_types");
}
