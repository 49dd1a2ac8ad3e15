"""bf16 against fp32 on this machine, and whether `precision: auto` (mdaq.hardware) picks the faster one.

Four workloads, each run in both precisions in the same process, warmed up, in alternating order, best of
``--repeats`` (benchmarks/_timing.py; a side more than 10x slower than the other is timed once):
- a square GEMM (``--gemm`` wide);
- a QSM training step (me5-small, triplet loss, ``--qsm-batch`` rows of ``--qsm-len`` tokens, AdamW);
- a LoRA training step (the default base model, ``--lora-batch`` samples of ``--lora-len`` tokens, AdamW);
- held-out scoring (forward only, LM head on response tokens: ``mdaq.models.lm.response_logprobs``).
Prints each ratio (fp32 seconds / bf16 seconds: > 1 means bf16 is faster), what ``auto`` resolved to, and
``auto_picks_faster`` per workload; exits 1 if ``auto`` chose the slower precision for any model workload by more
than the noise margin (``--margin``). ``--shapes auto`` times the stages' own batch shapes where ``auto`` is bf16,
and small ones where bf16 is emulated (an AVX2-only CPU, ~100x slower: the stage-sized bf16 side would take an hour).

    .venv/bin/python benchmarks/bench_precision.py [--repeats 3]
Needs the default profile's model folders and pool (`dvc repro assets assets_encoder prepare`), or
``--synthetic DIR`` (a folder holding the tiny-bert and tiny-llama builds): random-initialised models of the same
shapes as me5-small and Gemma-3-270M (their tokenizers' vocabularies kept: speed does not depend on the weights'
values) on synthetic text, for a machine that has no model folders (a lent GPU machine: scripts/device_check.sh).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from _timing import compare, gemm_gflops, machine, require

from mdaq.config import QSMConfig, TrainConfig
from mdaq.hardware import resolve_precision

# Batch shapes. stage: about the default profile's QSM (16 x 128-256 tokens) and LoRA/scoring (8 x 192-256) batches;
# small: a few tokens, where per-call overhead (autocast re-casting frozen weights) weighs more than the GEMMs, so
# bf16's gain shrinks or turns into a loss on an AMX CPU (benchmarks/README.md), while an emulated-bf16 CPU still
# shows its 20-100x loss in minutes.
SIZES = {
    "stage": {"qsm_batch": 16, "qsm_len": 128, "lora_batch": 8, "lora_len": 256},
    "small": {"qsm_batch": 4, "qsm_len": 64, "lora_batch": 2, "lora_len": 48},
}
SHAPES = {
    # me5-small (BertModel) and Gemma-3-270M's matmul shapes (a Llama of the same widths: same GEMMs, LM head incl.)
    "tiny-bert": {"hidden_size": 384, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 1536},
    "tiny-llama": {
        "hidden_size": 640,
        "num_hidden_layers": 18,
        "num_attention_heads": 4,
        "num_key_value_heads": 1,
        "head_dim": 256,
        "intermediate_size": 2048,
        "vocab_size": 262144,
    },
}


def synthetic_model(src: Path, out: Path) -> Path:
    """``src`` (a tiny build) with its config widened to :data:`SHAPES` and seeded random weights, saved to ``out``."""
    import shutil

    import torch
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

    shutil.copytree(src, out, ignore=shutil.ignore_patterns("*.safetensors"))
    cfg = AutoConfig.from_pretrained(src)
    for key, value in SHAPES[src.name].items():
        setattr(cfg, key, value)
    torch.manual_seed(0)
    cls = AutoModelForCausalLM if src.name == "tiny-llama" else AutoModel
    cls.from_config(cfg).save_pretrained(out)
    return out


def synthetic_text(n: int) -> tuple[list[dict], list]:
    """``n`` QSM revision rows and ``n`` pool samples of German-like text (lengths past the benchmark's caps)."""
    from mdaq.types import Sample

    words = "Die schnelle Antwort erklärt den Unterschied zwischen Wetter und Klima an einem Beispiel".split()
    text = [" ".join(words[(i + k) % len(words)] for k in range(120)) for i in range(n)]
    rows = [
        {
            "revised_instruction": f"Erkläre Thema {i}.",
            "revised_input": "",
            "revised_response": t,
            "raw_response": t[::-1],
        }
        for i, t in enumerate(text)
    ]
    return rows, [Sample.create("de", f"Erkläre Thema {i}.", "", t) for i, t in enumerate(text)]


def _rows(path: Path, n: int) -> list[dict]:
    from mdaq.io import read_jsonl

    return read_jsonl(path)[:n]


def qsm_step(encoder: Path, rows: list[dict], max_len: int):
    """A closure per precision running one QSM optimizer step on ``rows``."""
    import torch

    from mdaq.quality.model import QualityModel
    from mdaq.quality.train import batch_loss

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

    from mdaq.models.lm import collate, encode_pair, format_prompt, load_causal_lm, response_logprobs
    from mdaq.training.lora import add_lora

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
    ap.add_argument("--synthetic", type=Path, help="folder with tiny-bert/ and tiny-llama/: random models, no data")
    ap.add_argument("--gemm", type=int, default=1024)
    ap.add_argument(
        "--shapes",
        choices=("auto", *SIZES),
        default="auto",
        help="batch shapes: stage (the stages' own), small (a few tokens), auto: stage where bf16 is "
        "fast, small where it is emulated (its stage-sized side would take an hour)",
    )
    ap.add_argument("--qsm-batch", type=int, help="overrides --shapes")
    ap.add_argument("--qsm-len", type=int)
    ap.add_argument("--lora-batch", type=int)
    ap.add_argument("--lora-len", type=int)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--margin", type=float, default=0.05, help="relative difference treated as a tie")
    args = ap.parse_args()
    from mdaq.hardware import set_threads
    from mdaq.io import read_samples

    set_threads()  # as every stage does (OMP_NUM_THREADS respected)
    auto = resolve_precision("auto", "cpu")
    shapes = args.shapes if args.shapes != "auto" else ("stage" if auto == "bf16" else "small")
    for key, value in SIZES[shapes].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.synthetic:
        tmp = Path(tempfile.mkdtemp(prefix="bench_precision-"))
        encoder = synthetic_model(args.synthetic / "tiny-bert", tmp / "tiny-bert")
        base = synthetic_model(args.synthetic / "tiny-llama", tmp / "tiny-llama")
        qsm_rows, samples = synthetic_text(max(args.qsm_batch, args.lora_batch))
        qsm_rows = qsm_rows[: args.qsm_batch]
    else:
        encoder = require(args.encoder, "python -m mdaq assets build me5-small --root artifacts/encoders")
        base = require(args.base, "python -m mdaq assets build gemma-3-270m --root artifacts/base")
        qsm_rows = _rows(require(args.qsm_train, "dvc repro prepare"), args.qsm_batch)
        samples = read_samples(require(args.pool, "dvc repro prepare"))
    sizes = {k: getattr(args, k) for k in SIZES["stage"]}
    res: dict = {
        "machine": machine(),
        "synthetic": bool(args.synthetic),
        "shapes": sizes,
        "auto_resolves_to": auto,
        "workloads": {},
    }

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
