//! The shape of `src/`: which file uses which, read from the source text itself.
//!
//! Every `use crate::…`, `use super::…`, `use self::…` and every inline `crate::…`/`super::…`
//! path outside `#[cfg(test)]` code is an edge from the file that writes it to the file that
//! defines the module it names (the longest prefix of the path that is a module with a file).
//! The tests check that those edges form no cycle and that they run the way
//! docs/architecture.md says the layers depend on each other.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// One source file of the library: its module path and its text with comments, strings and
/// test-only items removed.
struct SourceFile {
    module: Vec<String>,
    path: String,
    code: String,
}

fn library_files() -> Vec<SourceFile> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut paths = Vec::new();
    collect(&root, &mut paths);
    let mut files: Vec<SourceFile> = paths
        .into_iter()
        .filter_map(|path| {
            let rel = path
                .strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .to_string();
            // The binaries are crates of their own, using the library from outside.
            if rel == "main.rs" || rel.starts_with("bin/") {
                return None;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            Some(SourceFile {
                module: module_of(&rel),
                path: rel,
                code: without_test_items(&strip_comments_and_strings(&text)),
            })
        })
        .collect();
    // Files that are only `#[cfg(test)] mod NAME;` of their parent are test code.
    let test_modules: BTreeSet<Vec<String>> = paths_declared_for_tests();
    files.retain(|f| !test_modules.contains(&f.module));
    files
}

/// Module paths declared `#[cfg(test)] mod NAME;` anywhere in src/.
fn paths_declared_for_tests() -> BTreeSet<Vec<String>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut paths = Vec::new();
    collect(&root, &mut paths);
    let mut out = BTreeSet::new();
    for path in paths {
        let rel = path
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .to_string();
        let text = strip_comments_and_strings(&std::fs::read_to_string(&path).unwrap());
        let mut rest = text.as_str();
        while let Some(at) = rest.find("#[cfg(test)]") {
            rest = &rest[at + "#[cfg(test)]".len()..];
            let item = rest.trim_start();
            let item = item.strip_prefix("pub(crate) ").unwrap_or(item);
            if let Some(decl) = item.strip_prefix("mod ") {
                let name: String = decl.chars().take_while(|c| is_ident(*c)).collect();
                if decl[name.len()..].trim_start().starts_with(';') {
                    let mut module = module_of(&rel);
                    module.push(name);
                    out.insert(module);
                }
            }
        }
    }
    out
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out.sort();
}

