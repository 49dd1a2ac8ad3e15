"""LoRA training and generation throughput of the default base model against its FLOP floor, same run.

Measures the machine's matmul rate (fp32 and bf16 GEMMs), then
- training: a few LoRA steps on real MIDB pool samples (`mdaq.train.train_lora`), tokens/s, and the fraction of
  the floor reached, with the FLOPs per token counted as 4·N_body (forward 2N plus the input-gradient half of the
  backward; frozen weights get no weight gradients) plus 6·d·V per response token for the LM head (computed only
  on response positions, forward and backward);
- generation: greedy decoding at a given batch size (`mdaq.generate.Generator`), new tokens/s, and the fraction
  of the floor with 2·N_body + 2·d·V FLOPs per generated token.
A fraction near 1 means compute-bound at the GEMM rate; small fractions point at overheads (small matmuls,
Python, memory traffic).

    .venv/bin/python benchmarks/bench_lm.py [--model artifacts/base/gemma-3-270m] [--steps 3] [--new-tokens 16]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from mdaq.config import GenerateConfig, TrainConfig
from mdaq.lm import encode_pair, format_prompt, load_causal_lm


def gemm_gflops(dtype: str, size: int = 2048, reps: int = 5) -> float:
    """Measured GEMM rate (GFLOP/s) for ``dtype`` on this machine."""
    import torch

    dt = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype]
    a, b = torch.randn(size, size, dtype=dt), torch.randn(size, size, dtype=dt)
    a @ b
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * size**3 * reps / (time.perf_counter() - t0) / 1e9


def model_sizes(path: str) -> tuple[int, int, int]:
    """(non-embedding parameters, hidden size, vocabulary size) of a causal LM folder."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, use_safetensors=True)
    emb = model.get_input_embeddings().weight
    n_body = sum(p.numel() for p in model.parameters()) - emb.numel()
    return n_body, emb.shape[1], emb.shape[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="artifacts/base/gemma-3-270m")
    ap.add_argument("--pool", default="artifacts/data/pool/fr.jsonl")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-seq-len", type=int, default=192)
    ap.add_argument("--new-tokens", type=int, default=16)
    args = ap.parse_args()
    from mdaq.generate import Generator
    from mdaq.io import read_samples
    from mdaq.train import train_lora

    rate = {p: gemm_gflops(p) for p in ("fp32", "bf16")}
    n_body, d, vocab = model_sizes(args.model)
    samples = read_samples(args.pool)[: args.steps * args.batch_size]
    res: dict = {"model": Path(args.model).name, "n_body_params": n_body, "hidden": d, "vocab": vocab,
                 "gemm_gflops": {k: round(v, 1) for k, v in rate.items()}}  # fmt: skip
    tok, _ = load_causal_lm(args.model)
    enc = [encode_pair(tok, format_prompt(s.instruction, s.input), s.output, args.max_seq_len) for s in samples]
    tokens, resp = sum(len(e.input_ids) for e in enc), sum(e.n_response for e in enc)
    with tempfile.TemporaryDirectory() as tmp:
        for precision in ("fp32", "bf16"):
            cfg = TrainConfig(batch_size=args.batch_size, max_seq_len=args.max_seq_len, precision=precision)
            out = train_lora(args.model, samples, cfg, Path(tmp) / precision, seed=0)
            rec = json.loads((out / "train_record.json").read_text())
            flops = 4 * n_body * tokens + 6 * d * vocab * resp
            seconds = rec["seconds_this_run"]
            res[f"train_{precision}"] = {
                "tokens_per_s": round(tokens / seconds, 1),
                "floor_fraction": round(flops / seconds / (rate[precision] * 1e9), 3),
            }
    prompts = [format_prompt(s.instruction, s.input) for s in samples[: args.batch_size]]
    for precision in ("fp32", "bf16"):
        gen = Generator(args.model, None, GenerateConfig(max_new_tokens=args.new_tokens, batch_size=args.batch_size,
                                                         precision=precision))  # fmt: skip
        gen(prompts[:2])  # warm-up
        t0 = time.perf_counter()
        gen(prompts)
        seconds = time.perf_counter() - t0
        new_tokens = len(prompts) * args.new_tokens  # upper bound: early EOS makes the rate conservative
        flops = (2 * n_body + 2 * d * vocab) * new_tokens
        res[f"generate_{precision}"] = {
            "new_tokens_per_s": round(new_tokens / seconds, 1),
            "floor_fraction": round(flops / seconds / (rate[precision] * 1e9), 4),
        }
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
