#!/usr/bin/env bash
# Build the example plugins in other languages from a wattson WIT package:
#   model.wasm  - Python attribution-model (componentize-py, python-model/app.py)
#   format.wasm - JavaScript output-format (ComponentizeJS, js-format/format.js)
#
#   examples/plugins/build.sh wit/since_v0.2.0 target/polyglot
#
# usage: build.sh WIT_DIR OUT_DIR
#   WIT_DIR  directory holding ONE WIT package (e.g. wit/since_v0.1.0)
#   OUT_DIR  where model.wasm, format.wasm and their WIT (model.wit, format.wit) go
# env:
#   POLYGLOT_CACHE   tool cache (default OUT_DIR/.polyglot-cache): venv/ and npm/
#   PY_STUB_WASI=1   build the Python model with --stub-wasi (no WASI imports at all)
#   JS_DISABLE       ComponentizeJS features to drop (default "http fetch-event": the
#                    host links no wasi:http; "" drops none); "stdio random clocks http fetch-event"
#                    gives a component with no WASI imports (errors then trap silently,
#                    Date.now() is frozen at build time, Math.random() is deterministic)
# Tools are installed once (pip, npm registries only). Exit 77 if they cannot be.
set -euo pipefail

CPY_VERSION=${COMPONENTIZE_PY_VERSION:-0.25.1}
CJS_VERSION=${COMPONENTIZE_JS_VERSION:-0.23.0}
JCO_VERSION=${JCO_VERSION:-1.35.0}

[ $# -eq 2 ] || { echo "usage: $0 WIT_DIR OUT_DIR" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$2"
wit_src=$(cd "$1" && pwd) out=$(cd "$2" && pwd)
cache=${POLYGLOT_CACHE:-$out/.polyglot-cache}
mkdir -p "$cache"
skip() { echo "polyglot: skipped: $*" >&2; exit 77; }

# --- tools (idempotent: reinstalled only when the pinned version is missing) ---
venv=$cache/venv
cpy=$venv/bin/componentize-py
if [ "$("$cpy" --version 2>/dev/null)" != "componentize-py $CPY_VERSION" ]; then
  command -v python3 >/dev/null || skip "python3 not found"
  { python3 -m venv "$venv" && "$venv/bin/pip" install -q --disable-pip-version-check \
      "componentize-py==$CPY_VERSION"; } >&2 || skip "cannot install componentize-py $CPY_VERSION"
fi

npmdir=$cache/npm
bin=$npmdir/node_modules/.bin
if [ "$(cat "$npmdir/.installed" 2>/dev/null)" != "$CJS_VERSION $JCO_VERSION" ]; then
  command -v npm >/dev/null || skip "npm not found"
  mkdir -p "$npmdir"
  # The override gives jco's own tools preview2-shim 0.25, which still preopens "/":
  # with 0.26 `jco componentize|types` cannot read --wit paths (ENOENT, os error 44).
  cat >"$npmdir/package.json" <<EOF
{ "name": "wattson-polyglot-tools", "private": true,
  "dependencies": { "@bytecodealliance/componentize-js": "$CJS_VERSION",
                    "@bytecodealliance/jco": "$JCO_VERSION" },
  "overrides": { "@bytecodealliance/preview2-shim": "0.25.0" } }
EOF
  (cd "$npmdir" && npm install --no-audit --no-fund --loglevel=error) >&2 \
    || skip "cannot install componentize-js $CJS_VERSION / jco $JCO_VERSION"
  echo "$CJS_VERSION $JCO_VERSION" >"$npmdir/.installed"
fi

# --- WIT: a private copy holding only this one package (componentize-py parses the
# whole directory, plus deps/, and refuses a second package) ---
wit=$(mktemp -d)
trap 'rm -rf "$wit"' EXIT
cp "$wit_src"/*.wit "$wit"/
[ -d "$wit_src/deps" ] && cp -r "$wit_src/deps" "$wit"/

# --- Python attribution model (module `app`, class `WitWorld`) ---
"$cpy" -d "$wit" -w attribution-model componentize -p "$here/python-model" \
  ${PY_STUB_WASI:+--stub-wasi} app -o "$out/model.wasm" >&2

# --- JavaScript output format (the ComponentizeJS CLI; `jco componentize` would use
# the older ComponentizeJS that jco pins for itself) ---
read -ra disable <<<"${JS_DISABLE-http fetch-event}"
"$bin/componentize-js" --wit "$wit" --world-name output-format \
  ${disable[0]+-d "${disable[@]}"} -o "$out/format.wasm" "$here/js-format/format.js" >&2

# The components' worlds, imports with their WASI versions included.
"$bin/jco" wit "$out/model.wasm" >"$out/model.wit"
"$bin/jco" wit "$out/format.wasm" >"$out/format.wit"
echo "polyglot: built $out/model.wasm $out/format.wasm" >&2
