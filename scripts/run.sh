#!/usr/bin/env bash
# Set up, fetch the pinned data, and run the pipeline on the active profile (params.yaml; default: `default`).
# Offline: MDAQ_DATA_MIRROR=/path/to/midb-mirror bash scripts/run.sh
# Extra arguments go to `dvc repro` (e.g. a stage name, or --force).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
python -m mdaq data fetch --out data/midb
python -m mdaq profile prune-lock   # DVC rewrites the whole lock after every stage: keep it to this profile's stages
dvc repro "$@"
python -m mdaq leaderboard
