#!/usr/bin/env python3
"""Every name the capability table claims exists in its surface.

docs/CAPABILITIES.md holds one table: an operation per row, a surface per
column (Rust, C, Python, Node, Kotlin/Swift, CLI). A cell is one or more
names in backticks, `—` (the surface lacks it) or `n/a` (it does not fit
the surface). This script reads the table and checks every name against
the surface's source of truth:

- Rust:   core/src. `Type::name`: a `pub fn` / `pub async fn` in an
          `impl Type` block (not a trait impl), or a `pub` field of
          `struct Type`; `module::name`: `pub mod module` and a `pub fn name`;
          a bare `name`: a `pub fn`; a bare `Type`: a `pub struct`, `enum`,
          `trait` or `type`. `pub(crate)` does not count.
- C:      include/netchan.h, comments left out: the identifier.
- Python: bindings/python/python/netchan/{_native.pyi,__init__.py,aio.py},
          parsed with `ast`. `Class.name`: a method, property or annotated
          attribute of a class of that name; `Class`: the class;
          `Class(kw=...)` / `Class.method(kw=...)`: each keyword a parameter
          of the class's `__new__`/`__init__` or of the method.
- Node:   bindings/node/{index.d.ts,netchan.d.ts}, comments left out.
          `Type.name`: a method or property of `class`/`interface Type`;
          `Type`: a class, interface, type, function or const.
- Kotlin/Swift: bindings/uniffi/src/*.rs, as for Rust, with the
          lowerCamelCase name turned to snake_case, and a Kotlin rename in
          bindings/uniffi/uniffi.toml (`"Type.rust_name" = "kotlinName"`)
          taken back to the Rust name; a method of a callback interface
          (`trait Type`) counts too.
- CLI:    bindings/cli/src. `netchan SUB`: a variant of a clap `Subcommand`
          enum whose kebab-case is SUB (or whose `#[command(name = ...)]` is);
          each `--flag` / `-f`: a field with `#[arg(long ...)]` (kebab-case of
          the field, or `long = "flag"`) or `short = 'f'`.

A row with a missing or empty cell, or a cell that is neither names nor
`—` / `n/a`, fails too.

Usage: python3 scripts/check_capabilities.py [DOC]   (exit 1 on a failure)
"""
import ast
import pathlib
import re
import sys

REPO = pathlib.Path(__file__).resolve().parent.parent
DOC = "docs/CAPABILITIES.md"
COLUMNS = ["Operation", "Rust", "C", "Python", "Node", "Kotlin/Swift", "CLI"]
GAP, NOT_APPLICABLE = "—", "n/a"


def read(rel):
    return (REPO / rel).read_text(errors="replace")


def rs_files(d):
    return sorted(p for p in (REPO / d).rglob("*.rs") if "target" not in p.parts)


# ---- Rust (the core, and the uniffi crate behind Kotlin/Swift) ----

# Comments, strings and char literals, in the order they start, so that a
# `//` in a string or a `"` in a comment is read as what it is.
RUST_NOISE = re.compile(
    r"""//[^\n]*|/\*.*?\*/|(?<![\w])b?r(\#*)".*?"\1|b?"(?:\\.|[^"\\])*"|'(?:\\u\{[0-9a-fA-F]+\}|\\.|[^\\'\n])'""",
    re.S,
)


def strip_rust(text):
    def blank(m):
        s = m.group(0)
        if s.endswith('"'):
            return '""'
        if s.startswith("'"):
            return "' '"
        return " " + "\n" * s.count("\n")  # a comment; lines kept

    return RUST_NOISE.sub(blank, text)


def block(text, start):
    """The text between the `{` at `start` and its matching `}`."""
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[start + 1:i]
    return text[start + 1:]


def skip_generics(text, i):
    """From `i` at `<`, the index after the matching `>` (`->` is not one)."""
    depth = 0
    while i < len(text):
        c = text[i]
        if c == "<":
            depth += 1
        elif c == ">" and text[i - 1] != "-":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return i


