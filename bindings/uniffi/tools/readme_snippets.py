#!/usr/bin/env python3
"""Writes the README's code snippets out as source files, so the test run
compiles and runs them (Kotlin) or syntax-checks them (Swift: no compiler
here).

Every ```kotlin and ```swift block of README.md must be tagged with
`<!-- snippet: ID -->` on the line before its fence; an untagged block (or
two with one ID) fails this script, so a new snippet cannot go unchecked.
A Kotlin snippet becomes OUT/readme/ID.kt in package `readme.ID` (dashes as
underscores; src/test/.../ReadmeTest.kt runs each and fails on one it does
not know), a Swift one OUT/ID.swift. Fences spelled ```kt or ```kts count
as Kotlin.

Usage: readme_snippets.py README.md OUT_DIR   (prints what it wrote)
"""
import re
import shutil
import sys
from pathlib import Path


def main(readme: Path, out: Path) -> int:
    lines = readme.read_text(encoding="utf-8").splitlines()
    shutil.rmtree(out, ignore_errors=True)
    (out / "readme").mkdir(parents=True)
    seen, bad = set(), []
    i = 0
    while i < len(lines):
        m = re.fullmatch(r"```(kotlin|kt|kts|swift)", lines[i].strip())
        if m:
            lang = "swift" if m.group(1) == "swift" else "kotlin"
            end = lines.index("```", i + 1)
            tag = re.fullmatch(r"<!-- snippet: ([a-z0-9-]+) -->", lines[i - 1].strip()) if i else None
            if not tag:
                bad.append(f"{readme}:{i + 1}: ```{lang} block without a <!-- snippet: ID --> line before it")
            elif tag.group(1) in seen:
                bad.append(f"{readme}:{i + 1}: snippet ID {tag.group(1)} used twice")
            else:
                ident = tag.group(1)
                seen.add(ident)
                code = "\n".join(lines[i + 1 : end]) + "\n"
                if lang == "kotlin":
                    path = out / "readme" / f"{ident}.kt"
                    code = f"package readme.{ident.replace('-', '_')}\n\n{code}"
                else:
                    path = out / f"{ident}.swift"
                path.write_text(code, encoding="utf-8")
                print(f"{path.relative_to(out)} <- {readme.name}:{i + 2}")
            i = end
        i += 1
    for b in bad:
        print(b, file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
