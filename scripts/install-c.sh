#!/usr/bin/env bash
# Installs netchan's C library into PREFIX: include/netchan.h,
# lib/libnetchan.{so,a}, lib/pkgconfig/netchan{,-static}.pc and
# lib/cmake/netchan/netchanConfig{,Version}.cmake. Builds the library first.
#
#   scripts/install-c.sh PREFIX [debug|release]   (default release)
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 PREFIX [debug|release]" >&2; exit 2; }
cd "$(dirname "$0")/.."
prefix=$(mkdir -p "$1" && cd "$1" && pwd)
profile=${2:-release}
flags=()
[ "$profile" = release ] && flags+=(--release)
cargo build "${flags[@]}" -p netchan-c
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
major=${version%%.*}
minor=${version#*.}
minor=${minor%%.*}
native_libs="-lpthread -ldl -lm -lrt -lutil -lgcc_s"

install -d "$prefix/include" "$prefix/lib/pkgconfig" "$prefix/lib/cmake/netchan"
install -m 644 include/netchan.h "$prefix/include/"
install -m 755 "target/$profile/libnetchan.so" "$prefix/lib/"
install -m 644 "target/$profile/libnetchan.a" "$prefix/lib/"
for pc in netchan netchan-static; do
    sed -e "s|@PREFIX@|$prefix|" -e "s|@VERSION@|$version|" -e "s|@NATIVE_LIBS@|$native_libs|" \
        "ffi-c/pkg/$pc.pc.in" >"$prefix/lib/pkgconfig/$pc.pc"
done
install -m 644 ffi-c/pkg/netchanConfig.cmake "$prefix/lib/cmake/netchan/"
sed -e "s|@VERSION@|$version|" -e "s|@MAJOR@|$major|" -e "s|@MINOR@|$minor|" \
    ffi-c/pkg/netchanConfigVersion.cmake.in >"$prefix/lib/cmake/netchan/netchanConfigVersion.cmake"
echo "installed netchan $version ($profile) into $prefix"
