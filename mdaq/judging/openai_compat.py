"""Judge backed by any OpenAI-compatible ``/chat/completions`` server (vLLM, llama.cpp, OpenAI, ...).

Concurrent, rate-limited, retried with backoff, cached on disk, with token and cost accounting. The API key is
read from the environment at call time and never stored, logged or put in a message; server replies are redacted
before they are quoted (:mod:`mdaq.judging.secrets`). Each request has a total deadline, and one Ctrl-C or
SIGTERM stops a batch (:mod:`mdaq.judging.transport`).
"""

from __future__ import annotations

import functools
import json
import logging
import math
import random
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mdaq.judging.base import DEFAULT_MULTITURN_PROMPT, DEFAULT_PROMPT, JUDGES, Completion, Judge, JudgeError
from mdaq.judging.cache import JudgeCache, cache_key
from mdaq.judging.secrets import Redactor, credential_secrets, read_api_key, split_url_credentials
from mdaq.judging.transport import (
    Batch,
    DeadlineExceeded,
    RateLimiter,
    post_json,
    retry_after_seconds,
)

__all__ = ["OpenAICompatJudge", "RateLimiter"]

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({408, 425, 429})  # request timeout, too early, too many requests; and every 5xx
MAX_REPLY_BYTES = 1 << 20  # a verdict is a few kB; a longer reply is malformed (and not read into memory)
ERROR_CHARS = 300  # of a server's error body quoted in a message, after redaction


@dataclass(frozen=True)
class _Session:
    """What the requests of one batch share: the HTTP client, the headers, the redactor, the interrupt."""

    client: Any
    headers: dict[str, str]
    redactor: Redactor
    batch: Batch


