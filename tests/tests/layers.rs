//! The crates' layers hold: a module imports only modules of its own layer or below, outside a
//! named list of exceptions, and no import circle is larger than the crate allows.
//!
//! Each crate's `lib.rs` essay carries its layer list as a ```text block under the heading
//! `## Layers`, one layer a line, bottom first: `name: module module ...`. A module is named
//! by its path (`percpu::resize`); naming a directory module (`profile`) covers its files not
//! named elsewhere. The exceptions follow in a second ```text block under `### Exceptions`,
//! one a line: `from -> to: why`. So the essay a reader meets is the list this test enforces,
//! and neither can drift from the code.
//!
//! An edge is any path a file's code names: `crate::a::b` (in `use` or inline, braces
//! expanded), `super::x`, `self::x` and a child module's name (`resize::grow`). Test and loom
//! code (items under `#[cfg(test)]`, `#[cfg(loom)]` and the like) is left out, as are comments.
//! The crate root (`lib.rs`) is the facade above every layer: a module that names an item
//! `lib.rs` defines itself (not a re-export) fails the check.
//!
//! Method calls count too: a call `.name(` of a method that only one module's inherent `impl`
//! blocks define is an edge to that module (the collector writes behaviour as `impl Heap`
//! blocks in the module that owns it, so a lower module can call above itself without naming
//! it). Without types, a call by a name the standard library's types also use (`AMBIGUOUS`:
//! `load`, `push`, `clear`, ...) or that two modules define is not resolved: those are for
//! review.
//!
//! Run `cargo test -p tricolor-tests --test layers -- --nocapture` to see each crate's import
//! circles; with `LAYERS_DUMP=1` it also prints every module's imports.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The module files of a crate: module path (`""` for the root, `a::b`) → source.
fn modules(src: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            if p.extension().is_none_or(|x| x != "rs") {
                continue;
            }
            let rel = p.strip_prefix(src).unwrap().with_extension("");
            let mut parts: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if parts.last().is_some_and(|l| l == "mod" || l == "lib") {
                parts.pop();
            }
            out.insert(parts.join("::"), std::fs::read_to_string(&p).unwrap());
        }
    }
    out
}

/// The source with comments, string contents and test- or loom-only items blanked out.
fn production_code(src: &str) -> String {
    // Comments and string literals first, keeping line structure.
    let b = src.as_bytes();
    let mut s = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            while i < b.len() && !b[i..].starts_with(b"*/") {
                i += 1;
            }
            i += 2;
        } else if b[i] == b'"' {
            s.push(b'"');
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            s.push(b'"');
            i += 1;
        } else if b[i] == b'\'' && i + 2 < b.len() && (b[i + 2] == b'\'' || b[i + 1] == b'\\') {
            // A char literal ('{', '\n'); lifetimes ('a) are left alone.
            let end = b[i + 1..].iter().position(|&c| c == b'\'').unwrap() + i + 2;
            s.extend_from_slice(b"' '");
            i = end;
        } else {
            s.push(b[i]);
            i += 1;
        }
    }
    let s = String::from_utf8(s).unwrap();
    // Then every item under a test- or loom-only `cfg`.
    let mut out = String::with_capacity(s.len());
    let mut rest = s.as_str();
    while let Some(at) = rest.find("#[cfg(") {
        let close = rest[at..].find(']').unwrap() + at;
        // `#[cfg(test)]`, `#[cfg(loom)]` and `#[cfg(all(test, ...))]` are test-only;
        // `#[cfg(any(test, feature = "x"))]` is production code under a feature.
        let cond = &rest[at + "#[cfg(".len()..close];
        let only = |c: &str| c.starts_with("test") || c.starts_with("loom");
        let gated = only(cond)
            || cond
                .strip_prefix("all(")
                .is_some_and(|args| args.split(',').any(|a| only(a.trim())));
        if !gated {
            out.push_str(&rest[..=close]);
            rest = &rest[close + 1..];
            continue;
        }
        out.push_str(&rest[..at]);
        // Skip the item: to a `;` before any brace, or to its first block's closing brace.
        let item = &rest[close + 1..];
        let mut depth = 0usize;
        let mut end = item.len();
        for (k, c) in item.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = k + 1;
                        break;
                    }
                }
                ';' if depth == 0 => {
                    end = k + 1;
                    break;
                }
                _ => {}
            }
        }
        rest = &item[end..];
    }
    out.push_str(rest);
    out
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The module paths named at `s` (just after `crate::`, `super::` ...): `a::b::{c, d::e}` gives
/// `a::b::c` and `a::b::d::e`.
fn expand(s: &str, prefix: &str, out: &mut Vec<String>) {
    let s = s.trim_start();
    if let Some(group) = s.strip_prefix('{') {
        let mut depth = 0;
        let mut start = 0;
        for (k, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => {
                    expand(&group[start..k], prefix, out);
                    return;
                }
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    expand(&group[start..k], prefix, out);
                    start = k + 1;
                }
                _ => {}
            }
        }
        return;
    }
    let len = s.find(|c| !is_ident(c)).unwrap_or(s.len());
    if len == 0 {
        out.push(prefix.to_string());
        return;
    }
    let name = &s[..len];
    let path = if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}::{name}")
    };
    match s[len..].trim_start().strip_prefix("::") {
        Some(more) => expand(more, &path, out),
        None => out.push(path),
    }
}

