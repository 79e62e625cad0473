#!/usr/bin/env bash
# Idempotent setup of everything wattson's demo and tests need on Debian 12:
# Debian's prometheus (prometheus + promtool), victoria-metrics and
# prometheus-node-exporter (tests start their own on 127.0.0.1), libvirt-dev
# (wattson links libvirt; tests use its test driver, no daemon), lintian,
# chromium (headless, for the HTML report test),
# the wasm32-wasip2 Rust target, cargo-deb (scripts/package-deb.sh) and
# openstacksdk in target/standins-venv (tests/standins).
# No system Prometheus is relied upon: tests and the demo start their own.
set -euo pipefail

need_apt=()
command -v prometheus >/dev/null 2>&1 || need_apt+=(prometheus)
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
# The Nova stand-in's TLS test makes its CA and certificate with openssl.
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
# venvs for the polyglot plugins' tools and openstacksdk (tests/standins).
python3 -c 'import ensurepip' >/dev/null 2>&1 || need_apt+=(python3-venv)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
command -v victoria-metrics >/dev/null 2>&1 || need_apt+=(victoria-metrics)
command -v prometheus-node-exporter >/dev/null 2>&1 || need_apt+=(prometheus-node-exporter)
command -v pkg-config >/dev/null 2>&1 || need_apt+=(pkg-config)
pkg-config --exists libvirt 2>/dev/null || need_apt+=(libvirt-dev)
# The package test: dpkg-deb checks the .deb, lintian lints it.
command -v lintian >/dev/null 2>&1 || need_apt+=(lintian)
# The HTML report test renders the page in headless Chromium.
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)

if [ "${#need_apt[@]}" -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    # Exit code 101 from policy-rc.d: do not start the packaged service while installing.
    created_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
        $sudo chmod +x /usr/sbin/policy-rc.d
        created_policy=1
    fi
    $sudo apt-get update -q
    $sudo apt-get install -y -q --no-install-recommends "${need_apt[@]}"
    [ "$created_policy" -eq 0 ] || $sudo rm -f /usr/sbin/policy-rc.d
fi

if ! rustup target list --installed | grep -qx wasm32-wasip2; then
    rustup target add wasm32-wasip2
fi

# scripts/package-deb.sh builds the .deb with cargo-deb.
if ! command -v cargo-deb >/dev/null 2>&1; then
    cargo install --locked cargo-deb@3.8.0
fi
[ "$(mdbook --version 2>/dev/null)" = "mdbook v0.4.52" ] || cargo install --locked mdbook@0.4.52 --no-default-features --features search  # docs/book (scripts/test.sh)

# The real OpenStack client that proves tests/standins/openstack.py faithful.
bash "$(dirname "$0")/../tests/standins/install.sh" >/dev/null ||
    echo "setup: openstacksdk could not be installed; the stand-in test will say so" >&2
