#!/usr/bin/env bash
# VNN-COMP: install_tool.sh v1
# Makes a virtual environment with hybridver in the repository (.venv beside vnncomp/).
# torch is pinned; on a machine with a GPU, PyPI's torch==2.13.0 is a CUDA build, and
# HYBRIDVER_TORCH (e.g. "torch==2.13.0 --index-url ...") chooses another.
set -euo pipefail
if [ "${1:-}" != "v1" ]; then
    echo "install_tool.sh: expected the version string v1, got '${1:-}'" >&2
    exit 1
fi
REPO="$(cd "$(dirname "$0")/.." && pwd)"
python3 -m venv "$REPO/.venv"
# shellcheck disable=SC2086
"$REPO/.venv/bin/pip" install ${HYBRIDVER_TORCH:-torch==2.13.0} -e "$REPO"
"$REPO/.venv/bin/hybridver" --version
