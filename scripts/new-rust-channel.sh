#!/usr/bin/env bash
# Start a new Rust channel from the template.
#
#   scripts/new-rust-channel.sh <name>
#
# Copies guest-plugins/template-rust to guest-plugins/<name>, renames everything that carries the template's
# name (package <name>-channel, <name>.capabilities.json, webhook path /webhook/<name>, workspace prefix,
# secret names <name_with_underscores>_*), and adds the crate to `members` in the root Cargo.toml.
# <name>: lower-case letters, digits and '-', starting with a letter, at most 32 characters.
set -euo pipefail

fail() { echo "error: new-rust-channel: $*" >&2; exit 1; }
[[ $# -eq 1 ]] || { echo "usage: $0 <name>" >&2; exit 2; }

name="$1"
[[ "$name" =~ ^[a-z][a-z0-9-]{0,31}$ ]] || fail "name must match [a-z][a-z0-9-]{0,31}, not '$name'"
[[ "$name" != template-rust ]] || fail "pick a name other than the template's"
snake="${name//-/_}"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
src="$root/guest-plugins/template-rust"
dest="$root/guest-plugins/$name"
[[ -d "$src" ]] || fail "template $src not found"
[[ ! -e "$dest" ]] || fail "$dest already exists"
grep -q "\"guest-plugins/$name\"" "$root/Cargo.toml" && fail "guest-plugins/$name is already a workspace member"

mkdir -p "$dest"
(cd "$src" && tar --exclude=target -cf - .) | (cd "$dest" && tar -xf -)
mv "$dest/template-rust.capabilities.json" "$dest/$name.capabilities.json"
# Longest patterns first: "template-rust-channel" before "template-rust".
find "$dest" -type f \( -name '*.rs' -o -name '*.toml' -o -name '*.json' \) -print0 | xargs -0 sed -i \
    -e "s/Template (Rust)/$name/g" \
    -e "s/template-rust/$name/g" \
    -e "s/template_rust/$snake/g"

# Add the crate to the workspace, right after the template's line.
sed -i "s|^\(\s*\)\"guest-plugins/template-rust\",|&\n\1\"guest-plugins/$name\",|" "$root/Cargo.toml"
grep -q "\"guest-plugins/$name\"" "$root/Cargo.toml" || fail "could not add guest-plugins/$name to Cargo.toml members"

cat <<EOF
created guest-plugins/$name (package $name-channel) and added it to the workspace in Cargo.toml
next:
  edit   guest-plugins/$name/src/lib.rs and guest-plugins/$name/$name.capabilities.json
  test   cargo test -p $name-channel
  build  scripts/build-rust-guest.sh guest-plugins/$name build/channels/$name.wasm
         (or add $name to RUST_CHANNELS in the Makefile and run make rust-guests)
EOF