/// The paths a module's production code names, absolute from the crate root.
fn named_paths(module: &str, code: &str, children: &BTreeSet<String>) -> Vec<String> {
    let parent = |m: &str| {
        m.rsplit_once("::")
            .map_or(String::new(), |(p, _)| p.to_string())
    };
    let mut out = Vec::new();
    // Inline modules (`mod raw { ... }`) shift what `super` and `self` mean: track them.
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let b: Vec<(usize, char)> = code.char_indices().collect();
    let mut k = 0;
    while k < b.len() {
        let (at, c) = b[k];
        let boundary = at == 0 || !is_ident(code[..at].chars().next_back().unwrap());
        match c {
            '{' => depth += 1,
            '}' => {
                depth = depth.saturating_sub(1);
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
            }
            _ => {}
        }
        if boundary && is_ident(c) {
            let word_len = code[at..].find(|c| !is_ident(c)).unwrap_or(code.len() - at);
            let word = &code[at..at + word_len];
            let after = code[at + word_len..].trim_start();
            let here = inline.iter().fold(module.to_string(), |m, (name, _)| {
                if m.is_empty() {
                    name.clone()
                } else {
                    format!("{m}::{name}")
                }
            });
            if word == "mod" {
                let name_len = after.find(|c| !is_ident(c)).unwrap_or(after.len());
                if after[name_len..].trim_start().starts_with('{') {
                    inline.push((after[..name_len].to_string(), depth));
                }
            } else if let Some(rest) = after.strip_prefix("::") {
                let mut base = match word {
                    "crate" => Some(String::new()),
                    "super" => Some(parent(&here)),
                    "self" => Some(here.clone()),
                    w if inline.is_empty() && children.contains(w) => {
                        let mut p = Vec::new();
                        expand(rest, w, &mut p);
                        out.extend(p.into_iter().map(|p| {
                            if module.is_empty() {
                                p
                            } else {
                                format!("{module}::{p}")
                            }
                        }));
                        None
                    }
                    _ => None,
                };
                // `super::super::x`
                let mut rest = rest;
                while let Some(more) = rest.trim_start().strip_prefix("super::") {
                    base = base.map(|b| parent(&b));
                    rest = more;
                }
                if let Some(base) = base {
                    expand(rest, &base, &mut out);
                }
            }
            k += code[at..at + word_len].chars().count();
            continue;
        }
        k += 1;
    }
    out
}

/// The file module a path lands in: its longest prefix that is a module file.
fn owner<'a>(path: &str, files: &'a BTreeSet<String>) -> Option<&'a String> {
    let mut p = path.to_string();
    loop {
        if let Some(f) = files.get(&p) {
            return Some(f);
        }
        match p.rsplit_once("::") {
            Some((head, _)) => p = head.to_string(),
            None => return files.get(""),
        }
    }
}

