"""Judge-free metrics through lm-eval: expert-preference accuracy and reference NLL as lm-eval tasks on local files.

The two tasks live in ``mdaq/evaluation/lm_eval_tasks`` as YAML templates:

``mdaq_expert_pref``
    ``multiple_choice`` over ``[chosen, rejected]`` (gold 0) with a custom ``process_results``:
    ``expert_pref_acc`` = share of pairs whose expert-revised response has the higher mean per-token log-prob
    (ties half), plus lm-eval-style ``acc`` (summed) and ``acc_norm`` (per character) for reference.
``mdaq_ref_nll``
    ``loglikelihood`` of the chosen response; ``ref_nll`` = total ``-logprob`` / total tokens (corpus ratio).

:func:`run_judge_free` reads a held-out file (``prepare`` output: ``instruction``, ``input``, ``chosen``,
``rejected``, ``id``, ``lang``), builds lm-eval's Hugging Face model (:class:`lm_eval.models.huggingface.HFLM`,
with ``peft=adapter``), writes a *prepared* JSONL (prompt, choices and the scored token counts, which lm-eval's
``(logprob, is_greedy)`` results do not carry) plus override YAMLs that ``include:`` the templates and point
``dataset_kwargs.data_files`` at it, and runs :func:`lm_eval.simple_evaluate` on them.

Tokenisation. With ``tokenization="mdaq"`` (default) the model subclass encodes each (prompt, response) pair with
:func:`mdaq.models.lm.encode_pair`: prompt and response tokenised separately (the tokenizer's own special tokens on the
prompt, none on the response), no EOS scored, and the same truncation at ``max_seq_len``, the prompt cut identically
for both responses of a pair.
The numbers then equal :func:`mdaq.evaluation.heldout.evaluate_heldout` up to float rounding.
``tokenization="lm_eval"``
keeps lm-eval's stock encoding instead, which differs in three ways: trailing whitespace of the prompt (the
template's final newline) moves into the continuation and is scored, the continuation is the tail of the jointly
tokenised ``prompt + response`` (BPE merges can cross the boundary), and no EOS is scored; inputs longer than
``max_seq_len`` lose prompt tokens from the left (the BOS token included).

Standard error. ``expert_pref_acc_se`` is lm-eval's standard error of a mean (sample standard deviation with
``n - 1``, over ``sqrt(n)``); :func:`mdaq.evaluation.heldout.preference_metrics` uses the binomial ``sqrt(p(1 - p) /
n)``.
Without ties the two differ by the factor ``sqrt(n / (n - 1))``.

Other differences from :func:`mdaq.evaluation.heldout.evaluate_heldout`: empty responses are rejected here (lm-eval
cannot
score an empty continuation); ``dtype`` is the weight dtype handed to lm-eval, while ``precision="bf16"`` runs the
forward passes under bfloat16 autocast as ``EvaluateConfig.precision`` does; when an adapter is given and the base
config's ``vocab_size`` differs from the tokenizer's length, lm-eval resizes the embeddings before attaching it (not
the case for the project's models). lm-eval computes logits over the whole vocabulary at every position, so it is
slower than mdaq's scorer on CPU (``benchmarks/bench_eval_engines.py``).
"""

from __future__ import annotations

import functools
import importlib.metadata
import logging
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import yaml

from mdaq.config import EvaluateConfig
from mdaq.errors import DataError
from mdaq.io import read_jsonl, write_jsonl
from mdaq.models.lm import encode_responses, format_prompt, resolve_device

log = logging.getLogger(__name__)

TASK_DIR = Path(__file__).resolve().parent / "lm_eval_tasks"
EXPERT_PREF_TASK = "mdaq_expert_pref"
REF_NLL_TASK = "mdaq_ref_nll"
TASKS = (EXPERT_PREF_TASK, REF_NLL_TASK)
PREPARED_NAME = "heldout.lmeval.jsonl"
TOKENIZATIONS = ("mdaq", "lm_eval")

