//! Generates include/netchan.h from the ffi-c crate with cbindgen.
//!
//! The header is committed; CI regenerates it and fails on any difference
//! (scripts/test.sh). Set NETCHAN_SKIP_HEADER=1 to skip generation.

use std::path::PathBuf;

fn main() {
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
