"""The Superficial Alignment Hypothesis study (the paper's Fig. 4): is a small curated subset as good as more,
unfiltered data? Models are trained on growing subsets, curated (``mdaq_das``) and unfiltered (``random``), per
language, up to the full pool; the curve is a judge-free quality metric against training-set size.

The main grid already trains every method at ``select.budget`` and ``full`` on the whole pool; the ``sah`` stage adds
the sizes in ``sah.sizes`` for the methods in ``sah.methods`` (select, train, evaluate in one stage, no adapter kept).
The curves and their figure are :mod:`mdaq.reporting.sah`.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

from mdaq.config import Params
from mdaq.io import read_json, write_json

log = logging.getLogger(__name__)


def run_sah_point(
    method: str,
    size: int,
    lang: str,
    *,
    base_model: str | Path,
    pool_path: str | Path,
    features_dir: str | Path,
    ifd_dir: str | Path,
    heldout_path: str | Path,
    params: Params,
    out_path: str | Path,
) -> dict[str, Any]:
    """Select ``size`` samples of ``lang``'s pool with ``method``, train an adapter on them, evaluate it on the
    held-out pairs (``params.evaluate``), and write the metrics to ``out_path``."""
    from mdaq import SELECTORS, get_selector
    from mdaq.evaluation.stage import judge_free_metrics, share_revised
    from mdaq.features.pool import load_pool
    from mdaq.io import write_items
    from mdaq.training.lora import train_lora

    pool = load_pool(lang, pool_path, features_dir, ifd_dir, scorer=SELECTORS.get(method).scorer)
    if size > len(pool):
        raise ValueError(f"sah size {size} exceeds the {len(pool)}-sample pool of {lang}; lower sah.sizes")
    selector = get_selector(method, params.selectors[method], random_state=params.seeds[0])
    chosen = [pool.samples[i] for i in selector.select(pool, size)]
    out_path = Path(out_path)
    with tempfile.TemporaryDirectory(prefix="mdaq-sah-") as tmp:
        adapter = train_lora(
            base_model,
            chosen,
            params.train,
            Path(tmp) / "adapter",
            seed=params.seeds[0],
            ckpt_dir=out_path.with_name(out_path.name + ".ckpt"),
        )
        record = read_json(Path(adapter) / "train_record.json")
        metrics, items = judge_free_metrics(base_model, adapter, heldout_path, params.evaluate)
    metrics.update(
        method=method,
        lang=lang,
        size=len(chosen),
        share_revised=share_revised(chosen),
        epochs=params.train.epochs,
        optimizer_steps=record["n_steps"],  # equal epochs: a bigger set also trains more steps (shown beside it)
        share_truncated=record["share_truncated"],
    )
    write_items(out_path.with_name("items.csv"), items)
    write_json(out_path, metrics)
    return metrics
