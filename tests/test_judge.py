"""Tests for mdaq.judging: verdict parsing, both orders, the doubles, make_judge, and the OpenAI-compatible client
against a loopback stub server (retries, errors, secrets, caching, concurrency, rate limit)."""

from __future__ import annotations

import json
import logging
import time

import pytest

from mdaq.judging import (
    JUDGES,
    RECORD_KEYS,
    ChatBackend,
    FakeJudge,
    JudgeCache,
    JudgeError,
    JudgeItem,
    LengthJudge,
    OpenAICompatJudge,
    RateLimiter,
    build_conversation,
    judge_both_orders,
    load_prompt,
    make_judge,
    parse_verdict,
    winner_of,
)
from tests.judge_stub import KEY_ENV, StubServer, stub_judge

SECRET = "sk-test-do-not-leak-1234567890"


def items(n: int = 3, lang: str = "de") -> list[JudgeItem]:
    return [
        JudgeItem(
            item_id=f"q{k}",
            lang=lang,
            benchmark="alpaca_eval",
            instruction=f"Frage {k}?",
            model_answer="Antwort " * (k + 2),
            reference_answer="Ref " * 3,
            model="m",
            reference="r",
            model_lang=lang,
            reference_lang="en",
        )
        for k in range(n)
    ]


def mt_item() -> JudgeItem:
    return JudgeItem(
        item_id="81",
        lang="fr",
        benchmark="mt_bench_r2",
        instruction="Q2: et maintenant ?",
        model_answer="M2 model turn two",
        reference_answer="R2",
        history=(("Q1: bonjour", "M1 model one", "R1 ref"),),
    )


