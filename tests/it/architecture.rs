//! The shape `docs/architecture.md` promises, checked on the source: which top-level modules
//! may import which (the executor none of Echo's; no two modules each other, even through
//! others), and files that hold one concern each (none over 600 lines).

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

const SOURCE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src");
const MAX_LINES: usize = 600;

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// The top-level module a file belongs to (`src/api/echo/mod.rs` → `api`); `None` for the
/// crate root and the binary.
fn module_of(path: &Path) -> Option<String> {
    let relative = path.strip_prefix(SOURCE).unwrap();
    let first = relative
        .components()
        .next()?
        .as_os_str()
        .to_str()?
        .to_owned();
    let name = first.trim_end_matches(".rs").to_owned();
    (name != "lib" && name != "main").then_some(name)
}

/// The top-level names a file reaches through `crate::…`, including inside `use crate::{…}`.
fn crate_paths(source: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let code: String = source
        .lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0;
            let mut item = String::new();
            let mut items = Vec::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => items.push(std::mem::take(&mut item)),
                    _ => {}
                }
                if depth == 0 && c != ',' {
                    item.push(c);
                }
            }
            items.push(item);
            for item in items {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                names.insert(name);
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            names.insert(name);
        }
    }
    // The declarative macros of `model` are exported at the crate root.
    if names.remove("wire_enum") {
        names.insert("model".into());
    }
    names
}

fn import_graph() -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(Path::new(SOURCE), &mut files);
    let modules: BTreeSet<String> = files.iter().filter_map(|f| module_of(f)).collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let Some(module) = module_of(file) else {
            continue;
        };
        let source = std::fs::read_to_string(file).unwrap();
        let imports = graph.entry(module.clone()).or_default();
        for name in crate_paths(&source) {
            if name != module && modules.contains(&name) {
                imports.insert(name);
            }
        }
    }
    graph
}

/// A cycle through `start`, if any, as the modules along it.
fn cycle_from(
    graph: &BTreeMap<String, BTreeSet<String>>,
    start: &str,
    path: &mut Vec<String>,
) -> Option<Vec<String>> {
    for next in graph.get(path.last().unwrap()).into_iter().flatten() {
        if next == start {
            let mut cycle = path.clone();
            cycle.push(next.clone());
            return Some(cycle);
        }
        if !path.contains(next) {
            path.push(next.clone());
            if let Some(cycle) = cycle_from(graph, start, path) {
                return Some(cycle);
            }
            path.pop();
        }
    }
    None
}

#[test]
fn the_executor_knows_nothing_of_echo() {
    let graph = import_graph();
    let executor = &graph["executor"];
    for forbidden in ["workflows", "api", "agents", "sdp", "emulators"] {
        assert!(
            !executor.contains(forbidden),
            "src/executor imports {forbidden}: {executor:?}"
        );
    }
    assert!(
        graph["model"].is_empty(),
        "model imports {:?}",
        graph["model"]
    );
}

/// The client talks to a server over its public API only, so it proves the API is enough
/// and could live in a crate of its own.
#[test]
fn the_client_knows_nothing_of_the_server() {
    let graph = import_graph();
    assert!(
        graph["cli"].is_empty(),
        "src/cli imports {:?}",
        graph["cli"]
    );
}

#[test]
fn no_module_imports_in_a_circle() {
    let graph = import_graph();
    for module in graph.keys() {
        if let Some(cycle) = cycle_from(&graph, module, &mut vec![module.clone()]) {
            panic!("modules import each other: {}", cycle.join(" → "));
        }
    }
}

#[test]
fn source_files_hold_one_concern_each() {
    let mut files = Vec::new();
    rust_files(Path::new(SOURCE), &mut files);
    let mut long: Vec<String> = files
        .iter()
        .filter_map(|file| {
            let lines = std::fs::read_to_string(file).unwrap().lines().count();
            let has_header = std::fs::read_to_string(file)
                .unwrap()
                .trim_start()
                .starts_with("//!");
            assert!(
                has_header,
                "{} has no //! header saying why it exists",
                file.display()
            );
            (lines > MAX_LINES).then(|| format!("{} ({lines} lines)", file.display()))
        })
        .collect();
    long.sort();
    assert!(long.is_empty(), "files over {MAX_LINES} lines: {long:?}");
}

#[test]
fn the_parser_reads_nested_use_groups() {
    let names = crate_paths(
        "use crate::{a::b, c, d::{e, f::{g}}};\nlet x = crate::h::i();\ncrate::wire_enum! {}",
    );
    let expected: BTreeSet<String> = ["a", "c", "d", "h", "model"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(names, expected);
}
