"""Read and write JSON/JSONL files atomically (write to a temp file, then rename), streaming where it matters.

Every reader decodes UTF-8 the same way (a leading byte-order mark is dropped) and turns what a bad file can raise
(bad bytes, malformed or too deeply nested JSON, a folder where a file belongs) into a :class:`DataError` that names
the file and the line or record.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from mdaq.errors import DataError
from mdaq.names import check_lang

if TYPE_CHECKING:
    import numpy as np

    from mdaq.types import Sample


def check_file(path: str | Path) -> Path:
    """``path`` as a :class:`Path` when it is an existing file.

    Raises
    ------
    FileNotFoundError
        When nothing is there (the message names the path).
    DataError
        When it is a folder or another non-file.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if not path.is_file():
        raise DataError(path, "is a folder, expected a file" if path.is_dir() else "not a regular file")
    return path


def decode_utf8(data: bytes, path: str | Path, record: int | str | None = None) -> str:
    """``data`` decoded as UTF-8 without a leading byte-order mark; bad bytes raise a :class:`DataError` naming
    the file, the record (when given) and the byte offset (and the line, for a whole file)."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        where = f"byte {e.start}" if record is not None else f"byte {e.start}, line {line}"
        raise DataError(path, f"not valid UTF-8 ({where}: {data[e.start : e.start + 1]!r})", record=record) from None


def read_text(path: str | Path) -> str:
    """A whole text file as UTF-8 (BOM dropped, ``\\r\\n`` and ``\\r`` read as ``\\n`` as text mode would).

    Raises
    ------
    FileNotFoundError, DataError
        See :func:`check_file` and :func:`decode_utf8`.
    """
    text = decode_utf8(check_file(path).read_bytes(), path)
    return text.replace("\r\n", "\n").replace("\r", "\n")


def parse_json(text: str, path: str | Path, record: int | str | None = None, line: int | None = None) -> Any:
    """``json.loads(text)``; malformed or too deeply nested JSON raises a :class:`DataError` naming the file, the
    record and the line (``line`` overrides the parser's own when ``text`` is one line of a bigger file)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        at = f"line {e.lineno if line is None else line}, column {e.colno}"
        raise DataError(path, f"malformed JSON at {at}: {e.msg}", record=record) from None
    except RecursionError:
        raise DataError(path, "JSON nested too deeply to read", record=record) from None


def save_figure(fig: Any, path: str | Path, *, dpi: int = 120, close: bool = True) -> Path:
    """Write a matplotlib figure as PNG atomically and close it (notebooks show the file:
    ``IPython.display.Image(path)``). Never switches the backend: that is the caller's kernel's business."""
    import matplotlib.pyplot as plt

    path = Path(path)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png")
    if close:
        plt.close(fig)
    return path


@contextmanager
def atomic_path(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``, on error delete it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a result file is as readable as any other
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextmanager
def atomic_dir(out_dir: str | Path, *, owned_by: Sequence[str]) -> Iterator[Path]:
    """Build a folder in a fresh sibling and swap it in only when complete; never replace a folder mdaq did not write.

    Yields an empty folder ``.<name>.tmp`` beside ``out_dir``. When the block finishes, an existing ``out_dir`` is
    renamed aside, the new folder renamed into place, and the old one deleted; when the block raises (or the process
    dies) ``out_dir`` is untouched. An existing ``out_dir`` is replaced only when it is empty or holds one of the
    ``owned_by`` files, the record each writer always leaves (``train_record.json`` of an adapter, ``asset.json``
    of a model folder): any other folder raises :class:`DataError` before anything is written. One helper for every
    writer of a folder: the QSM and LoRA trainers, their checkpoints, model downloads (``docs/reliability.md``)."""
    out = Path(out_dir)
    check_replaceable(out, owned_by)
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)  # a killed run's half-built folder: ours by its name
    tmp.mkdir(parents=True)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    swap_in(tmp, out)


def swap_in(tmp: Path, out: Path) -> None:
    """Rename the finished folder ``tmp`` onto ``out``: the old ``out`` goes aside first and is deleted last, so a
    crash leaves either the old folder or the new one (and at worst a ``.<name>.old`` to delete), never a mix."""
    old = out.with_name(f".{out.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if out.exists():
        os.replace(out, old)
    os.replace(tmp, out)
    shutil.rmtree(old, ignore_errors=True)


def check_replaceable(out: Path, owned_by: Sequence[str]) -> None:
    """Raise :class:`DataError` unless ``out`` is absent, an empty folder, or a folder holding an ``owned_by`` file."""
    if not out.exists() and not out.is_symlink():
        return
    if not out.is_dir() or out.is_symlink():
        raise DataError(out, "exists and is not a folder mdaq wrote; refusing to replace it (choose another path)")
    if any(out.iterdir()) and not any((out / name).is_file() for name in owned_by):
        raise DataError(
            out,
            f"exists, is not empty and was not written by mdaq (no {' / '.join(owned_by)}); refusing to replace "
            "it: move it away or choose another output folder",
        )


def check_distinct(out: str | Path, inputs: dict[str, str | Path | None], *, what: str = "--out") -> None:
    """Refuse an output path that is one of the inputs or contains one (``--out`` equal to ``--pool`` would replace
    the pool with the selection). ``inputs`` maps an option name to its path (``None``: not given)."""
    out_r = Path(out).resolve()
    for name, path in inputs.items():
        if path is None:
            continue
        p = Path(path).resolve()
        if p == out_r or out_r in p.parents:
            raise DataError(out, f"{what} is the input {name} ({path}) or holds it; refusing to overwrite an input")


def write_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> int:
    """Write rows as UTF-8 JSON lines atomically; returns the row count."""
    n = 0
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n


def iter_jsonl_lines(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Stream ``(line number, object)`` from a JSONL file, skipping blank lines; a bad line raises
    :class:`DataError` naming its line number."""
    path = check_file(path)
    with open(path, "rb") as f:
        for i, raw in enumerate(f, start=1):
            line = decode_utf8(raw, path, record=f"line {i}")  # a BOM opening the file (or a line) is dropped
            if not line.strip():
                continue
            row = parse_json(line, path, record=f"line {i}", line=i)
            if not isinstance(row, dict):
                raise DataError(path, f"expected an object, got {type(row).__name__}", record=f"line {i}")
            yield i, row


def iter_jsonl(path: str | Path) -> Iterator[dict[str, Any]]:
    """Stream JSON objects from a JSONL file; a bad line raises :class:`DataError` naming its line number."""
    for _, row in iter_jsonl_lines(path):
        yield row


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """All rows of a JSONL file."""
    return list(iter_jsonl(path))


def write_json(path: str | Path, obj: Any) -> None:
    """Write pretty JSON atomically (sorted keys, so reruns give identical bytes)."""
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(obj, ensure_ascii=False, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def read_json(path: str | Path) -> Any:
    """Read JSON, with a :class:`DataError` naming the file on bad input."""
    return parse_json(read_text(path), path)


_SAMPLE_FIELDS = ("id", "lang", "instruction", "input", "output")
_NON_BLANK = ("id", "instruction", "output")  # input may be empty (Alpaca's convention)


def sample_from_dict(row: dict[str, Any], path: str | Path = "<memory>", record: int | str | None = None) -> Sample:
    """Rebuild a :class:`Sample` from :meth:`Sample.to_dict` output, checking field types, the language code (the
    table of :mod:`mdaq.names`) and that ``id``, ``instruction`` and ``output`` are not blank."""
    from mdaq.types import Sample

    for key in _SAMPLE_FIELDS:
        if not isinstance(row.get(key), str):
            raise DataError(path, "missing or non-string", record=record, field=key)
    for key in _NON_BLANK:
        if not row[key].strip():
            raise DataError(path, "is empty" if not row[key] else "is whitespace-only", record=record, field=key)
    check_lang(row["lang"], path, record)
    if not isinstance(row.get("meta") or {}, dict):
        raise DataError(path, f"expected an object, got {type(row['meta']).__name__}", record=record, field="meta")
    return Sample(
        id=row["id"],
        lang=row["lang"],
        instruction=row["instruction"],
        input=row["input"],
        output=row["output"],
        source=row.get("source", ""),
        meta=row.get("meta") or {},
    )


def read_samples(path: str | Path) -> list[Sample]:
    """Read a pool/sample JSONL file written by :func:`write_samples`.

    Raises
    ------
    DataError
        Naming the line and field: a malformed row (:func:`sample_from_dict`), an id seen on an earlier line (it
        would be selected twice), or a file without samples.
    """
    samples, first = [], {}
    for n, row in iter_jsonl_lines(path):
        sample = sample_from_dict(row, path, f"line {n}")
        if sample.id in first:
            raise DataError(
                path, f"duplicate id {sample.id!r:.40} (first on line {first[sample.id]})", f"line {n}", "id"
            )
        first[sample.id] = n
        samples.append(sample)
    if not samples:
        raise DataError(path, "no samples: the pool is empty")
    return samples


def write_samples(path: str | Path, samples: Iterable[Sample]) -> int:
    """Write samples as JSONL atomically."""
    return write_jsonl(path, (s.to_dict() for s in samples))


ITEM_COLUMNS = (
    "lang",
    "item",
    "source_index",
    "chosen_lp",
    "chosen_n",
    "rejected_lp",
    "rejected_n",
    "margin",
    "correct",
    "prompt_truncated",
    "chosen_truncated",
    "rejected_truncated",
)
"""Columns of the per-item records (``items.csv`` beside every run's ``metrics.json``): one held-out pair each."""


def write_items(path: str | Path, items: Any) -> Path:
    """Write per-item records (a DataFrame with :data:`ITEM_COLUMNS`) as CSV, atomically (floats with 10
    significant digits)."""
    with atomic_path(path, suffix=".csv") as tmp:
        items.to_csv(tmp, index=False, float_format="%.10g")
    return Path(path)


def read_csv(path: str | Path, **kwargs: Any) -> Any:
    """``pandas.read_csv`` (UTF-8, BOM dropped) with a :class:`DataError` naming the file for a folder, bad bytes,
    an empty or malformed file."""
    import pandas as pd

    path = check_file(path)
    try:
        return pd.read_csv(path, encoding="utf-8-sig", **kwargs)
    except UnicodeDecodeError as e:
        raise DataError(path, f"not valid UTF-8 (byte {e.start})") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise DataError(path, f"malformed CSV: {' '.join(str(e).split())}") from None


def read_finite_npy(path: str | Path, feature: str) -> np.ndarray:
    """A feature array (``np.load``, pickles refused) whose every value is finite.

    Raises
    ------
    DataError
        Naming the file, the first row holding NaN or an infinity, and ``feature``; or a file ``np.load`` cannot
        read.
    """
    import numpy as np

    path = check_file(path)
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise DataError(path, f"not a readable .npy array ({e})", field=feature) from None
    if not np.issubdtype(arr.dtype, np.number) or arr.ndim == 0:
        raise DataError(path, f"expected a numeric array with one row per sample, got {arr.dtype} {arr.shape}")
    row = first_nonfinite_row(arr)
    if row is not None:
        raise DataError(path, f"holds {nonfinite_text(arr, row)}", record=row, field=feature)
    return arr


def first_nonfinite_row(arr: Any) -> int | None:
    """The first row of a numeric array (scores ``(n,)`` or vectors ``(n, d)``) holding NaN or an infinity."""
    import numpy as np

    arr = np.asarray(arr)
    if arr.ndim == 0 or len(arr) == 0:
        return None
    bad = ~np.isfinite(arr.reshape(len(arr), -1)).all(axis=1)
    return int(np.flatnonzero(bad)[0]) if bad.any() else None


def nonfinite_text(arr: Any, row: int) -> str:
    """What :func:`first_nonfinite_row` found, for a message: ``"nan (3 rows are not finite)"``."""
    import numpy as np

    arr = np.asarray(arr)
    values = np.asarray(arr[row]).reshape(-1)
    n_bad = int((~np.isfinite(arr.reshape(len(arr), -1)).all(axis=1)).sum())
    return f"{values[~np.isfinite(values)][0]} ({n_bad} row{'s are' if n_bad > 1 else ' is'} not finite)"


def read_items(path: str | Path) -> Any:
    """Read per-item records written by :func:`write_items`; a missing column raises :class:`DataError`."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "per-item records not found")
    df = read_csv(path, dtype={"lang": str, "item": str}, keep_default_na=False)
    missing = [c for c in ITEM_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(path, "missing column(s) " + ", ".join(missing), field=missing[0])
    return df


class NoAliasLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing anchors and aliases (``&name`` / ``*name``): params files and method cards never
    need them, and nested aliases expand exponentially (a few hundred bytes can fill memory, here and inside DVC)."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise yaml.composer.ComposerError(
                None, None, "YAML anchors and aliases (&name, *name) are not allowed", event.start_mark
            )
        return super().compose_node(parent, index)
