"""HTTP plumbing of the judge client: one POST under a total deadline, ``Retry-After``, a shared rate limit, and a
batch of requests that one Ctrl-C or SIGTERM cancels."""

from __future__ import annotations

import datetime
import email.utils
import logging
import math
import re
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ALL_COMPLETED, FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

__all__ = [
    "MAX_RETRY_AFTER_S",
    "Batch",
    "DeadlineExceeded",
    "RateLimiter",
    "Reply",
    "post_json",
    "retry_after_seconds",
]

log = logging.getLogger(__name__)

# A server asking for a longer pause than this is probably misconfigured; waiting hours would stall the run.
MAX_RETRY_AFTER_S = 300.0
# After an interrupt, sockets closed by the client end their requests at once; this only bounds a thread stuck
# elsewhere (a DNS lookup has no timeout).
ABANDON_WAIT_S = 1.0
# How often the main thread wakes up while it waits for a batch, to run signal handlers.
POLL_S = 0.2
_DELTA_SECONDS = re.compile(r"\d+(\.\d+)?")


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header, or None when absent or unusable.

    Delta-seconds (``"120"``; a decimal fraction is accepted) and HTTP dates are read; a date in the past gives
    0; anything over :data:`MAX_RETRY_AFTER_S` is capped. A negative number, ``nan``, ``inf`` or other text gives
    None, and the caller falls back to its own backoff.
    """
    text = (value or "").strip()
    if not text:
        return None
    if _DELTA_SECONDS.fullmatch(text):
        return min(float(text), MAX_RETRY_AFTER_S)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000": UTC, origin unknown (RFC 5322)
        when = when.replace(tzinfo=datetime.UTC)
    seconds = when.timestamp() - (time.time() if now is None else now)
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S) if math.isfinite(seconds) else None


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

    def acquire(self, cancel: threading.Event | None = None) -> float:
        """Wait for a token; returns the seconds waited. A set ``cancel`` event ends the wait early."""
        if self.rate_per_s == 0:
            return 0.0
        with self._lock:
            now = self._clock()
            self._tokens = min(1.0, self._tokens + (now - self._last) * self.rate_per_s)
            self._last = now
            self._tokens -= 1.0
            wait_s = max(0.0, -self._tokens / self.rate_per_s)
        if wait_s > 0 and cancel is not None:
            cancel.wait(wait_s)
        elif wait_s > 0:
            self._sleep(wait_s)
        return wait_s


class DeadlineExceeded(Exception):
    """A request got no complete reply before its deadline (its socket was closed)."""


class _Exchange:
    """The socket of one HTTP request, caught through httpcore's ``trace`` extension, so that a watchdog (the
    deadline) or an interrupt can shut it down: that wakes a thread blocked in a read at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sock: Any = None
        self.killed_by: str | None = None

    def trace(self, event: str, info: dict[str, Any]) -> None:
        if event.endswith(("connect_tcp.complete", "start_tls.complete")) and info.get("return_value") is not None:
            with self._lock:
                self._sock = info["return_value"].get_extra_info("socket")
                if self.killed_by is not None:
                    self._shutdown()

    def kill(self, why: str) -> None:
        with self._lock:
            self.killed_by = self.killed_by or why
            self._shutdown()

    def _shutdown(self) -> None:
        if self._sock is None:
            return
        try:  # the plain socket's method: an SSLSocket's own shutdown() would unwrap it under the reader's feet
            socket.socket.shutdown(self._sock, socket.SHUT_RDWR)
        except OSError:  # already closed
            pass


@dataclass(frozen=True)
class Reply:
    """An HTTP reply read under a deadline: ``body`` holds at most ``max_bytes`` (``complete`` says if all)."""

    status: int
    retry_after: str | None
    body: bytes
    complete: bool
    latency_s: float


def post_json(
    client: Any, url: str, payload: dict, headers: dict[str, str], timeout_s: float, batch: Batch, max_bytes: int
) -> Reply:
    """POST ``payload`` and read the reply, all within ``timeout_s`` (connect, send, wait, every byte).

    httpx's timeouts bound each socket operation, so a server sending a byte now and then keeps a request alive
    for ever; here a timer shuts the socket down at the deadline. ``client`` must not keep connections alive
    (``httpx.Limits(max_keepalive_connections=0)``): the socket is caught when it is opened. Only a DNS lookup
    escapes the deadline (the resolver has no timeout); its socket is shut down as soon as it connects.

    Raises
    ------
    DeadlineExceeded
        When the deadline passed first.
    httpx.TransportError
        On connection errors (also when ``batch`` abandoned the request after an interrupt).
    """
    import httpx

    exchange = _Exchange()
    timer = threading.Timer(timeout_s, exchange.kill, args=("deadline",))
    timer.daemon = True
    start = time.perf_counter()
    batch.track(exchange)
    timer.start()
    try:
        with client.stream(
            "POST", url, json=payload, headers=headers, timeout=timeout_s, extensions={"trace": exchange.trace}
        ) as resp:
            body, complete = _read_capped(resp, max_bytes)
    except httpx.TransportError as e:  # httpx's own timeouts (each socket operation) are the deadline too
        if exchange.killed_by == "deadline" or isinstance(e, httpx.TimeoutException):
            raise DeadlineExceeded(f"no complete reply within timeout_s={timeout_s:g} s") from None
        raise
    finally:
        timer.cancel()
        batch.untrack(exchange)
    return Reply(resp.status_code, resp.headers.get("Retry-After"), body, complete, time.perf_counter() - start)