/// `lib.rs` -> [], `a/mod.rs` -> [a], `a/b.rs` -> [a, b].
fn module_of(rel: &str) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .trim_end_matches(".rs")
        .split('/')
        .map(String::from)
        .collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    parts
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The text with comments removed and string and char literals emptied (lifetimes kept).
fn strip_comments_and_strings(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if c == 'r'
            && (next == Some('"') || next == Some('#'))
            && !chars.get(i.wrapping_sub(1)).is_some_and(|p| is_ident(*p))
        {
            // A raw string: r"..." or r#"..."#.
            let mut j = i + 1;
            let mut hashes = 0;
            while chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            loop {
                if j >= chars.len() {
                    break;
                }
                if chars[j] == '"' && (0..hashes).all(|k| chars.get(j + 1 + k) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            out.push_str("\"\"");
            i = j;
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == '\'' {
            // A char literal ('x', '\n', '\u{..}') or a lifetime ('a).
            if next == Some('\\') {
                let mut j = i + 2;
                while j < chars.len() && chars[j] != '\'' {
                    j += 1;
                }
                i = j + 1;
                out.push_str("' '");
            } else if chars.get(i + 2) == Some(&'\'') {
                i += 3;
                out.push_str("' '");
            } else {
                out.push(c);
                i += 1;
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// The code without the items marked `#[cfg(test)]` (a block, or a declaration up to `;`).
fn without_test_items(code: &str) -> String {
    let mut out = String::new();
    let mut rest = code;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let item = &rest[at..];
        let brace = item.find('{');
        let semi = item.find(';');
        let end = match (brace, semi) {
            (Some(b), Some(s)) if s < b => s + 1,
            (Some(b), _) => matching_brace(item, b) + 1,
            (None, Some(s)) => s + 1,
            (None, None) => item.len(),
        };
        rest = &item[end..];
    }
    out.push_str(rest);
    out
}

fn matching_brace(text: &str, open: usize) -> usize {
    let mut depth = 0;
    for (i, c) in text[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return open + i;
                }
            }
            _ => {}
        }
    }
    text.len() - 1
}

/// The paths a `use` tree names: `a::{b, c::{d, e}}` -> a::b, a::c::d, a::c::e.
fn expand_use_tree(tree: &str) -> Vec<Vec<String>> {
    // `X as Y` names X: drop each ` as Y` (keeping what follows Y, such as `,` or `}`).
    let mut kept = String::new();
    let mut tokens = tree.split_whitespace();
    while let Some(token) = tokens.next() {
        if token == "as" {
            if let Some(alias) = tokens.next() {
                kept.push_str(alias.trim_start_matches(is_ident));
            }
        } else {
            kept.push_str(token);
        }
    }
    let tree = kept;
    let mut out = Vec::new();
    expand_into(&tree, &mut Vec::new(), &mut out);
    out
}

fn expand_into(tree: &str, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    if let Some(open) = tree.find('{') {
        let head: Vec<String> = tree[..open]
            .split("::")
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        let close = matching_brace(tree, open);
        let inner = &tree[open + 1..close];
        let depth_before = prefix.len();
        prefix.extend(head);
        for part in split_top_level(inner) {
            if !part.is_empty() {
                expand_into(part, prefix, out);
            }
        }
        prefix.truncate(depth_before);
    } else {
        let mut path = prefix.clone();
        path.extend(
            tree.split("::")
                .filter(|s| !s.is_empty() && *s != "*")
                .map(String::from),
        );
        if path.last().is_some_and(|s| s == "self") {
            path.pop();
        }
        out.push(path);
    }
}

fn split_top_level(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

/// Every path the code names through `crate`, `super` or `self` (or, in a `use`, through a
/// child module of its own), made absolute.
fn referenced_paths(file: &SourceFile, children: &BTreeSet<String>) -> Vec<Vec<String>> {
    let code = &file.code;
    let mut raw: Vec<Vec<String>> = Vec::new();
    // `use` declarations (with their trees).
    let mut i = 0;
    while let Some(at) = code[i..].find("use ") {
        let start = i + at;
        i = start + 4;
        let before = code[..start].chars().next_back();
        if before.is_some_and(is_ident) {
            continue;
        }
        let Some(end) = code[start..].find(';') else {
            break;
        };
        let tree = &code[start + 4..start + end];
        for path in expand_use_tree(tree) {
            if path.first().is_some_and(|first| children.contains(first)) {
                let mut relative = vec!["self".to_string()];
                relative.extend(path);
                raw.push(relative);
            } else {
                raw.push(path);
            }
        }
        i = start + end;
    }
    // Inline paths, in the code outside the `use` declarations read above.
    let mut outside_uses = String::with_capacity(code.len());
    let mut rest = code.as_str();
    while let Some(at) = rest.find("use ") {
        let word_start = !rest[..at].chars().next_back().is_some_and(is_ident);
        let end = rest[at..].find(';').map_or(rest.len(), |e| at + e);
        outside_uses.push_str(&rest[..at]);
        if !word_start {
            outside_uses.push_str("use ");
            rest = &rest[at + 4..];
            continue;
        }
        rest = &rest[end..];
    }
    outside_uses.push_str(rest);
    let code = &outside_uses;
    for anchor in ["crate::", "super::", "self::"] {
        let mut from = 0;
        while let Some(at) = code[from..].find(anchor) {
            let start = from + at;
            from = start + anchor.len();
            if code[..start]
                .chars()
                .next_back()
                .is_some_and(|c| is_ident(c) || c == ':')
            {
                continue;
            }
            let path: Vec<String> = code[start..]
                .chars()
                .take_while(|c| is_ident(*c) || *c == ':')
                .collect::<String>()
                .split("::")
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect();
            raw.push(path);
        }
    }
    raw.into_iter()
        .filter_map(|path| absolute(&file.module, path))
        .collect()
}

fn absolute(module: &[String], path: Vec<String>) -> Option<Vec<String>> {
    let mut base: Vec<String> = module.to_vec();
    let mut segments = path.into_iter().peekable();
    match segments.peek().map(String::as_str) {
        Some("crate") => {
            base.clear();
            segments.next();
        }
        Some("self") => {
            segments.next();
        }
        Some("super") => {
            while segments.peek().map(String::as_str) == Some("super") {
                segments.next();
                base.pop();
            }
        }
        _ => return None,
    }
    base.extend(segments);
    Some(base)
}

/// What a file re-exports (`pub use`, `pub(crate) use`, ...): the name it offers -> the
/// absolute path of what that name is.
fn re_exports(file: &SourceFile, children: &BTreeSet<String>) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    let code = &file.code;
    let mut from = 0;
    while let Some(at) = code[from..].find("pub") {
        let start = from + at;
        from = start + 3;
        if code[..start].chars().next_back().is_some_and(is_ident) {
            continue;
        }
        let rest = &code[start + 3..];
        let rest = match rest.strip_prefix('(') {
            Some(r) => &r[r.find(')').map_or(0, |i| i + 1)..],
            None => rest,
        };
        let Some(tree) = rest.trim_start().strip_prefix("use ") else {
            continue;
        };
        let Some(end) = tree.find(';') else {
            continue;
        };
        for path in expand_use_tree(&tree[..end]) {
            let Some(name) = path.last().cloned() else {
                continue;
            };
            let path = if path.first().is_some_and(|first| children.contains(first)) {
                let mut relative = vec!["self".to_string()];
                relative.extend(path);
                relative
            } else {
                path
            };
            if let Some(target) = absolute(&file.module, path) {
                out.insert(name, target);
            }
        }
    }
    out
}

/// The file that defines what `path` names: the longest prefix of it that is a module with a
/// file, followed through that file's re-exports to where the item really is.
fn resolve<'a>(
    by_module: &'a BTreeMap<Vec<String>, String>,
    exports: &BTreeMap<String, BTreeMap<String, Vec<String>>>,
    path: &[String],
    depth: usize,
) -> Option<&'a String> {
    let n = (0..=path.len())
        .rev()
        .find(|n| by_module.contains_key(&path[..*n]))?;
    let file = &by_module[&path[..n]];
    if depth < 8 {
        if let Some(item) = path.get(n) {
            if let Some(target) = exports.get(file).and_then(|e| e.get(item)) {
                let mut followed = target.clone();
                followed.extend(path[n + 1..].iter().cloned());
                if followed != path {
                    return resolve(by_module, exports, &followed, depth + 1);
                }
            }
        }
    }
    Some(file)
}

