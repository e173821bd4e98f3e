#!/usr/bin/env bash
# Installs netchan's C library into PREFIX: include/netchan.h,
# lib/libnetchan.so.0.MINOR (its SONAME; lib/libnetchan.so links to it),
# lib/libnetchan.a, lib/pkgconfig/netchan{,-static}.pc and
# lib/cmake/netchan/netchanConfig{,Version}.cmake. Builds the library first
# (in CARGO_TARGET_DIR, default target/), unless --from DIR names a directory
# that holds libnetchan.so and libnetchan.a already built. Release libraries
# are installed stripped of debug information.
#
#   scripts/install-c.sh PREFIX [debug|release] [--from DIR]   (default release)
set -euo pipefail
usage() { echo "usage: $0 PREFIX [debug|release] [--from DIR]" >&2; exit 2; }
[ $# -ge 1 ] || usage
cd "$(dirname "$0")/.."
prefix=$(mkdir -p "$1" && cd "$1" && pwd)
shift
profile=release
from=
while [ $# -gt 0 ]; do
    case "$1" in
    debug | release) profile=$1 ;;
    --from) [ $# -ge 2 ] || usage; from=$(cd "$2" && pwd); shift ;;
    *) usage ;;
    esac
    shift
done
if [ -z "$from" ]; then
    flags=()
    [ "$profile" = release ] && flags+=(--release)
    cargo build "${flags[@]}" -p netchan-c
    from=${CARGO_TARGET_DIR:-target}/$profile
fi
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
major=${version%%.*}
minor=${version#*.}
minor=${minor%%.*}
if [ "$major" = 0 ]; then soname=libnetchan.so.0.$minor; else soname=libnetchan.so.$major; fi
native_libs="-lpthread -ldl -lm -lrt -lutil -lgcc_s"

install -d "$prefix/include" "$prefix/lib/pkgconfig" "$prefix/lib/cmake/netchan"
install -m 644 include/netchan.h "$prefix/include/"
install -m 755 "$from/libnetchan.so" "$prefix/lib/$soname"
ln -sfn "$soname" "$prefix/lib/libnetchan.so"
install -m 644 "$from/libnetchan.a" "$prefix/lib/"
if [ "$profile" = release ]; then
    strip --strip-unneeded "$prefix/lib/$soname"
    strip --strip-debug "$prefix/lib/libnetchan.a"
fi
for pc in netchan netchan-static; do
    sed -e "s|@PREFIX@|$prefix|" -e "s|@VERSION@|$version|" -e "s|@NATIVE_LIBS@|$native_libs|" \
        "ffi-c/pkg/$pc.pc.in" >"$prefix/lib/pkgconfig/$pc.pc"
done
sed -e "s|@SONAME@|$soname|" ffi-c/pkg/netchanConfig.cmake >"$prefix/lib/cmake/netchan/netchanConfig.cmake"
sed -e "s|@VERSION@|$version|" -e "s|@MAJOR@|$major|" -e "s|@MINOR@|$minor|" \
    ffi-c/pkg/netchanConfigVersion.cmake.in >"$prefix/lib/cmake/netchan/netchanConfigVersion.cmake"
echo "installed netchan $version ($profile, $soname) into $prefix"
