#!/usr/bin/env bash
# The C ABI test suite, self-contained: builds libnetchan and the netchan CLI,
# checks the header is up to date and every exported function is inside the
# panic boundary, compiles every C test and example as C (ASan+UBSan, static
# library) and as C++ (ASan+UBSan, shared library), runs them, runs one test
# under valgrind memcheck, and builds an example through pkg-config and CMake
# from an installed tree. Ends with "N passed, N failed"; exits non-zero on
# any failure.
#
# Environment: NETCHAN_C_PROFILE=debug|release (default debug), CC, CXX.
set -u
cd "$(dirname "$0")/../.."
ROOT=$PWD
PROFILE=${NETCHAN_C_PROFILE:-debug}
CC=${CC:-cc}
CXX=${CXX:-c++}
OUT=$ROOT/target/c-tests
LIBDIR=$ROOT/target/$PROFILE
rm -rf "$OUT"
mkdir -p "$OUT/log" "$OUT/bin"

passed=0
failed=0
failures=()

# step NAME CMD...: runs CMD with output in $OUT/log/NAME.log, counts it.
step() {
    local name=$1
    shift
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

# --- build ------------------------------------------------------------------
cargo_flags=()
[ "$PROFILE" = release ] && cargo_flags+=(--release)
if ! cargo build "${cargo_flags[@]}" -p netchan-c -p netchan-cli >"$OUT/log/cargo-build.log" 2>&1; then
    echo "FAILED  cargo-build"
    tail -n 40 "$OUT/log/cargo-build.log"
    failed=$((failed + 1))
    finish
fi
echo "ok      cargo-build ($PROFILE)"
export NETCHAN_CLI=$LIBDIR/netchan

# --- header and boundary ----------------------------------------------------
# cargo build just regenerated include/netchan.h: it must match the commit.
step header-up-to-date git diff --exit-code -- include/netchan.h
step boundary-covers-every-function python3 tests/c/check_boundary.py

# --- compile ----------------------------------------------------------------
# Link line of the static library (TOOLCHAINS.md): Rust's std needs these.
STATIC_LIBS="-lpthread -ldl -lm -lrt -lutil -lgcc_s"
SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"
WARN="-Wall -Wextra -Werror"
INC="-I$ROOT/include -I$ROOT/tests/c"

tests=(tests/c/test_*.c)
examples=(examples/c/*.c)
cpp_examples=(examples/cpp/*.cpp)

compile_c_static() { # SRC BIN
    $CC -std=c11 -D_GNU_SOURCE -g $WARN $SAN $INC "$1" -o "$2" "$LIBDIR/libnetchan.a" $STATIC_LIBS
}
compile_cxx_shared() { # SRC BIN
    $CXX -std=c++20 -x c++ -g $WARN $SAN $INC "$1" -o "$2" -L"$LIBDIR" -Wl,-rpath,"$LIBDIR" -lnetchan -lpthread
}
compile_c_plain_shared() { # SRC BIN (for valgrind: no sanitizers)
    $CC -std=c11 -D_GNU_SOURCE -g -O1 $WARN $INC "$1" -o "$2" -L"$LIBDIR" -Wl,-rpath,"$LIBDIR" -lnetchan -lpthread
}

# Compiles run in parallel (2 jobs); each result is still one counted step.
pids=()
names=()
queue_compile() { # NAME FN SRC BIN
    local name=$1
    shift
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

for src in "${tests[@]}" "${examples[@]}"; do
    base=$(basename "$src" .c)
    queue_compile "build-c-static-$base" compile_c_static "$src" "$OUT/bin/$base.c-static"
    queue_compile "build-cxx-shared-$base" compile_cxx_shared "$src" "$OUT/bin/$base.cxx-shared"
done
for src in "${cpp_examples[@]}"; do
    base=$(basename "$src" .cpp)_cpp
    queue_compile "build-cxx-shared-$base" compile_cxx_shared "$src" "$OUT/bin/$base.cxx-shared"
done
queue_compile "build-valgrind-test_leak_shutdown" compile_c_plain_shared \
    tests/c/test_leak_shutdown.c "$OUT/bin/test_leak_shutdown.plain"
drain_compiles

# --- run --------------------------------------------------------------------
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
run_bin() { # BIN [ARGS...]
    [ -x "$1" ] || { echo "not built: $1"; return 1; }
    timeout 300 "$@"
}
for src in "${tests[@]}"; do
    base=$(basename "$src" .c)
    step "run-c-static-$base" run_bin "$OUT/bin/$base.c-static"
    step "run-cxx-shared-$base" run_bin "$OUT/bin/$base.cxx-shared"
done

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
for src in "${examples[@]}"; do
    base=$(basename "$src" .c)
    [ "$base" = reqrep_server ] && continue
    step "run-c-static-example-$base" run_example "$OUT/bin/$base.c-static"
    step "run-cxx-shared-example-$base" run_example "$OUT/bin/$base.cxx-shared"
done
for src in "${cpp_examples[@]}"; do
    base=$(basename "$src" .cpp)_cpp
    step "run-cxx-shared-example-$base" run_example "$OUT/bin/$base.cxx-shared"
done

# --- valgrind ---------------------------------------------------------------
valgrind_leak_test() {
    valgrind --error-exitcode=1 --leak-check=full --show-leak-kinds=all \
        --errors-for-leak-kinds=all "$OUT/bin/test_leak_shutdown.plain" || return 1
}
valgrind_all_freed() {
    grep -q "All heap blocks were freed" "$OUT/log/valgrind-memcheck.log" &&
        grep -q "ERROR SUMMARY: 0 errors" "$OUT/log/valgrind-memcheck.log"
}
if command -v valgrind >/dev/null; then
    step valgrind-memcheck valgrind_leak_test
    step valgrind-all-heap-blocks-freed valgrind_all_freed
else
    echo "FAILED  valgrind (not installed)"
    failed=$((failed + 1))
fi

# --- packaging: pkg-config and CMake from an installed tree -----------------
PREFIX=$OUT/prefix
pkgconfig_build() {
    PKG_CONFIG_PATH=$PREFIX/lib/pkgconfig
    export PKG_CONFIG_PATH
    # shellcheck disable=SC2046
    $CC -std=c11 examples/c/pubsub.c -o "$OUT/bin/pubsub.pkgconfig" $(pkg-config --cflags --libs netchan) \
        -Wl,-rpath,"$PREFIX/lib" && "$OUT/bin/pubsub.pkgconfig" &&
        # shellcheck disable=SC2046
        $CC -std=c11 examples/c/pubsub.c -o "$OUT/bin/pubsub.pkgconfig-static" \
            $(pkg-config --static --cflags --libs netchan-static) && "$OUT/bin/pubsub.pkgconfig-static"
}
cmake_build() {
    command -v cmake >/dev/null || { echo "cmake not installed"; return 1; }
    cmake -S tests/c/cmake -B "$OUT/cmake" -DCMAKE_PREFIX_PATH="$PREFIX" -DCMAKE_BUILD_TYPE=Debug &&
        cmake --build "$OUT/cmake" -j 2 &&
        "$OUT/cmake/pubsub_shared" && "$OUT/cmake/pubsub_static" && "$OUT/cmake/pubsub_cpp"
}
step install bash scripts/install-c.sh "$PREFIX" "$PROFILE"
step pkg-config pkgconfig_build
step cmake-find-package cmake_build

finish
