"""mdaq.judging.alpaca_bridge: AlpacaEval via alpaca_eval.main.evaluate with a fake judge backend, both answer
orders."""

from __future__ import annotations

import ipaddress
import json
import logging
import math
import re
import socket
from dataclasses import dataclass

import pytest

pytest.importorskip("alpaca_eval")

from mdaq.judging import alpaca_bridge  # noqa: E402
from mdaq.judging.alpaca_bridge import (  # noqa: E402
    alpaca_parser,
    alpaca_template,
    chatml_to_messages,
    run_alpaca_eval,
)
from mdaq.judging.base import load_prompt  # noqa: E402

# instruction -> (model answer, reference answer); the fake judge prefers the longer answer, [[1]] on equal length
CASES = {
    "Nenne eine lange Farbe.": ("Dunkelblau wie die Nacht", "Blau"),  # model longer: model wins in both orders
    "Was ist 2+2?": ("4", "Vier, denn 2+2=4"),  # model shorter: reference wins in both orders
    "Übersetze 'Haus'.": ("house", "maiso"),  # equal length: [[1]] in both orders = position bias -> tie
    "KAPUTT: Schreibe ein Gedicht.": ("Rosen sind rot", "Veilchen"),  # the judge answers garbage
    "UNENTSCHIEDEN: Sag hallo.": ("Hallo!", "Hallo, Welt!"),  # the judge says [[0]]
    "Gleich: Sag ja.": ("Ja.", "Ja."),  # identical answers: alpaca_eval scores 1.5 without asking the judge
}


@dataclass(frozen=True)
class FakeCompletion:
    text: str
    prompt_tokens: int = 10
    completion_tokens: int = 2
    cost_usd: float = 0.001
    latency_s: float = 0.01
    cached: bool = False


class FakeJudge:
    """Deterministic judge: [[2]] when answer 2 is longer, [[1]] otherwise; garbage / [[0]] on marked instructions."""

    id = "fake-judge-v1"

    def __init__(self) -> None:
        self.conversations: list[list[dict[str, str]]] = []
        self.n_batches = 0

    def chat_many(self, conversations):
        self.n_batches += 1
        out = []
        for conv in conversations:
            self.conversations.append(conv)
            user = conv[-1]["content"]
            a1 = re.search(r"<answer_1>\n(.*)\n</answer_1>", user, re.S).group(1)
            a2 = re.search(r"<answer_2>\n(.*)\n</answer_2>", user, re.S).group(1)
            if "KAPUTT" in user:
                out.append(FakeCompletion("Ich kann mich nicht entscheiden."))
            elif "UNENTSCHIEDEN" in user:
                out.append(FakeCompletion("Both are fine.\n[[0]]"))
            else:
                out.append(FakeCompletion("Reasoning.\n" + ("[[2]]" if len(a2) > len(a1) else "[[1]]")))
        return out


def outputs() -> tuple[list[dict], list[dict]]:
    model = [
        {"instruction": k, "output": m, "generator": "lora-mdaq", "dataset": "alpaca_eval_de"}
        for k, (m, _) in CASES.items()
    ]
    ref = [
        {"instruction": k, "output": r, "generator": "full", "dataset": "alpaca_eval_de"}
        for k, (_, r) in CASES.items()
    ]
    return model, ref[::-1]  # reference in another order: matching is on the instruction


# expected preferences in model orientation (2 = model better), in CASES order
MAIN = [2.0, 1.0, 1.0, math.nan, 1.5, 1.5]
SWAPPED = [2.0, 1.0, 2.0, math.nan, 1.5, 1.5]
COMBINED = [2.0, 1.0, 1.5, math.nan, 1.5, 1.5]


def same(a: list[float], b: list[float]) -> bool:
    return len(a) == len(b) and all((math.isnan(x) and math.isnan(y)) or x == y for x, y in zip(a, b, strict=True))


