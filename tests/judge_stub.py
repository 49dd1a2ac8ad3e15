"""A loopback OpenAI-compatible server for the judge client's tests (tests/test_judge.py, test_judge_faults.py,
test_kill.py, the smoke pipeline): scripted replies, request log, TLS on request. The `server` fixture is in
tests/conftest.py."""

from __future__ import annotations

import json
import random
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from mdaq.judging import OpenAICompatJudge

KEY_ENV = "MDAQ_TEST_JUDGE_KEY"

# --------------------------------------------------------------------------- loopback stub server


Behaviour = str | Callable[["StubHandler", dict], None]


class StubServer:
    """An OpenAI-compatible ``/v1/chat/completions`` stub with scripted behaviours, counting requests.

    ``script`` behaviours are used one per request, then ``default``. ``fail_after=k`` answers HTTP 500 to
    every request after the k-th successful one (a server that dies mid-run). A behaviour is a name (see
    ``StubHandler.do_POST``) or a callable ``(handler, body)`` that writes the whole reply itself
    (``tests/test_judge_faults.py`` builds misbehaving ones).
    """

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self.script: deque[Behaviour] = deque()
        self.default: Behaviour = "ok"
        self.fail_after: int | None = None
        self.reply: Callable[[dict], str] = lambda body: "Answer 1 is better. [[1]]"
        self.requests: list[tuple[str, dict[str, str], Any]] = []
        self.n_ok = 0
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), StubHandler)
        self.httpd.daemon_threads = True
        self.httpd.stub = self  # type: ignore[attr-defined]
        if ssl_context is not None:  # HTTPS (tests/test_judge_faults.py)
            self.httpd.socket = ssl_context.wrap_socket(self.httpd.socket, server_side=True)
        self.scheme = "http" if ssl_context is None else "https"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.httpd.server_address[1]}/v1"

    @property
    def count(self) -> int:
        return len(self.requests)

    def next_behaviour(self) -> Behaviour:
        with self.lock:
            if self.fail_after is not None and self.n_ok >= self.fail_after:
                return "500"
            return self.script.popleft() if self.script else self.default

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class StubHandler(BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:  # keep pytest output clean
        pass

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for k, v in {"Content-Type": "application/json", **(headers or {})}.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        stub: StubServer = self.server.stub  # type: ignore[attr-defined]
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = json.loads(raw)
        with stub.lock:
            stub.requests.append((self.path, dict(self.headers), body))
        behaviour = stub.next_behaviour()
        err = {"error": {"message": f"{behaviour} from stub"}}
        try:
            if callable(behaviour):
                behaviour(self, body)
                return
            if behaviour in ("slow", "jitter"):
                time.sleep(0.5 if behaviour == "slow" else random.uniform(0, 0.03))
            if behaviour == "429":
                self._send(429, json.dumps(err).encode(), {"Retry-After": "1"})
            elif behaviour == "500":
                self._send(500, json.dumps(err).encode())
            elif behaviour == "401":  # echo the key like some providers do: the client must redact it
                msg = f"invalid API key {self.headers.get('Authorization', '')}"
                self._send(401, json.dumps({"error": {"message": msg}}).encode())
            elif behaviour == "malformed":
                self._send(200, b'{"choices": [oops')
            elif behaviour == "nochoices":
                self._send(200, json.dumps({"object": "chat.completion"}).encode())
            else:
                content = stub.reply(body)
                usage = {"prompt_tokens": 1000, "completion_tokens": 10}
                self._send(200, json.dumps({"choices": [{"message": {"content": content}}], "usage": usage}).encode())
                with stub.lock:
                    stub.n_ok += 1
        except OSError:  # the client timed out or was interrupted, and hung up (over TLS: an SSLError)
            pass


def stub_judge(server: StubServer, **kwargs: Any) -> OpenAICompatJudge:
    """A judge on the stub with fast backoff and a 2 s timeout (overridable)."""
    cfg: dict[str, Any] = {
        "model": "stub-judge",
        "base_url": server.base_url,
        "api_key_env": KEY_ENV,
        "max_retries": 2,
        "backoff_base_s": 0.001,
        "backoff_max_s": 0.005,
        "timeout_s": 2.0,
        "n_concurrent": 2,
        "progress": False,
        "price_per_1m_input": 2.0,
        "price_per_1m_output": 10.0,
    }
    return OpenAICompatJudge(**{**cfg, **kwargs})
