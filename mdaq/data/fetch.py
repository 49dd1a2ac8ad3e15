"""Fetch pinned input data (MIDB) by commit and sha256, from the network or from a local mirror folder."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import urllib.request
from importlib import resources
from pathlib import Path
from typing import Any

from mdaq.errors import ChecksumError, DataError

log = logging.getLogger(__name__)

MIRROR_ENV = "MDAQ_DATA_MIRROR"


def load_manifest(path: str | Path | None = None) -> dict[str, Any]:
    """Read a data manifest (commit, URL template, ``files: {relpath: sha256}``); default: the MIDB pin."""
    if path is None:
        text = resources.files("mdaq.data").joinpath("midb_manifest.json").read_text(encoding="utf-8")
        path = "mdaq/data/midb_manifest.json"
    else:
        text = Path(path).read_text(encoding="utf-8")
    try:
        manifest = json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(path, f"not valid JSON ({e.msg} at line {e.lineno})") from None
    for key in ("commit", "url_template", "files"):
        if key not in manifest:
            raise DataError(path, "missing key", field=key)
    return manifest


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Streaming sha256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


PARTIAL = ".partial-"  # a killed fetch's temp file: `.<pinned name>.partial-XXXX` beside it, deleted by the next


def _partial_of_pinned(rel: Path, pinned: set[Path]) -> bool:
    name = rel.name
    if not name.startswith(".") or PARTIAL not in name:
        return False
    return rel.with_name(name[1:].split(PARTIAL)[0]) in pinned


def _copy_verified(src_open, dest: Path, expected: str, name: str) -> None:
    """Stream ``src_open()`` into a temp file beside ``dest``, check sha256, then rename (atomic)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}{PARTIAL}", dir=dest.parent)
    h = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out, src_open() as src:
            while block := src.read(1 << 20):
                h.update(block)
                out.write(block)
        if h.hexdigest() != expected:
            raise ChecksumError(name, f"sha256 mismatch: expected {expected}, got {h.hexdigest()}")
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def fetch(
    out_dir: str | Path,
    *,
    mirror: str | Path | None = None,
    manifest: dict[str, Any] | None = None,
    timeout_s: float = 60.0,
) -> dict[str, str]:
    """Place every pinned file under ``out_dir``, verified by sha256.

    Files already present with the right hash are kept. Each file comes from ``mirror`` (a folder with the same
    relative layout; default: the ``MDAQ_DATA_MIRROR`` environment variable) or, without a mirror, from the
    pinned commit's URL. Files are written atomically, so an interrupted fetch leaves no partial file.

    Parameters
    ----------
    out_dir : path
        Destination folder (``data/midb`` in the pipeline).
    mirror : path, optional
        Offline mirror folder.
    manifest : dict, optional
        Pins; default :func:`load_manifest`.
    timeout_s : float
        Per-download timeout.

    Returns
    -------
    dict
        ``{relpath: "kept" | "mirror" | "download"}``.

    Raises
    ------
    ChecksumError
        A file's content differs from its pin (the message names the file and both hashes).
    DataError
        The mirror lacks a file, or a download failed (the message says to set ``MDAQ_DATA_MIRROR``).
    """
    manifest = manifest or load_manifest()
    mirror = mirror or os.environ.get(MIRROR_ENV) or None
    out_dir = Path(out_dir)
    _refuse_unpinned(out_dir, manifest)
    done: dict[str, str] = {}
    for rel, expected in manifest["files"].items():
        dest = out_dir / rel
        if dest.exists() and sha256_file(dest) == expected:
            done[rel] = "kept"
            continue
        if mirror:
            src = Path(mirror) / rel
            if not src.is_file():
                raise DataError(src, f"file missing from mirror {mirror} (set {MIRROR_ENV} to a complete mirror)")
            _copy_verified(lambda src=src: open(src, "rb"), dest, expected, str(src))
            done[rel] = "mirror"
        else:
            url = manifest["url_template"].format(commit=manifest["commit"], path=rel)
            try:
                _copy_verified(lambda url=url: urllib.request.urlopen(url, timeout=timeout_s), dest, expected, url)
            except OSError as e:
                raise DataError(url, f"download failed ({e}); offline? set {MIRROR_ENV} to a mirror folder") from None
            done[rel] = "download"
        log.info("fetched %s (%s)", rel, done[rel])
    return done


def _refuse_unpinned(out_dir: Path, manifest: dict[str, Any]) -> None:
    """Refuse, before writing anything, a folder holding files that are not pinned: the folder's DVC checksum must
    depend on the pins only, and a fetch never deletes what it did not write (``--out .`` once emptied a
    repository). The message lists what to move away."""
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise DataError(out_dir, "exists and is not a folder; choose another --out")
    pinned = {Path(rel) for rel in manifest["files"]}
    extra = []
    for path in sorted(out_dir.rglob("*")):
        rel = path.relative_to(out_dir)
        if path.is_dir() and not path.is_symlink() or rel in pinned:
            continue
        if _partial_of_pinned(rel, pinned) and path.is_file():
            path.unlink()  # our own temp file, left by a killed fetch
            continue
        extra.append(str(rel))
    if extra:
        shown = ", ".join(extra[:5]) + (f" and {len(extra) - 5} more" if len(extra) > 5 else "")
        raise DataError(
            out_dir,
            f"holds {len(extra)} file(s) that are not pinned MIDB files ({shown}); fetch writes only into an empty "
            "folder or one holding pinned files, and deletes nothing: move them away or choose another --out",
        )


def verify(out_dir: str | Path, manifest: dict[str, Any] | None = None) -> None:
    """Check every pinned file under ``out_dir``; raise :class:`ChecksumError` naming the first bad one."""
    manifest = manifest or load_manifest()
    for rel, expected in manifest["files"].items():
        path = Path(out_dir) / rel
        if not path.is_file():
            raise DataError(path, "missing; run `python -m mdaq data fetch`")
        actual = sha256_file(path)
        if actual != expected:
            raise ChecksumError(path, f"sha256 mismatch: expected {expected}, got {actual}")
