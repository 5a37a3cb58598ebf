#!/usr/bin/env bash
# VNN-COMP: prepare_instance.sh v1 CATEGORY ONNX VNNLIB
# Stops what a previous run_instance.sh left running (its process group, from the pid
# file that run_instance.sh writes) and checks that both files exist (or their .gz
# copies, which hybridver reads as they are).  Exit 0: ready; non-zero: skip the instance.
set -uo pipefail
if [ "$#" -ne 4 ] || [ "$1" != "v1" ]; then
    echo "usage: prepare_instance.sh v1 CATEGORY ONNX VNNLIB" >&2
    exit 1
fi
ONNX="$3"
VNNLIB="$4"
PIDFILE="${HYBRIDVER_VNNCOMP_PIDFILE:-${TMPDIR:-/tmp}/hybridver-vnncomp-$(id -u).pid}"
if [ -f "$PIDFILE" ]; then
    OLD="$(cat "$PIDFILE")"
    if [ -n "$OLD" ] && kill -0 "$OLD" 2>/dev/null; then
        kill -TERM -- "-$OLD" 2>/dev/null
        sleep 0.5
        kill -KILL -- "-$OLD" 2>/dev/null
    fi
    rm -f "$PIDFILE"
fi
for f in "$ONNX" "$VNNLIB"; do
    if [ ! -f "$f" ] && [ ! -f "$f.gz" ]; then
        echo "prepare_instance.sh: file not found: $f" >&2
        exit 1
    fi
done
exit 0
