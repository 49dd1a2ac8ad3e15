"""Dry run of a profile: does every stage of ``dvc.yaml`` resolve under it, without running anything?

``python -m mdaq profile check paper`` is how a profile that needs hardware this machine lacks (8 GPUs, a paid judge)
is validated: the params load strictly, DVC resolves every templated and ``matrix`` stage with them, each dependency
is either a file of the repository, fetched data (``data.dvc``) or the output of another stage, every params key a
stage names exists, and every model, accelerate config, judge prompt and method the profile names can be found.
"""

from __future__ import annotations

import contextlib
import io
import logging
import shutil
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

log = logging.getLogger(__name__)


def _inside(path: str, roots: set[str]) -> bool:
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


def _has_key(data: dict[str, Any], dotted: str) -> bool:
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def _profile_problems(params: Any, root: Path, profile: Path) -> list[str]:
    """Checks of what the profile names: models, accelerate config, judge prompt, methods."""
    from importlib.resources import files

    from mdaq.models.assets import ASSETS
    from mdaq.models.hub import HUB_MODELS
    from mdaq.selectors import SELECTORS

    problems = []
    for key, name, folder in (
        ("base_model", params.base_model, "artifacts/base"),
        ("qsm.encoder", params.qsm.encoder, "artifacts/encoders"),
    ):
        if name not in ASSETS and name not in HUB_MODELS and not (root / folder / name / "config.json").is_file():
            problems.append(f"{key}: {name!r} is neither a PyPI asset, a hub model nor a folder under {folder}")
    if params.train.accelerate_config and not (root / params.train.accelerate_config).is_file():
        problems.append(f"train.accelerate_config: {params.train.accelerate_config} does not exist")
    if (
        params.judge.backend != "none"
        and not files("mdaq.judging").joinpath(f"prompts/{params.judge.prompt}.txt").is_file()
    ):
        problems.append(f"judge.prompt: no prompt mdaq/judging/prompts/{params.judge.prompt}.txt")
    if params.judge.backend != "none" and params.judge.reference not in params.methods:
        problems.append(f"judge.reference: {params.judge.reference!r} is not one of the profile's methods")
    from mdaq.names import submission_name

    problems += [f"methods: {m!r} is not registered" for m in params.methods if m not in SELECTORS]
    problems += [
        f"method_seeds.{m}: no selector is registered under this name"
        for m in params.method_seeds
        if m not in SELECTORS and submission_name(m) is None  # sub.<name>: a submission's seeds
    ]
    return problems + _selector_problems(params, profile) + _language_problems(params)


def _selector_problems(params: Any, profile: Path) -> list[str]:
    """Each ``selectors`` entry checked by its selector's own validation (:func:`mdaq.selectors.get_selector`)."""
    from mdaq.errors import DataError
    from mdaq.selectors import SELECTORS, get_selector

    problems = []
    for name, entry in params.selectors.items():
        if name not in SELECTORS:
            problems.append(f"selectors.{name}: no selector is registered under this name")
            continue
        try:
            get_selector(name, entry, source=profile)
        except DataError as e:
            problems.append(f"{e.field}: {e.message}")
    return problems


def _language_problems(params: Any) -> list[str]:
    """Languages the pipeline cannot read: every pool and held-out set comes from an MIDB file."""
    from mdaq.data.midb import LANG_FILES

    known = ", ".join(sorted(LANG_FILES))
    return [
        f"{key}: {lang!r} has no MIDB file (MIDB languages: {known})"
        for key, langs in (("languages", params.languages), ("qsm.unseen_langs", params.qsm.unseen_langs))
        for lang in langs
        if lang not in LANG_FILES
    ]