fn children_of(by_module: &BTreeMap<Vec<String>, String>, module: &[String]) -> BTreeSet<String> {
    by_module
        .keys()
        .filter(|m| m.len() == module.len() + 1 && m.starts_with(module))
        .map(|m| m.last().unwrap().clone())
        .collect()
}

/// Edges file -> file, each with one path that makes it (for the failure message). A path
/// through a re-export counts as a use of the file that defines the item.
fn edges() -> BTreeMap<(String, String), String> {
    let files = library_files();
    let by_module: BTreeMap<Vec<String>, String> = files
        .iter()
        .map(|f| (f.module.clone(), f.path.clone()))
        .collect();
    let exports: BTreeMap<String, BTreeMap<String, Vec<String>>> = files
        .iter()
        .map(|f| {
            let children = children_of(&by_module, &f.module);
            (f.path.clone(), re_exports(f, &children))
        })
        .collect();
    let mut edges = BTreeMap::new();
    for file in &files {
        let children = children_of(&by_module, &file.module);
        for path in referenced_paths(file, &children) {
            if let Some(target) = resolve(&by_module, &exports, &path, 0) {
                if *target != file.path {
                    edges
                        .entry((file.path.clone(), target.clone()))
                        .or_insert_with(|| path.join("::"));
                }
            }
        }
    }
    edges
}