def _read_capped(resp: Any, max_bytes: int) -> tuple[bytes, bool]:
    """At most ``max_bytes`` of the body, and whether that is all of it."""
    chunks, size = [], 0
    for chunk in resp.iter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size > max_bytes:
            return b"".join(chunks)[:max_bytes], False
    return b"".join(chunks), True


class Batch:
    """Requests run on a thread pool that one interrupt stops.

    On ``KeyboardInterrupt`` (or SIGTERM, turned into ``SystemExit(143)`` while :meth:`run` waits in the main
    thread), queued tasks are cancelled at once; tasks in flight get ``grace_s`` seconds to finish (their
    replies are kept), then their sockets are shut down and the interrupt propagates. A second Ctrl-C skips
    the grace. Tasks check :attr:`cancelled` before each retry and pause on it, so none starts anything new.

    Parameters
    ----------
    grace_s : float
        Seconds that requests in flight may still take after an interrupt.
    """

    def __init__(self, grace_s: float) -> None:
        self.grace_s = grace_s
        self.cancelled = threading.Event()  # an interrupt: start no request, no retry, no pause
        self._no_new = threading.Event()  # a task failed for good: start no new task
        self._lock = threading.Lock()
        self._live: set[_Exchange] = set()

    def track(self, exchange: _Exchange) -> None:
        with self._lock:
            self._live.add(exchange)
        if self.cancelled.is_set():
            exchange.kill("interrupt")

    def untrack(self, exchange: _Exchange) -> None:
        with self._lock:
            self._live.discard(exchange)

    def pause(self, seconds: float) -> None:
        """Sleep, but wake up when the batch is cancelled."""
        self.cancelled.wait(seconds)

    def run(self, tasks: Sequence[Callable[[], None]], n_workers: int) -> None:
        """Run ``tasks`` on ``n_workers`` threads; the first task error cancels the queued tasks, lets running
        ones finish and is raised."""
        pool = ThreadPoolExecutor(n_workers, thread_name_prefix="judge")
        futures: list[Future] = []
        try:
            with _sigterm_raises_exit():
                for task in tasks:
                    futures.append(pool.submit(self._guarded, task))
                _wait_awake(futures, first_exception=True)
                self._no_new.set()
                _wait_awake(futures, first_exception=False)
        except BaseException:
            self._interrupt(futures)
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
        errors = [f.exception() for f in futures if not f.cancelled() and f.exception() is not None]
        if errors:
            raise errors[0]

    def _guarded(self, task: Callable[[], None]) -> None:
        if self._no_new.is_set() or self.cancelled.is_set():
            return
        try:
            task()
        except BaseException:
            self._no_new.set()  # before this thread picks up the next task
            raise

    def _interrupt(self, futures: list[Future]) -> None:
        """Cancel the queue, give the requests in flight ``grace_s``, then shut their sockets."""
        self.cancelled.set()
        self._no_new.set()
        n_queued = sum(f.cancel() for f in futures)
        running = [f for f in futures if not f.done()]
        log.warning(
            "judge interrupted: cancelled %d queued requests; waiting up to %.1f s for %d in flight",
            n_queued,
            self.grace_s,
            len(running),
        )
        try:
            wait(running, timeout=self.grace_s)
        except BaseException:  # a second Ctrl-C: abandon them now
            log.warning("judge interrupted again: abandoning the requests in flight")
        with self._lock:
            live = list(self._live)
        for exchange in live:
            exchange.kill("interrupt")
        wait(running, timeout=ABANDON_WAIT_S)
        log.warning("judge interrupted: %d requests abandoned; every reply that arrived is cached", len(live))


def _wait_awake(futures: list[Future], first_exception: bool) -> None:
    """``concurrent.futures.wait`` in short slices: a signal that another thread received (or
    ``_thread.interrupt_main``) only runs its handler when the main thread wakes up."""
    mode = FIRST_EXCEPTION if first_exception else ALL_COMPLETED
    pending = set(futures)
    while pending:
        done, pending = wait(pending, timeout=POLL_S, return_when=mode)
        if first_exception and any(not f.cancelled() and f.exception() is not None for f in done):
            return


@contextmanager
def _sigterm_raises_exit() -> Iterator[None]:
    """While waiting in the main thread, SIGTERM raises ``SystemExit(143)`` instead of killing the process at
    once, so the batch can cancel and keep what finished. A handler someone else installed is left alone."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        yield
        return

    def handler(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
