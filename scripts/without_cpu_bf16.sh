#!/usr/bin/env bash
# Run a command with this CPU's bf16 flags (mdaq.hardware.BF16_CPU_FLAGS) hidden from /proc/cpuinfo, so that
# `precision: auto` resolves to fp32 in it and its children, as on a CPU without fast bf16:
#   bash scripts/without_cpu_bf16.sh dvc repro
# scripts/study.sh uses it to finish a study whose committed runs are fp32 on a CPU that has fast bf16
# (mdaq.pipeline.studies.precision_plan). Only the flags are hidden: torch still uses every instruction the CPU has.
# Needs a private mount namespace (root, or unprivileged user namespaces); exits 2 with a message if there is none.
# Env: PYTHON, the interpreter whose mdaq names the flags (default: python).
set -euo pipefail
[ "$#" -gt 0 ] || { echo "usage: bash scripts/without_cpu_bf16.sh COMMAND [ARGS...]" >&2; exit 2; }
py="${PYTHON:-python}"
flags="$("$py" -c 'from mdaq.hardware import BF16_CPU_FLAGS as f; print("|".join(f))')"
masked="$(mktemp "${TMPDIR:-/tmp}/cpuinfo-without-bf16.XXXXXX")"
trap 'rm -f "$masked"' EXIT
sed -E "s/ ($flags)\b//g" /proc/cpuinfo > "$masked"
if ! unshare --mount --propagation private sh -c 'mount --bind "$0" /proc/cpuinfo' "$masked" 2>/dev/null; then
  echo "without_cpu_bf16.sh: no private mount namespace here (unshare needs root or user namespaces)" >&2
  exit 2
fi
rc=0
unshare --mount --propagation private sh -c 'mount --bind "$0" /proc/cpuinfo && exec "$@"' "$masked" "$@" \
  || rc=$?
exit "$rc"
