"""A pool file in its published, frozen form: the fields a submitter sees (no evaluation label), each id checked to
be its sample's content hash, and the bytes whose sha256 the frozen pool's manifest and every run record."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mdaq.errors import DataError
from mdaq.io import iter_jsonl_lines, sample_from_dict
from mdaq.types import sample_id

FIELDS = ("id", "lang", "instruction", "input", "output", "source")  # no `meta`: it holds the evaluation label
ID_RULE = "sha256 of the JSON list [lang, instruction, input, output], first 16 hex digits (mdaq.types.sample_id)"


def frozen_records(path: str | Path, lang: str) -> list[dict[str, Any]]:
    """The records of one prepared pool file as they are published: :data:`FIELDS` only, every id checked to be
    the content hash of its sample and unique, every record in ``lang``.

    Raises
    ------
    DataError
        Naming the line and field: a malformed record, a record of another language, an id that is not its content
        hash (the prepare stage of an older version, or a hand-edited file), a duplicate, or an empty pool.
    """
    rows, first = [], {}
    for n, row in iter_jsonl_lines(path):
        sample = sample_from_dict(row, path, f"line {n}")
        if sample.lang != lang:
            raise DataError(path, f"record of language {sample.lang!r} in the {lang!r} pool", f"line {n}", "lang")
        expected = sample_id(sample.lang, sample.instruction, sample.input, sample.output)
        if sample.id != expected:
            msg = f"{sample.id!r:.40} is not the content hash {expected!r}; rebuild the pool with the prepare stage"
            raise DataError(path, msg, f"line {n}", "id")
        if sample.id in first:
            raise DataError(path, f"duplicate id {sample.id!r} (first on line {first[sample.id]})", f"line {n}", "id")
        first[sample.id] = n
        rows.append({key: getattr(sample, key) for key in FIELDS})
    if not rows:
        raise DataError(path, "no samples: the pool is empty")
    return rows


def jsonl_bytes(rows: Iterable[dict[str, Any]]) -> bytes:
    """Rows as UTF-8 JSON lines, byte for byte what :func:`mdaq.io.write_jsonl` writes."""
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode("utf-8")


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def frozen_sha256(path: str | Path, lang: str) -> str:
    """The sha256 of ``lang``'s frozen pool file built from the prepared pool file ``path``: the number the frozen
    pool's manifest lists for ``lang``, which every run records (``pool_sha256``) so that the leaderboard can refuse a
    run made on another pool."""
    return sha256_bytes(jsonl_bytes(frozen_records(path, lang)))
