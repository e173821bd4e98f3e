#!/usr/bin/env python3
"""Checks that every exported C function of ffi-c/src runs its whole body
inside the panic boundary, and that include/netchan.h declares exactly the
exported functions that are not test-only.

The rule, checked on a real tokenisation of the Rust source (comments,
string, raw-string, byte/C-string and char literals are skipped, so a brace
or a call inside them counts for nothing; braces, brackets and parentheses
must balance):

- An export is a `fn` with `#[unsafe(no_mangle)]`, `#[no_mangle]` or
  `#[export_name = ..]`. It must be `extern "C"`, not generic, and carry no
  `cfg` other than `#[cfg(feature = "test-panic")]`.
- Its body is zero or more `let` bindings, then exactly one call
  `ffi_boundary(CLOSURE)` or `ffi_boundary_or(DEFAULT, CLOSURE)` as the tail
  expression: nothing after the call's closing parenthesis (no `;`, no
  `?`, no `.method()`, no second statement).
- A `let` binding before the call may only move values that cannot panic:
  `let [mut] NAME = INIT;` where INIT is a place (`a`, `a.b.c`), a call of
  `Context::new` (a struct literal of its two arguments, see
  ffi-c/src/callback.rs) whose arguments are again such INITs, or a struct
  literal `Type { field: INIT, .. }`. These exist so that a callback is owned
  (and its `drop` runs) on every path, including a panic.
- CLOSURE is `|| ..` or `move || ..` (its body runs inside catch_unwind, so it
  may contain anything). DEFAULT, evaluated before the boundary, must be a
  constant: a literal (number, `true`, `false`, `()`, a string or C-string
  literal, optionally followed by `.as_ptr()`) or a call of one of
  `std::ptr::null()`, `std::ptr::null_mut()`, `netchan_str::empty()`,
  `netchan_slice::empty()`.
- The header declares every export except the test-only ones (those with
  `#[cfg(feature = "test-panic")]`), which must not appear in it.

Usage: check_boundary.py             check ffi-c/src against include/netchan.h
       check_boundary.py --self-test check the checker on inline snippets
Prints the offenders; exits 1 if there are any."""
import pathlib
import re
import sys
from dataclasses import dataclass, field

TEST_ONLY_CFG = 'cfg(feature="test-panic")'
BOUNDARY_FNS = {"ffi_boundary": 1, "ffi_boundary_or": 2}
CONST_CALLS = {"std::ptr::null", "std::ptr::null_mut", "ptr::null", "ptr::null_mut",
               "netchan_str::empty", "netchan_slice::empty"}
PURE_CALLS = {"Context::new"}
OPEN, CLOSE = "([{", ")]}"


@dataclass
class Tok:
    kind: str  # ident, lit, punct
    text: str
    line: int


class ParseError(Exception):
    pass


PUNCT2 = ("::", "->", "=>", "||", "&&", "==", "!=", "<=", ">=", "..", "+=", "-=")


def tokenize(src):
    toks, i, line, n = [], 0, 1, len(src)
    while i < n:
        c = src[i]
        if c == "\n":
            line += 1
            i += 1
        elif c.isspace():
            i += 1
        elif src.startswith("//", i):
            j = src.find("\n", i)
            i = n if j < 0 else j
        elif src.startswith("/*", i):
            depth, j = 1, i + 2
            while depth and j < n:
                if src.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif src.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            if depth:
                raise ParseError(f"line {line}: unterminated block comment")
            line += src.count("\n", i, j)
            i = j
        elif (m := re.match(r'(?:br|cr|r)(#*)"', src[i:])):
            hashes = m.group(1)
            end = src.find('"' + hashes, i + m.end())
            if end < 0:
                raise ParseError(f"line {line}: unterminated raw string")
            j = end + 1 + len(hashes)
            toks.append(Tok("lit", src[i:j], line))
            line += src.count("\n", i, j)
            i = j
        elif c == '"' or (c in "bc" and src.startswith('"', i + 1)):
            j = i + (1 if c == '"' else 2)
            while j < n and src[j] != '"':
                j += 2 if src[j] == "\\" else 1
            if j >= n:
                raise ParseError(f"line {line}: unterminated string")
            toks.append(Tok("lit", src[i : j + 1], line))
            line += src.count("\n", i, j)
            i = j + 1
        elif c == "'" or (c == "b" and src.startswith("'", i + 1)):
            q = i + (1 if c == "'" else 2)
            if src.startswith("\\", q):  # an escaped char literal
                j = src.find("'", q + 2)
                if j < 0:
                    raise ParseError(f"line {line}: unterminated char literal")
                toks.append(Tok("lit", src[i : j + 1], line))
                i = j + 1
            elif q + 1 < n and src[q + 1] == "'":  # 'x'
                toks.append(Tok("lit", src[i : q + 2], line))
                i = q + 2
            else:  # a lifetime or label
                m = re.match(r"'\w+", src[i:])
                toks.append(Tok("ident", m.group(0) if m else "'", line))
                i += len(m.group(0)) if m else 1
        elif c.isalpha() or c == "_":
            m = re.match(r"\w+", src[i:])
            toks.append(Tok("ident", m.group(0), line))
            i += m.end()
        elif c.isdigit():
            m = re.match(r"[0-9][0-9a-zA-Z_]*(?:\.[0-9][0-9a-zA-Z_]*)?", src[i:])
            toks.append(Tok("lit", m.group(0), line))
            i += m.end()
        else:
            two = src[i : i + 2]
            if two in PUNCT2:
                toks.append(Tok("punct", two, line))
                i += 2
            else:
                toks.append(Tok("punct", c, line))
                i += 1
    return toks


