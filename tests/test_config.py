"""Strict params loading: unknown keys, wrong types, the YAML "no" trap, profiles."""

from __future__ import annotations

import pytest
import yaml

from mdaq import DataError, load_params
from mdaq.cli import main
from mdaq.config import section_sha

from .conftest import REPO


def _write(tmp_path, text):
    path = tmp_path / "params.yaml"
    path.write_text(text, encoding="utf-8")
    return path


BASE = (
    'profile: t\nseed: 0\nlanguages: ["de", "no"]\nmethods: [random]\nbase_model: tiny-llama\n'
    "selectors: {random: {}}\n"
)


def test_minimal_params_load_with_defaults(tmp_path):
    p = load_params(_write(tmp_path, BASE))
    assert p.languages == ("de", "no") and p.select.budget == 1000 and p.train.target_modules[0] == "q_proj"


def test_unquoted_no_is_a_clear_error(tmp_path):
    text = BASE.replace('["de", "no"]', "[de, no]")
    assert yaml.safe_load(text)["languages"] == ["de", False]  # the trap itself
    with pytest.raises(DataError, match=r"languages\[1\].*quote them in YAML"):
        load_params(_write(tmp_path, text))


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        ("select: {budgett: 5}\n", r"field 'select.budgett': unknown key"),
        ("select: {budget: five}\n", r"field 'select.budget': expected int"),
        ("train: {lr: true}\n", r"field 'train.lr': expected float"),
        ("bogus: 1\n", r"field 'bogus': unknown key"),
        ("prepare: {split: {pool: [1]}}\n", r"field 'prepare.split.pool'"),
        ("train: {precision: fp16}\n", r"field 'train.precision': 'fp16' is not one of"),
        ("qsm: {dropout: high}\n", r"field 'qsm.dropout': expected float"),
        ("select: {pooled_quota: uniform}\n", r"field 'select.pooled_quota'"),
    ],
)
def test_bad_params_name_the_key(tmp_path, extra, match):
    with pytest.raises(DataError, match=match):
        load_params(_write(tmp_path, BASE + extra))


def test_method_without_selector_params(tmp_path):
    with pytest.raises(DataError, match="method 'full' has no entry under selectors"):
        load_params(_write(tmp_path, BASE.replace("[random]", "[random, full]")))


def test_section_sha_changes_only_with_its_sections(tmp_path):
    a = load_params(_write(tmp_path, BASE))
    b = load_params(_write(tmp_path, BASE + "train: {lr: 0.1}\n"))
    assert section_sha(a, "select") == section_sha(b, "select")
    assert section_sha(a, "train") != section_sha(b, "train")


def test_repo_profiles_are_valid_and_params_is_one_of_them():
    profiles = {p.stem: load_params(p) for p in (REPO / "profiles").glob("*.yaml")}
    assert {"smoke", "default"} <= set(profiles)
    assert load_params(REPO / "params.yaml") in profiles.values()


def test_profile_use_copies_a_validated_profile(tmp_path):
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "mine.yaml").write_text(BASE, encoding="utf-8")
    (tmp_path / "profiles" / "broken.yaml").write_text(BASE + "oops: 1\n", encoding="utf-8")
    target = tmp_path / "params.yaml"
    args = ["--profiles", str(tmp_path / "profiles"), "--params", str(target)]
    assert main(["profile", "use", "mine", *args]) == 0
    assert target.read_text() == BASE
    assert main(["profile", "use", "broken", *args]) == 1
    assert main(["profile", "use", "nope", *args]) == 1
    assert target.read_text() == BASE
