#!/usr/bin/env bash
# Make sure the database servers the state-backend tests start are installed: Debian's `postgresql` (initdb,
# pg_ctl, postgres under /usr/lib/postgresql/<version>/bin) and `redis-server`. The tests start their own
# throw-away servers (tests/servers.py); the packages' system services are not used. Installs what is missing
# with apt-get (apt-get update first if the install fails); needs root or sudo. Idempotent and quiet when all
# is there.
set -euo pipefail

missing=()
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
[[ ${#missing[@]} -eq 0 ]] && exit 0

SUDO=""
if [[ "$(id -u)" != 0 ]]; then
    command -v sudo >/dev/null 2>&1 || { echo "error: ${missing[*]} missing; installing needs root or sudo" >&2; exit 1; }
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
echo "installing Debian's ${missing[*]} for the state-backend tests (apt-get)" >&2
$SUDO apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 \
    || { $SUDO apt-get update -q >/dev/null 2>&1 && $SUDO apt-get install -y -q "${missing[@]}" >/dev/null; }
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || { echo "error: postgresql installed but no initdb" >&2; exit 1; }
command -v redis-server >/dev/null 2>&1 || { echo "error: redis-server installed but not on PATH" >&2; exit 1; }
