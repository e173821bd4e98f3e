"""Syntax-checks Swift sources with tree-sitter's Swift grammar (no Swift
compiler exists on Linux CI machines here), so a broken generation or a typo
in the hand-written layer fails the tests.

Usage: python check_swift_syntax.py FILE.swift...
Exits 1 and prints every error location if any file does not parse; first
proves the checker is not vacuous by breaking the first file on purpose.

Two constructs the grammar (tree-sitter-swift 0.7.4) does not know are
rewritten before parsing, each counted in the output: the attribute
`@_documentation(visibility: private)`, blanked, and the closure `{ () }`,
read as `{ _ = 0 }`. Both are valid Swift that uniffi emits.
"""
import re
import sys

import tree_sitter
import tree_sitter_swift

GAPS = [
    (re.compile(rb"@_documentation\(visibility: *private\)"), b""),
    (re.compile(rb"= \{ \(\) \}"), b"= { _ = 0 }"),
]

parser = tree_sitter.Parser(tree_sitter.Language(tree_sitter_swift.language()))


def errors(src: bytes):
    bad = []

    def walk(n):
        if n.is_error or n.is_missing:
            bad.append(n)
            return
        if n.has_error:
            for c in n.children:
                walk(c)

    walk(parser.parse(src).root_node)
    return bad


def prepare(src: bytes):
    n = 0
    for pat, rep in GAPS:
        src, k = pat.subn(rep, src)
        n += k
    return src, n


def main(files):
    if not files:
        print("no Swift files given", file=sys.stderr)
        return 2
    # Not vacuous: the first file with its last closing brace removed and a
    # dangling expression must fail.
    first, _ = prepare(open(files[0], "rb").read())
    broken = first[: first.rstrip().rfind(b"}")] + b"\nlet x = \n"
    if not errors(broken):
        print("checker self-test failed: a broken file parsed cleanly", file=sys.stderr)
        return 1
    failed = 0
    for f in files:
        raw = open(f, "rb").read()
        src, rewrites = prepare(raw)
        bad = errors(src)
        lines = src.split(b"\n")
        status = "ok" if not bad else f"{len(bad)} syntax error(s)"
        print(f"swift syntax: {f}: {status} ({len(lines)} lines, {rewrites} grammar-gap rewrites)")
        for n in bad[:20]:
            row, col = n.start_point
            text = lines[row].decode(errors="replace").strip()
            kind = "missing " + n.type if n.is_missing else "unexpected"
            print(f"  {f}:{row + 1}:{col + 1}: {kind}: {text[:160]}")
        failed += bool(bad)
    print(f"swift: {len(files) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
