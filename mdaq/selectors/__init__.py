"""Selection methods. A new method is one module plus one import line here (see docs/adding-a-method.md)."""

import inspect
import re
from collections.abc import Mapping, Sequence
from typing import Any

from mdaq.errors import DataError
from mdaq.selectors import (
    baselines,  # noqa: E402,F401  (registers random, full)
    controls,  # noqa: E402,F401  (oracle_revised, oracle_raw: controls that read the label)
    diverse,  # noqa: E402,F401  (kmeans_diverse, kcenter, mmr, car)
    heuristics,  # noqa: E402,F401  (longest, quality_topk)
    mdaq_das,  # noqa: E402,F401  (mdaq_das)
    score_first,  # noqa: E402,F401  (deita, ifd)
)
from mdaq.selectors.base import FEATURES, SELECTORS, BaseSelector

__all__ = [
    "SELECTORS",
    "BaseSelector",
    "FEATURES",
    "UNLABELLED_PART",
    "get_selector",
    "check_selectors",
    "method_metadata",
    "selection_parts",
    "write_selection",
    "read_selection",
    "read_selection_parts",
]

UNLABELLED_PART = "selected"  # the `part` of a pick from a selector that does not label its picks


def get_selector(
    name: str, params: Mapping | None = None, random_state: int = 0, *, source: object = "selector parameters"
) -> BaseSelector:
    """Instantiate a registered selector and check its parameters (:meth:`BaseSelector.param_problems`): its
    ``__init__`` is the schema, so an unknown name, a wrong type or a value out of range fails here.

    Raises
    ------
    KeyError
        ``name`` is not registered (the message lists the valid names).
    DataError
        Naming ``source`` (a params file, ``--params``) and the key ``selectors.<name>[.<parameter>]``.
    """
    cls = SELECTORS.get(name)
    if params is not None and not isinstance(params, Mapping):
        msg = f"expected a mapping of parameter names to values, got {type(params).__name__} {params!r:.40}"
        raise DataError(source, msg, field=f"selectors.{name}")
    valid = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    for key in params or {}:
        if key not in valid:
            raise DataError(source, f"unknown parameter (valid: {', '.join(valid)})", field=f"selectors.{name}.{key}")
    selector = cls(**{"random_state": random_state, **(params or {})})
    selector.check_params(source)
    return selector


def check_selectors(
    methods: Sequence[str], selectors: Mapping[str, Any], path: object, method_seeds: Mapping[str, Any] = ()
) -> None:
    """What :func:`mdaq.config.load_params` cannot check without the registry: every method is registered, every
    ``selectors`` and ``method_seeds`` entry names a registered selector (or, ``sub.<name>``, a submission), and its
    parameters pass :func:`get_selector`.

    Called where a profile is adopted or checked (``mdaq profile use / check``) and, through :func:`get_selector`,
    by the select stage.

    Raises
    ------
    DataError
        Naming ``path`` and the key (``methods[i]``, ``selectors.<name>`` or ``selectors.<name>.<parameter>``).
    """
    for i, method in enumerate(methods):
        if method not in SELECTORS:
            raise DataError(
                path, f"{method!r} is not a registered method ({', '.join(SELECTORS.names())})", field=f"methods[{i}]"
            )
    from mdaq.names import submission_name

    for name in method_seeds:
        if name not in SELECTORS and submission_name(name) is None:  # sub.<name>: a submission's seeds
            raise DataError(path, f"no selector is registered as {name!r}", field=f"method_seeds.{name}")
    for name, params in selectors.items():
        if name not in SELECTORS:
            raise DataError(path, f"no selector is registered as {name!r}", field=f"selectors.{name}")
        get_selector(name, params, source=path)


_ARXIV = re.compile(r"arXiv[:\s]+(\d{4}\.\d{4,5})")


def method_metadata(method: str) -> dict[str, str]:
    """``description`` (the docstring's first line), ``paper`` (an arXiv link cited in the docstring, else empty)
    and ``code`` (the module's path in this repository) of a registered selector: what its exported method card
    says (``mdaq submit export``) and what the leaderboard links to."""
    cls = SELECTORS.get(method)
    doc = (cls.__doc__ or "").strip()
    arxiv = _ARXIV.search(doc)
    return {
        "description": doc.splitlines()[0].replace("``", "`") if doc else method,  # reST literals as Markdown
        "paper": f"https://arxiv.org/abs/{arxiv.group(1)}" if arxiv else "",
        "code": cls.__module__.replace(".", "/") + ".py",
    }


def selection_parts(selector: BaseSelector, n: int):
    """The part of each pick of ``selector``'s last :meth:`~BaseSelector.select` call, or None.

    A selector that splits its selection into parts (``mdaq_das``: ``"quality"``, ``"diversity"``, ``"fill"``)
    sets the fitted attribute ``part_labels_``, one label per returned index in order; other selectors do not.

    Returns
    -------
    numpy.ndarray of str or None
        ``n`` labels, or None when the selector exposes none.

    Raises
    ------
    ValueError
        The labels do not match the ``n`` indices of the last selection.
    """
    import numpy as np

    labels = getattr(selector, "part_labels_", None)
    if labels is None:
        return None
    labels = np.asarray(labels, dtype=str)
    if labels.shape != (n,):
        raise ValueError(f"{selector.name}: part_labels_ has shape {labels.shape}, expected ({n},)")
    return labels


def write_selection(path, pool, indices, method: str, parts=None) -> int:
    """Write the selection as JSONL rows ``{rank, index, id, method}`` (atomic), plus ``part`` per row when
    ``parts`` (one label per index, e.g. from :func:`selection_parts`) is given. Without parts the rows are
    unchanged, so the files of selectors that do not label their picks keep their content hash."""
    from mdaq.io import write_jsonl

    if parts is not None and len(parts) != len(indices):
        raise ValueError(f"{len(parts)} part labels for {len(indices)} indices")
    rows = ({"rank": r, "index": int(i), "id": pool.samples[i].id, "method": method} for r, i in enumerate(indices))
    if parts is not None:
        rows = ({**row, "part": str(part)} for row, part in zip(rows, parts, strict=True))
    return write_jsonl(path, rows)


def read_selection(path) -> list[str]:
    """Selected sample ids in priority order."""
    from mdaq.io import iter_jsonl

    return [row["id"] for row in iter_jsonl(path)]


def read_selection_parts(path) -> list[str]:
    """The ``part`` of every selected sample in priority order (:data:`UNLABELLED_PART` where a row has none)."""
    from mdaq.io import iter_jsonl

    return [str(row.get("part", UNLABELLED_PART)) for row in iter_jsonl(path)]
