"""Train QSM variants on the prepared `qsm_train` split and report held-out pairwise accuracy (seen/unseen/all; all
pairs, length-matched and shorter revisions) on the QSM evaluation's pairs (`artifacts/data/qsm_heldout`).

Each argument is NAME=JSON, overrides of `params.yaml: qsm`. Needs `dvc repro prepare assets_encoder` first.
The comments on `qsm.lr` / `qsm.max_len` in profiles/default.yaml come from:

    .venv/bin/python scripts/qsm_sweep.py 'base={"lr": 2e-5, "max_len": 128}' 'A={"lr": 1e-4, "max_len": 128}' \
        'B={"lr": 1e-4, "max_len": 256}'
"""

from __future__ import annotations

import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

from mdaq.config import load_params
from mdaq.io import read_jsonl
from mdaq.quality.evaluate import score_table, summarize
from mdaq.quality.train import select_training_rows, train_qsm


def main(argv: list[str]) -> None:
    params = load_params("params.yaml")
    train = {f.stem: read_jsonl(f) for f in sorted(Path("artifacts/data/qsm_train").glob("*.jsonl"))}
    held = {f.stem: read_jsonl(f) for f in sorted(Path("artifacts/data/qsm_heldout").glob("*.jsonl"))}
    encoder = Path("artifacts/encoders") / params.qsm.encoder
    for arg in argv:
        name, overrides = arg.split("=", 1)
        cfg = dataclasses.replace(params.qsm, **json.loads(overrides))
        rows = select_training_rows(train, cfg, seed=params.seed)
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            model = train_qsm(encoder, rows, cfg, Path(tmp) / "qsm", seed=params.seed)
            seconds = time.perf_counter() - t0
            summary = summarize(score_table({"qsm": model.score}, held, cfg.unseen_langs), seed=params.seed)
        shown = summary[summary["stratum"].isin(["all", "matched", "shorter"])]
        acc = {f"{r.group}_{r.stratum}": round(r.pairwise_accuracy, 3) for r in shown.itertuples()}
        print(json.dumps({"name": name, "overrides": json.loads(overrides), "train_s": round(seconds), **acc}))


if __name__ == "__main__":
    main(sys.argv[1:])
