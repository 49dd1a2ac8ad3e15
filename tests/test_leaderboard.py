"""Leaderboard aggregation, sorting, status and provenance."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from mdaq import load_params
from mdaq.config import load_profile
from mdaq.io import write_json
from mdaq.provenance import provenance
from mdaq.reporting.leaderboard import build_leaderboard, write_leaderboard

from .conftest import REPO


def _metrics(method, lang, acc, params, se=0.05, **kw):
    return {
        "method": method,
        "lang": lang,
        "expert_pref_acc": acc,
        "expert_pref_acc_se": se,
        "ref_nll": 2.0,
        "n": 100,
        "n_selected": 10,
        "share_revised": 0.5,
        "win_rate": float("nan"),
        "selector_version": "1",
        "base_model": "tiny",
        **provenance(params, method),
        **kw,
    }


@pytest.fixture
def params():
    return load_params(REPO / "profiles" / "smoke.yaml")


def test_rows_mean_sorting_and_status(tmp_path, params):
    accs = {("random", "fr"): 0.5, ("random", "ja"): 0.7, ("full", "fr"): 0.8, ("full", "ja"): 0.8}
    for (m, lang), acc in accs.items():
        write_json(tmp_path / m / lang / "metrics.json", _metrics(m, lang, acc, params))
    df = build_leaderboard(tmp_path, params, ["random", "full"], ["fr", "ja"])
    assert list(zip(df["method"], df["lang"], strict=True)) == [
        ("full", "fr"),
        ("full", "ja"),
        ("full", "all"),
        ("random", "fr"),
        ("random", "ja"),
        ("random", "all"),
    ]
    mean = df[(df["method"] == "random") & (df["lang"] == "all")].iloc[0]
    assert mean["expert_pref_acc"] == pytest.approx(0.6)
    assert mean["expert_pref_acc_se"] == pytest.approx(math.sqrt(2 * 0.05**2) / 2)
    assert mean["n"] == 200 and mean["n_selected"] == 20
    assert set(df["status"]) == {"partial"}  # judge-free only
    write_leaderboard(df, tmp_path / "out", html="<html></html>")
    wide = pd.read_csv(tmp_path / "out" / "leaderboard_wide.csv")
    assert {"params_sha", "git_sha", "date"} <= set(wide.columns) and len(wide) == 6
    long = pd.read_csv(tmp_path / "out" / "leaderboard.csv")
    assert list(long.columns) == [
        "method",
        "language",
        "metric",
        "value",
        "se",
        "ci_low",
        "ci_high",
        "n",
        "status",
        "params_sha",
        "git_sha",
        "judge_id",
        "prompt_version",
        "date",
    ]
    acc = long[(long.metric == "expert_pref_acc") & (long.method == "random") & (long.language == "fr")].iloc[0]
    assert acc["value"] == 0.5 and acc["ci_low"] == pytest.approx(0.5 - 1.959964 * 0.05) and acc["n"] == 100
    assert not long["metric"].str.startswith("win_rate").any()  # no judge: no win-rate rows, not NaN rows
    assert set(long["metric"]) >= {"expert_pref_acc", "ref_nll", "share_revised"}
    assert "| full | 0.800 | 0.800 | 0.800 |" in (tmp_path / "out" / "leaderboard.md").read_text()
    assert (tmp_path / "out" / "leaderboard.html").read_text() == "<html></html>"


def test_stale_rows_are_flagged(tmp_path, params):
    for lang in ("fr", "ja"):
        write_json(tmp_path / "random" / lang / "metrics.json", _metrics("random", lang, 0.5, params))
    write_json(tmp_path / "random" / "ja" / "metrics.json", _metrics("random", "ja", 0.5, params, params_sha="old"))
    df = build_leaderboard(tmp_path, params, ["random"], ["fr", "ja"])
    assert df.set_index("lang").loc["ja", "status"] == "stale"
    assert df.set_index("lang").loc["all", "status"] == "stale"


def test_missing_run_is_an_error(tmp_path, params):
    with pytest.raises(FileNotFoundError, match="random/fr"):
        build_leaderboard(tmp_path, params, ["random"], ["fr"])


def test_update_readme_replaces_only_the_block(tmp_path):
    from mdaq.reporting.leaderboard import readme_block, update_readme

    readme, md = tmp_path / "README.md", tmp_path / "lb.md"
    readme.write_text("intro\n<!-- leaderboard:start -->\nold\n<!-- leaderboard:end -->\noutro\n")
    md.write_text("| method | all |\n")
    assert update_readme(readme, md) and not update_readme(readme, md)
    assert readme.read_text().startswith("intro\n") and readme.read_text().endswith("outro\n")
    assert readme_block(readme) == "| method | all |"


def test_readme_shows_the_committed_leaderboard():
    """The README's table is a copy of results/leaderboard.md (regenerate: mdaq leaderboard --update-readme)."""
    from mdaq.reporting.leaderboard import readme_block

    md = REPO / "results" / "leaderboard.md"
    assert readme_block(REPO / "README.md") == md.read_text(encoding="utf-8").strip()


