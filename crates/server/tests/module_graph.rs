//! The server's modules import no circle (issue 16): each names the modules it uses as
//! `crate::<module>`, and those references form a graph without cycles. `routes.rs` builds the
//! router from the others and none imports it back; the shared error type (`error.rs`) and the
//! audit helper (`audit.rs`) have modules of their own.

use std::collections::{BTreeMap, BTreeSet};

/// `crate::<module>` references of every module file in `src/` (`lib.rs` and `main.rs`, the
/// crate roots, left out).
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let modules: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok()?.path().file_stem()?.to_str().map(str::to_string))
        .filter(|m| m != "lib" && m != "main")
        .collect();
    let mut g = BTreeMap::new();
    for m in &modules {
        let text = std::fs::read_to_string(dir.join(format!("{m}.rs"))).unwrap();
        let mut uses = BTreeSet::new();
        for (i, _) in text.match_indices("crate::") {
            let rest = &text[i + "crate::".len()..];
            if let Some(list) = rest.strip_prefix('{') {
                // `use crate::{a, b::c}`
                for part in list[..list.find('}').unwrap_or(0)].split(',') {
                    let name = part.trim().split("::").next().unwrap_or("").trim();
                    if modules.contains(name) {
                        uses.insert(name.to_string());
                    }
                }
            } else {
                let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                if modules.contains(&name) {
                    uses.insert(name);
                }
            }
        }
        uses.remove(m);
        g.insert(m.clone(), uses);
    }
    g
}

/// A cycle through `from`, if there is one (depth-first search).
fn cycle(g: &BTreeMap<String, BTreeSet<String>>, path: &mut Vec<String>, done: &mut BTreeSet<String>) -> Option<Vec<String>> {
    let here = path.last().unwrap().clone();
    for next in &g[&here] {
        if let Some(i) = path.iter().position(|p| p == next) {
            let mut c = path[i..].to_vec();
            c.push(next.clone());
            return Some(c);
        }
        if done.contains(next) {
            continue;
        }
        path.push(next.clone());
        if let Some(c) = cycle(g, path, done) {
            return Some(c);
        }
        path.pop();
    }
    done.insert(here);
    None
}

#[test]
fn the_server_modules_import_no_circle() {
    let g = graph();
    assert!(g.len() > 10, "modules found: {:?}", g.keys());
    let mut done = BTreeSet::new();
    for m in g.keys() {
        if let Some(c) = cycle(&g, &mut vec![m.clone()], &mut done) {
            panic!("the modules import a circle: {}", c.join(" → "));
        }
    }
    assert!(g.values().all(|uses| !uses.contains("routes")), "no module imports the router: {g:?}");
    for m in ["error", "audit"] {
        assert!(g.values().any(|uses| uses.contains(m)), "{m}.rs is used");
    }
}

#[test]
fn the_cycle_finder_finds_a_cycle() {
    let mut g = BTreeMap::new();
    g.insert("a".to_string(), BTreeSet::from(["b".to_string()]));
    g.insert("b".to_string(), BTreeSet::from(["c".to_string()]));
    g.insert("c".to_string(), BTreeSet::from(["a".to_string()]));
    assert_eq!(cycle(&g, &mut vec!["a".to_string()], &mut BTreeSet::new()), Some(vec!["a".into(), "b".into(), "c".into(), "a".into()]));
    g.insert("c".to_string(), BTreeSet::new());
    assert_eq!(cycle(&g, &mut vec!["a".to_string()], &mut BTreeSet::new()), None);
}
