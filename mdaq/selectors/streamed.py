"""Selection over a pool given as feature blocks (ids, QSM scores, embeddings), never its texts, holding at most one
block of embeddings plus a k-means sample (issue 20, ``docs/scale.md``).

Three kinds of method:

* **clustered** (``mdaq_das``, ``car``: selectors with ``cluster_count`` and ``select_clustered``): one pass keeps
  ids, scores and a seeded sample of rows; faiss k-means is trained on the sample and a second pass assigns every
  row; the selector's own rule then runs on (scores, labels). A pool of at most ``max_in_memory_rows`` rows is
  gathered in the first pass (no second one), which is what scikit-learn needs (``engine="auto"`` below
  :data:`~mdaq.selectors.kmeans_scale.FAISS_MIN_ROWS` rows, ``"sklearn"``).
* **score-only** (``random``, ``quality_topk``, ``full``, ``ifd``): one pass keeps ids and the scores the method
  reads (QSM scores, IFD); the registered selector runs on a :class:`FeaturePool` without embeddings.
* **pairwise** (``mmr``, ``kcenter``, ``deita``, ``kmeans_diverse``): need every embedding at once, so they run on
  pools of at most ``max_in_memory_rows`` rows and refuse larger ones with one line naming the method, the pool size
  and the limit.

Methods that read texts (``longest``: response lengths; the oracle controls: labels in ``meta``) or features the
blocks do not carry (``ifd`` from a feature folder computed without ``--ifd-model``) are refused with a message
saying so. On the same rows, ids order and seed, the result
equals the in-memory selector's (with ``engine="faiss"`` above the gather limit: the same sample, centroids and
assignment; rows equidistant from two centroids within float32 rounding aside).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from mdaq.errors import DataError
from mdaq.io import first_nonfinite_row, nonfinite_text
from mdaq.selectors import get_selector, selection_parts
from mdaq.selectors.algorithms import cluster_labels
from mdaq.selectors.kmeans_scale import DEFAULT_SETTINGS, KMeansSettings, RowSampler, assign_blocks, resolve_engine
from mdaq.shards.features import BlockFactory, FeatureBlock

logger = logging.getLogger(__name__)

# Most rows whose embeddings the streamed path gathers into one array: pairwise methods, and k-means by
# scikit-learn. 10^5 x 384 float32 is 154 MB; it equals FAISS_MIN_ROWS, so `engine="auto"` never needs more.
MAX_IN_MEMORY_ROWS = 100_000
BLOCK_FEATURES = frozenset({"quality", "embeddings"})  # what blocks carry unless told otherwise (no IFD)


class NoTextsError(ValueError):
    """A selector asked a :class:`FeaturePool` for its samples' texts."""


@dataclass(frozen=True)
class FeaturePool:
    """A pool known by its features only: what the streamed path hands to a registered selector.

    It answers ``len``, ``lang`` and the feature attributes of :class:`mdaq.types.Pool`; asking for ``samples``
    raises :class:`NoTextsError` (feature blocks carry no texts).
    """

    lang: str
    ids: np.ndarray
    quality: np.ndarray | None = None
    embeddings: np.ndarray | None = None
    ifd: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def samples(self):
        raise NoTextsError(f"pool {self.lang!r} is streamed from feature blocks (id, quality, embedding): no texts")


@dataclass(frozen=True)
class StreamedSelection:
    """The result of :func:`run_streamed`.

    Attributes
    ----------
    ids : list of str
        Selected sample ids in priority order.
    indices : numpy.ndarray of int64
        Their rows in the block stream.
    parts : numpy.ndarray of str or None
        Per pick, its part (``mdaq_das``: quality / diversity / fill), or None.
    n_pool : int
        Rows seen.
    engine : str or None
        ``"sklearn"`` or ``"faiss"`` for the clustered methods, else None.
    n_clusters : int or None
        k given to k-means (clustered methods).
    """

    ids: list[str]
    indices: np.ndarray
    parts: np.ndarray | None
    n_pool: int
    engine: str | None = None
    n_clusters: int | None = None