/// Each module's imports (module path → the modules it names).
type Graph = BTreeMap<String, BTreeSet<String>>;

/// The items the crate root defines itself (not its `mod` declarations or re-exports): a
/// module naming one imports the facade, which is above every layer.
fn root_items(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut depth = 0usize;
    let words: Vec<&str> = code
        .split(|c: char| !is_ident(c) && c != '{' && c != '}' && c != ';')
        .filter(|w| !w.is_empty())
        .collect();
    let mut i = 0;
    while i < words.len() {
        let w = words[i];
        depth += w.matches('{').count();
        depth = depth.saturating_sub(w.matches('}').count());
        let kind = w.trim_matches(['{', '}', ';']);
        if depth == 0
            && matches!(
                kind,
                "struct" | "enum" | "fn" | "trait" | "type" | "static" | "const" | "union" | "mod"
            )
            && let Some(next) = words.get(i + 1)
        {
            let name = next.trim_end_matches(['{', ';']);
            // `mod x;` declares a file module; `mod x {` defines an inline one here.
            let inline_mod = kind != "mod" || next.ends_with('{') || words.get(i + 2) == Some(&"{");
            if inline_mod && !name.is_empty() && name != "_" {
                out.insert(name.to_string());
            }
        }
        i += 1;
    }
    out
}

/// Each file module's imports of other file modules (the root left out), and the paths by
/// which a module names an item the crate root defines (`module`, `path`).
fn graph(src: &Path) -> (Graph, Vec<(String, String)>) {
    let mods = modules(src);
    let files: BTreeSet<String> = mods.keys().cloned().collect();
    let defined = root_items(&production_code(&mods[""]));
    let mut g = BTreeMap::new();
    let mut into_root = Vec::new();
    for (m, text) in &mods {
        let prefix = if m.is_empty() {
            String::new()
        } else {
            format!("{m}::")
        };
        let children: BTreeSet<String> = files
            .iter()
            .filter_map(|f| f.strip_prefix(&prefix))
            .filter(|f| !f.is_empty() && !f.contains("::"))
            .map(str::to_string)
            .collect();
        let code = production_code(text);
        let paths = named_paths(m, &code, &children);
        let deps: BTreeSet<String> = paths
            .iter()
            .filter_map(|p| owner(p, &files))
            .filter(|d| *d != m && !d.is_empty())
            .cloned()
            .collect();
        if !m.is_empty() {
            for p in &paths {
                let first = p.split("::").next().unwrap_or("");
                if owner(p, &files).is_some_and(|o| o.is_empty()) && defined.contains(first) {
                    into_root.push((m.clone(), p.clone()));
                }
            }
            g.insert(m.clone(), deps);
        }
    }
    (g, into_root)
}

/// Methods of inherent `impl` blocks (not trait impls), by name: the modules defining one.
fn inherent_methods(mods: &BTreeMap<String, String>) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (m, text) in mods {
        let code = production_code(text);
        let mut rest = code.as_str();
        while let Some(at) = rest.find("impl") {
            let before = rest[..at].chars().next_back();
            let after = rest[at + 4..].chars().next();
            let word = before.is_none_or(|c| !is_ident(c)) && after.is_some_and(|c| !is_ident(c));
            let Some(open) = rest[at..].find('{').map(|o| at + o) else {
                break;
            };
            let header = &rest[at..open];
            if !word || header.contains(';') {
                rest = &rest[at + 4..];
                continue;
            }
            // The block: to its closing brace; `fn` names at its own depth are its methods.
            let mut depth = 0usize;
            let mut end = rest.len();
            let mut body_fns = Vec::new();
            let bytes = rest.as_bytes();
            let mut k = open;
            while k < bytes.len() {
                match bytes[k] {
                    b'{' => depth += 1,
                    b'}' => {
                        depth -= 1;
                        if depth == 0 {
                            end = k + 1;
                            break;
                        }
                    }
                    b'f' if depth == 1
                        && rest[k..].starts_with("fn ")
                        && !is_ident(rest[..k].chars().next_back().unwrap_or(' ')) =>
                    {
                        let name: String =
                            rest[k + 3..].chars().take_while(|&c| is_ident(c)).collect();
                        body_fns.push(name);
                    }
                    _ => {}
                }
                k += 1;
            }
            if !header.contains(" for ") {
                for f in body_fns {
                    out.entry(f).or_default().insert(m.clone());
                }
            }
            rest = &rest[end.min(rest.len())..];
        }
    }
    out
}

