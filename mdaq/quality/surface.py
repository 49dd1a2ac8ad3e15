"""A trained surface-feature baseline for the QSM: logistic regression on cheap text features.

The features of an (instruction, response) pair (:data:`FEATURES`) are lengths and character shares that a scorer
can read without understanding the text. Training is pairwise on revision pairs: x = f(revised) − f(raw) labelled 1
and −x labelled 0, features divided by their standard deviation over the training responses, no intercept (the
labels are symmetric), so the score w·f(instruction, response) is higher for the response the model prefers. If the
QSM does not beat this baseline, its accuracy can be explained by surface features.

Deterministic (lbfgs, a fixed seed) and fast: it trains in the QSM-evaluation stage and is saved nowhere.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Sequence
from typing import Any

import numpy as np

from mdaq.quality.evaluate import pair_texts

FEATURES = (
    "log_response_chars",  # log(1 + characters of the response)
    "log_length_ratio",  # log((1 + response chars) / (1 + instruction chars))
    "log_lines",  # log(1 + lines of the response)
    "punctuation_share",  # share of the response's characters that are Unicode punctuation (P*)
    "digit_share",  # share that are decimal digits (Nd)
    "log_instruction_chars",  # log(1 + characters of the instruction)
    "ascii_letter_share",  # share of the response's letters that are ASCII (untranslated English left in)
    "distinct_word_share",  # distinct / all whitespace-separated words (repetition)
)


def text_features(instruction: str, response: str) -> list[float]:
    """The :data:`FEATURES` of one (instruction, response) pair, in that order."""
    n = len(response)
    categories = [unicodedata.category(c) for c in response]
    letters = [c for c, cat in zip(response, categories, strict=True) if cat.startswith("L")]
    words = response.split()
    return [
        math.log1p(n),
        math.log((1 + n) / (1 + len(instruction))),
        math.log1p(response.count("\n") + 1),
        sum(cat.startswith("P") for cat in categories) / max(1, n),
        sum(cat == "Nd" for cat in categories) / max(1, n),
        math.log1p(len(instruction)),
        sum(c.isascii() for c in letters) / max(1, len(letters)),
        len(set(words)) / max(1, len(words)),
    ]


def surface_features(instructions: Sequence[str], responses: Sequence[str]) -> np.ndarray:
    """Feature matrix (n, len(FEATURES)) of (instruction, response) pairs."""
    if len(instructions) != len(responses):
        raise ValueError(f"{len(instructions)} instructions but {len(responses)} responses")
    rows = [text_features(i, r) for i, r in zip(instructions, responses, strict=True)]
    return np.array(rows, dtype=float).reshape(len(rows), len(FEATURES))


class SurfaceBaseline:
    """Pairwise logistic regression on :data:`FEATURES`; :meth:`score` is a :data:`~mdaq.quality.evaluate.ScoreFn`.

    Parameters
    ----------
    C : float
        Inverse L2 regularisation strength of :class:`sklearn.linear_model.LogisticRegression`.
    seed : int
        Its ``random_state`` (lbfgs does not use it; kept so a solver change stays seeded).
    """

    name = "surface"

    def __init__(self, *, C: float = 1.0, seed: int = 0) -> None:
        self.C, self.seed = C, seed
        self.scale_: np.ndarray | None = None
        self.coef_: np.ndarray | None = None

    def fit(self, rows: Sequence[dict[str, Any]]) -> SurfaceBaseline:
        """Train on revision rows (``qsm_train`` or ``heldout`` format, :func:`~mdaq.quality.evaluate.pair_texts`)."""
        from sklearn.linear_model import LogisticRegression

        if not rows:
            raise ValueError("the surface baseline needs at least one training pair, got none")
        anchors, revised, raw, _ = pair_texts(rows)
        f_rev, f_raw = surface_features(anchors, revised), surface_features(anchors, raw)
        scale = np.vstack([f_rev, f_raw]).std(axis=0)
        self.scale_ = np.where(scale > 0, scale, 1.0)
        x = (f_rev - f_raw) / self.scale_
        y = np.r_[np.ones(len(x)), np.zeros(len(x))]
        model = LogisticRegression(C=self.C, fit_intercept=False, random_state=self.seed, max_iter=1000)
        self.coef_ = model.fit(np.vstack([x, -x]), y).coef_[0].copy()
        return self

    def score(self, instructions: Sequence[str], responses: Sequence[str]) -> np.ndarray:
        """w·f(instruction, response): higher = the response the model prefers."""
        if self.coef_ is None or self.scale_ is None:
            raise RuntimeError("SurfaceBaseline.score called before fit")
        return surface_features(instructions, responses) / self.scale_ @ self.coef_

    def weights(self) -> dict[str, float]:
        """Weight of each standardised feature (positive: more of it is preferred)."""
        if self.coef_ is None:
            raise RuntimeError("SurfaceBaseline.weights called before fit")
        return {name: float(w) for name, w in zip(FEATURES, self.coef_, strict=True)}
