"""One recipe for everyone: submissions join the run grid, the reuse plan, the submission stage (validation, tier,
selection files) and the leaderboard (tiers, pool hash, every format) on tiny pools, with no model."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from mdaq.config import Params, params_from_dict, run_grid, select_grid
from mdaq.errors import DataError
from mdaq.io import read_samples
from mdaq.reporting.html import page_data, render_html
from mdaq.reporting.leaderboard import build_leaderboard, to_long, write_leaderboard
from mdaq.reporting.tiers import builtin_links, read_submission_records
from mdaq.selectors import read_selection
from mdaq.submissions.recipe import plan_reuse
from mdaq.submissions.stage import run_submission_stage
from tests.conftest import REPO, write_run
from tests.test_submissions import SIZES, Env, export, make_env, pipeline_selections, write_submission

GRID = (
    'profile: t\nseed: 0\nseeds: [0, 1]\nlanguages: ["de", "ja"]\nmethods: [random, full]\nbase_model: m\n'
    "selectors: {random: {}, full: {}}\nsubmissions: [mine, exported]\nmethod_seeds: {sub.mine: [0]}\n"
)


def test_submissions_join_the_run_grid_and_reused_runs_leave_it():
    data = yaml.safe_load(GRID)
    params = params_from_dict(data)
    assert params.board_methods == ("random", "full", "sub.mine", "sub.exported")
    runs = run_grid(params)
    assert runs["sub.mine-de-0"] == {"method": "sub.mine", "lang": "de", "seed": 0} and "sub.mine-de-1" not in runs
    assert len(runs) == 2 * 2 * 2 + 2 + 2 * 2 and len(select_grid(params)) == 8  # methods x lang x seed, then subs
    reused = {"sub.exported-de-0": "random-de-0", "sub.exported-ja-0": "random-ja-0"}
    params = params_from_dict({**data, "reused_runs": reused})
    assert "sub.exported-de-0" not in run_grid(params) and "sub.exported-de-1" in run_grid(params)
    bad = {
        "reused_runs: {random-de-0: random-de-1}": "not a run of one of the profile's submissions",
        "reused_runs: {sub.exported-de-0: sub.mine-de-0}": "not a run of one of the profile's methods",
        "reused_runs: {sub.exported-de-0: random-de-1}": "a run of another language or seed",
        "methods: [sub.x]": "reserved for submissions",
        "submissions: [mine, mine]": "submissions",
        "method_seeds: {sub.mine: [1]}": "include seeds\\[0\\]",
        "submissions: [../x]": "cannot be a file name",
    }
    for text, match in bad.items():
        with pytest.raises(DataError, match=match):
            params_from_dict({**data, **yaml.safe_load(text)})


def test_a_profile_that_extends_another_does_not_run_its_submissions(tmp_path):
    from mdaq.config import load_profile, render_params

    (tmp_path / "default.yaml").write_text((REPO / "profiles" / "default.yaml").read_text(encoding="utf-8"))
    (tmp_path / "child.yaml").write_text("extends: default\nprofile: child\n", encoding="utf-8")
    assert load_profile(tmp_path / "default.yaml")["submissions"] == ["mdaq_das", "longest_first"]
    assert "submissions" not in load_profile(tmp_path / "child.yaml")  # a card names one profile (its pool)
    rendered = yaml.safe_load(render_params(tmp_path / "child.yaml"))
    assert rendered["submissions"] == [] and rendered["reused_runs"] == {}  # the submission stage loops over it
    (tmp_path / "bare.yaml").write_text(GRID.replace("submissions: [mine, exported]\n", ""), encoding="utf-8")
    assert yaml.safe_load(render_params(tmp_path / "bare.yaml"))["submissions"] == []


@pytest.fixture
def recipe(tmp_path) -> Env:
    """The tiny profile with methods random and full, seed 0 only, and two submissions: ``random`` (the export of
    the built-in random's seed-0 selection) and ``ids_only`` (an outside-style one); fake features for both pools."""
    env = make_env(tmp_path)
    params = dataclasses.replace(
        env.params,
        seeds=(0,),
        methods=("random", "full"),
        selectors={"random": {}, "full": {}},
        method_seeds={},
        submissions=("random", "ids_only"),
    )
    for lang, n in SIZES.items():
        (env.root / "features" / lang).mkdir(parents=True)
        np.save(env.root / "features" / lang / "quality.npy", np.linspace(0, 1, n))
        np.save(env.root / "features" / lang / "embeddings.npy", np.eye(n, 4, dtype=np.float32))
    pipeline_selections(env, "random")
    export(env, env.root / "submissions" / "random", root=REPO)
    write_submission(env, "ids_only")
    return dataclasses.replace(env, params=params)


def import_stage(env: Env, name: str, params=None) -> dict:
    return run_submission_stage(
        name,
        params or env.params,
        submissions_dir=env.root / "submissions",
        pools=env.pools,
        pool_dir=env.root / "prepared",
        features=env.root / "features",
        ifd=env.root / "ifd",
        out=env.root / "selections" / f"sub.{name}",
        record_path=env.root / "records" / f"{name}.json",
        root=REPO,
    )


def test_the_reuse_plan_reads_the_cards(recipe):
    reused = plan_reuse(recipe.params, recipe.root / "submissions")
    assert reused == {"sub.random-de-0": "random-de-0", "sub.random-ja-0": "random-ja-0"}
    # another parameter, another version, a seed the method does not run: no claim, the run trains
    for change in ({"params": {"x": 1}}, {"version": "0"}, {"seed": 1}):
        card_path = recipe.root / "submissions" / "random" / "method.yaml"
        card = yaml.safe_load(card_path.read_text(encoding="utf-8"))
        card_path.write_text(yaml.safe_dump({**card, "selector": {**card["selector"], **change}}), encoding="utf-8")
        assert plan_reuse(recipe.params, recipe.root / "submissions") == {}, change
        card_path.write_text(yaml.safe_dump(card), encoding="utf-8")
    with pytest.raises(DataError, match="profile 'other' lists 'random' under submissions"):
        plan_reuse(dataclasses.replace(recipe.params, profile="other"), recipe.root / "submissions")
    with pytest.raises(DataError, match="missing: every submission has a method card.*lists 'gone'"):
        plan_reuse(dataclasses.replace(recipe.params, submissions=("gone",)), recipe.root / "submissions")


def test_the_submission_stage_writes_a_selection_like_a_methods(recipe):
    params = dataclasses.replace(
        recipe.params, seeds=(0, 1), reused_runs=plan_reuse(recipe.params, recipe.root / "submissions")
    )
    record = import_stage(recipe, "random", params)
    assert record["tier"] == "verified" and record["n_ids_not_regenerated"] == {"de": 0, "ja": 0}
    assert record["reused_runs"] == {"sub.random-de-0": "random-de-0", "sub.random-ja-0": "random-ja-0"}
    assert record["pool_hash"] == recipe.pool.manifest["pool_hash"] and record["seeds"] == [0, 1]
    for seed in (0, 1):  # the run stage's path and rows: {rank, index, id, method}
        path = recipe.root / "selections" / "sub.random" / "de" / f"s{seed}.jsonl"
        assert read_selection(path) == read_selection(recipe.root / "sel" / "random" / "de" / "s0.jsonl")
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        pool = read_samples(recipe.root / "prepared" / "de.jsonl")
        assert all(pool[r["index"]].id == r["id"] and r["method"] == "sub.random" for r in rows)
    assert json.loads((recipe.root / "records" / "random.json").read_text()) == record
    community = import_stage(recipe, "ids_only")
    assert community["tier"] == "community" and community["reused_runs"] == {}
    assert "names no registered selector" in community["tier_reason"]


def test_a_selection_that_does_not_regenerate_is_community_and_cannot_reuse(recipe):
    folder = recipe.root / "submissions" / "random"
    de = (folder / "selection" / "de.txt").read_text(encoding="utf-8").split()
    other = next(i for i in recipe.ids["de"] if i not in de)
    (folder / "selection" / "de.txt").write_text("\n".join([other, *de[1:]]) + "\n", encoding="utf-8")
    record = import_stage(recipe, "random")
    assert record["tier"] == "community" and record["n_ids_not_regenerated"] == {"de": 1, "ja": 0}
    assert "regenerated other ids: 1 of 3 in de" in record["tier_reason"]
    planned = dataclasses.replace(recipe.params, reused_runs={"sub.random-de-0": "random-de-0"})
    with pytest.raises(DataError, match="reuse the runs \\['random-de-0'\\], which holds only for a verified"):
        import_stage(recipe, "random", planned)
    (folder / "selection" / "ja.txt").write_text("0123456789abcdef\n", encoding="utf-8")
    with pytest.raises(DataError, match="2 problem\\(s\\).*`python -m mdaq submit validate"):
        import_stage(recipe, "random")
    with pytest.raises(DataError, match="'nope' is not one of the profile's submissions"):
        import_stage(recipe, "nope")
    with pytest.raises(DataError, match="--out is the input --submissions .* or holds it"):
        run_submission_stage(
            "random",
            recipe.params,
            submissions_dir=recipe.root / "submissions",
            pools=recipe.pools,
            pool_dir=recipe.root / "prepared",
            features=recipe.root / "features",
            ifd=recipe.root / "ifd",
            out=recipe.root,
            record_path=recipe.root / "r.json",
        )


def board(recipe: Env, runs: Path, **run_extra) -> tuple[pd.DataFrame, dict, Params]:
    """Runs for base, full and random (and the community submission's own run), both submissions imported, and
    the leaderboard built as the stage builds it; returns (wide table, submission records, params)."""
    params = dataclasses.replace(recipe.params, reused_runs=plan_reuse(recipe.params, recipe.root / "submissions"))
    for name in params.submissions:
        import_stage(recipe, name, params)
    shas = {lang: recipe.pool.manifest["languages"][lang]["sha256"] for lang in SIZES}
    accs = {"base": 0.4, "full": 0.6, "random": 0.7, "sub.ids_only": 0.55}
    for method, acc in accs.items():
        for i, lang in enumerate(SIZES):
            k = round((acc + 0.05 * i) * 40)
            extra = {"pool_sha256": shas[lang], **run_extra.get(method, {})}
            write_run(runs, method, lang, params, [1.0] * k + [0.0] * (40 - k), **extra)
    records = read_submission_records(recipe.root / "records", params)
    df = build_leaderboard(
        runs,
        params,
        params.methods,
        sorted(SIZES),
        pool=recipe.pool.manifest,
        submissions=records,
        links=builtin_links(params.methods),
    )
    return df, records, params


SAME = ("expert_pref_acc", "expert_pref_acc_se", "ref_nll", "ref_nll_se", "margin", "n", "n_selected")
SAME += ("d_acc_vs_full", "d_acc_lo_vs_full", "d_acc_hi_vs_full", "p_acc_holm_vs_full", "pool_hash", "status")


def test_an_exported_method_reaches_every_format_with_the_builtin_numbers(recipe, tmp_path):
    """Issue 19, item 5: the export of a built-in method's selection, imported as a submission, is a `verified`
    row with the built-in row's numbers in leaderboard.csv, leaderboard_wide.csv, leaderboard.md and the HTML page;
    the ids-only submission is a `community` row with its own run."""
    df, _, _ = board(recipe, tmp_path / "board")
    out = tmp_path / "results"
    html = render_html(to_long(df), title="t", meta={}, wide_df=df)
    write_leaderboard(df, out, html=html)
    wide = pd.read_csv(out / "leaderboard_wide.csv", keep_default_na=False).set_index(["method", "lang"])
    for lang in ("de", "ja", "all"):
        sub, own = wide.loc[("sub.random", lang)], wide.loc[("random", lang)]
        assert [sub[c] for c in SAME] == [own[c] for c in SAME], lang
        assert (sub["tier"], own["tier"], wide.loc[("sub.ids_only", lang), "tier"]) == (
            "verified",
            "builtin",
            "community",
        )
        assert sub["pool_hash"] == recipe.pool.manifest["pool_hash"] and sub["code"] == "mdaq/selectors/baselines.py"
    assert float(wide.loc[("sub.random", "all"), "selection_s"]) == 4.5  # the card's compute (two notebooks of 2.25 s)
    long = pd.read_csv(out / "leaderboard.csv")
    assert {"tier", "pool_hash"} <= set(long.columns) and set(long["pool_hash"]) == {recipe.pool.manifest["pool_hash"]}
    cols = ["language", "metric", "value", "se", "ci_low", "ci_high", "n", "status", "pool_hash"]
    mine, theirs = (long[long["method"] == m][cols].reset_index(drop=True) for m in ("sub.random", "random"))
    pd.testing.assert_frame_equal(mine, theirs)
    assert set(long[long["method"] == "sub.random"]["tier"]) == {"verified"}
    md = (out / "leaderboard.md").read_text(encoding="utf-8")
    rows_md = re.findall(r"^\| (\S+) \| (.*)$", md, flags=re.M)
    cells = {m: rest.split(" | ") for m, rest in rows_md}
    assert cells["sub.random"][1] == "verified" and cells["random"][1] == "builtin"
    assert cells["sub.random"][2:8] == cells["random"][2:8]  # per language, all, seed SD, Δ vs full, p
    assert f"frozen pool `{recipe.pool.manifest['pool_hash'][:12]}`" in md
    rows = {(r["method"], r["language"]): r for r in page_data(to_long(df), df)["rows"]}
    mine, theirs = rows[("sub.random", "all")], rows[("random", "all")]
    assert {**mine["values"], "selection_s": None} == theirs["values"] and mine["values"]["selection_s"] == 4.5
    assert (
        rows[("sub.random", "all")]["intervals"]["d_acc_vs_full"]
        == rows[("random", "all")]["intervals"]["d_acc_vs_full"]
    )
    assert rows[("sub.random", "all")]["tier"] == "verified" and "sub.random" in (out / "leaderboard.html").read_text()


def test_a_row_from_another_pool_is_never_mixed_in(recipe, tmp_path):
    with pytest.raises(DataError, match=r"full/de/s0/metrics.json, field 'pool_sha256': pool file 0000.*another pool"):
        board(recipe, tmp_path / "a", full={"pool_sha256": "0" * 64})
    with pytest.raises(DataError, match="no pool record, but the frozen pool"):
        board(recipe, tmp_path / "b", base={"pool_sha256": None})
    _, records, params = board(recipe, tmp_path / "c")
    other = {**records, "sub.ids_only": {**records["sub.ids_only"], "pool_hash": "f" * 64}}
    with pytest.raises(DataError, match="submission ids_only, field 'pool_hash': selected from pool ffffffffffff"):
        build_leaderboard(
            tmp_path / "c", params, params.methods, sorted(SIZES), pool=recipe.pool.manifest, submissions=other
        )


def test_profile_use_plans_the_reuse_and_submit_import_runs_the_stage(recipe, capsys):
    from mdaq.cli import main

    tiny = recipe.profiles / "tiny.yaml"
    extra = "methods: [random, full]\nseeds: [0]\nsubmissions: [random, ids_only]\n"
    tiny.write_text(tiny.read_text(encoding="utf-8") + extra, encoding="utf-8")
    params_path = recipe.root / "params.yaml"
    argv = ["profile", "use", "tiny", "--profiles", str(recipe.profiles), "--params", str(params_path)]
    assert main([*argv, "--submissions", str(recipe.root / "submissions")]) == 0
    assert "2 submission runs reuse a built-in run" in capsys.readouterr().out
    written = yaml.safe_load(params_path.read_text(encoding="utf-8"))
    assert written["reused_runs"] == {"sub.random-de-0": "random-de-0", "sub.random-ja-0": "random-ja-0"}
    assert "sub.ids_only-de-0" in written["runs"] and "sub.ids_only-de-0" not in written["selects"]
    for name, tier in (("random", "verified"), ("ids_only", "community")):
        argv = ["submit", "import", name, "--params", str(params_path), "--pools", str(recipe.pools)]
        argv += ["--submissions", str(recipe.root / "submissions"), "--pool-dir", str(recipe.root / "prepared")]
        argv += ["--features", str(recipe.root / "features"), "--ifd", str(recipe.root / "ifd"), "--root", str(REPO)]
        out = recipe.root / "selections" / f"sub.{name}"
        assert main([*argv, "--out", str(out), "--record", str(recipe.root / "rec" / f"{name}.json")]) == 0
        assert json.loads(capsys.readouterr().out)["tier"] == tier and (out / "de" / "s0.jsonl").is_file()
