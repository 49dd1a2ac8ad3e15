"""LoRA training and held-out scoring of the base model against the GEMM floor, in the precision `auto` picks.

Measures this machine's square-GEMM rate in the chosen precision (``--precision``, default what ``auto``
resolves to here; the better of two sizes), then times, through the stages' own code and with the default
profile's settings (params.yaml):
- LoRA training: ``mdaq.training.lora.train_lora`` on ``--train-samples`` pool samples (``train.batch_size``,
  ``train.max_seq_len``, ``group_by_length``), after an untimed warm-up run;
- held-out scoring, forward only: ``mdaq.evaluation.heldout.encoded_logprobs`` on ``--pairs`` held-out pairs (chosen
and
  rejected, ``evaluate.batch_size``, ``evaluate.max_seq_len``), after an untimed warm-up batch;
and prints achieved FLOP/s as a fraction of the GEMM rate (goal: >= 0.4 for both).

FLOPs count useful work only, on real (unpadded) tokens: per token ``2·N_body`` forward (``N_body`` = parameters
outside the embedding, which is a lookup) plus attention ``4·n_layers·d_attn·T`` for a sequence of ``T`` tokens
(scores and weighted sum, causal half not subtracted: an upper bound the kernels actually compute); per response
token ``2·d·V`` for the LM head, computed only at response positions. Training adds the backward pass's input
gradients (the same again: frozen weights get no weight gradients; LoRA's own are negligible), i.e. 2x forward.
What limits the fraction is reported beside it: padding share, the LM head's share of the FLOPs, and (with
``--profile``) the share of time in matmul kernels.

    .venv/bin/python benchmarks/bench_lm.py [--precision fp32] [--profile]
Needs the default profile's model folder and data (`dvc repro assets prepare`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

from _timing import gemm_gflops, machine, require

from mdaq.config import load_params
from mdaq.hardware import resolve_precision


def model_shape(model) -> dict[str, int]:
    """Parameter counts and sizes that the FLOP count needs."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    cfg = base.config
    emb = base.get_input_embeddings().weight
    n_body = sum(p.numel() for n, p in base.model.named_parameters() if "embed_tokens" not in n)
    heads = getattr(cfg, "num_attention_heads", 1)
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
    return {
        "n_body": int(n_body),
        "d": int(emb.shape[1]),
        "vocab": int(emb.shape[0]),
        "n_layers": int(cfg.num_hidden_layers),
        "d_attn": int(heads * head_dim),
    }


def forward_flops(shape: dict[str, int], lengths: list[int], n_response: list[int]) -> float:
    """Useful forward FLOPs of sequences of ``lengths`` tokens with ``n_response`` scored tokens each."""
    body = sum(2 * shape["n_body"] * t + 4 * shape["n_layers"] * shape["d_attn"] * t * t for t in lengths)
    return float(body + 2 * shape["d"] * shape["vocab"] * sum(n_response))


def padding_share(lengths: list[int], batches: list) -> float:
    """Share of computed positions that are padding, for batches of indices into ``lengths``."""
    real = sum(lengths[i] for b in batches for i in b)
    computed = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    return 1 - real / max(computed, 1)


MATMUL_OPS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::_scaled_dot_product_flash_attention_for_cpu")


def rate_row(lengths: list[int], batches: list, seconds: float, flops: float, head: float, floor: float) -> dict:
    """Tokens, time, achieved FLOP/s, its fraction of the GEMM ``floor`` (FLOP/s), padding and LM-head shares."""
    return {
        "tokens": sum(lengths),
        "seconds": round(seconds, 2),
        "tokens_per_s": round(sum(lengths) / seconds, 1),
        "achieved_gflops": round(flops / seconds / 1e9, 1),
        "floor_fraction": round(flops / seconds / floor, 3),
        "padding_share": round(padding_share(lengths, batches), 3),
        "lm_head_flop_share": round(head / flops, 3),
    }


