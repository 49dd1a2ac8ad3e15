"""Intrinsic selection metrics: what a selection contains, measured without training a model."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from mdaq.evaluation.stage import share_revised
from mdaq.selectors import UNLABELLED_PART
from mdaq.selectors.algorithms import PARTS, cluster_labels, default_n_clusters
from mdaq.types import Pool

__all__ = [
    "METRICS",
    "PART_METRICS",
    "coverage_labels",
    "coverage_n_clusters",
    "selection_metrics",
    "part_counts",
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
PART_METRICS = ("n_diversity_requested", "n_diversity_made", "n_fill")  # from a selection file's `part` fields
NAN = float("nan")
COVERAGE_NGRAMS = (2, 4)  # character n-grams inside word boundaries: any script, no tokenizer (ja is unsegmented)
COVERAGE_DIM = 64  # LSA components before k-means: topic structure without the n-gram noise
COVERAGE_MAX_FEATURES = 50_000  # the most frequent n-grams only, so a 52K pool stays cheap


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


def coverage_n_clusters(n: int) -> int:
    """k of the coverage partition: twice CaR's floor(sqrt(n / 2)), at most ``n`` (12 for a pool of 80, 38 for
    794). It depends on the pool size only, so coverages at different budgets compare."""
    return min(max(n, 1), 2 * default_n_clusters(n))


def coverage_labels(pool: Pool, n_clusters: int | None = None, *, random_state: int = 0) -> np.ndarray:
    """The partition ``cluster_coverage`` counts, built from a representation no selector reads.

    Every sample's text (instruction, input, response) becomes a TF-IDF vector of character 2-4-grams within
    word boundaries (sublinear tf, the 50,000 most frequent n-grams), reduced by LSA (truncated SVD, 64
    components, rows re-normalised; skipped for pools of 64 or fewer) and clustered by k-means with ``n_clusters``
    (default :func:`coverage_n_clusters`). Selectors cluster the diversity *embeddings* (``mdaq_das`` with k =
    budget, ``car`` with CaR's k), so a method cannot score 1.0 by construction; the price is a lexical, not
    semantic, notion of topic.

    Returns
    -------
    numpy.ndarray of int64
        One label per pool sample (all 0 when no sample has any text).
    """
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.preprocessing import normalize

    n = len(pool)
    texts = ["\n".join(t for t in (s.instruction, s.input, s.output) if t) for s in pool.samples]
    vectorizer = TfidfVectorizer(
        analyzer="char_wb",
        ngram_range=COVERAGE_NGRAMS,
        sublinear_tf=True,
        max_features=COVERAGE_MAX_FEATURES,
        dtype=np.float32,
    )
    try:
        x = vectorizer.fit_transform(texts)
    except ValueError:  # empty vocabulary: no text at all, so one cluster
        return np.zeros(n, dtype=np.int64)
    if min(x.shape) > COVERAGE_DIM:
        x = normalize(TruncatedSVD(COVERAGE_DIM, random_state=random_state).fit_transform(x))
    else:
        x = x.toarray()  # rows are already unit-length tf-idf vectors
    k = coverage_n_clusters(n) if n_clusters is None else n_clusters
    return cluster_labels(x, k, random_state=random_state)


def _coverage(pool: Pool, idx: np.ndarray, clusters, n_clusters, random_state) -> float:
    if clusters is not None:
        labels = np.asarray(clusters)
        if labels.shape != (len(pool),):
            raise ValueError(f"clusters has shape {labels.shape}, expected ({len(pool)},) for pool {pool.lang!r}")
    else:
        if n_clusters is not None and (
            isinstance(n_clusters, bool) or not isinstance(n_clusters, int | np.integer) or n_clusters < 1
        ):
            raise ValueError(f"n_clusters must be a positive integer or None, got {n_clusters!r}")
        if len(pool) == 0:
            return NAN
        labels = coverage_labels(pool, None if n_clusters is None else int(n_clusters), random_state=random_state)
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
        One cluster label per pool sample; when given, used for ``cluster_coverage`` instead of
        :func:`coverage_labels`.
    n_clusters : int, optional
        k of :func:`coverage_labels` (default :func:`coverage_n_clusters`: twice CaR's floor(sqrt(n / 2))).
    random_state : int
        Seed of :func:`coverage_labels`.

    Returns
    -------
    dict[str, float]
        Keys in :data:`METRICS` order:

        - ``n_selected``: number of selected samples;
        - ``share_revised``: mean of ``meta["is_revised"]`` over the selection (NaN unless every selected sample
          has that key, or when nothing is selected);
        - ``cluster_coverage``: share of the pool's clusters holding at least one selected sample, the clusters
          being ``clusters`` or else :func:`coverage_labels` (k-means on an LSA of TF-IDF character n-grams of
          the text, a representation no selector reads, k = 2 floor(sqrt(n / 2))); NaN for an empty pool;
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


def part_counts(parts: Sequence[str] | None) -> dict[str, float]:
    """How many picks of a selection each part got, from its rows' ``part`` labels.

    Parameters
    ----------
    parts : sequence of str, optional
        One label per selected sample: ``"quality"``, ``"diversity"``, ``"fill"`` (``mdaq_das``) or
        ``"selected"`` (a selector that does not label its picks, or a row without a ``part`` field).

    Returns
    -------
    dict[str, float]
        Keys in :data:`PART_METRICS` order: ``n_diversity_made`` (diversity picks), ``n_fill`` (slots the
        diversity scan could not fill, given to the next best by quality) and ``n_diversity_requested``, their
        sum: DAS fills exactly the diversity slots it could not make, so this is n_diversity of the budget split
        (in pooled mode, the diversity slots that ended in this language). All NaN when nothing is labelled.

    Raises
    ------
    ValueError
        A label outside the four above.
    """
    parts = [] if parts is None else [str(p) for p in parts]
    unknown = sorted(set(parts) - {*PARTS, UNLABELLED_PART})
    if unknown:
        raise ValueError(f"unknown part labels {unknown}; expected {[*PARTS, UNLABELLED_PART]}")
    if all(p == UNLABELLED_PART for p in parts):
        return dict.fromkeys(PART_METRICS, NAN)
    made, fill = parts.count("diversity"), parts.count("fill")
    return {"n_diversity_requested": float(made + fill), "n_diversity_made": float(made), "n_fill": float(fill)}


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


def _selection_indices(path: Path, pool: Pool) -> tuple[np.ndarray, list[str]]:
    """Pool indices of the ids in a selection file, in rank order, and each row's ``part`` ("selected" when it has
    none); unknown ids are an error naming the file."""
    from mdaq.io import iter_jsonl

    where = {s.id: i for i, s in enumerate(pool.samples)}
    idx, parts = [], []
    for k, row in enumerate(iter_jsonl(path)):
        if row.get("id") not in where:
            raise ValueError(f"{path}: record {k}: id {row.get('id')!r} is not in the {pool.lang!r} pool")
        idx.append(where[row["id"]])
        parts.append(str(row.get("part", UNLABELLED_PART)))
    return np.asarray(idx, dtype=np.int64), parts


def intrinsic_report(
    pools: Mapping[str, Pool],
    methods: Sequence[str],
    selection_dirs: Mapping[str, str | Path],
    *,
    random_state: int = 0,
    layouts: Mapping[str, str] | None = None,
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
    layouts : Mapping[str, str], optional
        Mode name to the path of one selection inside its folder, a template with ``{method}`` and ``{lang}``
        (default ``"{method}/{lang}.jsonl"``; the pipeline's per-language selections are per seed:
        ``"{method}/{lang}/s0.jsonl"``).
    random_state : int
        Seeds the one coverage partition per language (:func:`coverage_labels`: TF-IDF character n-grams, LSA,
        k-means with k = 2 ⌊√(n/2)⌋), shared by every method so coverage compares across methods, and read by
        none of them.

    Returns
    -------
    (table, mix) : tuple of DataFrames
        ``table``: long format, columns ``mode, method, language, metric, value``, the metrics :data:`METRICS`
        and :data:`PART_METRICS` (NaN for a method that does not label its picks); ``mix``: one row per mode and
        method with the language shares of the selection (``share_<lang>``) and ``lang_entropy``.

    Raises
    ------
    FileNotFoundError
        A selection file is missing (run ``dvc repro``).
    ValueError
        A selection file names an id not in its pool, or an unknown ``part``.
    """
    clusters = {
        lang: coverage_labels(pool, random_state=random_state) if len(pool) else None for lang, pool in pools.items()
    }
    tables, mix_rows = [], []
    for mode, root in selection_dirs.items():
        rows = []
        for method in methods:
            counts = {}
            for lang, pool in pools.items():
                layout = (layouts or {}).get(mode, "{method}/{lang}.jsonl")
                path = Path(root) / layout.format(method=method, lang=lang)
                if not path.is_file():
                    raise FileNotFoundError(f"{path}: no {mode} selection for {method}/{lang}; run `dvc repro`")
                idx, parts = _selection_indices(path, pool)
                counts[lang] = len(idx)
                metrics = selection_metrics(pool, idx, clusters=clusters[lang], random_state=random_state)
                try:
                    metrics |= part_counts(parts)
                except ValueError as e:
                    raise ValueError(f"{path}: {e}") from None
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
