"""bf16 against fp32 on this machine, and whether `precision: auto` (mdaq.hardware) picks the faster one.

Four workloads, each run in both precisions in the same process, warmed up, in alternating order, best of
``--repeats`` (benchmarks/_timing.py; a side more than 10x slower than the other is timed once):
- a square GEMM (``--gemm`` wide);
- a QSM training step (me5-small, triplet loss, ``--qsm-batch`` rows of ``--qsm-len`` tokens, AdamW);
- a LoRA training step (the default base model, ``--lora-batch`` samples of ``--lora-len`` tokens, AdamW);
- held-out scoring (forward only, LM head on response tokens: ``mdaq.lm.response_logprobs``).
Prints each ratio (fp32 seconds / bf16 seconds: > 1 means bf16 is faster), what ``auto`` resolved to, and
``auto_picks_faster`` per workload; exits 1 if ``auto`` chose the slower precision for any model workload by more
than the noise margin (``--margin``). The default sizes are small so that the emulated-bf16 side of an AVX2-only
CPU (~100x slower) finishes in a few minutes.

    .venv/bin/python benchmarks/bench_precision.py [--repeats 3]
Needs the default profile's model folders and pool (`dvc repro assets assets_encoder prepare`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from _timing import compare, gemm_gflops, machine, require

from mdaq.config import QSMConfig, TrainConfig
from mdaq.hardware import resolve_precision


def _rows(path: Path, n: int) -> list[dict]:
    from mdaq.io import read_jsonl

    return read_jsonl(path)[:n]


def qsm_step(encoder: Path, rows: list[dict], max_len: int):
    """A closure per precision running one QSM optimizer step on ``rows``."""
    import torch

    from mdaq.qsm_train import batch_loss
    from mdaq.quality import QualityModel

    cfg = QSMConfig(max_len=max_len, dropout=0.0)
    model = QualityModel(encoder, max_len=max_len, device="cpu", precision="fp32", dropout=0.0).load_encoder()
    model.model_.get_input_embeddings().weight.requires_grad_(False)
    model.model_.train()
    opt = torch.optim.AdamW([p for p in model.model_.parameters() if p.requires_grad], lr=1e-6)

    def make(precision: str):
        def step() -> None:
            model.precision_ = precision
            batch_loss(model, rows, cfg).backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        return step

    return make


def lora_steps(base: Path, samples: list, max_len: int, batch_size: int):
    """Closures per precision: one LoRA optimizer step, and one forward-only scoring pass of the same batch."""
    import torch

    from mdaq.lm import collate, encode_pair, format_prompt, load_causal_lm, response_logprobs
    from mdaq.train import add_lora

    tok, model = load_causal_lm(base, "cpu")
    model = add_lora(model, TrainConfig(lora_dropout=0.0))
    enc = [encode_pair(tok, format_prompt(s.instruction, s.input), s.output, max_len) for s in samples[:batch_size]]
    batch = collate(enc, tok.pad_token_id)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-6)

    def train(precision: str):
        def step() -> None:
            model.train()
            token_lp, _ = response_logprobs(model, batch, precision)
            (-token_lp.mean()).backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        return step

    def score(precision: str):
        def forward() -> None:
            model.eval()
            with torch.inference_mode():
                response_logprobs(model, batch, precision)

        return forward

    return train, score


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--encoder", default="artifacts/encoders/me5-small")
    ap.add_argument("--base", default="artifacts/base/gemma-3-270m")
    ap.add_argument("--qsm-train", default="artifacts/data/qsm_train/de.jsonl")
    ap.add_argument("--pool", default="artifacts/data/pool/de.jsonl")
    ap.add_argument("--gemm", type=int, default=1024)
    ap.add_argument("--qsm-batch", type=int, default=4)
    ap.add_argument("--qsm-len", type=int, default=64)
    ap.add_argument("--lora-batch", type=int, default=2)
    ap.add_argument("--lora-len", type=int, default=48)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--margin", type=float, default=0.05, help="relative difference treated as a tie")
    args = ap.parse_args()
    from mdaq.io import read_samples

    encoder = require(args.encoder, "python -m mdaq assets build me5-small --root artifacts/encoders")
    base = require(args.base, "python -m mdaq assets build gemma-3-270m --root artifacts/base")
    qsm_rows = _rows(require(args.qsm_train, "dvc repro prepare"), args.qsm_batch)
    samples = read_samples(require(args.pool, "dvc repro prepare"))
    auto = resolve_precision("auto", "cpu")
    res: dict = {"machine": machine(), "auto_resolves_to": auto, "workloads": {}}

    rates = {p: gemm_gflops(p, args.gemm) for p in ("fp32", "bf16")}
    res["workloads"]["gemm"] = {
        "fp32_gflops": round(rates["fp32"], 1),
        "bf16_gflops": round(rates["bf16"], 2),
        "ratio_bf16_speedup": round(rates["bf16"] / rates["fp32"], 4),
    }
    make_qsm = qsm_step(encoder, qsm_rows, args.qsm_len)
    train, score = lora_steps(base, samples, args.lora_len, args.lora_batch)
    for name, make in (("qsm_train_step", make_qsm), ("lora_train_step", train), ("heldout_scoring", score)):
        t = compare({p: make(p) for p in ("fp32", "bf16")}, repeats=args.repeats)
        res["workloads"][name] = {
            "fp32_s": round(t["fp32"]["best_s"], 4),
            "bf16_s": round(t["bf16"]["best_s"], 4),
            "runs": {p: t[p]["runs"] for p in t},
            "ratio_bf16_speedup": round(t["fp32"]["best_s"] / t["bf16"]["best_s"], 4),
        }
    ok = True
    for name, w in res["workloads"].items():
        faster = "bf16" if w["ratio_bf16_speedup"] > 1 else "fp32"
        tie = abs(w["ratio_bf16_speedup"] - 1) <= args.margin
        w["faster"] = "tie" if tie else faster
        w["auto_picks_faster"] = tie or faster == auto
        ok &= w["auto_picks_faster"] or name == "gemm"
    res["auto_picks_faster_everywhere"] = ok
    print(json.dumps(res, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
