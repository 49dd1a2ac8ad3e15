"""The method card, ``method.yaml``: its fields, one check per field, every problem collected (none raised)."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from mdaq.errors import DataError
from mdaq.io import NoAliasLoader, read_text
from mdaq.names import check_name, check_relative

CARD = "method.yaml"
MODES = ("per_language", "pooled")
REQUIRED = ("name", "authors", "profile", "pool_hash", "mode", "code_commit", "compute", "features", "uses_heldout")
OPTIONAL = ("description", "paper", "code", "selector")
COMPUTE_REQUIRED, COMPUTE_OPTIONAL = ("seconds", "hardware"), ("note",)
SELECTOR_KEYS = ("method", "version", "params", "seed")
_URL = re.compile(r"https?://[^\s/]+\S*")
_COMMIT = re.compile(r"[0-9a-fA-F]{7,40}")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def read_card(path: Path) -> tuple[dict[str, Any] | None, list[DataError]]:
    """The card as a mapping, or None and the one problem that stops it being read (missing, malformed YAML,
    anchors or aliases, not a mapping)."""
    if not path.is_file():
        what = "is not a file" if path.exists() else "missing: every submission has a method card (docs/submitting.md)"
        return None, [DataError(path, what)]
    try:
        card = yaml.load(read_text(path), Loader=NoAliasLoader)  # noqa: S506 (a safe loader)
    except DataError as e:
        return None, [e]
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        return None, [DataError(path, f"malformed YAML{where}: {getattr(e, 'problem', None) or e}")]
    except RecursionError:
        return None, [DataError(path, "YAML nested too deeply to read")]
    if not isinstance(card, dict):
        return None, [DataError(path, f"expected a mapping of fields, got {type(card).__name__}")]
    return card, []


def _text(value: Any) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return f"expected a non-empty string, got {value!r:.60}"
    return None


def _list_of_text(value: Any, empty_ok: bool) -> str | None:
    if not isinstance(value, list) or (not value and not empty_ok):
        return f"expected a {'' if empty_ok else 'non-empty '}list of strings, got {value!r:.60}"
    bad = [i for i, v in enumerate(value) if not isinstance(v, str) or not v.strip()]
    if bad:
        return f"item [{bad[0]}] is {value[bad[0]]!r:.60}, expected a non-empty string"
    dup = next((v for i, v in enumerate(value) if v in value[:i]), None)
    return f"{dup!r:.60} is listed twice" if dup is not None else None


def _pattern(regex: re.Pattern, what: str) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if not isinstance(value, str) or not regex.fullmatch(value):
            return f"expected {what}, got {value!r:.70}"
        return None

    return check


def _choice(choices: tuple[str, ...]) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        return None if value in choices else f"expected one of {', '.join(choices)}, got {value!r:.60}"

    return check


def _uses_heldout(value: Any) -> str | None:
    if value is False:
        return None
    if value is True:
        return "is true: a selection that read the held-out data (or the evaluation label) cannot be compared"
    return f"expected the boolean false, got {value!r:.60}"


def _seconds(value: Any) -> str | None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value >= 0
    return None if ok else f"expected a number of seconds >= 0, got {value!r:.60}"


FIELD_CHECKS: dict[str, Callable[[Any], str | None]] = {
    "authors": lambda v: _list_of_text(v, empty_ok=False),
    "pool_hash": _pattern(_SHA256, "the 64 hex digits of the frozen pool's hash (its manifest.json)"),
    "mode": _choice(MODES),
    "code_commit": _pattern(_COMMIT, "a git commit (7 to 40 hex digits)"),
    "features": lambda v: _list_of_text(v, empty_ok=True),
    "uses_heldout": _uses_heldout,
    "description": _text,
    "paper": lambda v: None if v == "" else _pattern(_URL, "an http(s) URL or an empty string")(v),
}


def _mapping_problems(
    value: Any, path: Path, prefix: str, required: tuple[str, ...], optional: tuple[str, ...]
) -> list[DataError]:
    """Missing and unknown keys of a nested mapping (``compute``, ``selector``)."""
    if not isinstance(value, dict):
        return [DataError(path, f"expected a mapping, got {value!r:.60}", field=prefix)]
    out = [DataError(path, "missing", field=f"{prefix}.{key}") for key in required if key not in value]
    valid = ", ".join((*required, *optional))
    return out + [
        DataError(path, f"unknown field (valid: {valid})", field=f"{prefix}.{key}")
        for key in value
        if key not in (*required, *optional)
    ]


def _compute_problems(value: Any, path: Path) -> list[DataError]:
    out = _mapping_problems(value, path, "compute", COMPUTE_REQUIRED, COMPUTE_OPTIONAL)
    if not isinstance(value, dict):
        return out
    for key, check in (("seconds", _seconds), ("hardware", _text), ("note", _text)):
        message = check(value[key]) if key in value else None
        if message:
            out.append(DataError(path, message, field=f"compute.{key}"))
    return out


def _code_problem(value: Any, path: Path, folder: Path, root: Path) -> str | None:
    """``code``: empty, an http(s) URL, ``code/...`` inside the submission, or a file of this repository."""
    if value == "" or (isinstance(value, str) and _URL.fullmatch(value)):
        return None
    try:
        check_relative(value, path, field="code")
    except DataError:
        return f"expected an http(s) URL or a relative path, got {value!r:.70}"
    base = folder if value.split("/")[0] == "code" else root
    return None if (base / value).exists() else f"{value!r:.70} does not exist under {base}"


def _selector_problems(value: Any, path: Path) -> list[DataError]:
    """``selector`` (export): a registered method, its current version, parameters it accepts, a seed."""
    from mdaq.selectors import SELECTORS, get_selector

    out = _mapping_problems(value, path, "selector", SELECTOR_KEYS, ())
    if out or not isinstance(value, dict):
        return out
    method, seed = value["method"], value["seed"]
    if method not in SELECTORS:
        return [DataError(path, f"{method!r:.60} is not a registered method", field="selector.method")]
    if value["version"] != SELECTORS.get(method).version:
        msg = f"{value['version']!r:.20} is not the registered {method} version {SELECTORS.get(method).version!r}"
        out.append(DataError(path, msg, field="selector.version"))
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        out.append(DataError(path, f"expected a seed >= 0, got {seed!r:.40}", field="selector.seed"))
    try:
        get_selector(method, value["params"], source=path)
    except DataError as e:  # its field is selectors.<method>[.<parameter>]
        parameter = (e.field or "").split(".")[2:]
        out.append(DataError(path, e.message, field=".".join(["selector.params", *parameter])))
    return out


def card_problems(card: dict[str, Any], path: Path, *, name: str, root: Path) -> list[DataError]:
    """Every problem of a card read by :func:`read_card`, each naming ``path`` and the field.

    ``name`` is the submission's folder name (the card's ``name`` must equal it); ``root`` is the repository a
    built-in method's ``code`` path is relative to. The pool hash is compared with the frozen pool elsewhere
    (:mod:`mdaq.submissions.validate`); everything else about the card is checked here.
    """
    from mdaq.selectors import SELECTORS

    out = [DataError(path, "missing", field=key) for key in REQUIRED if key not in card]
    known = (*REQUIRED, *OPTIONAL)
    out += [
        DataError(path, f"unknown field (valid: {', '.join(known)})", field=str(k)) for k in card if k not in known
    ]
    for key, check in FIELD_CHECKS.items():
        message = check(card[key]) if key in card else None
        if message:
            out.append(DataError(path, message, field=key))
    named = {}
    for key in ("name", "profile"):
        try:
            if key in card:
                named[key] = check_name(card[key], path, field=key, what=key)
        except DataError as e:
            out.append(e)
    if named.get("name", name) != name:
        out.append(DataError(path, f"{card['name']!r:.60} differs from the folder name {name!r}", field="name"))
    exported = isinstance(card.get("selector"), dict) and card["selector"].get("method") == card.get("name")
    if named.get("name") in SELECTORS and not exported:
        msg = "is a registered method's name; only its export (selector.method the same) may use it"
        out.append(DataError(path, f"{card['name']!r} {msg}", field="name"))
    if not card.get("paper") and not card.get("code"):
        out.append(DataError(path, "give a paper or a code link (or both)", field="paper"))
    code = _code_problem(card["code"], path, path.parent, root) if "code" in card else None
    if code:
        out.append(DataError(path, code, field="code"))
    if "compute" in card:
        out += _compute_problems(card["compute"], path)
    if "selector" in card:
        out += _selector_problems(card["selector"], path)
    return out