/// Method names the standard library's types (or the crate's traits) also have: a call by one
/// of these names cannot be told apart from a call on a standard type without types, so it is
/// not resolved to the crate's method of that name.
const AMBIGUOUS: &[&str] = &[
    "add",
    "all",
    "and_then",
    "any",
    "as_mut",
    "as_mut_ptr",
    "as_ptr",
    "as_ref",
    "bytes",
    "cast",
    "chain",
    "clear",
    "clone",
    "cloned",
    "compare_exchange",
    "contains",
    "copied",
    "count",
    "data",
    "default",
    "drain",
    "end",
    "entry",
    "expect",
    "extend",
    "fetch_add",
    "fetch_and",
    "fetch_or",
    "fetch_sub",
    "filter",
    "find",
    "first",
    "flush",
    "fold",
    "from",
    "get",
    "get_mut",
    "insert",
    "into",
    "is_empty",
    "is_null",
    "iter",
    "iter_mut",
    "join",
    "keys",
    "last",
    "len",
    "load",
    "lock",
    "map",
    "max",
    "min",
    "new",
    "next",
    "notify_all",
    "notify_one",
    "offset",
    "pop",
    "position",
    "push",
    "read",
    "remove",
    "replace",
    "reset",
    "resize",
    "retain",
    "rev",
    "root",
    "root_value",
    "set",
    "size",
    "sort",
    "split",
    "start",
    "store",
    "sub",
    "sum",
    "swap",
    "take",
    "truncate",
    "unwrap",
    "values",
    "values_mut",
    "wait",
    "wait_timeout",
    "with",
    "write",
    "zip",
];

/// The method names a module's production code calls (`.name(` or `.name::<`).
fn method_calls(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let b = code.as_bytes();
    for (i, _) in code.match_indices('.') {
        let name: String = code[i + 1..].chars().take_while(|&c| is_ident(c)).collect();
        let next = &code[i + 1 + name.len()..];
        if !name.is_empty()
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && (next.starts_with('(') || next.starts_with("::<"))
            && (i == 0 || b[i - 1] != b'.')
        {
            out.insert(name);
        }
    }
    out
}

