"""Score-first selectors: Deita (quality score + embedding-distance filter) and IFD (instruction-following
difficulty from a causal LM, as in Cherry LLM / Superfiltering)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from mdaq.selectors.algorithms import score_first_filter
from mdaq.selectors.base import SELECTORS, BaseSelector
from mdaq.types import Pool


def _fill(picked: np.ndarray, ranking: np.ndarray, budget: int) -> np.ndarray:
    """``picked`` followed by the best-ranked samples not in it, up to ``budget``."""
    if len(picked) >= budget:
        return picked[:budget]
    rest = ranking[~np.isin(ranking, picked)]
    return np.concatenate([picked, rest[: budget - len(picked)]]).astype(np.int64)


@SELECTORS.register("deita")
class DeitaSelector(BaseSelector):
    """Score-first, diversity-aware selection: walk the pool by decreasing QSM score and keep a sample only if its
    cosine similarity to every kept sample is below ``max_similarity``.

    Deita scores samples with complexity x quality scorers trained on ChatGPT rankings; here the score is the
    QSM's (the pool's ``quality`` feature), so the comparison with ``mdaq_das`` isolates the diversity step
    (distance threshold vs. cluster coverage). If the threshold leaves fewer than ``budget`` samples, the rest is
    filled by score order (Deita stops early instead; a fixed budget keeps the comparison fair).

    Parameters
    ----------
    max_similarity : float
        Cosine-similarity threshold (Deita's τ). Default 0.85: Deita's 0.9 is for cosine similarity of Llama-13B
        states; multilingual-e5 puts unrelated texts near 0.8, so 0.9 would keep near-duplicates apart.
    random_state : int
        Unused (deterministic); kept for the contract.

    References
    ----------
    Liu et al., "What Makes Good Data for Alignment? A Comprehensive Study of Automatic Data Selection in
    Instruction Tuning", ICLR 2024 (arXiv 2312.15685).
    """

    name = "deita"
    version = "1"
    requires = frozenset({"quality", "embeddings"})

    def __init__(self, *, max_similarity: float = 0.85, random_state: int = 0):
        self.max_similarity = max_similarity
        self.random_state = random_state

    def _param_problems(self) -> Iterator[tuple[str, str]]:
        if not -1.0 <= self.max_similarity <= 1.0:
            yield "max_similarity", f"{self.max_similarity} is not a cosine similarity in [-1, 1]"

    def _select(self, pool: Pool, budget: int) -> np.ndarray:
        ranking = np.lexsort((np.arange(len(pool)), -np.asarray(pool.quality, dtype=np.float64)))
        picked = score_first_filter(pool.embeddings, ranking, budget, self.max_similarity)
        return _fill(picked, ranking, budget)


@SELECTORS.register("ifd")
class IFDSelector(BaseSelector):
    """The highest instruction-following difficulty first.

    IFD(Q, A) = L(A | Q) / L(A): the mean per-token loss of the response given the instruction, divided by its
    loss without it, from a causal LM (the pool's ``ifd`` feature, computed once by the ``ifd`` stage with the
    profile's base model). A high IFD means the instruction helps little, so the sample teaches the most;
    IFD >= 1 means the instruction does not help at all (misaligned pairs), and such samples are dropped
    (``max_ifd``), as Superfiltering does. If fewer than ``budget`` samples are left, the dropped ones fill the
    rest in order of increasing IFD.

    Parameters
    ----------
    max_ifd : float
        Samples with IFD >= ``max_ifd`` go last (``inf`` keeps all in plain IFD order).
    random_state : int
        Unused (deterministic); kept for the contract.

    References
    ----------
    Li et al., "From Quantity to Quality: Boosting LLM Performance with Self-Guided Data Selection for Instruction
    Tuning" (Cherry LLM), NAACL 2024 (arXiv 2308.12032); Li et al., "Superfiltering: Weak-to-Strong Data
    Filtering for Fast Instruction-Tuning", ACL 2024 (arXiv 2402.00530).
    """

    name = "ifd"
    version = "1"
    requires = frozenset({"ifd"})

    def __init__(self, *, max_ifd: float = 1.0, random_state: int = 0):
        self.max_ifd = max_ifd
        self.random_state = random_state

    def _select(self, pool: Pool, budget: int) -> np.ndarray:
        ifd = np.asarray(pool.ifd, dtype=np.float64)
        ifd = np.where(np.isfinite(ifd), ifd, np.inf)  # an unscorable sample (empty response) goes last
        valid = ifd < self.max_ifd
        idx = np.arange(len(pool))
        good = np.lexsort((idx, -ifd, ~valid))  # valid first by decreasing IFD ...
        n_valid = int(valid.sum())
        rest = good[n_valid:]
        rest = rest[np.lexsort((rest, ifd[rest]))]  # ... then the dropped ones by increasing IFD
        return np.concatenate([good[:n_valid], rest])[:budget].astype(np.int64)
