"""QSM scoring throughput vs sentence-transformers' `encode` on the same encoder, measured in the same run.

Scores N pool samples (instruction + response, from the fetched MIDB data) with `QualityModel.score_jsonl`
(streamed from disk, length-sorted batches, no gradients) and encodes the same 2N texts with
`SentenceTransformer.encode`; prints samples/s of both and their ratio (goal: >= 1.0). Also times a few QSM
training steps and prints training pairs/s.

    .venv/bin/python benchmarks/bench_qsm.py [--n 5000] [--encoder artifacts/encoders/me5-small]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from mdaq.config import QSMConfig
from mdaq.io import write_samples
from mdaq.midb import available_langs, load_pairs, midb_path
from mdaq.qsm_train import train_qsm
from mdaq.quality import QualityModel, anchor_text
from mdaq.split import pool_sample


def pool_samples(midb: Path, n: int) -> list:
    """Up to ``n`` samples: the raw and the revised version of MIDB pairs, across languages."""
    out = []
    for lang in available_langs(midb):
        for pair in load_pairs(midb_path(midb, "MIDB_train", lang), lang):
            for revised in (False, True):
                out.append(pool_sample(pair, revised, "bench"))
                if len(out) == n:
                    return out
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--encoder", default="artifacts/encoders/me5-small")
    ap.add_argument("--midb", default="data/midb")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--train-steps", type=int, default=5)
    args = ap.parse_args()
    samples = pool_samples(Path(args.midb), args.n)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pool.jsonl"
        write_samples(path, samples)
        qsm = QualityModel(args.encoder, max_len=128).load_encoder()
        t0 = time.perf_counter()
        qsm.score_jsonl(path, batch_size=args.batch_size)
        t_qsm = time.perf_counter() - t0

        from sentence_transformers import SentenceTransformer

        st = SentenceTransformer(args.encoder, device=str(qsm.device))
        st.max_seq_length = 128
        texts = [f"query: {anchor_text(s.instruction, s.input)}" for s in samples]
        texts += [f"passage: {s.output}" for s in samples]
        t0 = time.perf_counter()
        st.encode(texts, batch_size=args.batch_size)
        t_st = time.perf_counter() - t0

        rows = [asdict(p) for p in load_pairs(midb_path(args.midb, "MIDB_train", "fr"), "fr")]
        cfg = QSMConfig(batch_size=16, max_len=128, epochs=1)
        rows = rows[: cfg.batch_size * args.train_steps]
        t0 = time.perf_counter()
        train_qsm(args.encoder, rows, cfg, Path(tmp) / "qsm", seed=0)
        t_train = time.perf_counter() - t0
    res = {
        "n_samples": len(samples), "device": str(qsm.device),
        "qsm_samples_per_s": round(len(samples) / t_qsm, 1),
        "sentence_transformers_samples_per_s": round(len(samples) / t_st, 1),
        "ratio_qsm_over_st": round(t_st / t_qsm, 3),
        "train_pairs_per_s": round(len(rows) / t_train, 2),
    }  # fmt: skip
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