# --------------------------------------------------------------------------- parsing, prompts, records


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Answer 1 is better. [[1]]", 1),
        ("[[2]]", 2),
        ("Equally good.\n[[0]]", 0),
        ("[[ 1 ]]", 1),
        ("[[\t2\n]]", 2),
        ("I pick [[1]]. Final verdict: [[1]]", 1),  # the same tag repeated counts once
        ("[[1]] ... no wait, [[2]]", None),  # different tags: never guessed
        ("Assistant A is better", None),
        ("[1]", None),
        ("[[3]]", None),
        ("[[A]]", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_verdict_table(text: str | None, expected: int | None) -> None:
    assert parse_verdict(text) == expected


def test_winner_of_maps_positions_to_systems() -> None:
    assert [winner_of(v, "model_first") for v in (1, 2, 0, None)] == ["model", "reference", "tie", None]
    assert [winner_of(v, "reference_first") for v in (1, 2, 0, None)] == ["reference", "model", "tie", None]
    with pytest.raises(ValueError, match="order"):
        winner_of(1, "sideways")


def test_prompt_is_package_data_with_version_and_sha() -> None:
    p = load_prompt("judge_pairwise_v1")
    assert p.name == "judge_pairwise_v1" and len(p.sha) == 12
    for phrase in ("impartial", "helpfulness", "order", "Length", "language", "[[1]]", "[[2]]", "[[0]]"):
        assert phrase in p.text
    assert load_prompt("judge_pairwise_multiturn_v1").sha != p.sha
    with pytest.raises(KeyError, match="available: .*judge_pairwise_v1"):
        load_prompt("no_such_prompt")


def test_conversation_puts_the_right_answer_first_and_keeps_braces_literal() -> None:
    item = JudgeItem("x", "ja", "alpaca_eval", "色は？", "MODEL {answer_2} {lang}", "REFERENCE")
    text = build_conversation(item, "model_first", load_prompt("judge_pairwise_v1"))[0]["content"]
    assert text.index("MODEL") < text.index("REFERENCE") and "MODEL {answer_2} {lang}" in text
    assert '"ja"' in text and "色は？" in text
    text = build_conversation(item, "reference_first", load_prompt("judge_pairwise_v1"))[0]["content"]
    assert text.index("REFERENCE") < text.index("MODEL")


def test_mt_bench_r2_conversation_contains_both_turns_of_each_assistant() -> None:
    judge = FakeJudge()
    item = mt_item()
    text = build_conversation(item, "model_first", judge.prompt_for(item))[0]["content"]
    for part in ("Q1: bonjour", "Q2: et maintenant ?", "M1 model one", "M2 model turn two", "R1 ref", "R2"):
        assert part in text
    first, second = text.split("<conversation_2>")
    assert "M1 model one" in first and "M2 model turn two" in first and "R1 ref" in second
    assert first.index("Q1: bonjour") < first.index("M1 model one") < first.index("Q2") < first.index("M2")
    records = judge.compare([item])
    assert {r["prompt_version"] for r in records} == {"judge_pairwise_multiturn_v1"}
    assert records[0]["model_len"] == len("M2 model turn two")


def test_judge_item_validates_benchmark_and_history() -> None:
    with pytest.raises(ValueError, match="benchmark"):
        JudgeItem("x", "de", "mmlu", "q", "a", "b")
    with pytest.raises(ValueError, match="history"):
        JudgeItem("x", "de", "mt_bench_r2", "q", "a", "b")


# --------------------------------------------------------------------------- doubles and make_judge


def test_fake_judge_is_deterministic_and_seeded() -> None:
    its = items(30)
    a, b, c = FakeJudge(random_state=1).compare(its), FakeJudge(random_state=1).compare(its), FakeJudge().compare(its)
    assert a == b and a != c
    assert {r["verdict"] for r in a} == {0, 1, 2}
    assert any(x["verdict"] != y["verdict"] for x, y in zip(a[::2], a[1::2], strict=True))  # order matters
    conv = [[{"role": "user", "content": "hi"}]]
    assert FakeJudge().chat_many(conv) == FakeJudge().chat_many(conv)


def test_fake_judge_garbage_gives_unparsed_records() -> None:
    records = FakeJudge(garbage_ids={"q1"}).compare(items(3))
    bad = [r for r in records if r["item_id"] == "q1"]
    assert len(bad) == 2 and all(r["verdict"] is None and r["winner"] is None for r in bad)
    assert all(r["verdict"] is not None for r in records if r["item_id"] != "q1")


def test_length_judge_prefers_longer_and_ties_on_equal_length() -> None:
    longer = JudgeItem("a", "de", "alpaca_eval", "q", "a much longer answer", "short")
    shorter = JudgeItem("b", "de", "alpaca_eval", "q", "short", "a much longer answer")
    equal = JudgeItem("c", "de", "alpaca_eval", "q", "abc", "xyz")
    records = LengthJudge().compare([longer, shorter, equal])
    assert [r["winner"] for r in records] == ["model", "model", "reference", "reference", "tie", "tie"]
    assert [r["verdict"] for r in records] == [1, 2, 2, 1, 0, 0]


def test_both_orders_records_have_exact_keys_and_metadata() -> None:
    records = judge_both_orders(FakeJudge(), items(2))
    assert len(records) == 4 and [r["order"] for r in records] == ["model_first", "reference_first"] * 2
    for r in records:
        assert tuple(r) == RECORD_KEYS
        assert r["target_lang"] == r["lang"] == "de" and r["model_lang"] == "de" and r["reference_lang"] == "en"
        assert r["judge_id"] == "fake:0" and r["prompt_version"] == "judge_pairwise_v1"
    assert records[2]["model_len"] == len("Antwort " * 3) and records[2]["reference_len"] == len("Ref " * 3)
    json.dumps(records)  # a judgment file is JSONL of these


def test_make_judge_builds_backends_and_rejects_bad_config() -> None:
    assert set(JUDGES.names()) >= {"openai_compat", "fake", "length"}
    assert isinstance(make_judge({"backend": "fake", "random_state": 3}), FakeJudge)
    assert isinstance(make_judge({"backend": "length", "base_url": "http://x"}), LengthJudge)  # other backend's key
    judge = make_judge({"backend": "openai_compat", "model": "m", "temperature": 0, "requests_per_minute": 60})
    assert isinstance(judge, OpenAICompatJudge) and judge.id == "openai_compat:m"
    assert isinstance(judge, ChatBackend)
    with pytest.raises(ValueError, match="unknown key.*temprature"):
        make_judge({"backend": "openai_compat", "model": "m", "temprature": 0.0})
    with pytest.raises(ValueError, match="unknown judge 'gpt'"):
        make_judge({"backend": "gpt"})
    with pytest.raises(ValueError, match="backend"):
        make_judge({"model": "m"})
    with pytest.raises(ValueError, match="judge.n_concurrent"):
        make_judge({"backend": "openai_compat", "model": "m", "n_concurrent": "4"})
    with pytest.raises(ValueError, match="model"):
        make_judge({"backend": "openai_compat"})


# --------------------------------------------------------------------------- OpenAI-compatible client


def test_openai_compat_normal_reply_records_tokens_cost_and_both_orders(server: StubServer) -> None:
    judge = stub_judge(server)
    records = judge.compare(items(2))
    assert server.count == 4
    path, headers, body = server.requests[0]
    assert path == "/v1/chat/completions" and set(body) == {"model", "messages", "temperature", "max_tokens"}
    assert body["model"] == "stub-judge" and body["messages"][0]["role"] == "user"
    # The stub always says [[1]] (pure position bias): the two orders disagree and both records are kept.
    assert [r["winner"] for r in records] == ["model", "reference", "model", "reference"]
    r = records[0]
    assert (r["prompt_tokens"], r["completion_tokens"], r["cached"]) == (1000, 10, False)
    assert r["cost_usd"] == pytest.approx((1000 * 2.0 + 10 * 10.0) / 1e6) and r["latency_s"] > 0
    assert r["judge_id"] == "openai_compat:stub-judge"
    totals = judge.totals()
    assert totals["requests"] == 4 and totals["cached"] == 0 and totals["prompt_tokens"] == 4000
    assert totals["cost_usd"] == pytest.approx(4 * r["cost_usd"])


def test_openai_compat_unparseable_verdict_is_none(server: StubServer) -> None:
    server.reply = lambda body: "Both are fine, hard to say."
    records = stub_judge(server).compare(items(1))
    assert [(r["verdict"], r["winner"]) for r in records] == [(None, None), (None, None)]
    assert records[0]["raw"] == "Both are fine, hard to say."


def test_openai_compat_honours_retry_after_on_429(server: StubServer) -> None:
    server.script.extend(["429"])
    judge = stub_judge(server)
    sleeps: list[float] = []
    judge._sleep = sleeps.append  # record instead of waiting 1 s
    [completion] = judge.chat_many([[{"role": "user", "content": "hi"}]])
    assert completion.text.endswith("[[1]]") and server.count == 2 and sleeps == [1.0]
    assert judge.totals()["retries"] == 1


@pytest.mark.parametrize("behaviour", ["500", "malformed", "nochoices", "slow"])
def test_openai_compat_retries_transient_failures(server: StubServer, behaviour: str) -> None:
    server.script.append(behaviour)
    judge = stub_judge(server, timeout_s=0.2)  # the slow reply takes 0.5 s
    [completion] = judge.chat_many([[{"role": "user", "content": "hi"}]])
    assert completion.text.endswith("[[1]]") and server.count == 2


def test_openai_compat_gives_up_after_retries_naming_url_and_attempts(server: StubServer) -> None:
    server.default = "malformed"
    with pytest.raises(JudgeError, match=r"/v1/chat/completions: giving up after 3 attempts.*malformed"):
        stub_judge(server, max_retries=2).chat_many([[{"role": "user", "content": "hi"}]])
    assert server.count == 3


def test_openai_compat_401_fails_at_once_without_leaking_the_key(
    server: StubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)
    server.default = "401"
    with pytest.raises(JudgeError, match="HTTP 401 .*not retried.*invalid API key") as info:
        stub_judge(server).chat_many([[{"role": "user", "content": "hi"}]])
    assert server.count == 1 and SECRET not in str(info.value)


def test_openai_compat_sends_authorization_only_when_env_var_set(
    server: StubServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    conv = [[{"role": "user", "content": "hi"}]]
    stub_judge(server).chat_many(conv)
    assert "Authorization" not in server.requests[-1][1]
    monkeypatch.setenv(KEY_ENV, SECRET)
    caplog.set_level(logging.DEBUG)
    server.script.extend(["429", "500"])  # retries are logged: the key must not be
    judge = stub_judge(server)
    judge._sleep = lambda s: None
    records = judge.compare(items(1))
    assert all(h.get("Authorization") == f"Bearer {SECRET}" for _, h, _ in server.requests[1:])
    assert "retrying" in caplog.text and SECRET not in caplog.text
    assert SECRET not in json.dumps(records) and SECRET not in repr(judge) and SECRET not in str(vars(judge))


def test_openai_compat_cache_makes_rerun_free_and_identical(server: StubServer, tmp_path) -> None:
    server.reply = lambda body: f"[[{len(body['messages'][0]['content']) % 3}]]"
    cache_path = tmp_path / "judge" / "cache.sqlite"
    first = stub_judge(server, cache_path=cache_path).compare(items(3))
    assert server.count == 6
    judge = stub_judge(server, cache_path=cache_path)
    second = judge.compare(items(3))
    assert server.count == 6  # zero HTTP requests
    assert all(r["cached"] for r in second) and not any(r["cached"] for r in first)
    strip = [{k: v for k, v in r.items() if k != "cached"} for r in first]
    assert strip == [{k: v for k, v in r.items() if k != "cached"} for r in second]  # tokens, cost kept
    assert judge.totals() == {
        "requests": 0,
        "cached": 6,
        "retries": 0,
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "cost_usd": 0.0,
    }
    stub_judge(server, cache_path=cache_path, temperature=0.7).compare(items(1))  # new key: requested again
    assert server.count == 8


def test_openai_compat_interrupted_run_keeps_finished_calls(server: StubServer, tmp_path) -> None:
    cache_path = tmp_path / "cache.sqlite"
    server.fail_after = 3  # the server dies after 3 good replies
    with pytest.raises(JudgeError, match="giving up after 2 attempts"):
        stub_judge(server, cache_path=cache_path, n_concurrent=1, max_retries=1).compare(items(3))
    assert server.count == 5  # 3 good + 2 failed attempts; the queued calls were cancelled
    assert len(JudgeCache(cache_path)) == 3
    server.fail_after, before = None, server.count
    records = stub_judge(server, cache_path=cache_path).compare(items(3))
    assert server.count - before == 3 and [r["cached"] for r in records] == [True] * 3 + [False] * 3


def test_openai_compat_requests_duplicates_once(server: StubServer) -> None:
    conv = [{"role": "user", "content": "same"}]
    out = stub_judge(server).chat_many([conv, conv, [{"role": "user", "content": "other"}]])
    assert server.count == 2 and out[0] == out[1]


def test_openai_compat_concurrency_keeps_input_order(server: StubServer) -> None:
    server.default = "jitter"  # random reply delays, so calls finish out of order
    server.reply = lambda body: f"echo {body['messages'][0]['content']}"
    conversations = [[{"role": "user", "content": f"n={k}"}] for k in range(16)]
    out = stub_judge(server, n_concurrent=4).chat_many(conversations)
    assert [c.text for c in out] == [f"echo n={k}" for k in range(16)]


def test_rate_limiter_spaces_requests_with_a_fake_clock() -> None:
    now = [100.0]
    sleeps: list[float] = []

    def sleep(s: float) -> None:
        sleeps.append(s)
        now[0] += s

    limiter = RateLimiter(60, clock=lambda: now[0], sleep=sleep)
    waits = [limiter.acquire() for _ in range(4)]
    assert waits == pytest.approx([0.0, 1.0, 1.0, 1.0])
    now[0] += 10.0  # idle time refills one token only: no burst afterwards
    assert [limiter.acquire() for _ in range(2)] == pytest.approx([0.0, 1.0])
    assert RateLimiter(0).acquire() == 0.0


def test_rate_limiter_is_shared_by_the_judge_threads(server: StubServer) -> None:
    judge = stub_judge(server, n_concurrent=4, requests_per_minute=1200)  # one start per 0.05 s
    start = time.perf_counter()
    judge.chat_many([[{"role": "user", "content": str(k)}] for k in range(5)])
    assert time.perf_counter() - start >= 4 * 0.05 * 0.9