/// Strongly connected components of more than one file (Tarjan).
fn cycles(edges: &BTreeMap<(String, String), String>) -> Vec<Vec<String>> {
    let mut graph: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (from, to) in edges.keys() {
        graph.entry(from).or_default().push(to);
        graph.entry(to).or_default();
    }
    struct State<'g> {
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: BTreeSet<&'g str>,
        next: usize,
        out: Vec<Vec<String>>,
    }
    fn visit<'g>(v: &'g str, graph: &BTreeMap<&'g str, Vec<&'g str>>, s: &mut State<'g>) {
        s.index.insert(v, s.next);
        s.low.insert(v, s.next);
        s.next += 1;
        s.stack.push(v);
        s.on_stack.insert(v);
        for &w in &graph[v] {
            if !s.index.contains_key(w) {
                visit(w, graph, s);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v, low);
            } else if s.on_stack.contains(w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            loop {
                let w = s.stack.pop().unwrap();
                s.on_stack.remove(w);
                component.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.out.push(component);
            }
        }
    }
    let mut state = State {
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for &v in graph.keys() {
        if !state.index.contains_key(v) {
            visit(v, &graph, &mut state);
        }
    }
    state.out
}

#[test]
fn no_file_of_the_library_depends_on_itself_through_others() {
    let edges = edges();
    let found = cycles(&edges);
    let mut text = String::new();
    for component in &found {
        text.push_str(&format!("cycle among {component:?}:\n"));
        for ((from, to), path) in &edges {
            if component.contains(from) && component.contains(to) {
                text.push_str(&format!("  {from} -> {to} ({path})\n"));
            }
        }
    }
    assert!(found.is_empty(), "{text}");
}

#[test]
fn the_reader_sees_uses_through_groups_and_relative_paths() {
    // The checker itself: a grouped use, a `super` path and an inline path are all edges.
    assert_eq!(
        expand_use_tree("crate::tools::{command::{Command, Early}, kubectl::Kubectl}"),
        vec![
            vec!["crate", "tools", "command", "Command"],
            vec!["crate", "tools", "command", "Early"],
            vec!["crate", "tools", "kubectl", "Kubectl"],
        ]
    );
    let stripped = strip_comments_and_strings("let s = \"crate::x\"; // crate::y\nlet c = '{';");
    assert!(!stripped.contains("crate::"), "{stripped}");
    assert!(!stripped.contains('{'), "{stripped}");
    assert_eq!(
        absolute(
            &["commands".into(), "migrate".into()],
            vec!["super".into(), "evacuate".into(), "Session".into()]
        ),
        Some(vec!["commands".into(), "evacuate".into(), "Session".into()])
    );
    let edges = edges();
    assert!(
        edges.contains_key(&("commands/migrate.rs".to_string(), "cli.rs".to_string()))
            || edges
                .keys()
                .any(|(from, to)| from.starts_with("commands/migrate") && to == "cli.rs"),
        "migrate uses cli's MigrateArgs: {edges:?}"
    );
}

/// The layer of a file of src/ (docs/architecture.md): the directory it is in, or for the files
/// at the top, their role.
fn layer(path: &str) -> &'static str {
    match path.split('/').next().unwrap_or(path) {
        "lib.rs" => "root",
        "cli.rs" => "cli",
        "commands" => "commands",
        "complete" => "complete",
        "engine" => "engine",
        "plan" => "plan",
        "model" => "model",
        "tools" => "tools",
        "errors.rs" | "interrupt.rs" | "report.rs" | "yaml.rs" => "base",
        other => panic!("{other}: a file of src/ in no layer; add it to docs/architecture.md"),
    }
}

/// What each layer may use besides itself.
const MAY_USE: &[(&str, &[&str])] = &[
    (
        "root",
        &[
            "cli", "commands", "complete", "engine", "plan", "model", "tools", "base",
        ],
    ),
    (
        "commands",
        &["cli", "engine", "plan", "model", "tools", "base"],
    ),
    ("complete", &["cli", "engine", "model", "tools", "base"]),
    ("cli", &["engine", "plan", "model", "tools", "base"]),
    ("engine", &["plan", "model", "tools", "base"]),
    ("plan", &["model", "base"]),
    ("tools", &["model", "base"]),
    ("model", &["base"]),
    ("base", &[]),
];

#[test]
fn each_layer_uses_only_the_layers_below_it() {
    let mut wrong = Vec::new();
    for ((from, to), path) in edges() {
        let (a, b) = (layer(&from), layer(&to));
        if a == b {
            continue;
        }
        let allowed = MAY_USE
            .iter()
            .find(|(l, _)| *l == a)
            .map_or(&[][..], |(_, may)| *may);
        if !allowed.contains(&b) {
            wrong.push(format!("{from} ({a}) -> {to} ({b}): {path}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "uses against the layers:\n{}",
        wrong.join("\n")
    );
}