def select_streamed(
    method: str, params: Mapping[str, Any] | None, blocks: BlockFactory, budget: int, seed: int = 0, **options: Any
) -> list[str]:
    """Selected sample ids, in priority order, of ``method`` over a pool given as feature blocks: the ``ids`` of
    :func:`run_streamed`, which documents the parameters and keyword options (``lang``, ``source``,
    ``max_in_memory_rows``, ``kmeans``) and also returns rows, parts and the k-means engine."""
    return run_streamed(method, params, blocks, budget, seed, **options).ids


def run_streamed(
    method: str,
    params: Mapping[str, Any] | None,
    blocks: BlockFactory,
    budget: int,
    seed: int = 0,
    *,
    lang: str = "streamed",
    source: object = "feature blocks",
    max_in_memory_rows: int = MAX_IN_MEMORY_ROWS,
    kmeans: KMeansSettings = DEFAULT_SETTINGS,
    features: frozenset[str] = BLOCK_FEATURES,
) -> StreamedSelection:
    """Run a registered selection method over a block stream (see the module docstring for what each kind does).

    Parameters
    ----------
    method : str
        A registered selector name.
    params : mapping or None
        Its hyperparameters (checked by :func:`mdaq.selectors.get_selector`).
    blocks : BlockFactory
        ``blocks()`` returns a fresh iterator over the pool's :class:`~mdaq.shards.features.FeatureBlock` objects
        in pool order; called once per pass (one or two passes).
    budget : int
        Samples wanted (ignored by ``full``).
    seed : int
        The selector's ``random_state`` (also seeds the k-means sample).
    lang, source : str
        Name the pool in logs and errors (e.g. the language and the feature folder).
    max_in_memory_rows : int
        Most rows whose embeddings are gathered into memory (pairwise methods; k-means by scikit-learn).
    kmeans : KMeansSettings
        faiss k-means settings (:mod:`mdaq.selectors.kmeans_scale`; the default is the in-memory path's).
    features : frozenset of str
        The :class:`~mdaq.types.Pool` features the blocks carry (``quality``, ``embeddings``, ``ifd``; a feature
        folder's: :func:`mdaq.shards.features.folder_features`); a method needing another is refused up front.

    Returns
    -------
    StreamedSelection

    Raises
    ------
    ValueError
        A method this path cannot run (texts or features blocks lack), a pool above the gather limit for a method
        that needs all embeddings, a bad budget; :class:`~mdaq.errors.DataError` for a bad block (naming ``source``,
        the pool row and the field).
    """
    if not isinstance(budget, int | np.integer) or isinstance(budget, bool) or budget < 0:
        raise ValueError(f"{method}: budget must be a non-negative integer, got {budget!r}")
    selector = get_selector(method, params, seed)
    _check_block_features(method, selector, features)
    clustered = hasattr(selector, "select_clustered")
    use_embeddings = "embeddings" in selector.requires
    capacity = kmeans.max_sample if clustered else 0
    wanted = selector.requires | {"quality"} if clustered else selector.requires  # scores kept in memory
    scan = _scan(blocks, source, capacity, seed, max_in_memory_rows if use_embeddings else 0, wanted)  # pass 1
    n = len(scan.ids)
    n_wanted = min(int(budget), n) if selector.uses_budget else n
    if use_embeddings and scan.embeddings is None and not clustered:
        raise ValueError(_pairwise_refusal(method, n, max_in_memory_rows))
    if clustered:
        k = int(min(max(1, selector.cluster_count(n, n_wanted)), max(n, 1)))
        engine = resolve_engine(selector.engine, n)
        labels = _labels(scan, blocks, k, engine, seed, method, max_in_memory_rows, kmeans)
        idx = selector.select_clustered(scan.quality, labels, n_wanted, n_clusters=k, lang=lang)
        _check_result(method, idx, n_wanted, n)
    else:
        k, engine = None, None
        pool = FeaturePool(lang, scan.ids, scan.quality, scan.embeddings, scan.ifd)
        try:
            idx = selector.select(pool, n_wanted)
        except NoTextsError:
            raise ValueError(_texts_refusal(method)) from None
    idx = np.asarray(idx, dtype=np.int64)
    parts = selection_parts(selector, len(idx))
    return StreamedSelection([str(i) for i in scan.ids[idx]], idx, parts, n, engine, k)


