"""Export a registered method's pipeline selection as a submission folder, so built-in and outside methods travel
the same road (validated before it is written)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from mdaq.config import Params
from mdaq.errors import DataError
from mdaq.io import atomic_dir, check_distinct, iter_jsonl_lines, read_text
from mdaq.names import path_under
from mdaq.submissions.card import CARD
from mdaq.submissions.pool import FrozenPool, check_current, read_frozen_pool
from mdaq.submissions.validate import SELECTION, required_counts, validate_submission

NOT_SUBMITTABLE = {
    "reference": "is the reference (the whole pool, no budget): every submission is compared against it",
    "control": "is a control that reads the evaluation label (uses_heldout would be true)",
}


def selection_ids(path: Path, pool: FrozenPool, lang: str) -> list[str]:
    """The ids of a pipeline selection file (rows ``{rank, index, id, ...}`` in rank order), each checked to be a
    ``lang`` id of the frozen pool.

    Raises
    ------
    FileNotFoundError, DataError
        A missing file, a row without a string ``id``, or an id the frozen pool does not hold in ``lang`` (a
        selection made on another pool).
    """
    ids = []
    for n, row in iter_jsonl_lines(path):
        if not isinstance(row.get("id"), str):
            raise DataError(path, "missing or non-string", f"line {n}", "id")
        if pool.lang_of.get(row["id"]) != lang:
            raise DataError(path, f"{row['id']!r:.40} is not in the frozen {lang!r} pool", f"line {n}", "id")
        ids.append(row["id"])
    return ids


def notebook_seconds(paths: list[Path]) -> float:
    """Summed papermill wall time (``metadata.papermill.duration``) of the executed notebooks.

    Raises
    ------
    DataError
        Naming ``--compute-seconds`` and the first notebook that is missing or has no duration.
    """
    total = 0.0
    for path in paths:
        meta = json.loads(read_text(path)).get("metadata", {}) if path.is_file() else {}
        duration = (meta.get("papermill") or {}).get("duration")
        if not isinstance(duration, int | float):
            msg = f"not given, and {path} is missing or has no papermill duration: pass the seconds the selection took"
            raise DataError("--compute-seconds", msg)
        total += float(duration)
    return total


def describe_hardware() -> str:
    """This machine's CPU in one line (selection runs on the CPU: numpy over precomputed features)."""
    from mdaq.hardware import cpu_info, thread_plan

    return f"{cpu_info().model} ({thread_plan().physical_cores} physical cores available)"


def _check_exportable(method: str, params: Params) -> None:
    from mdaq.selectors import SELECTORS

    role = SELECTORS.get(method).role  # KeyError listing the registered names
    if role in NOT_SUBMITTABLE:
        raise DataError("--method", f"{method} {NOT_SUBMITTABLE[role]}; it is not exported as a submission")
    if method not in params.methods:
        raise DataError(
            "--method", f"{method} is not one of profile {params.profile}'s methods, so it has no selection"
        )


def export_submission(
    method: str,
    params: Params,
    out: str | Path,
    *,
    pools: str | Path,
    selections: str | Path,
    runs: str | Path,
    code_commit: str,
    authors: list[str],
    seed: int | None = None,
    pooled: bool = False,
    compute_seconds: float | None = None,
    hardware: str | None = None,
    root: str | Path = ".",
) -> dict[str, Any]:
    """Write ``out`` (``submissions/<name>/``) from ``method``'s selection files of the active profile.

    Parameters
    ----------
    method : str
        A registered method with role ``method`` (not the ``full`` reference, not a control).
    params : Params
        The active params (the profile the pipeline ran).
    out : path
        The submission folder; its name is the submission's name. Replaced only when it holds a ``method.yaml``.
    pools : path
        Root of the frozen pools; the profile's is ``<pools>/<profile>``.
    selections : path
        ``artifacts/selections`` (``<method>/<lang>/s<seed>.jsonl``) or, with ``pooled``,
        ``artifacts/selections_pooled`` (``<method>/<lang>.jsonl``, selected with the profile's ``seed``).
    runs : path
        The executed notebooks (``notebooks/_runs``): their papermill wall time is the compute, unless
        ``compute_seconds`` is given.
    code_commit, authors
        The card's fields.
    seed : int, optional
        Which replicate (default: the method's first seed; pooled: the profile's ``seed``, the only one it runs).
    hardware : str, optional
        Default: this machine's CPU (:func:`describe_hardware`); pass it when the pipeline ran elsewhere.

    Returns
    -------
    dict
        The card written.

    Raises
    ------
    KeyError, FileNotFoundError, DataError
        An unknown or non-submittable method, a missing or stale frozen pool, a missing selection file (the message
        names the stage that writes it), a selection whose size is not the profile's, no way to know the compute.
    """
    _check_exportable(method, params)
    check_distinct(out, {"--selections": selections, "--pools": pools})
    seed = (params.seed if pooled else params.seeds_of(method)[0]) if seed is None else seed
    if pooled and seed != params.seed:
        raise DataError("--seed", f"the pooled stage selects with the profile's seed {params.seed}, not {seed}")
    pool = read_frozen_pool(path_under(pools, params.profile))
    check_current(pool, params, f"profile {params.profile!r}")
    mode = "pooled" if pooled else "per_language"
    ids, notebooks = read_selections(method, pool, mode, Path(selections), Path(runs), seed)
    seconds = notebook_seconds(notebooks) if compute_seconds is None else compute_seconds
    compute = {
        "seconds": round(float(seconds), 3),
        "hardware": hardware or describe_hardware(),
        "note": MEASURED_NOTE if compute_seconds is None else "given at export (--compute-seconds)",
    }
    card = _card(method, params, Path(out).name, mode, pool, seed, code_commit, authors, compute)
    _write(Path(out), card, ids, params, pool, root)
    return card


