"""Feature throughput of `mdaq features` on Ray Data (1 and 2 actors) against the in-process engine, on a synthetic
sharded pool built from MIDB texts, with the tiny random BERT (hidden 32, 2 layers, the real multilingual-e5 tokenizer)
as QSM and encoder, so what is timed is the engine and the per-sample work around the model (reading and checking
rows, tokenizing, writing), not the model's matmuls.

Every side runs as its own `python -m mdaq features` process (what a user runs), with the thread settings stated:

- ``local 1 thread``: the in-process engine, torch and the tokenizers on 1 thread;
- ``local 2 threads``: the in-process engine on every core (mdaq's default plan on this machine);
- ``ray 1 worker`` / ``ray 2 workers``: Ray started in the process, 1 CPU and 1 torch thread per actor.

A run's wall time includes imports, model loads and (Ray) starting Ray and its actors; the fixed part is measured on a
2-shard, 40-row pool and subtracted to give the steady rate. Sides are warmed up, alternate order, median of
``--repeats``. It also measures what the projection in docs/scale.md needs: MIDB's tokens per sample.

With ``--ifd-model DIR`` (``tiny``: the tiny random Llama with the real SmolLM2 tokenizer) every side computes IFD only
(``mdaq features --ifd-model``, fp32, the ``ifd`` defaults otherwise) instead of the QSM features.

    .venv/bin/python benchmarks/bench_scale_ray.py [--n 100000] [--shards 8] [--repeats 2] [--work DIR]
        [--ifd-model tiny|DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _timing import machine

REPO = Path(__file__).resolve().parents[1]
SIDES = {
    "local 1 thread": (["--engine", "local", "--threads", "1"], {"OMP_NUM_THREADS": "1", "RAYON_NUM_THREADS": "1"}),
    "local 2 threads": (["--engine", "local", "--threads", "2"], {"RAYON_NUM_THREADS": "2"}),
    "ray 1 worker": (["--engine", "ray", "--workers", "1", "--threads", "1"], {}),
    "ray 2 workers": (["--engine", "ray", "--workers", "2", "--threads", "1"], {}),
}


def midb_samples(midb: Path, n: int, langs: list[str] | None = None):
    """``n`` distinct samples cycling through MIDB's raw and revised texts (of ``langs``, default all languages); past
    the distinct texts (~50k over all languages), the instruction gets a ``(#k)`` suffix so every id stays unique."""
    from mdaq.data.midb import available_langs, load_pairs, midb_path, pair_problem
    from mdaq.types import Sample

    texts = []
    for lang in langs or available_langs(midb):
        for p in load_pairs(midb_path(midb, "MIDB_train", lang), lang):
            if pair_problem(p) is None:
                texts.append((lang, p.raw_instruction, p.raw_input, p.raw_response))
                texts.append((lang, p.revised_instruction, p.revised_input, p.revised_response))
    for k in range(n):
        lang, instr, inp, out = texts[k % len(texts)]
        rep = k // len(texts)
        yield Sample.create(lang, f"{instr} (#{rep})" if rep else instr, inp, out, source="midb-synthetic", meta={})


def build_qsm(work: Path) -> Path:
    """The tiny random-BERT QSM (also used as the encoder), cached in ``work``."""
    from mdaq.models.assets import build_asset
    from mdaq.quality.model import QualityModel

    qsm = work / "qsm"
    if not (qsm / "qsm_config.json").is_file():
        encoder = build_asset("tiny-bert", work / "tiny-bert")
        QualityModel(encoder, max_len=256, precision="fp32").load_encoder().save(qsm)
    return qsm


def build(work: Path, midb: Path, n: int, shards: int) -> tuple[Path, Path, Path]:
    """The pool (cached per n and shard count), the tiny QSM (also the encoder) and a 40-row pool for fixed costs."""
    from mdaq.shards import write_shards

    qsm = build_qsm(work)
    pool = work / f"pool-{n}-{shards}"
    if not (pool / "_manifest.json").is_file():
        write_shards(midb_samples(midb, n), pool, rows_per_shard=-(-n // shards))
    tiny = work / "pool-tiny"
    if not (tiny / "_manifest.json").is_file():
        write_shards(midb_samples(midb, 40), tiny, rows_per_shard=20)
    return pool, qsm, tiny


def run_side(name: str, pool: Path, qsm: Path, out: Path, ifd_model: Path | None = None) -> dict:
    """One `mdaq features` process on a fresh output folder: its wall time and its own `seconds`; with
    ``ifd_model``, IFD only."""
    args, env_extra = SIDES[name]
    models = ["--qsm", str(qsm), "--encoder", str(qsm), "--precision", "fp32", "--embed-max-len", "256"]
    if ifd_model is not None:
        models = ["--ifd-model", str(ifd_model), "--ifd-precision", "fp32"]
    shutil.rmtree(out, ignore_errors=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "MKL_", "RAYON_"))}
    env.update(env_extra, PYTHONPATH=str(REPO), TOKENIZERS_PARALLELISM="true")
    cmd = [
        sys.executable,
        "-m",
        "mdaq",
        "features",
        "--pool",
        str(pool),
        *models,
        "--out",
        str(out),
        *args,
    ]
    t0 = time.perf_counter()
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=REPO)
    wall = time.perf_counter() - t0
    if res.returncode:
        raise RuntimeError(f"{name} failed:\n{res.stderr[-3000:]}")
    return {"wall_s": wall, **json.loads(res.stdout.strip().splitlines()[-1])}


