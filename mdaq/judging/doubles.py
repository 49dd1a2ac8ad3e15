"""Test doubles for the LLM judge: a seeded hash judge and a length judge, both free, offline and instant.

They reply with verdict *texts*, so the parsing and record code runs exactly as for a real judge.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Sequence

from mdaq.judging.base import (
    DEFAULT_MULTITURN_PROMPT,
    DEFAULT_PROMPT,
    JUDGES,
    Completion,
    Judge,
    JudgeItem,
    JudgeRequest,
)

__all__ = ["FakeJudge", "LengthJudge"]

GARBAGE = "I cannot decide which answer is better."


def _completion(text: str) -> Completion:
    return Completion(text=text, prompt_tokens=0, completion_tokens=0, cost_usd=0.0, latency_s=0.0, cached=False)


def _hash_verdict(*parts: object) -> int:
    """A verdict in {0, 1, 2} from a sha256 of ``parts`` (stable across processes, unlike ``hash``)."""
    payload = json.dumps(parts, ensure_ascii=False, sort_keys=True).encode("utf-8")
    return int.from_bytes(hashlib.sha256(payload).digest()[:8], "big") % 3


class _DoubleJudge(Judge):
    """A judge that decides from the item and order themselves instead of reading the prompt. Registered so that
    tests can build it from a config, but refused by ``params.yaml`` (:func:`mdaq.judging.pipeline_backends`) and
    marked ``invalid`` by the leaderboard: its verdicts are not win rates."""

    is_test_double = True

    def verdict_text(self, item: JudgeItem, order: str) -> str:
        """The judge's reply for ``item`` shown in ``order``."""
        raise NotImplementedError

    def judge_requests(self, requests: Sequence[JudgeRequest]) -> list[Completion]:
        """Reply to each request with :meth:`verdict_text` (no I/O, zero cost)."""
        return [_completion(self.verdict_text(r.item, r.order)) for r in requests]


@JUDGES.register("fake")
class FakeJudge(_DoubleJudge):
    """Deterministic pseudo-random judge: the verdict is a hash of ``(random_state, item_id, order)``.

    Parameters
    ----------
    random_state : int
        Seed; a different seed gives different (but again deterministic) verdicts.
    garbage_ids : collection of str
        Item ids for which the judge replies without a verdict tag (to exercise the unparsed path).
    prompt, multiturn_prompt : str
        Prompt names (recorded, though the double does not read the rendered prompt).
    """

    def __init__(
        self,
        *,
        random_state: int = 0,
        garbage_ids: Collection[str] = (),
        prompt: str = DEFAULT_PROMPT,
        multiturn_prompt: str = DEFAULT_MULTITURN_PROMPT,
    ) -> None:
        super().__init__(prompt=prompt, multiturn_prompt=multiturn_prompt)
        self.random_state = random_state
        self.garbage_ids = frozenset(garbage_ids)
        self.id = f"fake:{random_state}"

    def verdict_text(self, item: JudgeItem, order: str) -> str:
        """``"[[v]]"`` with ``v`` hashed from (seed, item id, order); garbage for ``garbage_ids``."""
        if item.item_id in self.garbage_ids:
            return GARBAGE
        return f"Fake judgment. [[{_hash_verdict(self.random_state, item.item_id, order)}]]"

    def chat_many(self, conversations: Sequence[list[dict[str, str]]]) -> list[Completion]:
        """Generic backend use: a verdict hashed from (seed, conversation), so any caller gets stable replies."""
        return [_completion(f"Fake judgment. [[{_hash_verdict(self.random_state, c)}]]") for c in conversations]


@JUDGES.register("length")
class LengthJudge(_DoubleJudge):
    """Judge that always prefers the longer answer (in characters) and ties on equal length.

    A maximally length-biased judge: a baseline for the length-bias columns of judge validation.

    Parameters
    ----------
    prompt, multiturn_prompt : str
        Prompt names (recorded, though the double does not read the rendered prompt).
    """

    id = "length"

    def verdict_text(self, item: JudgeItem, order: str) -> str:
        """``[[1]]``/``[[2]]`` for the longer answer's position, ``[[0]]`` when both have the same length."""
        n_model, n_reference = len(item.model_answer), len(item.reference_answer)
        if n_model == n_reference:
            return "Same length. [[0]]"
        model_longer = n_model > n_reference
        position = 1 if model_longer == (order == "model_first") else 2
        return f"Answer {position} is longer. [[{position}]]"

    def chat_many(self, conversations: Sequence[list[dict[str, str]]]) -> list[Completion]:
        """Not supported: the length judge needs the answers themselves; use :meth:`compare`."""
        raise NotImplementedError("LengthJudge judges JudgeItems only; call compare(items)")
