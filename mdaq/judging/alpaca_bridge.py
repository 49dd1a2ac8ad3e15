"""AlpacaEval through the ``alpaca_eval`` package, with mdaq's LLM judge as the annotator's completion function.

``run_alpaca_eval`` compares a model's answers with reference answers (the ``full`` model's, in mdaq) on the
translated instructions of one language by calling :func:`alpaca_eval.main.evaluate` twice, once per answer order,
and combines the two verdicts per instruction.

How the judge is plugged in (alpaca_eval 0.6.6)
-----------------------------------------------
* ``alpaca_eval.decoders.get_fn_completions`` returns any non-string unchanged, so a *callable* is a valid
  ``fn_completions``; ``SingleAnnotator.__init__`` resolves its ``fn_completions`` argument through it.
* ``evaluate(**annotator_kwargs)`` passes extra keywords to ``PairwiseAnnotator``, whose ``BaseAnnotator.__init__``
  forwards unknown keywords (``**single_annotator_kwargs``) to every ``SingleAnnotator`` next to the keys of the
  config file. ``fn_completions=_JudgeCompletions(backend)`` therefore reaches the annotator; the config file in
  ``mdaq/judging/alpaca_eval_config/`` leaves ``fn_completions`` out (a second value would be a duplicate keyword).
* The callable is called as ``fn(prompts=[...])`` and returns ``{"completions", "price_per_example",
  "time_per_example"}``, alpaca_eval's decoder contract (see ``alpaca_eval/decoders/test.py``).
* ``prompt_template`` and ``fn_completion_parser`` travel the same way: the template is the project's judge prompt
  (``mdaq/judging/prompts/<version>.txt``, the one :mod:`mdaq.judging.base` sends for MT-Bench) with the language
  filled in and its answer placeholders renamed to alpaca_eval's, and the parser is
  :func:`mdaq.judging.base.parse_verdict`. The two orders are combined by :func:`mdaq.judging.winrate.combine_orders`
  and summarised by :func:`mdaq.judging.winrate.win_rate_stats`: one prompt, one parser, one combiner for every
  benchmark. The packaged ``configs.yaml`` holds only alpaca_eval's annotator settings.

Nothing touches the network or the current directory: ``reference_outputs`` is always given,
``precomputed_leaderboard=None`` (no hub leaderboard), ``output_path=None`` (alpaca_eval writes no results), and
``caching_path`` (alpaca_eval's own annotation cache, which would default to a file inside this package) is a file
under ``out_dir`` or ``None``.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mdaq.io import write_json
from mdaq.judging.base import DEFAULT_PROMPT, ORDERS, RECORD_KEYS, ChatBackend, Prompt, load_prompt, parse_verdict
from mdaq.judging.winrate import PREFERENCE, combine_orders, win_rate_stats

log = logging.getLogger(__name__)

CONFIG_DIR = Path(__file__).resolve().parent / "alpaca_eval_config"
# alpaca_eval's main run shows the model as output_2 (reference first); its swapped run shows the model first
RUN_ORDER = {"main": "reference_first", "swapped": "model_first"}
_PLACEHOLDERS = ("{instruction}", "{output_1}", "{output_2}")
_IM_START, _IM_END = "<|im_start|>", "<|im_end|>"
_WINNER = {v: k for k, v in PREFERENCE.items()}  # 2.0 -> model, 1.0 -> reference, 1.5 -> tie (model orientation)


def chatml_to_messages(prompt: str, n_messages: int) -> list[dict[str, str]]:
    """Split an alpaca_eval ChatML prompt into ``n_messages`` OpenAI-style messages.

    Unlike ``alpaca_eval.utils.prompt_to_chatml``, the last message runs to the final ``<|im_end|>``: the template
    fixes how many messages there are and the data (instruction, answers) is formatted into the last one, so an
    answer that itself contains ChatML markers can neither split nor truncate the prompt.

    Parameters
    ----------
    prompt : str
        ``<|im_start|>role\\ncontent<|im_end|>`` blocks, as in alpaca_eval's chat templates.
    n_messages : int
        Number of messages in the template (its count of ``<|im_start|>``); 0 means a plain-text prompt, sent as
        one user message.

    Returns
    -------
    list of dict
        ``{"role": ..., "content": ...}`` messages.
    """
    text = prompt.strip()
    if n_messages == 0:
        return [{"role": "user", "content": text}]
    messages = []
    for i in range(n_messages):
        if not text.startswith(_IM_START):
            raise ValueError(f"malformed ChatML prompt: message {i} does not start with {_IM_START}")
        header, _, body = text[len(_IM_START) :].partition("\n")
        if i == n_messages - 1:
            if not body.endswith(_IM_END):
                raise ValueError(f"malformed ChatML prompt: it does not end with {_IM_END}")
            content, text = body[: -len(_IM_END)], ""
        else:
            content, _, text = body.partition(_IM_END)
            text = text.lstrip()
        messages.append({"role": header.strip(), "content": content.strip()})
    return messages


class _JudgeCompletions:
    """alpaca_eval completion function backed by a :class:`ChatBackend` (one conversation per prompt).

    alpaca_eval calls it as ``fn(prompts=[...], **completions_kwargs)``; the result follows its decoder contract.
    """

    def __init__(self, backend: ChatBackend, n_messages: int):
        self.backend = backend
        self.n_messages = n_messages
        self.n_prompts = 0

    def __call__(self, prompts: Sequence[str], **kwargs: Any) -> dict[str, list]:
        if kwargs:
            log.debug("ignoring completion kwargs %s", sorted(kwargs))
        conversations = [chatml_to_messages(p, self.n_messages) for p in prompts]
        out = list(self.backend.chat_many(conversations))
        if len(out) != len(prompts):
            raise RuntimeError(f"judge {self.backend.id!r} returned {len(out)} completions for {len(prompts)} prompts")
        self.n_prompts += len(prompts)
        return {
            "completions": [c.text for c in out],
            "price_per_example": [float(c.cost_usd) for c in out],
            "time_per_example": [float(c.latency_s) for c in out],
        }


def alpaca_template(prompt: Prompt, lang: str) -> str:
    """The judge prompt as an alpaca_eval template for language ``lang``: one ChatML user message, ``{lang}`` filled
    in, ``{answer_1}`` / ``{answer_2}`` renamed to alpaca_eval's ``{output_1}`` / ``{output_2}`` (alpaca_eval needs
    each placeholder exactly once per example)."""
    if "{" in lang or "}" in lang:
        raise ValueError(f"language code {lang!r} contains a brace")
    text = prompt.text.replace("{lang}", lang).replace("{answer_1}", "{output_1}").replace("{answer_2}", "{output_2}")
    found = re.findall(r"\{([a-z0-9_]+)\}", text)
    if sorted(found) != ["instruction", "output_1", "output_2"]:
        raise ValueError(f"prompt {prompt.name!r} is not a single-turn judge prompt: placeholders {found}")
    return f"{_IM_START}user\n{text.strip()}\n{_IM_END}"


def alpaca_parser(completion: str) -> list[float | None]:
    """alpaca_eval completion parser: :func:`mdaq.judging.base.parse_verdict` as alpaca_eval's preference (``[[1]]``
    -> 1, ``[[2]]`` -> 2, ``[[0]]`` -> 1.5); an unparsed reply -> ``[None]`` (stored as NaN, never guessed)."""
    verdict = parse_verdict(completion)
    return [None if verdict is None else {1: 1.0, 2: 2.0, 0: 1.5}[verdict]]


def _import_alpaca_eval() -> Any:
    """Import ``alpaca_eval.main``, undoing the root-logger level that ``alpaca_eval.annotators.base`` sets."""
    root = logging.getLogger()
    level = root.level
    try:
        import alpaca_eval.main as ae_main
    finally:
        root.setLevel(level)
    return ae_main


def _records(rows: list[dict], what: str, default_generator: str) -> list[dict[str, str]]:
    """Validated, minimal AlpacaEval records (instruction, output, generator); unique instructions."""
    out, seen = [], set()
    for i, row in enumerate(rows):
        instr, output = row.get("instruction"), row.get("output")
        if not isinstance(instr, str) or not isinstance(output, str):
            raise ValueError(f"{what}[{i}]: 'instruction' and 'output' must be strings")
        if instr in seen:
            raise ValueError(f"{what}[{i}]: duplicate instruction {instr[:60]!r}")
        for text in (instr, output):
            hit = next((p for p in _PLACEHOLDERS if p in text), None)
            if hit:  # alpaca_eval fills placeholders by replacing their first occurrence in the growing prompt
                raise ValueError(f"{what}[{i}]: text contains the template placeholder {hit!r}")
        seen.add(instr)
        generator = row.get("generator") or default_generator
        out.append({"instruction": instr, "output": output, "generator": str(generator)})
    return out


def _pref(value: Any) -> float:
    """alpaca_eval preference as a float; missing (None/NaN) -> NaN."""
    if value is None:
        return math.nan
    value = float(value)
    return value if not math.isnan(value) else math.nan


def _cache_path(out_dir: Path | None, backend_id: str, template: str) -> Path | None:
    """alpaca_eval's annotation cache under ``out_dir``, named by judge id + config + template (never stale)."""
    if out_dir is None:
        return None
    h = hashlib.sha256(backend_id.encode() + b"\0" + template.encode("utf-8"))
    for f in sorted(CONFIG_DIR.iterdir()):
        if f.is_file() and not f.name.startswith("."):
            h.update(f.name.encode() + b"\0" + f.read_bytes())
    cache_dir = Path(out_dir) / "alpaca_eval_cache"
    cache_dir.mkdir(parents=True, exist_ok=True)
    return cache_dir / f"annotations_{h.hexdigest()[:16]}.json"


