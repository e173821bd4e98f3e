//! Generates include/netchan.h from the ffi-c crate with cbindgen, and
//! gives the shared library its SONAME.
//!
//! The header is committed; CI regenerates it and fails on any difference
//! (scripts/test.sh). Set NETCHAN_SKIP_HEADER=1 to skip generation.

use std::path::{Path, PathBuf};

/// The shared library's SONAME on ELF systems: a program linked against
/// it records this name, not the path it was linked from, so an installed
/// prefix can move (the loader finds the library by name). While the major
/// version is 0 each minor version is its own ABI (`libnetchan.so.0.1`),
/// then each major (`libnetchan.so.1`). In the build tree, the name is a
/// link to `libnetchan.so` beside it, so programs linked there run from it.
fn soname() {
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if !matches!(os.as_str(), "linux" | "android" | "freebsd") {
        return;
    }
    let major = std::env::var("CARGO_PKG_VERSION_MAJOR").expect("cargo sets the version");
    let minor = std::env::var("CARGO_PKG_VERSION_MINOR").expect("cargo sets the version");
    let soname = if major == "0" {
        format!("libnetchan.so.0.{minor}")
    } else {
        format!("libnetchan.so.{major}")
    };
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,{soname}");
    // OUT_DIR is <target dir>/[<triple>/]<profile>/build/<package>-<hash>/out.
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    if let Some(dir) = out.ancestors().nth(3) {
        link_in_tree(dir, &soname);
    }
}

#[cfg(unix)]
fn link_in_tree(dir: &Path, soname: &str) {
    let link = dir.join(soname);
    if std::fs::symlink_metadata(&link).is_err() {
        let _ = std::os::unix::fs::symlink("libnetchan.so", link);
    }
}

#[cfg(not(unix))]
fn link_in_tree(_: &Path, _: &str) {}

fn main() {
    soname();
    let root =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let ffi = root.join("ffi-c");
    println!("cargo:rerun-if-changed=ffi-c/src");
    println!("cargo:rerun-if-changed=ffi-c/cbindgen.toml");
    println!("cargo:rerun-if-env-changed=NETCHAN_SKIP_HEADER");
    if std::env::var_os("NETCHAN_SKIP_HEADER").is_some() {
        return;
    }
    let config = cbindgen::Config::from_file(ffi.join("cbindgen.toml"))
        .expect("ffi-c/cbindgen.toml is valid");
    let out = root.join("include").join("netchan.h");
    match cbindgen::Builder::new()
        .with_crate(&ffi)
        .with_config(config)
        .generate()
    {
        Ok(bindings) => {
            bindings.write_to_file(&out);
        }
        Err(e) => panic!("cbindgen failed to generate include/netchan.h: {e}"),
    }
}
