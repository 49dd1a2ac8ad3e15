"""The OpenAI-compatible judge client against a misbehaving loopback server (issue 18): secrets never leak into
errors, logs or the cache; a Ctrl-C or SIGTERM stops spending; ``timeout_s`` is a total deadline; every
``Retry-After`` form, 408/5xx retries and bad token counts are handled."""

from __future__ import annotations

import base64
import email.utils
import json
import logging
import os
import shutil
import signal
import ssl
import subprocess
import sys
import textwrap
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator

import pytest

from mdaq.judging import JudgeCache, JudgeError, OpenAICompatJudge
from mdaq.judging.secrets import Redactor, read_api_key, split_url_credentials
from mdaq.judging.transport import MAX_RETRY_AFTER_S, retry_after_seconds
from tests.conftest import REPO
from tests.judge_stub import KEY_ENV, StubHandler, StubServer, stub_judge

# A key with '/' and '+': JSON encoders that escape '/' and URL encoders both change it.
SECRET = "sk-live/Ab+cd/EF9876543210/ghijKLMN"
PASSWORD = "pa55/w0rd+seCRET!x"
HI = [[{"role": "user", "content": "hi"}]]
OK_REPLY = {"choices": [{"message": {"content": "Answer 1 is better. [[1]]"}}], "usage": {"prompt_tokens": 5}}
OK_BODY = json.dumps(OK_REPLY).encode()


def fragments(secret: str, n: int = 8) -> set[str]:
    """Every n-character piece of ``secret``: none may appear in anything the client prints or stores."""
    return {secret[i : i + n] for i in range(len(secret) - n + 1)}


def leaked(text: str, *secrets: str) -> set[str]:
    return {f for s in secrets for f in fragments(s) if f in text}


def send(status: int, body: bytes | str, headers: dict[str, str] | None = None) -> Callable[[StubHandler, dict], None]:
    """A behaviour answering ``status`` with ``body`` (bytes as given)."""
    raw = body.encode() if isinstance(body, str) else body
    return lambda h, _body: h._send(status, raw, headers)


def echo(status: int, render: Callable[[str], str]) -> Callable[[StubHandler, dict], None]:
    """A behaviour echoing the bearer key back, rendered by ``render(key) -> body``."""

    def act(h: StubHandler, _body: dict) -> None:
        key = h.headers.get("Authorization", "").removeprefix("Bearer ")
        h._send(status, render(key).encode())

    return act


# --------------------------------------------------------------------------- secrets


