"""`params.yaml` as frozen dataclasses: strict loading (unknown keys, wrong types are errors), section hashes."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mdaq.errors import DataError
from mdaq.hardware import PRECISION_CHOICES, PRECISIONS  # "auto" resolves per machine (mdaq.hardware)
from mdaq.names import (
    SUBMISSION_PREFIX,
    check_lang,
    check_name,
    check_relative,
    check_unique,
    path_under,
    submission_method,
    submission_name,
)

LANG_HINT = 'language codes must be strings; quote them in YAML ("no" is read as False otherwise)'


@dataclass(frozen=True)
class SplitConfig:
    """Fractions of the aligned MIDB source range for each split, in this order along the range."""

    qsm_train: float = 0.45
    pool: float = 0.35
    heldout: float = 0.20


@dataclass(frozen=True)
class PrepareConfig:
    """How MIDB becomes QSM-training pairs, a mixed-quality candidate pool and held-out pairs."""

    split: SplitConfig = field(default_factory=SplitConfig)
    guard: int = 5  # positions dropped between blocks so a source item never sits in two splits
    p_revised: float = 0.5  # probability that a pool item is the expert-revised version
    max_pool: int = 48  # 0 = keep the whole pool block; otherwise a seeded subsample (small profiles)
    max_heldout: int = 8  # same for held-out pairs
    qsm_eval_max: int = 16  # held-out pairs per language for the QSM evaluation (qsm_heldout/); 0 = all ~450


@dataclass(frozen=True)
class QSMConfig:
    """The Quality Scoring Model (``mdaq.quality.model``): encoder, loss, optimisation, leave-languages-out."""

    encoder: str = "me5-small"  # asset name under artifacts/base (paper scale: an XLM-R-large folder)
    kind: str = "triplet"  # "triplet" (M-DaQ), "cross" (instruction + response in one input) or "regression" (CaR)
    pooling: str = "mean"
    margin: float = 1.0  # CaR's TripletMarginLoss margin; M-DaQ's is not published
    lr: float = 1.0e-4
    epochs: int = 3
    batch_size: int = 16
    max_len: int = 256
    max_pairs_per_lang: int = 24  # 0 = every qsm_train pair
    warmup_ratio: float = 0.1
    checkpoint_every: int = 25
    freeze_embeddings: bool = True  # the 250k-row token table is 80% of me5's weights; CaR also freezes it early
    unseen_langs: tuple[str, ...] = ("ko", "tr")  # left out of training, reported as unseen
    device: str = "auto"
    precision: str = "auto"  # auto: bf16 where the hardware has it (mdaq.hardware), else fp32; or fp32 / bf16
    dropout: float | None = 0.0  # overrides the encoder's dropout probabilities in training (None = keep)
    group_by_length: int = 16  # k > 0: batches from chunks of k batches sorted by response length; 0 = plain shuffle
    # issue 17's variants; the values here are the paper-faithful scorer (docs/qsm-variants.md measures the others)
    normalize: bool = (
        False  # L2-normalise pooled vectors before the distance (triplet) or the head (cross, regression)
    )
    length_balance: float = 0.0  # share of each language's pairs drawn where the revision is not longer; 0 = random
    val_share: float = 0.1  # share of the training pairs held out to pick the best epoch and stop early; 0 = none
    patience: int = 1  # with val_share: epochs without a lower validation loss before training stops


QSM_KINDS = ("triplet", "regression", "cross")  # mdaq.quality.model


@dataclass(frozen=True)
class FeaturesConfig:
    """Pool features: QSM scores and diversity embeddings (mean-pooled base encoder, ``qsm.encoder``)."""

    embed_max_len: int = 256
    batch_size: int = 32
    precision: str = "auto"  # diversity embeddings; QSM scores use the QSM's own (qsm.precision, resolved here)


@dataclass(frozen=True)
class RayConfig:
    """Where ``mdaq features --engine ray`` runs (``docs/scale.md``); these settings change where and how fast
    features are computed, never their values."""

    address: str = ""  # "": start Ray inside the process; "auto" or "ray://<head>:10001": join that cluster
    workers: int = 2  # actors, each loading the QSM and the encoder once
    threads_per_worker: int = 1  # CPUs reserved and torch threads per actor (1 per core scales best on CPUs)
    gpus_per_worker: float = 0.0  # GPUs per actor on a cluster that has them


@dataclass(frozen=True)
class IFDConfig:
    """Instruction-following difficulty of pool samples (``mdaq.features.ifd``), scored with the profile's base
    model."""

    max_seq_len: int = 192
    batch_size: int = 8
    device: str = "auto"
    precision: str = "auto"


@dataclass(frozen=True)
class SelectConfig:
    """Selection budget per language, and the quotas of the pooled (cross-lingual) mode."""

    budget: int = 12
    pooled_quota: str = "equal"  # pooled mode: "equal", "proportional" or "temperature" (mdaq.selectors.budgets)
    pooled_temperature: float = 1.0  # "temperature" quotas ∝ n_lang ** (1 / T)


@dataclass(frozen=True)
class TrainConfig:
    """LoRA supervised fine-tuning (loss on response tokens only)."""

    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    lr: float = 2.0e-4
    epochs: int = 1
    batch_size: int = 8
    grad_accum: int = 1
    max_seq_len: int = 192
    warmup_ratio: float = 0.1
    weight_decay: float = 0.0
    device: str = "auto"
    precision: str = "auto"  # bf16 autocast of forward/backward matmuls where fast (LoRA weights stay float32)
    checkpoint_every: int = 5  # optimizer steps between resumable checkpoints (0 = none)
    base_dtype: str = "fp32"  # dtype of the frozen base weights ("bf16" halves memory for 8B models)
    accelerate_config: str = ""  # a configs/accelerate file: the stage runs `accelerate launch`; "" = in-process
    group_by_length: int = (
        16  # k > 0: batches from length-sorted chunks of k batches (less padding); 0 = plain shuffle
    )


@dataclass(frozen=True)
class EvaluateConfig:
    """Judge-free evaluation on held-out MIDB pairs."""

    # "lm_eval": the lm-eval tasks of mdaq/evaluation/lm_eval_tasks; "mdaq": mdaq.evaluation.heldout (faster)
    engine: str = "mdaq"
    batch_size: int = 8
    max_seq_len: int = 256
    device: str = "auto"
    precision: str = "auto"


@dataclass(frozen=True)
class GenerateConfig:
    """Answers to translated AlpacaEval and MT-Bench prompts (``mdaq.evaluation.generate``)."""

    max_new_tokens: int = 8
    max_prompt_len: int = 512  # prompt tokens kept (from the left, so the question itself survives)
    batch_size: int = 8
    do_sample: bool = False  # greedy by default; sampling is seeded per batch
    temperature: float = 0.7
    top_p: float = 0.9
    alpaca_eval_items: int = 1  # first N AlpacaEval instructions (0 = all 805)
    mt_bench_items: int = 1  # first N MT-Bench questions (0 = all 80)
    device: str = "auto"
    precision: str = "auto"  # decoding's own rule: auto = bf16 on a fast-bf16 GPU, fp32 on every CPU


@dataclass(frozen=True)
class SAHConfig:
    """The quality-vs-quantity study (``mdaq.pipeline.sah``): extra training-set sizes for curated and unfiltered
    methods."""

    methods: tuple[str, ...] = ()  # e.g. ("random", "mdaq_das"): unfiltered vs curated; each must be in `methods`
    sizes: tuple[int, ...] = ()  # sizes besides select.budget (main grid) and the whole pool (`full`)


@dataclass(frozen=True)
class CompareConfig:
    """Paired comparisons on the leaderboard (:mod:`mdaq.stats`): every row against each of ``against``."""

    against: tuple[str, ...] = ("full", "random")  # the paper's vanilla model and the random subset
    n_boot: int = 2000  # paired bootstrap resamples (items, stratified by language)
    alpha: float = 0.05  # family-wise level: Holm-adjusted over the rows of each comparison


LANG_POLICIES = ("ignore", "loss")


@dataclass(frozen=True)
class JudgeConfig:
    """The pairwise LLM judge (``mdaq.judging``). ``backend: none`` skips the judge stages (offline profiles)."""

    backend: str = "none"  # none | a registered judge that is not a test double (openai_compat: OpenAI, vLLM, ...)
    model: str = ""
    base_url: str = ""  # e.g. http://127.0.0.1:8000/v1 (vLLM) or https://api.openai.com/v1
    api_key_env: str = "MDAQ_JUDGE_API_KEY"  # the NAME of the environment variable holding the key
    prompt: str = "judge_pairwise_v1"
    temperature: float = 0.0
    max_tokens: int = 1024
    timeout_s: float = 120.0
    max_retries: int = 6
    n_concurrent: int = 8
    cancel_grace_s: float = 10.0  # after Ctrl-C / SIGTERM: how long in-flight requests may finish (queued: cancelled)
    requests_per_minute: int = 0  # 0 = no client-side rate limit
    price_per_1m_input: float = 0.0  # USD per million prompt tokens (cost accounting only)
    price_per_1m_output: float = 0.0
    reference: str = "full"  # the method whose answers every method is compared with (the paper's vanilla model)
    lang_policy: str = "ignore"  # "loss": an answer not in the target language loses to one that is


@dataclass(frozen=True)
class Params:
    """The whole ``params.yaml``."""

    profile: str
    seed: int
    seeds: tuple[int, ...]
    languages: tuple[str, ...]
    methods: tuple[str, ...]
    base_model: str
    prepare: PrepareConfig = field(default_factory=PrepareConfig)
    qsm: QSMConfig = field(default_factory=QSMConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    ray: RayConfig = field(default_factory=RayConfig)
    ifd: IFDConfig = field(default_factory=IFDConfig)
    select: SelectConfig = field(default_factory=SelectConfig)
    selectors: dict[str, dict[str, Any]] = field(default_factory=dict)
    train: TrainConfig = field(default_factory=TrainConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    sah: SAHConfig = field(default_factory=SAHConfig)
    compare: CompareConfig = field(default_factory=CompareConfig)
    # per-method seed lists that replace `seeds`; the default runs `full`, its two controls and its submissions once
    method_seeds: dict[str, Any] = field(
        default_factory=lambda: {
            "full": [0],
            "oracle_revised": [0],
            "oracle_raw": [0],
            "sub.mdaq_das": [0],
            "sub.longest_first": [0],
        }
    )
    # folders under submissions/ trained and evaluated like the methods (docs/submitting.md): method `sub.<name>`.
    # Like `methods`, it names content, not a setting: a params file that does not mention it runs none (the default
    # profile lists the repository's submissions; tests/test_config.py checks both)
    submissions: tuple[str, ...] = ()
    runs: dict[str, Any] = field(default_factory=dict)  # generated into params.yaml: the (method, lang, seed) grid
    selects: dict[str, Any] = field(default_factory=dict)  # generated: the runs whose selection a selector makes
    # generated: submission runs whose results are a built-in run's (same ids, same recipe), run key -> run key
    reused_runs: dict[str, Any] = field(default_factory=dict)

    def seeds_of(self, method: str) -> tuple[int, ...]:
        """The replicate seeds of ``method``: ``method_seeds[method]`` when given, else ``seeds``."""
        return tuple(self.method_seeds.get(method, self.seeds))

    @property
    def submission_methods(self) -> tuple[str, ...]:
        """The method names of :attr:`submissions` in the run grid and on the board (``sub.<name>``)."""
        return tuple(submission_method(name) for name in self.submissions)

    @property
    def board_methods(self) -> tuple[str, ...]:
        """Every trained row of the leaderboard: the methods, then the submissions."""
        return (*self.methods, *self.submission_methods)


def _check(value: Any, tp: Any, where: str, path: str) -> Any:
    """Convert/validate ``value`` against type hint ``tp``; raise DataError naming ``where``."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise DataError(path, f"expected a mapping, got {type(value).__name__}", field=where)
        return _build(tp, value, where, path)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise DataError(path, f"expected a list, got {type(value).__name__}", field=where)
        return tuple(_check(v, typing.get_args(tp)[0], f"{where}[{i}]", path) for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise DataError(path, f"expected a mapping, got {type(value).__name__}", field=where)
        return {_key(k, where, path): (dict(v) if isinstance(v, dict) else v) for k, v in value.items()}
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        others = [a for a in args if a is not type(None)]
        if len(others) == 1:  # Optional[X]: check as X
            return _check(value, others[0], where, path)
        return value
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if tp is Any:
        return value
    if not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
        raise DataError(path, f"expected {tp.__name__}, got {value!r:.60} ({type(value).__name__})", field=where)
    if tp is float and not math.isfinite(value):
        raise DataError(path, f"{value!r} is not a finite number", field=where)
    return value


def _key(key: Any, where: str, path: str) -> str:
    """A mapping key of a params section (a method name): a string, since YAML reads ``no:`` as ``False``."""
    if not isinstance(key, str):
        raise DataError(path, f"key {key!r} is not a string; quote it in YAML", field=where)
    return key


def _build(cls: type, data: dict[str, Any], prefix: str, path: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names, key=str)
    if unknown:
        where = f"{prefix}.{unknown[0]}" if prefix else unknown[0]
        raise DataError(path, f"unknown key (valid: {', '.join(sorted(names))})", field=where)
    kwargs = {k: _check(v, hints[k], f"{prefix}.{k}" if prefix else k, path) for k, v in data.items()}
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise DataError(path, f"incomplete section: {e}", field=prefix or None) from None


EXTENDS = "extends"  # a profile key: the profile (same folder) this one overrides
NOT_INHERITED = "submissions"  # a card names one profile, so a profile that extends another never runs its submissions
QUOTA_MODES = ("equal", "proportional", "temperature")  # select.pooled_quota (mdaq.selectors.budgets)


# Value ranges, (low, high, low excluded): a count of steps, samples or tokens is at least 1, a seed, a count that
# may be 0 ("none" or "all", per the field's comment) or a non-negative rate at least 0, a learning rate or a time
# strictly positive, a share or probability in [0, 1].
_AT_LEAST_1 = (1, None, False)
_AT_LEAST_0 = (0, None, False)
_POSITIVE = (0, None, True)
_SHARE = (0, 1, False)
RANGES: dict[str, tuple[float, float | None, bool]] = {
    **dict.fromkeys(
        ("select.budget", "qsm.epochs", "qsm.batch_size", "qsm.max_len", "features.embed_max_len")
        + ("features.batch_size", "ifd.max_seq_len", "ifd.batch_size", "train.lora_r", "train.epochs")
        + ("train.batch_size", "train.grad_accum", "train.max_seq_len", "evaluate.batch_size")
        + ("evaluate.max_seq_len", "generate.max_new_tokens", "generate.max_prompt_len", "generate.batch_size")
        + ("judge.max_tokens", "judge.n_concurrent"),
        _AT_LEAST_1,
    ),
    **dict.fromkeys(
        ("seed", "prepare.guard", "prepare.max_pool", "prepare.max_heldout", "qsm.margin", "qsm.max_pairs_per_lang")
        + ("qsm.checkpoint_every", "qsm.group_by_length", "qsm.patience", "train.weight_decay")
        + ("train.checkpoint_every",)
        + ("train.group_by_length", "generate.temperature", "generate.alpaca_eval_items", "generate.mt_bench_items")
        + ("judge.temperature", "judge.max_retries", "judge.requests_per_minute", "judge.price_per_1m_input")
        + ("judge.price_per_1m_output", "judge.cancel_grace_s"),
        _AT_LEAST_0,
    ),
    **dict.fromkeys(
        ("qsm.lr", "train.lr", "train.lora_alpha", "select.pooled_temperature", "judge.timeout_s"), _POSITIVE
    ),
    **dict.fromkeys(
        ("prepare.split.qsm_train", "prepare.split.pool", "prepare.split.heldout", "prepare.p_revised")
        + ("qsm.warmup_ratio", "qsm.dropout", "qsm.length_balance", "train.lora_dropout", "train.warmup_ratio"),
        _SHARE,
    ),
    "qsm.val_share": (0, 0.5, False),  # at most half: the rest must still train
    "generate.top_p": (0, 1, True),
}


def _dotted(params: Params, key: str) -> Any:
    node: Any = params
    for part in key.split("."):
        node = getattr(node, part)
    return node


def _bound(low: float, high: float | None, open_low: bool) -> str:
    if high is None:
        return f"> {low}" if open_low else f">= {low}"
    return f"in {'(' if open_low else '['}{low}, {high}]"


def _check_ranges(params: Params, path: str) -> None:
    """Every :data:`RANGES` bound, and split fractions that fit in the source range."""
    for key, (low, high, open_low) in RANGES.items():
        value = _dotted(params, key)
        if value is None:  # qsm.dropout: None keeps the encoder's own
            continue
        if (value <= low if open_low else value < low) or (high is not None and value > high):
            raise DataError(path, f"{value!r} is out of range: it must be {_bound(low, high, open_low)}", field=key)
    split = params.prepare.split
    if split.qsm_train + split.pool + split.heldout > 1 + 1e-9:
        total = split.qsm_train + split.pool + split.heldout
        raise DataError(
            path, f"the fractions add up to {total:g}, more than the whole range (1)", field="prepare.split"
        )


def _check_names(params: Params, path: str) -> None:
    """Language codes against the known table, names that become paths, no list entry twice."""
    for key in ("languages", "qsm.unseen_langs"):
        for i, code in enumerate(_dotted(params, key)):
            check_lang(code, path, field=f"{key}[{i}]")
    for key in ("methods", "sah.methods", "compare.against"):
        for i, name in enumerate(_dotted(params, key)):
            check_name(name, path, field=f"{key}[{i}]", what="method name")
            if name.startswith(SUBMISSION_PREFIX):
                msg = f"the prefix {SUBMISSION_PREFIX!r} of {name!r} is reserved for submissions (see `submissions`)"
                raise DataError(path, msg, field=f"{key}[{i}]")
    for i, name in enumerate(params.submissions):
        check_name(name, path, field=f"submissions[{i}]", what="submission name")
    for key in ("languages", "methods", "qsm.unseen_langs", "sah.methods", "compare.against", "submissions"):
        check_unique(_dotted(params, key), path, key)
    for key in ("languages", "methods"):
        if not _dotted(params, key):
            raise DataError(path, "must list at least one", field=key)
    for key in ("profile", "base_model", "qsm.encoder", "judge.prompt", "judge.reference"):
        check_name(_dotted(params, key), path, field=key)
    for name, entry in params.selectors.items():
        check_name(name, path, field=f"selectors.{name}", what="selector name")
        if not isinstance(entry, dict):
            raise DataError(
                path, f"expected a mapping of parameters, got {type(entry).__name__}", field=f"selectors.{name}"
            )
    if params.train.accelerate_config:
        check_relative(params.train.accelerate_config, path, field="train.accelerate_config")


def params_from_dict(data: dict[str, Any], path: str = "<params>") -> Params:
    """Validate a parsed params mapping (see :func:`load_params`)."""
    langs = data.get("languages", [])
    for i, code in enumerate(langs if isinstance(langs, list) else []):
        if not isinstance(code, str):
            raise DataError(path, f"{code!r} is not a string: {LANG_HINT}", field=f"languages[{i}]")
    params = _build(Params, data, "", path)
    _check_names(params, path)
    _check_ranges(params, path)
    if params.qsm.kind not in QSM_KINDS:
        raise DataError(path, f"{params.qsm.kind!r} is not one of {QSM_KINDS}", field="qsm.kind")
    if params.qsm.length_balance > 0 and params.qsm.max_pairs_per_lang == 0:
        raise DataError(
            path,
            "length_balance chooses which pairs are drawn, so it needs max_pairs_per_lang > 0 (0 = every pair)",
            field="qsm.length_balance",
        )
    for section in ("qsm", "features", "ifd", "train", "evaluate", "generate"):
        if getattr(params, section).precision not in PRECISION_CHOICES:
            value = getattr(params, section).precision
            raise DataError(path, f"{value!r} is not one of {PRECISION_CHOICES}", field=f"{section}.precision")
    if params.train.base_dtype not in PRECISIONS:
        raise DataError(path, f"{params.train.base_dtype!r} is not one of {PRECISIONS}", field="train.base_dtype")
    for i, m in enumerate(params.sah.methods):
        if m not in params.methods:
            raise DataError(path, f"{m!r} is not one of the profile's methods", field=f"sah.methods[{i}]")
    for i, size in enumerate(params.sah.sizes):
        if size < 1:
            raise DataError(path, f"{size} is not a positive training-set size", field=f"sah.sizes[{i}]")
    if params.evaluate.engine not in ("lm_eval", "mdaq"):
        raise DataError(path, f"{params.evaluate.engine!r} is not one of ('lm_eval', 'mdaq')", field="evaluate.engine")
    if params.judge.lang_policy not in LANG_POLICIES:
        raise DataError(path, f"{params.judge.lang_policy!r} is not one of {LANG_POLICIES}", field="judge.lang_policy")
    if params.judge.backend == "openai_compat" and not (params.judge.model and params.judge.base_url):
        raise DataError(path, "the openai_compat judge needs judge.model and judge.base_url", field="judge")
    if params.select.pooled_quota not in QUOTA_MODES:
        raise DataError(
            path, f"{params.select.pooled_quota!r} is not one of {QUOTA_MODES}", field="select.pooled_quota"
        )
    if not params.seeds or len(set(params.seeds)) != len(params.seeds) or min(params.seeds) < 0:
        raise DataError(
            path, f"{list(params.seeds)} must be a non-empty list of distinct non-negative integers", field="seeds"
        )
    if not 0 < params.compare.alpha < 1 or params.compare.n_boot < 100:
        raise DataError(path, "alpha must be in (0, 1) and n_boot >= 100", field="compare")
    for method, seeds in params.method_seeds.items():
        where = f"method_seeds.{method}"
        if method not in params.board_methods:
            continue  # an entry for a method or submission this profile does not run (the default's controls); its
            # name is checked against the registry where a profile is adopted (mdaq.selectors.check_selectors)
        if not isinstance(seeds, list | tuple) or not seeds or not all(type(x) is int and x >= 0 for x in seeds):
            raise DataError(path, f"{seeds!r} must be a non-empty list of non-negative integers", field=where)
        if len(set(seeds)) != len(seeds) or params.seeds[0] not in seeds:
            raise DataError(
                path,
                f"{list(seeds)} must be distinct and include seeds[0] = {params.seeds[0]} (the run that is "
                "judged and described)",
                field=where,
            )
    _check_reused_runs(params, path)
    if params.runs and params.runs != run_grid(params):
        raise DataError(
            path,
            "out of date with methods, submissions, languages, seeds and method_seeds: regenerate it with "
            f"`python -m mdaq profile use {params.profile}`",
            field="runs",
        )
    if params.selects and params.selects != select_grid(params):
        raise DataError(
            path, f"out of date with runs: regenerate it with `python -m mdaq profile use {params.profile}`", "selects"
        )
    for method in params.methods:
        if method not in params.selectors:
            raise DataError(path, f"method {method!r} has no entry under selectors", field="selectors")
    return params


def _check_reused_runs(params: Params, path: str) -> None:
    """``reused_runs`` (generated): each key a run of a submission, each value the built-in run of the same language
    and seed whose results it takes."""
    full = _full_grid(params)
    for key, source in params.reused_runs.items():
        where = f"reused_runs.{key}"
        entry, origin = full.get(key), full.get(source) if isinstance(source, str) else None
        if entry is None or submission_name(entry["method"]) is None:
            raise DataError(path, "not a run of one of the profile's submissions", field=where)
        if origin is None or submission_name(origin["method"]) is not None:
            raise DataError(path, f"{source!r:.60} is not a run of one of the profile's methods", field=where)
        if (origin["lang"], origin["seed"]) != (entry["lang"], entry["seed"]):
            raise DataError(path, f"{source!r} is a run of another language or seed", field=where)


def _full_grid(params: Params) -> dict[str, dict[str, Any]]:
    return {
        f"{m}-{lang}-{seed}": {"method": m, "lang": lang, "seed": seed}
        for m in params.board_methods
        for lang in params.languages
        for seed in params.seeds_of(m)
    }


def run_grid(params: Params) -> dict[str, dict[str, Any]]:
    """The (method, language, seed) runs of a profile, keyed ``<method>-<lang>-<seed>`` (the name DVC gives a
    ``method x lang x seed`` matrix entry): every method, then every submission (``sub.<name>``), each with its
    :meth:`Params.seeds_of`, less the submission runs of ``reused_runs`` (their results are a built-in run's).
    ``dvc.yaml``'s ``run`` stage loops over it (``foreach: ${runs}``), the ``select`` stage over its built-in part
    (:func:`select_grid`); :func:`render_params` writes both into ``params.yaml``."""
    return {key: run for key, run in _full_grid(params).items() if key not in params.reused_runs}


def select_grid(params: Params) -> dict[str, dict[str, Any]]:
    """The runs of :func:`run_grid` whose selection a registered selector makes (the ``select`` stage's loop); a
    submission's selection files are written by its ``submission`` stage instead."""
    return {key: run for key, run in run_grid(params).items() if submission_name(run["method"]) is None}


RUNS_HEADER = (
    "# GENERATED by `python -m mdaq profile use` from methods, submissions, languages, seeds, method_seeds and\n"
    "# the submissions' method cards (mdaq.config.run_grid, mdaq.submissions.recipe.plan_reuse): one (method,\n"
    "# language, seed) run per entry. dvc.yaml's run stage loops over `runs`, its select stage over `selects`; a\n"
    "# submission run in `reused_runs` takes the results of the built-in run it names (same ids, same recipe).\n"
    "# Do not edit.\n"
)
GENERATED = ("runs", "selects", "reused_runs")  # keys of params.yaml that `mdaq profile use` writes


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` on top of ``base``: mappings merge key by key (recursively), anything else replaces."""
    out = dict(base)
    for key, value in over.items():
        out[key] = _merge(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    return out


def _yaml_problem(e: yaml.YAMLError) -> str:
    """One line: what is wrong and where (PyYAML's own text spans several lines)."""
    mark = getattr(e, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"malformed YAML{where}: {getattr(e, 'problem', None) or e}"


def _read_yaml_mapping(path: Path) -> dict[str, Any]:
    from mdaq.io import NoAliasLoader, read_text

    try:
        data = yaml.load(read_text(path), Loader=NoAliasLoader)  # noqa: S506 (a safe loader)
    except yaml.YAMLError as e:
        raise DataError(path, _yaml_problem(e)) from None
    except RecursionError:
        raise DataError(path, "YAML nested too deeply to read") from None
    if not isinstance(data, dict):
        raise DataError(path, "expected a mapping at the top level")
    return data


def load_profile(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A profile as one mapping: ``extends: NAME`` (a profile in the same folder) is loaded first and this file's
    keys are merged on top (:func:`_merge`), so a profile holds only what differs from the one it extends. Only
    ``submissions`` is not inherited: a method card names the one profile whose frozen pool it selected from.

    Raises
    ------
    DataError
        Malformed YAML, a missing parent profile, or a cycle of ``extends``.
    """
    path = Path(path)
    data = _read_yaml_mapping(path)
    parent = data.pop(EXTENDS, None)
    if parent is None:
        return data
    parent_path = path_under(path.parent, f"{check_name(parent, path, field=EXTENDS, what='profile name')}.yaml")
    if parent_path.resolve() in _seen or parent_path.resolve() == path.resolve():
        raise DataError(path, f"profiles extend each other in a cycle through {parent_path.name}", field=EXTENDS)
    if not parent_path.is_file():
        raise DataError(path, f"extends {parent!r}, but there is no {parent_path}", field=EXTENDS)
    inherited = load_profile(parent_path, (*_seen, path.resolve()))
    inherited.pop(NOT_INHERITED, None)
    return _merge(inherited, data)


def render_params(profile: str | Path, reused_runs: dict[str, str] | None = None) -> str:
    """The text of ``params.yaml`` for ``profile``: a byte copy of a profile that extends none (its comments are
    the documentation of every default), else the merged mapping under a header that names both files; then the
    generated ``runs`` and ``selects`` grids (:func:`run_grid`, :func:`select_grid`) and ``reused_runs`` (the
    submission runs that take a built-in run's results: :func:`mdaq.submissions.recipe.plan_reuse`, which reads the
    method cards, computes them; ``mdaq profile use`` passes them)."""
    profile = Path(profile)
    text = profile.read_text(encoding="utf-8")
    data = _read_yaml_mapping(profile)
    for key in GENERATED:
        if key in data:
            raise DataError(
                profile, f"`{key}` is generated into params.yaml; a profile sets seeds and method_seeds", field=key
            )
    merged = {**load_profile(profile)}
    merged.setdefault("submissions", [])  # dvc.yaml's submission stage loops over it: always in params.yaml
    params = params_from_dict({**merged, "reused_runs": dict(reused_runs or {})}, str(profile))
    generated = {"runs": run_grid(params), "selects": select_grid(params), "reused_runs": params.reused_runs}
    grid = RUNS_HEADER + yaml.safe_dump(
        generated, sort_keys=False, allow_unicode=True, default_flow_style=None, width=119
    )
    if EXTENDS not in data:
        listed = (
            "" if "submissions" in data else "submissions: []  # none (dvc.yaml's submission stage loops over it)\n"
        )
        return text.rstrip("\n") + "\n\n" + listed + grid
    header = (
        f"# GENERATED by `python -m mdaq profile use {profile.stem}`: profiles/{data[EXTENDS]}.yaml (every default,"
        f" commented)\n# with profiles/{profile.name} on top. Edit those files, not this one; dvc reads this one.\n"
    )
    body = yaml.safe_dump(merged, sort_keys=False, allow_unicode=True, default_flow_style=None, width=119)
    return header + body + "\n" + grid


def load_params(path: str | Path = "params.yaml") -> Params:
    """Load ``params.yaml`` (or any profile, ``extends`` resolved: :func:`load_profile`) strictly.

    Raises
    ------
    DataError
        Unknown key, wrong type, an unquoted language code that YAML turned into a boolean, a method without
        selector parameters. The message names the file and the dotted key.
    """
    path = Path(path)
    return params_from_dict(load_profile(path), str(path))


# Selector settings added after runs were recorded, at the value every earlier run used implicitly: the k-means
# engine, whose "auto" is scikit-learn (the only engine before) on every pool below 100,000 rows; every recorded run's
# pool (MIDB, ~2,300 rows per language) is far below. At that value such a setting does not make a run or a method
# card differ from one made before it existed (mdaq.provenance.run_sha, mdaq.submissions.recipe.reuse_source).
IMPLICIT_SELECTOR_DEFAULTS: dict[str, dict[str, Any]] = {
    method: {"engine": "auto"} for method in ("mdaq_das", "car", "kmeans_diverse")
}


def explicit_selector_params(method: str, params: Any) -> Any:
    """``params`` (a selector's entry) without the :data:`IMPLICIT_SELECTOR_DEFAULTS` settings that hold their
    implicit value; anything that is not a mapping is returned as it is."""
    implicit = IMPLICIT_SELECTOR_DEFAULTS.get(method, {})
    if not isinstance(params, dict) or not implicit:
        return params
    return {k: v for k, v in params.items() if not (k in implicit and implicit[k] == v)}


def section_sha(params: Params, *names: str) -> str:
    """Short sha256 over the named sections (dotted names allowed), for provenance in metrics files."""
    raw = dataclasses.asdict(params)
    picked = {}
    for name in names:
        node: Any = raw
        for part in name.split("."):
            node = node[part]
        picked[name] = node
    return hashlib.sha256(json.dumps(picked, sort_keys=True, default=str).encode()).hexdigest()[:12]
