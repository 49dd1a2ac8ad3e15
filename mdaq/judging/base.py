"""Pairwise LLM judging: items, prompts, verdict parsing and the both-orders protocol that writes judgment records."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, ClassVar, Protocol, runtime_checkable

from mdaq.registry import Registry

__all__ = [
    "BENCHMARKS",
    "JUDGES",
    "ORDERS",
    "RECORD_KEYS",
    "ChatBackend",
    "Completion",
    "Judge",
    "JudgeError",
    "JudgeItem",
    "JudgeRequest",
    "Prompt",
    "build_conversation",
    "judge_both_orders",
    "load_prompt",
    "parse_verdict",
    "winner_of",
]

JUDGES: Registry = Registry("judge")

BENCHMARKS = ("alpaca_eval", "mt_bench_r1", "mt_bench_r2")
ORDERS = ("model_first", "reference_first")
DEFAULT_PROMPT = "judge_pairwise_v1"
DEFAULT_MULTITURN_PROMPT = "judge_pairwise_multiturn_v1"

# The keys of one judgment record, in this order (the win-rate code reads them).
RECORD_KEYS = (
    "benchmark",
    "lang",
    "item_id",
    "model",
    "reference",
    "order",
    "verdict",
    "winner",
    "raw",
    "judge_id",
    "prompt_version",
    "prompt_sha",
    "model_len",
    "reference_len",
    "model_lang",
    "reference_lang",
    "target_lang",
    "prompt_tokens",
    "completion_tokens",
    "cost_usd",
    "latency_s",
    "cached",
)


class JudgeError(RuntimeError):
    """A judge call failed for good (a non-retryable HTTP status, or retries exhausted)."""


@dataclass(frozen=True)
class JudgeItem:
    """One pairwise comparison: a model's answer against a reference answer to the same prompt.

    Parameters
    ----------
    item_id : str
        Id of the benchmark prompt (AlpacaEval index, MT-Bench ``question_id``).
    lang : str
        Target language (ISO 639-1); the language the answers should be written in.
    benchmark : str
        ``"alpaca_eval"``, ``"mt_bench_r1"`` (turn 1) or ``"mt_bench_r2"`` (turn 2).
    instruction : str
        The user's prompt; for ``mt_bench_r2`` the turn-2 question.
    model_answer, reference_answer : str
        The two answers being compared (for ``mt_bench_r2``, the turn-2 answers).
    history : tuple
        Earlier turns as ``(question, model_answer, reference_answer)`` triples; empty except for
        ``mt_bench_r2``, where it holds turn 1 so that the judge sees each assistant's whole dialogue.
    model, reference : str
        Names of the two systems (copied to the records, never shown to the judge).
    model_lang, reference_lang : str or None
        Detected languages of the answers (copied to the records).
    """

    item_id: str
    lang: str
    benchmark: str
    instruction: str
    model_answer: str
    reference_answer: str
    history: tuple = ()
    model: str = ""
    reference: str = ""
    model_lang: str | None = None
    reference_lang: str | None = None

    def __post_init__(self) -> None:
        # JSON gives lists; store tuples so items stay hashable and compare equal however they were built.
        object.__setattr__(self, "history", tuple(tuple(turn) for turn in self.history))
        if self.benchmark not in BENCHMARKS:
            raise ValueError(f"JudgeItem {self.item_id!r}: benchmark {self.benchmark!r} not in {BENCHMARKS}")
        if any(len(turn) != 3 for turn in self.history):
            raise ValueError(f"JudgeItem {self.item_id!r}: history entries must be (question, model, reference)")
        if self.benchmark == "mt_bench_r2" and not self.history:
            raise ValueError(f"JudgeItem {self.item_id!r}: mt_bench_r2 needs the turn-1 history")


@dataclass(frozen=True)
class Completion:
    """One chat completion with its accounting.

    ``cost_usd`` and ``latency_s`` are those of the original API call, also when ``cached`` is true (a cache hit
    costs nothing now; the record still says what the judgment cost to make).
    """

    text: str
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    latency_s: float
    cached: bool


@runtime_checkable
class ChatBackend(Protocol):
    """Anything that turns OpenAI-style conversations into completions, in input order."""

    id: str

    def chat_many(self, conversations: Sequence[list[dict[str, str]]]) -> list[Completion]: ...


@dataclass(frozen=True)
class Prompt:
    """A judge prompt template loaded from ``mdaq/judging/prompts/<name>.txt``.

    Placeholders are ``{name}``; :meth:`render` fills them in one pass, so braces inside the filled-in answers
    are never interpreted.
    """

    name: str
    text: str

    @property
    def sha(self) -> str:
        """First 12 hex digits of the sha256 of the template text."""
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()[:12]

    def render(self, **values: str) -> str:
        """Fill the placeholders; a placeholder without a value is an error naming the prompt."""

        def fill(m: re.Match) -> str:
            if m.group(1) not in values:
                raise KeyError(f"prompt {self.name!r} needs a value for {{{m.group(1)}}}")
            return values[m.group(1)]

        return re.sub(r"\{([a-z0-9_]+)\}", fill, self.text)


@cache
def load_prompt(name: str) -> Prompt:
    """Load a prompt shipped as package data (``mdaq/judging/prompts/<name>.txt``).

    Raises
    ------
    KeyError
        If no such prompt exists; the message lists the available ones.
    """
    folder = resources.files("mdaq.judging").joinpath("prompts")
    available = sorted(p.name[:-4] for p in folder.iterdir() if p.name.endswith(".txt"))
    if name not in available:
        raise KeyError(f"unknown judge prompt {name!r}; available: {', '.join(available)}")
    return Prompt(name=name, text=folder.joinpath(f"{name}.txt").read_text(encoding="utf-8"))


_VERDICT = re.compile(r"\[\[\s*([012])\s*\]\]")


def parse_verdict(text: str | None) -> int | None:
    """The position verdict in a judge reply: ``[[1]]`` -> 1, ``[[2]]`` -> 2, ``[[0]]`` (tie) -> 0.

    Whitespace inside the brackets is allowed (``[[ 1 ]]``). A tag repeated with the same value counts once
    (judges often restate their verdict). No tag, or tags with different values, gives ``None``: an ambiguous
    reply is never guessed, it is counted as unparsed downstream.
    """
    found = set(_VERDICT.findall(text or ""))
    return int(found.pop()) if len(found) == 1 else None


def winner_of(verdict: int | None, order: str) -> str | None:
    """Map a position verdict to ``"model" | "reference" | "tie" | None`` given the order it was shown in."""
    if order not in ORDERS:
        raise ValueError(f"order {order!r} not in {ORDERS}")
    if verdict is None:
        return None
    if verdict == 0:
        return "tie"
    first, second = ("model", "reference") if order == "model_first" else ("reference", "model")
    return first if verdict == 1 else second


def _dialogue(item: JudgeItem, side: int) -> str:
    """One assistant's whole conversation (``side`` 1 = the model's, 2 = the reference's), as tagged turns."""
    turns = [*item.history, (item.instruction, item.model_answer, item.reference_answer)]
    parts = []
    for k, (question, *answers) in enumerate(turns, start=1):
        parts.append(f'<user turn="{k}">\n{question}\n</user>')
        parts.append(f'<assistant turn="{k}">\n{answers[side - 1]}\n</assistant>')
    return "\n".join(parts)