def test_key_straddling_any_cut_of_an_error_body_leaks_no_fragment(
    server: StubServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The old client cut the body at 300/500 characters and then redacted the whole key only."""
    monkeypatch.setenv(KEY_ENV, SECRET)
    caplog.set_level(logging.DEBUG)
    judge = stub_judge(server, max_retries=1)
    judge._sleep = lambda s: None
    messages = []
    for pad in range(180, 620, 11):  # the key starts before, at and after every plausible cut
        for status in (400, 503):
            behaviour = echo(status, lambda key, pad=pad: f'{{"error": "{"x" * pad}{key} tail"}}')
            server.script.extend([behaviour] * (1 if status == 400 else 2))  # 503 is retried once
            with pytest.raises(JudgeError) as info:
                judge.chat_many([[{"role": "user", "content": f"{pad}-{status}"}]])
            messages.append(str(info.value))
    assert len(messages) == 2 * len(range(180, 620, 11))
    assert leaked("\n".join(messages), SECRET) == set() and leaked(caplog.text, SECRET) == set()
    assert any("x***" in m for m in messages)  # the echo is visibly redacted, not dropped


@pytest.mark.parametrize(
    "render",
    [
        lambda key: json.dumps({"error": f"bad key {key}"}).replace("/", "\\/"),  # PHP-style JSON escaping
        lambda key: json.dumps({"error": f"bad key {urllib.parse.quote(key, safe='')}"}),
        lambda key: json.dumps({"error": f"bad key {urllib.parse.quote_plus(key).lower()}"}),
        lambda key: json.dumps({"error": f"bad key Bearer {key}"}, ensure_ascii=True),
    ],
    ids=["json-escaped-slash", "url-encoded", "url-encoded-lower", "raw"],
)
def test_encoded_key_echo_is_redacted_in_errors_and_retry_warnings(
    server: StubServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, render: Callable
) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)
    caplog.set_level(logging.DEBUG)
    judge = stub_judge(server, max_retries=1)
    judge._sleep = lambda s: None
    server.default = echo(500, render)
    with pytest.raises(JudgeError, match="giving up after 2 attempts") as info:
        judge.chat_many(HI)
    server.default = echo(401, render)
    with pytest.raises(JudgeError, match="HTTP 401") as info401:
        judge.chat_many(HI)
    text = f"{info.value}\n{info401.value}\n{caplog.text}"
    encodings = (SECRET, SECRET.replace("/", "\\/"), urllib.parse.quote(SECRET, safe=""))
    assert "retrying" in caplog.text and leaked(text, *encodings) == set(), leaked(text, *encodings)


def test_key_with_surrounding_whitespace_is_stripped(server: StubServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, f"  {SECRET}\n")  # `export KEY=$(cat key.txt)` keeps no newline, `<` reads do
    [completion] = stub_judge(server).chat_many(HI)
    assert completion.text.endswith("[[1]]") and server.count == 1
    assert server.requests[0][1]["Authorization"] == f"Bearer {SECRET}"


@pytest.mark.parametrize("bad", [f"{SECRET[:10]}\n{SECRET[10:]}", f"{SECRET[:10]} {SECRET[10:]}", f"{SECRET}é"])
def test_key_with_inner_whitespace_or_non_ascii_is_refused_before_any_request(
    server: StubServer, monkeypatch: pytest.MonkeyPatch, bad: str
) -> None:
    monkeypatch.setenv(KEY_ENV, bad)
    with pytest.raises(JudgeError, match=f"\\${KEY_ENV}.*whitespace") as info:
        stub_judge(server).chat_many(HI)
    assert server.count == 0 and leaked(str(info.value), SECRET) == set()
    assert info.value.__context__ is None and info.value.__cause__ is None  # no chained error carries the key


@pytest.mark.parametrize(
    "content",
    [
        lambda key: f"Your header was Bearer {key}. [[1]]",
        lambda key: f"echo {key[3:20]} [[1]]",  # a fragment is enough
        lambda key: "".join(f"\\u{ord(c):04x}" for c in key) + " [[1]]",  # every character JSON-escaped
    ],
    ids=["raw", "fragment", "unicode-escaped"],
)
def test_reply_echoing_the_key_is_neither_cached_nor_returned(
    server: StubServer, monkeypatch: pytest.MonkeyPatch, tmp_path, content: Callable
) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)

    def act(h: StubHandler, _body: dict) -> None:
        key = h.headers["Authorization"].removeprefix("Bearer ")
        text = content(key)
        escaped = text if "\\u" in text else json.dumps(text)[1:-1]
        raw = '{"choices": [{"message": {"content": "' + escaped + '"}}]}'
        h._send(200, raw.encode())

    server.default = act
    cache_path = tmp_path / "cache.sqlite"
    with pytest.raises(JudgeError, match="contains the API key") as info:
        stub_judge(server, cache_path=cache_path).chat_many(HI)
    assert server.count == 1 and len(JudgeCache(cache_path)) == 0  # not retried, not stored
    assert leaked(str(info.value), SECRET) == set()


def test_url_credentials_are_sent_but_never_printed(
    server: StubServer, caplog: pytest.LogCaptureFixture, tmp_path
) -> None:
    caplog.set_level(logging.DEBUG)
    port = server.httpd.server_address[1]
    base_url = f"http://alice:{urllib.parse.quote(PASSWORD, safe='')}@127.0.0.1:{port}/v1"
    judge = stub_judge(server, base_url=base_url, max_retries=1, cache_path=tmp_path / "c.sqlite")
    judge._sleep = lambda s: None
    server.script.append("500")
    [completion] = judge.chat_many(HI)  # retried once, then answered
    basic = base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    assert server.count == 2 and server.requests[0][1]["Authorization"] == f"Basic {basic}"
    server.default = lambda h, _b: h._send(403, json.dumps({"error": f"denied {h.headers['Authorization']}"}).encode())
    with pytest.raises(JudgeError, match=r"http://\*\*\*@127\.0\.0\.1:\d+/v1/chat/completions.*HTTP 403") as info:
        judge.chat_many([[{"role": "user", "content": "again"}]])
    text = f"{info.value}\n{caplog.text}\n{judge!r}\n{judge.url}"
    assert "retrying" in caplog.text and leaked(text, PASSWORD, basic) == set()
    assert "alice:" not in text and "***@127.0.0.1" in repr(judge)


def test_redactor_and_secret_helpers_unit(monkeypatch: pytest.MonkeyPatch) -> None:
    r = Redactor([SECRET])
    assert r.redact(f"a {SECRET} b") == "a *** b" and r.redact("nothing here") == "nothing here"
    assert r.redact(f"{SECRET[:-1]}") == "***" and r.found_in(f"x{SECRET[5:13]}x") and not r.found_in("x" * 99)
    assert r.redact(SECRET[:7] + "|") == SECRET[:7] + "|"  # 7 characters: too short to identify the key
    short = Redactor(["abc"])  # short secrets are redacted whole
    assert short.redact("xabcx") == "x***x" and Redactor([""]).redact("abc") == "abc"
    monkeypatch.setenv("MDAQ_K", "\tkey-123\r\n")
    assert read_api_key("MDAQ_K") == "key-123"
    monkeypatch.setenv("MDAQ_K", "   ")
    assert read_api_key("MDAQ_K") == ""
    clean, shown, auth = split_url_credentials("https://u:p%40ss@h.example:8443/v1")
    assert (clean, shown, auth) == ("https://h.example:8443/v1", "https://***@h.example:8443/v1", ("u", "p@ss"))
    assert split_url_credentials("http://h/v1") == ("http://h/v1", "http://h/v1", None)


# --------------------------------------------------------------------------- interrupts


@pytest.fixture(autouse=True)
def _ctrl_c_raises() -> Iterator[None]:
    """Ctrl-C raises KeyboardInterrupt, as in a terminal: a process started in the background by a
    non-interactive shell inherits SIGINT ignored (Python then keeps it ignored), and the interrupt tests below
    would wait out their 5-300 s pauses instead."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


# Wall-clock bounds below leave seconds of slack for a loaded machine (a CI runner, or tests beside a pipeline):
# each is far below what the behaviour it guards against would take (5 s, 30 s or 300 s).
HOLD_S = 1.0  # the interrupting request answers only after this: the main thread has time to act on the signal


def _interrupting(server: StubServer, at: int, delay_s: float, slow_after: int | None = None) -> None:
    """Each request waits ``delay_s`` (``slow_after``: 5 s from that request on); the ``at``-th one sends SIGINT
    to the test's main thread and, like every later one, holds its answer at least ``HOLD_S``."""

    def act(h: StubHandler, _body: dict) -> None:
        n = server.count
        if n == at:
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)  # what Ctrl-C does
        wait = 5.0 if slow_after is not None and n >= slow_after else delay_s
        time.sleep(max(wait, HOLD_S) if n >= at else wait)
        h._send(200, json.dumps(OK_REPLY).encode())

    server.default = act


