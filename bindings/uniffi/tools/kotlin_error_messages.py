#!/usr/bin/env python3
"""Gives every generated Kotlin `NetchanException` a message that starts with
its code.

uniffi 0.32 writes each error variant's message as its fields
(`detail=no reply within 5000 ms`), which is what a Kotlin user then reads in
logs and stack traces, without the code. This rewrites that one getter in
each variant of the sealed class `NetchanException` to `"$code: $detail"`
(`TIMEOUT: no reply within 5000 ms`), `code` being the extension property in
Extensions.kt. It fails, instead of writing a half-edited file, when the
generated text does not have exactly one such getter per variant (a uniffi
upgrade that changes the template must be looked at, not patched blindly).

Usage: kotlin_error_messages.py GENERATED_NETCHAN_KT   (edits it in place)
"""
import re
import sys

GETTER = 'get() = "detail=${ `detail` }"'
NEW = 'get() = "$code: ${ `detail` }"'


def main(path: str) -> int:
    text = open(path, encoding="utf-8").read()
    start = text.find("sealed class NetchanException: kotlin.Exception()")
    if start < 0:
        print(f"{path}: no sealed class NetchanException", file=sys.stderr)
        return 1
    end = text.find("companion object ErrorHandler", start)
    body = text[start:end]
    variants = re.findall(r"^    class (\w+)\(", body, re.M)
    found = body.count(GETTER)
    if not variants or found != len(variants) or text.count(GETTER) != found:
        print(f"{path}: expected one `{GETTER}` per NetchanException variant "
              f"({len(variants)}), found {found} there and {text.count(GETTER)} "
              "in the file; the uniffi template changed", file=sys.stderr)
        return 1
    open(path, "w", encoding="utf-8").write(text[:start] + body.replace(GETTER, NEW) + text[end:])
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
