#!/usr/bin/env python3
"""Every package of netchan carries one version: the workspace's.

The version is written once, in Cargo.toml's [workspace.package]; each
other manifest must agree with it:

- every Rust package of the workspace takes it (`version.workspace = true`),
  and the workspace's own path dependencies name it;
- the Python package reads it from Cargo (pyproject's `dynamic`);
- the npm package, its addon packages (bindings/node/npm/*) and its
  optionalDependencies on them;
- the Maven project (bindings/uniffi/kotlin/pom.xml).

The Swift package has no version of its own (SwiftPM takes a package's
version from its git tag), and the C library's pkg-config and CMake files
are written from Cargo.toml by scripts/install-c.sh.

Usage: python3 scripts/check_versions.py   (exit 1 on a disagreement)
"""
import json
import pathlib
import re
import sys
import tomllib
import xml.etree.ElementTree as ET

REPO = pathlib.Path(__file__).resolve().parent.parent


def toml(path):
    with open(REPO / path, "rb") as f:
        return tomllib.load(f)


def main():
    root = toml("Cargo.toml")
    version = root["workspace"]["package"]["version"]
    bad = []

    def agree(what, got):
        if got != version:
            bad.append(f"{what}: {got!r}, not the workspace's {version!r}")

    members = ["."] + root["workspace"]["members"]
    for m in members:
        pkg = toml(f"{m}/Cargo.toml").get("package")
        if pkg is None:
            continue
        v = pkg.get("version")
        if v != {"workspace": True}:
            agree(f"{m}/Cargo.toml [package] version", v)
    for name, dep in root["workspace"].get("dependencies", {}).items():
        if isinstance(dep, dict) and "path" in dep and "version" in dep:
            agree(f"Cargo.toml [workspace.dependencies] {name}", dep["version"])

    py = toml("bindings/python/pyproject.toml")["project"]
    if "version" in py.get("dynamic", []):
        pass  # maturin takes the Cargo package's version
    else:
        agree("bindings/python/pyproject.toml version", py.get("version"))

    node = REPO / "bindings/node"
    pkg = json.loads((node / "package.json").read_text())
    agree("bindings/node/package.json version", pkg["version"])
    for dep, v in pkg.get("optionalDependencies", {}).items():
        agree(f"bindings/node/package.json optionalDependencies {dep}", v)
    subs = sorted((node / "npm").glob("*/package.json"))
    if not subs:
        bad.append("bindings/node/npm: no addon packages")
    for p in subs:
        sub = json.loads(p.read_text())
        agree(f"{p.relative_to(REPO)} version", sub["version"])
        if sub["name"] not in pkg.get("optionalDependencies", {}):
            bad.append(f"{p.relative_to(REPO)}: {sub['name']} is not in the main package's optionalDependencies")

    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    pom = ET.parse(REPO / "bindings/uniffi/kotlin/pom.xml").getroot()
    agree("bindings/uniffi/kotlin/pom.xml version", pom.findtext("m:version", namespaces=ns))

    swift = (REPO / "bindings/uniffi/swift/Package.swift").read_text()
    if re.search(r'\bversion:\s*"', swift):
        bad.append("bindings/uniffi/swift/Package.swift names a version: check it here too")

    for b in bad:
        print(b)
    print(f"version {version}: {'agrees everywhere' if not bad else f'{len(bad)} disagreement(s)'}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