def match_group(toks, i):
    """Index of the token closing the group opened at toks[i]."""
    stack = []
    for j in range(i, len(toks)):
        t = toks[j]
        if t.kind != "punct":
            continue
        if t.text in OPEN:
            stack.append(CLOSE[OPEN.index(t.text)])
        elif t.text in CLOSE:
            if not stack or stack.pop() != t.text:
                raise ParseError(f"line {t.line}: unbalanced {t.text!r}")
            if not stack:
                return j
    raise ParseError(f"line {toks[i].line}: {toks[i].text!r} is never closed")


def split_top(toks, sep):
    """Splits a token list at depth-0 punctuation `sep`."""
    parts, cur, depth = [], [], 0
    for t in toks:
        if t.kind == "punct" and t.text in OPEN:
            depth += 1
        elif t.kind == "punct" and t.text in CLOSE:
            depth -= 1
        if depth == 0 and t.kind == "punct" and t.text == sep:
            parts.append(cur)
            cur = []
        else:
            cur.append(t)
    parts.append(cur)
    return parts


def text(toks):
    """The tokens as compact source: a space only between two words."""
    out = []
    for a, b in zip([None] + toks, toks):
        if a is not None and a.kind != "punct" and b.kind != "punct":
            out.append(" ")
        out.append(b.text)
    return "".join(out)


@dataclass
class Export:
    name: str
    file: str
    line: int
    attrs: list
    quals: list
    body: list = field(default_factory=list)
    problems: list = field(default_factory=list)

    @property
    def test_only(self):
        return TEST_ONLY_CFG in self.attrs


def parse_exports(src, filename):
    """Every `fn` with no_mangle/export_name in `src`, with its body tokens."""
    toks = tokenize(src)
    exports, attrs, quals, i = [], [], [], 0
    while i < len(toks):
        t = toks[i]
        if t.text == "#" and i + 1 < len(toks) and toks[i + 1].text in ("[", "!"):
            o = i + 1 if toks[i + 1].text == "[" else i + 2
            j = match_group(toks, o)
            attrs.append(text(toks[o + 1 : j]))
            i = j + 1
            continue
        if t.text == "fn" and i + 1 < len(toks) and toks[i + 1].kind == "ident":
            name = toks[i + 1].text
            exported = any(a in ("unsafe(no_mangle)", "no_mangle") or a.startswith("export_name")
                           for a in attrs)
            j = i + 2
            generic = j < len(toks) and toks[j].text == "<"
            while j < len(toks) and toks[j].text != "(":
                j += 1
            j = match_group(toks, j) + 1
            while j < len(toks) and toks[j].text not in ("{", ";"):
                j += 1
            if j < len(toks) and toks[j].text == "{":
                end = match_group(toks, j)
                if exported:
                    e = Export(name, filename, t.line, list(attrs), list(quals), toks[j + 1 : end])
                    if generic:
                        e.problems.append("an exported function cannot be generic")
                    if "extern" not in quals:
                        e.problems.append('exported but not extern "C"')
                    for a in attrs:
                        if a.startswith("cfg") and a != TEST_ONLY_CFG:
                            e.problems.append(f"exported under #[{a}]: the header would depend on it")
                    exports.append(e)
                # Go on inside the body: an export nested in a function (or
                # a module) is an export all the same.
                i = j + 1
            else:
                i = j + 1
            attrs, quals = [], []
            continue
        if t.text in (";", "{", "}"):
            attrs, quals = [], []
        else:
            quals.append(t.text)
        i += 1
    return exports


