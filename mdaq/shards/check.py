"""The rules every row of a sharded pool obeys, the same as for mdaq's JSONL pools (:func:`mdaq.io.sample_from_dict`,
:func:`mdaq.data.frozen.frozen_records`): text fields are strings, ``id``/``instruction``/``output`` are not blank, the
language code is known, each id is its sample's content hash, and no id repeats anywhere in the pool."""

from __future__ import annotations

import bisect
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mdaq.errors import DataError
from mdaq.io import parse_json
from mdaq.names import check_lang
from mdaq.types import sample_id

if TYPE_CHECKING:
    import pyarrow as pa

FORMAT = "mdaq.shards"  # the manifest's `format`: marks a folder `mdaq data shard` wrote (and may replace)
MANIFEST = "_manifest.json"  # leading `_`: Arrow and Spark dataset discovery skip it, as the readers here do
REQUIRED_COLUMNS = ("id", "lang", "instruction", "input", "output")
OPTIONAL_COLUMNS = ("source", "meta")  # `meta`: a JSON object as text; any other column is metadata too
ID_RULE = "sha256 of the JSON list [lang, instruction, input, output], first 16 hex digits (mdaq.types.sample_id)"
_NON_BLANK = ("id", "instruction", "output")  # input may be empty (Alpaca's convention)


def is_text_type(t: pa.DataType) -> bool:
    """Whether Arrow type ``t`` holds text (string, large string, string view, or dictionary-encoded text)."""
    import pyarrow as pa

    if pa.types.is_dictionary(t):
        t = t.value_type
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


def check_schema(path: Path, schema: pa.Schema) -> None:
    """Raise :class:`DataError` naming the shard and the column when a required column is missing, a column name
    repeats, or a required or optional column does not hold text (an optional one may be all null: pyarrow types
    a column of only nulls ``null``)."""
    import pyarrow as pa

    names = list(schema.names)
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise DataError(path, f"repeated column name(s): {repeated}", field=repeated[0])
    for col in REQUIRED_COLUMNS:
        if col not in names:
            raise DataError(path, f"missing column (columns: {names})", field=col)
    for col in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS):
        t = schema.field(col).type if col in names else None
        if t is not None and not is_text_type(t) and not (col in OPTIONAL_COLUMNS and pa.types.is_null(t)):
            raise DataError(path, f"column has type {t}, expected string", field=col)


def _text(value: object, path: Path, record: str, field: str, *, blank_ok: bool) -> str:
    if not isinstance(value, str):
        raise DataError(path, "missing or non-string", record=record, field=field)
    if not blank_ok and not value.strip():
        raise DataError(path, "is empty" if not value else "is whitespace-only", record=record, field=field)
    return value


def _meta(value: object, extra: dict[str, Any], path: Path, record: str) -> dict[str, Any]:
    meta = {} if value is None else parse_json(value, path, record=record)  # type: ignore[arg-type]
    if not isinstance(meta, dict):
        raise DataError(path, f"expected a JSON object, got {type(meta).__name__}", record=record, field="meta")
    clash = sorted(set(meta) & set(extra))
    if clash:
        raise DataError(path, f"metadata column {clash[0]!r} is also a key of meta", record=record, field=clash[0])
    return meta | extra