def _conversations(n: int) -> list[list[dict[str, str]]]:
    return [[{"role": "user", "content": f"q{k}"}] for k in range(n)]


def test_ctrl_c_cancels_every_queued_request_and_keeps_finished_ones(server: StubServer, tmp_path) -> None:
    """Before: after 6 of 20 requests a Ctrl-C still sent the 14 queued ones."""
    cache_path = tmp_path / "cache.sqlite"
    _interrupting(server, at=6, delay_s=0.15)
    judge = stub_judge(server, n_concurrent=2, cache_path=cache_path, cancel_grace_s=3.0)
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        judge.chat_many(_conversations(20))
    assert time.monotonic() - start < 3.0 + 2.0  # the grace period, and slack
    time.sleep(0.3)  # a request sent late would arrive now
    assert server.count == 6  # nothing after the interrupt
    assert len(JudgeCache(cache_path)) == 6  # the two in flight were let finish, and cached
    server.default, before = "ok", server.count
    stub_judge(server, cache_path=cache_path).chat_many(_conversations(20))
    assert server.count - before == 14  # a rerun asks only for what is missing


def test_ctrl_c_abandons_in_flight_requests_after_the_grace_period(server: StubServer, tmp_path) -> None:
    cache_path = tmp_path / "cache.sqlite"
    _interrupting(server, at=6, delay_s=0.05, slow_after=5)  # requests 5 and 6 would take 5 s
    judge = stub_judge(server, n_concurrent=2, cache_path=cache_path, cancel_grace_s=0.2, timeout_s=10.0)
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        judge.chat_many(_conversations(20))
    assert time.monotonic() - start < 4.0  # 4 fast calls + HOLD_S + the grace + closing (in-flight calls: 5 s)
    time.sleep(0.2)
    assert server.count == 6 and len(JudgeCache(cache_path)) == 4  # abandoned calls are not cached


