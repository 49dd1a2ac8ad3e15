"""What a leaderboard row says about where it came from: its tier (built-in, verified or community submission), the
frozen pool it was trained on (a run on another pool is refused), its selection compute and its method card's links;
and which built-in run a reusing submission row takes its numbers from."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mdaq.config import Params
from mdaq.errors import DataError
from mdaq.io import read_json
from mdaq.names import path_under, submission_method, submission_name

BUILTIN = "builtin"  # a registered method (or the base model): its code is this repository's
TIERS = (BUILTIN, "verified", "community")  # mdaq.submissions.recipe decides the two submission tiers


def read_submission_records(folder: str | Path, params: Params) -> dict[str, dict[str, Any]]:
    """The ``submission`` stage's records of the profile's submissions (``<folder>/<name>.json``), keyed by method
    name (``sub.<name>``).

    Raises
    ------
    FileNotFoundError, DataError
        A missing record (run ``dvc repro``), or one written for another profile or submission.
    """
    out = {}
    for name in params.submissions:
        path = path_under(folder, f"{name}.json")
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no record of submission {name!r}; run `dvc repro submission@{name}`")
        record = read_json(path)
        if record.get("method") != submission_method(name) or record.get("profile") != params.profile:
            raise DataError(path, f"not the record of submission {name!r} of profile {params.profile!r}")
        out[record["method"]] = record
    return out


def reuse_sources(params: Params, submissions: Mapping[str, Mapping[str, Any]]) -> dict[tuple[str, str, int], str]:
    """``(submission method, lang, seed) -> built-in method`` for every run of ``params.reused_runs``: the row takes
    that method's run of the same language and seed (same ids, same recipe, same adapter).

    Raises
    ------
    DataError
        A reused run of a submission whose record is not ``verified`` (the stage that imports it refuses that too).
    """
    grid = {
        f"{m}-{lang}-{seed}": (m, lang, seed)
        for m in params.board_methods
        for lang in params.languages
        for seed in params.seeds_of(m)
    }
    out = {}
    for key, source in params.reused_runs.items():
        method, lang, seed = grid[key]
        if method in submissions and submissions[method].get("tier") != "verified":
            raise DataError(
                "params.yaml", f"reuses {source}, but {method} is not verified", field=f"reused_runs.{key}"
            )
        out[(method, lang, seed)] = grid[source][0]
    return out


def check_pool(
    runs: Mapping[str, Mapping[str, Sequence[tuple[int, dict, Any]]]], pool: Mapping[str, Any], runs_dir: str | Path
) -> None:
    """Refuse any run whose ``pool_sha256`` is not the frozen pool's file of its language: a row trained on another
    pool (another profile, an edited or older pool, a run made before pools were frozen) is never mixed in.

    Raises
    ------
    DataError
        Naming the run, the two hashes and what to do.
    """
    files = {lang: entry["sha256"] for lang, entry in pool["languages"].items()}
    for method, by_lang in runs.items():
        for lang, seed_runs in by_lang.items():
            for seed, metrics, _ in seed_runs:
                found, expected = metrics.get("pool_sha256"), files.get(lang)
                if found != expected:
                    where = Path(runs_dir, str(metrics.get("method", method)), lang, f"s{seed}", "metrics.json")
                    had = f"pool file {str(found)[:12]}" if found else "no pool record"
                    msg = (
                        f"{had}, but the frozen pool {pool['pool_hash'][:12]} of profile {pool.get('profile')!r} has "
                        f"{str(expected)[:12]} for {lang!r}: a row computed on another pool is not mixed in; rerun it"
                    )
                    raise DataError(where, msg, field="pool_sha256")


def row_info(
    method: str,
    submissions: Mapping[str, Mapping[str, Any]],
    pool: Mapping[str, Any] | None,
    links: Mapping[str, Mapping[str, str]],
) -> dict[str, Any]:
    """The :data:`mdaq.reporting.leaderboard.ROW_INFO` columns of ``method``'s rows: tier, pool hash, selection
    seconds (a submission's card) and the method card's ``paper`` and ``code`` links.

    Raises
    ------
    DataError
        A submission whose record names another pool than ``pool``.
    """
    pool_hash = pool["pool_hash"] if pool is not None else ""
    record = submissions.get(method)
    if record is None:
        own = links.get(method, {})
        return {"tier": BUILTIN, "pool_hash": pool_hash, "selection_s": float("nan"), **_links(own)}
    if pool is not None and record.get("pool_hash") != pool_hash:
        name = submission_name(method)
        msg = f"selected from pool {str(record.get('pool_hash'))[:12]}, not this board's {pool_hash[:12]}"
        raise DataError(f"submission {name}", msg, field="pool_hash")
    card = record.get("card", {})
    seconds = (card.get("compute") or {}).get("seconds")
    return {
        "tier": record["tier"],
        "pool_hash": record["pool_hash"],
        "selection_s": float(seconds) if isinstance(seconds, int | float) else float("nan"),
        **_links(card),
        "code": _code_link(card.get("code", ""), record.get("folder", "")),
    }


def _links(card: Mapping[str, Any]) -> dict[str, str]:
    return {"paper": str(card.get("paper") or ""), "code": str(card.get("code") or "")}


def _code_link(code: str, folder: str) -> str:
    """A card's ``code``: a URL as is, ``code/...`` under the submission's folder, else a path of this repository."""
    if not code or code.startswith(("http://", "https://")):
        return code
    return f"{folder}/{code}" if code.split("/")[0] == "code" and folder else code


def builtin_links(methods: Sequence[str]) -> dict[str, dict[str, str]]:
    """``paper`` and ``code`` of each registered method, as its exported card would give them
    (:func:`mdaq.selectors.method_metadata`)."""
    from mdaq.selectors import SELECTORS, method_metadata

    return {m: {k: method_metadata(m)[k] for k in ("paper", "code")} for m in methods if m in SELECTORS}
