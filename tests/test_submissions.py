"""Frozen pools, submission folders, `mdaq submit validate` and `mdaq submit export` on tiny pools (no models)."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from mdaq import Pool, Sample, get_selector, load_params
from mdaq.cli import main
from mdaq.config import Params, PrepareConfig
from mdaq.errors import DataError
from mdaq.io import read_samples, write_samples
from mdaq.selectors import write_selection
from mdaq.selectors.budgets import select_pooled
from mdaq.submissions.export import export_submission
from mdaq.submissions.pool import FrozenPool, check_current, freeze_pool, read_frozen_pool
from mdaq.submissions.validate import MAX_PER_KIND, validate_submission
from tests.conftest import REPO

TINY_PROFILE = """extends: default
profile: tiny
languages: ["de", "ja"]
select: {budget: 3, pooled_quota: proportional}   # pooled quotas over pools of 5 and 3: de 4, ja 2
"""
SIZES = {"de": 5, "ja": 3}


@dataclass
class Env:
    root: Path
    params: Params
    pool: FrozenPool
    ids: dict[str, list[str]]  # frozen pool ids per language, in pool order

    @property
    def pools(self) -> Path:
        return self.root / "pools"

    @property
    def profiles(self) -> Path:
        return self.root / "profiles"


def tiny_samples(lang: str, n: int, tag: str = "") -> list[Sample]:
    return [
        Sample.create(
            lang, f"{lang} instruction {i}{tag}", "", f"{lang} answer {i}", f"toy#{i}", {"is_revised": i % 2}
        )
        for i in range(n)
    ]


def write_pool_dir(folder: Path, tag: str = "") -> Path:
    for lang, n in SIZES.items():
        write_samples(folder / f"{lang}.jsonl", tiny_samples(lang, n, tag))
    return folder


@pytest.fixture
def env(tmp_path) -> Env:
    """A profile ``tiny`` (budget 3, proportional pooled quotas), its prepared pools and its frozen pool."""
    return make_env(tmp_path)


def make_env(tmp_path: Path) -> Env:
    """The :func:`env` fixture's profile, prepared pools and frozen pool under ``tmp_path``."""
    (tmp_path / "profiles").mkdir()
    shutil.copy(REPO / "profiles" / "default.yaml", tmp_path / "profiles" / "default.yaml")
    (tmp_path / "profiles" / "tiny.yaml").write_text(TINY_PROFILE, encoding="utf-8")
    (tmp_path / "data.dvc").write_text("outs:\n- md5: 0123abcd.dir\n  path: data\n", encoding="utf-8")
    params = load_params(tmp_path / "profiles" / "tiny.yaml")
    write_pool_dir(tmp_path / "prepared")
    freeze_pool(params, tmp_path / "prepared", tmp_path / "pools" / "tiny", data_dvc=tmp_path / "data.dvc")
    pool = read_frozen_pool(tmp_path / "pools" / "tiny")
    ids = {lang: [s.id for s in read_samples(tmp_path / "prepared" / f"{lang}.jsonl")] for lang in SIZES}
    return Env(tmp_path, params, pool, ids)


def card_of(env: Env, name: str = "my_method", **changes) -> dict:
    card = {
        "name": name,
        "description": "Takes the first samples of each pool.",
        "authors": ["Ada Lovelace"],
        "paper": "https://arxiv.org/abs/2509.15549",
        "code": "https://example.org/my_method",
        "code_commit": "0123abc",
        "profile": "tiny",
        "pool_hash": env.pool.manifest["pool_hash"],
        "mode": "per_language",
        "compute": {"seconds": 1.5, "hardware": "laptop CPU"},
        "features": ["quality"],
        "uses_heldout": False,
    }
    return card | changes