def test_second_ctrl_c_skips_the_grace_period(server: StubServer, tmp_path) -> None:
    main = threading.main_thread().ident

    def act(h: StubHandler, _body: dict) -> None:
        if server.count == 2:  # both workers busy for 5 s; Ctrl-C now, and again 0.3 s later
            signal.pthread_kill(main, signal.SIGINT)
            threading.Timer(0.3, signal.pthread_kill, args=(main, signal.SIGINT)).start()
        time.sleep(5.0)
        h._send(200, json.dumps(OK_REPLY).encode())

    server.default = act
    judge = stub_judge(server, n_concurrent=2, cancel_grace_s=30.0, timeout_s=10.0)
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        judge.chat_many(_conversations(6))
    assert time.monotonic() - start < 4.0 and server.count == 2  # the first grace period alone is 30 s


@pytest.mark.parametrize("waiting_in", ["retry-after", "rate-limit"])
def test_ctrl_c_is_not_held_up_by_a_pause(server: StubServer, waiting_in: str) -> None:
    """A thread pausing before a retry (Retry-After: 300) or for the rate limit (one start per 10 s) wakes up."""

    def act(h: StubHandler, _body: dict) -> None:
        if server.count == 1:
            threading.Timer(0.3, signal.pthread_kill, args=(threading.main_thread().ident, signal.SIGINT)).start()
        h._send(503, b"{}", {"Retry-After": "300"}) if waiting_in == "retry-after" else h._send(200, OK_BODY)

    server.default = act
    judge = stub_judge(server, n_concurrent=2, requests_per_minute=6, timeout_s=2.0)
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        judge.chat_many(_conversations(4))
    assert time.monotonic() - start < 5.0 and server.count == 1  # the pauses: 300 s and 10 s


SIGTERM_SCRIPT = """
import sys
from mdaq.judging import OpenAICompatJudge
judge = OpenAICompatJudge(model="stub", base_url=sys.argv[1], cache_path=sys.argv[2], n_concurrent=2,
                          progress=False, cancel_grace_s=5.0, api_key_env="MDAQ_TEST_UNSET_KEY")
judge.chat_many([[{"role": "user", "content": f"q{k}"}] for k in range(20)])
"""


def test_sigterm_cancels_queued_requests_and_exits_143(server: StubServer, tmp_path) -> None:
    """Before: SIGTERM killed the process at once, losing the two replies in flight (paid for, not cached)."""
    cache_path = tmp_path / "cache.sqlite"
    proc: list[subprocess.Popen] = []

    def act(h: StubHandler, _body: dict) -> None:
        if server.count == 6:
            proc[0].send_signal(signal.SIGTERM)
        time.sleep(0.3)
        h._send(200, json.dumps(OK_REPLY).encode())

    server.default = act
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-c", textwrap.dedent(SIGTERM_SCRIPT), server.base_url, str(cache_path)]
    proc.append(subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True))
    _, stderr = proc[0].communicate(timeout=60)
    time.sleep(0.3)
    assert proc[0].returncode == 143, stderr
    assert server.count == 6 and len(JudgeCache(cache_path)) == 6
    assert "Traceback" not in stderr and "cancelled 14 queued" in stderr


# --------------------------------------------------------------------------- the clock


def _trickle_body(interval_s: float, n_bytes: int) -> Callable[[StubHandler, dict], None]:
    payload = json.dumps(OK_REPLY).encode().ljust(n_bytes)

    def act(h: StubHandler, _body: dict) -> None:
        h.send_response(200)
        h.send_header("Content-Length", str(len(payload)))
        h.end_headers()
        for k in range(len(payload)):
            h.wfile.write(payload[k : k + 1])
            time.sleep(interval_s)

    return act


