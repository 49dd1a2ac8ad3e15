"""The judge stage end to end: generations -> alpaca_eval (both orders) + MT-Bench R1/R2 -> judge.json, with an
OpenAI-compatible loopback server, its cache, the skip path without a judge, and the leaderboard's win-rate columns."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mdaq.config import JudgeConfig
from mdaq.io import read_json, read_jsonl, write_json, write_jsonl
from mdaq.judging.stage import SKIP_MESSAGE, run_judge_stage, winrate_table
from mdaq.judging.winrate import winrate_report
from tests.conftest import write_run
from tests.test_judge import StubServer

QUESTIONS = [
    {"question_id": 81, "turns": ["Schreibe ein Gedicht.", "Kürzer, bitte."]},
    {"question_id": 82, "turns": ["Erkläre Photosynthese.", "Für Kinder?"]},
]


def _generations(root: Path, method: str, long: bool) -> None:
    d = root / method / "de" / "s0"  # a run folder of the `run` stage (seed 0)
    d.mkdir(parents=True)
    text = "Eine lange, ausführliche Antwort mit Details. " * (3 if long else 1)
    write_json(
        d / "alpaca_eval.json",
        [
            {
                "instruction": f"Frage {i}?",
                "output": f"{text}{i}",
                "generator": f"{method}-de",
                "lang": "de",
                "detected_lang": "de",
            }
            for i in range(3)
        ],
    )
    write_jsonl(
        d / "mt_bench.jsonl",
        [
            {
                "question_id": q["question_id"],
                "model_id": f"{method}-de",
                "choices": [{"index": 0, "turns": [text, text]}],
                "lang": "de",
                "detected_lang": ["de", "en"],
            }
            for q in QUESTIONS
        ],
    )


@pytest.fixture
def setup(tmp_path):
    gen, midb = tmp_path / "gen", tmp_path / "midb"
    _generations(gen, "full", long=False)
    _generations(gen, "mdaq_das", long=True)
    (midb / "mt_bench").mkdir(parents=True)
    (midb / "mt_bench" / "German.json").write_text(json.dumps(QUESTIONS), encoding="utf-8")
    return gen, midb


@pytest.fixture
def server():
    s = StubServer()
    yield s
    s.close()


def test_without_a_judge_every_pair_is_skipped_with_the_reason(setup, tmp_path, capsys):
    gen, midb = setup
    res = run_judge_stage(gen, midb, ["full", "mdaq_das"], ["de"], JudgeConfig(), tmp_path / "out")
    skipped = {"status": "skipped", "method": "mdaq_das", "lang": "de", "reason": SKIP_MESSAGE}
    assert res == {"mdaq_das": {"de": skipped}}
    assert read_json(tmp_path / "out" / "mdaq_das" / "de" / "judge.json")["status"] == "skipped"
    assert not (tmp_path / "out" / "full").exists()  # the reference is not judged against itself
    assert "judge stage skipped" in capsys.readouterr().out
    assert winrate_table(res).empty


def test_position_biased_judge_gives_ties_and_is_diagnosed(setup, tmp_path, server):
    """A judge that always answers [[1]] flips with the order: every item is a tie (50 %), bias rate 1."""
    gen, midb = setup
    cfg = JudgeConfig(backend="openai_compat", model="stub", base_url=server.base_url, n_concurrent=2)
    cache = tmp_path / "cache.sqlite"
    res = run_judge_stage(gen, midb, ["full", "mdaq_das"], ["de"], cfg, tmp_path / "out", cache)["mdaq_das"]["de"]
    n_calls = server.count
    assert n_calls == 2 * (3 + 2 + 2)  # both orders of 3 AlpacaEval items and 2 MT-Bench questions x 2 turns
    for bench, n in (("alpaca_eval", 3), ("mt_bench_r1", 2), ("mt_bench_r2", 2)):
        assert res[bench]["win_rate"] == 50.0 and res[bench]["n_total"] == n and res[bench]["n_draws"] == n
    diag = res["diagnostics"]
    assert diag["position_bias_rate"] == 1.0 and diag["first_position_rate"] == 1.0 and diag["parse_rate"] == 1.0
    assert diag["off_target_lang_share"] == pytest.approx(2 / 7)  # the turn-2 answers are detected as English
    out = tmp_path / "out" / "mdaq_das" / "de"
    records = read_jsonl(out / "judgments.jsonl")
    assert len(records) == 14 and {r["order"] for r in records} == {"model_first", "reference_first"}
    assert winrate_report(out / "judgments.jsonl")["win_rate"] == 50.0  # the CLI's numbers from the stored file
    r2 = [r for r in read_jsonl(out / "judgments.jsonl") if r["benchmark"] == "mt_bench_r2"]
    assert r2 and all(r["prompt_version"] == "judge_pairwise_multiturn_v1" for r in r2)
    assert (out / "annotations.json").is_file() and res["alpaca_eval_package"]["n_total"] == 3
    # rerun: every completion comes from the cache
    again = run_judge_stage(gen, midb, ["full", "mdaq_das"], ["de"], cfg, tmp_path / "out", cache)["mdaq_das"]["de"]
    assert server.count == n_calls and again["alpaca_eval"] == res["alpaca_eval"]


def test_language_policy_loss_turns_off_target_answers_into_losses(setup, tmp_path, server):
    gen, midb = setup
    # the reference answers turn 2 in German, the model in English: with lang_policy loss the model loses turn 2
    ref = gen / "full" / "de" / "s0" / "mt_bench.jsonl"
    write_jsonl(ref, [dict(r, detected_lang=["de", "de"]) for r in read_jsonl(ref)])
    cfg = JudgeConfig(backend="openai_compat", model="stub", base_url=server.base_url, lang_policy="loss")
    res = run_judge_stage(gen, midb, ["full", "mdaq_das"], ["de"], cfg, tmp_path / "out")["mdaq_das"]["de"]
    assert res["mt_bench_r2"]["win_rate"] == 0.0 and res["mt_bench_r1"]["win_rate"] == 50.0


def test_leaderboard_takes_win_rates_from_judge_json(tmp_path):
    from mdaq.config import params_from_dict
    from mdaq.reporting.leaderboard import JUDGE, build_leaderboard, to_markdown

    params = params_from_dict(
        {
            "profile": "t",
            "seed": 0,
            "seeds": [0],
            "languages": ["de"],
            "methods": ["full", "mdaq_das"],
            "base_model": "x",
            "selectors": {"full": {}, "mdaq_das": {}},
        }
    )
    for m in ("base", "full", "mdaq_das"):
        write_run(tmp_path / "runs", m, "de", params, [1.0, 0.0, 1.0, 1.0])
    stats = {"win_rate": 62.5}
    write_json(
        tmp_path / "judge" / "mdaq_das" / "de" / "judge.json",
        {
            "status": "ok",
            "judge_id": "openai_compat:j",
            "alpaca_eval": stats,
            "mt_bench_r1": stats,
            "mt_bench_r2": None,
        },
    )
    df = build_leaderboard(tmp_path / "runs", params, params.methods, params.languages, judge_dir=tmp_path / "judge")
    row = df[(df.method == "mdaq_das") & (df.lang == "de")].iloc[0]
    assert row["win_rate_alpaca_eval"] == 62.5 and row["judge_id"] == "openai_compat:j" and row["status"] == "ok"
    assert df[(df.method == "full") & (df.lang == "de")].iloc[0]["status"] == "partial"
    assert set(JUDGE) <= set(df.columns) and "win % alpaca_eval" in to_markdown(df)


def test_judge_stage_figures(tmp_path):
    """The answer-language bars read each run's generation.json (a missing run is left out); win rates plot."""
    import matplotlib
    import pandas as pd

    from mdaq.judging.plots import plot_answer_languages, plot_judge_win_rates

    matplotlib.use("Agg")
    write_json(tmp_path / "full" / "de" / "s0" / "generation.json", {"share_target_lang": 0.75})
    write_json(tmp_path / "mdaq_das" / "de" / "s0" / "generation.json", {"share_target_lang": 1.0})
    ax = plot_answer_languages(tmp_path, ["full", "mdaq_das"], ["de", "ja"], 0)
    heights = sorted(round(p.get_height(), 2) for p in ax.patches if p.get_height() == p.get_height())
    assert heights == [0.75, 1.0]  # two bars drawn, the two missing (ja) runs left out
    table = pd.DataFrame(
        [
            {
                "method": "mdaq_das",
                "lang": "de",
                "benchmark": "alpaca_eval",
                "win_rate": 60.0,
                "ci_low": 50.0,
                "ci_high": 70.0,
            }
        ]
    )
    ax = plot_judge_win_rates(table)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["mdaq_das / de / alpaca_eval"]


def test_stage_judge_gets_every_client_setting_from_params():
    from mdaq.judging.stage import make_stage_judge

    cfg = JudgeConfig(backend="openai_compat", model="m", base_url="http://127.0.0.1:9/v1", cancel_grace_s=3.5)
    judge = make_stage_judge(cfg, None)
    assert judge.cancel_grace_s == 3.5 and judge.timeout_s == cfg.timeout_s
