"""Human evaluation: CSV reading, win rates and Table 1, kappa statistics, agreement with the LLM judge, CLI."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest

from mdaq.cli import main
from mdaq.errors import DataError
from mdaq.judging.human_eval import (
    cohen_kappa,
    fleiss_kappa,
    human_win_rates,
    inter_annotator_agreement,
    judge_agreement,
    read_human_csv,
    table1,
    table1_markdown,
)

from .conftest import REPO

EXAMPLE = REPO / "examples" / "human_eval_synthetic.csv"
HEADER = "language,benchmark,item,annotator,verdict,model,reference\n"
# de: 3 annotators on 3 items (+ one item judged by one annotator only); ja: 2 annotators on 4 items.
VOTES = {
    ("de", "1"): {"A": "model", "B": "model", "C": "tie"},  # score 5/6, majority model
    ("de", "2"): {"A": "reference", "B": "reference", "C": "reference"},  # 0, reference
    ("de", "3"): {"A": "model", "B": "tie", "C": "reference"},  # 1/2, no majority -> tie
    ("ja", "1"): {"A": "model", "B": "model"},
    ("ja", "2"): {"A": "model", "B": "reference"},  # no majority -> tie
    ("ja", "3"): {"A": "reference", "B": "reference"},
    ("ja", "4"): {"A": "tie", "B": "tie"},
}


def _write(tmp_path, text: str, name: str = "human.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def human(tmp_path):
    lines = [
        f"{lang},alpaca_eval,{item},{lang}-{a},{v},m,r\n"
        for (lang, item), votes in VOTES.items()
        for a, v in votes.items()
    ]
    lines.append("de,alpaca_eval,4,de-A,Model ,m,r\n")  # one annotator only; case and spaces ignored
    return read_human_csv(_write(tmp_path, "# a comment line\n" + HEADER + "".join(lines)))


def test_read_human_csv_example():
    df = read_human_csv(EXAMPLE)
    assert EXAMPLE.read_text(encoding="utf-8").startswith("# SYNTHETIC")
    assert len(df) == 3 * 2 * 10 * 3 and list(df.columns[:5]) == ["lang", "benchmark", "item", "annotator", "verdict"]
    assert sorted(df["lang"].unique()) == ["de", "ja", "no"]  # "no" stays Norwegian
    assert df["item"].iloc[0] == "000" and set(df["verdict"]) <= {"model", "reference", "tie"}


def test_synthetic_example_is_reproducible(tmp_path):
    out = tmp_path / "again.csv"
    script = REPO / "examples" / "make_synthetic_human_eval.py"
    subprocess.run([sys.executable, str(script), "--out", str(out), "--seed", "0"], check=True, timeout=60)
    assert out.read_bytes() == EXAMPLE.read_bytes()


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ("de,alpaca_eval,1,A,better,m,r\n", "line 3, field 'verdict'"),
        ("de,alpaca_eval,1,,model,m,r\n", "line 3, field 'annotator': empty"),
        (",alpaca_eval,1,A,model,m,r\n", "line 3, field 'language': empty"),
        ("de,alpaca_eval,1,A,model,m\n", "line 3: 6 fields, header has 7"),
        ("de,alpaca_eval,1,A,model,m,r\n\n# note\nde,alpaca_eval,1,A,tie,m,r\n", "line 6, field 'annotator'"),
    ],
)
def test_read_human_csv_bad_rows(tmp_path, body, where):
    path = _write(tmp_path, "# synthetic\n" + HEADER + body, "bad.csv")
    with pytest.raises(DataError) as e:
        read_human_csv(path)
    assert "bad.csv" in str(e.value) and where in str(e.value)


def test_read_human_csv_bad_header_or_empty(tmp_path):
    with pytest.raises(DataError, match=r"line 1: missing column\(s\) \['language', 'reference'\]"):
        read_human_csv(_write(tmp_path, "benchmark,item,annotator,verdict,model\nx,1,A,tie,m\n"))
    with pytest.raises(DataError, match="no verdict rows"):
        read_human_csv(_write(tmp_path, HEADER))


def test_human_win_rates_hand_computed(human):
    wr = human_win_rates(human).set_index("lang")
    # de item scores: 5/6, 0, 1/2 (votes averaged per item), and 1 for the single-annotator item
    assert wr.loc["de", "win_rate"] == pytest.approx((5 / 6 + 0 + 1 / 2 + 1) / 4 * 100)
    assert wr.loc["ja", "win_rate"] == pytest.approx((1 + 0.5 + 0 + 0.5) / 4 * 100)
    assert wr.loc["de", ["n_items", "n_annotators", "n_votes"]].tolist() == [4, 3, 10]
    assert (wr["ci_low"] <= wr["win_rate"]).all() and (wr["win_rate"] <= wr["ci_high"]).all()


def test_table1_layout():
    df = read_human_csv(EXAMPLE)
    t, wr = table1(df), human_win_rates(df)
    assert list(t.index) == ["de", "ja", "no"] and list(t.columns) == ["alpaca_eval", "mt_bench_r1"]
    assert all(re.fullmatch(r"\d+\.\d \[\d+\.\d, \d+\.\d\]", c) for c in t.to_numpy().ravel())
    row = wr[(wr["lang"] == "ja") & (wr["benchmark"] == "mt_bench_r1")].iloc[0]
    assert t.loc["ja", "mt_bench_r1"] == f"{row.win_rate:.1f} [{row.ci_low:.1f}, {row.ci_high:.1f}]"
    md = table1_markdown(t).splitlines()
    assert md[:2] == ["| lang | alpaca_eval | mt_bench_r1 |", "|---|---|---|"] and len(md) == 5
    assert md[2].startswith("| de | ")
    two = table1(df.assign(model=np.where(df["benchmark"] == "alpaca_eval", "m1", "m2")))
    assert list(two.columns) == ["m1 vs vanilla: alpaca_eval", "m2 vs vanilla: mt_bench_r1"]


def test_cohen_kappa_textbook_and_sklearn():
    # Wikipedia's worked example: 20 yes/yes, 5 yes/no, 10 no/yes, 15 no/no -> p_o = .7, p_e = .5, kappa = .4
    a = ["yes"] * 25 + ["no"] * 25
    b = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    assert cohen_kappa(a, b) == pytest.approx(0.4)
    assert np.isnan(cohen_kappa(["tie"] * 4, ["tie"] * 4)) and np.isnan(cohen_kappa([], []))
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    for _ in range(5):
        x = rng.choice(["model", "reference", "tie"], 40)
        y = np.where(rng.random(40) < 0.6, x, rng.choice(["model", "reference", "tie"], 40))
        assert cohen_kappa(list(x), list(y)) == pytest.approx(metrics.cohen_kappa_score(x, y))


def test_fleiss_kappa_wikipedia_example():
    # Fleiss' kappa worked example on Wikipedia: 10 subjects, 14 raters, 5 categories. By hand: P-bar = 688/1820,
    # p_j = (20, 28, 39, 21, 32)/140 so P_e = 4170/19600; kappa = 4211/20059 = 0.2099 (Wikipedia rounds to 0.210).
    counts = [
        [0, 0, 0, 0, 14],
        [0, 2, 6, 4, 2],
        [0, 0, 3, 5, 6],
        [0, 3, 9, 2, 0],
        [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0],
        [3, 2, 6, 3, 0],
        [2, 5, 3, 2, 2],
        [6, 5, 2, 1, 0],
        [0, 2, 2, 3, 7],
    ]
    p_bar, p_e = Fraction(688, 1820), Fraction(4170, 19600)
    assert (p_bar - p_e) / (1 - p_e) == Fraction(4211, 20059)
    assert fleiss_kappa(counts) == pytest.approx(4211 / 20059, rel=1e-12)
    assert fleiss_kappa([[3, 0], [0, 3], [3, 0]]) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="row 1 has fewer than 2"):
        fleiss_kappa([[2, 0], [1, 0]])


def test_inter_annotator_agreement(human):
    agree = inter_annotator_agreement(human).set_index("lang")
    # de, 3 items with 3 ratings (model, reference, tie): P_i = 1/3, 1, 0; P-bar = 4/9; totals 3, 4, 2 of 9 ->
    # P_e = 29/81; kappa = (4/9 - 29/81) / (52/81) = 7/52. The single-rated item is left out.
    assert agree.loc["de", "n_items"] == 3 and agree.loc["de", "observed_agreement"] == pytest.approx(4 / 9)
    assert agree.loc["de", "fleiss_kappa"] == pytest.approx(7 / 52) and np.isnan(agree.loc["de", "cohen_kappa"])
    # ja, 2 annotators: p_o = 3/4; marginals A (.5, .25, .25), B (.25, .5, .25): p_e = 5/16; kappa = 7/11
    assert agree.loc["ja", "cohen_kappa"] == pytest.approx(7 / 11) and agree.loc["ja", "n_annotators"] == 2


def _judgments() -> list[dict]:
    verdict = {
        ("model_first", "model"): 1,
        ("model_first", "reference"): 2,
        ("reference_first", "model"): 2,
        ("reference_first", "reference"): 1,
        ("model_first", "tie"): 0,
        ("reference_first", "tie"): 0,
    }
    plan = {
        ("de", 1): ("model", "model"),
        ("de", 2): ("model", "reference"),
        ("de", 3): (None, "model"),
        ("ja", 1): ("model", "model"),
        ("ja", 2): ("tie", "tie"),
        ("ja", 3): ("model", "model"),
        ("ja", 9): ("model", "model"),
    }
    out = []
    for (lang, item), winners in plan.items():
        for order, w in zip(("model_first", "reference_first"), winners, strict=True):
            out.append(
                {
                    "benchmark": "alpaca_eval",
                    "lang": lang,
                    "item_id": item,
                    "model": "m",
                    "reference": "r",
                    "order": order,
                    "winner": w,
                    "verdict": verdict.get((order, w)),
                }
            )
    return out


def test_judge_agreement(human):
    ja = judge_agreement(human, _judgments()).set_index("lang")
    # de: item 1 agrees (model), item 2 judge tie vs human reference, item 3 unparsed, item 4 not judged
    assert ja.loc["de", ["n_items", "n_unparsed", "n_unmatched"]].tolist() == [2, 1, 1]
    assert ja.loc["de", "agreement"] == pytest.approx(0.5)
    # ja: items 1 (model) and 2 (tie) agree, item 3 judge model vs human reference, item 4 not judged
    assert ja.loc["ja", "agreement"] == pytest.approx(2 / 3) and ja.loc["ja", "n_unmatched"] == 1
    # all: human (model, reference, model, tie, reference) vs judge (model, tie, model, tie, model): p_o = 3/5,
    # p_e = (2*3 + 2*0 + 1*2) / 25 = 8/25, kappa = 7/17
    assert ja.loc["all", "agreement"] == pytest.approx(3 / 5) and ja.loc["all", "cohen_kappa"] == pytest.approx(7 / 17)


def test_cli_human_eval(tmp_path, capsys):
    assert main(["human-eval", str(EXAMPLE)]) == 0
    out = json.loads(capsys.readouterr().out, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    assert len(out["win_rates"]) == 6 and len(out["inter_annotator"]) == 3 and "judge_agreement" not in out
    assert main(["human-eval", str(EXAMPLE), "--markdown"]) == 0
    assert capsys.readouterr().out.startswith("| lang | alpaca_eval | mt_bench_r1 |\n|---|---|---|\n| de | ")
    judgments = tmp_path / "j.jsonl"
    # the ja judgments above, relabelled as the example's German alpaca_eval items 001, 002, 003, 009
    rename = {"lang": "de", "model": "mdaq_das", "reference": "vanilla"}
    rows = [r | rename | {"item_id": f"00{r['item_id']}"} for r in _judgments() if r["lang"] == "ja"]
    judgments.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["human-eval", str(EXAMPLE), "--judgments", str(judgments)]) == 0
    rows = {r["lang"]: r for r in json.loads(capsys.readouterr().out)["judge_agreement"]}
    assert rows["de"]["n_items"] == 4 and rows["all"]["n_unmatched"] == 60 - 4
    bad = _write(tmp_path, HEADER + "de,alpaca_eval,1,A,win,m,r\n", "bad.csv")
    assert main(["human-eval", str(bad)]) == 1
    assert "bad.csv, record line 2, field 'verdict'" in capsys.readouterr().err


def test_human_eval_stage_without_judgments_says_so(tmp_path):
    from mdaq.judging.human_eval import run_human_eval_stage

    folder = tmp_path / "human_eval"
    folder.mkdir()
    (folder / "README.md").write_text("no csv here")
    status = run_human_eval_stage(folder, tmp_path / "out", tmp_path / "fig.png")
    assert status["status"] == "skipped" and "docs/human-eval.md" in status["reason"]
    assert json.loads((tmp_path / "out" / "status.json").read_text())["status"] == "skipped"
    assert not (tmp_path / "out" / "table1.md").exists() and (tmp_path / "fig.png").stat().st_size > 2_000


def test_human_eval_stage_renders_table1_and_drops_stale_outputs(tmp_path):
    from mdaq.judging.human_eval import human_win_rates, run_human_eval_stage, table1, table1_markdown

    folder = tmp_path / "human_eval"
    folder.mkdir()
    (folder / "batch1.csv").write_bytes(EXAMPLE.read_bytes())
    out, fig = tmp_path / "out", tmp_path / "fig.png"
    status = run_human_eval_stage(folder, out, fig, n_boot=200, seed=3)
    df = read_human_csv(EXAMPLE)
    assert status["status"] == "ok" and status["files"] == ["batch1.csv"] and status["n_votes"] == len(df)
    assert (out / "table1.md").read_text() == table1_markdown(table1(df, n_boot=200, seed=3))
    wr = human_win_rates(df, n_boot=200, seed=3)
    got = __import__("pandas").read_csv(out / "win_rates.csv", dtype={"lang": str})
    assert np.allclose(got["win_rate"], wr["win_rate"], atol=1e-4) and (out / "inter_annotator.csv").is_file()
    assert fig.stat().st_size > 10_000
    (folder / "batch1.csv").unlink()
    assert run_human_eval_stage(folder, out, fig)["status"] == "skipped"
    assert not (out / "table1.md").exists() and not (out / "win_rates.csv").exists()


def test_human_eval_dir_rejects_a_verdict_given_twice_across_files(tmp_path):
    from mdaq.judging.human_eval import read_human_dir

    assert read_human_dir(tmp_path) is None
    (tmp_path / "a.csv").write_bytes(EXAMPLE.read_bytes())
    (tmp_path / "b.csv").write_bytes(EXAMPLE.read_bytes())
    with pytest.raises(DataError, match=r"a\.csv', 'b\.csv'"):
        read_human_dir(tmp_path)