def _trickle_headers(interval_s: float, n_headers: int) -> Callable[[StubHandler, dict], None]:
    def act(h: StubHandler, _body: dict) -> None:
        payload = json.dumps(OK_REPLY).encode()
        h.wfile.write(b"HTTP/1.1 200 OK\r\n")
        for k in range(n_headers):
            h.wfile.write(f"X-Pad-{k}: {k}\r\n".encode())
            time.sleep(interval_s)
        h.wfile.write(f"Content-Length: {len(payload)}\r\n\r\n".encode() + payload)

    return act


def _silent(seconds: float) -> Callable[[StubHandler, dict], None]:
    def act(h: StubHandler, _body: dict) -> None:
        time.sleep(seconds)
        h._send(200, json.dumps(OK_REPLY).encode())

    return act


@pytest.mark.parametrize(
    "behaviour",
    [_trickle_body(0.1, 40), _trickle_headers(0.1, 40), _silent(3.0)],
    ids=["trickled-body", "trickled-headers", "silent"],
)
def test_timeout_is_a_total_deadline_per_request(server: StubServer, behaviour: Callable) -> None:
    """Before: a byte every 0.1 s kept a 0.5-second call alive for 4 s per attempt."""
    server.default = behaviour
    judge = stub_judge(server, timeout_s=0.5, max_retries=1)
    judge._sleep = lambda s: None
    start = time.monotonic()
    with pytest.raises(JudgeError, match=r"giving up after 2 attempts.*timeout_s=0\.5") as info:
        judge.chat_many(HI)
    elapsed = time.monotonic() - start
    assert server.count == 2 and elapsed < 1.6, (elapsed, str(info.value))