def build_conversation(item: JudgeItem, order: str, prompt: Prompt) -> list[dict[str, str]]:
    """The judge conversation for one item shown in one order (a single user message).

    ``order="model_first"`` shows the model's answer (or dialogue) as number 1, ``"reference_first"`` as
    number 2. Single-turn prompts use ``{instruction}``, ``{answer_1}``, ``{answer_2}``; multi-turn prompts
    use ``{dialogue_1}``, ``{dialogue_2}``; both may use ``{lang}``.
    """
    if order not in ORDERS:
        raise ValueError(f"order {order!r} not in {ORDERS}")
    first, second = (1, 2) if order == "model_first" else (2, 1)
    answers = (item.model_answer, item.reference_answer)
    values = {
        "lang": item.lang,
        "instruction": item.instruction,
        "answer_1": answers[first - 1],
        "answer_2": answers[second - 1],
        "dialogue_1": _dialogue(item, first),
        "dialogue_2": _dialogue(item, second),
    }
    return [{"role": "user", "content": prompt.render(**values)}]


@dataclass(frozen=True)
class JudgeRequest:
    """One (item, order) pair with the prompt it is judged by and the conversation sent to the judge."""

    item: JudgeItem
    order: str
    prompt: Prompt
    messages: list[dict[str, str]]