def write_submission(env: Env, name: str = "my_method", ids: dict | None = None, **changes) -> Path:
    folder = env.root / "submissions" / name
    (folder / "selection").mkdir(parents=True)
    for lang, lang_ids in (ids or {lang: env.ids[lang][:3] for lang in SIZES}).items():
        (folder / "selection" / f"{lang}.txt").write_text("".join(f"{i}\n" for i in lang_ids), encoding="utf-8")
    (folder / "method.yaml").write_text(yaml.safe_dump(card_of(env, name, **changes)), encoding="utf-8")
    return folder


def validate_cli(env: Env, folder: Path, capsys, *extra: str) -> tuple[int, list[str], str]:
    argv = ["submit", "validate", str(folder), "--profiles", str(env.profiles), "--pools", str(env.pools)]
    code = main([*argv, "--root", str(REPO), *extra])
    out, err = capsys.readouterr()
    return code, [line for line in err.splitlines() if line.strip()], out


def edit_card(**changes) -> Callable[[Path, Env], None]:
    """A mutation: set (value) or delete (None) card fields, dotted keys reach into mappings."""

    def mutate(folder: Path, env: Env) -> None:
        card = yaml.safe_load((folder / "method.yaml").read_text(encoding="utf-8"))
        for key, value in changes.items():
            *parents, last = key.split(".")
            node = card
            for part in parents:
                node = node[part]
            if value is None:
                del node[last]
            else:
                node[last] = value
        (folder / "method.yaml").write_text(yaml.safe_dump(card), encoding="utf-8")

    return mutate


def write_file(rel: str, text: str | bytes) -> Callable[[Path, Env], None]:
    def mutate(folder: Path, env: Env) -> None:
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))

    return mutate


def remove(rel: str) -> Callable[[Path, Env], None]:
    def mutate(folder: Path, env: Env) -> None:
        path = folder / rel
        shutil.rmtree(path) if path.is_dir() else path.unlink()

    return mutate


def write_ids(lang: str, pick: Callable[[Env], list[str]]) -> Callable[[Path, Env], None]:
    """A mutation: ``selection/<lang>.txt`` holds ``pick(env)``, one per line (a lone surrogate: an invalid byte)."""

    def mutate(folder: Path, env: Env) -> None:
        text = "".join(f"{i}\n" for i in pick(env))
        (folder / "selection" / f"{lang}.txt").write_bytes(text.encode("utf-8", errors="surrogateescape"))

    return mutate


def de_ids(pick: Callable[[Env], list[str]]) -> Callable[[Path, Env], None]:
    return write_ids("de", pick)


def both(*mutations: Callable[[Path, Env], None]) -> Callable[[Path, Env], None]:
    def mutate(folder: Path, env: Env) -> None:
        for m in mutations:
            m(folder, env)

    return mutate