def is_place(toks):
    if not toks or toks[0].kind != "ident":
        return False
    rest = toks[1:]
    if len(rest) % 2:
        return False
    return all(a.text == "." and b.kind == "ident" for a, b in zip(rest[::2], rest[1::2]))


def path_call(toks):
    """(path, args) when toks is exactly `a::b::c(args)`, else None."""
    j = 0
    while j < len(toks) and (toks[j].kind == "ident" or toks[j].text == "::"):
        j += 1
    if j == 0 or j >= len(toks) or toks[j].text != "(":
        return None
    end = match_group(toks, j)
    if end != len(toks) - 1:
        return None
    return text(toks[:j]), toks[j + 1 : end]


def is_pure(toks):
    """A place, `Context::new(pure, pure)` or `Type { field: pure, .. }`."""
    if is_place(toks):
        return True
    call = path_call(toks)
    if call:
        path, args = call
        parts = [a for a in split_top(args, ",") if a]
        return path in PURE_CALLS and all(is_pure(a) for a in parts)
    if len(toks) >= 3 and toks[0].kind == "ident" and toks[1].text == "{":
        end = match_group(toks, 1)
        if end != len(toks) - 1:
            return False
        for f in split_top(toks[2:end], ","):
            if not f:
                continue
            if len(f) < 3 or f[0].kind != "ident" or f[1].text != ":" or not is_pure(f[2:]):
                return False
        return True
    return False


def is_const(toks):
    """A literal (optionally `.as_ptr()`) or an allow-listed constant call."""
    if [t.text for t in toks[-4:]] == [".", "as_ptr", "(", ")"] and len(toks) > 4:
        toks = toks[:-4]
    if len(toks) == 1 and (toks[0].kind == "lit" or toks[0].text in ("true", "false")):
        return True
    if [t.text for t in toks] == ["(", ")"]:
        return True
    call = path_call(toks)
    return bool(call) and call[0] in CONST_CALLS and not call[1]


def is_closure(toks):
    k = 1 if toks and toks[0].text == "move" else 0
    return len(toks) > k + 1 and toks[k].text == "||"


def boundary_call(toks):
    """(name, args) when toks is exactly one ffi_boundary/_or call, else None."""
    call = path_call(toks)
    if not call:
        return None
    name = call[0].split("::")[-1]
    if name not in BOUNDARY_FNS or call[0].removesuffix(name) not in ("", "boundary::", "crate::boundary::"):
        return None
    return name, call[1]


def check_body(body):
    """None when `body` follows the rule in the module docs, else why not."""
    *stmts, tail = split_top(body, ";")
    for i, s in enumerate(stmts):
        if boundary_call(s):
            after = "; ".join(text(x) for x in stmts[i + 1 :] + [tail] if x)
            if not after:
                return "the boundary call ends in `;`: it must be the body's tail expression"
            return f"code after the boundary call runs outside it: `{after[:60]}`"
        if not s or s[0].text != "let":
            return f"a statement runs outside the boundary: `{text(s)[:60]}`"
        k = 2 if len(s) > 1 and s[1].text == "mut" else 1
        if len(s) < k + 3 or s[k].kind != "ident" or s[k + 1].text != "=":
            return f"a `let` outside the boundary is not `let NAME = ..`: `{text(s)[:60]}`"
        if not is_pure(s[k + 2 :]):
            return f"a `let` outside the boundary may panic: `{text(s)[:60]}`"
    call = boundary_call(tail)
    if not call:
        return f"the tail expression is not one ffi_boundary/ffi_boundary_or call: `{text(tail)[:60]}`"
    name, args = call
    if BOUNDARY_FNS[name] == 2:
        parts = split_top(args, ",")
        default, closure = parts[0], [t for p in parts[1:2] for t in p]
        if len(parts) > 2 and any(parts[2:]):
            closure = []  # a third argument: not the boundary's shape
        if not is_const(default):
            return f"the default of ffi_boundary_or is not a constant: `{text(default)[:60]}`"
    else:
        closure = args
    if not is_closure(closure):
        return f"the argument of {name} is not a closure `|| ..`: `{text(closure)[:60]}`"
    return None


