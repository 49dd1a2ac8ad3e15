"""Frozen pools: a profile's candidate pool as published files (one JSONL per language), a manifest and one hash.

The ids are the ones the ``prepare`` stage already gives every pool sample: :func:`mdaq.types.sample_id`, a hash
of (lang, instruction, input, output), so they are stable across runs and machines and need no second id scheme.
The frozen records leave out ``meta``: it holds the evaluation label (``is_revised``) that no selector may read.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mdaq.config import Params
from mdaq.data.frozen import FIELDS, ID_RULE, frozen_records, jsonl_bytes, sha256_bytes
from mdaq.errors import DataError
from mdaq.io import (
    atomic_dir,
    check_distinct,
    check_file,
    iter_jsonl_lines,
    read_json,
    read_text,
    write_json,
)
from mdaq.names import path_under

FORMAT = "mdaq-frozen-pool/1"
MANIFEST = "manifest.json"
POOL_SETTINGS = ("split", "guard", "p_revised", "max_pool")  # what the pool depends on in `prepare` (data.split)
HASH_RULE = "sha256 of the text '<lang> <sha256 of <lang>.jsonl>\\n' over the languages in sorted order"


def pool_settings(params: Params) -> dict[str, Any]:
    """The params a profile's pool depends on: ``seed`` and the pool part of ``prepare`` (not the held-out caps)."""
    prepare = dataclasses.asdict(params.prepare)
    return {"seed": params.seed, "prepare": {key: prepare[key] for key in POOL_SETTINGS}}


def selection_rules(params: Params, counts: dict[str, int]) -> dict[str, Any]:
    """What a submission on this pool must select: exactly ``min(budget, n)`` per language, or the pooled quotas
    (:func:`mdaq.selectors.budgets.language_quotas` over ``select.budget`` x number of languages, as the
    ``select_pooled`` stage computes them)."""
    from mdaq.selectors.budgets import language_quotas

    budget, select = params.select.budget, params.select
    total = budget * len(counts)
    return {
        "budget": budget,
        "per_language": {lang: min(budget, n) for lang, n in sorted(counts.items())},
        "pooled_quota": select.pooled_quota,
        "pooled_temperature": select.pooled_temperature,
        "pooled": language_quotas(counts, total, select.pooled_quota, select.pooled_temperature),
    }


def data_pin(data_dvc: str | Path) -> dict[str, str]:
    """The input data a pool was built from: the pinned MIDB commit (``mdaq/data/midb_manifest.json``) and the
    checksum ``data.dvc`` records for the ``data/`` folder.

    Raises
    ------
    FileNotFoundError, DataError
        ``data_dvc`` is missing, malformed, or records no ``outs[0].md5``.
    """
    from mdaq.data.fetch import load_manifest

    path = check_file(data_dvc)
    try:
        doc = yaml.safe_load(read_text(path))
    except yaml.YAMLError:
        raise DataError(path, "malformed YAML: not a DVC file") from None
    outs = doc.get("outs") if isinstance(doc, dict) else None
    md5 = outs[0].get("md5") if isinstance(outs, list) and outs and isinstance(outs[0], dict) else None
    if not isinstance(md5, str) or not md5:
        raise DataError(path, "records no checksum of the data folder (outs[0].md5): not a DVC file", field="outs")
    return {"midb_commit": load_manifest()["commit"], "data_dvc_md5": md5}


def pool_hash(file_sha256: dict[str, str]) -> str:
    """The pool hash (:data:`HASH_RULE`) from the sha256 of each language's frozen file; any changed record,
    added or removed record, or language changes it. Reproducible with ``sha256sum``."""
    text = "".join(f"{lang} {file_sha256[lang]}\n" for lang in sorted(file_sha256))
    return sha256_bytes(text.encode("utf-8"))


