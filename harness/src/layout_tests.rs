//! The module map of the "# Layout" doc in `lib.rs`, checked on every `cargo test`: reads each `crate::` path in
//! the source and fails when a module reaches one the map keeps it from, when modules import each other in a
//! circle, or when `coap` touches tokio, sockets or the clock.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Modules each module must not import (directly; the circle check covers the indirect ways).
const FORBIDDEN: &[(&str, &[&str])] = &[
    ("engine", &["server", "report", "app", "cli", "merge"]),
    (
        "server",
        &["engine", "report", "app", "cli", "merge", "scenario"],
    ),
    (
        "report",
        &["engine", "server", "app", "cli", "merge", "scenario"],
    ),
    ("merge", &["engine", "server", "app", "cli", "scenario"]),
    (
        "scenario",
        &["engine", "server", "report", "app", "cli", "merge"],
    ),
    (
        "metrics",
        &[
            "engine", "server", "report", "app", "cli", "merge", "scenario",
        ],
    ),
    (
        "transport",
        &[
            "engine", "server", "report", "app", "cli", "merge", "scenario",
        ],
    ),
    (
        "pki",
        &[
            "engine", "server", "report", "app", "cli", "merge", "scenario",
        ],
    ),
    ("cli", &["app", "engine", "server", "merge"]),
];

/// Leaves: modules (or single files) that import nothing of the crate.
const LEAVES: &[&str] = &[
    "checks.rs",
    "client_auth.rs",
    "token.rs",
    "report/escape.rs",
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every source file, relative to `src/` with `/` separators, and its text.
fn files() -> Vec<(String, String)> {
    let mut paths = Vec::new();
    sources(&src(), &mut paths);
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let rel = p.strip_prefix(src()).expect("under src");
            let rel = rel.to_string_lossy().replace('\\', "/");
            (rel, std::fs::read_to_string(&p).expect("read source"))
        })
        .collect()
}

/// The top-level module a file belongs to: `engine/load.rs` -> `engine`, `cli.rs` -> `cli`.
fn module_of(rel: &str) -> &str {
    let first = rel.split('/').next().unwrap_or(rel);
    first.strip_suffix(".rs").unwrap_or(first)
}

/// The top-level modules named by `crate::` paths in `text` (`crate::a::b`, `crate::{a, b::{c, d}}`), doc
/// links included, so the docs cannot name a module the code may not use.
fn crate_refs(text: &str) -> BTreeSet<String> {
    let ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().last();
        rest = &rest[at + "crate::".len()..];
        if matches!(before, Some(c) if c.is_ascii_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        match rest.strip_prefix('{') {
            Some(group) => {
                let mut depth = 0;
                let mut item = String::new();
                for c in group.chars() {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => break,
                        '}' => depth -= 1,
                        ',' if depth == 0 => {
                            out.insert(ident(&item));
                            item.clear();
                            continue;
                        }
                        _ => {}
                    }
                    item.push(c);
                }
                out.insert(ident(&item));
            }
            None => {
                out.insert(ident(rest));
            }
        }
    }
    out.remove("");
    out
}

/// Module -> modules it imports (itself left out).
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (rel, text) in files() {
        let from = module_of(&rel);
        if matches!(from, "lib" | "main" | "layout_tests") {
            continue;
        }
        let to = g.entry(from.to_string()).or_default();
        to.extend(crate_refs(&text).into_iter().filter(|m| m != from));
    }
    g
}

#[test]
fn reads_crate_paths() {
    let refs = crate_refs(
        "use crate::coap::{Code, Message};\nuse crate::{report, scenario::plan::{A, B}};\n\
         /// [`crate::trust::TrustVerdict`]\nuse mycrate::x; $crate::y",
    );
    let want: BTreeSet<String> = ["coap", "report", "scenario", "trust"]
        .map(String::from)
        .into();
    assert_eq!(refs, want);
}

#[test]
fn modules_import_only_what_the_map_allows() {
    let g = graph();
    let mut broken = Vec::new();
    for (from, forbidden) in FORBIDDEN {
        let to = g.get(*from).unwrap_or_else(|| panic!("no module `{from}`"));
        broken.extend(
            forbidden
                .iter()
                .filter(|f| to.contains(**f))
                .map(|f| format!("{from} -> {f}")),
        );
    }
    for (from, to) in &g {
        if from != "app" && to.contains("app") {
            broken.push(format!(
                "{from} -> app (only main calls the composition root)"
            ));
        }
    }
    assert!(broken.is_empty(), "imports the layout forbids: {broken:?}");
}

#[test]
fn leaves_import_nothing_of_the_crate() {
    for (rel, text) in files() {
        if LEAVES.contains(&rel.as_str()) {
            let refs = crate_refs(&text);
            assert!(refs.is_empty(), "{rel} is a leaf but names {refs:?}");
        }
    }
}

#[test]
fn coap_knows_no_tokio_sockets_or_clock() {
    for (rel, text) in files() {
        if module_of(&rel) != "coap" || rel.ends_with("_tests.rs") {
            continue;
        }
        let refs = crate_refs(&text);
        assert!(refs.iter().all(|m| m == "coap"), "{rel} names {refs:?}");
        for banned in [
            "tokio",
            "std::net",
            "UdpSocket",
            "Instant::now",
            "SystemTime::now",
        ] {
            assert!(!text.contains(banned), "{rel} uses `{banned}`");
        }
    }
}

#[test]
fn no_circle_spans_modules() {
    let g = graph();
    // Depth-first search; a back edge is a circle.
    fn visit<'a>(
        m: &'a str,
        g: &'a BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) {
        if let Some(at) = path.iter().position(|p| *p == m) {
            panic!("import circle: {} -> {m}", path[at..].join(" -> "));
        }
        if done.contains(m) {
            return;
        }
        path.push(m);
        for to in g.get(m).into_iter().flatten() {
            visit(to, g, path, done);
        }
        path.pop();
        done.insert(m);
    }
    let mut done = BTreeSet::new();
    for m in g.keys() {
        visit(m, &g, &mut Vec::new(), &mut done);
    }
}

#[test]
fn layout_doc_names_every_module() {
    let lib = std::fs::read_to_string(src().join("lib.rs")).expect("read lib.rs");
    for line in lib.lines() {
        if let Some(m) = line
            .strip_prefix("pub mod ")
            .and_then(|l| l.strip_suffix(';'))
        {
            assert!(
                lib.contains(&format!("[`{m}`]")),
                "lib.rs declares `{m}` but its # Layout doc does not list it"
            );
        }
    }
}
