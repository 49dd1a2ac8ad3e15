"""Clustering and the DAS core (M-DaQ Algorithm 1): pure numpy/scikit-learn on (n, d) arrays, no I/O."""

from __future__ import annotations

import math

import numpy as np

PARTS = ("quality", "diversity", "fill")  # DAS part labels, in selection order


def default_n_clusters(n: int) -> int:
    """CaR's cluster count, k = floor(sqrt(n / 2)), at least 1."""
    return max(1, int(math.sqrt(n / 2)))


def das_n_clusters(n_clusters: int | str, n: int, budget: int) -> int:
    """The number of k-means clusters DAS uses on a pool of ``n`` samples with ``budget`` picks.

    Parameters
    ----------
    n_clusters : int or {"budget", "sqrt"}
        ``"budget"``: k = budget = n_quality + n_diversity. The quality part touches at most n_quality clusters,
        and k-means leaves no cluster empty (given k distinct points), so at least n_diversity clusters stay
        uncovered and every requested diversity pick is made: the smallest k that guarantees this for any ranking.
        ``"sqrt"``: CaR's floor(sqrt(n / 2)), which the quality part usually covers entirely at a 6 : 1 split
        (then stage 2 makes few or no picks). A positive int: that k.
    n, budget : int
        Pool size and number of picks (``budget <= n``).

    Returns
    -------
    int
        k, at least 1 and at most ``max(n, 1)``.

    Raises
    ------
    ValueError
        Anything else, including 0 (it meant ``"sqrt"`` before selector version 2, so it is refused, not
        reinterpreted).
    """
    if isinstance(n_clusters, str) and n_clusters == "budget":
        k = budget
    elif isinstance(n_clusters, str) and n_clusters == "sqrt":
        k = default_n_clusters(n)
    elif isinstance(n_clusters, int | np.integer) and not isinstance(n_clusters, bool) and n_clusters >= 1:
        k = int(n_clusters)
    else:
        raise ValueError(
            f"n_clusters must be a positive integer, 'budget' (k = n_quality + n_diversity) or 'sqrt' (CaR's "
            f"floor(sqrt(n / 2)); what 0 used to mean), got {n_clusters!r}"
        )
    return int(min(max(1, k), max(1, n)))


def cluster_labels(
    embeddings: np.ndarray,
    n_clusters: int,
    *,
    random_state: int = 0,
    batch_size: int = 4096,
    max_iter: int = 100,
    engine: str = "auto",
) -> np.ndarray:
    """K-means labels (int64) of the rows of ``embeddings``.

    With scikit-learn (``engine="sklearn"``, or ``"auto"`` below
    :data:`mdaq.selectors.kmeans_scale.FAISS_MIN_ROWS` rows): exact Lloyd k-means (one init) for small inputs and
    mini-batch k-means above 20,000 rows, where exact k-means stops being affordable on a CPU. With faiss
    (``engine="faiss"``, or ``"auto"`` from that size on): :func:`mdaq.selectors.kmeans_scale.kmeans_labels`, k-means
    trained on a seeded sample and every row assigned to its nearest centroid (``max_iter`` and ``batch_size`` do
    not apply; its iterations are :data:`~mdaq.selectors.kmeans_scale.NITER`). ``n_clusters`` is clipped to the
    number of rows.
    """
    from mdaq.selectors.kmeans_scale import kmeans_labels, resolve_engine

    n = len(embeddings)
    k = int(min(max(1, n_clusters), n))
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if resolve_engine(engine, n) == "faiss":
        return kmeans_labels(embeddings, k, random_state=random_state)
    from sklearn.cluster import KMeans, MiniBatchKMeans

    if n <= 20_000:
        km = KMeans(n_clusters=k, n_init=1, random_state=random_state, max_iter=max_iter)
    else:
        km = MiniBatchKMeans(
            n_clusters=k, n_init=1, random_state=random_state, batch_size=batch_size, max_iter=max_iter
        )
    return km.fit_predict(np.asarray(embeddings, dtype=np.float32)).astype(np.int64)


