"""One recipe for everyone: which submission runs take a built-in run's results (planned where a profile is
adopted), and a submission's tier (decided by regenerating its selection in the pipeline)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mdaq.config import Params, explicit_selector_params
from mdaq.errors import DataError, MissingAssetError
from mdaq.names import path_under, submission_method
from mdaq.submissions.card import CARD, read_card

VERIFIED, COMMUNITY, BUILTIN = "verified", "community", "builtin"  # the leaderboard's tiers


def reuse_source(name: str, card: dict[str, Any], params: Params) -> tuple[str, int] | None:
    """The built-in run whose selection the card of submission ``name`` says it is: ``(method, seed)`` when its
    ``selector`` block names one of the profile's methods, with the profile's parameters for it, the registered
    version, and a seed that both the method and the submission run; else None.

    Same ids and the same recipe give the same adapter (training sorts the samples by id before its seeded
    shuffle), so such a run is not trained twice. The claim is checked where the submission is imported
    (:func:`check_tier`): a submission whose regenerated ids differ stops the pipeline.
    """
    from mdaq.selectors import SELECTORS

    block = card.get("selector")
    if not isinstance(block, dict):
        return None
    method, seed = block.get("method"), block.get("seed")
    if method not in params.methods or method not in SELECTORS:
        return None
    card_params = explicit_selector_params(method, block.get("params"))  # a card written before a setting existed
    if card_params != explicit_selector_params(method, params.selectors.get(method)):
        return None
    if block.get("version") != SELECTORS.get(method).version:
        return None
    if seed not in params.seeds_of(method) or seed not in params.seeds_of(submission_method(name)):
        return None
    return method, seed


def read_listed_card(params: Params, submissions_dir: str | Path, name: str) -> dict[str, Any]:
    """The card of a submission the profile lists, refusing one that is missing, unreadable or for another profile.

    Raises
    ------
    DataError
        Naming the card and what to fix.
    """
    path = path_under(submissions_dir, name, CARD)
    card, problems = read_card(path)
    if card is None:
        raise DataError(path, f"{problems[0].message} (profile {params.profile!r} lists {name!r} under submissions)")
    if card.get("profile") != params.profile:
        msg = f"{card.get('profile')!r:.40}, but profile {params.profile!r} lists {name!r} under submissions"
        raise DataError(path, msg, field="profile")
    return card


def plan_reuse(params: Params, submissions_dir: str | Path = "submissions") -> dict[str, str]:
    """``reused_runs`` for ``params.yaml``: every (submission, language, seed) run that :func:`reuse_source` maps to
    a built-in run, as ``{"sub.<name>-<lang>-<seed>": "<method>-<lang>-<seed>"}``. ``mdaq profile use`` writes it;
    :func:`mdaq.config.run_grid` leaves those runs out.

    Raises
    ------
    DataError
        A listed submission without a readable card, or whose card names another profile.
    """
    reused = {}
    for name in params.submissions:
        source = reuse_source(name, read_listed_card(params, submissions_dir, name), params)
        if source is not None:
            method, seed = source
            for lang in params.languages:
                reused[f"{submission_method(name)}-{lang}-{seed}"] = f"{method}-{lang}-{seed}"
    return reused


def regenerate(
    card: dict[str, Any], params: Params, lang: str, *, pool_dir: str | Path, features: str | Path, ifd: str | Path
) -> list[str]:
    """The ids the card's registered selector (``selector``: method, params, seed) selects from ``lang``'s pool
    with the pipeline's features, exactly as the ``select`` stage would (``notebooks/20_select.ipynb``)."""
    from mdaq.features.pool import load_pool
    from mdaq.selectors import SELECTORS, get_selector

    block = card["selector"]
    cls = SELECTORS.get(block["method"])
    pool = load_pool(
        lang,
        path_under(pool_dir, f"{lang}.jsonl"),
        path_under(features, lang),
        path_under(ifd, lang),
        scorer=cls.scorer,
    )
    selector = get_selector(block["method"], block["params"], random_state=block["seed"])
    return [pool.samples[i].id for i in selector.select(pool, params.select.budget)]


def check_tier(
    card: dict[str, Any], ids: dict[str, list[str]], params: Params, **paths: str | Path
) -> tuple[str, str, dict[str, int] | None]:
    """The submission's tier, the reason in words, and per language how many submitted ids the regenerated selection
    lacks (None when nothing was regenerated).

    ``verified``: the card's ``selector`` block names a registered method and the pipeline, running it with the
    card's parameters and seed on the same pool and features (:func:`regenerate`), selects the same ids in every
    language (the order may differ: training does not depend on it). ``community``: ids only, a selection that
    differs, or one that cannot be regenerated here (say, a feature this profile does not compute).
    ``paths``: ``pool_dir``, ``features`` and ``ifd``, as for :func:`regenerate`.
    """
    block = card.get("selector")
    if not isinstance(block, dict):
        return COMMUNITY, "ids only: the card names no registered selector to regenerate them", None
    differ = {}
    try:
        for lang, lang_ids in ids.items():
            differ[lang] = len(set(lang_ids) - set(regenerate(card, params, lang, **paths)))
    except (DataError, MissingAssetError, FileNotFoundError, KeyError, ValueError) as e:
        return COMMUNITY, f"could not regenerate the selection of {block['method']} here: {e}", None
    if any(differ.values()):
        counts = ", ".join(f"{n} of {len(ids[lang])} in {lang}" for lang, n in differ.items() if n)
        return COMMUNITY, f"{block['method']} (seed {block['seed']}) regenerated other ids: {counts}", differ
    return VERIFIED, f"{block['method']} (seed {block['seed']}) regenerated the same ids in every language", differ