def run_alpaca_eval(
    model_outputs: list[dict],
    reference_outputs: list[dict],
    backend: ChatBackend,
    *,
    lang: str,
    out_dir: Path | None = None,
    name: str = "model",
    reference: str = "reference",
    prompt: Prompt | str | None = None,
) -> dict:
    """Judge ``model_outputs`` against ``reference_outputs`` with alpaca_eval, in both answer orders.

    Parameters
    ----------
    model_outputs, reference_outputs : list of dict
        AlpacaEval model-outputs records (``instruction``, ``output``, ``generator``, optionally ``dataset`` and
        ``detected_lang``), matched on ``instruction``. Both must hold the same, unique instructions. A missing
        ``generator`` becomes ``name`` (model) or ``reference``.
    backend : ChatBackend
        The judge; called through alpaca_eval as its completion function (no caching of its own is assumed).
    lang : str
        ISO 639-1 code of the instructions' language, filled into the prompt's ``{lang}``.
    out_dir : Path, optional
        Where ``annotations.json`` (both orders, AlpacaEval annotation format plus ``order``) and alpaca_eval's
        annotation cache (``alpaca_eval_cache/``) go. Without it nothing is written.
    name, reference : str
        Method names of the model and of the reference, as the judgment records carry them.
    prompt : Prompt or str, optional
        The single-turn judge prompt (default: the backend's ``prompt`` attribute, else
        :data:`mdaq.judging.base.DEFAULT_PROMPT`).

    Returns
    -------
    dict
        ``instructions`` (model_outputs order); ``records``: one judgment record per (instruction, order) with
        :data:`mdaq.judging.base.RECORD_KEYS`, the prompt's version and sha, ready for
        :func:`mdaq.judging.winrate.combine_orders`; ``preferences`` with ``reference_first`` (alpaca_eval's main
        run), ``model_first`` and ``combined`` lists aligned with the instructions, in model orientation (1 =
        reference better, 1.5 = tie, 2 = model better, NaN = unparsed); ``summary``:
        :func:`mdaq.judging.winrate.win_rate_stats` of each list; ``leaderboard``: alpaca_eval's ``get_winrate``
        numbers for the main run (a cross-check); ``annotations``; ``n_judge_calls``; ``lang``, ``name``,
        ``reference``, ``judge``, ``prompt_version``, ``prompt_sha``.

    Notes
    -----
    Identical model and reference answers are scored 1.5 by alpaca_eval without asking the judge.
    """
    prompt = prompt or getattr(backend, "prompt", None) or DEFAULT_PROMPT
    prompt = load_prompt(prompt) if isinstance(prompt, str) else prompt
    model = _records(model_outputs, "model_outputs", name)
    refs = _records(reference_outputs, "reference_outputs", reference)
    m_set, r_set = {r["instruction"] for r in model}, {r["instruction"] for r in refs}
    if m_set != r_set:
        raise ValueError(
            f"model_outputs and reference_outputs differ in instructions: {len(m_set - r_set)} only in the model's, "
            f"{len(r_set - m_set)} only in the reference's"
        )
    if not model:
        raise ValueError("no outputs to evaluate")
    template = alpaca_template(prompt, lang)

    fn = _JudgeCompletions(backend, template.count(_IM_START))
    df_lb, ann_main, ann_swapped = _evaluate_both_runs(
        model, refs, name, template, fn, _cache_path(out_dir, backend.id, template)
    )
    instructions = [r["instruction"] for r in model]
    meta = {"judge_id": backend.id, "prompt_version": prompt.name, "prompt_sha": prompt.sha}
    prefs, annotations, records = _collect(
        {"main": ann_main, "swapped": ann_swapped},
        instructions,
        model_outputs,
        reference_outputs,
        name,
        reference,
        lang,
        meta,
    )
    prefs["combined"] = [it["preference"] for it in combine_orders(records)]

    row = df_lb.loc[name]
    keys = ("win_rate", "standard_error", "discrete_win_rate", "n_total", "n_wins", "n_wins_base", "n_draws")
    leaderboard = {k: _plain(row[k]) for k in keys if k in row}

    if out_dir is not None:
        write_json(Path(out_dir) / "annotations.json", annotations)
    return {
        "lang": lang,
        "name": name,
        "reference": reference,
        "judge": backend.id,
        "prompt_version": prompt.name,
        "prompt_sha": prompt.sha,
        "instructions": instructions,
        "records": records,
        "preferences": prefs,
        "summary": {k: win_rate_stats(v) for k, v in prefs.items()},
        "leaderboard": leaderboard,
        "annotations": annotations,
        "n_judge_calls": fn.n_prompts,
    }


