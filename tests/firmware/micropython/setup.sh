#!/usr/bin/env bash
# Installs what the MicroPython receiver tests need: Node.js + npm (Debian packages, if missing) and the pinned
# MicroPython WebAssembly package (npm ci from package-lock.json into node_modules/ here). Idempotent: does nothing
# when node_modules already holds the locked version. CTest runs it first (test mpy.setup, a fixture).
set -euo pipefail
cd "$(dirname "$0")"
PKG=node_modules/@micropython/micropython-webassembly-pyscript

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "setup: installing nodejs and npm"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends nodejs npm
fi

want=$(node -p 'require("./package-lock.json").packages["node_modules/@micropython/micropython-webassembly-pyscript"].version')
have=$(node -p "try { require('./$PKG/package.json').version } catch (e) { 'none' }")
if [ "$want" = "$have" ] && [ -f "$PKG/micropython.wasm" ] && [ -f "$PKG/micropython.mjs" ]; then
  echo "setup: MicroPython wasm $have present (node $(node --version))"
  exit 0
fi
echo "setup: npm ci (MicroPython wasm $want, was $have)"
npm ci --no-audit --no-fund --loglevel=error
node -p "'setup: MicroPython wasm ' + require('./$PKG/package.json').version + ' installed'"
