"""Leaderboard aggregation, sorting, status and provenance."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from mdaq import load_params
from mdaq.config import load_profile
from mdaq.io import read_json, write_json
from mdaq.reporting.leaderboard import build_leaderboard, write_leaderboard
from mdaq.stats import holm

from .conftest import REPO, write_run


@pytest.fixture
def params():
    return load_params(REPO / "profiles" / "smoke.yaml")


N = 40  # held-out pairs per language in these tests


def _board(root, params, accs, seeds=(0, 1), langs=("fr", "ja"), **kw):
    """Runs whose items are correct on the first round(acc * N) pairs (same items in every seed unless ``kw``)."""
    for method, acc in accs.items():
        for lang in langs:
            for seed in (0,) if method == "base" else seeds:
                k = round(acc[lang] * N if isinstance(acc, dict) else acc * N)
                write_run(root, method, lang, params, [1.0] * k + [0.0] * (N - k), seed=seed, **kw)


def test_rows_mean_sorting_paired_columns_and_files(tmp_path, params):
    _board(tmp_path, params, {"base": 0.5, "random": {"fr": 0.5, "ja": 0.7}, "full": 0.8})
    df = build_leaderboard(tmp_path, params, ["random", "full"], ["fr", "ja"], seeds=[0, 1])
    assert list(zip(df["method"], df["lang"], strict=True)) == [
        ("full", "fr"),
        ("full", "ja"),
        ("full", "all"),
        ("random", "fr"),
        ("random", "ja"),
        ("random", "all"),
        ("base", "fr"),
        ("base", "ja"),
        ("base", "all"),
    ]
    rows = df.set_index(["method", "lang"])
    r = rows.loc[("random", "all")]
    correct = np.array([1.0] * 20 + [0.0] * 20 + [1.0] * 28 + [0.0] * 12)  # fr then ja, every seed alike
    assert r["expert_pref_acc"] == pytest.approx(0.6) and r["n"] == 2 * N and r["n_seeds"] == 2
    assert r["expert_pref_acc_se"] == pytest.approx(correct.std(ddof=1) / np.sqrt(2 * N))
    assert r["acc_seed_sd"] == 0.0  # both seeds give the same items
    assert rows.loc[("base", "all"), "role"] == "base" and rows.loc[("full", "all"), "role"] == "reference"
    # paired against full: random loses on 12 fr items (20 vs 32 correct) and 4 ja items, wins on none
    assert r["d_acc_vs_full"] == pytest.approx(0.6 - 0.8)
    p_full = stats.binomtest(0, 16, 0.5).pvalue
    p_base = stats.binomtest(0, 24, 0.5).pvalue  # base vs full: 24 discordant items, all for full
    assert r["p_acc_holm_vs_full"] == pytest.approx(holm([p_full, p_base])[0])
    assert r["d_acc_lo_vs_full"] < r["d_acc_vs_full"] < r["d_acc_hi_vs_full"] < 0
    assert rows.loc[("random", "fr"), "d_acc_vs_full"] == pytest.approx(0.5 - 0.8)  # per language too
    assert math.isnan(rows.loc[("full", "all"), "d_acc_vs_full"])
    assert set(df["status"]) == {"partial"}  # judge-free only
    write_leaderboard(df, tmp_path / "out", html="<html></html>")
    wide = pd.read_csv(tmp_path / "out" / "leaderboard_wide.csv")
    assert {"params_sha", "git_sha", "date", "d_acc_vs_random"} <= set(wide.columns) and len(wide) == 9
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
        "tier",
        "pool_hash",
        "params_sha",
        "git_sha",
        "judge_id",
        "prompt_version",
        "date",
    ]
    acc = long[(long.metric == "expert_pref_acc") & (long.method == "random") & (long.language == "fr")].iloc[0]
    se = np.array([1.0] * 20 + [0.0] * 20).std(ddof=1) / np.sqrt(N)
    assert acc["value"] == 0.5 and acc["ci_low"] == pytest.approx(0.5 - 1.959964 * se) and acc["n"] == N
    assert not long["metric"].str.startswith("win_rate").any()  # no judge: no win-rate rows, not NaN rows
    assert set(long["metric"]) >= {"expert_pref_acc", "ref_nll", "margin", "share_revised"}
    md = (tmp_path / "out" / "leaderboard.md").read_text()
    assert "| full | reference | builtin | 0.800 | 0.800 | 0.800 ± 0.045 | 0.000 |" in md
    assert "**-0.200 [" in md and "No controls on this board" in md
    comparisons = pd.read_csv(tmp_path / "out" / "comparisons.csv")
    assert set(comparisons["against"]) == {"full", "random"} and set(comparisons["scope"]) == {"all", "fr", "ja"}
    assert read_json(tmp_path / "out" / "metrics.json")["_controls"] is None
    assert (tmp_path / "out" / "leaderboard.html").read_text() == "<html></html>"


def test_seeds_are_averaged_per_item(tmp_path, params):
    write_run(tmp_path, "base", "fr", params, [0.0] * N)
    write_run(tmp_path, "random", "fr", params, [1.0] * N, seed=0)
    write_run(tmp_path, "random", "fr", params, [0.0] * N, seed=1)
    df = build_leaderboard(tmp_path, params, ["random"], ["fr"], seeds=[0, 1]).set_index(["method", "lang"])
    r = df.loc[("random", "all")]
    assert r["expert_pref_acc"] == 0.5 and r["acc_seed_sd"] == pytest.approx(np.std([1.0, 0.0], ddof=1))
    assert r["expert_pref_acc_se"] == 0.0  # every item is right in one seed of two: 0.5 each
    assert r["d_acc_vs_random"] != r["d_acc_vs_random"]  # no comparison with itself (NaN)


@pytest.mark.parametrize("separated", [True, False])
def test_controls_decide_whether_the_board_ranks(tmp_path, params, separated):
    ctrl = {"oracle_revised": 0.9 if separated else 0.55, "oracle_raw": 0.3 if separated else 0.5}
    _board(tmp_path, params, {"base": 0.5, "random": 0.6, "full": 0.5, **ctrl}, seeds=(0,))
    methods = ["random", "full", "oracle_revised", "oracle_raw"]
    df = build_leaderboard(tmp_path, params, methods, ["fr", "ja"], seeds=[0])
    order = list(dict.fromkeys(df["method"]))
    report = df.attrs["report"]
    assert report["controls"]["separated"] is separated
    if separated:  # ranked by accuracy, the controls last
        assert order == ["random", "base", "full", "oracle_revised", "oracle_raw"]
    else:  # listed by role and name, not ranked
        assert order == ["base", "full", "random", "oracle_raw", "oracle_revised"]
    write_leaderboard(df, tmp_path / "out")
    md = (tmp_path / "out" / "leaderboard.md").read_text()
    assert ("cannot rank methods" in md) is not separated and ("The controls separate" in md) is separated
    assert read_json(tmp_path / "out" / "metrics.json")["_controls"]["separated"] is separated


def test_indistinguishable_methods_share_a_group(tmp_path, params):
    _board(tmp_path, params, {"base": 0.2, "random": 0.8, "full": 0.775}, seeds=(0,), langs=("fr",))
    df = build_leaderboard(tmp_path, params, ["random", "full"], ["fr"], seeds=[0]).set_index(["method", "lang"])
    assert df.loc[("random", "all"), "group"] == df.loc[("full", "all"), "group"] == 1  # 1 discordant item
    assert df.loc[("base", "all"), "group"] == 2


def test_stale_rows_are_flagged(tmp_path, params):
    _board(tmp_path, params, {"base": 0.5, "random": 0.5})
    write_run(tmp_path, "random", "ja", params, [1.0] * N, seed=1, params_sha="old")
    df = build_leaderboard(tmp_path, params, ["random"], ["fr", "ja"], seeds=[0, 1]).set_index(["method", "lang"])
    assert df.loc[("random", "ja"), "status"] == "stale" and df.loc[("random", "fr"), "status"] == "partial"
    assert df.loc[("random", "all"), "status"] == "stale"


def test_missing_run_is_an_error(tmp_path, params):
    _board(tmp_path, params, {"base": 0.5, "random": 0.5}, seeds=(0,), langs=("fr",))
    with pytest.raises(FileNotFoundError, match="random/fr/seed 1"):
        build_leaderboard(tmp_path, params, ["random"], ["fr"], seeds=[0, 1])


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
    _board(tmp_path, params, {"base": 0.5, "random": {"fr": 0.5, "ja": 0.7}}, seeds=(0,))
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
    df = build_leaderboard(tmp_path, params, ["random"], ["fr", "ja"], intrinsic=intrinsic, seeds=[0])
    rows = df.set_index(["method", "lang"]).loc["random"]
    assert rows.loc["fr", "cluster_coverage"] == 0.4 and rows.loc["all", "cluster_coverage"] == pytest.approx(0.5)
    assert rows.loc["all", "len_mean"] == pytest.approx(200.0) and math.isnan(rows.loc["fr", "mean_quality"])
    write_leaderboard(df, tmp_path / "out")
    md = (tmp_path / "out" / "leaderboard.md").read_text()
    assert (
        "| random | method | builtin | 0.500 | 0.700 | 0.600 ± 0.055 |" in md and "| 0.500 | – | – | 0.500 | 1 |" in md
    )


def test_generation_summary_joins_the_rows(tmp_path, params):
    _board(tmp_path, params, {"base": 0.5, "random": 0.5}, seeds=(0,))
    write_json(tmp_path / "random" / "fr" / "s0" / "generation.json", {"share_target_lang": 0.75, "n_answers": 8})
    df = build_leaderboard(tmp_path, params, ["random"], ["fr", "ja"], seeds=[0]).set_index(["method", "lang"])
    df = df.loc["random"]
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
    _board(tmp_path / "runs", params, {"base": 0.5, "random": 0.6}, seeds=(0,))
    for lang in ("fr", "ja"):
        judged = {"status": "ok", "prompt_version": "1", **verdict}
        judged |= {b: stats for b in ("alpaca_eval", "mt_bench_r1", "mt_bench_r2")}
        write_json(tmp_path / "judge" / "random" / lang / "judge.json", judged)
    df = build_leaderboard(
        tmp_path / "runs", params, ["random"], ["fr", "ja"], judge_dir=tmp_path / "judge", seeds=[0]
    )
    df = df[df["method"] == "random"]
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