OTHER_HASH = "f" * 64
# name -> (mutation of a valid submission, the one line expected: file, record, field, what)
MALFORMED: dict[str, tuple[Callable[[Path, Env], None], tuple[str, ...]]] = {
    "no-card": (remove("method.yaml"), ("method.yaml", "missing: every submission has a method card")),
    "card-bad-yaml": (write_file("method.yaml", "name: [x\n"), ("method.yaml", "malformed YAML at line")),
    "card-alias": (write_file("method.yaml", "a: &x [1]\nb: *x\n"), ("method.yaml", "anchors and aliases")),
    "card-not-mapping": (write_file("method.yaml", "- a\n- b\n"), ("method.yaml", "expected a mapping")),
    "card-missing-field": (edit_card(code_commit=None), ("method.yaml", "field 'code_commit'", "missing")),
    "card-unknown-field": (edit_card(uses_held_out=False), ("field 'uses_held_out'", "unknown field")),
    "uses-heldout-true": (edit_card(uses_heldout=True), ("field 'uses_heldout'", "is true")),
    "uses-heldout-string": (edit_card(uses_heldout="no"), ("field 'uses_heldout'", "the boolean false")),
    "uses-heldout-missing": (edit_card(uses_heldout=None), ("field 'uses_heldout'", "missing")),
    "name-not-folder": (edit_card(name="other"), ("field 'name'", "differs from the folder name 'my_method'")),
    "name-unsafe": (edit_card(name="../x"), ("field 'name'", "cannot be a file name")),
    "authors-empty": (edit_card(authors=[]), ("field 'authors'", "non-empty list")),
    "authors-blank": (edit_card(authors=["Ada", " "]), ("field 'authors'", "item [1]")),
    "paper-not-url": (edit_card(paper="arxiv.org/abs/1"), ("field 'paper'", "http(s) URL")),
    "no-link": (edit_card(paper="", code=""), ("field 'paper'", "a paper or a code link")),
    "code-path-missing": (edit_card(code="code/select.py"), ("field 'code'", "does not exist")),
    "commit-not-hex": (edit_card(code_commit="HEAD"), ("field 'code_commit'", "7 to 40 hex digits")),
    "compute-negative": (edit_card(**{"compute.seconds": -1}), ("field 'compute.seconds'", ">= 0")),
    "compute-no-hardware": (edit_card(**{"compute.hardware": None}), ("field 'compute.hardware'", "missing")),
    "compute-not-mapping": (edit_card(compute=12), ("field 'compute'", "expected a mapping")),
    "features-not-list": (edit_card(features="quality"), ("field 'features'", "list of strings")),
    "mode-unknown": (edit_card(mode="joint"), ("field 'mode'", "per_language, pooled")),
    "pool-hash-other": (edit_card(pool_hash=OTHER_HASH), ("field 'pool_hash'", "is not the frozen pool of 'tiny'")),
    "pool-hash-short": (edit_card(pool_hash="abc"), ("field 'pool_hash'", "64 hex digits")),
    "selector-unknown": (
        edit_card(selector={"method": "nope", "version": "1", "params": {}, "seed": 0}),
        ("field 'selector.method'", "not a registered method"),
    ),
    "selector-version": (
        edit_card(selector={"method": "random", "version": "0", "params": {}, "seed": 0}),
        ("field 'selector.version'", "registered random version"),
    ),
    "selector-params": (
        edit_card(selector={"method": "random", "version": "1", "params": {"lam": 1}, "seed": 0}),
        ("field 'selector.params.lam'", "unknown parameter"),
    ),
    "extra-top-level": (write_file("notes.txt", "hi"), ("notes.txt", "unexpected entry")),
    "no-selection": (remove("selection"), ("selection", "missing: the selected ids go in selection/<lang>.txt")),
    "language-missing": (remove("selection/ja.txt"), ("ja.txt", "missing: the pool has 3 'ja' candidates")),
    "language-extra": (write_file("selection/fr.txt", "x\n"), ("fr.txt", "language 'fr' is not in the frozen pool")),
    "misnamed-file": (write_file("selection/de.jsonl", "{}\n"), ("de.jsonl", "unexpected entry")),
    "unknown-id": (
        de_ids(lambda e: [e.ids["de"][0], "0000000000000000", e.ids["de"][1]]),
        ("de.txt", "record line 2", "field 'id'", "unknown id '0000000000000000'"),
    ),
    "id-of-other-language": (
        de_ids(lambda e: [e.ids["ja"][0], *e.ids["de"][1:3]]),
        ("de.txt", "record line 1", "field 'id'", "is in the 'ja' pool, not 'de'"),
    ),
    "duplicate-id": (
        de_ids(lambda e: [e.ids["de"][0], e.ids["de"][1], e.ids["de"][0]]),
        ("de.txt", "record line 3", "field 'id'", "duplicate id", "first on line 1"),
    ),
    "over-budget": (de_ids(lambda e: e.ids["de"][:4]), ("de.txt", "lists 4 ids", "needs exactly 3")),
    "under-budget": (de_ids(lambda e: e.ids["de"][:2]), ("de.txt", "lists 2 ids", "select.budget 3 per language")),
    "pooled-quota": (  # pooled quotas are de 4, ja 2: ja's file is right, de's holds the per-language 3
        both(edit_card(mode="pooled"), write_ids("ja", lambda e: e.ids["ja"][:2])),
        ("de.txt", "lists 3 ids", "pooled mode needs exactly 4", "select.pooled_quota proportional"),
    ),
    "blank-line": (
        de_ids(lambda e: [e.ids["de"][0], "", *e.ids["de"][1:3]]),
        ("de.txt", "record line 2", "blank line"),
    ),
    "spaces": (
        de_ids(lambda e: [e.ids["de"][0] + " ", *e.ids["de"][1:3]]),
        ("de.txt", "record line 1", "spaces around the id"),
    ),
    "bad-utf8": (
        write_ids("de", lambda e: [e.ids["de"][0], "\udcff", *e.ids["de"][1:3]]),
        ("de.txt", "record line 2", "not valid UTF-8"),
    ),
}


