"""Selection methods. A new method is one module plus one import line here (see docs/adding-a-method.md)."""

from mdaq.selectors import (
    baselines,  # noqa: E402,F401  (registers random, full)
    diverse,  # noqa: E402,F401  (kmeans_diverse, kcenter, mmr, car)
    heuristics,  # noqa: E402,F401  (longest, quality_topk)
    mdaq_das,  # noqa: E402,F401  (mdaq_das)
    score_first,  # noqa: E402,F401  (deita, ifd)
)
from mdaq.selectors.base import FEATURES, SELECTORS, BaseSelector

__all__ = ["SELECTORS", "BaseSelector", "FEATURES", "get_selector", "write_selection", "read_selection"]


def get_selector(name: str, params: dict | None = None, random_state: int = 0) -> BaseSelector:
    """Instantiate a registered selector; its ``__init__`` is the schema, so bad params fail here."""
    cls = SELECTORS.get(name)
    kwargs = {"random_state": random_state, **(params or {})}
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise ValueError(f"selectors.{name}: {e}") from None


def write_selection(path, pool, indices, method: str) -> int:
    """Write the selection as JSONL rows ``{rank, index, id}`` (atomic)."""
    from mdaq.io import write_jsonl

    return write_jsonl(
        path, ({"rank": r, "index": int(i), "id": pool.samples[i].id, "method": method} for r, i in enumerate(indices))
    )


def read_selection(path) -> list[str]:
    """Selected sample ids in priority order."""
    from mdaq.io import iter_jsonl

    return [row["id"] for row in iter_jsonl(path)]