def matmul_share(fn) -> float:
    """Share of CPU time that ``fn`` spends in matmul kernels (torch.profiler, self time)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    mm = sum(e.self_cpu_time_total for e in events if e.key in MATMUL_OPS)
    return mm / max(total, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--base", default=None, help="model folder (default: artifacts/base/<base_model>)")
    ap.add_argument("--pool", default="artifacts/data/pool/de.jsonl")
    ap.add_argument("--heldout", default="artifacts/data/heldout/de.jsonl")
    ap.add_argument("--train-samples", type=int, default=24)
    ap.add_argument("--pairs", type=int, default=24)
    ap.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"))
    ap.add_argument("--profile", action="store_true", help="also report the share of time in matmul kernels")
    args = ap.parse_args()
    from mdaq.io import read_jsonl, read_samples
    from mdaq.models.lm import (
        encode_pair,
        encoded_logprobs,
        epoch_batches,
        format_prompt,
        length_batches,
        load_causal_lm,
    )
    from mdaq.training.lora import train_lora

    params = load_params(args.params)
    base = require(args.base or f"artifacts/base/{params.base_model}", "dvc repro assets")
    precision = resolve_precision(args.precision, "cpu")
    sizes = (1024, 2048) if precision == "fp32" else (512,)  # emulated bf16: a 2048 GEMM alone takes ~10 s
    floor = max(gemm_gflops(precision, n) for n in sizes) * 1e9  # the faster size: a conservative floor
    tok, model = load_causal_lm(base, "cpu")
    shape = model_shape(model)
    res: dict = {
        "machine": machine(),
        "precision": precision,
        "model": base.name,
        **shape,
        "gemm_gflops": round(floor / 1e9, 1),
    }

    # ---- LoRA training, the stage's own loop -----------------------------------------------------------------------
    tcfg = dataclasses.replace(params.train, precision=precision, checkpoint_every=0, epochs=1)
    samples = read_samples(require(args.pool, "dvc repro prepare"))[: args.train_samples]
    enc = [encode_pair(tok, format_prompt(s.instruction, s.input), s.output, tcfg.max_seq_len) for s in samples]
    lengths, resp = [len(e.input_ids) for e in enc], [e.n_response for e in enc]
    with tempfile.TemporaryDirectory() as tmp:
        train_lora(base, samples[: tcfg.batch_size], tcfg, Path(tmp) / "warm", seed=0)  # warm-up
        out = train_lora(base, samples, tcfg, Path(tmp) / "timed", seed=0)
        seconds = json.loads((out / "train_record.json").read_text())["seconds_this_run"]
    flops = 2 * forward_flops(shape, lengths, resp)  # forward + input-gradient backward
    batches = epoch_batches(lengths, tcfg.batch_size, 0, 0, tcfg.group_by_length)
    head = 4 * shape["d"] * shape["vocab"] * sum(resp)
    res["train"] = {"samples": len(samples), **rate_row(lengths, batches, seconds, flops, head, floor)}

    # ---- held-out scoring, forward only -----------------------------------------------------------------------------
    ecfg = params.evaluate
    rows = read_jsonl(require(args.heldout, "dvc repro prepare"))[: args.pairs]
    enc = [
        encode_pair(tok, format_prompt(r["instruction"], r.get("input", "")), r[k], ecfg.max_seq_len)
        for r in rows
        for k in ("chosen", "rejected")
    ]
    lengths, resp = [len(e.input_ids) for e in enc], [e.n_response for e in enc]
    encoded_logprobs(model, tok, enc[: ecfg.batch_size], ecfg.batch_size, precision)  # warm-up
    t0 = time.perf_counter()
    encoded_logprobs(model, tok, enc, ecfg.batch_size, precision)
    seconds = time.perf_counter() - t0
    flops = forward_flops(shape, lengths, resp)
    batches = list(length_batches(lengths, ecfg.batch_size))
    head = 2 * shape["d"] * shape["vocab"] * sum(resp)
    res["score"] = {"sequences": len(enc), **rate_row(lengths, batches, seconds, flops, head, floor)}
    if args.profile:
        res["score"]["matmul_time_share"] = round(
            matmul_share(lambda: encoded_logprobs(model, tok, enc[: 2 * ecfg.batch_size], ecfg.batch_size, precision)),
            3,
        )
    res["goal"] = "floor_fraction >= 0.4 for train and score"
    res["goal_met"] = bool(res["train"]["floor_fraction"] >= 0.4 and res["score"]["floor_fraction"] >= 0.4)
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