class RustIndex:
    """Public items of a Rust crate: types, modules, free and inherent
    `pub fn`s per type, `pub` fields per struct, fns per trait."""

    def __init__(self, files):
        self.types, self.mods, self.fns = set(), set(), set()
        self.methods, self.fields, self.trait_fns = {}, {}, {}
        for f in files:
            self.add(strip_rust(f.read_text(errors="replace")))

    def add(self, t):
        self.types.update(re.findall(r"\bpub\s+(?:struct|enum|trait|type)\s+(\w+)", t))
        self.mods.update(re.findall(r"\bpub\s+mod\s+(\w+)", t))
        self.fns.update(re.findall(r"\bpub\s+(?:async\s+)?fn\s+(\w+)\s*[<(]", t))
        for m in re.finditer(r"\bimpl\b", t):
            i = m.end()
            while i < len(t) and t[i].isspace():
                i += 1
            if i < len(t) and t[i] == "<":
                i = skip_generics(t, i)
            brace = t.find("{", i)
            semi = t.find(";", i)
            if brace < 0 or (0 <= semi < brace):
                continue
            head = re.sub(r"\bwhere\b.*", "", t[i:brace], flags=re.S)
            if re.search(r"\bfor\b", head):
                continue  # a trait impl: its methods are the trait's
            ty = re.match(r"\s*(?:[\w]+::)*(\w+)", head)
            if ty:
                body = block(t, brace)
                self.methods.setdefault(ty.group(1), set()).update(
                    re.findall(r"\bpub\s+(?:async\s+)?fn\s+(\w+)\s*[<(]", body))
        for m in re.finditer(r"\bpub\s+struct\s+(\w+)[^;{]*\{", t):
            body = block(t, m.end() - 1)
            self.fields.setdefault(m.group(1), set()).update(re.findall(r"\bpub\s+(\w+)\s*:", body))
        for m in re.finditer(r"\bpub\s+trait\s+(\w+)[^;{]*\{", t):
            body = block(t, m.end() - 1)
            self.trait_fns.setdefault(m.group(1), set()).update(re.findall(r"\bfn\s+(\w+)\s*[<(]", body))

    def has(self, owner, name):
        if owner is None:
            return name in self.types if name[:1].isupper() else name in self.fns
        if not owner[:1].isupper():
            return owner in self.mods and name in self.fns
        return owner in self.types and (
            name in self.methods.get(owner, ())
            or name in self.fields.get(owner, ())
            or name in self.trait_fns.get(owner, ()))


def snake(name):
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def kotlin_renames():
    """{(Type, kotlinName): rust_name} from uniffi.toml's Kotlin renames."""
    text = read("bindings/uniffi/uniffi.toml")
    sec = re.search(r"^\[bindings\.kotlin\.rename\]\s*$(.*?)(?=^\[|\Z)", text, re.M | re.S)
    out = {}
    for ty, rust, kt in re.findall(r'^\s*"(\w+)\.(\w+)"\s*=\s*"(\w+)"', sec.group(1) if sec else "", re.M):
        out[(ty, kt)] = rust
    return out


# ---- C ----

def c_identifiers():
    t = re.sub(r"//[^\n]*|/\*.*?\*/", " ", read("include/netchan.h"), flags=re.S)
    return set(re.findall(r"\b\w+\b", t))


# ---- Python ----

PY_FILES = ["bindings/python/python/netchan/_native.pyi",
            "bindings/python/python/netchan/__init__.py",
            "bindings/python/python/netchan/aio.py"]


class PyIndex:
    def __init__(self):
        self.classes, self.members, self.params, self.funcs = set(), {}, {}, set()
        for f in PY_FILES:
            tree = ast.parse(read(f), filename=f)
            for node in tree.body:
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    self.funcs.add(node.name)
                elif isinstance(node, ast.ClassDef):
                    self.add_class(node)

    def add_class(self, c):
        self.classes.add(c.name)
        self.add_members(c.name, c.body)

    def add_members(self, cls, body):
        members = self.members.setdefault(cls, set())
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                members.add(node.name)
                a = node.args
                names = {x.arg for x in a.posonlyargs + a.args + a.kwonlyargs}
                self.params.setdefault((cls, node.name), set()).update(names)
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                members.add(node.target.id)
            elif isinstance(node, ast.Assign):
                members.update(t.id for t in node.targets if isinstance(t, ast.Name))
            elif isinstance(node, ast.If):  # `if not TYPE_CHECKING:` around a def
                self.add_members(cls, node.body + node.orelse)

    def check(self, owner, name, kwargs):
        if owner is None:
            if name[:1].isupper():
                ok, where = name in self.classes, ("__new__", "__init__")
                cls = name
            else:
                return name in self.funcs and not kwargs
        else:
            cls, where = owner, (name,)
            ok = owner in self.classes and name in self.members.get(owner, ())
        params = set().union(*(self.params.get((cls, w), set()) for w in where))
        return ok and all(k in params for k in kwargs)


