#!/usr/bin/env bash
# Prepare a fresh Debian machine (as root) and this checkout: system tools, a virtualenv in .venv and
# pymirrord installed into it in editable mode. Safe to run again; it only installs what is missing.
#   bash scripts/setup.sh          the tool
#   bash scripts/setup.sh --dev    the tool plus everything the tests, linters and benchmarks use
set -euo pipefail
cd "$(dirname "$0")/.."

extras=""
[ "${1:-}" = "--dev" ] && extras="dev"

need_apt=()
command -v iptables >/dev/null 2>&1 || need_apt+=(iptables)
command -v ip >/dev/null 2>&1 || need_apt+=(iproute2)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
if command -v python3 >/dev/null 2>&1 && ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    need_apt+=(python3-venv)
fi
# The VS Code extension's webview is tested in Debian's Chromium (through Playwright, which downloads nothing).
if [ -n "$extras" ] && ! command -v chromium >/dev/null 2>&1; then
    need_apt+=(chromium)
fi
if [ "${#need_apt[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "setup: missing system packages: ${need_apt[*]}; run this script as root or install them" >&2
        exit 1
    fi
    echo "setup: installing ${need_apt[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

python3 - <<'PY'
import sys
if sys.version_info < (3, 10):
    sys.exit(f"setup: pymirrord needs Python 3.10 or newer, found {sys.version.split()[0]}")
PY

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null
# The fast extra (uvloop, a faster event loop for the agent and the session) where this machine can
# install it; pymirrord runs on asyncio's own loop without it.
if ! .venv/bin/python -m pip install -q --disable-pip-version-check -e ".[${extras:+$extras,}fast]"; then
    echo "setup: uvloop could not be installed; pymirrord will use asyncio's own event loop" >&2
    .venv/bin/python -m pip install -q --disable-pip-version-check -e ".${extras:+[$extras]}"
fi

# The VS Code extension's type check and its .vsix (vsce, esbuild) use its npm dev dependencies.
if [ -n "$extras" ] && command -v npm >/dev/null 2>&1; then
    npm ci --no-audit --no-fund --loglevel=error >/dev/null || echo "setup: npm ci failed; the extension's type check and package test will be skipped" >&2
fi