class RowChecker:
    """Checks a pool's rows batch by batch and, at :meth:`finish`, that no id repeats.

    Texts are never kept: the duplicate check holds each id as 8 bytes (ids are verified to be 16 hex digits
    first), so a pool of 10⁸ rows needs about 0.8 GB for it, and twice that while sorting at the end.

    Parameters
    ----------
    lang : str, optional
        When given, every row must be in this language.
    unit : str
        What a record is called in messages: ``row`` (of a shard) or ``sample`` (of a writer's input).
    """

    def __init__(self, lang: str | None = None, unit: str = "row") -> None:
        self.lang, self.unit = lang, unit
        self.n_rows = 0
        self._known: set[str] = set()
        self._ids: list[np.ndarray] = []
        self._starts: list[int] = []  # global position of each batch's first row
        self._where: list[tuple[Path, int]] = []  # (shard, row within it) of each batch's first row

    def check_batch(self, path: Path, first_row: int, batch: pa.RecordBatch) -> list[dict[str, Any]]:
        """Check one batch of normalised columns (:func:`mdaq.shards.read.normalise`) read from ``path``, starting at
        row ``first_row`` of that shard; return each row's metadata (``meta`` merged with the other columns).

        Raises
        ------
        DataError
            Naming the shard, ``row <i>`` (0-based within the shard) and the field.
        """
        unit = self.unit
        cols = {name: batch.column(name).to_pylist() for name in (*REQUIRED_COLUMNS, "meta")}
        extra_names = [n for n in batch.schema.names if n not in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS)]
        extras = [batch.column(n).to_pylist() for n in extra_names]
        metas = []
        for i in range(batch.num_rows):
            record = f"{unit} {first_row + i}"
            row = {key: _text(cols[key][i], path, record, key, blank_ok=True) for key in REQUIRED_COLUMNS}
            for key in _NON_BLANK:
                _text(row[key], path, record, key, blank_ok=False)
            self._check_lang(row["lang"], path, record)
            extra = {name: values[i] for name, values in zip(extra_names, extras, strict=True)}
            metas.append(_meta(cols["meta"][i], extra, path, record))
            expected = sample_id(row["lang"], row["instruction"], row["input"], row["output"])
            if row["id"] != expected:
                msg = f"{row['id']!r:.40} is not the content hash {expected!r} (ids are {ID_RULE})"
                raise DataError(path, msg, record=record, field="id")
        self._remember(cols["id"], path, first_row)
        return metas

    def _check_lang(self, lang: str, path: Path, record: str) -> None:
        if lang not in self._known:
            self._known.add(check_lang(lang, path, record))
        if self.lang is not None and lang != self.lang:
            raise DataError(
                path, f"record of language {lang!r} in the {self.lang!r} pool", record=record, field="lang"
            )

    def _remember(self, ids: Sequence[str], path: Path, first_row: int) -> None:
        if not ids:
            return
        self._ids.append(np.frombuffer(bytes.fromhex("".join(ids)), dtype=">u8"))
        self._starts.append(self.n_rows)
        self._where.append((path, first_row))
        self.n_rows += len(ids)

    def _locate(self, pos: int) -> tuple[Path, int]:
        k = bisect.bisect_right(self._starts, pos) - 1
        path, first_row = self._where[k]
        return path, first_row + pos - self._starts[k]

    def finish(self) -> None:
        """Raise for the first row (in pool order) whose id an earlier row already had, naming both, as the JSONL
        readers would have when they reached it.

        Raises
        ------
        DataError
            ``duplicate id ...`` naming the later shard and row, and the first one.
        """
        if not self._ids:
            return
        ids = np.concatenate(self._ids)
        order = np.argsort(ids, kind="stable")  # equal ids stay in pool order
        same = ids[order[1:]] == ids[order[:-1]]
        if not same.any():
            return
        later = int(order[1:][same].min())
        first = int(np.flatnonzero(ids == ids[later])[0])
        (path, row), (first_path, first_row) = self._locate(later), self._locate(first)
        dup = f"{int(ids[later]):016x}"
        first_file = first_path.name if first_path.parent == path.parent else first_path
        msg = f"duplicate id {dup!r} (first in {first_file}, {self.unit} {first_row})"
        raise DataError(path, msg, record=f"{self.unit} {row}", field="id")


def meta_text(meta: object, path: object, record: str) -> str:
    """``meta`` as the JSON text the ``meta`` column holds (keys in their order; NaN and non-JSON values refused).

    Raises
    ------
    DataError
        Naming the record and ``meta`` when the metadata is not a JSON object of JSON values.
    """
    if not isinstance(meta, dict):
        raise DataError(path, f"expected an object, got {type(meta).__name__}", record=record, field="meta")
    try:
        return json.dumps(meta, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise DataError(path, f"not storable as JSON: {e}", record=record, field="meta") from None


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read 1 MiB at a time (the checksum each manifest entry records)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