def test_a_valid_submission_is_accepted(env, capsys):
    folder = write_submission(env)
    code, lines, out = validate_cli(env, folder, capsys)
    assert (code, lines) == (0, [])
    assert json.loads(out) == {
        "submission": str(folder),
        "profile": "tiny",
        "valid": True,
        "n_selected": {"de": 3, "ja": 3},
    }


def test_the_corpus_of_malformed_submissions_is_large():
    assert len(MALFORMED) >= 12


@pytest.mark.parametrize("case", list(MALFORMED), ids=list(MALFORMED))
def test_a_malformed_submission_is_refused_in_one_line(env, capsys, case):
    mutate, expected = MALFORMED[case]
    folder = write_submission(env)
    mutate(folder, env)
    before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    code, lines, out = validate_cli(env, folder, capsys, "--profile", "tiny")  # a card may not name it
    assert code == 1 and out == ""
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: ") and "Traceback" not in lines[0]
    for text in expected:
        assert text in lines[0], (text, lines[0])
    assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == before  # inputs untouched


def test_every_problem_is_reported(env, capsys):
    folder = write_submission(env, uses_heldout=True, authors=[])
    (folder / "selection" / "ja.txt").unlink()
    de_ids(lambda e: [e.ids["de"][0], e.ids["de"][0], "nope"])(folder, env)
    code, lines, _ = validate_cli(env, folder, capsys)
    assert code == 1
    assert len(lines) == 5, lines
    for text in ("'authors'", "'uses_heldout'", "ja.txt", "duplicate id", "unknown id 'nope'"):
        assert sum(text in line for line in lines) == 1, (text, lines)


def test_a_repeated_problem_is_capped_with_a_count(env):
    many = [f"{i:016x}" for i in range(MAX_PER_KIND + 5)]
    folder = write_submission(env, ids={"de": many, "ja": env.ids["ja"][:3]})
    lines = [str(p) for p in validate_submission(folder, env.params, env.pool, root=REPO)]
    assert sum("unknown id '" in line for line in lines) == MAX_PER_KIND
    assert lines[-1].endswith("5 more unknown ids not shown") and "de.txt" in lines[-1]
    assert "lists 15 ids" in lines[-2]


def test_the_profile_comes_from_the_card_and_a_different_one_is_refused(env, capsys):
    folder = write_submission(env)
    (env.profiles / "tiny2.yaml").write_text(TINY_PROFILE.replace("profile: tiny", "profile: tiny2"))
    code, lines, _ = validate_cli(env, folder, capsys, "--profile", "nope")
    assert code == 1 and len(lines) == 1 and "unknown profile 'nope'; available: default, tiny, tiny2" in lines[0]
    code, lines, _ = validate_cli(env, folder, capsys, "--profile", "tiny2")
    assert code == 1 and len(lines) == 1 and "no frozen pool here" in lines[0] and "tiny2" in lines[0]
    tiny2 = load_params(env.profiles / "tiny2.yaml")
    freeze_pool(tiny2, env.root / "prepared", env.pools / "tiny2", data_dvc=env.root / "data.dvc")
    code, lines, _ = validate_cli(env, folder, capsys, "--profile", "tiny2")  # the same pool, another profile
    assert (
        code == 1 and len(lines) == 1 and "field 'profile': 'tiny' but validated against profile 'tiny2'" in lines[0]
    )