def split_budget(budget: int, n_quality_ratio: float, n_diversity_ratio: float) -> tuple[int, int]:
    """``budget`` split as n_quality : n_diversity (paper default 6 : 1); the diversity part is rounded."""
    if n_quality_ratio < 0 or n_diversity_ratio < 0 or n_quality_ratio + n_diversity_ratio == 0:
        raise ValueError(f"ratios must be >= 0 and not both 0, got {n_quality_ratio}:{n_diversity_ratio}")
    n_div = int(round(budget * n_diversity_ratio / (n_quality_ratio + n_diversity_ratio)))
    return budget - n_div, n_div


def das_select(
    quality: np.ndarray,
    labels: np.ndarray,
    n_quality: int,
    n_diversity: int,
    *,
    fill: bool = True,
    return_parts: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Diversity-Aware Selection, M-DaQ Algorithm 1.

    1. Sort by quality (descending; ties by index, so the result is deterministic).
    2. Take the top ``n_quality``; their clusters are *covered*.
    3. Scan the rest in quality order and add a sample only if its cluster is not yet covered (then cover it),
       until ``n_diversity`` are added.

    Algorithm 1 returns fewer samples when uncovered clusters run out; with ``fill=True`` (the default, so the
    budget is always met) the remaining slots go to the best not-yet-selected samples by quality.
    Cost: O(n log n) for the sort plus O(n) for the scan.

    Parameters
    ----------
    quality, labels : (n,) arrays
        QSM score (higher is better) and cluster label (non-negative int) per pool sample.
    n_quality, n_diversity : int
        Sizes of the quality part and of the requested diversity part.
    fill : bool
        Top up the slots the diversity scan could not fill, by quality.
    return_parts : bool
        Also return the part of every pick.

    Returns
    -------
    numpy.ndarray of int64
        Selected indices in priority order (quality part, diversity part, fill).
    parts : numpy.ndarray of str
        Only with ``return_parts``: per selected index, its part, one of :data:`PARTS`. When ``n_quality +
        n_diversity <= n``, the fill has exactly ``n_diversity`` minus the diversity picks made.
    """
    quality, labels = np.asarray(quality), np.asarray(labels)
    n = len(quality)
    n_quality = min(n_quality, n)
    order = np.lexsort((np.arange(n), -quality))  # quality descending, index ascending
    head = order[:n_quality]
    covered = np.zeros(int(labels.max()) + 1 if n else 0, dtype=bool)
    covered[labels[head]] = True
    rest = order[n_quality:]
    # first occurrence (in quality order) of each cluster among the rest, keeping only uncovered clusters
    _, first = np.unique(labels[rest], return_index=True)
    first = np.sort(first)
    novel = rest[first][~covered[labels[rest[first]]]]
    div = novel[:n_diversity]
    picked = np.concatenate([head, div]).astype(np.int64)
    extra = np.zeros(0, dtype=np.int64)
    if fill and len(picked) < min(n_quality + n_diversity, n):
        taken = np.zeros(n, dtype=bool)
        taken[picked] = True
        extra = rest[~taken[rest]][: n_quality + n_diversity - len(picked)]
        picked = np.concatenate([picked, extra]).astype(np.int64)
    if not return_parts:
        return picked
    return picked, np.repeat(np.array(PARTS), [len(head), len(div), len(extra)])


def car_select(quality: np.ndarray, labels: np.ndarray, budget: int, n_per_cluster: int = 1) -> np.ndarray:
    """CaR's selection given cluster labels: the best ``n_per_cluster`` samples (by quality) of every cluster,
    ordered by quality and cut at ``budget``, then the best remaining samples by quality up to ``budget``.

    Parameters
    ----------
    quality, labels : (n,) arrays
        Score (higher is better; ties by index) and non-negative cluster label per sample.
    budget : int
        Number of picks (at most n).
    n_per_cluster : int
        Representatives per cluster.

    Returns
    -------
    numpy.ndarray of int64
        ``min(budget, n)`` unique indices in priority order. Cost: one sort, O(n log n).
    """
    quality, labels = np.asarray(quality), np.asarray(labels, dtype=np.int64)
    n = len(quality)
    order = np.lexsort((np.arange(n), -quality))
    # rank of each sample within its cluster, in quality order: a stable sort by label keeps the quality order
    by_cluster = order[np.argsort(labels[order], kind="stable")]
    sorted_labels = labels[by_cluster]
    starts = np.flatnonzero(np.r_[True, sorted_labels[1:] != sorted_labels[:-1]]) if n else np.zeros(0, np.int64)
    run_start = np.repeat(starts, np.diff(np.r_[starts, n]))
    rank_in_cluster = np.empty(n, dtype=np.int64)
    rank_in_cluster[by_cluster] = np.arange(n) - run_start
    reps = order[rank_in_cluster[order] < n_per_cluster][:budget]
    taken = np.zeros(n, dtype=bool)
    taken[reps] = True
    return np.concatenate([reps, order[~taken[order]][: budget - len(reps)]]).astype(np.int64)


def kcenter_greedy(embeddings: np.ndarray, budget: int, first: int = 0) -> np.ndarray:
    """Greedy k-center (farthest-first traversal) with incremental min-distance updates: O(n · budget · d)."""
    x = np.asarray(embeddings, dtype=np.float32)
    n = len(x)
    budget = min(budget, n)
    if budget == 0:
        return np.zeros(0, dtype=np.int64)
    sq = np.einsum("ij,ij->i", x, x)
    picked = [first]
    min_d = np.maximum(sq + sq[first] - 2 * x @ x[first], 0)
    min_d[first] = -1.0
    for _ in range(budget - 1):
        nxt = int(np.argmax(min_d))
        picked.append(nxt)
        min_d = np.minimum(min_d, np.maximum(sq + sq[nxt] - 2 * x @ x[nxt], 0))
        min_d[picked] = -1.0
    return np.asarray(picked, dtype=np.int64)


def mmr_select(
    quality: np.ndarray,
    embeddings: np.ndarray,
    budget: int,
    lam: float = 0.7,
    *,
    block: int = 128,
    chunk: int = 256,
    rows: int = 8192,
) -> np.ndarray:
    """Exact greedy Maximal Marginal Relevance (Carbonell & Goldstein, SIGIR 1998).

    Picks ``argmax_i  lam · q_i − (1 − lam) · max_{j ∈ S} cos(x_i, x_j)`` at every step, ``q`` min-max scaled to
    [0, 1]; the first pick is the best by quality. Same picks as the naive loop (ties to the lower index), without
    its per-step cost: the running max-similarity vector is refreshed only every ``block`` picks, with one
    (n × block) matrix product done ``rows`` rows at a time so the product stays in cache while it is reduced
    (compute-bound, instead of one memory-bound matrix-vector product per pick). Between refreshes the stale
    gains are upper bounds of the true ones (similarities only grow), so candidates are checked in stale-gain
    order, ``chunk`` at a time, against the few pending picks, until the best exact gain beats the next stale
    bound; only the head of that order is sorted (a partial sort, widened if the walk goes further). The n × n
    similarity matrix is never formed.
    """
    x = np.asarray(embeddings, dtype=np.float32)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    q = np.asarray(quality, dtype=np.float64)
    span = q.max() - q.min() if len(q) else 0.0
    q = (q - q.min()) / span if span > 0 else np.zeros_like(q)
    n, budget = len(q), min(budget, len(q))
    if budget == 0:
        return np.zeros(0, dtype=np.int64)
    first = int(np.argmax(q))
    picked, pending = [first], [first]
    taken = np.zeros(n, dtype=bool)
    taken[first] = True
    max_sim = np.full(n, -1.0, dtype=np.float32)  # max cosine to the picks folded in so far (>= -1: a valid start)
    while len(picked) < budget:
        if len(pending) >= block or len(picked) == 1:
            p = x[pending].T
            for start in range(0, n, rows):
                part = max_sim[start : start + rows]
                np.maximum(part, (x[start : start + rows] @ p).max(axis=1), out=part)
            pending = []
            stale = lam * q - (1 - lam) * max_sim
            stale[taken] = -np.inf
            order = _StaleOrder(stale)
        best = _best_candidate(x, q, lam, max_sim, stale, order, taken, pending, chunk)
        picked.append(best)
        pending.append(best)
        taken[best] = True
    return np.asarray(picked, dtype=np.int64)


class _StaleOrder:
    """Indices by decreasing stale gain (ties by index), sorted lazily: the first ``head`` on creation, all of them
    when a walk needs more (a walk rarely goes past the first few chunks)."""

    def __init__(self, stale: np.ndarray, head: int = 4096):
        self.stale, self.n = stale, len(stale)
        if head < self.n:
            top = np.argpartition(-stale, head)[:head]
            cut = stale[top].min()
            top = np.flatnonzero(stale >= cut)  # every tie of the cut value, so the head is an exact prefix
            self.order = top[np.lexsort((top, -stale[top]))]
            self.full = False
        else:
            self.order, self.full = np.lexsort((np.arange(self.n), -stale)), True

    def get(self, start: int, stop: int) -> np.ndarray:
        if stop > len(self.order) and not self.full:
            self.order, self.full = np.lexsort((np.arange(self.n), -self.stale)), True
        return self.order[start:stop]


def _best_candidate(x, q, lam, max_sim, stale, order, taken, pending, chunk) -> int:
    """Exact argmax of the MMR gain given folded ``max_sim`` and the ``pending`` picks (see :func:`mmr_select`)."""
    n = len(q)
    p = x[pending].T if pending else None
    best_i, best_g, pos = -1, -np.inf, 0
    while pos < n:
        cand = order.get(pos, pos + chunk)
        cand = cand[~taken[cand]]
        if len(cand):
            red = max_sim[cand] if p is None else np.maximum(max_sim[cand], (x[cand] @ p).max(axis=1))
            gain = lam * q[cand] - (1 - lam) * red
            j = int(np.argmax(gain))
            if gain[j] > best_g or (gain[j] == best_g and cand[j] < best_i):
                best_g, best_i = gain[j], int(cand[j])
        pos += chunk
        if pos >= n or best_g > stale[order.get(pos, pos + 1)[0]]:
            return best_i
    return best_i


def mmr_select_naive(quality: np.ndarray, embeddings: np.ndarray, budget: int, lam: float = 0.7) -> np.ndarray:
    """Reference MMR: recompute every candidate's max similarity to the whole selected set at every step.

    O(n · budget² · d); used only to check :func:`mmr_select` (tests) and as its baseline (benchmarks).
    """
    x = np.asarray(embeddings, dtype=np.float32)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    q = np.asarray(quality, dtype=np.float64)
    q = (q - q.min()) / (q.max() - q.min())
    picked: list[int] = []
    for _ in range(min(budget, len(q))):
        red = (x @ x[picked].T).max(axis=1) if picked else 0.0
        gain = lam * q - (1 - lam) * red
        gain[picked] = -np.inf
        picked.append(int(np.argmax(gain)))
    return np.asarray(picked, dtype=np.int64)


def score_first_filter(
    embeddings: np.ndarray, order: np.ndarray, budget: int, max_similarity: float, block: int = 512
) -> np.ndarray:
    """Deita's "Repr Filter": walk ``order`` (best first) and keep a sample only if its cosine similarity to
    every sample kept so far is below ``max_similarity``; stop after ``budget`` kept.

    Exact and blocked: each block of candidates is compared with everything kept before it in one GEMM
    (a candidate already too close to an earlier pick can never recover, since the kept set only grows); the few
    survivors are then resolved in order against the picks made inside the block.

    Parameters
    ----------
    embeddings : (n, d) array
        Rows are L2-normalised here (zero rows stay zero: similarity 0 to everything).
    order : (m,) int array
        Candidate indices in priority order.
    budget : int
        Maximum number kept.
    max_similarity : float
        Threshold on cosine similarity (Deita: a sample is kept when its nearest kept neighbour is farther than
        the threshold).

    Returns
    -------
    numpy.ndarray of int64
        Kept indices in priority order (possibly fewer than ``budget`` when the threshold is tight).
    """
    x = np.asarray(embeddings, dtype=np.float32)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    order = np.asarray(order, dtype=np.int64)
    kept = np.zeros((max(budget, 0), x.shape[1]), dtype=np.float32)
    out: list[int] = []
    for start in range(0, len(order), block):
        if len(out) >= budget:
            break
        cand = order[start : start + block]
        if out:
            sims = x[cand] @ kept[: len(out)].T
            cand = cand[sims.max(axis=1) < max_similarity]
        if len(cand) == 0:
            continue
        inner = x[cand] @ x[cand].T  # survivors vs each other, resolved in priority order
        ok = np.zeros(len(cand), dtype=bool)
        for j in range(len(cand)):
            if len(out) >= budget:
                break
            if not np.any(inner[j, ok] >= max_similarity):
                ok[j] = True
                kept[len(out)] = x[cand[j]]
                out.append(int(cand[j]))
    return np.asarray(out, dtype=np.int64)
