"""Intrinsic selection metrics: what a selection contains, measured without training a model."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from mdaq.evaluation.stage import share_revised
from mdaq.selectors.algorithms import cluster_labels, default_n_clusters
from mdaq.types import Pool

__all__ = [
    "METRICS",
    "selection_metrics",
    "mean_pairwise_cosine_distance",
    "language_mix",
    "intrinsic_table",
    "intrinsic_report",
    "write_intrinsic",
    "plot_composition",
]

METRICS = (
    "n_selected",
    "share_revised",
    "cluster_coverage",
    "mean_pairwise_distance",
    "pool_mean_pairwise_distance",
    "mean_quality",
    "len_mean",
    "len_median",
    "len_p90",
)
NAN = float("nan")


def mean_pairwise_cosine_distance(embeddings: np.ndarray) -> float:
    """Mean of ``1 - cos(x_i, x_j)`` over the distinct pairs ``i < j`` of the rows of ``embeddings``.

    Rows are unit-normalised first (an all-zero row stays zero, i.e. has cosine 0 to everything). Uses the identity
    ``sum_{i != j} <x_i, x_j> = ||sum_i x_i||^2 - sum_i ||x_i||^2``, so it is exact, O(n d) and never forms the
    n x n similarity matrix. NaN for fewer than two rows.
    """
    x = np.asarray(embeddings, dtype=np.float64)
    m = len(x)
    if m < 2:
        return NAN
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    total = x.sum(axis=0)
    off_diagonal = float(total @ total - np.einsum("ij,ij->", x, x))
    return 1.0 - off_diagonal / (m * (m - 1))


def _check_indices(pool: Pool, indices) -> np.ndarray:
    idx = np.asarray(indices)
    if idx.size == 0:
        return np.zeros(0, dtype=np.int64)
    if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer):
        raise ValueError(f"indices must be a 1-D array of integers, got dtype {idx.dtype} and shape {idx.shape}")
    if idx.min() < 0 or idx.max() >= len(pool):
        raise ValueError(f"indices out of range for pool {pool.lang!r} of {len(pool)} samples")
    if len(np.unique(idx)) != len(idx):
        raise ValueError(f"indices for pool {pool.lang!r} contain repeats")
    return idx.astype(np.int64)


def _coverage(pool: Pool, idx: np.ndarray, clusters, n_clusters, random_state) -> float:
    if clusters is not None:
        labels = np.asarray(clusters)
        if labels.shape != (len(pool),):
            raise ValueError(f"clusters has shape {labels.shape}, expected ({len(pool)},) for pool {pool.lang!r}")
    elif pool.embeddings is None or len(pool) == 0:
        return NAN
    else:
        if n_clusters is not None and (
            isinstance(n_clusters, bool) or not isinstance(n_clusters, int | np.integer) or n_clusters < 1
        ):
            raise ValueError(f"n_clusters must be a positive integer or None, got {n_clusters!r}")
        k = int(n_clusters) if n_clusters is not None else default_n_clusters(len(pool))
        labels = cluster_labels(pool.embeddings, k, random_state=random_state)
    if len(labels) == 0:
        return NAN
    return len(np.unique(labels[idx])) / len(np.unique(labels))


def selection_metrics(
    pool: Pool,
    indices: Sequence[int] | np.ndarray,
    *,
    clusters: np.ndarray | None = None,
    n_clusters: int | None = None,
    random_state: int = 0,
) -> dict[str, float]:
    """Intrinsic metrics of one selection from one pool.

    Parameters
    ----------
    pool : Pool
        The candidates the selection was drawn from.
    indices : array-like of int
        Selected indices into ``pool.samples`` (unique; order does not matter).
    clusters : numpy.ndarray, optional
        One cluster label per pool sample; when given, used for ``cluster_coverage`` instead of k-means.
    n_clusters : int, optional
        k for the k-means labelling of ``pool.embeddings`` (default CaR's floor(sqrt(n / 2))).
    random_state : int
        Seed of the k-means labelling.

    Returns
    -------
    dict[str, float]
        Keys in :data:`METRICS` order:

        - ``n_selected``: number of selected samples;
        - ``share_revised``: mean of ``meta["is_revised"]`` over the selection (NaN unless every selected sample
          has that key, or when nothing is selected);
        - ``cluster_coverage``: share of the pool's clusters holding at least one selected sample (NaN without
          embeddings and ``clusters``, or for an empty pool);
        - ``mean_pairwise_distance``: mean cosine distance over distinct selected pairs (NaN below 2 or without
          embeddings), see :func:`mean_pairwise_cosine_distance`;
        - ``pool_mean_pairwise_distance``: the same over the whole pool, for reference (exact; the closed form is
          linear in the pool size, so no sub-sampling is needed);
        - ``mean_quality``: mean ``pool.quality`` over the selection (NaN without quality or selection);
        - ``len_mean``, ``len_median``, ``len_p90``: response length in characters (NaN for an empty selection;
          the 90th percentile interpolates linearly).

    Raises
    ------
    ValueError
        Indices out of range, repeated, or not integers; ``clusters`` of the wrong shape; a bad ``n_clusters``.
    """
    idx = _check_indices(pool, indices)
    chosen = [pool.samples[i] for i in idx]
    n = len(chosen)

    revised = share_revised(chosen)

    mean_pd = pool_pd = NAN
    if pool.embeddings is not None:
        emb = np.asarray(pool.embeddings)
        mean_pd = mean_pairwise_cosine_distance(emb[idx])
        pool_pd = mean_pairwise_cosine_distance(emb)

    mean_quality = NAN
    if pool.quality is not None and n:
        mean_quality = float(np.mean(np.asarray(pool.quality, dtype=np.float64)[idx]))

    lengths = np.array([len(s.output) for s in chosen], dtype=np.float64)
    len_mean, len_median, len_p90 = (
        (float(lengths.mean()), float(np.median(lengths)), float(np.percentile(lengths, 90))) if n else (NAN,) * 3
    )
    return {
        "n_selected": float(n),
        "share_revised": revised,
        "cluster_coverage": _coverage(pool, idx, clusters, n_clusters, random_state),
        "mean_pairwise_distance": mean_pd,
        "pool_mean_pairwise_distance": pool_pd,
        "mean_quality": mean_quality,
        "len_mean": len_mean,
        "len_median": len_median,
        "len_p90": len_p90,
    }


def language_mix(selected_by_lang: Mapping[str, int]) -> dict[str, float]:
    """Language shares of a multilingual selection and their normalised entropy.

    Parameters
    ----------
    selected_by_lang : Mapping[str, int]
        Number of selected samples per language code; a language listed with 0 counts as available but unused.

    Returns
    -------
    dict[str, float]
        ``share_<lang>`` per language (sorted; NaN when nothing is selected) and ``lang_entropy``: the Shannon
        entropy of the shares divided by ``log(number of languages)``, so 1.0 for an even mix and 0.0 when one
        language has everything (0.0 for a single language, NaN when nothing is selected).

    Raises
    ------
    ValueError
        A negative or non-integer count (the message names the language).
    """
    langs = sorted(selected_by_lang)
    for lang in langs:
        c = selected_by_lang[lang]
        if isinstance(c, bool) or not isinstance(c, int | np.integer) or c < 0:
            raise ValueError(f"selected_by_lang[{lang!r}] must be a non-negative integer, got {c!r}")
    counts = np.array([selected_by_lang[lang] for lang in langs], dtype=np.float64)
    total = counts.sum()
    if total == 0:
        return {**{f"share_{lang}": NAN for lang in langs}, "lang_entropy": NAN}
    p = counts / total
    nz = p[p > 0]
    entropy = -(nz * np.log(nz)).sum() / math.log(len(langs)) if len(langs) > 1 else 0.0
    shares = {f"share_{lang}": float(s) for lang, s in zip(langs, p, strict=True)}
    return {**shares, "lang_entropy": float(np.clip(entropy, 0.0, 1.0))}  # clip: float noise around 0 and 1


def intrinsic_table(rows: list[dict]) -> pd.DataFrame:
    """Long-format table of metric rows.

    Parameters
    ----------
    rows : list of dict
        Each ``{"method": ..., "lang": ..., **metrics}`` with numeric (or NaN) metric values.

    Returns
    -------
    pandas.DataFrame
        Columns ``method``, ``language``, ``metric``, ``value`` (float), one row per metric, sorted by method,
        language and metric, index reset.

    Raises
    ------
    ValueError
        A row without ``method`` or ``lang``, a non-numeric metric value, or a (method, language, metric) given
        twice.
    """
    records = []
    for i, row in enumerate(rows):
        missing = [key for key in ("method", "lang") if key not in row]
        if missing:
            raise ValueError(f"rows[{i}] lacks {', '.join(missing)}")
        for metric, value in row.items():
            if metric in ("method", "lang"):
                continue
            try:
                value = float(value)
            except (TypeError, ValueError):
                where = f"rows[{i}] ({row['method']}, {row['lang']})"
                raise ValueError(f"{where}: metric {metric!r} is not numeric: {value!r}") from None
            records.append((str(row["method"]), str(row["lang"]), str(metric), value))
    table = pd.DataFrame.from_records(records, columns=["method", "language", "metric", "value"])
    table["value"] = table["value"].astype(np.float64)
    dup = table.duplicated(["method", "language", "metric"])
    if dup.any():
        first = table[dup].iloc[0]
        where = f"method {first['method']!r}, language {first['language']!r}"
        raise ValueError(f"duplicate metric {first['metric']!r} for {where}")
    return table.sort_values(["method", "language", "metric"], kind="stable").reset_index(drop=True)


def _selection_indices(path: Path, pool: Pool) -> np.ndarray:
    """Pool indices of the ids in a selection file, in rank order; unknown ids are an error naming the file."""
    from mdaq.io import iter_jsonl

    where = {s.id: i for i, s in enumerate(pool.samples)}
    idx = []
    for k, row in enumerate(iter_jsonl(path)):
        if row.get("id") not in where:
            raise ValueError(f"{path}: record {k}: id {row.get('id')!r} is not in the {pool.lang!r} pool")
        idx.append(where[row["id"]])
    return np.asarray(idx, dtype=np.int64)


def intrinsic_report(
    pools: Mapping[str, Pool],
    methods: Sequence[str],
    selection_dirs: Mapping[str, str | Path],
    *,
    random_state: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Intrinsic metrics of every method's selection in every selection mode.

    Parameters
    ----------
    pools : Mapping[str, Pool]
        Per language, the pool with its features (embeddings for coverage and distances, quality for the mean
        QSM score).
    methods : sequence of str
        Method names; ``<dir>/<method>/<lang>.jsonl`` must exist for each mode, method and language.
    selection_dirs : Mapping[str, path]
        Mode name (e.g. ``"per_language"``, ``"pooled"``) to the folder of its selections.
    random_state : int
        Seeds the one k-means clustering per language (k = CaR's ⌊√(n/2)⌋) shared by every method, so coverage
        is comparable across methods.

    Returns
    -------
    (table, mix) : tuple of DataFrames
        ``table``: long format, columns ``mode, method, language, metric, value``; ``mix``: one row per mode and
        method with the language shares of the selection (``share_<lang>``) and ``lang_entropy``.

    Raises
    ------
    FileNotFoundError
        A selection file is missing (run ``dvc repro``).
    """
    clusters = {
        lang: cluster_labels(pool.embeddings, default_n_clusters(len(pool)), random_state=random_state)
        if pool.embeddings is not None and len(pool)
        else None
        for lang, pool in pools.items()
    }
    tables, mix_rows = [], []
    for mode, root in selection_dirs.items():
        rows = []
        for method in methods:
            counts = {}
            for lang, pool in pools.items():
                path = Path(root) / method / f"{lang}.jsonl"
                if not path.is_file():
                    raise FileNotFoundError(f"{path}: no {mode} selection for {method}/{lang}; run `dvc repro`")
                idx = _selection_indices(path, pool)
                counts[lang] = len(idx)
                metrics = selection_metrics(pool, idx, clusters=clusters[lang], random_state=random_state)
                rows.append({"method": method, "lang": lang, **metrics})
            mix_rows.append({"mode": mode, "method": method, **language_mix(counts)})
        table = intrinsic_table(rows)
        table.insert(0, "mode", mode)
        tables.append(table)
    return pd.concat(tables, ignore_index=True), pd.DataFrame(mix_rows)


