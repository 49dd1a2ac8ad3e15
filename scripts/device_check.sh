#!/usr/bin/env bash
# One prepared run on a lent GPU machine (the `device` tool; no network, no venv, the image's own torch):
#   here:   bash scripts/device_check.sh pack      # tiny-llama + tiny-bert -> .devcheck/assets.tar.xz (~44 MB)
#   there:  bash scripts/device_check.sh run DIR   # machine facts, scripts/device_check.py, precision tests
#   there:  bash scripts/device_check.sh suite DIR # the default test suite on that machine's CPU (GPU hidden), with
#           the real bf16 probe: on an AMX Xeon `auto` resolves to bf16 in every stage the tests run
#           (wheels of packages the image lacks travel in .whl/, see the device tool's README)
# What it checks and why: docs/design.md, "Speed on CPU" and "GPU".
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
pack)
    .venv/bin/python -c "
from pathlib import Path
from mdaq.models.assets import build_asset
for n in ('tiny-llama', 'tiny-bert'):
    build_asset(n, Path('.devcheck') / n)"
    tar -C .devcheck -cJf .devcheck/assets.tar.xz tiny-llama tiny-bert
    ls -la .devcheck/assets.tar.xz ;;
run)
    out=${2:?output folder}
    assets=$(mktemp -d)
    tar -C "$assets" -xJf .devcheck/assets.tar.xz
    export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
    {
        nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
        lscpu | grep -E "Model name|^CPU\(s\)" || true
        echo "bf16 flags: $(grep -o -w -E 'amx_bf16|avx512_bf16' /proc/cpuinfo | sort -u | tr '\n' ' ')"
        python3 -c "import torch, transformers, peft; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__)"
    } 2>&1 | tee "$out/machine.txt"
    rc=0
    python3 scripts/device_check.py --assets "$assets" --out "$out/device_check.json" 2>&1 \
        | grep -v "it/s" | tee "$out/device_check.log" || rc=1
    # bf16 vs fp32 on this CPU at me5-small / Gemma-3-270M shapes (random weights), all cores and 2 threads
    for t in "" 2; do
        OMP_NUM_THREADS=$t python3 benchmarks/bench_precision.py --synthetic "$assets" --repeats 2 --gemm 2048 \
            2>/dev/null > "$out/bench_precision_threads${t:-all}.json" || rc=1
        tail -c 1500 "$out/bench_precision_threads${t:-all}.json"
    done
    # the precision-sensitive tests with the real probe: on an AMX CPU `auto` is bf16 and the bf16 tests run
    MDAQ_TEST_ASSETS=$assets MDAQ_TEST_BF16_PROBE=real timeout "${PYTEST_TIMEOUT:-240}" python3 -m pytest -q \
        -p no:cacheprovider -m "not slow" -rs tests/test_hardware.py tests/test_quality.py tests/test_train.py \
        tests/test_ifd.py tests/test_features.py 2>&1 | tail -40 | tee "$out/pytest_real_probe.log" || rc=1
    exit $rc ;;
suite)
    out=${2:?output folder}
    assets=$(mktemp -d)
    tar -C "$assets" -xJf .devcheck/assets.tar.xz
    if ls .whl/*.whl >/dev/null 2>&1; then
        python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl
        export PYTHONPATH=/tmp/site
    fi
    export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
    export CUDA_VISIBLE_DEVICES="" OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
    {
        lscpu | grep -E "Model name|^CPU\(s\)|Thread" || true
        echo "bf16 flags: $(grep -o -w -E 'amx_bf16|avx512_bf16' /proc/cpuinfo | sort -u | tr '\n' ' ')"
        python3 -c "from mdaq.hardware import cpu_fast_bf16; print('cpu_fast_bf16:', cpu_fast_bf16())"
        python3 -c "import torch, transformers, peft; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__)"
    } 2>&1 | tee "$out/machine.txt"
    set +e +o pipefail
    # the suite's own slow-probe default is replaced by the machine's real answer; workers x threads = the cores
    MDAQ_TEST_ASSETS=$assets MDAQ_TEST_BF16_PROBE=real timeout "${PYTEST_TIMEOUT:-420}" python3 -m pytest -q \
        -p no:cacheprovider -m "not slow" -n "${WORKERS:-8}" --timeout 300 --continue-on-collection-errors \
        --junitxml "$out/suite.xml" --durations 15 tests 2>&1 | tail -150 > "$out/suite.log"
    rc=${PIPESTATUS[0]}
    tail -60 "$out/suite.log"
    exit "$rc" ;;
*)
    echo "usage: $0 pack | run OUT_DIR | suite OUT_DIR" >&2; exit 2 ;;
esac
