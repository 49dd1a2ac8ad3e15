"""Names that become paths, checked once where they enter: language codes against the one table of known codes,
method and model names as single safe path components, and :func:`path_under` for every path joined from them."""

from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath, PureWindowsPath

from mdaq.errors import DataError

__all__ = [
    "ISO_639_1",
    "SUBMISSION_PREFIX",
    "is_lang_code",
    "check_lang",
    "check_name",
    "check_relative",
    "check_unique",
    "path_under",
    "submission_method",
    "submission_name",
]

#: The ISO 639-1 two-letter language codes (including the deprecated ``bh``); every MIDB language is one.
ISO_639_1: frozenset[str] = frozenset(
    """
    aa ab ae af ak am an ar as av ay az ba be bg bh bi bm bn bo br bs ca ce ch co cr cs cu cv cy da de dv dz ee el
    en eo es et eu fa ff fi fj fo fr fy ga gd gl gn gu gv ha he hi ho hr ht hu hy hz ia id ie ig ii ik io is it iu
    ja jv ka kg ki kj kk kl km kn ko kr ks ku kv kw ky la lb lg li ln lo lt lu lv mg mh mi mk ml mn mr ms mt my na
    nb nd ne ng nl nn no nr nv ny oc oj om or os pa pi pl ps pt qu rm rn ro ru rw sa sc sd se sg si sk sl sm sn so
    sq sr ss st su sv sw ta te tg th ti tk tl tn to tr ts tt tw ty ug uk ur uz ve vi vo wa wo xh yi yo za zh zu
    """.split()
)

#: Language-plus-script codes as used by FLORES/NLLB, e.g. ``zho_Hans``, ``nob_Latn``.
_LANG_SCRIPT = re.compile(r"[a-z]{3}_[A-Z][a-z]{3}")

#: ``und`` (ISO 639-2 "undetermined") is accepted so that a file can be validated without knowing its language.
_SPECIAL = frozenset({"und"})

#: A name that becomes one path component: letters, digits, ``.``, ``_``, ``-``; starting with a letter or digit.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


#: The method name of submission ``NAME`` in the run grid, its paths and the leaderboard: ``sub.NAME``. Registered
#: method names are Python module names, which never hold a ``.``, so the two cannot collide.
SUBMISSION_PREFIX = "sub."


def submission_method(name: str) -> str:
    """The method name of the submission in ``submissions/<name>/`` (``sub.<name>``)."""
    return SUBMISSION_PREFIX + name


def submission_name(method: str) -> str | None:
    """The submission's folder name when ``method`` is a submission's method name (:func:`submission_method`),
    else None."""
    return method[len(SUBMISSION_PREFIX) :] if method.startswith(SUBMISSION_PREFIX) else None


def is_lang_code(code: object) -> bool:
    """Whether ``code`` is an accepted language code (ISO 639-1, ``xxx_Scrp`` or ``und``)."""
    return isinstance(code, str) and (code in ISO_639_1 or code in _SPECIAL or bool(_LANG_SCRIPT.fullmatch(code)))


def check_lang(lang: object, path: object, record: int | str | None = None, field: str = "lang") -> str:
    """Return ``lang`` if it is an accepted language code (:func:`is_lang_code`), else raise.

    Raises
    ------
    DataError
        If ``lang`` is not a string (a YAML ``no`` read as ``False`` gets a hint to quote it) or not a known code
        (which also refuses empty codes, path separators, ``..`` and absolute paths).
    """
    if isinstance(lang, bool):
        raise DataError(
            path, f'lang {lang!r} is not a string; quote language codes in YAML ("no")', record=record, field=field
        )
    if not isinstance(lang, str):
        raise DataError(path, f"lang {lang!r} is not a string (got {type(lang).__name__})", record=record, field=field)
    if not is_lang_code(lang):
        raise DataError(
            path,
            f"unknown language code {lang!r:.60}; expected an ISO 639-1 code (e.g. 'en', 'no') or 'xxx_Scrp' (e.g. "
            "'zho_Hans')",
            record=record,
            field=field,
        )
    return lang


def check_name(
    value: object, path: object, record: int | str | None = None, field: str | None = None, *, what: str = "name"
) -> str:
    """Return ``value`` if it can be one path component (a method, model or prompt name), else raise.

    Raises
    ------
    DataError
        For a non-string, an empty name, or one with a path separator, ``..``, a leading dot or other characters
        than letters, digits, ``.``, ``_`` and ``-``.
    """
    if not isinstance(value, str):
        raise DataError(path, f"{what} {value!r:.60} is not a string", record=record, field=field)
    if not _NAME.fullmatch(value) or ".." in value:
        raise DataError(
            path,
            f"{what} {value!r:.60} cannot be a file name: use letters, digits, '.', '_' and '-' (no '/', '..', "
            "spaces, or a leading dot)",
            record=record,
            field=field,
        )
    return value


def check_unique(values: list[str] | tuple[str, ...], path: object, field: str) -> None:
    """Raise a :class:`DataError` naming ``field[i]`` for the first value seen twice."""
    seen: dict[str, int] = {}
    for i, value in enumerate(values):
        if value in seen:
            raise DataError(path, f"{value!r} is listed twice (also at [{seen[value]}])", field=f"{field}[{i}]")
        seen[value] = i


def _bad_part(part: str) -> str | None:
    """Why ``part`` cannot be joined under a root, or None."""
    if not part:
        return "is empty"
    if "\0" in part:
        return "contains a NUL character"
    if PurePosixPath(part).is_absolute() or PureWindowsPath(part).is_absolute() or part.startswith(("/", "\\")):
        return "is an absolute path"
    if ".." in re.split(r"[\\/]", part):
        return "contains '..'"
    return None


def check_relative(value: str, path: object, record: int | str | None = None, field: str | None = None) -> str:
    """Return ``value`` if it is a relative path that stays inside the folder it is read from, else raise.

    Raises
    ------
    DataError
        For an empty or absolute path, or one with a ``..`` component.
    """
    problem = _bad_part(value) if isinstance(value, str) else f"is a {type(value).__name__}, not a string"
    if problem:
        raise DataError(path, f"{value!r:.80} {problem}; expected a path relative to the repository", record, field)
    return value


def path_under(root: str | Path, *parts: str) -> Path:
    """``root / part / ...``, refusing any part that would leave ``root``.

    Every path joined from a name that came from a file or the command line (a method, a language, a seed folder)
    goes through here. Symbolic links are not followed (a DVC cache may link outputs elsewhere on purpose).

    Raises
    ------
    DataError
        Naming ``root``: a part that is not a string, is empty, absolute or contains ``..``.
    """
    for part in parts:
        problem = _bad_part(part) if isinstance(part, str) else f"is a {type(part).__name__}, not a string"
        if problem:
            raise DataError(root, f"cannot join {part!r:.80} under this folder: it {problem}")
    joined = Path(root, *parts)
    base = os.path.abspath(root)
    if os.path.commonpath([base, os.path.abspath(joined)]) != base:  # belt and braces after the checks above
        raise DataError(root, f"{joined} is not inside this folder")
    return joined