def check_streamable(
    method: str,
    params: Mapping[str, Any] | None,
    n_rows: int,
    seed: int = 0,
    *,
    max_in_memory_rows: int = MAX_IN_MEMORY_ROWS,
    features: frozenset[str] = BLOCK_FEATURES,
) -> None:
    """Refuse, before any feature is computed, a method that :func:`run_streamed` would refuse on a pool of
    ``n_rows`` rows, with the same message: one that needs a feature not among ``features`` (the blocks that will be
    computed: ``ifd`` only with an IFD model), one that compares samples
    pairwise on a pool above the gather limit, scikit-learn k-means above it, and one that reads texts (found by
    running the selector on a two-row :class:`FeaturePool`, whose ``samples`` raise; only methods without
    embeddings are run so, and they are all cheap).

    Raises
    ------
    ValueError
        As :func:`run_streamed` would, for these reasons; also for bad hyperparameters.
    """
    selector = get_selector(method, params, seed)
    _check_block_features(method, selector, features)
    if hasattr(selector, "select_clustered"):
        if n_rows > max_in_memory_rows and resolve_engine(selector.engine, n_rows) == "sklearn":
            raise ValueError(_sklearn_refusal(method, n_rows, max_in_memory_rows))
    elif "embeddings" in selector.requires:
        if n_rows > max_in_memory_rows:
            raise ValueError(_pairwise_refusal(method, n_rows, max_in_memory_rows))
    else:
        probe = FeaturePool("probe", np.array(["a", "b"]), np.zeros(2, np.float32), ifd=np.zeros(2, np.float32))
        try:
            selector.select(probe, 1)
        except NoTextsError:
            raise ValueError(_texts_refusal(method)) from None


def _check_block_features(method: str, selector: Any, features: frozenset[str]) -> None:
    missing = sorted(selector.requires - features)
    if missing:
        columns = [
            "id",
            *(["quality", "embedding"] if "quality" in features else []),
            *(["ifd"] if "ifd" in features else []),
        ]
        hint = "; compute the feature shards with an IFD model (--ifd-model)" if "ifd" in missing else ""
        raise ValueError(
            f"{method} needs {', '.join(missing)}, which feature blocks ({', '.join(columns)}) lack{hint}"
        )


def _pairwise_refusal(method: str, n: int, limit: int) -> str:
    return (
        f"{method} needs all embeddings in memory at once (it compares samples pairwise): the streamed pool has "
        f"{n:,} rows, above the limit of {limit:,} (max_in_memory_rows); use mdaq_das, car, quality_topk or random, "
        "or select from a smaller pool"
    )


def _sklearn_refusal(method: str, n: int, limit: int) -> str:
    return (
        f"{method}: k-means by scikit-learn needs all embeddings in memory: the streamed pool has {n:,} rows, above "
        f"the limit of {limit:,} (max_in_memory_rows); use engine 'faiss' or 'auto'"
    )


def _texts_refusal(method: str) -> str:
    return (
        f"{method} reads the samples' texts, which feature blocks (id, quality, embedding) do not carry; run it on "
        "the pool's texts in memory (mdaq select --pool, without --engine)"
    )


@dataclass
class _Scan:
    ids: np.ndarray
    quality: np.ndarray | None  # when the method reads it
    embeddings: np.ndarray | None  # all rows, when there were at most the gather limit
    sampler: RowSampler | None
    ifd: np.ndarray | None = None  # when the method reads it


