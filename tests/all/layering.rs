//! The module layering of docs/architecture.md (*Layers*) holds: every `crate::…` path in a
//! top-level module of `src/` names a module of a strictly lower layer, so there is no import
//! cycle between top-level modules. The table in the doc is the source of truth; this test
//! reads it, so the doc and the check cannot drift apart.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// `module → layer` from the doc's table rows `| L3 | `limiter` | … |`.
fn layers_from_doc(doc: &str) -> BTreeMap<String, u32> {
    let section = doc
        .split("## Layers")
        .nth(1)
        .expect("docs/architecture.md has a Layers section");
    let section = section.split("\n## ").next().unwrap_or(section);
    let mut layers = BTreeMap::new();
    for line in section.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() < 3 {
            continue;
        }
        let Some(level) = cells[1]
            .strip_prefix('L')
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        for module in cells[2].split(',') {
            let module = module.trim().trim_matches('`');
            if !module.is_empty() {
                layers.insert(module.to_string(), level);
            }
        }
    }
    layers
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The source without its unit-test module (`#[cfg(test)] mod tests { … }` runs to the end of
/// the file in this code base), which may use anything.
fn without_unit_tests(text: &str) -> &str {
    match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    }
}

/// Top-level module names `crate::name` refers to, outside comments.
fn crate_paths(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            let after = &rest[i + "crate::".len()..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.insert(name);
            }
            rest = after;
        }
    }
    found
}

/// `(from, to)` edges between top-level modules, from every file of `src/`.
fn edges(src: &Path, modules: &BTreeSet<String>) -> BTreeSet<(String, String)> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut edges = BTreeSet::new();
    for file in files {
        let rel = file.strip_prefix(src).expect("under src");
        let first = rel
            .components()
            .next()
            .expect("a path")
            .as_os_str()
            .to_string_lossy()
            .to_string();
        let top = first.trim_end_matches(".rs").to_string();
        if top == "lib" || top == "main" {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("read source");
        for to in crate_paths(without_unit_tests(&text)) {
            if to != top && modules.contains(&to) {
                edges.insert((top.clone(), to));
            }
        }
    }
    edges
}

fn top_level_modules(src: &Path) -> BTreeSet<String> {
    let mut modules = BTreeSet::new();
    for entry in std::fs::read_dir(src).expect("read src") {
        let path = entry.expect("dir entry").path();
        let name = path
            .file_name()
            .expect("a name")
            .to_string_lossy()
            .to_string();
        if path.is_dir() {
            modules.insert(name);
        } else if let Some(stem) = name.strip_suffix(".rs")
            && stem != "lib"
            && stem != "main"
        {
            modules.insert(stem.to_string());
        }
    }
    modules
}

#[test]
fn every_import_goes_to_a_lower_layer() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("docs/architecture.md")).expect("read the doc");
    let layers = layers_from_doc(&doc);
    let src = root.join("src");
    let modules = top_level_modules(&src);

    let missing: Vec<_> = modules
        .iter()
        .filter(|m| !layers.contains_key(*m))
        .collect();
    assert!(
        missing.is_empty(),
        "top-level modules without a row in docs/architecture.md's Layers table: {missing:?}"
    );

    let wrong: Vec<String> = edges(&src, &modules)
        .into_iter()
        .filter(|(from, to)| layers[to] >= layers[from])
        .map(|(from, to)| format!("{from} (L{}) uses {to} (L{})", layers[&from], layers[&to]))
        .collect();
    assert!(wrong.is_empty(), "imports against the layering: {wrong:#?}");
}

#[test]
fn the_checker_sees_a_cycle() {
    // The check itself: a module that imports its own layer or a higher one is reported.
    let layers = layers_from_doc(
        "## Layers\n| L0 | `clock` | x | y |\n| L4 | `retry` | x | y |\n\n## Next\n| L9 | `cli` |",
    );
    assert_eq!(layers.get("clock"), Some(&0));
    assert_eq!(layers.get("retry"), Some(&4));
    assert_eq!(
        layers.get("cli"),
        None,
        "rows after the section are not read"
    );
    let used = crate_paths("use crate::retry::Driver; // crate::cli in a comment\n");
    assert_eq!(used, BTreeSet::from(["retry".to_string()]));
}
