"""CI keeps the board honest: every submission folder in the repository is listed by the profile its card names,
and validates against that profile's frozen pool, rebuilt here from the pinned MIDB mirror as the pipeline builds it.
A folder selected from an older pool is named, with the command that brings it up to date."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import yaml

from mdaq.config import load_params
from mdaq.submissions.pool import FrozenPool, freeze_pool, read_frozen_pool
from mdaq.submissions.validate import validate_submission
from tests.conftest import REPO, real_mirror

SUBMISSIONS = REPO / "submissions"
FOLDERS = sorted(p for p in SUBMISSIONS.iterdir() if p.is_dir()) if SUBMISSIONS.is_dir() else []


def _card(folder: Path) -> dict:
    return yaml.safe_load((folder / "method.yaml").read_text(encoding="utf-8")) or {}


def test_the_repository_holds_submissions_and_every_one_is_listed_by_its_profile():
    assert len(FOLDERS) >= 2  # issue 19: an exported built-in method and an outside-style ids-only example
    tiers = {"selector" in _card(f) for f in FOLDERS}
    assert tiers == {True, False}, "one exported (selector block) and one ids-only submission"
    listed = {}
    for path in sorted((REPO / "profiles").glob("*.yaml")):
        for name in load_params(path).submissions:
            listed.setdefault(name, set()).add(path.stem)
    for folder in FOLDERS:
        profile = _card(folder).get("profile")
        assert profile in listed.get(folder.name, set()), (
            f"{folder.relative_to(REPO)}: its card names profile {profile!r}, whose `submissions` does not list "
            f"{folder.name!r}: add it to profiles/{profile}.yaml and run `python -m mdaq profile use {profile}`"
        )
    missing = sorted(name for name in listed if not (SUBMISSIONS / name).is_dir())
    assert not missing, f"profiles list submissions with no folder under submissions/: {missing}"


@functools.cache
def frozen_pool(profile: str, root: Path) -> FrozenPool:
    """The frozen pool of ``profile`` from the MIDB mirror: its languages prepared as the prepare stage does, then
    frozen as the pool stage does (the data pin is the repository's data.dvc)."""
    from mdaq.data.split import prepare

    params = load_params(REPO / "profiles" / f"{profile}.yaml")
    prepare(real_mirror(), root / "prepared", params.prepare, seed=params.seed, langs=params.languages)
    freeze_pool(params, root / "prepared" / "pool", root / "pool", data_dvc=REPO / "data.dvc")
    return read_frozen_pool(root / "pool")


def _how_to_update(folder: Path, card: dict) -> str:
    block = card.get("selector")
    if isinstance(block, dict):
        return (
            f"re-export it after a `dvc repro` of profile {card.get('profile')}: `python -m mdaq submit export "
            f"--method {block.get('method')} --out {folder.relative_to(REPO)}`"
        )
    return "select again from the current frozen pool (`python -m mdaq submit pool`) and update its card's pool_hash"


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda p: p.name)
def test_every_submission_in_the_repository_validates(folder, tmp_path_factory):
    if real_mirror() is None:
        pytest.skip("no MIDB mirror (MDAQ_DATA_MIRROR): the frozen pool cannot be rebuilt here")
    card = _card(folder)
    params = load_params(REPO / "profiles" / f"{card['profile']}.yaml")
    pool = frozen_pool(params.profile, tmp_path_factory.mktemp(f"pool-{params.profile}"))
    problems = validate_submission(folder, params, pool, root=REPO)
    if card.get("pool_hash") != pool.manifest["pool_hash"]:
        pytest.fail(
            f"{folder.relative_to(REPO)} is out of date: selected from pool {str(card.get('pool_hash'))[:12]}, but "
            f"profile {params.profile!r} now freezes pool {pool.manifest['pool_hash'][:12]}; "
            + _how_to_update(folder, card)
            + "".join(f"\n  {p}" for p in problems)
        )
    assert not problems, f"{folder.relative_to(REPO)} is not a valid submission:" + "".join(
        f"\n  {p}" for p in problems
    )
