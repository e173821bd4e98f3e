#!/usr/bin/env python3
"""Every test a document names exists.

The promise documents (docs/RELIABILITY.md, docs/C-API.md, the binding
READMEs, ...) name the test behind each statement in square brackets:
[`test_name`] or [`name_a`, `name_b` (what it shows)]. This script finds
every such reference and checks that a test of that name is defined:

- Rust:   `fn NAME(` anywhere in core/, ffi-c/, bindings/*/src, bindings/cli,
          tests/ (a `mod::path::NAME` reference is checked by its last part);
- Python: `def NAME(` under bindings/python/tests;
- Node:   `test('NAME'` / `it('NAME'` under bindings/node/test (the title
          exactly, as node:test prints it);
- Kotlin: `fun NAME(` or fun `NAME`( under bindings/uniffi/kotlin/src/test;
- C:      `NAME(void)` under tests/c;
- a file: a reference with a `/` and an extension must be an existing path.

Usage: python3 scripts/check_doc_tests.py [DOC ...]   (exit 1 on a miss)
"""
import pathlib
import re
import sys

REPO = pathlib.Path(__file__).resolve().parent.parent
DOCS = [
    "docs/RELIABILITY.md",
    "docs/C-API.md",
    "docs/SECURITY.md",
    "bindings/python/README.md",
    "bindings/node/README.md",
    "bindings/uniffi/README.md",
    "tests/interop/README.md",
    "docs/CAPABILITIES.md",
]

SOURCES = {
    "rust": (["core", "ffi-c", "bindings/cli", "bindings/python/src", "bindings/node/src",
              "bindings/uniffi/src", "src", "tests"], (".rs",)),
    "python": (["bindings/python/tests", "tests"], (".py",)),
    "node": (["bindings/node/test"], (".js", ".mjs", ".ts")),
    "kotlin": (["bindings/uniffi/kotlin/src/test"], (".kt",)),
    "c": (["tests/c"], (".c", ".cpp", ".h")),
}


def sources():
    out = []
    for dirs, exts in SOURCES.values():
        for d in dirs:
            for p in (REPO / d).rglob("*"):
                if p.suffix in exts and "target" not in p.parts and "node_modules" not in p.parts:
                    out.append(p)
    return out


def defined(name, texts):
    last = name.split("::")[-1]
    e = re.escape(last)
    full = re.escape(name)
    patterns = [
        rf"\bfn\s+{e}\s*[<(]",                      # Rust
        rf"\bdef\s+{e}\s*\(",                       # Python
        rf"\b(?:test|it)\s*\(\s*(['\"`]){full}\1",  # Node
        rf"\bfun\s+{e}\s*\(",                       # Kotlin
        rf"\bfun\s+`{full}`\s*\(",                  # Kotlin, spaced name
        rf"\b{e}\s*\(\s*void\s*\)",                 # C
    ]
    # A plain substring test first: the regexes then read only the few
    # files that mention the name (all of them, for every name, took minutes).
    candidates = [t for t in texts if last in t]
    return any(re.search(p, t) for p in patterns for t in candidates)


# [`a`, `b` (note)] but not [`x`](link): a reference is a bracketed span of
# backticked names, not followed by "(".
REF = re.compile(r"\[((?:[^\[\]]*?`[^`]+`)+[^\[\]]*?)\](?!\()")
NAME = re.compile(r"`([^`]+)`")


def refs(text):
    for m in REF.finditer(text):
        for n in NAME.findall(m.group(1)):
            yield n, text.count("\n", 0, m.start()) + 1


def main(argv):
    docs = argv[1:] or DOCS
    texts = [p.read_text(errors="replace") for p in sources()]
    missing, count = [], 0
    for doc in docs:
        path = REPO / doc
        if not path.exists():
            missing.append(f"{doc}: the document does not exist")
            continue
        for name, line in refs(path.read_text()):
            count += 1
            if "/" in name and re.search(r"\.\w+$", name):
                ok = (REPO / name).exists()
            else:
                ok = defined(name, texts)
            if not ok:
                missing.append(f"{doc}:{line}: no test named `{name}`")
    for m in missing:
        print(m)
    print(f"{count} test references checked in {len(docs)} documents, {len(missing)} missing")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
