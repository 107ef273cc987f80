#!/usr/bin/env bash
# Installs what the web console tests need: Debian's chromium, Node.js + npm (Debian packages, if missing) and the
# pinned playwright-core (npm ci from package-lock.json into node_modules/ here). Idempotent. CTest runs it first
# (test web.setup, a fixture).
set -euo pipefail
cd "$(dirname "$0")"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
need=()
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
[ -x /usr/bin/chromium ] || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
want=$(node -p 'require("./package-lock.json").packages["node_modules/playwright-core"].version')
have=$(node -p "try { require('./node_modules/playwright-core/package.json').version } catch (e) { 'none' }")
if [ "$want" != "$have" ]; then
  echo "setup: npm ci (playwright-core $want, was $have)"
  npm ci --no-audit --no-fund --loglevel=error
fi
echo "setup: playwright-core $(node -p "require('./node_modules/playwright-core/package.json').version"), $(/usr/bin/chromium --version 2>/dev/null | head -1)"