def dry_run(profile: str | Path, root: str | Path = ".") -> dict[str, Any]:
    """Resolve ``root/dvc.yaml`` under ``profile`` (a params file) in a scratch DVC repo and check every stage.

    Returns
    -------
    dict
        ``profile``, ``n_stages``, ``stages`` (count per stage type), ``problems`` (empty when the profile is sound).
    """
    from dvc.repo import Repo

    from mdaq.config import load_params, render_params
    from mdaq.submissions.recipe import plan_reuse

    profile, root = Path(profile), Path(root)
    from mdaq.judging import check_backend

    params = load_params(profile)  # strict: unknown keys and wrong types fail here, naming the key
    check_backend(params.judge.backend, profile)
    rendered = render_params(profile, plan_reuse(params, root / "submissions"))  # as `mdaq profile use` writes it
    raw = yaml.safe_load(rendered)  # `extends` resolved and the grids generated: what params.yaml would hold
    data_outs = set()
    for dvc_file in (p for p in root.glob("*.dvc") if p.is_file()):
        data_outs |= {o["path"] for o in (yaml.safe_load(dvc_file.read_text(encoding="utf-8")) or {}).get("outs", [])}
    with tempfile.TemporaryDirectory(prefix="mdaq-dry-") as tmp:
        shutil.copyfile(root / "dvc.yaml", Path(tmp) / "dvc.yaml")
        (Path(tmp) / "params.yaml").write_text(rendered, encoding="utf-8")
        dvc_log = logging.getLogger("dvc")
        level = dvc_log.level
        dvc_log.setLevel(logging.WARNING)
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # "Initialized DVC repository."
                repo = Repo.init(tmp, no_scm=True)
        finally:
            dvc_log.setLevel(level)
        try:
            stages = [s for s in repo.index.stages if getattr(s, "cmd", None)]
            resolved = [(s.name, list(s.deps), [str(o.def_path) for o in s.outs]) for s in stages]
            deps = [
                (name, [(type(d).__name__, str(d.def_path), getattr(d, "params", None)) for d in ds], outs)
                for name, ds, outs in resolved
            ]
        finally:
            repo.close()
    produced = {o for _, _, outs in deps for o in outs}
    problems = _profile_problems(params, root, profile)
    for name, ds, _ in deps:
        for kind, path, keys in ds:
            if kind == "ParamsDependency":
                problems += [f"{name}: params key {k!r} not in {profile}" for k in keys or [] if not _has_key(raw, k)]
            elif not (
                (root / path).exists()
                or _inside(path, produced)
                or _inside(path, data_outs)
                or any(_inside(o, {path}) for o in produced)
            ):  # a folder holding other stages' outputs
                problems.append(f"{name}: dependency {path} is neither in the repo, fetched data nor a stage output")
    types = Counter(name.split("@")[0] for name, _, _ in deps)
    return {
        "profile": str(profile),
        "n_stages": len(deps),
        "stages": dict(sorted(types.items())),
        "problems": problems,
    }


def stage_names(root: str | Path = ".") -> list[str]:
    """Names of the stages ``root/dvc.yaml`` resolves to under ``root/params.yaml`` (matrix stages expanded)."""
    from dvc.repo import Repo

    repo = Repo(str(root))
    try:
        return sorted(s.name for s in repo.index.stages if getattr(s, "cmd", None))
    finally:
        repo.close()


def prune_lock(root: str | Path = ".") -> list[str]:
    """Drop the ``dvc.lock`` entries of stages the current profile no longer has; returns their names.

    DVC updates one entry per stage run and never removes one, so every profile switch leaves entries behind;
    DVC reads and rewrites the whole file after every stage, and on 2 CPU cores an 11k-line lock cost ~5 s per stage
    (docs/design.md, *Stage start-up*). The file is rewritten atomically, entries kept in their order.
    """
    from mdaq.io import atomic_path

    lock = Path(root) / "dvc.lock"
    if not lock.is_file():
        return []
    data = yaml.safe_load(lock.read_text(encoding="utf-8")) or {}
    keep = set(stage_names(root))
    stages = data.get("stages") or {}
    dropped = [name for name in stages if name not in keep]
    if dropped:
        data["stages"] = {name: entry for name, entry in stages.items() if name in keep}
        with atomic_path(lock) as tmp:
            tmp.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=4096), encoding="utf-8")
    return dropped