def header_functions(src):
    # Line comments first: doc text such as "users/*" must not open a block.
    src = re.sub(r"//[^\n]*", "", src)
    src = re.sub(r"/\*.*?\*/", "", src, flags=re.S)
    return set(re.findall(r"^[A-Za-z_][\w \*]*?\b(netchan_\w+)\(", src, re.M))


def problems_of(sources, header):
    """sources: [(filename, text)]. Returns the list of problems."""
    problems, exports = [], {}
    for name, src in sources:
        try:
            for e in parse_exports(src, name):
                if e.name in exports:
                    e.problems.append("exported twice")
                exports[e.name] = e
        except ParseError as err:
            problems.append(f"{name}: cannot parse: {err}")
    declared = header_functions(header)
    for e in sorted(exports.values(), key=lambda e: e.name):
        why = check_body(e.body)
        if why:
            e.problems.append(why)
        if e.test_only and e.name in declared:
            e.problems.append("test-only, yet declared in include/netchan.h")
        if not e.test_only and e.name not in declared:
            e.problems.append("exported but missing from include/netchan.h (regenerate it)")
        problems += [f"{e.file}:{e.line}: {e.name}: {p}" for p in e.problems]
    for name in sorted(declared - exports.keys()):
        problems.append(f"{name}: in the header but not exported by ffi-c/src")
    return problems, exports, declared


# --- self-test ---------------------------------------------------------------
EXPORT = '#[unsafe(no_mangle)]\npub unsafe extern "C" fn {name}(p: *const u8) -> netchan_result {{\n{body}\n}}\n'
SELF_TESTS = [
    # (name, body, expected problem substring or None)
    ("plain", "ffi_boundary(|| { let x = 1; Ok(()) })", None),
    ("move_closure", "ffi_boundary(move || Ok(()))", None),
    ("or_with_const", 'ffi_boundary_or(c"".as_ptr(), || { p })', None),
    ("or_with_null", "ffi_boundary_or(std::ptr::null(), || match p { _ => 1 })", None),
    ("or_unit", "ffi_boundary_or((), || drop(p))", None),
    ("path_boundary", "boundary::ffi_boundary(|| Ok(()))", None),
    ("let_context", "let ctx = Context::new(cb.context, cb.drop);\nffi_boundary(move || { let _ = ctx; Ok(()) })", None),
    ("let_struct", "let cb = ResultCb {\n call: callback.call,\n ctx: Context::new(callback.context, callback.drop),\n};\nffi_boundary(move || Ok(()))", None),
    ("strings_with_braces", 'ffi_boundary(|| { let s = "}"; let c = \'}\'; let r = r#"{"#; Ok(()) })', None),
    ("comment_with_brace", "// }\nffi_boundary(|| { /* } ) */ Ok(()) }) // trailing comment ;", None),
    ("statement_after", "ffi_boundary(|| Ok(()));\nfoo()", "code after the boundary call runs outside it: `foo()`"),
    ("two_statements_after", "ffi_boundary(|| Ok(()));\nfoo();\nbar()", "code after the boundary call runs outside it: `foo(); bar()`"),
    ("trailing_semicolon", "ffi_boundary(|| Ok(()));", "ends in `;`"),
    ("empty_body", "", "the tail expression is not"),
    ("question_mark", "ffi_boundary(|| Ok(()))?", "the tail expression is not"),
    ("method_after", "ffi_boundary(|| Ok(())).max(x)", "the tail expression is not"),
    ("call_before", "foo();\nffi_boundary(|| Ok(()))", "a statement runs outside"),
    ("let_call_before", "let x = compute(p);\nffi_boundary(|| Ok(()))", "may panic"),
    ("let_index_before", "let x = v[0];\nffi_boundary(|| Ok(()))", "may panic"),
    ("no_boundary", "Ok(())", "the tail expression is not"),
    ("boundary_in_string", '"ffi_boundary(|| Ok(()))"', "the tail expression is not"),
    ("let_literal_then_real", 'let s = "ffi_boundary(|| Ok(()))";\nreal()', "may panic"),
    ("boundary_in_comment", "// ffi_boundary(|| Ok(()))\nreal()", "the tail expression is not"),
    ("boundary_in_a_block", "{ ffi_boundary(|| Ok(())) }", "the tail expression is not"),
    ("not_a_closure", "ffi_boundary(make_closure())", "is not a closure"),
    ("or_default_calls", "ffi_boundary_or(make_default(), || 0)", "is not a constant"),
    ("or_three_args", "ffi_boundary_or(0, || 1, 2)", "is not a closure"),
    ("other_fn_named_alike", "my_ffi_boundary(|| Ok(()))", "the tail expression is not"),
]


