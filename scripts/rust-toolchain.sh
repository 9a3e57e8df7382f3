#!/usr/bin/env bash
# Find (or install) a Rust toolchain that builds wasm32-unknown-unknown guests.
#
#   scripts/rust-toolchain.sh            print the route and the environment (human readable, stderr)
#                                        and `export NAME=value` lines for cargo (stdout)
#   eval "$(scripts/rust-toolchain.sh)"  use the environment in a shell (build-rust-guest.sh does this)
#
# Routes, in order of preference (see ../shared/design/guest-toolchains.md):
#   rustup   a rustup toolchain with the wasm32-unknown-unknown target installed: plain `cargo build`.
#   debian   Debian's rustc-web/cargo-web (rustc 1.96, LLVM 22) with rust-web-src: the standard library is
#            compiled from source with -Zbuild-std (RUSTC_BOOTSTRAP=1 enables it on a stable compiler).
# When neither is usable, the Debian packages are installed with apt-get (apt-get update first if the
# install fails); this needs root or sudo. AIRLOCK_RUST_ROUTE=rustup|debian forces a route.
#
# Exported for cargo: AIRLOCK_RUST_ROUTE, AIRLOCK_CARGO (the cargo binary), AIRLOCK_CARGO_FLAGS (extra build
# flags: -Zbuild-std=std,panic_abort on the debian route), RUSTC and RUSTDOC (the compiler that matches
# AIRLOCK_CARGO; the rustup proxies in ~/.cargo/bin would otherwise shadow Debian's), RUSTC_BOOTSTRAP.
# Exit status 1 with a one-line reason on stderr when no route works.
set -euo pipefail

TARGET=wasm32-unknown-unknown
DEBIAN_PACKAGES=(rustc-web cargo-web rust-web-src rust-web-llvm lld-22)
DEBIAN_RUSTC=/usr/bin/rustc
DEBIAN_CARGO=/usr/bin/cargo
DEBIAN_RUSTDOC=/usr/bin/rustdoc
DEBIAN_STD_SRC=/usr/lib/rustlib/src/rust/library/std/Cargo.toml

fail() { echo "error: rust-toolchain: $*" >&2; exit 1; }
note() { echo "rust-toolchain: $*" >&2; }

# rustup route: the active toolchain lists the target as installed. Prints the toolchain's rustc path.
rustup_route() {
    command -v rustup >/dev/null 2>&1 || return 1
    rustup target list --installed 2>/dev/null | grep -qx "$TARGET" || return 1
    local rustc cargo
    rustc="$(rustup which rustc 2>/dev/null)" || return 1
    cargo="$(rustup which cargo 2>/dev/null)" || return 1
    [[ -x "$rustc" && -x "$cargo" ]] || return 1
    printf '%s\n%s\n' "$rustc" "$cargo"
}

# debian route: compiler, cargo, std source and the wasm linker (rust-lld -> lld-22) are all present.
debian_ok() {
    [[ -x "$DEBIAN_RUSTC" && -x "$DEBIAN_CARGO" && -f "$DEBIAN_STD_SRC" ]] || return 1
    # rust-lld is a symlink to lld-22; a dangling link means lld-22 is missing ("linker rust-lld not found")
    local lld
    lld="$(command -v rust-lld 2>/dev/null || true)"
    [[ -n "$lld" && -x "$(readlink -f "$lld")" ]] || return 1
    "$DEBIAN_RUSTC" --print target-list 2>/dev/null | grep -qx "$TARGET"
}

debian_install() {
    local sudo=()
    if [[ "$(id -u)" != 0 ]]; then
        command -v sudo >/dev/null 2>&1 || fail "Debian packages ${DEBIAN_PACKAGES[*]} are missing and neither root nor sudo is available"
        sudo=(sudo)
    fi
    command -v apt-get >/dev/null 2>&1 || fail "no rustup wasm32 target and no apt-get to install ${DEBIAN_PACKAGES[*]}"
    note "installing ${DEBIAN_PACKAGES[*]} with apt-get"
    if ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${DEBIAN_PACKAGES[@]}" >&2; then
        "${sudo[@]}" apt-get update -q >&2 || fail "apt-get update failed"
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${DEBIAN_PACKAGES[@]}" >&2 \
            || fail "apt-get install ${DEBIAN_PACKAGES[*]} failed"
    fi
}

emit_env() {
    local route=$1 rustc=$2 cargo=$3 rustdoc=$4 flags=$5 bootstrap=$6
    note "route $route: $("$rustc" --version) ($rustc), cargo $cargo${flags:+, flags $flags}"
    printf 'export AIRLOCK_RUST_ROUTE=%q\n' "$route"
    printf 'export AIRLOCK_CARGO=%q\n' "$cargo"
    printf 'export AIRLOCK_CARGO_FLAGS=%q\n' "$flags"
    printf 'export RUSTC=%q\n' "$rustc"
    printf 'export RUSTDOC=%q\n' "$rustdoc"
    if [[ -n "$bootstrap" ]]; then
        printf 'export RUSTC_BOOTSTRAP=%q\n' "$bootstrap"
    else
        printf 'unset RUSTC_BOOTSTRAP\n'
    fi
}

use_rustup() {
    local paths rustc cargo
    paths="$(rustup_route)" || return 1
    rustc="$(sed -n 1p <<<"$paths")"
    cargo="$(sed -n 2p <<<"$paths")"
    emit_env rustup "$rustc" "$cargo" "$(dirname "$rustc")/rustdoc" "" ""
}

use_debian() {
    debian_ok || return 1
    emit_env debian "$DEBIAN_RUSTC" "$DEBIAN_CARGO" "$DEBIAN_RUSTDOC" "-Zbuild-std=std,panic_abort" 1
}

case "${AIRLOCK_RUST_ROUTE:-}" in
    rustup) use_rustup || fail "AIRLOCK_RUST_ROUTE=rustup but no rustup toolchain has the $TARGET target" ;;
    debian)
        debian_ok || debian_install
        use_debian || fail "Debian toolchain still incomplete after installing ${DEBIAN_PACKAGES[*]}"
        ;;
    "")
        if ! use_rustup && ! use_debian; then
            debian_install
            use_debian || fail "Debian toolchain still incomplete after installing ${DEBIAN_PACKAGES[*]}"
        fi
        ;;
    *) fail "AIRLOCK_RUST_ROUTE must be rustup or debian, not ${AIRLOCK_RUST_ROUTE}" ;;
esac
