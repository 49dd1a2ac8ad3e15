"""Core record types: one `Sample` flows through every step; a `Pool` is one language's candidates + features."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = ["Sample", "Pool", "Embedder", "QualityScorer", "sample_id"]


def sample_id(lang: str, instruction: str, input: str, output: str) -> str:
    """Stable content id: the first 16 hex digits of sha256 over (lang, instruction, input, output).

    The id depends on content only, so the same sample read from two sources gets the same id (that is how
    duplicates are found) and ids survive re-ordering of the source file.
    """
    payload = json.dumps([lang, instruction, input, output], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class Sample:
    """One instruction-tuning example.

    Parameters
    ----------
    id : str
        Stable content id (see :func:`sample_id`).
    lang : str
        ISO 639-1 code (always a string: ``"no"`` is Norwegian, never ``False``).
    instruction, input, output : str
        Alpaca-style fields; ``input`` may be empty, ``instruction`` and ``output`` may not.
    source : str
        Where the sample came from, e.g. ``"midb:French.json#12"``.
    meta : Mapping
        Anything else (labels hidden from selectors live here, e.g. ``is_revised``).
    """

    id: str
    lang: str
    instruction: str
    input: str
    output: str
    source: str = ""
    meta: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def create(
        cls, lang: str, instruction: str, input: str, output: str, source: str = "", meta: Mapping | None = None
    ) -> Sample:
        """Build a sample and compute its content id."""
        return cls(
            id=sample_id(lang, instruction, input, output),
            lang=lang,
            instruction=instruction,
            input=input,
            output=output,
            source=source,
            meta=dict(meta or {}),
        )

    def prompt_text(self) -> str:
        """Instruction plus input, as one text (the QSM anchor and the LM prompt body)."""
        return f"{self.instruction}\n\n{self.input}" if self.input else self.instruction

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON/Parquet."""
        return {
            "id": self.id,
            "lang": self.lang,
            "instruction": self.instruction,
            "input": self.input,
            "output": self.output,
            "source": self.source,
            "meta": dict(self.meta),
        }


@dataclass(frozen=True)
class Pool:
    """One language's candidate samples plus precomputed features (never recomputed by selectors).

    Raises
    ------
    ValueError
        If a feature array does not have one row per sample.
    """

    lang: str
    samples: Sequence[Sample]
    quality: np.ndarray | None = None
    embeddings: np.ndarray | None = None
    ifd: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.samples)
        for name in ("quality", "ifd"):
            value = getattr(self, name)
            if value is not None and np.shape(value) != (n,):
                raise ValueError(f"Pool[{self.lang}]: {name} has shape {np.shape(value)}, expected ({n},)")
        if self.embeddings is not None and (np.ndim(self.embeddings) != 2 or len(self.embeddings) != n):
            shape = np.shape(self.embeddings)
            raise ValueError(f"Pool[{self.lang}]: embeddings have shape {shape}, expected ({n}, d)")

    def __len__(self) -> int:
        return len(self.samples)


@runtime_checkable
class Embedder(Protocol):
    """Maps texts to unit-norm float32 rows."""

    name: str
    dim: int

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


@runtime_checkable
class QualityScorer(Protocol):
    """Scores samples; higher is better."""

    name: str

    def score(self, samples: Sequence[Sample]) -> np.ndarray: ...