def test_a_stale_or_edited_frozen_pool_is_refused(env, capsys):
    folder = write_submission(env)
    (env.profiles / "tiny.yaml").write_text(TINY_PROFILE.replace("budget: 3", "budget: 2"), encoding="utf-8")
    code, lines, _ = validate_cli(env, folder, capsys)
    assert code == 1 and len(lines) == 1
    assert "manifest.json" in lines[0] and "field 'rules'" in lines[0] and "python -m mdaq submit pool" in lines[0]
    (env.profiles / "tiny.yaml").write_text(TINY_PROFILE, encoding="utf-8")
    frozen = env.pools / "tiny" / "de.jsonl"
    frozen.write_bytes(frozen.read_bytes().replace(b"answer 0", b"answer O"))
    code, lines, _ = validate_cli(env, folder, capsys)
    assert code == 1 and "de.jsonl" in lines[0] and "changed after freezing" in lines[0]


def test_the_pool_hash_is_stable_and_changes_with_one_record(env):
    again = freeze_pool(env.params, env.root / "prepared", env.root / "again", data_dvc=env.root / "data.dvc")
    assert again == env.pool.manifest
    for name in ("de.jsonl", "ja.jsonl", "manifest.json"):
        assert (env.root / "again" / name).read_bytes() == (env.pools / "tiny" / name).read_bytes()
    changed = env.root / "changed"
    write_pool_dir(changed)
    samples = read_samples(changed / "ja.jsonl")
    edited = Sample.create("ja", samples[1].instruction, "", samples[1].output + "!", samples[1].source)
    write_samples(changed / "ja.jsonl", [samples[0], edited, samples[2]])
    other = freeze_pool(env.params, changed, env.root / "other", data_dvc=env.root / "data.dvc")
    assert other["pool_hash"] != env.pool.manifest["pool_hash"]
    assert other["languages"]["de"] == env.pool.manifest["languages"]["de"]