_REQUIRED = ("instruction", "chosen", "rejected")  # non-empty strings; "input" is optional (a string when present)


def read_heldout(path: str | Path) -> list[dict[str, Any]]:
    """Read and check held-out pairs.

    Parameters
    ----------
    path : str or Path
        JSONL with one pair per line: ``instruction``, ``chosen`` and ``rejected`` (non-empty strings), optionally
        ``input`` (string), ``id`` and ``lang``.

    Returns
    -------
    list of dict
        The rows as read.

    Raises
    ------
    DataError
        Missing or empty file, malformed JSON, or a missing, non-string or empty field (naming record and field).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "held-out file not found")
    rows = read_jsonl(path)
    if not rows:
        raise DataError(path, "no held-out rows")
    for i, row in enumerate(rows):
        record = f"{i} (id {row['id']})" if "id" in row else i
        for key in _REQUIRED:
            if not isinstance(row.get(key), str):
                raise DataError(path, "missing or non-string", record=record, field=key)
            if key != "instruction" and row[key] == "":
                raise DataError(path, "empty response; nothing to score", record=record, field=key)
        if not isinstance(row.get("input", ""), str):
            raise DataError(path, "non-string", record=record, field="input")
    return rows


@functools.cache
def _hflm_class() -> type:
    """:class:`HFLM` subclass with mdaq's pair encoding and no Hub lookups (built lazily: lm-eval is optional)."""
    from lm_eval.models.huggingface import HFLM

    class MdaqHFLM(HFLM):
        """lm-eval's Hugging Face causal LM whose ``(context, continuation)`` encoding is selectable.

        Parameters
        ----------
        tokenization : {"mdaq", "lm_eval"}
            ``"mdaq"``: :func:`mdaq.models.lm.encode_pair` (separate tokenisation, no EOS, mdaq truncation at
            ``max_length``); ``"lm_eval"``: lm-eval's own ``_encode_pair``.
        **kwargs
            Passed to :class:`HFLM`.
        """

        def __init__(self, *, tokenization: str = "mdaq", precision: str = "fp32", **kwargs: Any) -> None:
            if tokenization not in TOKENIZATIONS:
                raise ValueError(f"tokenization must be one of {TOKENIZATIONS}, got {tokenization!r}")
            super().__init__(**kwargs)
            self.tokenization, self.precision = tokenization, precision
            self.reserve: dict[str, int] = {}  # prompt -> longest response (tokens): one prompt cut per pair

        def _model_call(self, inps: Any, attn_mask: Any = None, labels: Any = None) -> Any:
            """Forward pass under :func:`mdaq.models.lm.autocast` (``precision="bf16"``: bfloat16 matmuls, as
            :class:`mdaq.config.EvaluateConfig` asks); logits come back in float32 for lm-eval's log-softmax."""
            from mdaq.models.lm import autocast

            with autocast(self.device, self.precision):
                logits = super()._model_call(inps, attn_mask=attn_mask, labels=labels)
            return logits.float()

        def _encode_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
            if self.tokenization == "lm_eval":
                return super()._encode_pair(context, continuation)
            enc = self.encode(context, continuation)
            n_prompt = len(enc.input_ids) - enc.n_response
            return enc.input_ids[:n_prompt], enc.input_ids[n_prompt:]

        def encode(self, context: str, continuation: str) -> Any:
            """mdaq's encoding of one scored continuation: no EOS, the prompt cut as for the longest response
            registered for it in ``reserve`` (:func:`mdaq.models.lm.encode_responses`)."""
            reserve = self.reserve.get(context, 0)
            return encode_responses(
                self.tokenizer, context, [continuation], self.max_length, eos=False, reserve=reserve
            )[0]

        def get_model_info(self) -> dict[str, Any]:
            """Model facts for lm-eval's results, without the Hub lookups of :meth:`HFLM.get_model_info`."""
            return {
                "model_num_parameters": sum(p.numel() for p in self.model.parameters()),
                "model_dtype": str(getattr(self.model, "dtype", "")),
                "peft": str(self.peft) if self.peft else None,
                "tokenization": self.tokenization,
            }

    return MdaqHFLM


