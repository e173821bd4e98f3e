#!/usr/bin/env bash
# The C ABI test suite, self-contained. Checks the boundary checker on its
# own snippets; writes docs/C-API.md's C snippets into a test program
# (tests/c/doc_snippets.py); builds libnetchan (debug and release) and the
# netchan CLI;
# checks the build leaves include/netchan.h as it was, every exported
# function is inside the panic boundary, and every test docs/C-API.md names
# exists. Then, for each profile: builds a test-only library with the
# `test-panic` feature (libnetchan_ffi) and checks that libnetchan has no
# test-only symbol; compiles every C test and example as C (ASan+UBSan,
# static library) and as C++ (ASan+UBSan, shared library), runs them, and
# runs one test under valgrind memcheck. Finally installs the release
# library and builds an example through pkg-config and CMake from the
# installed tree. Ends with "N passed, N failed"; exits non-zero on any
# failure.
#
# Environment: NETCHAN_C_PROFILE=debug|release (only that profile; default
# both), CC, CXX.
set -u
cd "$(dirname "$0")/../.."
ROOT=$PWD
PROFILES=${NETCHAN_C_PROFILE:-debug release}
CC=${CC:-cc}
CXX=${CXX:-c++}
OUT=$ROOT/target/c-tests
rm -rf "$OUT"
mkdir -p "$OUT/log"

passed=0
failed=0
failures=()

# step NAME CMD...: runs CMD with output in $OUT/log/NAME.log, counts it.
step() {
    local name=$1
    shift
    mkdir -p "$(dirname "$OUT/log/$name.log")"
    if "$@" >"$OUT/log/$name.log" 2>&1; then
        passed=$((passed + 1))
        echo "ok      $name"
    else
        failed=$((failed + 1))
        failures+=("$name")
        echo "FAILED  $name (log: target/c-tests/log/$name.log)"
        tail -n 25 "$OUT/log/$name.log" | sed 's/^/    /'
    fi
}

finish() {
    echo
    if [ "$failed" -gt 0 ]; then
        echo "failed: ${failures[*]}"
    fi
    echo "$passed passed, $failed failed"
    [ "$failed" -eq 0 ]
    exit $?
}

# --- checks that need no build ----------------------------------------------
step boundary-checker-self-test python3 tests/c/check_boundary.py --self-test
step doc-names-existing-tests python3 scripts/check_doc_tests.py docs/C-API.md

# --- build --------------------------------------------------------------------
# The header as it was before any build regenerates it: in a fresh clone (CI)
# the committed one.
cp include/netchan.h "$OUT/netchan.h.before"
profile_flags() { [ "$1" = release ] && echo --release; }
# The CLI only serves test_int_cli as a peer: one build (debug) is enough.
if ! cargo build -p netchan-cli >"$OUT/log/cargo-build-cli.log" 2>&1; then
    echo "FAILED  cargo-build-cli"
    tail -n 40 "$OUT/log/cargo-build-cli.log"
    failed=$((failed + 1))
    finish
fi
echo "ok      cargo-build-cli"
export NETCHAN_CLI=$ROOT/target/debug/netchan
for P in $PROFILES; do
    # shellcheck disable=SC2046
    if ! cargo build $(profile_flags "$P") -p netchan-c >"$OUT/log/cargo-build-$P.log" 2>&1; then
        echo "FAILED  cargo-build-$P"
        tail -n 40 "$OUT/log/cargo-build-$P.log"
        failed=$((failed + 1))
        finish
    fi
    echo "ok      cargo-build-$P"
done

# --- header and boundary ----------------------------------------------------
# cargo build just regenerated include/netchan.h from ffi-c/src: a committed
# header that is stale shows up here (scripts/test.sh also compares it with
# the commit).
step header-up-to-date cmp "$OUT/netchan.h.before" include/netchan.h
step boundary-covers-every-function python3 tests/c/check_boundary.py

# --- per profile: compile and run -------------------------------------------
# Link line of the static library (TOOLCHAINS.md): Rust's std needs these.
STATIC_LIBS="-lpthread -ldl -lm -lrt -lutil -lgcc_s"
SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"
WARN="-Wall -Wextra -Werror"
INC="-I$ROOT/include -I$ROOT/tests/c"

