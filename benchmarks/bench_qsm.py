"""QSM scoring throughput vs sentence-transformers' `encode` on the same encoder, measured in the same run.

Scores N pool samples (instruction + response, from the fetched MIDB data) with `QualityModel.score_jsonl`
(streamed from disk, length-sorted batches, no gradients) and encodes the same 2N texts with
`SentenceTransformer.encode`, both in float32 after one untimed warm-up pass each; prints samples/s of both and
their ratio (goal: >= 1.0). Also reports QSM scoring with bfloat16 autocast (``precision: bf16``) and a few QSM
training steps (pairs/s) in both precisions.

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
from mdaq.data.midb import available_langs, load_pairs, midb_path
from mdaq.data.split import pool_sample
from mdaq.io import write_samples
from mdaq.quality.model import QualityModel, anchor_text
from mdaq.quality.train import train_qsm


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


def _best(fn, repeats: int) -> float:
    """Fastest of ``repeats`` timed calls (after one untimed warm-up call by the caller)."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--encoder", default="artifacts/encoders/me5-small")
    ap.add_argument("--midb", default="data/midb")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-len", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=2, help="timed repetitions of each side; the best one counts")
    ap.add_argument("--train-steps", type=int, default=5)
    args = ap.parse_args()
    samples = pool_samples(Path(args.midb), args.n)
    res: dict = {"n_samples": len(samples), "max_len": args.max_len, "batch_size": args.batch_size}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pool.jsonl"
        write_samples(path, samples)
        qsm = QualityModel(args.encoder, max_len=args.max_len).load_encoder()
        qsm_bf16 = QualityModel(args.encoder, max_len=args.max_len, precision="bf16").load_encoder()
        res["device"] = str(qsm.device)

        from sentence_transformers import SentenceTransformer

        st = SentenceTransformer(args.encoder, device=str(qsm.device))
        st.max_seq_length = args.max_len
        texts = [f"query: {anchor_text(s.instruction, s.input)}" for s in samples]
        texts += [f"passage: {s.output}" for s in samples]
        # warm-up: the first call of each kernel shape is slow on CPU; both sides get one untimed pass
        qsm.score_jsonl(path, batch_size=args.batch_size)
        st.encode(texts, batch_size=args.batch_size)
        t_qsm = _best(lambda: qsm.score_jsonl(path, batch_size=args.batch_size), args.repeats)
        t_st = _best(lambda: st.encode(texts, batch_size=args.batch_size), args.repeats)
        qsm_bf16.score_jsonl(path, batch_size=args.batch_size)
        t_bf16 = _best(lambda: qsm_bf16.score_jsonl(path, batch_size=args.batch_size), args.repeats)
        res.update(
            {
                "qsm_fp32_samples_per_s": round(len(samples) / t_qsm, 1),
                "sentence_transformers_fp32_samples_per_s": round(len(samples) / t_st, 1),
                "ratio_qsm_over_st": round(t_st / t_qsm, 3),
                "qsm_bf16_samples_per_s": round(len(samples) / t_bf16, 1),
                "ratio_qsm_bf16_over_st_fp32": round(t_st / t_bf16, 3),
            }
        )

        rows = [asdict(p) for p in load_pairs(midb_path(args.midb, "MIDB_train", "fr"), "fr")]
        for precision in ("fp32", "bf16"):
            cfg = QSMConfig(batch_size=16, max_len=args.max_len, epochs=1, precision=precision)
            train_rows = rows[: cfg.batch_size * args.train_steps]
            t0 = time.perf_counter()
            train_qsm(args.encoder, train_rows, cfg, Path(tmp) / f"qsm-{precision}", seed=0)
            res[f"train_{precision}_pairs_per_s"] = round(len(train_rows) / (time.perf_counter() - t0), 2)
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
