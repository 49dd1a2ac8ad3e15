#!/usr/bin/env bash
# Set up and run the test suite (everything but tests marked slow). Tests that need the MIDB mirror read
# MDAQ_DATA_MIRROR (or ../shared/data/midb) and are skipped, with a reason, when there is none.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
# Two workers (pytest-xdist), one test file each at a time: the end-to-end pipeline test runs beside the unit tests
# (tests/conftest.py splits the cores between them). MDAQ_TEST_WORKERS=0 runs everything in this process.
workers="${MDAQ_TEST_WORKERS:-2}"
dist=()
[[ "$workers" == 0 ]] || dist=(-n "$workers" --dist loadfile)
exec .venv/bin/python -m pytest -m "not slow" -p no:cacheprovider "${dist[@]}" "$@"