def freeze_pool(
    params: Params, pool_dir: str | Path, out_dir: str | Path, *, data_dvc: str | Path = "data.dvc"
) -> dict[str, Any]:
    """Write the frozen pool of ``params``: ``<out_dir>/<lang>.jsonl`` for each of ``params.languages`` (from the
    prepare stage's ``<pool_dir>/<lang>.jsonl``) and ``<out_dir>/manifest.json``; the folder is swapped in whole
    (:func:`mdaq.io.atomic_dir`) and only ever replaces a folder holding a manifest.

    Returns
    -------
    dict
        The manifest: format, profile, pool hash and how it is computed, the id rule, fields, per-language file,
        count and sha256, the pool settings, the data pin and the selection rules. Deterministic: no date and no
        code commit, so the same pool gives the same bytes.

    Raises
    ------
    FileNotFoundError, DataError
        A missing pool file (run the prepare stage first), a bad record (:func:`frozen_records`), ``out_dir`` equal
        to ``pool_dir``, or an ``out_dir`` that mdaq did not write.
    """
    check_distinct(out_dir, {"--pool-dir": pool_dir})
    pin = data_pin(data_dvc)
    records = {}
    for lang in sorted(params.languages):
        path = path_under(pool_dir, f"{lang}.jsonl")
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such pool file; run the prepare stage for profile {params.profile}")
        records[lang] = frozen_records(path, lang)
    with atomic_dir(out_dir, owned_by=(MANIFEST,)) as tmp:
        languages = {}
        for lang, rows in records.items():
            data = jsonl_bytes(rows)  # the bytes every run's `pool_sha256` hashes (mdaq.data.frozen)
            (tmp / f"{lang}.jsonl").write_bytes(data)
            sha = sha256_bytes(data)
            languages[lang] = {"file": f"{lang}.jsonl", "n": len(rows), "sha256": sha}
        manifest = {
            "format": FORMAT,
            "profile": params.profile,
            "pool_hash": pool_hash({lang: v["sha256"] for lang, v in languages.items()}),
            "pool_hash_rule": HASH_RULE,
            "id_rule": ID_RULE,
            "fields": list(FIELDS),
            "languages": languages,
            "n_total": sum(v["n"] for v in languages.values()),
            "pool_settings": pool_settings(params),
            "data": pin,
            "rules": selection_rules(params, {lang: v["n"] for lang, v in languages.items()}),
        }
        write_json(tmp / MANIFEST, manifest)
    return manifest


@dataclass(frozen=True)
class FrozenPool:
    """A frozen pool as the validator reads it: its folder, manifest, and the language of every id."""

    path: Path
    manifest: dict[str, Any]
    lang_of: dict[str, str]

    @property
    def counts(self) -> dict[str, int]:
        """Pool size per language."""
        return {lang: int(v["n"]) for lang, v in self.manifest["languages"].items()}


def read_frozen_pool(pool_dir: str | Path) -> FrozenPool:
    """Read a frozen pool and check it is the one its manifest describes (every file's sha256, the pool hash).

    Raises
    ------
    FileNotFoundError, DataError
        No pool there (the message says how to build one), a manifest of another format, or a file whose sha256
        does not match (a pool edited after it was frozen).
    """
    pool_dir = Path(pool_dir)
    manifest_path = pool_dir / MANIFEST
    if not manifest_path.is_file():
        raise FileNotFoundError(
            f"{manifest_path}: no frozen pool here; build it with `python -m mdaq submit pool` after the prepare stage"
        )
    manifest = read_json(manifest_path)
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise DataError(manifest_path, f"not a frozen-pool manifest (expected format {FORMAT!r})", field="format")
    for key, kind in (("languages", dict), ("pool_hash", str)):
        if not isinstance(manifest.get(key), kind):
            raise DataError(manifest_path, f"missing or not a {kind.__name__}", field=key)
    lang_of: dict[str, str] = {}
    shas = {}
    for lang, entry in manifest["languages"].items():
        path = path_under(pool_dir, f"{lang}.jsonl")
        shas[lang] = sha256_bytes(check_file(path).read_bytes())
        if shas[lang] != entry["sha256"]:
            raise DataError(path, "sha256 differs from the manifest's: the frozen pool was changed after freezing")
        lang_of.update((row["id"], lang) for _, row in iter_jsonl_lines(path))
    if pool_hash(shas) != manifest["pool_hash"]:
        raise DataError(manifest_path, "pool_hash does not match its files", field="pool_hash")
    return FrozenPool(pool_dir, manifest, lang_of)


def check_current(pool: FrozenPool, params: Params, source: object) -> None:
    """Raise unless ``pool`` is the frozen pool of ``params`` (read from ``source``): same languages, pool settings
    and selection rules, so a submission is never checked against another profile's pool.

    Raises
    ------
    DataError
        Naming the manifest and the first key that differs, with the command that rebuilds the pool.
    """
    expected = {
        "languages": sorted(params.languages),
        "pool_settings": pool_settings(params),
        "rules": selection_rules(params, pool.counts),
    }
    found = {
        "languages": sorted(pool.manifest["languages"]),
        "pool_settings": pool.manifest.get("pool_settings"),
        "rules": pool.manifest.get("rules"),
    }
    for key, value in expected.items():
        if found[key] != value:
            raise DataError(
                pool.path / MANIFEST,
                f"built for {found[key]}, but {source} gives {value}; rebuild it with `python -m mdaq submit pool`",
                field=key,
            )