# ---- Node ----

TS_NOISE = re.compile(r"""//[^\n]*|/\*.*?\*/|'(?:\\.|[^'\\\n])*'|"(?:\\.|[^"\\\n])*"|`[^`]*`""", re.S)


class NodeIndex:
    def __init__(self):
        self.types, self.members = set(), {}
        for f in ["bindings/node/index.d.ts", "bindings/node/netchan.d.ts"]:
            t = TS_NOISE.sub(lambda m: "''" if m.group(0)[0] in "'\"`" else " ", read(f))
            self.types.update(re.findall(r"\b(?:class|interface|type|function|const|enum)\s+(\w+)", t))
            for m in re.finditer(r"\b(?:class|interface)\s+(\w+)[^{;]*\{", t):
                body = block(t, m.end() - 1)
                self.members.setdefault(m.group(1), set()).update(re.findall(
                    r"(?m)^\s*(?:(?:readonly|get|set|static)\s+)*([A-Za-z_$][\w$]*)\??\s*[(<:]", body))

    def check(self, owner, name, kwargs):
        if kwargs:
            return False
        if owner is None:
            return name in self.types
        return owner in self.types and name in self.members.get(owner, ())


# ---- CLI ----

class CliIndex:
    def __init__(self):
        self.subs, self.flags = set(), set()
        for f in rs_files("bindings/cli/src"):
            text = f.read_text(errors="replace")
            self.add_subcommands(text)
            self.add_flags(text.splitlines())

    def add_subcommands(self, text):
        for m in re.finditer(r"#\[derive\([^)]*\bSubcommand\b[^)]*\)\]\s*(?:#\[[^\n]*\]\s*)*"
                             r"(?:pub(?:\([^)]*\))?\s+)?enum\s+\w+\s*\{", text):
            lines = [ln for ln in block(text, m.end() - 1).splitlines() if ln.strip()]
            indent = min(len(ln) - len(ln.lstrip()) for ln in lines)
            attrs = []
            for ln in lines:
                if len(ln) - len(ln.lstrip()) != indent:
                    continue
                s = ln.strip()
                if s.startswith("#["):
                    attrs.append(s)
                    continue
                v = re.match(r"([A-Z]\w*)\b", s)
                if v:
                    named = [re.search(r'\bname\s*=\s*"([^"]+)"', a) for a in attrs]
                    named = [n.group(1) for n in named if n]
                    self.subs.add(named[0] if named else snake(v.group(1)).replace("_", "-"))
                if not s.startswith("///"):
                    attrs = []

    def add_flags(self, lines):
        for i, ln in enumerate(lines):
            a = re.match(r"\s*#\[arg\((.*)\)\]\s*$", ln)
            if not a:
                continue
            field = None
            for nxt in lines[i + 1:]:
                s = nxt.strip()
                if s.startswith("#[") or s.startswith("//"):
                    continue
                fm = re.match(r"(?:pub(?:\([^)]*\))?\s+)?(\w+)\s*:", s)
                field = fm.group(1) if fm else None
                break
            attr = a.group(1)
            long = re.search(r'\blong\s*=\s*"([^"]+)"', attr)
            if long:
                self.flags.add("--" + long.group(1))
            elif re.search(r"\blong\b", attr) and field:
                self.flags.add("--" + field.replace("_", "-"))
            short = re.search(r"\bshort\s*=\s*'(.)'", attr)
            if short:
                self.flags.add("-" + short.group(1))

    def check(self, name):
        words = name.split()
        if not words or words[0] != "netchan":
            return False
        rest = words[1:]
        subs = [w for w in rest if not w.startswith("-")]
        flags = [w for w in rest if w.startswith("-")]
        if len(subs) > 1 or rest[: len(subs)] != subs or not rest:
            return False  # `netchan [SUB] [--flag ...]` only
        return all(s in self.subs for s in subs) and all(f in self.flags for f in flags)


# ---- the table ----

NAME = re.compile(r"^(?P<path>[A-Za-z_][\w]*(?:(?:::|\.)[A-Za-z_]\w*)*)(?:\((?P<args>.*)\))?$")


