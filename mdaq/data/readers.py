"""Reading and checking raw input for every loader: JSON/CSV/Parquet parsing, fields, language codes, duplicates.

The loaders in :mod:`mdaq.data.loaders` are strict: any problem raises a :class:`~mdaq.errors.DataError` that names the
file, the record and the field. Nothing is dropped silently. When a source is known to contain exact duplicates or
empty outputs, load it with ``strict=False`` and pass the samples to :func:`clean_samples`, which removes them and
returns how many were removed for each reason.
"""

from __future__ import annotations

import csv
import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from mdaq.errors import DataError
from mdaq.io import check_file, parse_json, read_text
from mdaq.names import ISO_639_1, check_lang, is_lang_code
from mdaq.types import Sample

__all__ = [
    "ISO_639_1",
    "DEFAULT_COLUMNS",
    "is_lang_code",
    "check_lang",
    "check_text",
    "validate_records",
    "validate_samples",
    "clean_samples",
    "read_json_records",
    "read_table",
    "resolve_lang",
    "resolve_columns",
]

logger = logging.getLogger(__name__)

#: mdaq field -> record key, used when no column mapping is given.
DEFAULT_COLUMNS: Mapping[str, str] = {"instruction": "instruction", "input": "input", "output": "output"}

_OPTIONAL_FIELDS = frozenset({"input"})


def check_text(value: object, path: object, record: int | str | None, field: str, *, allow_empty: bool = False) -> str:
    """Return ``value`` if it is a string (non-blank unless ``allow_empty``), else raise a :class:`DataError`."""
    if value is None:
        raise DataError(path, "value is missing or null", record=record, field=field)
    if not isinstance(value, str):
        raise DataError(
            path, f"expected a string, got {type(value).__name__} {value!r:.40}", record=record, field=field
        )
    if not allow_empty and not value.strip():
        raise DataError(path, "is empty" if not value else "is whitespace-only", record=record, field=field)
    return value


def _label(labels: Sequence[int | str] | None, i: int) -> int | str:
    return labels[i] if labels is not None else i


def validate_records(
    records: Sequence[Any],
    path: object,
    *,
    columns: Mapping[str, str] | None = None,
    allow_empty: bool = False,
    labels: Sequence[int | str] | None = None,
) -> None:
    """Check raw records (dicts read from a file) before they become samples.

    Parameters
    ----------
    records : sequence
        The parsed records.
    path : str or Path
        File name for error messages.
    columns : mapping, optional
        mdaq field -> record key (default :data:`DEFAULT_COLUMNS`); ``input`` is optional and may be null.
    allow_empty : bool
        Accept empty or whitespace-only ``instruction``/``output`` (for a later :func:`clean_samples`).
    labels : sequence, optional
        Record label per record for messages (default: the 0-based index).

    Raises
    ------
    DataError
        For a record that is not an object, a missing required field, a non-string field or an empty field.
    """
    cols = dict(DEFAULT_COLUMNS if columns is None else columns)
    for i, rec in enumerate(records):
        label = _label(labels, i)
        if not isinstance(rec, Mapping):
            raise DataError(path, f"record is a {type(rec).__name__}, expected an object", record=label)
        for fld, key in cols.items():
            optional = fld in _OPTIONAL_FIELDS
            if key not in rec:
                if optional:
                    continue
                raise DataError(path, f"missing required field (keys: {sorted(map(str, rec))})", label, key)
            if optional and rec[key] is None:
                continue
            check_text(rec[key], path, label, key, allow_empty=allow_empty or optional)


def validate_samples(
    samples: Sequence[Sample],
    path: object,
    *,
    allow_empty: bool = False,
    allow_duplicates: bool = False,
    labels: Sequence[int | str] | None = None,
) -> None:
    """Check built samples: language codes, text fields and duplicate ids.

    Parameters
    ----------
    samples : sequence of Sample
        Samples from one file.
    path : str or Path
        File name for error messages.
    allow_empty : bool
        Accept empty ``instruction``/``output``.
    allow_duplicates : bool
        Accept repeated ids (exact duplicates; :func:`clean_samples` removes them).
    labels : sequence, optional
        Record label per sample for messages (default: the 0-based index).

    Raises
    ------
    DataError
        For a bad language code, a non-string or empty field, or an id seen before (naming both records).
    """
    first: dict[str, int | str] = {}
    for i, s in enumerate(samples):
        label = _label(labels, i)
        check_lang(s.lang, path, label)
        check_text(s.instruction, path, label, "instruction", allow_empty=allow_empty)
        check_text(s.input, path, label, "input", allow_empty=True)
        check_text(s.output, path, label, "output", allow_empty=allow_empty)
        if s.id in first and not allow_duplicates:
            raise DataError(
                path,
                f"duplicate id {s.id}: records {first[s.id]} and {label} have the same lang/instruction/input/"
                "output (load with strict=False and use clean_samples to drop exact duplicates)",
                record=label,
                field="id",
            )
        first.setdefault(s.id, label)


