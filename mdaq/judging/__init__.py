"""Pairwise LLM judges: a registry of backends, :func:`make_judge` from the ``params.yaml: judge`` section, and
the both-orders protocol that produces judgment records.

Built-in backends: ``openai_compat`` (any OpenAI-compatible server), ``fake`` (seeded hash verdicts) and
``length`` (prefers the longer answer).
"""

from __future__ import annotations

import inspect
import logging
from pathlib import Path
from typing import Any

from mdaq.judging import doubles, openai_compat  # noqa: F401  (register fake, length, openai_compat)
from mdaq.judging.base import (
    BENCHMARKS,
    JUDGES,
    ORDERS,
    RECORD_KEYS,
    ChatBackend,
    Completion,
    Judge,
    JudgeError,
    JudgeItem,
    JudgeRequest,
    Prompt,
    build_conversation,
    judge_both_orders,
    load_prompt,
    parse_verdict,
    winner_of,
)
from mdaq.judging.cache import JudgeCache, cache_key
from mdaq.judging.doubles import FakeJudge, LengthJudge
from mdaq.judging.openai_compat import OpenAICompatJudge, RateLimiter

__all__ = [
    "BENCHMARKS",
    "JUDGES",
    "ORDERS",
    "RECORD_KEYS",
    "ChatBackend",
    "Completion",
    "FakeJudge",
    "Judge",
    "JudgeCache",
    "JudgeError",
    "JudgeItem",
    "JudgeRequest",
    "LengthJudge",
    "OpenAICompatJudge",
    "Prompt",
    "RateLimiter",
    "build_conversation",
    "cache_key",
    "judge_both_orders",
    "load_prompt",
    "make_judge",
    "parse_verdict",
    "check_backend",
    "pipeline_backends",
    "winner_of",
]

log = logging.getLogger(__name__)

# Annotation (as written in a backend's __init__) -> accepted Python types; others are checked by the class.
_SIMPLE_TYPES: dict[str, tuple[type, ...]] = {"str": (str,), "int": (int,), "float": (int, float), "bool": (bool,)}


def _params(cls: type) -> dict[str, inspect.Parameter]:
    """Keyword parameters of a backend's ``__init__`` (its config schema)."""
    sig = inspect.signature(cls.__init__)
    return {n: p for n, p in sig.parameters.items() if n != "self" and p.kind is p.KEYWORD_ONLY}


def pipeline_backends() -> tuple[str, ...]:
    """Registered judge backends that the pipeline accepts (``params.yaml: judge.backend``): every one that is not a
    test double (:attr:`Judge.is_test_double`), plus ``"none"`` (skip the judge stage)."""
    return ("none", *(n for n in JUDGES.names() if not JUDGES.get(n).is_test_double))


def check_backend(backend: str, path: str | Path = "params.yaml") -> str:
    """``backend`` when the pipeline accepts it (:func:`pipeline_backends`), else :class:`mdaq.errors.DataError`
    naming ``path`` and ``judge.backend``: a test double is refused, so its verdicts never reach a leaderboard.

    Called where a profile is adopted or checked (``mdaq profile use / check``) and by the judge stage; not by
    :func:`mdaq.config.load_params`, which stays free of registries so that every stage's import closure (and so
    its DVC dependencies, ``tests/test_architecture.py``) does not include the judge backends.
    """
    from mdaq.errors import DataError

    if backend not in pipeline_backends():
        why = "is a test double, not a judge" if backend in JUDGES.names() else "is not a judge backend"
        raise DataError(path, f"{backend!r} {why}; one of {pipeline_backends()}", field="judge.backend")
    return backend


def make_judge(cfg: dict[str, Any]) -> Judge:
    """Build a judge from a config dict such as ``params.yaml: judge``.

    ``cfg["backend"]`` picks the class from :data:`JUDGES`; the other keys are its ``__init__`` arguments (the
    class signature is the schema). A key that no backend accepts is an error; a key that only another backend
    accepts (e.g. ``base_url`` with ``backend: fake``) is ignored, so switching backends is a one-key change.

    Parameters
    ----------
    cfg : dict
        ``backend`` plus settings, e.g. ``{backend: openai_compat, model: ..., base_url: ..., cache_path: ...}``.

    Returns
    -------
    Judge

    Raises
    ------
    ValueError
        On a missing or unknown backend, an unknown key, a wrong value type or a missing required setting.
    """
    cfg = dict(cfg)
    backend = cfg.pop("backend", None)
    if not isinstance(backend, str):
        raise ValueError(f"judge: 'backend' must be one of {JUDGES.names()}, got {backend!r}")
    try:
        cls = JUDGES.get(backend)
    except KeyError as e:
        raise ValueError(f"judge: {e.args[0]}") from None
    schemas = {name: _params(JUDGES.get(name)) for name in JUDGES.names()}
    known = set().union(*schemas.values())
    unknown = sorted(set(cfg) - known)
    if unknown:
        raise ValueError(f"judge: unknown key(s) {unknown}; valid keys: {['backend', *sorted(known)]}")
    own = schemas[backend]
    ignored = sorted(set(cfg) - set(own))
    if ignored:
        log.debug("judge backend %r ignores %s", backend, ignored)
    kwargs = {k: v for k, v in cfg.items() if k in own}
    for key, value in kwargs.items():
        types = _SIMPLE_TYPES.get(str(own[key].annotation))
        if types and (not isinstance(value, types) or (isinstance(value, bool) and bool not in types)):
            raise ValueError(f"judge.{key}: expected {own[key].annotation}, got {type(value).__name__} {value!r}")
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise ValueError(f"judge ({backend}): {e}") from None
