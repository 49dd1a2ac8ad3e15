"""The selector contract: scikit-learn manners, declared features, validated output."""

from __future__ import annotations

import math
import numbers
import types
import typing
from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator

from mdaq.errors import DataError
from mdaq.io import first_nonfinite_row, nonfinite_text
from mdaq.registry import Registry
from mdaq.types import Pool

SELECTORS: Registry[type[BaseSelector]] = Registry("selector")
FEATURES = frozenset({"quality", "embeddings", "ifd"})  # Pool fields a selector may declare in `requires`
SCORERS = ("qsm", "regression")  # BaseSelector.scorer: the quality scorer behind Pool.quality


class BaseSelector(BaseEstimator):
    """Base class of every selection method.

    Subclasses set ``name``, ``version`` and ``requires`` (a subset of :data:`FEATURES`: QSM ``quality`` scores,
    diversity ``embeddings``, ``ifd`` scores from a causal LM), store their
    hyperparameters unchanged in a keyword-only ``__init__`` (always including ``random_state``), and implement
    ``_select(pool, budget)``. Selection is stateless per pool: anything learned arrives through ``Pool.quality``.
    ``role`` places the method's row on the leaderboard: ``"method"`` (ranked), ``"reference"`` (the full pool,
    what every method is compared against) or ``"control"`` (reads the evaluation label; shows whether the metric
    separates good from bad data, never ranked). ``scorer`` names the quality scorer whose scores the pipeline puts
    in ``Pool.quality`` for this method: ``"qsm"`` (M-DaQ's triplet QSM, stage ``qsm``) or ``"regression"`` (CaR's
    single-text regression scorer, stage ``car_scorer``), so each paper's method ranks with its own scorer.
    """

    name: ClassVar[str] = "base"
    version: ClassVar[str] = "0"
    requires: ClassVar[frozenset[str]] = frozenset()
    uses_budget: ClassVar[bool] = True
    role: ClassVar[str] = "method"  # "reference" (full), "control" (reads the evaluation label), or "method"
    scorer: ClassVar[str] = "qsm"  # which scorer fills Pool.quality: "qsm" (M-DaQ's) or "regression" (CaR's own)

    def select(self, pool: Pool, budget: int) -> np.ndarray:
        """Indices into ``pool.samples`` in priority order.

        Parameters
        ----------
        pool : Pool
            Candidates plus the features this selector declares in ``requires``.
        budget : int
            Number of samples wanted (>= 0); selectors with ``uses_budget = False`` (``full``) ignore it.

        Returns
        -------
        numpy.ndarray of int64
            Unique indices, ``min(budget, len(pool))`` of them (all of them when ``uses_budget`` is False).

        Raises
        ------
        ValueError
            Negative budget, a required feature missing from the pool, or an invalid result from ``_select``.
        """
        if not isinstance(budget, int | np.integer) or isinstance(budget, bool) or budget < 0:
            raise ValueError(f"{self.name}: budget must be a non-negative integer, got {budget!r}")
        self.check_params()
        for feature in sorted(self.requires):
            if getattr(pool, feature) is None:
                raise ValueError(f"{self.name} requires pool.{feature}, which is None for pool {pool.lang!r}")
            row = first_nonfinite_row(getattr(pool, feature)) if feature in FINITE_FEATURES else None
            if row is not None:
                value = nonfinite_text(getattr(pool, feature), row)
                raise ValueError(f"{self.name}: pool {pool.lang!r}, {feature} row {row} holds {value}")
        n_wanted = min(int(budget), len(pool)) if self.uses_budget else len(pool)
        idx = np.asarray(self._select(pool, n_wanted), dtype=np.int64)
        if idx.ndim != 1 or len(idx) != n_wanted:
            raise ValueError(f"{self.name}: returned {idx.shape} indices, expected ({n_wanted},)")
        if len(idx) and (idx.min() < 0 or idx.max() >= len(pool) or len(np.unique(idx)) != len(idx)):
            raise ValueError(f"{self.name}: returned out-of-range or repeated indices")
        return idx

    def _select(self, pool: Pool, budget: int) -> np.ndarray:
        raise NotImplementedError

    def param_problems(self) -> list[tuple[str, str]]:
        """``(parameter, what is wrong)`` for every stored hyperparameter that ``__init__``'s annotation or
        :meth:`_param_problems` (the selector's own ranges) refuses; empty when all are valid.

        ``__init__`` only stores (scikit-learn's rule), so this is where a value is checked: by :meth:`select`
        before any work, by :func:`mdaq.selectors.get_selector`, and by ``mdaq profile use / check``.
        """
        try:
            hints = typing.get_type_hints(type(self).__init__)
        except (NameError, TypeError):  # an annotation that does not resolve: range checks only
            hints = {}
        problems = [
            (key, f"expected {_type_name(hints[key])}, got {value!r:.40} ({type(value).__name__})")
            for key, value in self.get_params(deep=False).items()
            if key in hints and not _is_instance(value, hints[key])
        ]
        if problems:
            return problems
        if getattr(self, "random_state", 0) < 0:
            problems.append(("random_state", f"{self.random_state} is negative (numpy seeds are >= 0)"))
        return problems + list(self._param_problems())

    def _param_problems(self) -> Iterator[tuple[str, str]]:
        """Range checks of a selector's own hyperparameters (after their types were checked); none by default."""
        return iter(())

    def check_params(self, source: object = "selector parameters") -> None:
        """Raise the first of :meth:`param_problems` as a :class:`~mdaq.errors.DataError` naming ``source`` (a
        params file, ``--params``) and the key ``selectors.<name>.<parameter>``."""
        for key, message in self.param_problems():
            raise DataError(source, message, field=f"selectors.{self.name}.{key}")


FINITE_FEATURES = frozenset({"quality", "embeddings"})  # ifd may hold NaN: an unscorable sample, ranked last


def _is_instance(value: Any, tp: Any) -> bool:
    """Whether ``value`` fits a simple annotation (``int``, ``float``, ``str``, ``bool`` or a union of them);
    numpy scalars count as numbers, ``bool`` does not, and a float must not be NaN."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return any(_is_instance(value, arg) for arg in typing.get_args(tp))
    if tp is bool:
        return isinstance(value, bool | np.bool_)
    if tp is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool | np.bool_)
    if tp is float:
        real = isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_)
        return real and not math.isnan(value)
    return isinstance(value, tp) if isinstance(tp, type) else True


def _type_name(tp: Any) -> str:
    args = typing.get_args(tp)
    if not args:
        return "a number" if tp is float else f"{'an' if tp is int else 'a'} {getattr(tp, '__name__', tp)}"
    return " or ".join(_type_name(a) for a in args)
