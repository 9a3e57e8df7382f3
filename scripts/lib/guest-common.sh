# Shared by scripts/build-python-guest.sh and scripts/build-rust-guest.sh (sourced, not run).

# copy_capabilities <source dir> <out.wasm>: copy the source dir's one <name>.capabilities.json next to the
# component as <out>.capabilities.json, only when it changed (so make's up-to-date checks stay quiet).
# Zero or several capabilities files: nothing is copied.
copy_capabilities() {
    local src_dir=$1 out_wasm=$2
    shopt -s nullglob
    local caps=("$src_dir"/*.capabilities.json)
    shopt -u nullglob
    if [[ ${#caps[@]} -eq 1 ]]; then
        local dest="${out_wasm%.wasm}.capabilities.json"
        if ! cmp -s "${caps[0]}" "$dest"; then
            cp "${caps[0]}" "$dest"
            echo "copied $(basename "${caps[0]}") -> $dest"
        fi
    fi
}
