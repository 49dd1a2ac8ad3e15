"""Win rates from judgment files: AlpacaEval statistics, order combination, language policy, diagnostics, CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from mdaq.cli import main
from mdaq.errors import DataError
from mdaq.judging.winrate import (
    combine_orders,
    judge_diagnostics,
    read_judgments,
    validate_record,
    win_rate_stats,
    winrate_report,
)

_VERDICT = {
    ("model_first", "model"): 1,
    ("model_first", "reference"): 2,
    ("reference_first", "model"): 2,
    ("reference_first", "reference"): 1,
}


def rec(item, order, winner, *, lang="de", model="m", **kw) -> dict:
    """One judgment record with a verdict consistent with ``winner``."""
    verdict = 0 if winner == "tie" else _VERDICT.get((order, winner))
    base = {
        "benchmark": "alpaca_eval",
        "lang": lang,
        "item_id": item,
        "model": model,
        "reference": "r",
        "order": order,
        "verdict": verdict,
        "winner": winner,
        "raw": "",
        "judge_id": "fake",
        "model_len": 10,
        "reference_len": 10,
        "model_lang": lang,
        "reference_lang": lang,
        "target_lang": lang,
        "prompt_tokens": 100,
        "completion_tokens": 5,
        "cost_usd": 0.01,
        "latency_s": 0.1,
        "cached": False,
    }
    return base | kw


def both(item, w_model_first, w_reference_first, **kw) -> list[dict]:
    return [rec(item, "model_first", w_model_first, **kw), rec(item, "reference_first", w_reference_first, **kw)]


def test_win_rate_stats_hand_computed():
    s = win_rate_stats([2, 2, 1, 1.5])
    assert s["win_rate"] == pytest.approx(62.5)
    # p − 1 = [1, 1, 0, .5]: squared deviations from .625 sum to .6875; SE = sqrt(.6875 / 3) / sqrt(4) × 100
    assert s["standard_error"] == pytest.approx(math.sqrt(0.6875 / 3) / 2 * 100)
    assert s["discrete_win_rate"] == pytest.approx(62.5)
    assert (s["n_total"], s["n_wins"], s["n_wins_base"], s["n_draws"], s["n_unparsed"]) == (4, 2, 1, 1, 0)
    assert s["ci_low"] <= 62.5 <= s["ci_high"]
    # continuous preferences: the discrete rate rounds 1.2 -> 1 and 1.7 -> 2; nan is counted, not scored
    c = win_rate_stats([1.2, 1.7, 1.5, float("nan")])
    assert c["win_rate"] == pytest.approx((0.2 + 0.7 + 0.5) / 3 * 100)
    assert c["discrete_win_rate"] == pytest.approx(50.0)
    assert (c["n_total"], c["n_unparsed"], c["n_wins"], c["n_wins_base"], c["n_draws"]) == (3, 1, 1, 1, 1)


def test_win_rate_stats_edge_cases():
    empty = win_rate_stats([float("nan")] * 3)
    assert math.isnan(empty["win_rate"]) and math.isnan(empty["ci_low"]) and empty["n_unparsed"] == 3
    one = win_rate_stats([2.0])
    assert one["win_rate"] == 100 and math.isnan(one["standard_error"])  # ddof = 1, as pandas' sem
    assert win_rate_stats([0, 0])["win_rate"] == 50  # AlpacaEval's legacy tie code
    with pytest.raises(ValueError, match="outside"):
        win_rate_stats([1.0, 2.5])


def test_bootstrap_ci_is_seeded():
    p = np.random.default_rng(3).choice([1.0, 1.5, 2.0], size=200)
    a, b, c = win_rate_stats(p, seed=1), win_rate_stats(p, seed=1), win_rate_stats(p, seed=2)
    assert (a["ci_low"], a["ci_high"]) == (b["ci_low"], b["ci_high"]) != (c["ci_low"], c["ci_high"])
    assert a["ci_low"] < a["win_rate"] < a["ci_high"]
    # the percentile interval is close to ±1.96 SE for n = 200
    assert a["ci_high"] - a["ci_low"] == pytest.approx(2 * 1.96 * a["standard_error"], rel=0.15)


@pytest.mark.parametrize("seed", range(5))
def test_win_rate_stats_matches_alpaca_eval(seed):
    metrics = pytest.importorskip("alpaca_eval.metrics")
    rng = np.random.default_rng(seed)
    n = 60 + 20 * seed
    p = rng.uniform(1, 2, n)
    for value, share in ((1.0, 0.2), (2.0, 0.2), (1.5, 0.15), (0.0, 0.05), (np.nan, 0.1)):
        p[rng.random(n) < share] = value
    ours, theirs = win_rate_stats(p), metrics.pairwise_to_winrate(list(p))
    for key in ("win_rate", "standard_error", "discrete_win_rate"):
        assert ours[key] == pytest.approx(float(theirs[key]), rel=1e-12), key
    for key in ("n_wins", "n_wins_base", "n_draws", "n_total"):
        assert ours[key] == int(theirs[key]), key
    assert ours["n_unparsed"] == int(np.isnan(p).sum())


def test_combine_orders_agree_flip_unparsed_missing():
    records = [
        *both("a", "model", "model"),
        *both("b", "model", "reference"),
        *both("c", "tie", "tie"),
        *both("d", "reference", None),
        rec("e", "model_first", "model"),
    ]
    items = {it["item_id"]: it for it in combine_orders(records)}
    assert [items[k]["preference"] for k in "abc"] == [2.0, 1.5, 1.5]
    assert items["a"]["outcome"] == "model" and not items["a"]["flipped"]
    assert items["b"]["outcome"] == "tie" and items["b"]["flipped"]
    assert items["d"]["outcome"] is None and math.isnan(items["d"]["preference"]) and items["d"]["n_parsed"] == 1
    assert items["e"]["outcome"] is None and items["e"]["n_orders"] == 1
    s = win_rate_stats([it["preference"] for it in items.values()])
    assert (s["n_total"], s["n_unparsed"], s["win_rate"]) == (3, 2, pytest.approx(100 * (1 + 0.5 + 0.5) / 3))


def test_combine_orders_rejects_duplicates_and_bad_records():
    with pytest.raises(DataError, match="second 'model_first'"):
        combine_orders([rec("a", "model_first", "model"), rec("a", "model_first", "tie")])
    with pytest.raises(DataError, match="record 0.*'winner'"):
        combine_orders([rec("a", "model_first", "model", verdict=2)])  # verdict 2 model_first = reference
    with pytest.raises(ValueError, match="lang_policy"):
        combine_orders([], lang_policy="strict")


def test_lang_policy_loss():
    records = [
        *both("off_model", "model", "model", model_lang="en"),  # model off-target, reference on: reference wins
        *both("off_ref", "reference", "reference", reference_lang="fr"),  # reference off, model on: model wins
        *both("both_off", "model", "model", model_lang="en", reference_lang="en"),  # unchanged
        *both("unknown", "model", "model", model_lang=None),  # unknown language: unchanged
        *both("region", "reference", "reference", model_lang="DE-at"),  # de-AT is German: unchanged
        *both("unparsed", None, None, model_lang="en"),  # the rule settles items the judge did not
    ]
    ignore = {it["item_id"]: it["preference"] for it in combine_orders(records)}
    loss = {it["item_id"]: it for it in combine_orders(records, lang_policy="loss")}
    assert ignore["off_model"] == 2.0 and loss["off_model"]["preference"] == 1.0
    assert loss["off_model"]["lang_rule"] == "model_off_target"
    assert ignore["off_ref"] == 1.0 and loss["off_ref"]["preference"] == 2.0
    assert [loss[k]["preference"] for k in ("both_off", "unknown", "region")] == [2.0, 2.0, 1.0]
    assert math.isnan(ignore["unparsed"]) and loss["unparsed"]["preference"] == 1.0


def test_judge_diagnostics_hand_built():
    records = [
        *both(1, "model", "model", model_len=100, reference_len=200),  # shown-first wins once; shorter wins twice
        *both(2, "model", "reference", model_lang="en"),  # flips with order; equal lengths; model off-target
        rec(3, "model_first", "tie", model_lang=None),
        rec(3, "reference_first", None, model_lang=None, cost_usd=None),
        *both(4, "reference", "reference", model_len=50, reference_len=80),  # the longer answer wins twice
        *both(5, "model", "model", lang="ja"),
    ]
    d = judge_diagnostics(records)
    de = next(g for g in d["groups"] if g["lang"] == "de")
    assert de["position_bias_rate"] == pytest.approx(1 / 3)  # items 1, 2, 4 have both orders; 2 flips
    # favours first: 1 + 0 (item 1) + 1 + 1 (item 2) + ½ (tie) + 0 + 1 (item 4), over 7 parsed verdicts
    assert de["first_position_rate"] == pytest.approx(4.5 / 7)
    assert de["longer_preferred_rate"] == pytest.approx(0.5)
    assert de["parse_rate"] == pytest.approx(7 / 8)
    assert de["off_target_lang_share"] == pytest.approx(1 / 3)  # items 1, 2, 4 known; item 2 off
    assert (de["n_items"], de["n_records"], de["prompt_tokens"]) == (4, 8, 800)
    assert de["cost_usd"] == pytest.approx(0.07)
    assert d["overall"]["n_items"] == 5 and d["overall"]["parse_rate"] == pytest.approx(9 / 10)
    assert [g["lang"] for g in d["groups"]] == ["de", "ja"]


_ANN = {"output_1": "x", "output_2": "y"}
_GOOD = json.dumps(rec("a", "model_first", "model"))


def _write_jsonl(path, rows) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def test_read_judgments_both_formats(tmp_path):
    alpaca = tmp_path / "annotations.json"
    prefs = [2, 1, 1.5, None, 1.7, 0]
    alpaca.write_text(
        json.dumps(
            [
                {"instruction": f"q{i}", "output_1": "ref", "output_2": "mine", "preference": p, "generator_2": "m"}
                for i, p in enumerate(prefs)
            ]
        )
    )
    jf = read_judgments(alpaca)
    assert jf.kind == "alpaca_eval" and jf.records[0]["model"] == "m" and math.isnan(jf.records[3]["preference"])
    report = winrate_report(alpaca)
    assert report == win_rate_stats([2, 1, 1.5, float("nan"), 1.7, 0]) and report["n_unparsed"] == 1
    assert report["win_rate"] == pytest.approx((1 + 0 + 0.5 + 0.7 + 0.5) / 5 * 100) and "groups" not in report
    ours = tmp_path / "judgments.jsonl"
    rows = [*both("a", "model", "model"), *both("b", "tie", "model"), *both("c", "model", "model", lang="ja")]
    _write_jsonl(ours, rows)
    assert read_judgments(ours).kind == "mdaq"
    rep = winrate_report(ours)
    assert rep["win_rate"] == pytest.approx(100 * 2.5 / 3)
    assert [(g["lang"], g["n_total"], g["win_rate"]) for g in rep["groups"]] == [("de", 2, 75.0), ("ja", 1, 100.0)]
    assert "groups" not in winrate_report(ours, by_group=False)
    with pytest.raises(DataError, match="lang_policy"):
        winrate_report(alpaca, lang_policy="loss")


@pytest.mark.parametrize(
    ("name", "text", "where"),
    [
        ("a.json", json.dumps([_ANN | {"preference": 2}, _ANN | {"preference": 3}]), "record 1, field 'preference'"),
        ("b.json", json.dumps([{"output_1": "x", "preference": 2}]), "record 0, field 'output_2'"),
        ("c.json", json.dumps({"preference": 2}), "expected a list"),
        ("d.json", "[{", "malformed JSON"),
        ("e.jsonl", _GOOD + "\n\n" + json.dumps(rec("a", "both", "model")), "line 3, field 'order'"),
        ("f.jsonl", json.dumps(rec("a", "model_first", "x")), "line 1, field 'winner'"),
        ("g.jsonl", json.dumps(rec("a", "model_first", "model", model_len=-1)), "field 'model_len'"),
        ("h.jsonl", json.dumps({"benchmark": "alpaca_eval"}), "line 1, field 'lang': missing"),
        ("i.jsonl", "{not json", "line 1: malformed JSON"),
        ("j.jsonl", _GOOD + "\n" + _GOOD, "line 2, field 'order': second judgment of this item and order (first"),
    ],
)
def test_read_judgments_bad_files(tmp_path, name, text, where):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataError) as e:
        read_judgments(path)
    assert name in str(e.value) and where in str(e.value)


def test_validate_record_accepts_minimal_record():
    validate_record(
        {
            "benchmark": "mt_bench_r2",
            "lang": "no",
            "item_id": 7,
            "model": "m",
            "reference": "r",
            "order": "reference_first",
            "winner": None,
        }
    )


def test_cli_winrate(tmp_path, capsys):
    path = tmp_path / "j.jsonl"
    _write_jsonl(path, [*both("a", "model", "model", model_lang="en"), *both("b", "model", "reference")])
    assert main(["winrate", str(path), "--by-group"]) == 0
    out = json.loads(capsys.readouterr().out, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    assert out["win_rate"] == pytest.approx(75.0) and out["groups"][0]["n_total"] == 2
    assert main(["winrate", str(path), "--lang-policy", "loss"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["win_rate"] == pytest.approx(25.0) and "groups" not in out
    one = tmp_path / "one.jsonl"
    _write_jsonl(one, both("a", "model", "model"))
    assert main(["winrate", str(one)]) == 0
    assert json.loads(capsys.readouterr().out)["standard_error"] is None  # nan becomes null
    _write_jsonl(one, [rec("a", "model_first", "model", verdict=7)])
    assert main(["winrate", str(one)]) == 1
    assert "one.jsonl, record line 1, field 'verdict'" in capsys.readouterr().err
