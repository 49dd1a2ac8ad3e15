"""Read the MIDB release: expert revision pairs, translated AlpacaEval / MT-Bench, aligned across languages."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mdaq.errors import DataError
from mdaq.io import parse_json, read_text

# File stem in the MIDB release -> ISO 639-1 code.
LANG_FILES: dict[str, str] = {
    "ar": "Arabic",
    "cs": "Czech",
    "de": "German",
    "el": "Greek",
    "es": "Spanish",
    "fr": "French",
    "id": "Indonesian",
    "it": "Italian",
    "ja": "Japanese",
    "ko": "Korean",
    "ms": "Malay",
    "pt": "Portuguese",
    "ru": "Russian",
    "th": "Thai",
    "tr": "Turkish",
    "vi": "Vietnamese",
}

# Source positions missing from a language's MIDB_train file (every other file lists all 2,301 items in one
# order). Found with `detect_gap` (shared Latin words and numbers between a language and French at position p
# vs p + 1) and checked by hand: German lacks the "final price after a 10% discount" item, Portuguese the
# untranslated "Compose a 5-line poem about heartbreak" item. tests/test_midb.py re-derives both on the mirror.
SOURCE_GAPS: dict[str, tuple[int, ...]] = {"de": (191,), "pt": (1738,)}

# Canonical MIDB field -> aliases seen in the release (one Italian record uses translated keys).
PAIR_FIELDS: dict[str, tuple[str, ...]] = {
    "Raw Instruction": ("Istruzione Grezza",),
    "Raw Input": ("Input Grezzo",),
    "Raw Response": ("Risposta Grezza",),
    "Revised Instruction": ("Istruzione Rivisitata",),
    "Revised Input": ("Input Rivisitato",),
    "Revised Response": ("Risposta Rivisitata",),
}
DISTANCE_FIELDS = ("Distance", "Distanza")
INSTRUCTION_KEYS = ("instruction", "Instruction", "instrucción", "تعليمات", "التعليمات", "инструкция", "Инструкция")


@dataclass(frozen=True)
class RevisionPair:
    """One MIDB item: the machine-translated (raw) sample and its expert revision.

    ``position`` is the index in the language's file; ``source_index`` the aligned index shared by all languages.
    """

    lang: str
    position: int
    source_index: int
    raw_instruction: str
    raw_input: str
    raw_response: str
    revised_instruction: str
    revised_input: str
    revised_response: str
    distance: int | None


def _read_json_list(path: Path) -> list:
    try:
        data = parse_json(read_text(path), path)
    except FileNotFoundError:
        raise DataError(path, "file not found; run `python -m mdaq data fetch`") from None
    if not isinstance(data, list):
        raise DataError(path, f"expected a JSON list of records, got {type(data).__name__}")
    return data


def _field(rec: dict, name: str, aliases: Sequence[str], path: Path, i: int) -> str:
    for key in (name, *aliases):
        if key in rec:
            value = rec[key]
            if not isinstance(value, str):
                raise DataError(path, f"expected a string, got {type(value).__name__}", record=i, field=key)
            return value
    raise DataError(path, "missing field", record=i, field=name)


def _distance(rec: dict, path: Path, i: int) -> int | None:
    for key in DISTANCE_FIELDS:
        if key in rec:
            value = rec[key]
            if isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit()):
                return int(value)
            raise DataError(path, f"expected an integer, got {value!r}", record=i, field=key)
    return None  # one Turkish record has no distance; it is not needed for selection or evaluation


def source_indices(n: int, gaps: Sequence[int] = ()) -> np.ndarray:
    """Aligned source index of each of ``n`` file positions, skipping the missing ``gaps``."""
    gaps = set(gaps)
    out = [s for s in range(n + len(gaps)) if s not in gaps]
    return np.asarray(out[:n], dtype=np.int64)


def load_pairs(path: str | Path, lang: str, gaps: Sequence[int] | None = None) -> list[RevisionPair]:
    """Load one ``MIDB_train/<Language>.json`` file.

    Raises
    ------
    DataError
        Malformed JSON, a record that is not an object, a missing or non-string field; names file/record/field.
    """
    path = Path(path)
    records = _read_json_list(path)
    src = source_indices(len(records), SOURCE_GAPS.get(lang, ()) if gaps is None else gaps)
    pairs = []
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            raise DataError(path, f"expected an object, got {type(rec).__name__}", record=i)
        f = {name: _field(rec, name, aliases, path, i) for name, aliases in PAIR_FIELDS.items()}
        pairs.append(
            RevisionPair(
                lang,
                i,
                int(src[i]),
                f["Raw Instruction"],
                f["Raw Input"],
                f["Raw Response"],
                f["Revised Instruction"],
                f["Revised Input"],
                f["Revised Response"],
                _distance(rec, path, i),
            )
        )
    return pairs


def pair_problem(pair: RevisionPair) -> str | None:
    """Why a pair cannot serve as a preference example (``None`` if it can)."""
    if not pair.revised_response.strip():
        return "empty_revised_response"
    if not pair.raw_response.strip():
        return "empty_raw_response"
    if not pair.revised_instruction.strip():
        return "empty_revised_instruction"
    if pair.revised_response.strip() == pair.raw_response.strip():
        return "revised_equals_raw"
    return None


def load_alpaca_eval(path: str | Path) -> list[str]:
    """Translated AlpacaEval instructions; records use ``instruction`` or a translated/cased variant of the key."""
    path = Path(path)
    out = []
    for i, rec in enumerate(_read_json_list(path)):
        if not isinstance(rec, dict) or len(rec) != 1:
            keys = list(rec) if isinstance(rec, dict) else type(rec).__name__
            raise DataError(path, f"expected an object with one instruction key, got {keys}", record=i)
        key, value = next(iter(rec.items()))
        if key not in INSTRUCTION_KEYS and key.lower() != "instruction":
            raise DataError(path, "unknown instruction key", record=i, field=key)
        if not isinstance(value, str) or not value.strip():
            raise DataError(path, "empty or non-string instruction", record=i, field=key)
        out.append(value)
    return out


def load_mt_bench(path: str | Path) -> tuple[list[dict], Counter]:
    """Translated MT-Bench: ``[{"question_id": int, "turns": [str, str]}]``.

    The release has irregular records: about one per language has only its first turn (kept, for round 1
    only, as ``turns = [t1]``), and Thai question 132 has its first turn split over five list items (dropped:
    which items form turn 1 is a guess). Returns the questions and counts of those cases.
    """
    path = Path(path)
    out, counts = [], Counter()
    for i, rec in enumerate(_read_json_list(path)):
        if not isinstance(rec, dict):
            raise DataError(path, "expected an object", record=i)
        if not isinstance(rec.get("question_id"), int):
            raise DataError(path, "missing or non-integer", record=i, field="question_id")
        turns = rec.get("turns")
        if not isinstance(turns, list) or not turns or not all(isinstance(t, str) and t.strip() for t in turns):
            raise DataError(path, "expected a list of non-empty strings", record=i, field="turns")
        if len(turns) > 2:
            counts["dropped:more_than_two_turns"] += 1
            continue
        counts["ok" if len(turns) == 2 else "kept:first_turn_only"] += 1
        out.append({"question_id": rec["question_id"], "turns": list(turns)})
    return out, counts


def midb_path(root: str | Path, kind: str, lang: str) -> Path:
    """``<root>/<kind>/<Language>.json`` for an ISO code; unknown codes are an error listing the known ones."""
    if lang not in LANG_FILES:
        raise DataError(root, f"unknown MIDB language code {lang!r}; known: {', '.join(sorted(LANG_FILES))}")
    return Path(root) / kind / f"{LANG_FILES[lang]}.json"


def available_langs(root: str | Path, kind: str = "MIDB_train") -> list[str]:
    """Codes whose ``<kind>`` file exists under ``root``."""
    return sorted(code for code, name in LANG_FILES.items() if (Path(root) / kind / f"{name}.json").is_file())


_INVARIANT = re.compile(r"[0-9]+|[A-Za-z]{4,}")


def invariant_tokens(pair: RevisionPair) -> set[str]:
    """Numbers and Latin words of 4+ letters (names, code, units): they survive translation into any language."""
    text = " ".join((pair.raw_instruction, pair.raw_input, pair.raw_response))
    return set(_INVARIANT.findall(text))


def alignment_similarity(a: Sequence[RevisionPair], b: Sequence[RevisionPair], shift: int = 0) -> np.ndarray:
    """Jaccard overlap of invariant tokens between ``a[i]`` and ``b[i + shift]`` (the alignment criterion)."""
    n = min(len(a), len(b) - shift)
    sims = np.zeros(max(n, 0))
    for i in range(n):
        x, y = invariant_tokens(a[i]), invariant_tokens(b[i + shift])
        sims[i] = len(x & y) / max(1, len(x | y))
    return sims


def detect_gap(pairs: Sequence[RevisionPair], reference: Sequence[RevisionPair]) -> int | None:
    """Position where ``pairs`` drops one item relative to ``reference`` (a full-length file), or ``None``.

    Chooses the change point m maximising agreement at shift 0 before m and shift 1 after it.
    """
    s0, s1 = alignment_similarity(pairs, reference, 0), alignment_similarity(pairs, reference, 1)
    n = len(s1)
    score = np.concatenate([[0.0], np.cumsum(s0[:n])]) + (s1.sum() - np.concatenate([[0.0], np.cumsum(s1)]))
    m = int(np.argmax(score))
    return None if m >= n else m


def count_problems(pairs: Sequence[RevisionPair]) -> Counter:
    """Counts of :func:`pair_problem` reasons (``ok`` for usable pairs)."""
    return Counter(pair_problem(p) or "ok" for p in pairs)
