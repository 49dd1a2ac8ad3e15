"""The GPU code path and `precision: auto` on a machine with an accelerator, in one short run.

Runs on tiny random models (``mdaq assets build tiny-llama tiny-bert``: a few MB, so they travel to a lent GPU
machine that cannot download anything) and checks, on each device present (``cpu`` always, ``cuda`` when torch sees
one):
- what ``precision: auto`` resolves to there, and a bf16 vs fp32 square GEMM (is ``auto`` the faster one?);
- QSM training (``mdaq.quality.train.train_qsm``) learns the planted direction, and its record names the device and the
  resolved precision;
- LoRA training (``mdaq.training.lora.train_lora``) lowers its loss, and its record says the same;
- held-out scoring (``mdaq.evaluation.heldout.evaluate_heldout``) in the resolved precision tracks fp32 on the same
device.
Writes one JSON report (``--out``) and exits 1 when a check fails. Tiny models say nothing about speed at scale:
the GEMM ratio is the only timing it reports.

    python scripts/device_check.py --assets DIR --out report.json [--devices cpu,cuda]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO / "tests"))


def gemm_check(device: str, size: int) -> dict:
    """bf16 and fp32 GEMM rates on ``device`` and whether ``auto`` picked the faster."""
    import torch

    from mdaq.hardware import resolve_precision

    rates = {}
    for name, dt in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        gen = torch.Generator().manual_seed(0)
        a = torch.randn(size, size, generator=gen).to(device=device, dtype=dt)
        b = torch.randn(size, size, generator=gen).to(device=device, dtype=dt)
        n = 3 if device == "cpu" and name == "bf16" else 20
        a @ b
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        best = float("inf")
        for _ in range(n):
            t0 = time.perf_counter()
            a @ b
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - t0)
        rates[name] = 2 * size**3 / best / 1e9
    auto = resolve_precision("auto", device)
    faster = "bf16" if rates["bf16"] > rates["fp32"] else "fp32"
    return {
        "size": size,
        "gflops": {k: round(v, 1) for k, v in rates.items()},
        "bf16_over_fp32": round(rates["bf16"] / rates["fp32"], 3),
        "auto": auto,
        "auto_picks_faster": auto == faster,
    }


def qsm_check(encoder: Path, device: str, work: Path) -> dict:
    from conftest import planted_rows

    from mdaq.config import QSMConfig
    from mdaq.quality.evaluate import evaluate_pairs
    from mdaq.quality.train import train_qsm

    cfg = QSMConfig(
        lr=2e-3,
        epochs=4,
        batch_size=8,
        max_len=32,
        warmup_ratio=0.0,
        checkpoint_every=0,
        freeze_embeddings=False,
        device=device,
    )
    rows = planted_rows()
    model = train_qsm(encoder, rows, cfg, work / f"qsm-{device}", seed=0)
    rec = model.train_record_
    acc = evaluate_pairs(model.score, rows)["pairwise_accuracy"]
    losses = rec["losses"]
    return {
        "hardware": rec["hardware"],
        "first_losses": losses[:3],
        "last_losses": losses[-3:],
        "pairwise_accuracy": acc,
        "ok": acc >= 0.9 and sum(losses[-3:]) < sum(losses[:3]) and rec["hardware"]["device"].startswith(device),
    }


def lora_check(base: Path, device: str, work: Path) -> dict:
    import numpy as np

    from mdaq.config import EvaluateConfig, TrainConfig
    from mdaq.evaluation.heldout import evaluate_heldout
    from mdaq.training.lora import train_lora
    from mdaq.types import Sample

    samples = [Sample.create("fr", f"Répète le mot {i}.", "", f"mot {i} " * 3) for i in range(12)]
    cfg = TrainConfig(lora_r=4, lr=5e-3, epochs=3, batch_size=4, max_seq_len=64, warmup_ratio=0.0, device=device)
    out = train_lora(base, samples, cfg, work / f"lora-{device}", seed=0)
    rec = json.loads((out / "train_record.json").read_text())
    rows = [
        {"instruction": s.instruction, "input": "", "chosen": s.output, "rejected": "zzz qqq " * 3} for s in samples
    ]
    scores = {
        p: evaluate_heldout(base, out, rows, EvaluateConfig(batch_size=4, max_seq_len=64, device=device, precision=p))
        for p in ("auto", "fp32")
    }
    losses = rec["losses"]
    rel = abs(scores["auto"]["ref_nll"] - scores["fp32"]["ref_nll"]) / scores["fp32"]["ref_nll"]
    return {
        "hardware": rec["hardware"],
        "first_losses": losses[:3],
        "last_losses": losses[-3:],
        "ref_nll": {p: s["ref_nll"] for p, s in scores.items()},
        "eval_hardware": scores["auto"].get("hardware"),
        "ref_nll_rel_diff_auto_vs_fp32": rel,
        "ok": bool(np.mean(losses[-3:]) < np.mean(losses[:3]) and rel < 0.05),
    }


def main(argv: list[str] | None = None) -> int:
    import torch

    from mdaq.hardware import hardware_record, resolve_precision

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--assets", type=Path, required=True, help="folder holding tiny-llama/ and tiny-bert/")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--devices", default="cpu,cuda", help="comma list; cuda is skipped where torch sees no GPU")
    ap.add_argument("--gemm", type=int, default=2048)
    args = ap.parse_args(argv)

    devices = [d for d in args.devices.split(",") if d != "cuda" or torch.cuda.is_available()]
    report: dict = {"torch": torch.__version__, "devices": {}}
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        for dev in devices:
            t0 = time.perf_counter()
            entry = {"hardware": hardware_record(dev, "auto", resolve_precision("auto", dev))}
            entry["gemm"] = gemm_check(dev, args.gemm if dev != "cpu" else min(args.gemm, 1024))
            entry["qsm"] = qsm_check(args.assets / "tiny-bert", dev, Path(tmp))
            entry["lora"] = lora_check(args.assets / "tiny-llama", dev, Path(tmp))
            entry["seconds"] = round(time.perf_counter() - t0, 1)
            ok &= entry["gemm"]["auto_picks_faster"] and entry["qsm"]["ok"] and entry["lora"]["ok"]
            report["devices"][dev] = entry
            print(json.dumps({dev: entry}, indent=1, default=str), flush=True)
    report["ok"] = ok
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1, default=str))
    print("device_check:", "ok" if ok else "FAILED", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
