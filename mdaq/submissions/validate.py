"""Check a submission folder against a profile's frozen pool and rules; collect every problem, one line each."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mdaq.config import Params, load_params
from mdaq.errors import DataError
from mdaq.io import decode_utf8
from mdaq.names import check_name, path_under
from mdaq.submissions.card import CARD, MODES, card_problems, read_card
from mdaq.submissions.pool import FrozenPool

SELECTION = "selection"
TOP_LEVEL = {CARD: "file", SELECTION: "folder", "code": "folder", "README.md": "file"}
MAX_PER_KIND = 10  # lines shown per (file, kind of problem); the rest are counted in one more line


class Problems:
    """Problems in the order found. A kind of problem repeated in one file (10,000 ids from another pool) shows
    its first :data:`MAX_PER_KIND` lines and one line counting the rest, so the output stays readable."""

    def __init__(self) -> None:
        self.items: list[DataError] = []
        self._seen: Counter = Counter()

    def add(self, path: object, message: str, record: str | None = None, field: str | None = None, kind: str = ""):
        """Record one problem; ``kind`` (plural, e.g. ``"unknown ids"``) groups repeated ones for the cap."""
        self._seen[(str(path), kind)] += 1
        if not kind or self._seen[(str(path), kind)] <= MAX_PER_KIND:
            self.items.append(DataError(path, message, record=record, field=field))

    def extend(self, errors: list[DataError]) -> None:
        """Record problems found elsewhere (the card's)."""
        self.items.extend(errors)

    def all(self) -> list[DataError]:
        """Every problem, plus one line per capped kind saying how many more there are."""
        more = [
            DataError(path, f"{n - MAX_PER_KIND} more {kind} not shown")
            for (path, kind), n in self._seen.items()
            if kind and n > MAX_PER_KIND
        ]
        return self.items + more


def resolve_params(
    folder: str | Path, profile: str | None, profiles: str | Path = "profiles", params_path: str | Path = "params.yaml"
) -> tuple[Params, Path]:
    """The params whose pool and rules a submission is checked against, and the file they came from.

    The profile is ``profile`` when given, else the card's ``profile`` field, else the active ``params_path``'s;
    it is read from ``<profiles>/<name>.yaml`` (``extends`` resolved).

    Raises
    ------
    FileNotFoundError, DataError
        No submission folder, an unknown profile name (the message lists the available ones), a bad profile file.
    """
    if not Path(folder).is_dir():
        raise FileNotFoundError(f"{folder}: no such submission folder")
    source: object = "--profile"
    if profile is None:
        card, _ = read_card(Path(folder) / CARD)
        profile, source = (card or {}).get("profile"), Path(folder) / CARD
        if not isinstance(profile, str) or not profile:
            profile, source = load_params(params_path).profile, params_path
    path = path_under(profiles, check_name(profile, source, field="profile", what="profile name") + ".yaml")
    if not path.is_file():
        names = sorted(p.stem for p in Path(profiles).glob("*.yaml"))
        raise DataError(path, f"unknown profile {profile!r}; available: {', '.join(names) or 'none'}")
    return load_params(path), path


def required_counts(mode: str, pool: FrozenPool) -> tuple[dict[str, int], str]:
    """How many ids each language's file must hold under ``mode``, and the rule in words for messages."""
    rules = pool.manifest["rules"]
    if mode == "pooled":
        how = (
            f"its pooled quota (select.pooled_quota {rules['pooled_quota']}, select.budget {rules['budget']} x "
            f"{len(pool.counts)} languages)"
        )
        return rules["pooled"], how
    return rules["per_language"], f"select.budget {rules['budget']} per language, or all of a smaller pool"


def selection_lines(path: Path, problems: Problems) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` of a selection file, without line ends; a line that is not UTF-8 is a problem."""
    lines = path.read_bytes().split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()  # the file's final newline
    for n, raw in enumerate(lines, start=1):
        try:
            yield n, decode_utf8(raw.removesuffix(b"\r"), path, record=f"line {n}")
        except DataError as e:
            problems.add(path, e.message, f"line {n}", "id", kind="undecodable lines")


def check_selection_file(path: Path, lang: str, pool: FrozenPool, problems: Problems) -> int:
    """Check every line of ``selection/<lang>.txt``; returns the number of ids listed (non-blank lines)."""
    first: dict[str, int] = {}
    n_listed = 0
    short = pool.manifest["pool_hash"][:12]
    for n, line in selection_lines(path, problems):
        at = f"line {n}"
        if not line.strip():
            problems.add(path, "blank line: one id per line", at, "id", kind="blank lines")
            continue
        n_listed += 1
        owner = pool.lang_of.get(line)
        if line != line.strip():
            problems.add(path, f"{line!r:.40} has spaces around the id", at, "id", kind="ids with spaces")
        elif owner is None:
            problems.add(path, f"unknown id {line!r:.40}: not in the frozen pool {short}", at, "id", "unknown ids")
        elif owner != lang:
            problems.add(path, f"{line!r} is in the {owner!r} pool, not {lang!r}", at, "id", "ids of another language")
        elif line in first:
            problems.add(path, f"duplicate id {line!r} (first on line {first[line]})", at, "id", "duplicate ids")
        else:
            first[line] = n
    return n_listed


def _check_top_level(folder: Path, problems: Problems) -> None:
    for entry in sorted(folder.iterdir()):
        kind = TOP_LEVEL.get(entry.name)
        if kind is None:
            allowed = ", ".join(f"{k}{'/' if v == 'folder' else ''}" for k, v in TOP_LEVEL.items())
            problems.add(entry, f"unexpected entry: a submission holds {allowed} only")
        elif (kind == "folder") != entry.is_dir() or entry.is_symlink():
            problems.add(entry, f"expected a {kind}{'' if not entry.is_symlink() else ', not a symbolic link'}")


def _selection_files(folder: Path, pool: FrozenPool, problems: Problems) -> dict[str, Path]:
    """``selection/<lang>.txt`` per language of the pool; a missing, extra or misnamed file is a problem."""
    sel = folder / SELECTION
    if not sel.is_dir():
        problems.add(sel, "missing: the selected ids go in selection/<lang>.txt, one per line")
        return {}
    langs = sorted(pool.counts)
    found = {}
    for entry in sorted(sel.iterdir()):
        lang = entry.name.removesuffix(".txt")
        if not entry.is_file() or entry.is_symlink() or entry.suffix != ".txt":
            problems.add(entry, "unexpected entry: selection/ holds one <lang>.txt file per language")
        elif lang not in langs:
            problems.add(entry, f"language {lang!r} is not in the frozen pool ({', '.join(langs)})")
        else:
            found[lang] = entry
    for lang in langs:
        if lang not in found:
            problems.add(sel / f"{lang}.txt", f"missing: the pool has {pool.counts[lang]} {lang!r} candidates")
    return found


def validate_submission(
    folder: str | Path, params: Params, pool: FrozenPool, *, root: str | Path = ".", name: str | None = None
) -> list[DataError]:
    """Every problem of the submission in ``folder`` against ``pool`` (the frozen pool of ``params``), in a fixed
    order: the folder's entries, the card, the card against the pool, then each language's selection file.

    Parameters
    ----------
    folder : path
        ``submissions/<name>/``: ``method.yaml``, ``selection/<lang>.txt``, optionally ``code/`` and ``README.md``.
    params : Params
        The profile: its name must be the card's ``profile``; its rules are in ``pool.manifest``.
    pool : FrozenPool
        :func:`mdaq.submissions.pool.read_frozen_pool`, checked current by ``check_current``.
    root : path
        The repository a built-in method's ``code`` path is relative to.
    name : str, optional
        The submission's name (default: the folder's name; export validates its folder before naming it).

    Returns
    -------
    list of DataError
        Empty when the submission is valid.

    Raises
    ------
    FileNotFoundError, DataError
        ``folder`` is not a folder (nothing else to report).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such submission folder")
    problems = Problems()
    _check_top_level(folder, problems)
    card, unreadable = read_card(folder / CARD)
    problems.extend(unreadable)
    if card is not None:
        problems.extend(card_problems(card, folder / CARD, name=name or folder.name, root=Path(root)))
        _card_against_pool(card, folder / CARD, params, pool, problems)
    mode = card.get("mode") if card is not None and card.get("mode") in MODES else None
    required, how = required_counts(mode, pool) if mode else ({}, "")
    for lang, path in _selection_files(folder, pool, problems).items():
        n_listed = check_selection_file(path, lang, pool, problems)
        if mode and n_listed != required[lang]:
            problems.add(path, f"lists {n_listed} ids; {mode} mode needs exactly {required[lang]}: {how}")
    return problems.all()


def _card_against_pool(card: dict[str, Any], path: Path, params: Params, pool: FrozenPool, problems: Problems):
    if isinstance(card.get("profile"), str) and card["profile"] != params.profile:
        problems.add(path, f"{card['profile']!r} but validated against profile {params.profile!r}", field="profile")
    given, frozen = card.get("pool_hash"), pool.manifest["pool_hash"]
    if isinstance(given, str) and len(given) == 64 and given != frozen:
        problems.add(
            path, f"{given[:12]}... is not the frozen pool of {params.profile!r} ({frozen[:12]}...)", field="pool_hash"
        )