@pytest.fixture
def no_network(monkeypatch):
    """Any non-loopback connect or DNS lookup fails the test."""

    def is_loopback(host: object) -> bool:
        if host in (None, "localhost", b"localhost"):
            return True
        try:
            return ipaddress.ip_address(host.decode() if isinstance(host, bytes) else str(host)).is_loopback
        except ValueError:
            return False

    real_connect, real_getaddrinfo = socket.socket.connect, socket.getaddrinfo

    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and not is_loopback(address[0]):
            raise AssertionError(f"network access attempted: {address}")
        return real_connect(self, address)

    def getaddrinfo(host, *args, **kwargs):
        if not is_loopback(host):
            raise AssertionError(f"DNS lookup attempted: {host}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def test_no_network_guard_blocks(no_network):
    with socket.socket() as sock, pytest.raises(AssertionError, match="network access"):
        sock.connect(("203.0.113.7", 443))
    with pytest.raises(AssertionError, match="DNS lookup"):
        socket.getaddrinfo("huggingface.co", 443)


def package_files() -> set[str]:
    return {str(p.relative_to(alpaca_bridge.CONFIG_DIR)) for p in alpaca_bridge.CONFIG_DIR.rglob("*")}


def test_both_orders_combined_and_win_rate(tmp_path, monkeypatch, no_network):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    before = package_files()
    root_level = logging.getLogger().level
    judge = FakeJudge()
    model, ref = outputs()

    res = run_alpaca_eval(model, ref, judge, lang="de", name="lora-mdaq")

    assert res["instructions"] == list(CASES)
    assert same(res["preferences"]["reference_first"], MAIN)  # alpaca_eval's main run: the model is output_2
    assert same(res["preferences"]["model_first"], SWAPPED)
    assert same(res["preferences"]["combined"], COMBINED)
    # alpaca_eval's own number for the main order = mean(pref - 1) * 100 over parsed items
    parsed = [p for p in MAIN if not math.isnan(p)]
    assert res["leaderboard"]["win_rate"] == pytest.approx(sum(p - 1 for p in parsed) / len(parsed) * 100)
    main = res["summary"]["reference_first"]
    assert res["leaderboard"]["win_rate"] == pytest.approx(main["win_rate"]) == pytest.approx(40.0)
    assert res["leaderboard"]["n_total"] == 5
    assert {"standard_error", "discrete_win_rate"} <= set(res["leaderboard"])
    combined = res["summary"]["combined"]  # mdaq.judging.winrate.win_rate_stats, as for MT-Bench
    assert combined["win_rate"] == pytest.approx(50.0)
    assert (combined["n_total"], combined["n_wins"], combined["n_wins_base"], combined["n_draws"]) == (5, 1, 1, 3)
    assert combined["n_unparsed"] == 1

    # one judgment record per (item, order), combined by the same code as every other benchmark
    recs = res["records"]
    assert len(recs) == 2 * len(CASES) and {r["order"] for r in recs} == {"model_first", "reference_first"}
    assert {r["prompt_version"] for r in recs} == {"judge_pairwise_v1"} == {res["prompt_version"]}
    assert {r["prompt_sha"] for r in recs} == {load_prompt("judge_pairwise_v1").sha}
    assert {(r["model"], r["reference"], r["judge_id"]) for r in recs} == {("lora-mdaq", "reference", judge.id)}
    long_first = next(r for r in recs if r["item_id"] == "0" and r["order"] == "model_first")
    assert (long_first["verdict"], long_first["winner"]) == (1, "model") and "[[1]]" in long_first["raw"]

    # judge calls: both orders, minus the identical pair; prompts carry the language and the right answer order
    assert len(judge.conversations) == res["n_judge_calls"] == 2 * (len(CASES) - 1)
    assert all([m["role"] for m in c] == ["user"] for c in judge.conversations)
    first = next(c[-1]["content"] for c in judge.conversations if "lange Farbe" in c[-1]["content"])  # main run
    assert (
        first
        == load_prompt("judge_pairwise_v1")
        .render(lang="de", instruction=list(CASES)[0], answer_1="Blau", answer_2="Dunkelblau wie die Nacht")
        .strip()
    )  # the very prompt MT-Bench items get
    main_long = next(c[-1]["content"] for c in judge.conversations if "lange Farbe" in c[-1]["content"])
    assert main_long.index("<answer_1>\nBlau\n") < main_long.index("<answer_2>\nDunkelblau")

    # raw annotations keep alpaca_eval's orientation (2 = output_2 better) and say which order they come from
    ann = {(a["order"], a["instruction"]): a for a in res["annotations"]}
    swapped_long = ann[("model_first", "Nenne eine lange Farbe.")]
    assert (swapped_long["output_1"], swapped_long["generator_1"], swapped_long["preference"]) == (
        "Dunkelblau wie die Nacht",
        "lora-mdaq",
        1.0,
    )
    assert ann[("reference_first", "KAPUTT: Schreibe ein Gedicht.")]["preference"] is None

    # nothing written into cwd or the package, and alpaca_eval's root-logger level change is undone
    assert list(cwd.iterdir()) == []
    assert package_files() == before
    assert logging.getLogger().level == root_level


def test_out_dir_annotations_and_cache(tmp_path, monkeypatch, no_network):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    model, ref = outputs()
    judge = FakeJudge()
    res = run_alpaca_eval(model, ref, judge, lang="de", out_dir=out, name="lora-mdaq")

    saved = json.loads((out / "annotations.json").read_text(encoding="utf-8"))
    assert len(saved) == 2 * len(CASES)
    assert {a["order"] for a in saved} == {"reference_first", "model_first"}
    for a in saved:
        assert {"instruction", "output_1", "output_2", "generator_1", "generator_2", "preference", "order"} <= set(a)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # nothing else beside out_dir
    assert [p.parent.name for p in (out / "alpaca_eval_cache").iterdir()] == ["alpaca_eval_cache"]

    # a rerun reuses alpaca_eval's cache under out_dir: same results, no judge call (unparsed stays unparsed)
    judge2 = FakeJudge()
    res2 = run_alpaca_eval(model, ref, judge2, lang="de", out_dir=out, name="lora-mdaq")
    assert judge2.conversations == [] and res2["n_judge_calls"] == 0
    for order in ("reference_first", "model_first", "combined"):
        assert same(res2["preferences"][order], res["preferences"][order])


@pytest.mark.parametrize(
    ("completion", "expected"),
    [
        ("[[1]]", [1.0]),
        ("Answer 2 is clearer.\n[[2]]", [2.0]),
        ("Equal.\n[[0]]", [1.5]),
        ("[[ 2 ]]", [2.0]),
        ("I pick [[1]].\nVerdict: [[1]]", [1.0]),  # repeated, consistent
        ("Not [[1]] but [[2]]", [None]),  # conflicting markers: never guessed
        ("no verdict at all", [None]),
        ("[[3]]", [None]),
    ],
)
def test_alpaca_parser_is_the_judge_parser(completion, expected):
    assert alpaca_parser(completion) == expected


def test_alpaca_template_is_the_judge_prompt():
    prompt = load_prompt("judge_pairwise_v1")
    template = alpaca_template(prompt, "ja")
    filled = template.replace("{instruction}", "I").replace("{output_1}", "A").replace("{output_2}", "B")
    rendered = prompt.render(lang="ja", instruction="I", answer_1="A", answer_2="B").strip()
    assert filled == f"<|im_start|>user\n{rendered}\n<|im_end|>"
    with pytest.raises(ValueError, match="single-turn"):
        alpaca_template(load_prompt("judge_pairwise_multiturn_v1"), "ja")
    assert not list(alpaca_bridge.CONFIG_DIR.glob("*.txt"))  # one prompt file per version: mdaq/judging/prompts


def test_chatml_split_keeps_markers_inside_answers():
    prompt = (
        "<|im_start|>system\nBe fair.\n<|im_end|>\n<|im_start|>user\nA: x<|im_end|>\n<|im_start|>user\ny\n<|im_end|>"
    )
    assert chatml_to_messages(prompt, 2) == [
        {"role": "system", "content": "Be fair."},
        {"role": "user", "content": "A: x<|im_end|>\n<|im_start|>user\ny"},
    ]
    assert chatml_to_messages("plain", 0) == [{"role": "user", "content": "plain"}]


def test_mismatched_or_duplicate_instructions_rejected():
    model, ref = outputs()
    with pytest.raises(ValueError, match="differ in instructions"):
        run_alpaca_eval(model, ref[1:], FakeJudge(), lang="de")
    with pytest.raises(ValueError, match="duplicate instruction"):
        run_alpaca_eval(model + model[:1], ref, FakeJudge(), lang="de")
    with pytest.raises(ValueError, match="template placeholder"):
        bad = [dict(model[0], output="see {output_2}")] + model[1:]
        run_alpaca_eval(bad, ref, FakeJudge(), lang="de")
