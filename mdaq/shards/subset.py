"""Two cheap looks at a sharded pool that a streamed selection needs besides its features: the languages it holds
(one column read) and the records of the selected ids (one streamed pass, keeping only those rows)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mdaq.errors import DataError
from mdaq.shards.read import DEFAULT_BATCH_SIZE, iter_pool_batches, list_shards

RECORD_FIELDS = ("instruction", "input", "output", "lang", "id")  # an Alpaca record plus its language and id


def count_langs(source: str | Path) -> dict[str, int]:
    """Rows per ``lang`` value of a sharded pool, reading only that column (the rows are not checked here; the
    readers of :mod:`mdaq.shards.read` check them).

    Parameters
    ----------
    source : str or Path
        A shard folder or glob (:func:`mdaq.shards.list_shards`).

    Returns
    -------
    dict
        Language -> number of rows, most frequent first.

    Raises
    ------
    DataError
        For a shard that is not readable Parquet, naming it (and :func:`~mdaq.shards.list_shards`'s errors).
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    counts: Counter[str] = Counter()
    for shard in list_shards(source):
        try:
            with pq.ParquetFile(shard.path) as pf:
                for batch in pf.iter_batches(batch_size=65536, columns=["lang"], use_threads=False):
                    for item in pc.value_counts(batch.column(0)).to_pylist():
                        counts[str(item["values"])] += item["counts"]
        except (pa.ArrowException, OSError) as e:
            raise DataError(shard.path, f"malformed Parquet: {' '.join(str(e).split())}", field="lang") from None
    return dict(counts.most_common())


def read_records(
    source: str | Path, ids: Iterable[str], *, lang: str | None = None, batch_size: int = DEFAULT_BATCH_SIZE
) -> list[dict[str, Any]]:
    """The records of ``ids`` in a sharded pool, in the order of ``ids``, from one streamed pass that keeps only
    their rows (memory: one record batch plus the records kept).

    Parameters
    ----------
    source : str or Path
        A shard folder or glob.
    ids : iterable of str
        Sample ids (a selection's, in rank order).
    lang : str, optional
        When given, every row of the pool must be in this language (checked as :func:`iter_pool_batches` does).
    batch_size : int
        Rows read at once.

    Returns
    -------
    list of dict
        One ``{instruction, input, output, lang, id}`` record per id (:data:`RECORD_FIELDS`).

    Raises
    ------
    DataError
        For a bad pool row (naming shard, row and field), a repeated id in ``ids``, or an id the pool lacks.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    wanted = list(ids)
    if len(set(wanted)) != len(wanted):
        raise DataError("ids", "a selected id repeats")
    value_set = pa.array(wanted, type=pa.string())
    found: dict[str, dict[str, Any]] = {}
    for batch in iter_pool_batches(source, batch_size, lang=lang):
        keep = batch.filter(pc.is_in(batch.column("id"), value_set=value_set))
        for values in zip(*(keep.column(name).to_pylist() for name in RECORD_FIELDS), strict=True):
            record = dict(zip(RECORD_FIELDS, values, strict=True))
            found[record["id"]] = record
    missing = [i for i in wanted if i not in found]
    if missing:
        raise DataError(source, f"{len(missing)} selected ids are not in the pool (first: {missing[0]})")
    return [found[i] for i in wanted]