def _evaluate_both_runs(
    model: list[dict], refs: list[dict], name: str, template: str, fn: _JudgeCompletions, caching_path: Path | None
) -> tuple[Any, list[dict], list[dict]]:
    """alpaca_eval's ``evaluate`` twice: the model as output_2 (main run), then as output_1 (swapped run)."""
    ae_main = _import_alpaca_eval()
    with tempfile.TemporaryDirectory(prefix="mdaq-alpaca-") as tmp:
        template_path = Path(tmp) / "template.txt"  # absolute: alpaca_eval reads it as is
        template_path.write_text(template, encoding="utf-8")
        common = dict(
            annotators_config=str(CONFIG_DIR / "configs.yaml"),
            precomputed_leaderboard=None,
            output_path=None,
            is_return_instead_of_print=True,
            fn_metric="get_winrate",
            sort_by="win_rate",
            is_cache_leaderboard=False,
            caching_path=caching_path,
            fn_completions=fn,
            fn_completion_parser=alpaca_parser,
            prompt_template=str(template_path),
        )
        df_lb, ann_main = ae_main.evaluate(model_outputs=model, reference_outputs=refs, name=name, **common)
        swapped_name = f"{refs[0]['generator']} (swapped)"
        _, ann_swapped = ae_main.evaluate(model_outputs=refs, reference_outputs=model, name=swapped_name, **common)
    return df_lb, ann_main, ann_swapped


