"""Judge backed by any OpenAI-compatible ``/chat/completions`` server (vLLM, llama.cpp, OpenAI, ...).

Concurrent, rate-limited, retried with backoff, cached on disk, with token and cost accounting. The API key is
read from the environment at call time and never stored, logged or put in an error message.
"""

from __future__ import annotations

import email.utils
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from mdaq.judging.base import DEFAULT_MULTITURN_PROMPT, DEFAULT_PROMPT, JUDGES, Completion, Judge, JudgeError
from mdaq.judging.cache import JudgeCache, cache_key

__all__ = ["OpenAICompatJudge", "RateLimiter"]

log = logging.getLogger(__name__)

# A server asking for a longer pause than this is probably misconfigured; waiting hours would stall the run.
MAX_RETRY_AFTER_S = 300.0


class RateLimiter:
    """Token bucket shared by threads: at most ``requests_per_minute`` starts per minute, no bursts.

    The bucket holds one token, so requests are spaced ``60 / requests_per_minute`` seconds apart. A caller
    that finds the bucket empty reserves the next token (the count goes negative) and sleeps outside the lock,
    so concurrent callers queue up in order.

    Parameters
    ----------
    requests_per_minute : float
        The rate; 0 means unlimited.
    clock, sleep : callable
        Time source and sleeper (replaceable in tests).
    """

    def __init__(
        self,
        requests_per_minute: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if requests_per_minute < 0:
            raise ValueError(f"requests_per_minute must be >= 0, got {requests_per_minute}")
        self.rate_per_s = requests_per_minute / 60.0
        self._clock, self._sleep = clock, sleep
        self._lock = threading.Lock()
        self._tokens = 1.0
        self._last = clock()

    def acquire(self) -> float:
        """Wait for a token; returns the seconds waited."""
        if self.rate_per_s == 0:
            return 0.0
        with self._lock:
            now = self._clock()
            self._tokens = min(1.0, self._tokens + (now - self._last) * self.rate_per_s)
            self._last = now
            self._tokens -= 1.0
            wait_s = max(0.0, -self._tokens / self.rate_per_s)
        if wait_s > 0:
            self._sleep(wait_s)
        return wait_s


def _retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date); None when absent or invalid."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