def clean_samples(samples: Sequence[Sample]) -> tuple[list[Sample], Counter]:
    """Remove exact duplicates and empty rows, counting what was removed and why.

    This is the explicit alternative to the strict loaders (which raise on the same problems): load with
    ``strict=False``, then call this and report the counts.

    Parameters
    ----------
    samples : sequence of Sample
        Samples in source order.

    Returns
    -------
    kept : list of Sample
        The samples that survive, in order (the first of each group of duplicates is kept).
    removed : collections.Counter
        Count per reason: ``"empty_instruction"``, ``"empty_output"``, ``"duplicate"`` (only reasons that occurred).
    """
    kept: list[Sample] = []
    removed: Counter = Counter()
    seen: set[str] = set()
    for s in samples:
        if not s.instruction.strip():
            removed["empty_instruction"] += 1
        elif not s.output.strip():
            removed["empty_output"] += 1
        elif s.id in seen:
            removed["duplicate"] += 1
        else:
            seen.add(s.id)
            kept.append(s)
    if removed:
        logger.info("clean_samples: kept %d of %d (%s)", len(kept), len(samples), dict(removed))
    return kept, removed


def _read_text(path: Path) -> str:
    if not path.exists():
        raise DataError(path, "file not found")
    check_file(path)
    return read_text(path)


def _parse_json(path: Path, text: str) -> list[Any]:
    try:
        data = parse_json(text, path)
    except DataError as e:
        if "Extra data" not in e.message:
            raise
        raise DataError(path, f"{e.message} (one object per line? name the file .jsonl)") from None
    if not isinstance(data, list):
        raise DataError(path, f"expected a JSON list of records, got a {type(data).__name__}")
    return data


def _parse_jsonl(path: Path, text: str) -> list[Any]:
    records: list[Any] = []
    for lineno, line in enumerate(text.split("\n"), start=1):  # not splitlines(): U+2028 is legal inside JSON
        if line.strip():
            records.append(parse_json(line, path, record=len(records), line=lineno))
    return records


_JSON_PARSERS: Mapping[str, Callable[[Path, str], list[Any]]] = {".json": _parse_json, ".jsonl": _parse_jsonl}


def read_json_records(path: str | Path) -> list[Any]:
    """Parse a JSON list (``.json``) or JSON Lines (``.jsonl``) file; blank JSONL lines are skipped.

    Raises
    ------
    DataError
        For a missing file, bad UTF-8, malformed JSON (with line and column) or a ``.json`` that is not a list.
    """
    p = Path(path)
    parser = _JSON_PARSERS.get(p.suffix.lower())
    if parser is None:
        raise DataError(p, f"unknown JSON extension {p.suffix!r}; expected .json or .jsonl")
    return parser(p, _read_text(p))


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, Any]]]:
    import pandas as pd

    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False, encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(path, f"not valid UTF-8 (byte {e.start})") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise DataError(path, f"malformed CSV: {' '.join(str(e).split())}") from None
    with open(path, encoding="utf-8-sig", newline="") as f:  # pandas renames a repeated column to "name.1"
        try:
            header = next(csv.reader(f), [])
        except csv.Error as e:  # e.g. a header cell over the csv module's field size limit
            raise DataError(path, f"malformed CSV header: {e}", record="line 1") from None
    repeated = sorted({c for c in header if header.count(c) > 1})
    if repeated:
        raise DataError(path, f"repeated column name(s) in the header: {repeated}", field=repeated[0])
    return [str(c) for c in df.columns], df.to_dict(orient="records")


def _read_parquet(path: Path) -> tuple[list[str], list[dict[str, Any]]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as e:
        raise DataError(path, f"malformed Parquet: {e}") from None
    return list(table.column_names), table.to_pylist()


_TABLE_READERS: Mapping[str, Callable[[Path], tuple[list[str], list[dict[str, Any]]]]] = {
    ".csv": _read_csv,
    ".parquet": _read_parquet,
    ".pq": _read_parquet,
}


def read_table(path: str | Path) -> tuple[list[str], list[dict[str, Any]]]:
    """Read a ``.csv`` (all cells as strings) or ``.parquet``/``.pq`` file into (column names, row dicts).

    Raises
    ------
    DataError
        For an unknown extension, a missing file or a file that cannot be parsed.
    """
    p = Path(path)
    reader = _TABLE_READERS.get(p.suffix.lower())
    if reader is None:
        raise DataError(p, f"unknown table extension {p.suffix!r}; expected one of {sorted(_TABLE_READERS)}")
    if not p.exists():
        raise DataError(p, "file not found")
    return reader(check_file(p))


def resolve_lang(path: object, lang: object, lang_column: str | None) -> str | None:
    """Check the file-wide ``lang`` (None when ``lang_column`` gives per-row languages; giving both is an error)."""
    if lang_column is not None:
        if lang is not None:
            raise DataError(path, f"pass either lang={lang!r} or lang_column={lang_column!r}, not both", field="lang")
        return None
    if lang is None:
        raise DataError(path, "no language given: pass lang (or lang_column for per-row languages)", field="lang")
    return check_lang(lang, path)


def resolve_columns(
    path: object, available: Sequence[str], columns: Mapping[str, str] | None, lang_column: str | None
) -> dict[str, str]:
    """Merge ``columns`` over the defaults and check every mapped column exists (default ``input`` may be absent)."""
    for fld in columns or {}:
        if fld not in DEFAULT_COLUMNS:
            raise DataError(
                path, f"unknown mdaq field {fld!r} in columns; valid: {', '.join(DEFAULT_COLUMNS)}", None, fld
            )
    cols = {**DEFAULT_COLUMNS, **(columns or {})}
    if "input" not in (columns or {}) and cols["input"] not in available:
        del cols["input"]
    for fld, col in [*cols.items(), ("lang", lang_column)]:
        if col is not None and col not in available:
            raise DataError(path, f"column {col!r} (for {fld!r}) not found; columns: {list(available)}", field=col)
    return cols
