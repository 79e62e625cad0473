#!/usr/bin/env bash
# Builds the Debian package with cargo-deb (installed if missing) into
# target/debian/: the binary, man pages and bash/zsh/fish completions it
# generates, the systemd units of examples/systemd (installed, not enabled),
# the commented policies and the Prometheus/Grafana examples under
# /usr/share/doc/wattson/, the plugin SDK crate and the WIT under
# /usr/share/wattson/, and maintainer scripts that make the `wattson` user
# and /var/lib/wattson.
#
#   ./scripts/package-deb.sh                 # release build
#   PROFILE=dev ./scripts/package-deb.sh     # the debug build (tests)
#   sudo dpkg -i target/debian/wattson_*.deb
set -euo pipefail
cd "$(dirname "$0")/.."
PROFILE=${PROFILE:-release}
case $PROFILE in dev) DIR=debug ;; *) DIR=$PROFILE ;; esac
command -v cargo-deb >/dev/null || cargo install --locked cargo-deb@3.8.0
# NO_BUILD=1: package the binary already there (tests, inside `cargo test`).
[[ ${NO_BUILD:-0} == 1 ]] || cargo build --locked --profile "$PROFILE" -p wattson --bin wattson
ASSETS=target/$DIR/assets
rm -rf "$ASSETS"
mkdir -p "$ASSETS/completions"
"target/$DIR/wattson" man "$ASSETS/man"
gzip -9n "$ASSETS"/man/*.1
"target/$DIR/wattson" completions bash > "$ASSETS/completions/wattson"
"target/$DIR/wattson" completions zsh > "$ASSETS/completions/_wattson"
"target/$DIR/wattson" completions fish > "$ASSETS/completions/wattson.fish"
# The plugin SDK as `cargo package` makes it (a standalone crate, its WIT
# inside), for `wattson plugins new` outside a source tree. Crates of
# earlier SDK versions left there would be unpacked too: removed first.
rm -f target/sdk-package/package/wattson-plugin-*.crate
(cd plugins && cargo package -q -p wattson-plugin --no-verify --allow-dirty \
    --target-dir ../target/sdk-package)
mkdir -p "$ASSETS/sdk"
tar -xzf target/sdk-package/package/wattson-plugin-*.crate -C "$ASSETS/sdk" --strip-components=1
rm -f "$ASSETS/sdk/Cargo.toml.orig" "$ASSETS/sdk/.cargo_vcs_info.json"
cargo deb -p wattson --no-build --profile "$PROFILE" --output target/debian/