def build_lm(
    base_model: str | Path,
    adapter: str | Path | None = None,
    *,
    batch_size: int = 8,
    device: str = "cpu",
    dtype: str = "float32",
    max_seq_len: int = EvaluateConfig.max_seq_len,
    tokenization: Literal["mdaq", "lm_eval"] = "mdaq",
    precision: str = "fp32",
) -> Any:
    """lm-eval's Hugging Face model on a local base-model folder, with a PEFT adapter on top when given.

    Never runs remote code; local absolute paths keep transformers and peft off the network.

    Raises
    ------
    MissingAssetError
        ``base_model`` is not a model folder.
    """
    from mdaq.errors import MissingAssetError
    from mdaq.models.assets import require_asset

    base = require_asset(Path(base_model).resolve())
    if adapter is not None and not (Path(adapter) / "adapter_config.json").is_file():
        raise MissingAssetError(f"adapter folder {adapter} has no adapter_config.json")
    return _hflm_class()(
        pretrained=str(base),
        peft=str(Path(adapter).resolve()) if adapter is not None else None,
        backend="causal",
        device=resolve_device(device),
        dtype=dtype,
        batch_size=batch_size,
        max_length=max_seq_len,
        trust_remote_code=False,
        tokenization=tokenization,
        precision=precision,
    )


def prepare_rows(rows: Sequence[dict[str, Any]], lm: Any) -> list[dict[str, Any]]:
    """Documents for the lm-eval tasks: prompt, choices, the token counts that ``lm`` will score and the truncation
    flags.

    ``n_tokens = [n_chosen, n_rejected]`` is the length of the continuation encoding from ``lm._encode_pair`` (the
    method lm-eval itself calls), so the per-token normalisation in the task uses exactly the scored tokens. With
    mdaq's tokenisation both responses of a pair see the same prompt tokens: ``lm.reserve`` is filled first.
    """
    prompts = [format_prompt(r["instruction"], r.get("input", "")) for r in rows]
    mdaq_enc = getattr(lm, "tokenization", "") == "mdaq"
    if mdaq_enc:
        for prompt, r in zip(prompts, rows, strict=True):
            longest = max(
                len(lm.tokenizer(r[k], add_special_tokens=False)["input_ids"]) for k in ("chosen", "rejected")
            )
            lm.reserve[prompt] = max(lm.reserve.get(prompt, 0), longest)
    out = []
    for i, (prompt, r) in enumerate(zip(prompts, rows, strict=True)):
        flags = [lm.encode(prompt, r[key]) for key in ("chosen", "rejected")] if mdaq_enc else []
        # the scored continuation's length: one encoding per response (mdaq's), else lm-eval's own pair encoding
        n_tokens = [e.n_response for e in flags] or [
            len(lm._encode_pair(prompt, r[key])[1]) for key in ("chosen", "rejected")
        ]
        out.append(
            {
                "id": str(r.get("id", i)),
                "lang": str(r.get("lang", "")),
                "source_index": int(r.get("source_index", -1)),
                "prompt": prompt,
                "chosen": r["chosen"],
                "rejected": r["rejected"],
                "choices": [r["chosen"], r["rejected"]],
                "n_tokens": n_tokens,
                "truncated": [flags[0].prompt_truncated, *(f.response_truncated for f in flags)]
                if flags
                else [False, False, False],  # prompt, chosen, rejected
            }
        )
    return out