def tokens_per_sample(midb: Path, qsm: Path, n: int = 5000) -> dict:
    """MIDB's mean tokens per sample (multilingual-e5 tokenizer): untruncated, and what the features stage feeds its
    encoders at 256 tokens per text (QSM anchor + QSM response + embedding of the whole sample)."""
    import numpy as np
    from transformers import AutoTokenizer

    from mdaq.features.embed import sample_text
    from mdaq.quality.model import anchor_text

    tok = AutoTokenizer.from_pretrained(qsm)
    step = max(1, 50_000 // n)  # spread over languages: the texts cycle language by language
    samples = [s for k, s in enumerate(midb_samples(midb, 50_000)) if k % step == 0][:n]

    def count(texts, limit=None):
        ids = tok(texts, truncation=limit is not None, max_length=limit)["input_ids"]
        return np.array([len(x) for x in ids])

    whole = count([sample_text(s.instruction, s.input, s.output) for s in samples])
    fed = (
        count(["query: " + anchor_text(s.instruction, s.input) for s in samples], 256)
        + count(["passage: " + s.output for s in samples], 256)
        + count(["passage: " + sample_text(s.instruction, s.input, s.output) for s in samples], 256)
    )
    return {
        "n": len(samples),
        "mean_tokens": float(whole.mean()),
        "median_tokens": float(np.median(whole)),
        "mean_tokens_fed_at_256": float(fed.mean()),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=100_000, help="pool rows (the issue's full scale: 1000000)")
    p.add_argument("--shards", type=int, default=8, help="pool shards: the unit of work, >= 4x the workers")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--midb", default=str(REPO / "data" / "midb"))
    p.add_argument("--work", default="/tmp/mdaq-bench-scale-ray")
    p.add_argument("--sides", nargs="+", default=list(SIDES), choices=list(SIDES))
    p.add_argument("--ifd-model", default=None, help="time IFD with this causal LM folder ('tiny': a tiny random one)")
    a = p.parse_args()
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    pool, qsm, tiny = build(work, Path(a.midb), a.n, a.shards)
    print(f"pool: {a.n} rows in {a.shards} shards ({time.perf_counter() - t0:.0f} s to build or find)", flush=True)
    lm = None
    if a.ifd_model == "tiny":
        from mdaq.models.assets import build_asset

        lm = work / "tiny-llama"
        if not (lm / "asset.json").is_file():
            build_asset("tiny-llama", lm)
    elif a.ifd_model:
        lm = Path(a.ifd_model).resolve()
    fixed = {name: run_side(name, tiny, qsm, work / "out-tiny", lm)["wall_s"] for name in a.sides}
    walls: dict[str, list[float]] = {name: [] for name in a.sides}
    for r in range(a.repeats + 1):  # round 0 warms the page cache and is not counted
        for name in a.sides if r % 2 == 0 else a.sides[::-1]:
            res = run_side(name, pool, qsm, work / "out", lm)
            print(f"  round {r} {name}: {res['wall_s']:.1f} s", flush=True)
            if r:
                walls[name].append(res["wall_s"])
    base = statistics.median(walls[a.sides[0]])
    base_rate = a.n / max(base - fixed[a.sides[0]], 1e-9)
    rows = {}
    for name in a.sides:
        med = statistics.median(walls[name])
        rate = a.n / max(med - fixed[name], 1e-9)
        rows[name] = {
            "wall_median_s": round(med, 1),
            "fixed_s": round(fixed[name], 1),
            "rows_per_s_end_to_end": round(a.n / med, 1),
            "rows_per_s_steady": round(rate, 1),
            "us_per_row_steady": round(1e6 / rate, 1),
            "ratio_end_to_end": round(base / med, 3),
            "ratio_steady": round(rate / base_rate, 3),
        }
    report = {
        "machine": machine(),
        "n": a.n,
        "shards": a.shards,
        "features": f"ifd ({a.ifd_model})" if lm else "qsm + embedding (tiny BERT)",
        "repeats": a.repeats,
        "baseline": a.sides[0],
        "sides": rows,
        "midb_tokens": tokens_per_sample(Path(a.midb), qsm),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
