#!/usr/bin/env bash
# Install the real OpenStack client library that proves the stand-ins faithful:
#   tests/standins/install.sh            -> target/standins-venv with openstacksdk
#
# Idempotent: the venv is (re)made and openstacksdk (re)installed only when the
# pinned version is missing. Prints the venv's python on stdout (last line).
# env:
#   OPENSTACKSDK_VERSION   pinned openstacksdk (default below)
#   STANDINS_VENV          where the venv goes (default <repo>/target/standins-venv)
# Only the PyPI registry is used (pip). Exit 77 if the tools cannot be installed.
set -euo pipefail

SDK_VERSION=${OPENSTACKSDK_VERSION:-4.22.0}

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
venv=${STANDINS_VENV:-$root/target/standins-venv}
py=$venv/bin/python
skip() { echo "standins: skipped: $*" >&2; exit 77; }

installed() {
  "$py" -c 'import importlib.metadata as m, sys; sys.exit(m.version("openstacksdk") != sys.argv[1])' \
    "$SDK_VERSION" 2>/dev/null
}

if ! installed; then
  command -v python3 >/dev/null || skip "python3 not found"
  mkdir -p "$(dirname "$venv")"
  { [ -x "$py" ] || python3 -m venv "$venv"; } >&2 || skip "cannot create venv $venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "openstacksdk==$SDK_VERSION" >&2 \
    || skip "cannot install openstacksdk $SDK_VERSION"
  installed || skip "openstacksdk $SDK_VERSION not importable after install"
fi
echo "$py"