def _scan(
    blocks: BlockFactory, source: object, capacity: int, seed: int, gather_limit: int, wanted: frozenset[str]
) -> _Scan:
    """One pass: ids of every row and the scores in ``wanted`` (``quality``, ``ifd``), a bottom-``capacity`` k-means
    sample, and every embedding while the pool has at most ``gather_limit`` rows; each block checked
    (:func:`_check_block`)."""
    ids, gathered = [], []
    scores: dict[str, list[np.ndarray]] = {name: [] for name in ("quality", "ifd") if name in wanted}
    sampler = RowSampler(capacity, seed) if capacity else None
    n, dim = 0, None
    for block in blocks():
        dim = _check_block(block, source, n, dim)
        missing = sorted(wanted - block.features)
        if missing:
            raise DataError(source, f"the blocks lack {', '.join(missing)}", record=n, field=missing[0])
        ids.append(np.asarray(block.ids))
        for name, parts in scores.items():
            parts.append(np.asarray(getattr(block, name), dtype=np.float32))
        if sampler is not None:
            sampler.add(block.embeddings)
        n += len(block)
        if gathered is not None and n <= gather_limit:
            gathered.append(np.asarray(block.embeddings, dtype=np.float32))
        else:
            gathered = None  # past the limit: stop holding embeddings, keep counting
    all_ids = np.concatenate(ids) if ids else np.zeros(0, dtype=str)
    _check_unique(all_ids, source)
    emb = None
    if gathered is not None and gather_limit:
        emb = np.concatenate(gathered) if gathered else np.zeros((0, dim or 0), dtype=np.float32)
    joined = {k: np.concatenate(v) if v else np.zeros(0, dtype=np.float32) for k, v in scores.items()}
    return _Scan(all_ids, joined.get("quality"), emb, sampler, joined.get("ifd"))


def _check_block(block: FeatureBlock, source: object, row0: int, dim: int | None) -> int | None:
    """Raise :class:`DataError` naming ``source``, the pool row and the field for a non-finite QSM score or embedding
    or an embedding width that differs from earlier blocks'; return the width (None without embeddings). IFD is not
    checked: NaN marks an unscorable sample, which the ``ifd`` selector ranks last."""
    emb = None if block.embeddings is None else np.asarray(block.embeddings)
    if emb is not None and dim is not None and emb.shape[1] != dim:
        raise DataError(source, f"{emb.shape[1]} columns, earlier rows {dim}", record=row0, field="embedding")
    for field, values in (("quality", block.quality), ("embedding", emb)):
        row = None if values is None else first_nonfinite_row(values)
        if row is not None:
            where = f"{row0 + row} (id {block.ids[row]!s})"
            raise DataError(source, f"holds {nonfinite_text(values, row)}", record=where, field=field)
    return dim if emb is None else emb.shape[1]


def _check_unique(ids: np.ndarray, source: object) -> None:
    uniq, first, counts = np.unique(ids, return_index=True, return_counts=True)
    if len(uniq) != len(ids):
        dup = int(np.flatnonzero(counts > 1)[0])
        rows = np.flatnonzero(ids == uniq[dup])
        raise DataError(
            source, f"duplicate id {uniq[dup]!s} (first in row {rows[0]})", record=int(rows[1]), field="id"
        )


def _labels(scan, blocks, k, engine, seed, method, max_in_memory_rows, kmeans: KMeansSettings) -> np.ndarray:
    """Cluster labels of every row: scikit-learn on the gathered embeddings (as the in-memory selector), or faiss
    trained on the scan's sample and assigned to the gathered embeddings or, past the gather limit, in a second
    pass over the blocks."""
    n = len(scan.ids)
    if engine == "sklearn":
        if scan.embeddings is None:
            raise ValueError(_sklearn_refusal(method, n, max_in_memory_rows))
        return cluster_labels(scan.embeddings, k, random_state=seed, engine="sklearn")
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    _, sample = scan.sampler.take(kmeans.sample_size(n, k))
    centroids = kmeans.train(sample, k, seed)
    rows = [scan.embeddings] if scan.embeddings is not None else (b.embeddings for b in blocks())
    labels = assign_blocks(rows, centroids, spherical=kmeans.spherical)
    if len(labels) != n:
        raise ValueError(
            f"{method}: the block factory gave {n} rows in the first pass and {len(labels)} in the second"
        )
    return labels


def _check_result(method: str, idx: np.ndarray, n_wanted: int, n: int) -> None:
    idx = np.asarray(idx)
    if idx.shape != (n_wanted,) or (len(idx) and (idx.min() < 0 or idx.max() >= n or len(np.unique(idx)) != len(idx))):
        raise ValueError(f"{method}: the streamed selection is not {n_wanted} unique rows of {n}")