def _collect(
    runs: dict[str, list[dict]],
    instructions: list[str],
    model_outputs: list[dict],
    reference_outputs: list[dict],
    name: str,
    reference: str,
    lang: str,
    meta: dict[str, Any],
) -> tuple[dict[str, list[float]], list[dict], list[dict]]:
    """Per-order preferences (model orientation), annotation rows and judgment records of both runs."""
    model_by = {r["instruction"]: r for r in model_outputs}
    ref_by = {r["instruction"]: r for r in reference_outputs}
    prefs: dict[str, list[float]] = {}
    annotations: list[dict] = []
    records: list[dict] = []
    for run, ann in runs.items():
        order = RUN_ORDER[run]
        by_instr = {a["instruction"]: a for a in ann}
        prefs[order] = []
        for k, instr in enumerate(instructions):
            a = by_instr.get(instr)
            raw = _pref(a.get("preference")) if a else math.nan
            pref = raw if run == "main" or math.isnan(raw) else 3 - raw  # model orientation
            prefs[order].append(pref)
            if a is not None:
                annotations.append(_annotation_record(a, order, lang, meta["judge_id"], raw))
            rec = _judgment_record(a, k, order, pref, model_by[instr], ref_by[instr], name, reference, lang, meta)
            records.append(rec)
    records.sort(key=lambda r: (int(r["item_id"]), ORDERS.index(r["order"])))
    return prefs, annotations, records


