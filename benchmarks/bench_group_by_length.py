"""LoRA training with length-grouped batches (``train.group_by_length``) against plain shuffled batches, same run.

Both runs train the default base model on the same pool samples, one epoch, same seed and config except
``group_by_length``; the script prints, for each, the share of batch positions that are padding, the wall time
of ``mdaq.training.lora.train_lora`` (model load included) and the ratio plain / grouped. A ratio above 1 means the
grouped batches are faster. Both sides get an untimed warm-up run, then ``--repeats`` rounds in alternating
order; the best time of each is compared (benchmarks/_timing.py).

    .venv/bin/python benchmarks/bench_group_by_length.py [--pool artifacts/data/pool/de.jsonl] [--n 32] [--k 16]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
from pathlib import Path

import numpy as np
from _timing import compare, machine

from mdaq import load_params
from mdaq.io import read_samples
from mdaq.models.lm import encode_pair, epoch_batches, format_prompt


def padding_share(lengths: list[int], batch_size: int, k: int, seed: int) -> float:
    """Share of padded positions over one epoch's batches."""
    batches = epoch_batches(lengths, batch_size, seed, 0, k)
    lengths_a = np.asarray(lengths)
    padded = sum(int(lengths_a[b].max()) * len(b) for b in batches)
    return 1 - lengths_a.sum() / padded


def main() -> None:
    from transformers import AutoTokenizer

    from mdaq.training.lora import train_lora

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="artifacts/base/gemma-3-270m")
    ap.add_argument("--pool", default="artifacts/data/pool/de.jsonl")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--n", type=int, default=32, help="training samples (the first n of the pool)")
    ap.add_argument("--k", type=int, default=16, help="group_by_length of the grouped run")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()

    params = load_params(args.params)
    samples = read_samples(args.pool)[: args.n]
    tok = AutoTokenizer.from_pretrained(args.model)
    base_cfg = dataclasses.replace(params.train, checkpoint_every=0)
    lengths = [
        len(encode_pair(tok, format_prompt(s.instruction, s.input), s.output, base_cfg.max_seq_len).input_ids)
        for s in samples
    ]
    out: dict = {"machine": machine(), "n": len(samples), "batch_size": base_cfg.batch_size}
    records: dict = {}

    def run(name: str, k: int):
        def fn() -> None:
            cfg = dataclasses.replace(base_cfg, group_by_length=k)
            with tempfile.TemporaryDirectory() as tmp:
                adapter = train_lora(args.model, samples, cfg, Path(tmp) / "adapter", seed=params.seed)
                records[name] = json.loads((adapter / "train_record.json").read_text(encoding="utf-8"))

        return fn

    sides = {"plain": 0, "grouped": args.k}
    t = compare({name: run(name, k) for name, k in sides.items()}, repeats=args.repeats)
    out["precision"] = records["plain"]["hardware"]["precision"]
    for name, k in sides.items():
        out[name] = {
            "group_by_length": k,
            "padding_share": round(padding_share(lengths, base_cfg.batch_size, k, params.seed), 3),
            "best_s": round(t[name]["best_s"], 1),
            "median_s": round(t[name]["median_s"], 1),
            "runs": t[name]["runs"],
            "mean_loss": round(float(np.mean(records[name]["losses"])), 4),
        }
    out["speedup_grouped_vs_plain"] = round(out["plain"]["best_s"] / out["grouped"]["best_s"], 2)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
