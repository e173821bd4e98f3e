#!/usr/bin/env bash
# Builds netchanFFI.xcframework for iOS (device + simulator) and macOS. Run on a Mac with Xcode
# and rustup; the Swift sources, header and module map are already generated and committed
# (bash ../run-tests.sh checks them on Linux; bash ../run-tests.sh --regenerate rewrites them).
# Usage: bash bindings/uniffi/swift/build-xcframework.sh   (then: swift build in this folder)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
targets=(aarch64-apple-ios aarch64-apple-ios-sim x86_64-apple-ios aarch64-apple-darwin x86_64-apple-darwin)
rustup target add "${targets[@]}"
for t in "${targets[@]}"; do
    (cd "$repo" && cargo rustc -p netchan-uniffi --release --target "$t" --crate-type staticlib)
done
out="$repo/target/xcframework"
rm -rf "$out" "$here/netchanFFI.xcframework"
mkdir -p "$out/ios-sim" "$out/macos"
lipo -create "$repo/target/aarch64-apple-ios-sim/release/libnetchan_uniffi.a" \
    "$repo/target/x86_64-apple-ios/release/libnetchan_uniffi.a" -output "$out/ios-sim/libnetchan_uniffi.a"
lipo -create "$repo/target/aarch64-apple-darwin/release/libnetchan_uniffi.a" \
    "$repo/target/x86_64-apple-darwin/release/libnetchan_uniffi.a" -output "$out/macos/libnetchan_uniffi.a"
headers="$here/Sources/netchanFFI/include"
xcodebuild -create-xcframework \
    -library "$repo/target/aarch64-apple-ios/release/libnetchan_uniffi.a" -headers "$headers" \
    -library "$out/ios-sim/libnetchan_uniffi.a" -headers "$headers" \
    -library "$out/macos/libnetchan_uniffi.a" -headers "$headers" \
    -output "$here/netchanFFI.xcframework"
echo "built $here/netchanFFI.xcframework"