def test_intrinsic_metrics_join_the_rows(tmp_path, params):
    for lang, acc in (("fr", 0.5), ("ja", 0.7)):
        write_json(tmp_path / "random" / lang / "metrics.json", _metrics("random", lang, acc, params))
    intrinsic = pd.DataFrame(
        [
            ("per_language", "random", "fr", "cluster_coverage", 0.4),
            ("per_language", "random", "ja", "cluster_coverage", 0.6),
            ("pooled", "random", "fr", "cluster_coverage", 0.9),  # another mode: must not leak into the rows
            ("per_language", "random", "fr", "len_mean", 100.0),
            ("per_language", "random", "ja", "len_mean", 300.0),
        ],
        columns=["mode", "method", "language", "metric", "value"],
    )
    df = build_leaderboard(tmp_path, params, ["random"], ["fr", "ja"], intrinsic=intrinsic).set_index("lang")
    assert df.loc["fr", "cluster_coverage"] == 0.4 and df.loc["all", "cluster_coverage"] == pytest.approx(0.5)
    assert df.loc["all", "len_mean"] == pytest.approx(200.0) and math.isnan(df.loc["fr", "mean_quality"])
    write_leaderboard(df.reset_index()[[*df.reset_index().columns]], tmp_path / "out")
    assert "| random | 0.500 | 0.700 | 0.600 | 0.500 | 0.500 |" in (tmp_path / "out" / "leaderboard.md").read_text()


def test_generation_summary_joins_the_rows(tmp_path, params):
    for lang in ("fr", "ja"):
        write_json(tmp_path / "random" / lang / "metrics.json", _metrics("random", lang, 0.5, params))
    write_json(tmp_path / "random" / "fr" / "generation.json", {"share_target_lang": 0.75, "n_answers": 8})
    df = build_leaderboard(tmp_path, params, ["random"], ["fr", "ja"]).set_index("lang")
    assert df.loc["fr", "share_target_lang"] == 0.75 and math.isnan(df.loc["ja", "share_target_lang"])
    assert math.isnan(df.loc["all", "share_target_lang"])  # a mean only over complete languages


@pytest.mark.parametrize(
    ("verdict", "expected"),
    [
        ({"judge_id": "fake:0", "test_double": True}, "invalid"),
        ({"judge_id": "length"}, "invalid"),  # a file written before the flag: known from the judge id
        ({"judge_id": "openai_compat:m", "test_double": False}, "ok"),
    ],
)
def test_a_stand_in_judge_never_reaches_the_win_rate_columns(tmp_path, params, verdict, expected):
    stats = {"win_rate": 75.0, "standard_error": 3.0, "ci_low": 70.0, "ci_high": 80.0, "n_total": 40}
    for lang in ("fr", "ja"):
        write_json(tmp_path / "runs" / "random" / lang / "metrics.json", _metrics("random", lang, 0.6, params))
        judged = {"status": "ok", "prompt_version": "1", **verdict}
        judged |= {b: stats for b in ("alpaca_eval", "mt_bench_r1", "mt_bench_r2")}
        write_json(tmp_path / "judge" / "random" / lang / "judge.json", judged)
    df = build_leaderboard(tmp_path / "runs", params, ["random"], ["fr", "ja"], judge_dir=tmp_path / "judge")
    assert set(df["status"]) == {expected}
    win = df["win_rate_alpaca_eval"]
    assert (win == 75.0).all() if expected == "ok" else win.isna().all()


def test_params_refuse_a_test_double_judge(tmp_path):
    import yaml

    from mdaq.errors import DataError
    from mdaq.judging import JUDGES, check_backend, pipeline_backends
    from mdaq.judging.stage import run_judge_stage

    data = load_profile(REPO / "profiles" / "smoke.yaml")
    assert set(pipeline_backends()) == {"none"} | {n for n in JUDGES.names() if not JUDGES.get(n).is_test_double}
    assert "openai_compat" in pipeline_backends() and "fake" not in pipeline_backends()
    for backend, message in (("fake", "test double"), ("length", "test double"), ("gpt", "not a judge backend")):
        data["judge"]["backend"] = backend
        (tmp_path / "p.yaml").write_text(yaml.safe_dump(data))
        with pytest.raises(DataError, match=message):  # where a profile is adopted, checked or judged
            check_backend(load_params(tmp_path / "p.yaml").judge.backend, tmp_path / "p.yaml")
        with pytest.raises(DataError, match=message):
            run_judge_stage(
                tmp_path, tmp_path, ["full"], ["de"], load_params(tmp_path / "p.yaml").judge, tmp_path / "j"
            )