def self_test():
    passed = failed = 0

    def expect(label, probs, want):
        nonlocal passed, failed
        ok = (not probs) if want is None else any(want in p for p in probs)
        if ok:
            passed += 1
        else:
            failed += 1
            print(f"self-test {label}: expected {want or 'no problem'}, got {probs}")

    for name, body, want in SELF_TESTS:
        src = EXPORT.format(name=f"netchan_{name}", body=body)
        probs, _, _ = problems_of([("t.rs", src)], f"netchan_result netchan_{name}(const uint8_t *p);\n")
        expect(name, probs, want)
    # Declarations and attributes.
    good = EXPORT.format(name="netchan_a", body="ffi_boundary(|| Ok(()))")
    hdr = "netchan_result netchan_a(const uint8_t *p);\n"
    expect("header_match", problems_of([("t.rs", good)], hdr)[0], None)
    expect("missing_from_header", problems_of([("t.rs", good)], "")[0], "missing from include/netchan.h")
    expect("only_in_header", problems_of([("t.rs", "")], hdr)[0], "in the header but not exported")
    expect("header_comment_is_no_declaration",
           problems_of([("t.rs", "")], "// netchan_a(void) is documented\n/* netchan_a(x)\n */\n")[0], None)
    test_only = '#[cfg(feature = "test-panic")]\n' + EXPORT.format(name="netchan_t", body="ffi_boundary(|| Ok(()))")
    expect("test_only_absent_from_header", problems_of([("t.rs", test_only)], "")[0], None)
    expect("test_only_in_header",
           problems_of([("t.rs", test_only)], "netchan_result netchan_t(const uint8_t *p);\n")[0],
           "test-only, yet declared")
    expect("test_only_still_in_boundary",
           problems_of([("t.rs", test_only.replace("ffi_boundary(|| Ok(()))", "Ok(())"))], "")[0],
           "the tail expression is not")
    other_cfg = "#[cfg(unix)]\n" + good
    expect("other_cfg", problems_of([("t.rs", other_cfg)], hdr)[0], "exported under #[cfg(unix)]")
    old_attr = good.replace("#[unsafe(no_mangle)]", "#[no_mangle]").replace("ffi_boundary(", "foo(")
    expect("old_no_mangle_found", problems_of([("t.rs", old_attr)], hdr)[0], "the tail expression is not")
    not_extern = good.replace('extern "C" ', "")
    expect("not_extern", problems_of([("t.rs", not_extern)], hdr)[0], 'not extern "C"')
    unexported = 'pub unsafe extern "C" fn helper() { foo() }\n'
    expect("unexported_extern_ignored", problems_of([("t.rs", unexported)], "")[0], None)
    nested = "fn outer() {\n" + good.replace("ffi_boundary(", "foo(") + "}\n"
    expect("nested_export_found", problems_of([("t.rs", nested)], hdr)[0], "the tail expression is not")
    in_mod = "mod m {\n" + good + "}\n"
    expect("export_in_module_found", problems_of([("t.rs", in_mod)], "")[0], "missing from include/netchan.h")
    expect("unbalanced", problems_of([("t.rs", good.replace("Ok(())", "Ok(()"))], hdr)[0], "cannot parse")
    print(f"check_boundary self-test: {passed} passed, {failed} failed")
    return 1 if failed else 0


def main(argv):
    if argv[1:] == ["--self-test"]:
        return self_test()
    if argv[1:]:
        print(__doc__)
        return 2
    root = pathlib.Path(__file__).resolve().parents[2]
    header = (root / "include" / "netchan.h").read_text()
    sources = [(f"ffi-c/src/{p.name}", p.read_text())
               for p in sorted((root / "ffi-c" / "src").glob("*.rs"))]
    problems, exports, declared = problems_of(sources, header)
    for p in problems:
        print(p)
    test_only = sorted(e.name for e in exports.values() if e.test_only)
    print(f"{len(declared)} functions in the header, {len(exports)} exported "
          f"({len(test_only)} test-only: {', '.join(test_only) or 'none'}), {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