def test_frozen_records_carry_content_ids_and_no_label(env):
    rows = [json.loads(line) for line in (env.pools / "tiny" / "de.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in rows] == env.ids["de"]
    assert all(set(r) == {"id", "lang", "instruction", "input", "output", "source"} for r in rows)  # no is_revised
    manifest = env.pool.manifest
    assert manifest["profile"] == "tiny" and manifest["data"]["data_dvc_md5"] == "0123abcd.dir"
    assert manifest["rules"]["per_language"] == {"de": 3, "ja": 3} and manifest["rules"]["pooled"] == {
        "de": 4,
        "ja": 2,
    }


def test_freeze_refuses_an_id_that_is_not_the_content_hash(env):
    bad = env.root / "bad"
    write_pool_dir(bad)
    rows = (bad / "de.jsonl").read_text(encoding="utf-8").splitlines()
    rows[2] = rows[2].replace(env.ids["de"][2], "0123456789abcdef")
    (bad / "de.jsonl").write_text("\n".join(rows) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"de\.jsonl, record line 3, field 'id': '0123456789abcdef' is not the"):
        freeze_pool(env.params, bad, env.root / "out", data_dvc=env.root / "data.dvc")
    assert not (env.root / "out").exists()


def test_pools_from_the_prepare_stage_freeze_to_the_same_hash_twice(tmp_path, synthetic_midb):
    from mdaq.data.split import prepare

    cfg = PrepareConfig(max_pool=6, max_heldout=4, qsm_eval_max=4)
    params = Params(profile="p", seed=0, seeds=(0,), languages=("de", "fr"), methods=(), base_model="m", prepare=cfg)
    (tmp_path / "data.dvc").write_text("outs:\n- md5: abc.dir\n  path: data\n", encoding="utf-8")
    hashes = []
    for run in ("a", "b"):
        prepare(synthetic_midb, tmp_path / run, cfg, seed=0)
        manifest = freeze_pool(
            params, tmp_path / run / "pool", tmp_path / f"frozen_{run}", data_dvc=tmp_path / "data.dvc"
        )
        hashes.append(manifest["pool_hash"])
    assert hashes[0] == hashes[1] and read_frozen_pool(tmp_path / "frozen_a").counts == {"de": 6, "fr": 6}


def pipeline_selections(env: Env, method: str = "random") -> Path:
    """What the select and select_pooled stages write for ``method``, plus their executed notebooks' durations."""
    pools = {lang: Pool(lang, read_samples(env.root / "prepared" / f"{lang}.jsonl")) for lang in SIZES}
    runs = env.root / "runs"
    runs.mkdir(exist_ok=True)
    for lang, pool in pools.items():
        indices = get_selector(method, random_state=0).select(pool, env.params.select.budget)
        write_selection(env.root / "sel" / method / lang / "s0.jsonl", pool, indices, method)
        notebook = {"metadata": {"papermill": {"duration": 2.25}}, "cells": []}
        (runs / f"20_select@{method}-{lang}-s0.ipynb").write_text(json.dumps(notebook), encoding="utf-8")
    picked = select_pooled(get_selector(method, random_state=0), pools, 6, "proportional")
    for lang, indices in picked.items():
        write_selection(env.root / "sel_pooled" / method / f"{lang}.jsonl", pools[lang], indices, method)
    return runs


def export(env: Env, out: Path, method: str = "random", **kwargs) -> dict:
    kwargs.setdefault("selections", env.root / "sel")
    return export_submission(
        method,
        env.params,
        out,
        pools=env.pools,
        runs=env.root / "runs",
        code_commit="620f95b",
        authors=["A"],
        **kwargs,
    )


def test_export_then_validate_round_trip(env, capsys):
    pipeline_selections(env)
    out = env.root / "submissions" / "random_s0"
    card = export(env, out, root=REPO)
    assert card["compute"]["seconds"] == 4.5 and card["selector"] == {
        "method": "random",
        "version": "1",
        "params": {},
        "seed": 0,
    }
    assert card["code"] == "mdaq/selectors/baselines.py" and card["features"] == [] and card["uses_heldout"] is False
    sel = [json.loads(line)["id"] for line in (env.root / "sel/random/de/s0.jsonl").read_text().splitlines()]
    assert (out / "selection" / "de.txt").read_text(encoding="utf-8").split() == sel  # rank order kept
    code, lines, _ = validate_cli(env, out, capsys)
    assert (code, lines) == (0, [])
    pooled_out = env.root / "submissions" / "random_pooled"
    pooled = export(env, pooled_out, pooled=True, selections=env.root / "sel_pooled", compute_seconds=1.0, root=REPO)
    assert pooled["mode"] == "pooled"
    code, lines, _ = validate_cli(env, env.root / "submissions" / "random_pooled", capsys)
    assert (code, lines) == (0, [])
    assert len((env.root / "submissions/random_pooled/selection/de.txt").read_text().split()) == 4


def test_export_refuses_what_is_not_a_submission(env):
    pipeline_selections(env)
    with pytest.raises(DataError, match="full is the reference"):
        export(env, env.root / "s", method="full")
    with pytest.raises(DataError, match="oracle_revised is a control that reads the evaluation label"):
        export(env, env.root / "s", method="oracle_revised")
    (env.root / "runs" / "20_select@random-ja-s0.ipynb").unlink()
    with pytest.raises(DataError, match="--compute-seconds.*20_select@random-ja-s0.ipynb"):
        export(env, env.root / "s")
    with pytest.raises(FileNotFoundError, match=r"no selection; run `dvc repro select@random-de-1`"):
        export(env, env.root / "s", seed=1, compute_seconds=1.0)
    foreign = env.root / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("x")
    with pytest.raises(DataError, match="not written by mdaq"):
        export(env, foreign, compute_seconds=1.0)
    assert not (env.root / "s").exists() and (foreign / "thesis.tex").read_text() == "x"


def test_export_refuses_a_selection_of_another_size(env):
    pipeline_selections(env)
    path = env.root / "sel" / "random" / "de" / "s0.jsonl"
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:2]), encoding="utf-8")
    with pytest.raises(DataError, match=r"s0\.jsonl: 2 ids, but per_language mode needs 3"):
        export(env, env.root / "s")


