#!/usr/bin/env bash
# VNN-COMP: run_instance.sh v1 CATEGORY ONNX VNNLIB RESULTS_FILE TIMEOUT
# Runs `hybridver verify` with the instance's timeout and writes the VNN-COMP results
# file (sat with the counterexample the real model confirmed, unsat, timeout, unknown).
# vnncomp/configs/CATEGORY.toml, where it exists, is passed as --config.  The hybridver
# run is the leader of its own process group, recorded in a pid file for
# prepare_instance.sh.  HYBRIDVER overrides the command (default: the .venv that
# install_tool.sh made, else `hybridver` on PATH).
set -uo pipefail
if [ "$#" -ne 6 ] || [ "$1" != "v1" ]; then
    echo "usage: run_instance.sh v1 CATEGORY ONNX VNNLIB RESULTS_FILE TIMEOUT" >&2
    exit 1
fi
CATEGORY="$2"
ONNX="$3"
VNNLIB="$4"
RESULTS="$5"
TIMEOUT="$6"
HERE="$(cd "$(dirname "$0")" && pwd)"
if [ -n "${HYBRIDVER:-}" ]; then
    read -r -a COMMAND <<< "$HYBRIDVER"
elif [ -x "$HERE/../.venv/bin/hybridver" ]; then
    COMMAND=("$HERE/../.venv/bin/hybridver")
else
    COMMAND=(hybridver)
fi
CONFIG=()
if [ -f "$HERE/configs/$CATEGORY.toml" ]; then
    CONFIG=(--config "$HERE/configs/$CATEGORY.toml")
fi
PIDFILE="${HYBRIDVER_VNNCOMP_PIDFILE:-${TMPDIR:-/tmp}/hybridver-vnncomp-$(id -u).pid}"
rm -f "$RESULTS"
setsid "${COMMAND[@]}" verify "$ONNX" "$VNNLIB" --timeout "$TIMEOUT" \
    --results-file "$RESULTS" --progress off "${CONFIG[@]}" &
CHILD=$!
echo "$CHILD" > "$PIDFILE"
wait "$CHILD"
STATUS=$?
rm -f "$PIDFILE"
if [ ! -s "$RESULTS" ]; then
    # hybridver stopped before writing (bad input: exit 2 with its reason on stderr)
    echo "error" > "$RESULTS"
fi
exit "$STATUS"
