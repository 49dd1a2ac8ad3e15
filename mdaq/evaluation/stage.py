"""The ``evaluate`` stage as library calls: judge-free metrics of one (method, language) model, its answers to the
translated benchmarks, and their language fidelity. ``notebooks/30_run.ipynb`` and the SAH study call these."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from mdaq.config import EvaluateConfig, GenerateConfig, Params
from mdaq.io import ITEM_COLUMNS


def run_model(
    base_model: str | Path,
    adapter_dir: str | Path | None,
    params: Params,
    *,
    trained: tuple[Any, Any] | None = None,
) -> tuple[Any, Any] | None:
    """The (tokenizer, model) that one run's scoring and generation share, or ``None`` where they cannot share one
    (``evaluate.engine: lm_eval`` loads its own; the two stages on different devices).

    ``trained`` is the model :func:`mdaq.training.lora.train_lora` just trained (its ``on_model`` hook): used as it
    is when it sits on the evaluation device with float32 base weights, i.e. when it equals what loading the base
    model and the saved adapter would give; otherwise (or with no ``trained``) the model is loaded from disk.
    """
    import logging

    from mdaq.models.lm import load_causal_lm, resolve_device

    cfg, gcfg = params.evaluate, params.generate
    device = resolve_device(cfg.device)
    if cfg.engine != "mdaq" or device != resolve_device(gcfg.device):
        return None
    if trained is not None and params.train.base_dtype == "fp32":
        import torch

        if next(trained[1].parameters()).device.type == torch.device(device).type:
            logging.getLogger(__name__).info("scoring with the model just trained (not reloaded from %s)", adapter_dir)
            return trained
    return load_causal_lm(base_model, device, adapter=adapter_dir)


def judge_free_metrics(
    base_model: str | Path,
    adapter_dir: str | Path | None,
    heldout_path: str | Path,
    cfg: EvaluateConfig,
    *,
    loaded: tuple[Any, Any] | None = None,
) -> tuple[dict[str, Any], Any]:
    """Expert-preference accuracy and reference NLL on the held-out pairs with the engine ``cfg.engine`` names:
    ``lm_eval`` (the lm-eval tasks, :func:`mdaq.evaluation.harness.run_judge_free`) or ``mdaq``
    (:func:`mdaq.evaluation.heldout.evaluate_heldout`, which can reuse a ``loaded`` (tokenizer, model)).
    ``adapter_dir=None`` scores the base model itself (the leaderboard's ``base`` row).

    Returns
    -------
    (metrics, items)
        Flat metrics (with ``engine``), computed from the per-item records ``items`` (a DataFrame with
        :data:`mdaq.io.ITEM_COLUMNS`) whichever engine scored them.
    """
    from mdaq.evaluation.heldout import metrics_from_items

    if cfg.engine == "lm_eval":
        from mdaq.evaluation.harness import run_judge_free

        out = run_judge_free(
            base_model,
            adapter_dir,
            heldout_path,
            batch_size=cfg.batch_size,
            device=cfg.device,
            max_seq_len=cfg.max_seq_len,
            precision=cfg.precision,
            items=True,
        )
        extra = {k: out[k] for k in ("lm_eval_version", "tokenization", "hardware")}
    elif cfg.engine == "mdaq":
        from mdaq.evaluation.heldout import evaluate_heldout
        from mdaq.io import read_jsonl

        out = evaluate_heldout(
            base_model, adapter_dir, read_jsonl(heldout_path), cfg, loaded=loaded, return_items=True
        )
        extra = {"hardware": out["hardware"]}
    else:
        raise ValueError(f"evaluate.engine must be 'lm_eval' or 'mdaq', got {cfg.engine!r}")
    items = pd.DataFrame(out["items"], columns=list(ITEM_COLUMNS))
    return {**metrics_from_items(items), **extra, "engine": cfg.engine}, items


def share_revised(samples: Sequence[Any]) -> float:
    """Share of expert-revised samples (``meta["is_revised"]``, an evaluation label) among ``samples``; NaN when
    there are none or a sample carries no label. The one definition every report uses (metrics.json, the SAH
    points, :func:`mdaq.evaluation.intrinsic.selection_metrics`, the selection notebooks)."""
    if not samples or not all("is_revised" in s.meta for s in samples):
        return math.nan  # one object: results holding it compare equal
    return sum(bool(s.meta["is_revised"]) for s in samples) / len(samples)


def run_metrics(
    method: str,
    lang: str,
    *,
    base_model: str | Path,
    adapter_dir: str | Path | None,
    heldout_path: str | Path,
    pool_path: str | Path,
    selection_path: str | Path | None,
    params: Params,
    out_path: str | Path,
    seed: int | None = None,
    loaded: tuple[Any, Any] | None = None,
) -> dict[str, Any]:
    """:func:`judge_free_metrics` plus what the leaderboard needs to place the row (selection size, share of revised
    samples, selector version and params, training seed, provenance), written to ``out_path`` (``metrics.json``),
    and the per-item records beside it (``items.csv``, :func:`mdaq.evaluation.heldout.write_items`).

    ``adapter_dir`` and ``selection_path`` ``None``: the un-tuned base model (method ``base``, nothing selected).
    A submission's method (``sub.<name>``, :func:`mdaq.names.submission_method`) has no selector: its role is
    ``method`` and its selector fields are empty. ``pool_sha256`` is the sha256 of the language's frozen pool file
    (:func:`mdaq.data.frozen.frozen_sha256`), so the leaderboard can refuse a run made on another pool.
    """
    from mdaq.data.frozen import frozen_sha256
    from mdaq.io import read_samples, write_items, write_json
    from mdaq.names import submission_name
    from mdaq.provenance import provenance
    from mdaq.selectors import SELECTORS, read_selection

    metrics, items = judge_free_metrics(base_model, adapter_dir, heldout_path, params.evaluate, loaded=loaded)
    if selection_path is None:
        selected: list[Any] = []
        selector: dict[str, Any] = {"selector_params": {}, "selector_version": "", "role": "base"}
    else:
        by_id = {s.id: s for s in read_samples(pool_path)}
        selected = [by_id[i] for i in read_selection(selection_path)]
        if submission_name(method) is not None:
            selector = {"selector_params": {}, "selector_version": "", "role": "method"}
        else:
            cls = SELECTORS.get(method)
            selector = {"selector_params": params.selectors[method], "selector_version": cls.version, "role": cls.role}
    metrics.update(
        method=method,
        lang=lang,
        seed=params.seed if seed is None else int(seed),
        budget=params.select.budget,
        n_selected=len(selected),
        share_revised=share_revised(selected),
        **selector,
        base_model=Path(base_model).name,
        pool_sha256=frozen_sha256(pool_path, lang),
        **provenance(params, method),
    )
    write_items(Path(out_path).with_name("items.csv"), items)
    write_json(out_path, metrics)
    return metrics


def generate_answers(
    method: str,
    lang: str,
    *,
    base_model: str | Path,
    adapter_dir: str | Path,
    midb_dir: str | Path,
    gen_dir: str | Path,
    cfg: GenerateConfig,
    seed: int,
    loaded: tuple[Any, Any] | None = None,
) -> tuple[list[dict], list[dict]]:
    """Answers to the first ``cfg.alpaca_eval_items`` translated AlpacaEval instructions and ``cfg.mt_bench_items``
    MT-Bench questions (0 = all), written to ``gen_dir`` (resumable); returns (alpaca rows, mt-bench rows)."""
    from mdaq.data.midb import load_alpaca_eval, load_mt_bench, midb_path
    from mdaq.evaluation.generate import Generator, generate_alpaca_eval, generate_mt_bench

    instructions = load_alpaca_eval(midb_path(midb_dir, "alpaca_eval", lang))
    questions, _ = load_mt_bench(midb_path(midb_dir, "mt_bench", lang))
    instructions = instructions[: cfg.alpaca_eval_items or None]
    questions = questions[: cfg.mt_bench_items or None]
    generator = Generator(base_model, adapter_dir, cfg, loaded=loaded)  # merges the adapter: scoring is done
    name = f"{method}-{lang}"
    alpaca = generate_alpaca_eval(
        generator, instructions, Path(gen_dir) / "alpaca_eval.json", generator=name, lang=lang, seed=seed
    )
    mt = generate_mt_bench(generator, questions, Path(gen_dir) / "mt_bench.jsonl", model_id=name, lang=lang, seed=seed)
    return alpaca, mt


def fidelity_summary(alpaca: Sequence[dict], mt: Sequence[dict], method: str, lang: str) -> dict[str, Any]:
    """Language fidelity of the answers: share detected in the target language, answer length, detected codes."""
    detected = [r["detected_lang"] for r in alpaca] + [d for r in mt for d in r["detected_lang"]]
    lengths = [len(r["output"]) for r in alpaca] + [len(t) for r in mt for t in r["choices"][0]["turns"]]
    return {
        "method": method,
        "lang": lang,
        "n_alpaca_eval": len(alpaca),
        "n_mt_bench": len(mt),
        "n_answers": len(detected),
        "share_target_lang": sum(d == lang for d in detected) / max(len(detected), 1),
        "mean_answer_chars": sum(lengths) / max(len(lengths), 1),
        "detected": dict(Counter(detected).most_common()),
    }
