#!/usr/bin/env python3
"""Checks that every function declared in include/netchan.h is defined in
ffi-c/src with its whole body inside the panic boundary: the body's tail
expression is `ffi_boundary(...)` or `ffi_boundary_or(...)`, and anything
before it only takes ownership of a callback (`Context::new`, `ResultCb {`),
which cannot panic. Also checks that no exported function is missing from
the header. Prints the offenders; exits 1 if there are any."""
import pathlib
import re
import sys

root = pathlib.Path(__file__).resolve().parents[2]
header = (root / "include" / "netchan.h").read_text()
declared = set(re.findall(r"^[A-Za-z_][\w \*]*?\b(netchan_\w+)\(", header, re.M))

exports = {}
for src in sorted((root / "ffi-c" / "src").glob("*.rs")):
    text = src.read_text()
    for m in re.finditer(r'#\[unsafe\(no_mangle\)\]\s*pub (?:unsafe )?extern "C" fn (\w+)', text):
        name = m.group(1)
        start = text.index("{", text.index("(", m.end()))
        # Skip the signature's braces-free part: find the body's opening brace
        # after the parameter list and return type.
        depth, i = 0, start
        while True:
            c = text[i]
            if c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
                if depth == 0:
                    break
            i += 1
        exports[name] = (src.name, text[start + 1 : i])

problems = []
for name in sorted(declared - exports.keys()):
    problems.append(f"{name}: in the header but not exported by ffi-c/src")
for name in sorted(exports.keys() - declared):
    problems.append(f"{name}: exported but missing from include/netchan.h (regenerate it)")
for name, (file, body) in sorted(exports.items()):
    code = "\n".join(l.split("//")[0] for l in body.splitlines()).strip()
    m = re.search(r"\bffi_boundary(_or)?\(", code)
    if not m:
        problems.append(f"{file}: {name}: body does not run in ffi_boundary/ffi_boundary_or")
        continue
    before = code[: m.start()]
    before = before.replace("Context::new(", "")
    if "(" in before or "[" in before or "unsafe" in before:
        problems.append(f"{file}: {name}: code before the boundary may panic: {before!r}")
    if not code[m.start():].rstrip().endswith(")"):
        problems.append(f"{file}: {name}: the boundary call is not the body's tail expression")

for p in problems:
    print(p)
print(f"{len(declared)} functions in the header, {len(exports)} exported, {len(problems)} problem(s)")
sys.exit(1 if problems else 0)