@JUDGES.register("openai_compat")
class OpenAICompatJudge(Judge):
    """Pairwise judge calling an OpenAI-compatible chat-completions endpoint.

    Parameters
    ----------
    model : str
        Model name sent to the server; the judge id is ``openai_compat:<model>``.
    base_url : str
        Server root, e.g. ``http://127.0.0.1:8000/v1``; requests go to ``<base_url>/chat/completions``.
        Credentials in it (``http://user:password@host/v1``) are sent as HTTP basic auth and shown as ``***``.
    api_key_env : str
        Name of the environment variable holding the API key (surrounding whitespace is stripped; a key with
        whitespace or a non-ASCII character inside is refused). Unset or empty: no ``Authorization`` header
        (fine for local servers).
    prompt, multiturn_prompt : str
        Prompt names (``mdaq/judging/prompts/<name>.txt``) for single-turn and ``mt_bench_r2`` items.
    temperature : float
        Sampling temperature (0 for reproducible verdicts).
    max_tokens : int
        Reply length limit.
    timeout_s : float
        Total deadline of one request, from connecting to the reply's last byte; a request past it is
        abandoned and retried.
    max_retries : int
        Retries after the first attempt on connection errors, deadlines, HTTP 408, 425, 429 and 5xx, and
        malformed replies. Other HTTP errors, a reply that echoes the credentials and invalid token counts
        fail at once.
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
        A usable ``Retry-After`` header replaces the backoff (capped at 300 s; see
        :func:`mdaq.judging.transport.retry_after_seconds`).
    cancel_grace_s : float
        After a Ctrl-C or SIGTERM, how long requests already in flight may still finish (their replies are
        cached); queued ones are cancelled at once, and a second Ctrl-C abandons the rest.
    progress : bool
        Show a tqdm progress bar.

    Notes
    -----
    How long a call can take, with T = ``timeout_s``, R = ``max_retries`` and B = max(``backoff_max_s``, 300 s
    when the server sends ``Retry-After``):

    - one conversation: at most (R + 1) T + R B, plus the rate limiter's spacing;
    - :meth:`chat_many` on N new conversations: at most ceil(N / ``n_concurrent``) times that; the first
      conversation that fails for good stops new ones from starting;
    - after a Ctrl-C or SIGTERM: at most ``cancel_grace_s`` plus about a second.

    With the default profile's ``timeout_s: 120`` and ``max_retries: 6`` a conversation waits at most 7 x 120 s
    + 6 x 300 s = 44 min against a server that always asks for the longest pause, and 7 x 120 s + 63 s = 15 min
    when it sends no ``Retry-After``.
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
        cancel_grace_s: float = 10.0,
        progress: bool = True,
    ) -> None:
        super().__init__(prompt=prompt, multiturn_prompt=multiturn_prompt)
        limits = (n_concurrent >= 1, max_retries >= 0, max_tokens >= 1, 0 < timeout_s < math.inf, 0 <= cancel_grace_s)
        if not all(limits) or not math.isfinite(cancel_grace_s):
            raise ValueError(
                "judge: need n_concurrent >= 1, max_retries >= 0, max_tokens >= 1, 0 < timeout_s < inf and "
                f"0 <= cancel_grace_s < inf (got {n_concurrent}, {max_retries}, {max_tokens}, {timeout_s}, "
                f"{cancel_grace_s})"
            )
        clean_url, shown_url, self._auth = split_url_credentials(base_url.rstrip("/"))
        self.model, self.base_url, self.api_key_env = model, shown_url, api_key_env
        self._endpoint = f"{clean_url}/chat/completions"
        if self._auth is not None:
            log.warning(
                "judge: base_url %s carries credentials; they are sent as HTTP basic auth and never printed, "
                "but params files are committed: an API key in $%s is safer",
                shown_url,
                api_key_env,
            )
        self.temperature, self.max_tokens, self.timeout_s = temperature, max_tokens, timeout_s
        self.max_retries, self.n_concurrent, self.cancel_grace_s = max_retries, n_concurrent, cancel_grace_s
        self.price_per_1m_input, self.price_per_1m_output = price_per_1m_input, price_per_1m_output
        self.cache_path, self.backoff_base_s, self.backoff_max_s = cache_path, backoff_base_s, backoff_max_s
        self.progress = progress
        self.id = f"openai_compat:{model}"
        self._limiter = RateLimiter(requests_per_minute)
        self._sleep: Callable[[float], None] | None = None  # tests record pauses here; None: the batch's pause
        self._jitter = random.Random()
        self._lock = threading.Lock()
        self._totals = {"requests": 0, "cached": 0, "retries": 0, "prompt_tokens": 0, "completion_tokens": 0}
        self._cost = 0.0
        self._cache: JudgeCache | None = None
        self._ssl: Any = None

    def __repr__(self) -> str:
        return f"OpenAICompatJudge(model={self.model!r}, base_url={self.base_url!r}, api_key_env={self.api_key_env!r})"

    @property
    def url(self) -> str:
        """The chat-completions endpoint, as shown in messages (credentials replaced by ``***``)."""
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
        (raised when the first conversation fails for good; queued calls are then cancelled) or an interrupt a
        rerun requests only what is missing.

        Raises
        ------
        JudgeError
            On a non-retryable HTTP status, exhausted retries, a bad API key, a reply that echoes the
            credentials, or invalid token counts.
        KeyboardInterrupt, SystemExit
            On Ctrl-C, or SIGTERM (``SystemExit(143)``), after cancelling the queued calls.
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

    def _ssl_context(self) -> Any:
        """httpx's default TLS context (certifi, or ``$SSL_CERT_FILE``), built once: loading the certificates
        takes ~0.1 s, which every :meth:`chat_many` call paid before."""
        import httpx

        with self._lock:
            if self._ssl is None:
                self._ssl = httpx.create_ssl_context()
            return self._ssl

    def _open_session(self, client: Any, batch: Batch) -> _Session:
        """Read the key (refusing a malformed one before any request) and set up what the batch shares."""
        key = read_api_key(self.api_key_env)
        if key and self._auth is not None:
            raise JudgeError(
                f"judge: base_url carries credentials and ${self.api_key_env} holds an API key; keep one of them"
            )
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return _Session(client, headers, Redactor([key, *credential_secrets(self._auth)]), batch)

    def _request_all(self, todo: dict[str, list[dict[str, str]]]) -> dict[str, Completion]:
        """Request each uncached conversation in a thread pool; cache each result as it arrives."""
        import httpx
        from tqdm.auto import tqdm

        out: dict[str, Completion] = {}
        batch = Batch(self.cancel_grace_s)
        limits = httpx.Limits(max_keepalive_connections=0)  # one socket per request: the deadline closes it
        with httpx.Client(limits=limits, auth=self._auth, verify=self._ssl_context()) as client:
            session = self._open_session(client, batch)
            bar = tqdm(total=len(todo), desc=f"judge {self.model}", unit="call", disable=not self.progress)

            def one(key: str, messages: list[dict[str, str]]) -> None:
                completion = self._post(session, messages)
                if completion is not None:  # None: cancelled by an interrupt
                    self.cache.put(key, self.id, completion)
                    out[key] = completion
                    bar.update(1)

            try:
                batch.run([functools.partial(one, k, m) for k, m in todo.items()], self.n_concurrent)
            finally:
                bar.close()
        return out

    def _post(self, session: _Session, messages: list[dict[str, str]]) -> Completion | None:
        """One conversation with retries: the completion, None when the batch was cancelled, or
        :class:`JudgeError`."""
        payload = {
            "model": self.model,
            "messages": messages,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
        }
        n_attempts, cancelled = self.max_retries + 1, session.batch.cancelled
        last = ""
        for attempt in range(1, n_attempts + 1):
            self._limiter.acquire(cancel=cancelled)
            if cancelled.is_set():
                return None
            completion, last, retry_after = self._attempt(session, payload)
            if completion is not None:
                return completion
            if attempt < n_attempts and not cancelled.is_set():
                delay = self._delay(attempt, retry_after)
                log.warning(
                    "POST %s attempt %d/%d failed (%s); retrying in %.2f s", self.url, attempt, n_attempts, last, delay
                )
                with self._lock:
                    self._totals["retries"] += 1
                (self._sleep or session.batch.pause)(delay)
        if cancelled.is_set():
            return None
        raise JudgeError(f"POST {self.url}: giving up after {n_attempts} attempts; last error: {last}")

    def _attempt(self, session: _Session, payload: dict[str, Any]) -> tuple[Completion | None, str, str | None]:
        """One POST: ``(completion, "", None)``, or ``(None, why, Retry-After header)`` on a retryable failure.

        ``why`` is redacted, then cut. Connection errors, the deadline, HTTP 408, 425, 429 and 5xx, and replies
        without ``choices[0].message.content`` are retryable; other HTTP errors, replies that echo a secret and
        invalid token counts raise :class:`JudgeError` at once.
        """
        import httpx

        clip = session.redactor.clip
        try:
            reply = post_json(
                session.client,
                self._endpoint,
                payload,
                session.headers,
                self.timeout_s,
                session.batch,
                MAX_REPLY_BYTES,
            )
        except DeadlineExceeded as e:
            return None, f"{e} (a total deadline per request)", None
        except httpx.TransportError as e:  # connection refused/reset, protocol errors, abandoned after an interrupt
            return None, clip(f"{type(e).__name__}: {e}", ERROR_CHARS), None
        text = reply.body.decode("utf-8", errors="replace")
        if reply.status in RETRY_STATUSES or reply.status >= 500:
            return None, f"HTTP {reply.status}: {clip(text, ERROR_CHARS)}", reply.retry_after
        if not 200 <= reply.status < 300:
            raise JudgeError(f"POST {self.url} failed with HTTP {reply.status} (not retried): {clip(text, 500)}")
        if not reply.complete:
            return None, f"malformed response (longer than {MAX_REPLY_BYTES} bytes)", None
        try:
            data = json.loads(text)
            self._refuse_echoed_secrets(session.redactor, text, data)
            return self._completion(data, reply.latency_s), "", None
        except (ValueError, RecursionError, KeyError, IndexError, TypeError, AttributeError) as e:
            return None, clip(f"malformed response ({type(e).__name__}: {e})", ERROR_CHARS), None

    def _refuse_echoed_secrets(self, redactor: Redactor, text: str, data: Any) -> None:
        """A reply holding the key (or URL credentials, or a fragment) would reach the cache and the judgment
        files: refuse it, naming no secret."""
        if redactor.found_in(text) or redactor.found_in(json.dumps(data, ensure_ascii=False)):
            raise JudgeError(
                f"POST {self.url}: the reply contains the API key or the URL credentials (or 8+ characters of "
                "them): the server or a proxy echoes them; the reply was neither used nor cached"
            )

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        """Seconds before the next attempt: the server's ``Retry-After`` if usable, else jittered exponential."""
        delay = retry_after_seconds(retry_after)
        if delay is None:
            delay = min(self.backoff_max_s, self.backoff_base_s * 2 ** (attempt - 1))
            delay *= 0.5 + 0.5 * self._jitter.random()  # jitter de-synchronises the threads
        return delay

    def _completion(self, data: dict[str, Any], latency_s: float) -> Completion:
        """Parse a chat-completions reply and count its tokens and cost."""
        text = data["choices"][0]["message"]["content"]
        if not isinstance(text, str):
            raise TypeError(f"message content is {type(text).__name__}, not str")
        prompt_tokens, completion_tokens = self._token_counts(data.get("usage"))
        cost = (prompt_tokens * self.price_per_1m_input + completion_tokens * self.price_per_1m_output) / 1e6
        with self._lock:
            self._totals["requests"] += 1
            self._totals["prompt_tokens"] += prompt_tokens
            self._totals["completion_tokens"] += completion_tokens
            self._cost += cost
        return Completion(text, prompt_tokens, completion_tokens, cost, latency_s, cached=False)

    def _token_counts(self, usage: Any) -> tuple[int, int]:
        """``(prompt_tokens, completion_tokens)`` of a reply's ``usage``; a missing count is 0.

        Raises
        ------
        JudgeError
            If ``usage`` is not an object or a count is not a non-negative integer (negative, NaN, 1.5, "12",
            true): cost accounting would go wrong silently, so the reply is refused before it is cached.
        """
        if usage is None:
            return 0, 0
        if not isinstance(usage, dict):
            raise JudgeError(f"POST {self.url}: the reply's usage is {type(usage).__name__}, not an object")
        counts = []
        for field in ("prompt_tokens", "completion_tokens"):
            value = usage.get(field)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise JudgeError(
                    f"POST {self.url}: the reply's usage.{field} is {str(value)[:40]!r}, not a non-negative "
                    "integer; the reply was not cached"
                )
            counts.append(value or 0)
        return counts[0], counts[1]
