#!/usr/bin/env bash
# netchan on the platforms this Linux machine can reach (issue 19):
#  - compile checks (`cargo check`, warnings are errors) of the core, the C
#    library and the uniffi library for macOS (aarch64, x86_64), iOS
#    (aarch64) and Android (aarch64, x86_64): no Apple SDK or Android NDK
#    is here, so nothing is linked; ring's C and assembly are compiled by
#    zig's clang (`zcc`) with the headers of the nearest target zig has
#    (macOS for iOS, musl Linux for Android);
#  - Windows (x86_64-pc-windows-gnu, linked by mingw-w64): the C library
#    and the CLI are built, the uniffi library checked; under wine run the
#    portable C API tests (errors, pub/sub, request/reply, streams) against
#    netchan.dll, and the CLI: request/reply and pub/sub over a named pipe
#    between two Windows processes, request/reply over TCP between a Windows
#    and a Linux process both ways, and `unix://` refused with the fix named.
#  - 64-bit ARM Linux (aarch64-unknown-linux-gnu, built with Debian's cross
#    gcc): the core's unit tests, the C API tests (errors, pub/sub,
#    request/reply, streams, callbacks, discovery) against the ARM
#    libnetchan.so, and the ARM CLI talking to the x86-64 one over TCP and
#    a Unix socket both ways, all under qemu-aarch64.
# Installs what it needs (rustup targets, wine64, mingw-w64, the aarch64
# cross compiler and qemu-user, zig from PyPI).
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

step "Windows: build the C library and the CLI, check the uniffi library"
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUSTFLAGS="-D warnings"
cargo build --quiet --locked -p netchan-c -p netchan-cli --target "$win"
cargo check --quiet --locked -p netchan-uniffi --target "$win"
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

# --- 64-bit ARM Linux, under qemu-user ------------------------------------
arm=aarch64-unknown-linux-gnu
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-D warnings"
arm_run() { timeout 300 qemu-aarch64 -L /usr/aarch64-linux-gnu "$@"; }

step "aarch64 Linux: the core's unit tests under qemu-aarch64"
# Less the brute-force pattern check (pure logic, run natively; 100 s here).
cargo test --quiet --locked -p netchan --lib --target "$arm" -- --skip overlap_agrees_with_brute_force

step "aarch64 Linux: build the C library and the CLI"
cargo build --quiet --locked -p netchan-c -p netchan-cli --target "$arm"
abin=$CARGO_TARGET_DIR/$arm/debug
file "$abin/netchan" "$abin/libnetchan.so" | sed "s|$abin/||"

for t in test_api_errors test_api_pubsub test_api_reqrep test_api_streams test_api_callbacks test_api_discovery; do
    step "aarch64 Linux: tests/c/$t.c under qemu-aarch64"
    aarch64-linux-gnu-gcc -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Iinclude -Itests/c "tests/c/$t.c" \
        -o "$abin/$t" -L"$abin" -Wl,-rpath,"$abin" -lnetchan -lpthread
    arm_run "$abin/$t"
done

step "aarch64 Linux: an ARM and an x86-64 process, over TCP and a Unix socket, both ways"
start "$work/aserve" timeout 120 qemu-aarch64 -L /usr/aarch64-linux-gnu "$abin/netchan" serve --listen tcp://127.0.0.1:0 --count 1 --echo echo
expect "to arm" "$(timeout 60 "$linux_cli" req --connect "$addr" echo 'to arm')"
sock=$work/arm.sock
start "$work/xserve" timeout 120 "$linux_cli" serve --listen "unix://$sock" --count 1 --echo echo
expect "from arm" "$(arm_run "$abin/netchan" req --connect "$addr" echo 'from arm')"
start "$work/asub" timeout 120 qemu-aarch64 -L /usr/aarch64-linux-gnu "$abin/netchan" sub --listen "unix://$work/asub.sock" --count 2 'a/*'
timeout 60 "$linux_cli" pub --connect "$addr" --count 2 a/b from-x86
wait "${pids[-1]}"
expect "$(printf 'a/b\tfrom-x86\na/b\tfrom-x86')" "$(cat "$work/asub.out")"

step "platforms: all passed"