tests=(tests/c/test_*.c)
# docs/C-API.md's snippets, as one more test program.
step doc-snippets-written python3 tests/c/doc_snippets.py docs/C-API.md "$OUT/test_doc_snippets.c"
tests+=("$OUT/test_doc_snippets.c")
examples=(examples/c/*.c)
cpp_examples=(examples/cpp/*.cpp)
# Tests that need the test-only exports link the `test-panic` build of the
# ffi crate (libnetchan_ffi) instead of libnetchan.
TEST_PANIC_TESTS=" test_api_panic "

lib_of() { # BASE: the library a test links
    case "$TEST_PANIC_TESTS" in
    *" $1 "*) echo netchan_ffi ;;
    *) echo netchan ;;
    esac
}
compile_c_static() { # SRC BIN LIB
    $CC -std=c11 -D_GNU_SOURCE -g $WARN $SAN $INC "$1" -o "$2" "$LIBDIR/lib$3.a" $STATIC_LIBS
}
compile_cxx_shared() { # SRC BIN LIB
    $CXX -std=c++20 -x c++ -g $WARN $SAN $INC "$1" -o "$2" -L"$LIBDIR" -Wl,-rpath,"$LIBDIR" -l"$3" -lpthread
}
compile_shim() { # SRC SO (an LD_PRELOAD library)
    $CC -shared -fPIC $WARN "$1" -o "$2" -ldl
}
compile_c_plain_shared() { # SRC BIN LIB (for valgrind: no sanitizers)
    $CC -std=c11 -D_GNU_SOURCE -g -O1 $WARN $INC "$1" -o "$2" -L"$LIBDIR" -Wl,-rpath,"$LIBDIR" -l"$3" -lpthread
}

# Compiles run in parallel (2 jobs); each result is still one counted step.
pids=()
names=()
queue_compile() { # NAME FN SRC BIN LIB
    local name=$1
    shift
    mkdir -p "$(dirname "$OUT/log/$name.log")"
    ("$@" >"$OUT/log/$name.log" 2>&1) &
    pids+=($!)
    names+=("$name")
    if [ "${#pids[@]}" -ge 2 ]; then drain_compiles; fi
}
drain_compiles() {
    local i
    for i in "${!pids[@]}"; do
        if wait "${pids[$i]}"; then
            passed=$((passed + 1))
            echo "ok      ${names[$i]}"
        else
            failed=$((failed + 1))
            failures+=("${names[$i]}")
            echo "FAILED  ${names[$i]} (log: target/c-tests/log/${names[$i]}.log)"
            tail -n 25 "$OUT/log/${names[$i]}.log" | sed 's/^/    /'
        fi
    done
    pids=()
    names=()
}

# The test-only symbols must be in the test library (so the check below can
# fail) and in no library users get.
has_test_symbols() { # LIB.so
    nm -D --defined-only "$1" | grep -qw netchan_test_panic
}
no_test_symbols() { # DIR
    if nm -D --defined-only "$1/libnetchan.so" | grep -w netchan_test_panic; then return 1; fi
    if nm --defined-only "$1/libnetchan.a" 2>/dev/null | grep -w netchan_test_panic; then return 1; fi
    echo "no netchan_test_panic in $1/libnetchan.so or libnetchan.a"
}

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# Panics injected by test_api_panic print their message; a backtrace each
# only buries the log.
export RUST_BACKTRACE=0
run_bin() { # BIN [ARGS...]
    [ -x "$1" ] || { echo "not built: $1"; return 1; }
    timeout 300 "$@"
}

# Examples run as users would (a server/client pair runs through its script).
run_example() { # BIN
    local bin=$1
    case "$(basename "$bin")" in
    reqrep_server.*) return 0 ;; # run by the client pair below
    reqrep_client.*)
        local server=${bin/reqrep_client/reqrep_server}
        local fifo
        fifo=$(mktemp -u "$OUT/fifo.XXXXXX")
        mkfifo "$fifo"
        timeout 60 "$server" tcp://127.0.0.1:0 3 >"$fifo" &
        local spid=$!
        local addr rc
        # Keep the pipe open while the client runs: the server prints again.
        exec 3<"$fifo"
        read -r addr <&3
        timeout 60 "$bin" "${addr#listening on }" 3
        rc=$?
        cat <&3
        exec 3<&-
        wait "$spid" || rc=1
        rm -f "$fifo"
        return $rc
        ;;
    *) timeout 60 "$bin" ;;
    esac
}

sigpipe_test_can_fail() { # BINDIR
    "$1/test_int_signals.plain" || return 1 # passes as built
    local err rc line
    err=$(mktemp)
    LD_PRELOAD="$1/shim_strip_nosignal.so" timeout 120 "$1/test_int_signals.plain" 2>"$err"
    rc=$?
    line=$(grep '^shim: ' "$err" || true)
    rm -f "$err"
    echo "with the shim: exit status $rc ${line}"
    # Dead of SIGPIPE without the flag; or, when no write met the closed
    # connection before its reader noticed (timing), every send carried it.
    [ "$rc" -eq 141 ] && return 0
    [ "$rc" -eq 0 ] && [[ "$line" =~ ^shim:\ ([0-9]+)\ of\ ([0-9]+)\  ]] &&
        [ "${BASH_REMATCH[1]}" = "${BASH_REMATCH[2]}" ] && [ "${BASH_REMATCH[2]}" -gt 0 ]
}
valgrind_leak_test() { # BIN
    valgrind --error-exitcode=1 --leak-check=full --show-leak-kinds=all \
        --errors-for-leak-kinds=all "$1" || return 1
}
valgrind_all_freed() { # LOG
    grep -q "All heap blocks were freed" "$1" && grep -q "ERROR SUMMARY: 0 errors" "$1"
}

for P in $PROFILES; do
    LIBDIR=$ROOT/target/$P
    BIN=$OUT/$P/bin
    mkdir -p "$BIN"
    # shellcheck disable=SC2046
    step "$P/build-test-panic-library" cargo rustc $(profile_flags "$P") -p netchan-ffi \
        --features test-panic --crate-type staticlib --crate-type cdylib
    step "$P/test-library-has-test-symbols" has_test_symbols "$LIBDIR/libnetchan_ffi.so"
    step "$P/libnetchan-has-no-test-symbols" no_test_symbols "$LIBDIR"

    for src in "${tests[@]}" "${examples[@]}"; do
        base=$(basename "$src" .c)
        lib=$(lib_of "$base")
        queue_compile "$P/build-c-static-$base" compile_c_static "$src" "$BIN/$base.c-static" "$lib"
        queue_compile "$P/build-cxx-shared-$base" compile_cxx_shared "$src" "$BIN/$base.cxx-shared" "$lib"
    done
    for src in "${cpp_examples[@]}"; do
        base=$(basename "$src" .cpp)_cpp
        queue_compile "$P/build-cxx-shared-$base" compile_cxx_shared "$src" "$BIN/$base.cxx-shared" netchan
    done
    queue_compile "$P/build-valgrind-test_leak_shutdown" compile_c_plain_shared \
        tests/c/test_leak_shutdown.c "$BIN/test_leak_shutdown.plain" netchan
    queue_compile "$P/build-plain-test_int_signals" compile_c_plain_shared \
        tests/c/test_int_signals.c "$BIN/test_int_signals.plain" netchan
    queue_compile "$P/build-shim-strip-nosignal" compile_shim \
        tests/c/shim_strip_nosignal.c "$BIN/shim_strip_nosignal.so"
    drain_compiles

    for src in "${tests[@]}"; do
        base=$(basename "$src" .c)
        step "$P/run-c-static-$base" run_bin "$BIN/$base.c-static"
        step "$P/run-cxx-shared-$base" run_bin "$BIN/$base.cxx-shared"
    done
    for src in "${examples[@]}"; do
        base=$(basename "$src" .c)
        [ "$base" = reqrep_server ] && continue
        step "$P/run-c-static-example-$base" run_example "$BIN/$base.c-static"
        step "$P/run-cxx-shared-example-$base" run_example "$BIN/$base.cxx-shared"
    done
    for src in "${cpp_examples[@]}"; do
        base=$(basename "$src" .cpp)_cpp
        step "$P/run-cxx-shared-example-$base" run_example "$BIN/$base.cxx-shared"
    done

    # The SIGPIPE test can fail: with MSG_NOSIGNAL stripped from netchan's
    # writes, SIGPIPE kills it (exit status 128 + 13).
    step "$P/sigpipe-test-fails-without-msg-nosignal" sigpipe_test_can_fail "$BIN"

    if command -v valgrind >/dev/null; then
        step "$P/valgrind-memcheck" valgrind_leak_test "$BIN/test_leak_shutdown.plain"
        step "$P/valgrind-all-heap-blocks-freed" valgrind_all_freed "$OUT/log/$P/valgrind-memcheck.log"
    else
        echo "FAILED  $P/valgrind (not installed)"
        failed=$((failed + 1))
        failures+=("$P/valgrind")
    fi
done

# --- packaging: pkg-config and CMake from an installed tree -----------------
# The library users get: release, unless only debug was asked for.
case " $PROFILES " in
*" release "*) PKG_PROFILE=release ;;
*) PKG_PROFILE=debug ;;
esac
PREFIX=$OUT/prefix
pkgconfig_build() {
    PKG_CONFIG_PATH=$PREFIX/lib/pkgconfig
    export PKG_CONFIG_PATH
    # shellcheck disable=SC2046
    $CC -std=c11 examples/c/pubsub.c -o "$OUT/pubsub.pkgconfig" $(pkg-config --cflags --libs netchan) \
        -Wl,-rpath,"$PREFIX/lib" && "$OUT/pubsub.pkgconfig" &&
        # shellcheck disable=SC2046
        $CC -std=c11 examples/c/pubsub.c -o "$OUT/pubsub.pkgconfig-static" \
            $(pkg-config --static --cflags --libs netchan-static) && "$OUT/pubsub.pkgconfig-static"
}
cmake_build() {
    command -v cmake >/dev/null || { echo "cmake not installed"; return 1; }
    cmake -S tests/c/cmake -B "$OUT/cmake" -DCMAKE_PREFIX_PATH="$PREFIX" -DCMAKE_BUILD_TYPE=Debug &&
        cmake --build "$OUT/cmake" -j 2 &&
        "$OUT/cmake/pubsub_shared" && "$OUT/cmake/pubsub_static" && "$OUT/cmake/pubsub_cpp"
}
# find_package(netchan X.Y) while the major version is 0: only this minor.
cmake_version_check() {
    command -v cmake >/dev/null || { echo "cmake not installed"; return 1; }
    local want ok=0
    local version major minor
    version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
    major=${version%%.*}
    minor=${version#*.}
    minor=${minor%%.*}
    for want in "$major.$minor" "$major.$((minor + 1))" "$((major + 1)).0"; do
        if cmake -S tests/c/cmake/version -B "$OUT/cmake-version-$want" -DCMAKE_PREFIX_PATH="$PREFIX" \
            -DNETCHAN_WANT="$want" >"$OUT/cmake-version-$want.log" 2>&1; then
            echo "find_package(netchan $want): found"
            [ "$want" = "$major.$minor" ] || ok=1
        else
            echo "find_package(netchan $want): not found"
            [ "$want" != "$major.$minor" ] || ok=1
        fi
    done
    return $ok
}
# The installed library has a versioned SONAME (a release one is stripped).
soname_check() {
    local so
    so=$(readlink "$PREFIX/lib/libnetchan.so") || return 1
    echo "lib/libnetchan.so -> $so"
    readelf -d "$PREFIX/lib/$so" | grep "SONAME.*\[$so\]" || return 1
    if [ "$PKG_PROFILE" = release ]; then
        ls -l "$PREFIX/lib/$so"
        if readelf -S "$PREFIX/lib/$so" | grep -q '\.debug_info'; then
            echo "the release library still carries debug information"
            return 1
        fi
    fi
}
# A program built against the installed tree records the SONAME, not the
# path it was linked from: it still runs once the prefix has moved.
prefix_moves() {
    local moved=$OUT/prefix-moved ok=0
    readelf -d "$OUT/cmake/pubsub_shared" | grep NEEDED
    if readelf -d "$OUT/cmake/pubsub_shared" | grep NEEDED | grep -q '/'; then
        echo "a NEEDED entry is a path"
        return 1
    fi
    mv "$PREFIX" "$moved" || return 1
    LD_LIBRARY_PATH=$moved/lib "$OUT/cmake/pubsub_shared" || ok=1
    mv "$moved" "$PREFIX"
    return $ok
}
# Prebuilt files install without a build.
install_from() {
    local p=$OUT/prefix-from
    bash scripts/install-c.sh "$p" "$PKG_PROFILE" --from "target/$PKG_PROFILE" &&
        test -f "$p/include/netchan.h" && test -f "$p/lib/libnetchan.a" && test -e "$p/lib/libnetchan.so" &&
        test -f "$p/lib/cmake/netchan/netchanConfig.cmake" && ! grep -q '@SONAME@' "$p/lib/cmake/netchan/netchanConfig.cmake"
}
step install bash scripts/install-c.sh "$PREFIX" "$PKG_PROFILE"
step soname-versioned-and-stripped soname_check
step pkg-config pkgconfig_build
step cmake-find-package cmake_build
step cmake-version-0.x-minor-only cmake_version_check
step cmake-program-survives-a-moved-prefix prefix_moves
step install-prebuilt install_from

finish