def split_name(text, sep):
    """(owner, name, kwargs) of `Owner<sep>name(kw=..., ...)`, or None."""
    m = NAME.match(text)
    if not m:
        return None
    path = m.group("path")
    if (sep == "::" and "." in path) or (sep == "." and "::" in path):
        return None
    parts = path.split(sep)
    if len(parts) > 2:
        return None
    kwargs = []
    if m.group("args") is not None:
        for arg in m.group("args").split(","):
            kw = re.match(r"\s*(\w+)\s*=", arg)
            if not kw:
                return None
            kwargs.append(kw.group(1))
    owner = parts[0] if len(parts) == 2 else None
    return owner, parts[-1], kwargs


def cell_names(cell):
    """The backticked names of a cell; None if the cell has anything else."""
    names = re.findall(r"`([^`]+)`", cell)
    rest = re.sub(r"`[^`]+`", "", cell)
    if not names or re.sub(r"[\s,]", "", rest):
        return None
    return names


def rows(text):
    """(line, cells) of the table's body rows, and the header's cells."""
    table = [(n, ln) for n, ln in enumerate(text.splitlines(), 1) if ln.lstrip().startswith("|")]
    split = [(n, [c.strip() for c in ln.strip().strip("|").split("|")]) for n, ln in table]
    header = split[0][1] if split else []
    body = [(n, cells) for n, cells in split[1:] if not all(re.fullmatch(r":?-+:?", c) for c in cells)]
    return header, body


def main(argv):
    doc = argv[1] if len(argv) > 1 else DOC
    path = REPO / doc
    if not path.exists():
        print(f"{doc}: the document does not exist")
        return 1
    header, body = rows(path.read_text())
    failures = []
    if header != COLUMNS:
        failures.append(f"{doc}: the table's columns are {header}, expected {COLUMNS}")
    if not body:
        failures.append(f"{doc}: the table has no rows")
    text = path.read_text()
    if len(re.findall(r"(?m)^\s*\|\s*Operation\s*\|", text)) > 1:
        failures.append(f"{doc}: more than one table")

    rust = RustIndex([p for p in rs_files("core/src")
                      if "proto" not in p.parts and p.name != "fuzz.rs"])
    kotlin = RustIndex(rs_files("bindings/uniffi/src"))
    renames = kotlin_renames()
    c_ids = c_identifiers()
    py = PyIndex()
    node = NodeIndex()
    cli = CliIndex()

    def check_rust(n):
        s = split_name(n, "::")
        return bool(s) and not s[2] and rust.has(s[0], s[1])

    def check_c(n):
        return re.fullmatch(r"\w+", n) is not None and n in c_ids

    def check_python(n):
        s = split_name(n, ".")
        return bool(s) and py.check(*s)

    def check_node(n):
        s = split_name(n, ".")
        return bool(s) and node.check(*s)

    def check_kotlin(n):
        s = split_name(n, ".")
        if not s or s[2]:
            return False
        owner, name, _ = s
        if name[:1].isupper():
            return owner is None and kotlin.has(None, name)
        name = renames.get((owner, name), name)
        return kotlin.has(owner, snake(name))

    checks = {"Rust": check_rust, "C": check_c, "Python": check_python, "Node": check_node,
              "Kotlin/Swift": check_kotlin, "CLI": cli.check}

    count = gaps = 0
    for line, cells in body:
        op = cells[0] if cells else ""
        where = f"{doc}:{line}: row '{op}'"
        if len(cells) != len(COLUMNS):
            failures.append(f"{where}: {len(cells)} cells, expected {len(COLUMNS)}")
            continue
        if not op:
            failures.append(f"{where}: no operation named")
        for surface, cell in zip(COLUMNS[1:], cells[1:]):
            if cell == GAP:
                gaps += 1
                continue
            if cell == NOT_APPLICABLE:
                continue
            if not cell:
                failures.append(f"{where}, {surface}: empty cell (a name, {GAP} or {NOT_APPLICABLE})")
                continue
            names = cell_names(cell)
            if names is None:
                failures.append(f"{where}, {surface}: `{cell}` is neither backticked names nor {GAP} / {NOT_APPLICABLE}")
                continue
            for n in names:
                count += 1
                if not checks[surface](n):
                    failures.append(f"{where}, {surface}: no `{n}`")
    for f in failures:
        print(f)
    print(f"{count} names checked in {len(body)} rows of {doc} ({gaps} gaps marked {GAP}), "
          f"{len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