def test_check_current_names_what_differs(env):
    with pytest.raises(DataError, match="field 'languages'"):
        check_current(env.pool, dataclasses.replace(env.params, languages=("de", "fr")), "a profile")
    with pytest.raises(DataError, match="field 'rules'.* gives .*'budget': 12"):
        check_current(env.pool, load_params(env.profiles / "default.yaml"), "profiles/default.yaml")


def test_cli_pool_export_validate(env, capsys):
    tiny = str(env.profiles / "tiny.yaml")
    argv = [
        "submit",
        "pool",
        "--params",
        tiny,
        "--pool-dir",
        str(env.root / "prepared"),
        "--pools",
        str(env.root / "p"),
    ]
    assert main([*argv, "--data-dvc", str(env.root / "data.dvc")]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["pool_hash"] == env.pool.manifest["pool_hash"] and printed["n"] == {"de": 5, "ja": 3}
    runs = pipeline_selections(env)
    out = env.root / "submissions" / "random_cli"
    argv = ["submit", "export", "--method", "random", "--out", str(out), "--params", tiny, "--pools", str(env.pools)]
    argv += ["--selections", str(env.root / "sel"), "--runs", str(runs), "--hardware", "2-core CPU"]
    assert main([*argv, "--root", str(env.root)]) == 1  # not a git repository: no code commit to record
    assert "--code-commit: the repository is at 'unknown'" in capsys.readouterr().err
    assert main([*argv, "--root", str(REPO), "--code-commit", "620f95b", "--authors", "Ada", "Grace"]) == 0
    capsys.readouterr()
    card = yaml.safe_load((out / "method.yaml").read_text(encoding="utf-8"))
    assert card["authors"] == ["Ada", "Grace"] and card["compute"]["hardware"] == "2-core CPU"
    assert validate_cli(env, out, capsys)[:2] == (0, [])
    code, lines, _ = validate_cli(env, env.root / "nothing", capsys)
    assert code == 1 and len(lines) == 1 and "nothing: no such submission folder" in lines[0]


def test_the_worked_example_of_the_docs_validates(env, capsys, monkeypatch):
    """docs/submitting.md, section 4: its two code blocks and its card, run on the tiny profile's frozen pool."""
    doc = (REPO / "docs" / "submitting.md").read_text(encoding="utf-8")
    section = doc.split("## 4.")[1].split("## 5.")[0]
    code_blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    card_block = re.search(r"```yaml\n(.*?)```", section, flags=re.S).group(1)
    assert len(code_blocks) == 2
    monkeypatch.chdir(env.root)
    shutil.copytree(env.pools / "tiny", env.root / "artifacts" / "pools" / "default")  # the path the example reads
    for i, code in enumerate(code_blocks):
        exec(compile(code, f"submitting.md block {i}", "exec"), {"__name__": "example"})  # noqa: S102 (our own doc)
    card = yaml.safe_load(card_block) | {"profile": "tiny", "pool_hash": env.pool.manifest["pool_hash"]}
    folder = env.root / "submissions" / "shortest_first"
    (folder / "method.yaml").write_text(yaml.safe_dump(card), encoding="utf-8")
    code, lines, out = validate_cli(env, folder, capsys)
    assert (code, lines) == (0, []) and json.loads(out)["n_selected"] == {"de": 3, "ja": 3}


def test_a_registered_name_is_reserved_for_its_export(env, capsys):
    folder = write_submission(env, name="random")
    code, lines, _ = validate_cli(env, folder, capsys)
    assert code == 1 and len(lines) == 1
    assert "method.yaml, field 'name': 'random' is a registered method's name; only its export" in lines[0]
    edit_card(selector={"method": "random", "version": "1", "params": {}, "seed": 0})(folder, env)
    assert validate_cli(env, folder, capsys)[:2] == (0, [])
