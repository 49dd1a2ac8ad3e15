"""Loaders that turn external instruction data (Alpaca, ShareGPT, CSV/Parquet, Hugging Face datasets) into samples.

Every loader is strict: malformed files, missing/empty/non-string fields, unknown language codes and duplicate
ids raise a :class:`~mdaq.errors.DataError` naming the file, the record (0-based index) and the field. Nothing is
dropped silently. For sources known to contain exact duplicates or empty outputs, pass ``strict=False`` and then
call :func:`clean_samples`, which removes those rows and counts them per reason.

Columns that are not mapped to an mdaq field are kept in ``Sample.meta``. ``Sample.source`` is
``"<source>#<record>"`` where ``source`` defaults to the file name.

A sharded pool (a folder of Parquet shards, or a glob such as ``pool/*.parquet``) is read by :mod:`mdaq.shards`, one
record batch at a time, with the rules of mdaq's JSONL pools; its records are named ``row <i>`` of their shard.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from mdaq.data.readers import (
    DEFAULT_COLUMNS,
    check_lang,
    check_text,
    clean_samples,
    read_json_records,
    read_table,
    resolve_columns,
    resolve_lang,
    validate_records,
    validate_samples,
)
from mdaq.errors import DataError
from mdaq.shards import is_shard_source, read_shard_samples, validate_shards
from mdaq.types import Sample

__all__ = [
    "load_alpaca",
    "load_sharegpt",
    "load_table",
    "load_hf_dataset",
    "load_shards",
    "load_any",
    "read_json_records",
    "resolve_format",
    "validate_file",
    "validate_records",
    "validate_samples",
    "clean_samples",
]

logger = logging.getLogger(__name__)

#: ShareGPT speaker name -> role. ``from``/``value`` (ShareGPT) and ``role``/``content`` (OpenAI messages) both work.
_ROLES: dict[str, str] = dict.fromkeys(("human", "user"), "user") | {"system": "system"}
_ROLES |= dict.fromkeys(("gpt", "assistant", "chatgpt", "model"), "assistant")
_CHAT_LAYOUTS: Mapping[str, tuple[str, str]] = {"conversations": ("from", "value"), "messages": ("role", "content")}


def _record_lang(
    rec: Mapping[str, Any], path: object, label: int | str, lang: str | None, lang_column: str | None, lang_map: Any
) -> str:
    if lang_column is None:
        return lang  # type: ignore[return-value]  # checked once by _resolve_lang
    if lang_column not in rec:
        raise DataError(path, "missing language field", record=label, field=lang_column)
    value = rec[lang_column]
    if lang_map and isinstance(value, str):
        value = lang_map.get(value, value)
    return check_lang(value, path, label, field=lang_column)


def _records_to_samples(
    records: Sequence[Any],
    path: object,
    *,
    lang: str | None,
    columns: Mapping[str, str] | None = None,
    lang_column: str | None = None,
    lang_map: Mapping[str, str] | None = None,
    source: str | None = None,
    strict: bool = True,
) -> list[Sample]:
    """Validate flat records, build samples (unmapped keys go to ``meta``), then check languages and ids."""
    cols = dict(DEFAULT_COLUMNS if columns is None else columns)
    validate_records(records, path, columns=cols, allow_empty=not strict)
    used = {*cols.values(), lang_column}
    src = source or Path(str(path)).name
    samples = []
    for i, rec in enumerate(records):
        text = {fld: rec.get(key) or "" for fld, key in cols.items()}
        meta = {k: v for k, v in rec.items() if k not in used}
        row_lang = _record_lang(rec, path, i, lang, lang_column, lang_map)
        samples.append(
            Sample.create(row_lang, text["instruction"], text.get("input", ""), text["output"], f"{src}#{i}", meta)
        )
    validate_samples(samples, path, allow_empty=not strict, allow_duplicates=not strict)
    logger.info("loaded %d samples from %s", len(samples), path)
    return samples


def load_alpaca(path: str | Path, lang: str, *, source: str | None = None, strict: bool = True) -> list[Sample]:
    """Load an Alpaca-style file: a JSON list (``.json``) or JSON Lines (``.jsonl``) of objects.

    Parameters
    ----------
    path : str or Path
        The file; the extension picks the parser.
    lang : str
        Language of every record (ISO 639-1 or ``xxx_Scrp``).
    source : str, optional
        Prefix of ``Sample.source`` (default: the file name).
    strict : bool
        Raise on empty instruction/output and duplicate ids (default). ``False`` keeps them for
        :func:`clean_samples`.

    Returns
    -------
    list of Sample
        One sample per record, in file order; extra keys go to ``meta``.

    Raises
    ------
    DataError
        Naming file, record and field for any malformed input.
    """
    lang = resolve_lang(path, lang, None)  # type: ignore[assignment]
    return _records_to_samples(read_json_records(path), path, lang=lang, source=source, strict=strict)


def _chat_layout(rec: Any, path: object, i: int) -> tuple[str, str, str]:
    if not isinstance(rec, Mapping):
        raise DataError(path, f"record is a {type(rec).__name__}, expected an object", record=i)
    for key, (role_key, text_key) in _CHAT_LAYOUTS.items():
        if key in rec:
            if not isinstance(rec[key], list):
                raise DataError(path, f"expected a list of turns, got {type(rec[key]).__name__}", i, key)
            return key, role_key, text_key
    raise DataError(path, "missing required field (need 'conversations' or 'messages')", i, "conversations")


def _turn_pairs(
    rec: Mapping[str, Any], path: object, i: int, all_turns: bool, allow_empty: bool
) -> tuple[str, list[tuple[str, str]]]:
    """Return (system prompt, [(user text, assistant text), ...]) for one conversation."""
    key, role_key, text_key = _chat_layout(rec, path, i)
    turns = rec[key]
    roles = []
    for j, turn in enumerate(turns):
        if not isinstance(turn, Mapping):
            raise DataError(path, f"turn is a {type(turn).__name__}, expected an object", i, f"{key}[{j}]")
        if turn.get(role_key) not in _ROLES:
            msg = f"unknown speaker {turn.get(role_key)!r}; expected one of {sorted(_ROLES)}"
            raise DataError(path, msg, i, f"{key}[{j}].{role_key}")
        roles.append(_ROLES[turn[role_key]])
    start = next((j for j, r in enumerate(roles) if r != "system"), len(roles))
    system = "\n\n".join(
        check_text(t.get(text_key), path, i, f"{key}[{j}].{text_key}", allow_empty=True)
        for j, t in enumerate(turns[:start])
    )
    if "assistant" not in roles[start:]:
        raise DataError(path, "conversation has no assistant reply", record=i, field=key)
    pairs: list[tuple[str, str]] = []
    for j in range(start, len(turns) if all_turns else start + 1, 2):
        if roles[j : j + 2] != ["user", "assistant"]:
            msg = f"expected a user turn followed by an assistant reply, got {roles[j : j + 2]}"
            raise DataError(path, msg, record=i, field=f"{key}[{j}]")
        pairs.append(
            tuple(  # type: ignore[arg-type]
                check_text(turns[k].get(text_key), path, i, f"{key}[{k}].{text_key}", allow_empty=allow_empty)
                for k in (j, j + 1)
            )
        )
    return system, pairs


def _sharegpt_samples(
    records: Sequence[Any], path: object, lang: str, source: str | None, all_turns: bool, strict: bool
) -> list[Sample]:
    src = source or Path(str(path)).name
    samples: list[Sample] = []
    labels: list[int | str] = []
    for i, rec in enumerate(records):
        system, pairs = _turn_pairs(rec, path, i, all_turns, allow_empty=not strict)
        extra = {k: v for k, v in rec.items() if k not in _CHAT_LAYOUTS}
        for t, (user, reply) in enumerate(pairs):
            meta = {**extra, **({"system": system} if system else {}), **({"turn": t} if all_turns else {})}
            samples.append(Sample.create(lang, user, "", reply, f"{src}#{i}" + (f".{t}" if all_turns else ""), meta))
            labels.append(f"{i} (turn {t})" if all_turns else i)
    validate_samples(samples, path, allow_empty=not strict, allow_duplicates=not strict, labels=labels)
    logger.info("loaded %d samples from %d conversations in %s", len(samples), len(records), path)
    return samples


def load_sharegpt(
    path: str | Path, lang: str, *, source: str | None = None, all_turns: bool = False, strict: bool = True
) -> list[Sample]:
    """Load ShareGPT conversations: ``conversations`` of ``from``/``value``, or ``messages`` of ``role``/``content``.

    Each user -> assistant turn pair becomes one sample (``instruction`` = user text, ``input`` = "", ``output`` =
    reply); leading ``system`` turns go to ``meta["system"]``. Speakers ``human``/``user`` and ``gpt``/
    ``assistant``/``chatgpt``/``model`` are recognised. By default only the first pair of each conversation is
    used, because later turns depend on the earlier dialogue and are ill-posed as stand-alone instructions (the
    rest of the conversation is then not inspected beyond its speaker names); with ``all_turns=True`` every pair
    becomes a sample (``meta["turn"]`` is its position) and the whole conversation must alternate user/assistant.

    Parameters
    ----------
    path : str or Path
        ``.json`` list or ``.jsonl`` file.
    lang : str
        Language of every conversation.
    source, strict
        As in :func:`load_alpaca`.
    all_turns : bool
        Use every turn pair instead of only the first.

    Returns
    -------
    list of Sample

    Raises
    ------
    DataError
        For malformed JSON, an unknown speaker, a conversation without an assistant reply, or a bad text field.
    """
    lang = resolve_lang(path, lang, None)  # type: ignore[assignment]
    return _sharegpt_samples(read_json_records(path), path, lang, source, all_turns, strict)


def load_table(
    path: str | Path,
    lang: str | None = None,
    *,
    columns: Mapping[str, str] | None = None,
    lang_column: str | None = None,
    lang_map: Mapping[str, str] | None = None,
    source: str | None = None,
    strict: bool = True,
) -> list[Sample]:
    """Load a CSV or Parquet table with a column mapping.

    Parameters
    ----------
    path : str or Path
        ``.csv`` (read as strings; empty cells are "") or ``.parquet``/``.pq``.
    lang : str, optional
        Language of every row; give this or ``lang_column``.
    columns : mapping, optional
        mdaq field -> file column, e.g. ``{"instruction": "prompt", "output": "completion"}``; unmapped fields
        default to their own name, and ``input`` may be absent unless mapped explicitly.
    lang_column : str, optional
        Column holding each row's language code.
    lang_map : mapping, optional
        Rewrites ``lang_column`` values before checking, e.g. ``{"English": "en"}``.
    source, strict
        As in :func:`load_alpaca`.

    Returns
    -------
    list of Sample

    Raises
    ------
    DataError
        For an unreadable file, a missing mapped column (naming it), or any bad row.
    """
    p = Path(path)
    row_lang = resolve_lang(p, lang, lang_column)
    header, rows = read_table(p)
    cols = resolve_columns(p, header, columns, lang_column)
    return _records_to_samples(
        rows, p, lang=row_lang, columns=cols, lang_column=lang_column, lang_map=lang_map, source=source, strict=strict
    )


_HF_BUILDERS: Mapping[str, str] = {".json": "json", ".jsonl": "json", ".csv": "csv", ".parquet": "parquet"}


def _hf_load(path_or_name: str | Path, name: str, split: str, data_files: Any, kwargs: dict[str, Any]) -> Any:
    import datasets

    p = Path(str(path_or_name))
    builder = _HF_BUILDERS.get(p.suffix.lower()) if p.is_file() else None
    target, files = (builder, str(p)) if builder else (str(path_or_name), data_files)
    try:
        ds = datasets.load_dataset(target, data_files=files, split=split, **kwargs)
    except Exception as e:  # datasets raises many unrelated types; all mean "could not read this dataset"
        raise DataError(name, f"datasets.load_dataset failed: {type(e).__name__}: {e}") from e
    if not isinstance(ds, datasets.Dataset):
        raise DataError(name, f"expected one split, got {type(ds).__name__}; pass split=")
    return ds


def load_hf_dataset(
    path_or_name: str | Path,
    lang: str | None = None,
    *,
    split: str = "train",
    columns: Mapping[str, str] | None = None,
    lang_column: str | None = None,
    lang_map: Mapping[str, str] | None = None,
    data_files: Any = None,
    source: str | None = None,
    strict: bool = True,
    **kwargs: Any,
) -> list[Sample]:
    """Load a dataset through :func:`datasets.load_dataset` (local json/jsonl/csv/parquet files work offline).

    A local file path is loaded with the matching packaged builder; anything else (a folder, a builder name with
    ``data_files``, a Hub name) is passed on as is. Examples: Bactrian-X rows ``instruction/input/output/id`` need
    only ``lang``; Aya rows need ``columns={"instruction": "inputs", "output": "targets"}``,
    ``lang_column="language"`` and a ``lang_map`` from language names to codes.

    Parameters
    ----------
    path_or_name : str or Path
        Local file, folder, builder or dataset name.
    lang, columns, lang_column, lang_map, source, strict
        As in :func:`load_table`.
    split : str
        Split to load.
    data_files : optional
        Passed to ``load_dataset`` (ignored when ``path_or_name`` is a local file).
    **kwargs
        Passed to ``load_dataset`` (e.g. ``cache_dir``).

    Returns
    -------
    list of Sample

    Raises
    ------
    DataError
        If loading fails, a mapped column is missing, or a row is bad (messages name ``path[split]``).
    """
    name = f"{path_or_name}[{split}]"
    row_lang = resolve_lang(name, lang, lang_column)
    ds = _hf_load(path_or_name, name, split, data_files, kwargs)
    cols = resolve_columns(name, ds.column_names, columns, lang_column)
    opts = {"lang_column": lang_column, "lang_map": lang_map, "strict": strict}
    src = source or Path(str(path_or_name)).name
    return _records_to_samples(list(ds), name, lang=row_lang, columns=cols, source=src, **opts)


def _load_json_auto(path: str | Path, lang: str | None, *, all_turns: bool = False, **kw: Any) -> list[Sample]:
    """A ``.json``/``.jsonl`` file: ShareGPT if the first record has ``conversations``/``messages``, else Alpaca."""
    row_lang = resolve_lang(path, lang, kw.get("lang_column"))
    records = read_json_records(path)
    head = records[0] if records else {}
    if isinstance(head, Mapping) and any(key in head for key in _CHAT_LAYOUTS):
        chat_lang = resolve_lang(path, lang, None)  # one language per ShareGPT file
        return _sharegpt_samples(records, path, chat_lang, kw.get("source"), all_turns, kw.get("strict", True))
    return _records_to_samples(records, path, lang=row_lang, **kw)


def load_shards(path: str | Path, lang: str | None = None, **kw: Any) -> list[Sample]:
    """A sharded pool in memory (:func:`mdaq.shards.read_shard_samples`); ``lang``, when given, is the language every
    row must have. Column options do not apply: a shard's columns are fixed (``docs/scale.md``).

    Raises
    ------
    DataError
        For a loader option given, or any bad shard or row (naming the shard, ``row <i>`` and the field).
    """
    if kw:
        raise DataError(path, f"option(s) {sorted(kw)} do not apply to a sharded pool (its columns are fixed)")
    return read_shard_samples(path, lang)


_FORMATS: Mapping[str, Callable[..., list[Sample]]] = {
    "json": _load_json_auto,
    "alpaca": load_alpaca,
    "sharegpt": load_sharegpt,
    "table": load_table,
    "csv": load_table,
    "parquet": load_table,
    "hf": load_hf_dataset,
    "shards": load_shards,
}
_EXTENSIONS: Mapping[str, str] = dict.fromkeys((".json", ".jsonl"), "json") | dict.fromkeys(
    (".csv", ".parquet", ".pq"), "table"
)


def resolve_format(path: str | Path, fmt: str = "auto") -> str:
    """Format name for ``path``: ``fmt`` itself if given, else ``"shards"`` for a folder of Parquet shards or a glob
    (:func:`mdaq.shards.is_shard_source`), else by extension (any other folder means ``"hf"``).

    Raises
    ------
    DataError
        For an unknown format name or extension.
    """
    if fmt != "auto":
        if fmt not in _FORMATS:
            raise DataError(path, f"unknown format {fmt!r}; valid: auto, {', '.join(sorted(_FORMATS))}")
        return fmt
    if is_shard_source(path):
        return "shards"
    p = Path(path)
    ext = "/" if p.is_dir() else p.suffix.lower()
    found = {**_EXTENSIONS, "/": "hf"}.get(ext)
    if found is None:
        raise DataError(
            p, f"cannot infer the format from extension {ext!r}; pass fmt= ({', '.join(sorted(_FORMATS))})"
        )
    return found


def load_any(path: str | Path, lang: str | None = None, fmt: str = "auto", **kw: Any) -> list[Sample]:
    """Load ``path`` with the loader for ``fmt`` (``"auto"``: by extension; ``.json``/``.jsonl`` are sniffed).

    Parameters
    ----------
    path : str or Path
        File, folder or dataset name.
    lang : str, optional
        Passed to the loader; a file-wide language, or None with ``lang_column=`` for per-record languages.
    fmt : str
        ``auto``, ``json``, ``alpaca``, ``sharegpt``, ``table``/``csv``/``parquet``, ``hf`` or ``shards``.
    **kw
        Loader options (``columns``, ``lang_column``, ``all_turns``, ``strict``, ...).

    Returns
    -------
    list of Sample
    """
    return _FORMATS[resolve_format(path, fmt)](path, lang, **kw)


def validate_file(path: str | Path, fmt: str = "auto", lang: str | None = None, **kw: Any) -> dict[str, Any]:
    """Load ``path`` strictly and summarise it (backs ``mdaq data validate PATH``).

    Without ``lang`` (and without a ``lang_column`` in ``kw``) the records are checked under the code ``und``. A
    sharded pool is streamed shard by shard in bounded memory (:func:`mdaq.shards.validate_shards`; its rows carry
    their language, and ``lang``, when given, is the one every row must have); the summary adds ``n_shards``.

    Returns
    -------
    dict
        ``path``, ``format``, ``n_records``, ``languages`` (code -> count), ``fields`` (mdaq fields then meta
        keys) and ``n_with_input``.

    Raises
    ------
    DataError
        For the first problem found, or a file with no records.
    """
    name = resolve_format(path, fmt)
    if name == "shards":
        if kw:
            raise DataError(path, f"option(s) {sorted(kw)} do not apply to a sharded pool (its columns are fixed)")
        return validate_shards(path, lang)
    if lang is None and kw.get("lang_column") is None:
        lang = "und"
    samples = _FORMATS[name](path, lang, **kw)
    if not samples:
        raise DataError(path, "no records")
    meta_keys = sorted({str(k) for s in samples for k in s.meta})
    return {
        "path": str(path),
        "format": name,
        "n_records": len(samples),
        "languages": dict(Counter(s.lang for s in samples).most_common()),
        "fields": ["instruction", "input", "output", *meta_keys],
        "n_with_input": sum(1 for s in samples if s.input),
    }
