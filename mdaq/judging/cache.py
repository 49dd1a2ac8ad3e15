"""Persistent completion cache for judges: one sqlite file, keyed by a hash of everything that changes a reply."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

from mdaq.judging.base import Completion

__all__ = ["JudgeCache", "cache_key"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS completions (
    key TEXT PRIMARY KEY,
    judge_id TEXT NOT NULL,
    text TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    cost_usd REAL NOT NULL,
    latency_s REAL NOT NULL,
    created TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
)
"""


def cache_key(judge_id: str, temperature: float, max_tokens: int, messages: list[dict[str, str]]) -> str:
    """sha256 (hex) of the canonical JSON of the request.

    The messages hold the whole rendered prompt, so a changed prompt template (hence ``prompt_sha``) changes
    the key without being listed separately. The server URL is left out on purpose: the same model served
    elsewhere gives the same answers.
    """
    payload = {"judge_id": judge_id, "temperature": temperature, "max_tokens": max_tokens, "messages": messages}
    canonical = json.dumps(payload, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class JudgeCache:
    """Thread-safe completion store; ``path=None`` keeps it in memory (lost at exit).

    Every :meth:`put` is committed at once (autocommit, WAL journal), so an interrupted run keeps every
    completion that finished. One connection is shared by all threads behind a lock: sqlite serialises
    writes anyway, and a judge call takes far longer than a lookup.

    Parameters
    ----------
    path : str, Path or None
        The sqlite file (created with its parent folders), or None for an in-memory cache.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = None if path is None else Path(path)
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        target = ":memory:" if self.path is None else str(self.path)
        # isolation_level=None: autocommit, each INSERT is durable on return.
        self._conn = sqlite3.connect(target, check_same_thread=False, isolation_level=None)
        if self.path is not None:
            self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute(_SCHEMA)

    def get(self, key: str) -> Completion | None:
        """The stored completion (``cached=True``, original tokens, cost and latency), or None."""
        with self._lock:
            row = self._conn.execute(
                "SELECT text, prompt_tokens, completion_tokens, cost_usd, latency_s FROM completions WHERE key = ?",
                (key,),
            ).fetchone()
        if row is None:
            return None
        text, prompt_tokens, completion_tokens, cost_usd, latency_s = row
        return Completion(text, prompt_tokens, completion_tokens, cost_usd, latency_s, cached=True)

    def put(self, key: str, judge_id: str, completion: Completion) -> None:
        """Store (or replace) one completion; committed before returning."""
        values: tuple[Any, ...] = (
            key,
            judge_id,
            completion.text,
            completion.prompt_tokens,
            completion.completion_tokens,
            completion.cost_usd,
            completion.latency_s,
        )
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO completions "
                "(key, judge_id, text, prompt_tokens, completion_tokens, cost_usd, latency_s) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                values,
            )

    def __len__(self) -> int:
        with self._lock:
            return self._conn.execute("SELECT COUNT(*) FROM completions").fetchone()[0]

    def close(self) -> None:
        """Close the connection (the file stays)."""
        with self._lock:
            self._conn.close()

    def __repr__(self) -> str:
        return f"JudgeCache({str(self.path) if self.path else ':memory:'!r})"