def read_selections(
    method: str, pool: FrozenPool, mode: str, selections: Path, runs: Path, seed: int
) -> tuple[dict[str, list[str]], list[Path]]:
    """Per language of ``pool``, the ids of ``method``'s pipeline selection (checked: in the pool, as many as
    ``mode`` requires), and the executed notebooks that made them.

    Raises
    ------
    FileNotFoundError, DataError
        A missing selection file (naming the stage that writes it) or one of another size (a stale selection).
    """
    required, how = required_counts(mode, pool)
    pooled = mode == "pooled"
    ids, notebooks = {}, []
    for lang in sorted(pool.counts):
        stage = f"select_pooled@{method}" if pooled else f"select@{method}-{lang}-{seed}"
        path = path_under(selections, *((method, f"{lang}.jsonl") if pooled else (method, lang, f"s{seed}.jsonl")))
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no selection; run `dvc repro {stage}` first")
        ids[lang] = selection_ids(path, pool, lang)
        if len(ids[lang]) != required[lang]:
            msg = f"{len(ids[lang])} ids, but {mode} mode needs {required[lang]} ({how}); rerun `dvc repro {stage}`"
            raise DataError(path, msg)
        name = f"21_select_pooled@{method}.ipynb" if pooled else f"20_select@{method}-{lang}-s{seed}.ipynb"
        notebooks.append(path_under(runs, name))
    return ids, sorted(set(notebooks))


MEASURED_NOTE = (
    "papermill wall time of the select stage's notebooks, imports and plots included; the features the method reads "
    "(QSM scores, embeddings, IFD) are computed once per pool by the features and ifd stages and are not counted"
)


def _card(
    method: str,
    params: Params,
    name: str,
    mode: str,
    pool: FrozenPool,
    seed: int,
    code_commit: str,
    authors: list[str],
    compute: dict[str, Any],
) -> dict[str, Any]:
    """The method card of an exported built-in method (field order as in docs/submitting.md)."""
    from mdaq.selectors import SELECTORS, method_metadata

    cls, meta = SELECTORS.get(method), method_metadata(method)
    return {
        "name": name,
        "description": meta["description"],
        "authors": list(authors),
        "paper": meta["paper"],
        "code": meta["code"],
        "code_commit": code_commit,
        "profile": params.profile,
        "pool_hash": pool.manifest["pool_hash"],
        "mode": mode,
        "compute": compute,
        "features": sorted(cls.requires),
        "uses_heldout": False,
        "selector": {"method": method, "version": cls.version, "params": dict(params.selectors[method]), "seed": seed},
    }


def _write(
    out: Path, card: dict[str, Any], ids: dict[str, list[str]], params: Params, pool: FrozenPool, root: str | Path
) -> None:
    """Assemble the folder beside ``out``, validate it there, and swap it in only when it is valid."""
    header = f"# Method card written by `python -m mdaq submit export --method {card['selector']['method']}`\n"
    with atomic_dir(out, owned_by=(CARD,)) as tmp:
        (tmp / SELECTION).mkdir()
        for lang, lang_ids in ids.items():
            (tmp / SELECTION / f"{lang}.txt").write_text("".join(f"{i}\n" for i in lang_ids), encoding="utf-8")
        text = yaml.safe_dump(card, sort_keys=False, allow_unicode=True, width=119)
        (tmp / CARD).write_text(header + text, encoding="utf-8")
        problems = validate_submission(tmp, params, pool, root=root, name=out.name)
        if problems:
            raise DataError(out, f"export would write an invalid submission: {problems[0]}")
