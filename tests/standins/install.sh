#!/usr/bin/env bash
# Install the real client libraries that prove the stand-ins faithful:
#   tests/standins/install.sh            -> target/standins-venv with openstacksdk, pyone
#                                           and boaviztapi (the real BoaviztAPI, run by uvicorn)
#
# Idempotent: the venv is (re)made and each library (re)installed only when its
# pinned version is missing. Prints the venv's python on stdout (last line).
# env:
#   OPENSTACKSDK_VERSION   pinned openstacksdk (default below)
#   PYONE_VERSION          pinned pyone, OpenNebula's XML-RPC bindings (default below)
#   BOAVIZTAPI_VERSION     pinned boaviztapi, with uvicorn to serve it (default below)
#   STANDINS_VENV          where the venv goes (default <repo>/target/standins-venv)
# Only the PyPI registry is used (pip). Exit 77 if the tools cannot be installed.
set -euo pipefail

SDK_VERSION=${OPENSTACKSDK_VERSION:-4.22.0}
PYONE_VERSION=${PYONE_VERSION:-6.10.5}
BOAVIZTAPI_VERSION=${BOAVIZTAPI_VERSION:-2.5.0}

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

# pyone, in the same venv (its XML bindings are generated from OpenNebula 6.10's XSDs)
pyone_installed() {
  "$py" -c 'import importlib.metadata as m, sys; sys.exit(m.version("pyone") != sys.argv[1])' \
    "$PYONE_VERSION" 2>/dev/null
}

if ! pyone_installed; then
  "$venv/bin/pip" install -q --disable-pip-version-check "pyone==$PYONE_VERSION" >&2 \
    || skip "cannot install pyone $PYONE_VERSION"
  pyone_installed || skip "pyone $PYONE_VERSION not importable after install"
fi
# boaviztapi and uvicorn, in the same venv (tests/integration/embodied_boavizta.rs
# serves it on 127.0.0.1); pip through the venv's own python, so a copied venv
# installs into itself.
boavizta_installed() {
  "$py" -c 'import importlib.metadata as m, sys, uvicorn; sys.exit(m.version("boaviztapi") != sys.argv[1])' \
    "$BOAVIZTAPI_VERSION" 2>/dev/null
}

if ! boavizta_installed; then
  "$py" -m pip install -q --disable-pip-version-check "boaviztapi==$BOAVIZTAPI_VERSION" uvicorn >&2 \
    || skip "cannot install boaviztapi $BOAVIZTAPI_VERSION"
  boavizta_installed || skip "boaviztapi $BOAVIZTAPI_VERSION not importable after install"
fi
echo "$py"
