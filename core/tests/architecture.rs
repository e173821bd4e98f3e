//! The shape of the core, checked: its modules depend on each other without
//! a loop (each owner can be read knowing only what it depends on), and no
//! file grows past 800 lines. See the "Layout" of `core/src/lib.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// `router/mod.rs` -> `router`, `peer/send.rs` -> `peer::send`.
fn module(p: &Path) -> String {
    let rel = p.strip_prefix(src()).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .iter()
        .map(|s| s.to_string_lossy().into_owned())
        .collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    parts.join("::")
}

/// The code of a file without comments and without its test module.
fn code(p: &Path) -> String {
    let text = std::fs::read_to_string(p).unwrap();
    let text = text
        .split("#[cfg(test)]\nmod tests")
        .next()
        .unwrap_or_default();
    text.lines()
        .map(|l| l.split("//").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Which modules each module uses (`crate::a::b` resolves to the longest
/// existing module; a module's own children and parents are not counted).
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let mut all = Vec::new();
    files(&src(), &mut all);
    let modules: BTreeSet<String> = all.iter().map(|p| module(p)).collect();
    let mut g = BTreeMap::new();
    for p in &all {
        let me = module(p);
        let text = code(p);
        let mut uses = BTreeSet::new();
        let mut refs: Vec<String> = Vec::new();
        for (i, _) in text.match_indices("crate::") {
            let rest: String = text[i + 7..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            refs.push(rest);
        }
        let parent = me.rsplit_once("::").map(|(a, _)| a.to_owned());
        for (i, _) in text.match_indices("super::") {
            let rest: String = text[i + 7..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if let Some(parent) = &parent {
                refs.push(format!("{parent}::{rest}"));
            }
        }
        for r in refs {
            let segs: Vec<&str> = r.split("::").filter(|s| !s.is_empty()).collect();
            let target = (1..=segs.len())
                .rev()
                .map(|k| segs[..k].join("::"))
                .find(|c| modules.contains(c));
            if let Some(t) = target {
                let related = t == me
                    || me.starts_with(&format!("{t}::"))
                    || t.starts_with(&format!("{me}::"));
                if !related && !me.is_empty() {
                    uses.insert(t);
                }
            }
        }
        g.insert(me, uses);
    }
    g
}

#[test]
fn core_modules_depend_on_each_other_without_a_loop() {
    let g = graph();
    // Depth-first search for a back edge.
    fn visit(
        g: &BTreeMap<String, BTreeSet<String>>,
        n: &str,
        state: &mut BTreeMap<String, u8>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(n.to_owned(), 1);
        path.push(n.to_owned());
        for m in g.get(n).into_iter().flatten() {
            match state.get(m.as_str()) {
                Some(1) => {
                    let at = path.iter().position(|x| x == m).unwrap_or(0);
                    let mut cycle = path[at..].to_vec();
                    cycle.push(m.clone());
                    return Some(cycle);
                }
                Some(_) => {}
                None => {
                    if let Some(c) = visit(g, m, state, path) {
                        return Some(c);
                    }
                }
            }
        }
        path.pop();
        state.insert(n.to_owned(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in g.keys() {
        if !state.contains_key(n.as_str()) {
            if let Some(c) = visit(&g, n, &mut state, &mut Vec::new()) {
                panic!("core modules use each other in a loop: {}", c.join(" -> "));
            }
        }
    }
    assert!(g.len() > 20, "the graph was read: {} modules", g.len());
}

#[test]
fn no_core_file_is_longer_than_800_lines() {
    let mut all = Vec::new();
    files(&src(), &mut all);
    let long: Vec<String> = all
        .iter()
        .map(|p| (p, std::fs::read_to_string(p).unwrap().lines().count()))
        .filter(|(_, n)| *n > 800)
        .map(|(p, n)| format!("{} ({n} lines)", p.display()))
        .collect();
    assert!(long.is_empty(), "split these: {long:?}");
}

/// Every spin, yield and write-through constant lives in `waiting.rs`, with
/// its policy; a thread is yielded only where that module says (the
/// writer's pause on netchan's own threads, a blocking call's busy poll).
#[test]
fn spin_and_yield_constants_live_in_one_place() {
    let mut all = Vec::new();
    files(&src(), &mut all);
    let mut wrong = Vec::new();
    for p in &all {
        let m = module(p);
        let code = code(p);
        for line in code.lines() {
            let l = line.trim();
            let constant = l.contains("const ")
                && ["SPIN", "YIELD", "GATHER", "LOOKS", "DIRECT_GAP"]
                    .iter()
                    .any(|w| l.contains(w));
            if constant && m != "waiting" {
                wrong.push(format!("{m}: {l}"));
            }
            if l.contains("thread::yield_now")
                && !matches!(m.as_str(), "peer::send::writer" | "blocking")
            {
                wrong.push(format!("{m}: {l}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "move these to core/src/waiting.rs:\n{}",
        wrong.join("\n")
    );
}