@JUDGES.register("openai_compat")
class OpenAICompatJudge(Judge):
    """Pairwise judge calling an OpenAI-compatible chat-completions endpoint.

    Parameters
    ----------
    model : str
        Model name sent to the server; the judge id is ``openai_compat:<model>``.
    base_url : str
        Server root, e.g. ``http://127.0.0.1:8000/v1``; requests go to ``<base_url>/chat/completions``.
    api_key_env : str
        Name of the environment variable holding the API key. Unset or empty: no ``Authorization`` header
        (fine for local servers).
    prompt, multiturn_prompt : str
        Prompt names (``mdaq/judging/prompts/<name>.txt``) for single-turn and ``mt_bench_r2`` items.
    temperature : float
        Sampling temperature (0 for reproducible verdicts).
    max_tokens : int
        Reply length limit.
    timeout_s : float
        Per-request timeout; a timeout is retried.
    max_retries : int
        Retries after the first attempt on connection errors, timeouts, HTTP 429 and 5xx, and malformed replies.
    n_concurrent : int
        Requests in flight at once (threads).
    requests_per_minute : float
        Rate limit shared by all threads; 0 = unlimited.
    price_per_1m_input, price_per_1m_output : float
        USD per million prompt / completion tokens (0 for a local server).
    cache_path : str, Path or None
        sqlite cache file; None keeps the cache in memory for the life of this object.
    backoff_base_s, backoff_max_s : float
        Exponential backoff: attempt ``k`` waits about ``base * 2**(k-1)`` seconds (jittered), at most ``max``.
        A ``Retry-After`` header replaces the backoff (capped at 300 s).
    progress : bool
        Show a tqdm progress bar.
    """

    def __init__(
        self,
        *,
        model: str,
        base_url: str = "http://127.0.0.1:8000/v1",
        api_key_env: str = "MDAQ_JUDGE_API_KEY",
        prompt: str = DEFAULT_PROMPT,
        multiturn_prompt: str = DEFAULT_MULTITURN_PROMPT,
        temperature: float = 0.0,
        max_tokens: int = 1024,
        timeout_s: float = 120.0,
        max_retries: int = 5,
        n_concurrent: int = 8,
        requests_per_minute: float = 0,
        price_per_1m_input: float = 0.0,
        price_per_1m_output: float = 0.0,
        cache_path: str | Path | None = None,
        backoff_base_s: float = 1.0,
        backoff_max_s: float = 60.0,
        progress: bool = True,
    ) -> None:
        super().__init__(prompt=prompt, multiturn_prompt=multiturn_prompt)
        if n_concurrent < 1 or max_retries < 0 or max_tokens < 1 or timeout_s <= 0:
            raise ValueError("judge: need n_concurrent >= 1, max_retries >= 0, max_tokens >= 1, timeout_s > 0")
        self.model, self.base_url, self.api_key_env = model, base_url.rstrip("/"), api_key_env
        self.temperature, self.max_tokens, self.timeout_s = temperature, max_tokens, timeout_s
        self.max_retries, self.n_concurrent = max_retries, n_concurrent
        self.price_per_1m_input, self.price_per_1m_output = price_per_1m_input, price_per_1m_output
        self.cache_path, self.backoff_base_s, self.backoff_max_s = cache_path, backoff_base_s, backoff_max_s
        self.progress = progress
        self.id = f"openai_compat:{model}"
        self._limiter = RateLimiter(requests_per_minute)
        self._sleep: Callable[[float], None] = time.sleep
        self._jitter = random.Random()
        self._lock = threading.Lock()
        self._totals = {"requests": 0, "cached": 0, "retries": 0, "prompt_tokens": 0, "completion_tokens": 0}
        self._cost = 0.0
        self._cache: JudgeCache | None = None

    def __repr__(self) -> str:
        return f"OpenAICompatJudge(model={self.model!r}, base_url={self.base_url!r}, api_key_env={self.api_key_env!r})"

    @property
    def url(self) -> str:
        """The chat-completions endpoint."""
        return f"{self.base_url}/chat/completions"

    @property
    def cache(self) -> JudgeCache:
        """The completion cache, opened on first use (so constructing a judge writes no file)."""
        with self._lock:
            if self._cache is None:
                self._cache = JudgeCache(self.cache_path)
            return self._cache

    def totals(self) -> dict[str, Any]:
        """Running totals of this object: API ``requests`` completed, ``cached`` hits, ``retries``, and the
        tokens and ``cost_usd`` actually spent (cache hits add nothing)."""
        with self._lock:
            return {**self._totals, "cost_usd": self._cost}

    def chat_many(self, conversations: Sequence[list[dict[str, str]]]) -> list[Completion]:
        """Complete every conversation, concurrently, cached; results in input order.

        Identical conversations are requested once. Each finished call is cached at once, so after an error
        (raised when the first conversation exhausts its retries; queued calls are then cancelled) a rerun
        requests only what is missing.

        Raises
        ------
        JudgeError
            On a non-retryable HTTP status or when retries are exhausted.
        """
        keys = [cache_key(self.id, self.temperature, self.max_tokens, c) for c in conversations]
        results: dict[str, Completion] = {}
        todo: dict[str, list[dict[str, str]]] = {}
        for key, conversation in zip(keys, conversations, strict=True):
            if key in results or key in todo:
                continue
            hit = self.cache.get(key)
            if hit is not None:
                results[key] = hit
            else:
                todo[key] = conversation
        with self._lock:
            self._totals["cached"] += len(results)
        if todo:
            results.update(self._request_all(todo))
        return [results[key] for key in keys]

    def _request_all(self, todo: dict[str, list[dict[str, str]]]) -> dict[str, Completion]:
        """Request each uncached conversation in a thread pool; cache each result as it arrives."""
        import httpx
        from tqdm.auto import tqdm

        out: dict[str, Completion] = {}
        bar = tqdm(total=len(todo), desc=f"judge {self.model}", unit="call", disable=not self.progress)
        timeout = httpx.Timeout(self.timeout_s)
        failed = threading.Event()
        with httpx.Client(timeout=timeout) as client, ThreadPoolExecutor(self.n_concurrent) as pool:

            def one(key: str, messages: list[dict[str, str]]) -> None:
                if failed.is_set():  # a call already failed for good: start nothing new
                    return
                try:
                    completion = self._post(client, messages)
                except BaseException:
                    failed.set()
                    raise
                self.cache.put(key, self.id, completion)
                out[key] = completion
                bar.update(1)

            futures: list[Future] = [pool.submit(one, k, m) for k, m in todo.items()]
            done, pending = wait(futures, return_when=FIRST_EXCEPTION)
            for f in pending:
                f.cancel()
            wait(pending)  # calls already running finish (and are cached) before the error propagates
            bar.close()
            for f in done:
                if f.exception() is not None:
                    raise f.exception()
        return out

    def _headers(self) -> dict[str, str]:
        key = os.environ.get(self.api_key_env, "")
        return {"Authorization": f"Bearer {key}"} if key else {}

    def _redact(self, text: str) -> str:
        """``text`` with the API key (if any) replaced, for error messages that echo server replies."""
        key = os.environ.get(self.api_key_env, "")
        return text.replace(key, "***") if key else text

    def _post(self, client: Any, messages: list[dict[str, str]]) -> Completion:
        """One conversation with retries; returns the completion or raises :class:`JudgeError`."""
        payload = {
            "model": self.model,
            "messages": messages,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
        }
        n_attempts = self.max_retries + 1
        for attempt in range(1, n_attempts + 1):
            self._limiter.acquire()
            completion, last, retry_after = self._attempt(client, payload)
            if completion is not None:
                return completion
            if attempt < n_attempts:
                delay = self._delay(attempt, retry_after)
                why = self._redact(last)[:200]
                log.warning(
                    "POST %s attempt %d/%d failed (%s); retrying in %.2f s", self.url, attempt, n_attempts, why, delay
                )
                with self._lock:
                    self._totals["retries"] += 1
                self._sleep(delay)
        raise JudgeError(self._redact(f"POST {self.url}: giving up after {n_attempts} attempts; last error: {last}"))

    def _attempt(self, client: Any, payload: dict[str, Any]) -> tuple[Completion | None, str, str | None]:
        """One POST: ``(completion, "", None)``, or ``(None, why, Retry-After header)`` on a retryable failure.

        Connection errors, timeouts, HTTP 429 and 5xx, and replies without ``choices[0].message.content`` are
        retryable; any other HTTP error raises :class:`JudgeError` at once.
        """
        import httpx

        start = time.perf_counter()
        try:
            resp = client.post(self.url, json=payload, headers=self._headers())
        except httpx.TransportError as e:  # connection refused/reset, timeouts, protocol errors
            return None, f"{type(e).__name__}: {e}", None
        if resp.status_code == 429 or resp.status_code >= 500:
            return None, f"HTTP {resp.status_code}: {resp.text[:300]}", resp.headers.get("Retry-After")
        if not resp.is_success:
            msg = f"POST {self.url} failed with HTTP {resp.status_code} (not retried): {resp.text[:500]}"
            raise JudgeError(self._redact(msg))
        try:
            return self._completion(resp.json(), time.perf_counter() - start), "", None
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as e:
            return None, f"malformed response ({type(e).__name__}: {e})", None

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        """Seconds before the next attempt: the server's ``Retry-After`` if given, else jittered exponential."""
        delay = _retry_after(retry_after)
        if delay is None:
            delay = min(self.backoff_max_s, self.backoff_base_s * 2 ** (attempt - 1))
            delay *= 0.5 + 0.5 * self._jitter.random()  # jitter de-synchronises the threads
        return delay

    def _completion(self, data: dict[str, Any], latency_s: float) -> Completion:
        """Parse a chat-completions reply and count its tokens and cost."""
        text = data["choices"][0]["message"]["content"]
        if not isinstance(text, str):
            raise TypeError(f"message content is {type(text).__name__}, not str")
        usage = data.get("usage") or {}
        prompt_tokens = int(usage.get("prompt_tokens") or 0)
        completion_tokens = int(usage.get("completion_tokens") or 0)
        cost = (prompt_tokens * self.price_per_1m_input + completion_tokens * self.price_per_1m_output) / 1e6
        with self._lock:
            self._totals["requests"] += 1
            self._totals["prompt_tokens"] += prompt_tokens
            self._totals["completion_tokens"] += completion_tokens
            self._cost += cost
        return Completion(text, prompt_tokens, completion_tokens, cost, latency_s, cached=False)
