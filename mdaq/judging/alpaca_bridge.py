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

Nothing touches the network or the current directory: ``reference_outputs`` is always given,
``precomputed_leaderboard=None`` (no hub leaderboard), ``output_path=None`` (alpaca_eval writes no results), and
``caching_path`` (alpaca_eval's own annotation cache, which would default to a file inside this package) is a file
under ``out_dir`` or ``None``.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from mdaq.io import write_json

log = logging.getLogger(__name__)

CONFIG_DIR = Path(__file__).resolve().parent / "alpaca_eval_config"
ORDERS = ("main", "swapped")  # main: model is output_2 (alpaca_eval's convention); swapped: model is output_1
_PLACEHOLDERS = ("{instruction}", "{output_1}", "{output_2}", "{language}")
_IM_START, _IM_END = "<|im_start|>", "<|im_end|>"


class CompletionLike(Protocol):
    """The fields of ``mdaq.judging.base.Completion`` that the bridge reads (read-only, as in the frozen dataclass)."""

    @property
    def text(self) -> str: ...

    @property
    def cost_usd(self) -> float: ...

    @property
    def latency_s(self) -> float: ...


class ChatBackend(Protocol):
    """The judge interface of ``mdaq.judging.base``: OpenAI-style conversations in, completions out in input order."""

    @property
    def id(self) -> str: ...

    def chat_many(self, conversations: Sequence[list[dict[str, str]]]) -> Sequence[CompletionLike]: ...


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


def language_name(lang: str) -> str:
    """English name of an ISO 639-1 code for the judge prompt (``"de"`` -> ``"German (de)"``); else ``lang``."""
    from mdaq.data.midb import LANG_FILES

    name = LANG_FILES.get(lang)
    return f"{name} ({lang})" if name else lang


def _import_alpaca_eval() -> Any:
    """Import ``alpaca_eval.main``, undoing the root-logger level that ``alpaca_eval.annotators.base`` sets."""
    root = logging.getLogger()
    level = root.level
    try:
        import alpaca_eval.main as ae_main
    finally:
        root.setLevel(level)
    return ae_main


def _records(rows: list[dict], what: str, language: str, default_generator: str) -> list[dict[str, str]]:
    """Validated, minimal AlpacaEval records (instruction, language, output, generator); unique instructions."""
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
        out.append({"instruction": instr, "language": language, "output": output, "generator": str(generator)})
    return out


def _pref(value: Any) -> float:
    """alpaca_eval preference as a float; missing (None/NaN) -> NaN."""
    if value is None:
        return math.nan
    value = float(value)
    return value if not math.isnan(value) else math.nan


def combine_preferences(main: float, swapped: float) -> float:
    """Combine the two orders (both already in model orientation: 2 = model better).

    Agreement gives the shared value, disagreement a tie (1.5), and any unparsed verdict NaN.
    """
    if math.isnan(main) or math.isnan(swapped):
        return math.nan
    return main if main == swapped else 1.5


def summarize(prefs: Sequence[float]) -> dict[str, float | int]:
    """Win rate (percent, ties count half: mean(pref - 1) * 100) and counts over the parsed preferences."""
    parsed = [p for p in prefs if not math.isnan(p)]
    n = len(parsed)
    return {
        "win_rate": (sum(p - 1 for p in parsed) / n * 100) if n else math.nan,
        "n_total": n,
        "n_wins": sum(p > 1.5 for p in parsed),
        "n_losses": sum(p < 1.5 for p in parsed),
        "n_draws": sum(p == 1.5 for p in parsed),
        "n_unparsed": len(prefs) - n,
    }


def _template_path() -> Path:
    """The prompt template named in ``configs.yaml``, resolved like alpaca_eval does (relative to the folder above)."""
    import yaml

    configs = yaml.safe_load((CONFIG_DIR / "configs.yaml").read_text(encoding="utf-8"))
    (cfg,) = configs.values()
    path = CONFIG_DIR.parent / cfg["prompt_template"]
    if not path.is_file():  # alpaca_eval would silently use the missing path itself as the prompt
        raise FileNotFoundError(path)
    return path


def _cache_path(out_dir: Path | None, backend_id: str) -> Path | None:
    """alpaca_eval's annotation cache under ``out_dir``, named by judge id + config + template (never stale)."""
    if out_dir is None:
        return None
    h = hashlib.sha256(backend_id.encode())
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
) -> dict:
    """Judge ``model_outputs`` against ``reference_outputs`` with alpaca_eval, in both answer orders.

    Parameters
    ----------
    model_outputs, reference_outputs : list of dict
        AlpacaEval model-outputs records (``instruction``, ``output``, ``generator``, optionally ``dataset``),
        matched on ``instruction``. Both must hold the same, unique instructions. A missing ``generator`` becomes
        ``name`` (model) or ``"reference"``.
    backend : ChatBackend
        The judge; called through alpaca_eval as its completion function (no caching of its own is assumed).
    lang : str
        Language of the instructions (ISO 639-1 code or a name); shown to the judge as e.g. ``German (de)``.
    out_dir : Path, optional
        Where ``annotations.json`` (both orders, AlpacaEval annotation format plus ``order``) and alpaca_eval's
        annotation cache (``alpaca_eval_cache/``) go. Without it nothing is written.
    name : str
        Model name for alpaca_eval's leaderboard row.

    Returns
    -------
    dict
        ``instructions`` (model_outputs order); ``preferences`` with ``main``, ``swapped`` and ``combined`` lists
        aligned with them, all in model orientation (1 = reference better, 1.5 = tie, 2 = model better, NaN =
        unparsed verdict); ``summary`` (:func:`summarize` of each list); ``leaderboard``: alpaca_eval's
        ``get_winrate`` numbers for the main order (``win_rate``, ``standard_error``, ``discrete_win_rate``,
        ``n_total``, ``n_wins``, ``n_wins_base``, ``n_draws``); ``annotations``: both orders' records;
        ``n_judge_calls``; and ``lang``, ``name``, ``reference``, ``judge``.

    Notes
    -----
    Identical model and reference answers are scored 1.5 by alpaca_eval without asking the judge.
    """
    language = language_name(lang)
    model = _records(model_outputs, "model_outputs", language, name)
    reference = _records(reference_outputs, "reference_outputs", language, "reference")
    m_set, r_set = {r["instruction"] for r in model}, {r["instruction"] for r in reference}
    if m_set != r_set:
        raise ValueError(
            f"model_outputs and reference_outputs differ in instructions: {len(m_set - r_set)} only in the model's, "
            f"{len(r_set - m_set)} only in the reference's"
        )
    if not model:
        raise ValueError("no outputs to evaluate")
    template = _template_path()

    ae_main = _import_alpaca_eval()
    fn = _JudgeCompletions(backend, template.read_text(encoding="utf-8").count(_IM_START))
    common = dict(
        annotators_config=str(CONFIG_DIR / "configs.yaml"),
        precomputed_leaderboard=None,
        output_path=None,
        is_return_instead_of_print=True,
        fn_metric="get_winrate",
        sort_by="win_rate",
        is_cache_leaderboard=False,
        input_keys=("instruction", "language"),
        caching_path=_cache_path(out_dir, backend.id),
        fn_completions=fn,
    )
    reference_name = reference[0]["generator"]
    df_lb, ann_main = ae_main.evaluate(model_outputs=model, reference_outputs=reference, name=name, **common)
    _, ann_swapped = ae_main.evaluate(
        model_outputs=reference, reference_outputs=model, name=f"{reference_name} (swapped)", **common
    )

    instructions = [r["instruction"] for r in model]
    by_order = {"main": ann_main, "swapped": ann_swapped}
    prefs: dict[str, list[float]] = {}
    annotations: list[dict] = []
    for order, ann in by_order.items():
        by_instr = {a["instruction"]: a for a in ann}
        prefs[order] = []
        for instr in instructions:
            a = by_instr.get(instr)
            raw = _pref(a.get("preference")) if a else math.nan
            prefs[order].append(raw if order == "main" or math.isnan(raw) else 3 - raw)
            if a is not None:
                annotations.append(_annotation_record(a, order, lang, backend.id, raw))
    prefs["combined"] = [combine_preferences(m, s) for m, s in zip(prefs["main"], prefs["swapped"], strict=True)]

    row = df_lb.loc[name]
    keys = ("win_rate", "standard_error", "discrete_win_rate", "n_total", "n_wins", "n_wins_base", "n_draws")
    leaderboard = {k: _plain(row[k]) for k in keys if k in row}

    if out_dir is not None:
        write_json(Path(out_dir) / "annotations.json", annotations)
    return {
        "lang": lang,
        "name": name,
        "reference": reference_name,
        "judge": backend.id,
        "instructions": instructions,
        "preferences": prefs,
        "summary": {k: summarize(v) for k, v in prefs.items()},
        "leaderboard": leaderboard,
        "annotations": annotations,
        "n_judge_calls": fn.n_prompts,
    }


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