def _judgment_record(
    a: dict | None,
    k: int,
    order: str,
    pref: float,
    model_row: dict,
    ref_row: dict,
    name: str,
    reference: str,
    lang: str,
    meta: dict[str, Any],
) -> dict[str, Any]:
    """One order of one AlpacaEval item as an mdaq judgment record (:data:`mdaq.judging.base.RECORD_KEYS`)."""
    winner = None if math.isnan(pref) else _WINNER[float(pref)]
    verdict = None
    if winner is not None:  # the position verdict that names this winner in this order
        first_wins = (winner == "model") == (order == "model_first")
        verdict = 0 if winner == "tie" else (1 if first_wins else 2)
    rec = {
        "benchmark": "alpaca_eval",
        "lang": lang,
        "item_id": str(k),
        "model": name,
        "reference": reference,
        "order": order,
        "verdict": verdict,
        "winner": winner,
        "raw": _plain(a.get("preference_raw_completion")) if a else None,
        **meta,
        "model_len": len(model_row["output"]),
        "reference_len": len(ref_row["output"]),
        "model_lang": model_row.get("detected_lang"),
        "reference_lang": ref_row.get("detected_lang"),
        "target_lang": lang,
        "prompt_tokens": None,
        "completion_tokens": None,
        "cost_usd": _plain(a.get("preference_price_per_example")) if a else None,
        "latency_s": _plain(a.get("preference_time_per_example")) if a else None,
        "cached": None,
    }
    return {key: rec[key] for key in RECORD_KEYS}


def _plain(value: Any) -> Any:
    """numpy/pandas scalar -> Python scalar; NaN/None -> None (JSON-safe)."""
    if value is None:
        return None
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _annotation_record(a: dict, order: str, lang: str, judge: str, raw: float) -> dict:
    """An AlpacaEval annotation row (raw orientation: 2 = output_2 better) plus ``order``, ``lang`` and judge."""
    return {
        "instruction": a["instruction"],
        "output_1": a["output_1"],
        "output_2": a["output_2"],
        "generator_1": a.get("generator_1"),
        "generator_2": a.get("generator_2"),
        "preference": None if math.isnan(raw) else raw,
        "order": order,
        "lang": lang,
        "annotator": judge,
        "raw_completion": _plain(a.get("preference_raw_completion")),
        "price_per_example": _plain(a.get("preference_price_per_example")),
        "time_per_example": _plain(a.get("preference_time_per_example")),
    }
