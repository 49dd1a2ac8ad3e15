"""``mdaq data shard``: any input the loaders read (an mdaq pool JSONL, Alpaca/ShareGPT JSON(L), CSV, Parquet, or
shards already) converted into a folder of Parquet shards with a manifest (:mod:`mdaq.shards`)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from mdaq.data.loaders import load_any
from mdaq.errors import DataError
from mdaq.io import check_distinct, iter_jsonl_lines, sample_from_dict
from mdaq.shards import check_shard_folder, is_shard_source, iter_pool_samples, write_shards
from mdaq.types import Sample, sample_id


def is_pool_jsonl(path: str | Path) -> bool:
    """Whether ``path`` is an mdaq pool JSONL (its first record has ``id`` and ``lang``), as ``mdaq select`` sniffs
    it; the other JSON files are Alpaca or ShareGPT records whose ids are computed."""
    p = Path(path)
    if p.suffix.lower() != ".jsonl" or not p.is_file():
        return False
    first = next((row for _, row in iter_jsonl_lines(p)), {})
    return "id" in first and "lang" in first


def iter_pool_jsonl(path: str | Path, lang: str | None = None) -> Iterator[Sample]:
    """Stream an mdaq pool JSONL with the rules of :func:`mdaq.io.read_samples`, and each id checked to be its
    sample's content hash (a shard folder holds only such ids).

    Raises
    ------
    DataError
        Naming the line and field: a malformed record, an id that is not its content hash, a duplicate id, a record
        in another language than ``lang`` (when given).
    """
    first: dict[str, int] = {}
    for n, row in iter_jsonl_lines(path):
        sample = sample_from_dict(row, path, f"line {n}")
        if lang is not None and sample.lang != lang:
            raise DataError(path, f"record of language {sample.lang!r} in the {lang!r} pool", f"line {n}", "lang")
        expected = sample_id(sample.lang, sample.instruction, sample.input, sample.output)
        if sample.id != expected:
            msg = f"{sample.id!r:.40} is not the content hash {expected!r} (mdaq.types.sample_id)"
            raise DataError(path, msg, f"line {n}", "id")
        if sample.id in first:
            raise DataError(path, f"duplicate id {sample.id!r} (first on line {first[sample.id]})", f"line {n}", "id")
        first[sample.id] = n
        yield sample


def input_samples(path: str | Path, fmt: str = "auto", lang: str | None = None, **kw: Any) -> Iterable[Sample]:
    """The samples of any supported input, streamed where the format allows.

    Shards (a folder, a glob, or ``fmt="shards"``) and mdaq pool JSONL files are streamed with their ids checked;
    every other format goes through :func:`mdaq.data.loaders.load_any` (in memory, ids computed from content).
    ``lang``: for shards and pool JSONL, the language every record must have; otherwise the file's language.
    """
    if fmt == "shards" or (fmt == "auto" and is_shard_source(path)):
        return iter_pool_samples(path, lang=lang)
    if fmt in ("auto", "pool") and is_pool_jsonl(path):
        return iter_pool_jsonl(path, lang)
    if fmt == "pool":
        raise DataError(path, "not an mdaq pool JSONL (its first record needs 'id' and 'lang')")
    return load_any(path, lang, fmt=fmt, **kw)


def shard_input(
    path: str | Path,
    out_dir: str | Path,
    *,
    fmt: str = "auto",
    lang: str | None = None,
    rows_per_shard: int,
) -> dict[str, Any]:
    """Convert ``path`` into the shard folder ``out_dir`` (backs ``mdaq data shard``).

    ``out_dir`` is checked first (it may not be, or hold, the input; an existing folder is replaced only if
    ``mdaq data shard`` wrote it), then the input is read and written in one pass
    (:func:`mdaq.shards.write_shards`).

    Returns
    -------
    dict
        The manifest written.

    Raises
    ------
    DataError
        For a refused ``out_dir``, or the first bad record of the input (naming its file, record and field).
    """
    if rows_per_shard < 1:
        raise DataError("--rows-per-shard", f"{rows_per_shard} is not a positive number of rows")
    check_distinct(out_dir, {"IN": path})
    check_shard_folder(out_dir)
    samples = input_samples(path, fmt, lang)
    return write_shards(samples, out_dir, rows_per_shard=rows_per_shard, source_name=str(path))
