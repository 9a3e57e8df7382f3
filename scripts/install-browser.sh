#!/usr/bin/env bash
# Make sure the headless browser the console tests drive is installed: Debian's `chromium` package at
# /usr/bin/chromium, used through Playwright's executable_path (Playwright's own browser download is not used:
# it fetches a prebuilt binary from outside the package registries). Installs it with apt-get when missing
# (apt-get update first if the install fails); needs root or sudo. AIRLOCK_CHROMIUM overrides the path.
set -euo pipefail

BROWSER="${AIRLOCK_CHROMIUM:-/usr/bin/chromium}"
[[ -x "$BROWSER" ]] && exit 0

SUDO=""
if [[ "$(id -u)" != 0 ]]; then
    command -v sudo >/dev/null 2>&1 || { echo "error: $BROWSER is missing and installing it needs root or sudo" >&2; exit 1; }
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
echo "installing Debian's chromium for the console tests (apt-get)" >&2
$SUDO apt-get install -y -q chromium >/dev/null 2>&1 \
    || { $SUDO apt-get update -q >/dev/null 2>&1 && $SUDO apt-get install -y -q chromium >/dev/null; }
[[ -x "$BROWSER" ]] || { echo "error: chromium was installed but $BROWSER is not there" >&2; exit 1; }