@pytest.fixture
def tls_server(tmp_path, monkeypatch: pytest.MonkeyPatch) -> Iterator[StubServer]:
    """The stub over HTTPS with a throw-away certificate for 127.0.0.1, trusted through ``$SSL_CERT_FILE``."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    args = "req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=127.0.0.1".split()
    out = ["-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)]
    subprocess.run(["openssl", *args, *out], check=True, capture_output=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy", "SSL_CERT_DIR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    stub = StubServer(ssl_context=context)
    yield stub
    stub.close()


@pytest.mark.parametrize(
    "behaviour", [_trickle_body(0.1, 40), _trickle_headers(0.1, 40)], ids=["trickled-body", "trickled-headers"]
)
def test_deadline_holds_over_tls(tls_server: StubServer, behaviour: Callable) -> None:
    """The deadline shuts down a TLS socket too (the reader blocks inside the SSL layer)."""
    tls_server.script.append("ok")
    judge = stub_judge(tls_server, timeout_s=0.5, max_retries=0)
    [completion] = judge.chat_many(HI)  # the certificate is trusted: a normal reply works
    assert completion.text.endswith("[[1]]")
    tls_server.default = behaviour
    start = time.monotonic()
    with pytest.raises(JudgeError, match=r"giving up after 1 attempts.*timeout_s=0\.5"):
        judge.chat_many([[{"role": "user", "content": "slow"}]])
    assert time.monotonic() - start < 1.0 and tls_server.count == 2


@pytest.mark.parametrize(
    ("header", "low", "high"),
    [
        ("1", 1.0, 1.0),
        ("0", 0.0, 0.0),
        ("2.5", 2.5, 2.5),
        (" 7 ", 7.0, 7.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0, 0.0),  # a date in the past: retry now
        ("Fri, 31 Dec 9999 23:59:59 GMT", MAX_RETRY_AFTER_S, MAX_RETRY_AFTER_S),
        ("99999999999999999999999", MAX_RETRY_AFTER_S, MAX_RETRY_AFTER_S),
        ("nan", 0.05, 0.1),  # garbage: the client's own backoff (base 0.1 s, jittered down to half)
        ("-5", 0.05, 0.1),
        ("inf", 0.05, 0.1),
        ("soon", 0.05, 0.1),
        ("", 0.05, 0.1),
        ("Mon, 99 Foo 2024 99:99:99 GMT", 0.05, 0.1),
    ],
)
def test_every_retry_after_form_is_handled(server: StubServer, header: str, low: float, high: float) -> None:
    server.script.append(send(429, b'{"error": "slow down"}', {"Retry-After": header}))
    judge = stub_judge(server, backoff_base_s=0.1, backoff_max_s=1.0)
    sleeps: list[float] = []
    judge._sleep = sleeps.append
    [completion] = judge.chat_many(HI)
    assert completion.text.endswith("[[1]]") and server.count == 2
    assert len(sleeps) == 1 and low <= sleeps[0] <= high, sleeps


def test_retry_after_http_date_in_the_future() -> None:
    assert retry_after_seconds(email.utils.formatdate(time.time() + 30, usegmt=True)) == pytest.approx(30, abs=2)
    assert retry_after_seconds(email.utils.formatdate(1000.0, usegmt=True), now=990.0) == pytest.approx(10.0)
    assert retry_after_seconds(None) is None and retry_after_seconds("NaN") is None


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_408_429_and_5xx_are_retried_then_succeed(server: StubServer, status: int) -> None:
    server.script.extend([send(status, b'{"error": "try later"}')] * 2)
    judge = stub_judge(server, max_retries=2)
    sleeps: list[float] = []
    judge._sleep = sleeps.append
    [completion] = judge.chat_many(HI)
    assert completion.text.endswith("[[1]]") and server.count == 3 and judge.totals()["retries"] == 2


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_other_client_errors_are_not_retried(server: StubServer, status: int) -> None:
    server.default = send(status, b'{"error": "no"}')
    with pytest.raises(JudgeError, match=f"HTTP {status} .*not retried"):
        stub_judge(server).chat_many(HI)
    assert server.count == 1


def test_backoff_is_exponential_and_bounded(server: StubServer) -> None:
    server.script.extend([send(503, b"{}")] * 5)
    judge = stub_judge(server, max_retries=5, backoff_base_s=0.01, backoff_max_s=0.04)
    sleeps: list[float] = []
    judge._sleep = sleeps.append
    judge.chat_many(HI)
    caps = [0.01, 0.02, 0.04, 0.04, 0.04]
    assert len(sleeps) == 5 and all(cap / 2 <= s <= cap for s, cap in zip(sleeps, caps, strict=True)), sleeps


@pytest.mark.parametrize(
    ("usage", "field"),
    [
        ('{"prompt_tokens": -3, "completion_tokens": 2}', ".prompt_tokens"),
        ('{"prompt_tokens": 3, "completion_tokens": NaN}', ".completion_tokens"),
        ('{"prompt_tokens": 1.5, "completion_tokens": 2}', ".prompt_tokens"),
        ('{"prompt_tokens": "12", "completion_tokens": 2}', ".prompt_tokens"),
        ('{"prompt_tokens": true, "completion_tokens": 2}', ".prompt_tokens"),
        ('{"prompt_tokens": 3, "completion_tokens": Infinity}', ".completion_tokens"),
        ('"lots"', ""),
    ],
)
def test_bad_token_usage_is_refused_before_caching(server: StubServer, tmp_path, usage: str, field: str) -> None:
    server.default = send(200, '{"choices": [{"message": {"content": "[[1]]"}}], "usage": ' + usage + "}")
    judge = stub_judge(server, cache_path=tmp_path / "c.sqlite")
    with pytest.raises(JudgeError, match=f"usage{field} is"):
        judge.chat_many(HI)
    assert server.count == 1 and len(JudgeCache(tmp_path / "c.sqlite")) == 0
    assert judge.totals()["requests"] == 0 and judge.totals()["cost_usd"] == 0.0


def test_missing_usage_counts_zero_tokens(server: StubServer) -> None:
    server.default = send(200, '{"choices": [{"message": {"content": "[[2]]"}}]}')
    [completion] = stub_judge(server).chat_many(HI)
    assert (completion.prompt_tokens, completion.completion_tokens, completion.cost_usd) == (0, 0, 0.0)


def test_judge_is_constructed_without_touching_the_network() -> None:
    judge = OpenAICompatJudge(model="m", base_url="http://u:secretpw123@127.0.0.1:9/v1", cancel_grace_s=0.0)
    assert "secretpw123" not in repr(judge) and judge.cancel_grace_s == 0.0
    with pytest.raises(ValueError, match="cancel_grace_s"):
        OpenAICompatJudge(model="m", cancel_grace_s=-1)
