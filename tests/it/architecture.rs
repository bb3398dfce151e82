//! The layering of ARCHITECTURE.md, checked on the source: `game/` is pure (it
//! imports nothing from the outer layers or from IO crates), and no module of
//! `game/` or `platform/` imports, directly or through others, itself.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `dir`, with its module path (`game::gacha::banner`).
fn modules(dir: &Path, prefix: &str, out: &mut BTreeMap<String, PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src readable") {
        let path = entry.expect("dir entry").path();
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_string();
        if path.is_dir() {
            modules(&path, &format!("{prefix}::{stem}"), out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let name = if stem == "mod" { prefix.to_string() } else { format!("{prefix}::{stem}") };
            out.insert(name, path);
        }
    }
}

/// The source outside `#[cfg(test)]` modules (tests may reach anywhere).
fn non_test_source(path: &Path) -> String {
    let text = std::fs::read_to_string(path).expect("source readable");
    text.split("#[cfg(test)]").next().unwrap_or_default().to_string()
}

/// Module paths a file refers to (`super::x`, `crate::game::x`), resolved to known modules.
fn imports(module: &str, text: &str, known: &BTreeMap<String, PathBuf>) -> BTreeSet<String> {
    // `super` is the parent module, for a `mod.rs` as for any other file.
    let parent = module.rsplit_once("::").map_or("", |p| p.0);
    let mut out = BTreeSet::new();
    for line in text.lines().map(str::trim).filter(|l| !l.starts_with("//")) {
        for (i, _) in line.match_indices("super::").chain(line.match_indices("crate::")) {
            let rest: String =
                line[i..].chars().take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':').collect();
            let absolute = match rest.strip_prefix("super::") {
                Some(r) => format!("{parent}::{r}"),
                None => rest.trim_start_matches("crate::").to_string(),
            };
            // The longest known module that prefixes the path.
            let mut path = absolute.trim_end_matches(':').to_string();
            loop {
                if known.contains_key(&path) {
                    if path != module && !module.starts_with(&format!("{path}::")) {
                        out.insert(path);
                    }
                    break;
                }
                match path.rsplit_once("::") {
                    Some((head, _)) => path = head.to_string(),
                    None => break,
                }
            }
        }
    }
    out
}

fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(pos) = stack.iter().position(|s| s == n) {
            let mut cycle = stack[pos..].to_vec();
            cycle.push(n.to_string());
            return Some(cycle);
        }
        if done.contains(n) {
            return None;
        }
        stack.push(n.to_string());
        for m in g.get(n).into_iter().flatten() {
            if let Some(c) = visit(m, g, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|n| visit(n, graph, &mut Vec::new(), &mut done))
}

fn graph_of(layer: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut known = BTreeMap::new();
    modules(&src().join(layer), layer, &mut known);
    known.iter().map(|(m, path)| (m.clone(), imports(m, &non_test_source(path), &known))).collect()
}

#[test]
fn game_imports_nothing_from_outer_layers_or_io() {
    let mut known = BTreeMap::new();
    modules(&src().join("game"), "game", &mut known);
    let forbidden = [
        "crate::store",
        "crate::platform",
        "crate::roles",
        "crate::server",
        "crate::writes",
        "crate::workers",
        "actix",
        "mongodb",
        "redb",
        "tokio",
        "thread_rng",
        "Utc::now",
    ];
    for (module, path) in &known {
        let text = non_test_source(path);
        for f in forbidden {
            assert!(!text.contains(f), "{module} ({}) mentions {f}", path.display());
        }
    }
}

#[test]
fn no_module_of_game_or_platform_imports_itself_through_others() {
    for layer in ["game", "platform"] {
        let graph = graph_of(layer);
        assert!(graph.len() > 5, "{layer}: modules found");
        if let Some(cycle) = find_cycle(&graph) {
            panic!("{layer}: import circle {}", cycle.join(" -> "));
        }
    }
}

#[test]
fn the_cycle_finder_finds_a_planted_cycle() {
    let g: BTreeMap<String, BTreeSet<String>> = [
        ("a".to_string(), BTreeSet::from(["b".to_string()])),
        ("b".to_string(), BTreeSet::from(["c".to_string()])),
        ("c".to_string(), BTreeSet::from(["a".to_string()])),
    ]
    .into();
    assert_eq!(find_cycle(&g).map(|c| c.len()), Some(4));
    let acyclic: BTreeMap<String, BTreeSet<String>> =
        [("a".to_string(), BTreeSet::from(["b".to_string()])), ("b".to_string(), BTreeSet::new())].into();
    assert_eq!(find_cycle(&acyclic), None);
}
