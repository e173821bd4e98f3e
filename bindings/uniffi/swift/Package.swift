// swift-tools-version:5.9
// netchan for iOS and macOS: the Swift that uniffi generates (Sources/Netchan/Netchan.swift,
// never edited by hand), a small idiomatic layer (Sources/Netchan/Netchan+Swift.swift), and the
// Rust library as an XCFramework built by build-xcframework.sh on a Mac (see ../README.md).
//
// SPDX-License-Identifier: MIT OR Apache-2.0
// Copyright (c) netchan developers. Licensed under either of the MIT license or the
// Apache License 2.0 (LICENSE-MIT, LICENSE-APACHE beside this file), at your option.
import PackageDescription

let package = Package(
    name: "Netchan",
    platforms: [.iOS(.v15), .macOS(.v12)],
    products: [
        .library(name: "Netchan", targets: ["Netchan"]),
    ],
    targets: [
        // libnetchan_uniffi.a per platform, with Sources/netchanFFI/include (the generated FFI
        // header and module map) as its headers.
        .binaryTarget(name: "netchanFFI", path: "netchanFFI.xcframework"),
        .target(
            name: "Netchan",
            dependencies: ["netchanFFI"],
            path: "Sources/Netchan"
        ),
    ]
)