def write_task_dir(prepared: Sequence[dict[str, Any]], out_dir: str | Path) -> Path:
    """Write the prepared documents and one override YAML per task into ``out_dir``.

    Each override ``include:``\\ s the template in :data:`TASK_DIR` and sets ``dataset_kwargs`` to the local
    file (and a datasets cache inside ``out_dir``), so ``TaskManager(include_path=out_dir)`` or
    ``lm_eval --include_path out_dir --tasks mdaq_expert_pref,mdaq_ref_nll`` runs the tasks on it.
    """
    out_dir = Path(out_dir).resolve()
    data = out_dir / PREPARED_NAME
    write_jsonl(data, prepared)
    for task in TASKS:
        override = {
            "include": str(TASK_DIR / f"{task}.yaml"),
            "dataset_kwargs": {"data_files": {"test": str(data)}, "cache_dir": str(out_dir / "hf_datasets")},
        }
        (out_dir / f"{task}.yaml").write_text(yaml.safe_dump(override, sort_keys=False), encoding="utf-8")
    return out_dir


@contextmanager
def _quiet(name: str = "lm_eval", level: int = logging.WARNING) -> Iterator[None]:
    logger = logging.getLogger(name)
    old = logger.level
    logger.setLevel(max(level, logger.getEffectiveLevel()))
    try:
        yield
    finally:
        logger.setLevel(old)


