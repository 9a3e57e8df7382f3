#!/usr/bin/env bash
# Build a Python channel into a WebAssembly component with componentize-py.
#
#   scripts/build-python-guest.sh <plugin-dir> <out.wasm> [world]
#
#   world       default airlock:channel/sandboxed-channel (or near:agent/sandboxed-channel@0.3.1)
#   APP_MODULE  app module inside <plugin-dir> (default: app); it must bind the export as `Channel`
#   COMPONENTIZE_PY  componentize-py binary (default: .venv/bin/componentize-py, else from PATH)
#   FORCE=1     rebuild even when the output is up to date
#   STUB_WASI=1 build with --stub-wasi: the component imports no WASI at all (only the channel host
#               interface); print() still reaches the host log through the SDK, but time.time(),
#               os.urandom() etc. trap, and `random` is seeded at build time
#
# The build is skipped when <out.wasm> is newer than every input (wit/, sdk/python, <plugin-dir>) and
# was built with the same settings (world, app, STUB_WASI, componentize-py version).
# If <plugin-dir> holds exactly one *.capabilities.json, it is copied next to the output as
# <out-stem>.capabilities.json.
set -euo pipefail

if [[ $# -lt 2 || $# -gt 3 ]]; then
    echo "usage: $0 <plugin-dir> <out.wasm> [world]" >&2
    exit 2
fi

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
abspath() { (cd "$(dirname "$1")" && printf '%s/%s\n' "$(pwd)" "$(basename "$1")"); }

[[ -d "$1" ]] || { echo "error: plugin dir $1 not found" >&2; exit 2; }
plugin_dir="$(cd "$1" && pwd)"
mkdir -p "$(dirname "$2")"
out="$(abspath "$2")"
world="${3:-airlock:channel/sandboxed-channel}"
app="${APP_MODULE:-app}"
wit_dir="$root/wit"
sdk_dir="$root/sdk/python"

[[ -f "$plugin_dir/$app.py" ]] || { echo "error: $plugin_dir/$app.py not found" >&2; exit 2; }

cpy="${COMPONENTIZE_PY:-}"
if [[ -z "$cpy" ]]; then
    if [[ -x "$root/.venv/bin/componentize-py" ]]; then
        cpy="$root/.venv/bin/componentize-py"
    else
        cpy="$(command -v componentize-py || true)"
    fi
fi
[[ -n "$cpy" ]] || { echo "error: componentize-py not found (pip install componentize-py==0.25.1)" >&2; exit 2; }

# shellcheck source=lib/guest-common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/guest-common.sh"

# Up to date when the build settings are unchanged and no input file is newer than the output
# (bytecode caches are not inputs). The settings are kept beside the output in <out>.buildinfo.
buildinfo="$out.buildinfo"
settings="world=$world app=$app stub_wasi=${STUB_WASI:-0} componentize_py=$("$cpy" --version 2>/dev/null || echo unknown)"
if [[ -f "$out" && "${FORCE:-0}" != 1 && -f "$buildinfo" && "$(cat "$buildinfo")" == "$settings" ]]; then
    newer="$(find "$wit_dir" "$sdk_dir" "$plugin_dir" -type f \
        -not -path '*/__pycache__/*' -not -name '*.pyc' -not -name '*.capabilities.json' \
        -newer "$out" -print -quit)"
    if [[ -z "$newer" ]]; then
        echo "up to date: $out"
        copy_capabilities "$plugin_dir" "$out"
        exit 0
    fi
fi

tmp="$out.tmp.$$"
trap 'rm -f "$tmp"' EXIT
start=$(date +%s)
(
    cd "$root"
    stub=()
    [[ "${STUB_WASI:-0}" == 1 ]] && stub=(--stub-wasi)
    "$cpy" -d "$wit_dir" -w "$world" componentize ${stub[@]+"${stub[@]}"} "$app" -p "$plugin_dir" -p "$sdk_dir" -o "$tmp"
)
mv -f "$tmp" "$out"
trap - EXIT
printf '%s\n' "$settings" >"$buildinfo"
echo "built $out ($(stat -c %s "$out") bytes, world $world, $(( $(date +%s) - start )) s)"
copy_capabilities "$plugin_dir" "$out"