class Judge:
    """Base class of pairwise judges.

    Subclasses implement :meth:`chat_many` (the :class:`ChatBackend` protocol) and set ``id``. Test doubles may
    instead override :meth:`judge_requests`, which sees the items themselves.

    Parameters
    ----------
    prompt : str
        Prompt for single-turn items (``alpaca_eval``, ``mt_bench_r1``).
    multiturn_prompt : str
        Prompt for ``mt_bench_r2`` items.
    """

    version: ClassVar[str] = "1"
    is_test_double: ClassVar[bool] = False  # True: decides without a language model; never reaches a leaderboard
    id: str = "judge"

    def __init__(self, *, prompt: str = DEFAULT_PROMPT, multiturn_prompt: str = DEFAULT_MULTITURN_PROMPT) -> None:
        self.prompt = load_prompt(prompt)
        self.multiturn_prompt = load_prompt(multiturn_prompt)

    @property
    def prompt_version(self) -> str:
        """Name of the single-turn prompt (records carry the name of the prompt actually used)."""
        return self.prompt.name

    @property
    def prompt_sha(self) -> str:
        """sha256 prefix of the single-turn prompt text."""
        return self.prompt.sha

    def prompt_for(self, item: JudgeItem) -> Prompt:
        """The multi-turn prompt for ``mt_bench_r2``, the single-turn prompt otherwise."""
        return self.multiturn_prompt if item.benchmark == "mt_bench_r2" else self.prompt

    def chat_many(self, conversations: Sequence[list[dict[str, str]]]) -> list[Completion]:
        """Complete each conversation; results in input order."""
        raise NotImplementedError(f"{type(self).__name__} does not implement chat_many")

    def judge_requests(self, requests: Sequence[JudgeRequest]) -> list[Completion]:
        """Complete the judge conversations of ``requests`` (default: one :meth:`chat_many` call for all)."""
        return self.chat_many([r.messages for r in requests])

    def compare(self, items: Sequence[JudgeItem]) -> list[dict[str, Any]]:
        """Judge every item in both orders; see :func:`judge_both_orders`."""
        return judge_both_orders(self, items)


def judge_both_orders(judge: Judge, items: Sequence[JudgeItem]) -> list[dict[str, Any]]:
    """Judge each item twice, model answer first and reference answer first, in one batch.

    All ``2 * len(items)`` conversations go to the judge in one call, so its concurrency and cache apply to
    the whole batch. The two orders are kept as separate records even when they disagree; combining them
    (and counting unparsed verdicts) is the win-rate code's job.

    Parameters
    ----------
    judge : Judge
        The judge.
    items : sequence of JudgeItem
        The comparisons.

    Returns
    -------
    list of dict
        One record per (item, order), items in input order, ``model_first`` before ``reference_first``,
        with the keys :data:`RECORD_KEYS`.
    """
    requests = []
    for item in items:
        prompt = judge.prompt_for(item)
        requests += [JudgeRequest(item, order, prompt, build_conversation(item, order, prompt)) for order in ORDERS]
    completions = judge.judge_requests(requests)
    if len(completions) != len(requests):
        raise JudgeError(f"judge {judge.id} returned {len(completions)} completions for {len(requests)} requests")
    return [_record(judge, r, c) for r, c in zip(requests, completions, strict=True)]


def _record(judge: Judge, request: JudgeRequest, completion: Completion) -> dict[str, Any]:
    """One judgment record (see :data:`RECORD_KEYS`)."""
    item, verdict = request.item, parse_verdict(completion.text)
    return {
        "benchmark": item.benchmark,
        "lang": item.lang,
        "item_id": item.item_id,
        "model": item.model,
        "reference": item.reference,
        "order": request.order,
        "verdict": verdict,
        "winner": winner_of(verdict, request.order),
        "raw": completion.text,
        "judge_id": judge.id,
        "prompt_version": request.prompt.name,
        "prompt_sha": request.prompt.sha,
        "model_len": len(item.model_answer),
        "reference_len": len(item.reference_answer),
        "model_lang": item.model_lang,
        "reference_lang": item.reference_lang,
        "target_lang": item.lang,
        "prompt_tokens": completion.prompt_tokens,
        "completion_tokens": completion.completion_tokens,
        "cost_usd": completion.cost_usd,
        "latency_s": completion.latency_s,
        "cached": completion.cached,
    }