def write_intrinsic(out_dir: str | Path, table: pd.DataFrame, mix: pd.DataFrame) -> None:
    """``intrinsic.csv`` (long) and ``language_mix.csv``, atomically."""
    from mdaq.io import atomic_path

    for name, frame in (("intrinsic.csv", table), ("language_mix.csv", mix)):
        with atomic_path(Path(out_dir) / name) as tmp:
            frame.to_csv(tmp, index=False, float_format="%.6g")


def plot_composition(table: pd.DataFrame, path: str | Path, mode: str = "per_language") -> None:
    """Share of expert-revised samples per method and language (dots) and its mean (bar), random ≈ 0.5 dotted.

    Methods are ordered by mean share; ``full`` shows the pool's own share.
    """
    import matplotlib.pyplot as plt

    from mdaq.io import save_figure

    sub = table[(table["mode"] == mode) & (table["metric"] == "share_revised")]
    if sub.empty:
        raise ValueError(f"no share_revised rows for mode {mode!r}")
    order = sub.groupby("method")["value"].mean().sort_values(ascending=False)
    langs = sorted(sub["language"].unique())
    fig, ax = plt.subplots(figsize=(max(5.0, 0.7 * len(order) + 2), 3.4))
    ax.bar(range(len(order)), order.values, color="#9bbad6", label="mean over languages")
    markers = "osD^v<>"
    for k, lang in enumerate(langs):
        vals = sub[sub["language"] == lang].set_index("method")["value"].reindex(order.index)
        ax.plot(range(len(order)), vals.values, markers[k % len(markers)], ms=4, label=lang, color="#1b3a5c")
    ax.axhline(0.5, color="k", lw=0.6, ls=":")
    ax.set_xticks(range(len(order)), order.index, rotation=30, ha="right")
    ax.set_ylabel("share of expert-revised samples")
    ax.set_ylim(0, 1)
    ax.set_title("What each method selects from the mixed MIDB pool (random ≈ 0.5)", fontsize=9)
    ax.legend(fontsize=7, ncol=len(langs) + 1, loc="lower left")
    fig.tight_layout()
    save_figure(fig, path, dpi=130)