def _num(value: Any) -> float:
    """lm-eval metric value as float (``"N/A"`` -> nan)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def run_judge_free(
    base_model: str | Path,
    adapter: str | Path | None,
    heldout_path: str | Path,
    *,
    batch_size: int = 8,
    device: str = "cpu",
    dtype: str = "float32",
    limit: int | None = None,
    max_seq_len: int = EvaluateConfig.max_seq_len,
    tokenization: Literal["mdaq", "lm_eval"] = "mdaq",
    precision: str = "fp32",
    items: bool = False,
) -> dict[str, Any]:
    """Expert-preference accuracy and reference NLL of base model + adapter on held-out pairs, through lm-eval.

    Parameters
    ----------
    base_model : str or Path
        Local causal-LM folder (safetensors); never loaded with remote code.
    adapter : str or Path or None
        PEFT adapter folder, passed to lm-eval as ``peft``.
    heldout_path : str or Path
        Held-out JSONL (see :func:`read_heldout`).
    batch_size : int
        lm-eval batch size.
    device : str
        ``"cpu"``, ``"cuda"``, ``"cuda:0"``, ... or ``"auto"``.
    dtype : str
        Weight dtype passed to lm-eval (``"float32"`` matches :func:`mdaq.models.lm.load_causal_lm`).
    limit : int or None
        Score only the first ``limit`` pairs.
    max_seq_len : int
        Token budget per (prompt, response) pair, as :attr:`EvaluateConfig.max_seq_len`.
    tokenization : {"mdaq", "lm_eval"}
        Pair encoding; see the module docstring.
    precision : {"auto", "fp32", "bf16"}
        Matmul precision of the forward passes (:func:`mdaq.models.lm.autocast`), as ``EvaluateConfig.precision``;
        ``auto`` resolves for the device (:func:`mdaq.hardware.resolve_precision`) and the result records it.
    items : bool
        Also return the per-pair scores (lm-eval's logged samples) under ``items``.

    Returns
    -------
    dict
        ``expert_pref_acc``, ``expert_pref_acc_se`` (lm-eval's standard error), ``ref_nll``, ``n``,
        ``n_ref_tokens``, ``lm_eval_version``, ``tokenization``, ``max_seq_len`` and ``tasks`` (lm-eval's raw
        ``results``, ``n-samples``, ``versions`` and ``higher_is_better``, per task); with ``items=True`` also
        ``items``: the per-item records (one dict per pair with :data:`mdaq.io.ITEM_COLUMNS`, as
        :func:`mdaq.evaluation.heldout.item_records` makes them), in file order.

    Raises
    ------
    DataError
        Bad held-out file (checked before any model is loaded).
    """
    from mdaq.hardware import configure_torch

    rows = read_heldout(heldout_path)
    if limit is not None:
        rows = rows[: max(int(limit), 0)]
        if not rows:
            raise DataError(heldout_path, f"limit={limit} leaves no held-out rows")
    hardware = configure_torch(precision, resolve_device(device), stage="evaluate (lm-eval)")
    precision = hardware["precision"]
    lm = build_lm(
        base_model,
        adapter,
        batch_size=batch_size,
        device=device,
        dtype=dtype,
        max_seq_len=max_seq_len,
        tokenization=tokenization,
        precision=precision,
    )
    results = _evaluate_tasks(lm, rows, batch_size=batch_size, log_samples=items)
    n = int(results["n-samples"][EXPERT_PREF_TASK]["effective"])
    if n != len(rows) or int(results["n-samples"][REF_NLL_TASK]["effective"]) != n:
        raise RuntimeError(f"lm-eval scored {results['n-samples']} documents, expected {len(rows)}")
    out = {
        **_metrics(results),
        "n": n,
        "lm_eval_version": importlib.metadata.version("lm_eval"),
        "tokenization": tokenization,
        "precision": precision,
        "hardware": hardware,
        "max_seq_len": max_seq_len,
        "tasks": {
            task: {key: results[key][task] for key in ("results", "n-samples", "versions", "higher_is_better")}
            for task in TASKS
        },
    }
    if items:  # plain records: the result stays JSON-storable
        out["items"] = _items(results["samples"][EXPERT_PREF_TASK]).to_dict("records")
    return out


def _evaluate_tasks(lm: Any, rows: Sequence[dict[str, Any]], *, batch_size: int, log_samples: bool) -> dict[str, Any]:
    """lm-eval's ``simple_evaluate`` of the two judge-free tasks over ``rows``, written to a temporary task folder
    (no seeds needed: loglikelihood scoring draws nothing)."""
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    with _quiet(), tempfile.TemporaryDirectory(prefix="mdaq-lmeval-") as tmp:
        task_dir = write_task_dir(prepare_rows(rows, lm), tmp)
        return simple_evaluate(
            model=lm,
            tasks=list(TASKS),
            task_manager=TaskManager(include_path=str(task_dir), include_defaults=False),
            batch_size=batch_size,
            log_samples=log_samples,
            bootstrap_iters=1000,
            random_seed=None,
            numpy_random_seed=None,
            torch_random_seed=None,
        )


def _metrics(results: dict[str, Any]) -> dict[str, Any]:
    """The flat judge-free metrics from lm-eval's ``results`` table."""
    pref, nll = results["results"][EXPERT_PREF_TASK], results["results"][REF_NLL_TASK]
    return {
        "expert_pref_acc": _num(pref["expert_pref_acc,none"]),
        "expert_pref_acc_se": _num(pref.get("expert_pref_acc_stderr,none")),
        "ref_nll": _num(nll["ref_nll,none"]),
        "n_ref_tokens": int(nll["ref_tokens,none"]),
    }


def _items(samples: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """Per-item records (:data:`mdaq.io.ITEM_COLUMNS`) from lm-eval's logged ``mdaq_expert_pref``
    samples, in file order."""
    from mdaq.evaluation.heldout import item_records

    docs, lp_c, lp_r = [], [], []
    for s in sorted(samples, key=lambda s: s["doc_id"]):
        doc, ((ll_c, _), (ll_r, _)) = s["doc"], s["filtered_resps"]
        docs.append(doc)
        lp_c.append(float(ll_c))
        lp_r.append(float(ll_r))
    n_c = np.array([int(d["n_tokens"][0]) for d in docs], dtype=np.int64)
    n_r = np.array([int(d["n_tokens"][1]) for d in docs], dtype=np.int64)
    items = item_records(docs, (np.array(lp_c), n_c), (np.array(lp_r), n_r))
    for j, col in enumerate(("prompt_truncated", "chosen_truncated", "rejected_truncated")):
        items[col] = [bool(d["truncated"][j]) for d in docs]
    return items