/// Strongly connected components with more than one member (Tarjan's algorithm).
fn circles(g: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct T<'a> {
        g: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(t: &mut T<'a>, v: &'a str) {
        let i = t.index.len();
        t.index.insert(v, i);
        t.low.insert(v, i);
        t.stack.push(v);
        t.on.insert(v);
        for w in &t.g[v] {
            let w = w.as_str();
            if !t.g.contains_key(w) {
                continue;
            }
            if !t.index.contains_key(w) {
                visit(t, w);
                let l = t.low[w].min(t.low[v]);
                t.low.insert(v, l);
            } else if t.on.contains(w) {
                let l = t.index[w].min(t.low[v]);
                t.low.insert(v, l);
            }
        }
        if t.low[v] == t.index[v] {
            let mut c = Vec::new();
            loop {
                let w = t.stack.pop().unwrap();
                t.on.remove(w);
                c.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if c.len() > 1 {
                c.sort();
                t.out.push(c);
            }
        }
    }
    let mut t = T {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in g.keys() {
        if !t.index.contains_key(v.as_str()) {
            visit(&mut t, v);
        }
    }
    t.out
}

/// The layer list and exceptions from a crate essay's ```text blocks.
struct Layers {
    /// Layer names, bottom first, with the modules each names.
    layers: Vec<(String, Vec<String>)>,
    /// (from, to) → why.
    exceptions: BTreeMap<(String, String), String>,
}

fn text_block_after(essay: &str, heading: &str) -> Option<Vec<String>> {
    let at = essay.lines().position(|l| l.trim() == heading)?;
    let mut lines = essay.lines().skip(at + 1);
    lines.find(|l| l.trim() == "```text")?;
    Some(
        lines
            .take_while(|l| l.trim() != "```")
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect(),
    )
}

fn layers(lib_rs: &str) -> Layers {
    let essay: String = lib_rs
        .lines()
        .filter_map(|l| l.strip_prefix("//!"))
        .map(|l| l.strip_prefix(' ').unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n");
    let layer_lines = text_block_after(&essay, "## Layers").unwrap_or_default();
    let layers = layer_lines
        .iter()
        .map(|l| {
            let (name, mods) = l
                .split_once(':')
                .unwrap_or_else(|| panic!("layer line without ':': {l}"));
            (
                name.trim().to_string(),
                mods.split_whitespace().map(str::to_string).collect(),
            )
        })
        .collect();
    let exceptions = text_block_after(&essay, "### Exceptions")
        .unwrap_or_default()
        .iter()
        .map(|l| {
            // `: ` ends the edge: module paths hold `::`.
            let (edge, why) = l
                .split_once(": ")
                .unwrap_or_else(|| panic!("exception without a reason: {l}"));
            let (from, to) = edge
                .split_once("->")
                .unwrap_or_else(|| panic!("exception is not 'from -> to: why': {l}"));
            (
                (from.trim().to_string(), to.trim().to_string()),
                why.trim().to_string(),
            )
        })
        .collect();
    Layers { layers, exceptions }
}

/// Checks one crate; returns the problems found.
fn check(crate_dir: &str, max_circle: usize) -> Vec<String> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let src = root.join(crate_dir).join("src");
    let (g, into_root) = graph(&src);
    if std::env::var_os("LAYERS_DUMP").is_some() {
        for (m, d) in &g {
            println!("{m} -> {}", d.iter().cloned().collect::<Vec<_>>().join(" "));
        }
    }
    let mut problems = Vec::new();
    for (m, p) in into_root {
        problems.push(format!(
            "{crate_dir}: {m} names {p}, defined in lib.rs (the facade above every layer)"
        ));
    }
    for c in circles(&g) {
        println!("{crate_dir}: import circle of {}: {}", c.len(), c.join(" "));
        if c.len() > max_circle {
            problems.push(format!(
                "{crate_dir}: an import circle of {} files (at most {max_circle}): {}",
                c.len(),
                c.join(" ")
            ));
        }
    }
    let spec = layers(&std::fs::read_to_string(src.join("lib.rs")).unwrap());

    // Every module file is in exactly one layer: the one naming it, else its nearest named
    // ancestor.
    let mut named: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, (layer, mods)) in spec.layers.iter().enumerate() {
        for m in mods {
            if named.insert(m, i).is_some() {
                problems.push(format!("{crate_dir}: {m} is named twice (layer {layer})"));
            }
            if !g.contains_key(m) {
                problems.push(format!(
                    "{crate_dir}: layer {layer} names {m}, which is no module file"
                ));
            }
        }
    }
    let layer_of = |m: &str| -> Option<usize> {
        let mut p = m;
        loop {
            if let Some(&i) = named.get(p) {
                return Some(i);
            }
            p = p.rsplit_once("::")?.0;
        }
    };
    for m in g.keys() {
        if layer_of(m).is_none() {
            problems.push(format!("{crate_dir}: module {m} is in no layer of lib.rs"));
        }
    }

    // An edge above its source's layer: allowed by a named exception, else a problem.
    let mut used = BTreeSet::new();
    let mut upward = |from: &String, to: &String, what: String| -> Option<String> {
        let (lf, lt) = (layer_of(from)?, layer_of(to)?);
        if lt <= lf {
            return None;
        }
        let key = (from.clone(), to.clone());
        if spec.exceptions.contains_key(&key) {
            used.insert(key);
            return None;
        }
        Some(format!(
            "{crate_dir}: {from} (layer {}) {what} (layer {}), above it",
            spec.layers[lf].0, spec.layers[lt].0
        ))
    };
    for (from, deps) in &g {
        for to in deps {
            problems.extend(upward(from, to, format!("imports {to}")));
        }
    }
    // Method calls: a call `.name(` of a method only one module's inherent `impl` blocks
    // define, and no standard type or trait of the crate has, is an edge to that module.
    let mods = modules(&src);
    let methods = inherent_methods(&mods);
    for (from, text) in &mods {
        for name in method_calls(&production_code(text)) {
            let Some(owners) = methods.get(&name) else {
                continue;
            };
            if owners.len() != 1 || owners.contains(from) || AMBIGUOUS.contains(&name.as_str()) {
                continue;
            }
            let to = owners.iter().next().unwrap();
            problems.extend(upward(from, to, format!("calls {to}'s method {name}")));
        }
    }
    for (from, to) in spec.exceptions.keys() {
        if !used.contains(&(from.clone(), to.clone())) {
            problems.push(format!(
                "{crate_dir}: exception {from} -> {to} is not needed (no such upward import or call)"
            ));
        }
    }

    problems
}

#[test]
fn the_allocator_crate_keeps_its_layers() {
    // The front end's layer (the per-CPU lists with their resizing and counters, the per-thread
    // caches, the scavenger, the profiler's sampler and writer) may call each other: at most 7
    // files in a circle.
    let p = check("alloc", 7);
    assert!(p.is_empty(), "\n{}", p.join("\n"));
}

#[test]
fn the_collector_crate_keeps_its_layers() {
    let p = check("gc", 4);
    assert!(p.is_empty(), "\n{}", p.join("\n"));
}

#[test]
fn the_graph_reader_sees_every_kind_of_import() {
    let children: BTreeSet<String> = ["resize".to_string()].into();
    let code = production_code(
        "use crate::{a::X, b::{c, d::e}};\n\
         use super::f;\n\
         // use crate::commented;\n\
         fn g() { crate::h::call(); resize::grow(); let s = \"crate::in_string\"; }\n\
         mod raw { use super::*; }\n\
         #[cfg(test)]\nmod tests { use crate::only_tests; }\n\
         #[cfg(loom)]\nuse crate::only_loom;\n\
         #[cfg(any(test, feature = \"x\"))]\nuse crate::under_a_feature;\n",
    );
    let mut got = named_paths("p::m", &code, &children);
    got.sort();
    assert_eq!(
        got,
        [
            "a::X",
            "b::c",
            "b::d::e",
            "h::call",
            "p::f",
            "p::m",
            "p::m::resize::grow",
            "under_a_feature",
        ]
    );
}

#[test]
fn the_root_reader_finds_what_lib_rs_defines() {
    let code = production_code(
        "pub struct A { x: u8 }\nmod b;\npub mod c {\n    fn inner() {}\n}\n\
         pub use x::Y;\nfn f() {}\n#[cfg(test)]\nmod tests { fn t() {} }\n",
    );
    assert_eq!(
        root_items(&code),
        ["A", "c", "f"].map(str::to_string).into_iter().collect()
    );
}

#[test]
fn the_method_reader_finds_inherent_methods_and_calls() {
    let mut mods = BTreeMap::new();
    mods.insert(
        "low".to_string(),
        "fn f(h: &Heap) { h.grow_now(); v.push(1); x.0.len(); }".to_string(),
    );
    mods.insert(
        "high".to_string(),
        "impl Heap {\n    pub fn grow_now(&self) { inner(); }\n    fn helper() {}\n}\n\
         impl Drop for Heap {\n    fn drop(&mut self) {}\n}\n"
            .to_string(),
    );
    let m = inherent_methods(&mods);
    let high: BTreeSet<String> = ["high".to_string()].into();
    assert_eq!(m.get("grow_now"), Some(&high));
    assert_eq!(m.get("helper"), Some(&high));
    assert!(!m.contains_key("drop"), "trait impls are not inherent");
    assert!(!m.contains_key("inner"), "a call is not a definition");
    let calls = method_calls(&production_code(&mods["low"]));
    assert_eq!(
        calls,
        ["grow_now", "len", "push"]
            .map(str::to_string)
            .into_iter()
            .collect()
    );
}
