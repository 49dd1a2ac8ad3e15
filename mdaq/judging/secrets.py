"""The judge's credentials: reading the API key, splitting credentials out of a URL, and redacting both from any
text the client prints or stores (every common encoding, and any fragment long enough to identify them)."""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import urllib.parse
from collections.abc import Iterable

from mdaq.judging.base import JudgeError

__all__ = ["MIN_FRAGMENT", "REDACTED", "Redactor", "credential_secrets", "read_api_key", "split_url_credentials"]

log = logging.getLogger(__name__)

# A run of 8 characters of a random key is as good as unique (an OpenAI key has ~6 bits per character), and 8
# still catches a key cut anywhere: of a 40-character key, at most 7 characters can sit on each side of a cut.
MIN_FRAGMENT = 8
REDACTED = "***"


def read_api_key(env_name: str) -> str:
    """The API key in ``$env_name``, surrounding whitespace stripped; ``""`` when unset or blank.

    Raises
    ------
    JudgeError
        If the key holds whitespace, a control or a non-ASCII character inside (a pasted line break, two keys):
        such a key cannot go into an HTTP header, and the HTTP library's own error would print it. The message
        gives the position, never the key.
    """
    key = os.environ.get(env_name, "").strip()
    bad = next((i for i, c in enumerate(key) if not 33 <= ord(c) <= 126), None)
    if bad is not None:
        raise JudgeError(
            f"the API key in ${env_name} contains whitespace, a control or a non-ASCII character at position {bad}; "
            "set the variable to the key alone"
        )
    return key


def split_url_credentials(url: str) -> tuple[str, str, tuple[str, str] | None]:
    """``(url without credentials, url to show, (user, password) or None)`` for a URL like ``http://u:p@host/v1``.

    The shown URL keeps the scheme, host and path and replaces the credentials with ``***``.
    """
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError as e:
        raise ValueError(f"judge: base_url is not a valid URL ({e})") from None
    if "@" not in parts.netloc:
        return url, url, None
    userinfo, _, host = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    clean = urllib.parse.urlunsplit(parts._replace(netloc=host))
    shown = urllib.parse.urlunsplit(parts._replace(netloc=f"{REDACTED}@{host}"))
    return clean, shown, (urllib.parse.unquote(user), urllib.parse.unquote(password))


def credential_secrets(auth: tuple[str, str] | None) -> list[str]:
    """The strings that give URL credentials away: the password (the user name when there is none, a token used
    as user name), ``user:password`` and its HTTP basic-auth form."""
    if auth is None:
        return []
    user, password = auth
    pair = f"{user}:{password}"
    return [password or user, pair, base64.b64encode(pair.encode()).decode()]


def _encodings(secret: str) -> set[str]:
    """How a server may echo ``secret``: as is, JSON-escaped (with or without ``\\/``), URL-encoded."""
    forms = {secret, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]}
    forms |= {f.replace("/", "\\/") for f in forms}
    for quoted in (urllib.parse.quote(secret, safe=""), urllib.parse.quote_plus(secret, safe="")):
        forms |= {quoted, re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), quoted)}
    return {f for f in forms if f}


class Redactor:
    """Finds and hides secrets in text: each encoding of each secret, whole, and any fragment of one that is at
    least :data:`MIN_FRAGMENT` characters long.

    Redact *before* cutting a text short: a cut can split a secret, and the part left would no longer match it
    whole. A fragment is found through its 8-character windows, so a long secret costs one pattern per window.

    Parameters
    ----------
    secrets : iterable of str
        The secrets; empty strings are ignored.
    """

    def __init__(self, secrets: Iterable[str]) -> None:
        forms = set().union(*(_encodings(s) for s in secrets if s))
        windows = {f[i : i + MIN_FRAGMENT] for f in forms for i in range(len(f) - MIN_FRAGMENT + 1)}
        needles = windows | {f for f in forms if len(f) < MIN_FRAGMENT}
        alternatives = sorted(needles, key=lambda n: (-len(n), n))
        self._pattern = re.compile("|".join(map(re.escape, alternatives))) if alternatives else None

    def _spans(self, text: str) -> list[tuple[int, int]]:
        """Merged ``[start, end)`` spans of ``text`` covered by a secret; overlapping windows are all found."""
        spans: list[tuple[int, int]] = []
        pos = 0
        while self._pattern is not None and (m := self._pattern.search(text, pos)):
            start, end = m.span()
            if spans and start <= spans[-1][1]:
                spans[-1] = (spans[-1][0], max(spans[-1][1], end))
            else:
                spans.append((start, end))
            pos = start + 1
        return spans

    def found_in(self, text: str) -> bool:
        """Whether ``text`` contains a secret or an identifying fragment of one."""
        return self._pattern is not None and self._pattern.search(text) is not None

    def redact(self, text: str) -> str:
        """``text`` with every secret (and fragment) replaced by ``***``."""
        out, last = [], 0
        for start, end in self._spans(text):
            out += [text[last:start], REDACTED]
            last = end
        return "".join([*out, text[last:]])

    def clip(self, text: str, n_chars: int) -> str:
        """Redact, then keep the first ``n_chars`` characters (``...`` marks a cut)."""
        text = self.redact(text)
        return text if len(text) <= n_chars else f"{text[:n_chars]}..."
