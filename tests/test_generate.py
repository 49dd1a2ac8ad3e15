"""Generation: output formats, turn-2 conditioning, resume after a crash, language detection, a real tiny LM."""

from __future__ import annotations

import json

import pytest

from mdaq.config import GenerateConfig
from mdaq.evaluation.generate import Generator, detect_language, generate_alpaca_eval, generate_mt_bench, turn2_prompt
from mdaq.models.lm import format_prompt


class FakeLM:
    """Answers 'A:<prompt tail>' and records every prompt; can crash after a number of calls."""

    def __init__(self, crash_after: int | None = None):
        self.prompts: list[str] = []
        self.calls, self.crash_after = 0, crash_after

    def __call__(self, prompts, seed=0):
        if self.crash_after is not None and self.calls >= self.crash_after:
            raise KeyboardInterrupt("simulated crash")
        self.calls += 1
        self.prompts += list(prompts)
        return [f"Antwort auf: {p.splitlines()[-3] if len(p.splitlines()) > 2 else p}" for p in prompts]


def test_alpaca_eval_format_and_resume(tmp_path):
    instructions = [f"Nenne die Zahl {i}." for i in range(10)]
    ref = generate_alpaca_eval(FakeLM(), instructions, tmp_path / "ref.json", generator="m", lang="de", chunk=3)
    crashing = FakeLM(crash_after=2)
    with pytest.raises(KeyboardInterrupt):
        generate_alpaca_eval(crashing, instructions, tmp_path / "out.json", generator="m", lang="de", chunk=3)
    assert not (tmp_path / "out.json").exists() and (tmp_path / "out.json.partial").is_file()
    resumed = FakeLM()
    got = generate_alpaca_eval(resumed, instructions, tmp_path / "out.json", generator="m", lang="de", chunk=3)
    assert len(resumed.prompts) == 4  # only the 10 - 2 * 3 missing answers were generated again
    assert got == ref and json.loads((tmp_path / "out.json").read_text()) == ref
    assert not (tmp_path / "out.json.partial").exists()
    assert set(ref[0]) == {"instruction", "output", "generator", "dataset", "lang", "detected_lang"}
    assert ref[3]["instruction"] == instructions[3] and ref[0]["generator"] == "m"


def test_mt_bench_turn2_sees_the_models_own_turn1(tmp_path):
    questions = [
        {"question_id": 81, "turns": ["Schreibe ein Gedicht.", "Mach es kürzer."]},
        {"question_id": 82, "turns": ["Nur eine Runde."]},
    ]
    lm = FakeLM()
    recs = generate_mt_bench(lm, questions, tmp_path / "mt.jsonl", model_id="m", lang="de", chunk=1)
    turn1 = recs[0]["choices"][0]["turns"][0]
    t2_prompts = [p for p in lm.prompts if "Mach es kürzer." in p]
    assert len(t2_prompts) == 1 and turn1 in t2_prompts[0] and "Schreibe ein Gedicht." in t2_prompts[0]
    assert t2_prompts[0] == turn2_prompt("Schreibe ein Gedicht.", turn1, "Mach es kürzer.")
    assert [len(r["choices"][0]["turns"]) for r in recs] == [2, 1]
    lines = [json.loads(x) for x in (tmp_path / "mt.jsonl").read_text().splitlines()]
    assert lines == recs and {"question_id", "answer_id", "model_id", "choices", "lang", "detected_lang"} <= set(
        lines[0]
    )


def test_mt_bench_resume_after_crash_between_turns(tmp_path):
    questions = [{"question_id": i, "turns": [f"Frage {i}", f"Nachfrage {i}"]} for i in range(4)]
    ref = generate_mt_bench(FakeLM(), questions, tmp_path / "ref.jsonl", model_id="m", lang="de", chunk=2)
    with pytest.raises(KeyboardInterrupt):  # crash after chunk 1's turn-1 call, before its turn 2
        generate_mt_bench(FakeLM(crash_after=1), questions, tmp_path / "o.jsonl", model_id="m", lang="de", chunk=2)
    lm = FakeLM()
    assert generate_mt_bench(lm, questions, tmp_path / "o.jsonl", model_id="m", lang="de", chunk=2) == ref
    assert format_prompt("Frage 0") not in lm.prompts and format_prompt("Frage 2") in lm.prompts  # no redone turn 1


def test_detect_language():
    assert detect_language("Das ist ein kurzer deutscher Satz über das Wetter.") == "de"
    assert detect_language("これは日本語の文章です。天気について話します。") == "ja"
    assert detect_language("   ") == "und"


def test_generator_on_a_tiny_lm_is_greedy_and_deterministic(tiny_lm):
    cfg = GenerateConfig(max_new_tokens=6, batch_size=2)
    gen = Generator(tiny_lm, None, cfg)
    prompts = ["### Instruction:\nSag hallo.\n\n### Response:\n", "### Instruction:\n色\n\n### Response:\n", "x"]
    a, b = gen(prompts), gen(prompts)
    assert a == b and len(a) == 3 and all(isinstance(x, str) for x in a)
    sampled = Generator(tiny_lm, None, GenerateConfig(max_new_tokens=6, do_sample=True, temperature=1.0))
    assert sampled(prompts, seed=3) == sampled(prompts, seed=3)  # seeded sampling is reproducible
