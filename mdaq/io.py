"""Read and write JSON/JSONL files atomically (write to a temp file, then rename), streaming where it matters."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mdaq.errors import DataError
from mdaq.types import Sample


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
    path = Path(path)
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(path, f"malformed JSON ({e.msg}, column {e.colno})", record=f"line {i}") from None
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
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(path, f"malformed JSON ({e.msg} at line {e.lineno})") from None


_SAMPLE_FIELDS = ("id", "lang", "instruction", "input", "output")


def sample_from_dict(row: dict[str, Any], path: str | Path = "<memory>", record: int | str | None = None) -> Sample:
    """Rebuild a :class:`Sample` from :meth:`Sample.to_dict` output, checking field types."""
    for key in _SAMPLE_FIELDS:
        if not isinstance(row.get(key), str):
            raise DataError(path, "missing or non-string", record=record, field=key)
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
    """Read a pool/sample JSONL file written by :func:`write_samples`."""
    return [sample_from_dict(row, path, f"line {i + 1}") for i, row in enumerate(iter_jsonl(path))]


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


def read_items(path: str | Path) -> Any:
    """Read per-item records written by :func:`write_items`; a missing column raises :class:`DataError`."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise DataError(path, "per-item records not found")
    df = pd.read_csv(path, dtype={"lang": str, "item": str}, keep_default_na=False)
    missing = [c for c in ITEM_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(path, "missing column(s) " + ", ".join(missing), field=missing[0])
    return df
