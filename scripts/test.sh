#!/usr/bin/env bash
# Set up (see setup.sh) and run every check: ruff, mypy and the whole pytest suite.
# Integration tests create network namespaces and iptables rules, so run this as root.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --dev
echo "== ruff" && .venv/bin/ruff check .
echo "== mypy" && .venv/bin/mypy
echo "== pytest" && .venv/bin/python -m pytest -n 2 "$@"
