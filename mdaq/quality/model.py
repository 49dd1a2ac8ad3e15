"""The Quality Scoring Model (QSM): a multilingual encoder fine-tuned on expert revision pairs.

Three scorers share one interface (``score(instructions, responses) -> ndarray``, higher is better):

- ``triplet`` (M-DaQ, the paper-faithful bi-encoder): anchor = instruction (+ input), positive = expert-revised
  response, negative = raw response; loss ``max(‖a − p‖₂ − ‖a − n‖₂ + margin, 0)``; score =
  ``−‖e(instruction) − e(response)‖₂``.
- ``cross`` (issue 17): instruction and response encoded together as one tokenizer pair (both sides cut in turn
  when too long) → a linear head; margin ranking loss ``max(margin − (s(revised) − s(raw)), 0)``; score = the head's
  output.
- ``regression`` (CaR's IQS, for ablation): one text (instruction + input + response) → a linear head, label 1 for
  revised and 0 for raw, MSE loss; score = the head's output.

``normalize`` L2-normalises the pooled vectors first: unnormalised mean-pooled vectors grow in norm with the text,
so without it the length of a response enters ``−‖e(i) − e(r)‖₂`` directly.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mdaq.config import QSM_KINDS
from mdaq.errors import DataError, MissingAssetError
from mdaq.io import read_json

log = logging.getLogger(__name__)

KINDS = QSM_KINDS
HEADED = ("regression", "cross")  # kinds with a linear scoring head (qsm_head.safetensors)
CONFIG_FILE = "qsm_config.json"
HEAD_FILE = "qsm_head.safetensors"


def _stamp(folder: Path) -> tuple[tuple[str, int, int], ...]:
    """Names, sizes and mtimes of a model folder's tokenizer files: the cache key's part that changes with them."""
    files = sorted(p for p in folder.glob("*token*") if p.is_file())
    return tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files)


@functools.lru_cache(maxsize=8)
def _tokenizer(path: str, stamp: tuple) -> Any:
    """One tokenizer object per folder and process: loading XLM-R's 250k-piece tokenizer takes ~4 s on a 2-core CPU
    (transformers converts it at every load), and a stage or a test often builds several models on one folder. The
    object is shared, so callers must not change it (QualityModel only encodes with it)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path)


def anchor_text(instruction: str, input: str = "") -> str:
    """The QSM anchor: instruction plus input (CaR's ``Instruction: … Input: …`` without English labels)."""
    return f"{instruction}\n{input}" if input.strip() else instruction


class QualityModel:
    """QSM over a Hugging Face encoder folder (safetensors only, no remote code).

    Parameters
    ----------
    encoder : path
        Encoder folder (e.g. ``artifacts/base/me5-small``) or a saved QSM folder.
    kind : {"triplet", "cross", "regression"}
        Scorer type (see module docstring).
    pooling : {"mean", "cls"}
        How token states become one vector (E5 models are trained with mean pooling).
    query_prefix, passage_prefix : str
        Prefixes for anchor and response texts (E5 expects ``query: `` / ``passage: ``).
    max_len : int
        Token limit per text.
    device : str
        ``"auto"``, ``"cpu"`` or ``"cuda"``.
    precision : {"auto", "fp32", "bf16"}
        Matmul precision of forward passes (:func:`mdaq.models.lm.autocast`); pooled vectors are always float32.
        ``auto``
        is resolved for the device when the encoder is loaded (:func:`mdaq.hardware.resolve_precision`) into
        ``precision_``; a saved QSM keeps the requested value, so ``auto`` re-resolves on the machine that loads it.
    dropout : float, optional
        Overrides every dropout probability in the encoder's config (None keeps them; only matters in training).
        On CPU, dropout's random masks cost a quarter of a training step, and 0 lets attention use the fused
        SDPA kernel.
    normalize : bool
        L2-normalise pooled vectors (see module docstring). A folder saved before this option existed loads with
        ``False``, the behaviour it was trained with.
    """

    name = "qsm"

    def __init__(
        self,
        encoder: str | Path,
        *,
        kind: str = "triplet",
        pooling: str = "mean",
        query_prefix: str = "query: ",
        passage_prefix: str = "passage: ",
        max_len: int = 256,
        device: str = "auto",
        precision: str = "auto",
        dropout: float | None = None,
        normalize: bool = False,
    ) -> None:
        from mdaq.hardware import PRECISION_CHOICES

        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        if pooling not in ("mean", "cls"):
            raise ValueError(f"pooling must be 'mean' or 'cls', got {pooling!r}")
        if precision not in PRECISION_CHOICES:
            raise ValueError(f"precision must be one of {PRECISION_CHOICES}, got {precision!r}")
        self.encoder, self.kind, self.pooling = Path(encoder), kind, pooling
        self.query_prefix, self.passage_prefix, self.max_len = query_prefix, passage_prefix, max_len
        self.device, self.precision, self.dropout = device, precision, dropout
        self.normalize = normalize
        self.precision_ = precision if precision != "auto" else None  # resolved in load_encoder
        self.model_ = self.tokenizer_ = self.head_ = None
        self.train_record_: dict[str, Any] = {}

    # ---- loading ---------------------------------------------------------------------------------------------
    def load_encoder(self) -> QualityModel:
        """Load tokenizer, encoder and (for ``regression`` and ``cross``) the head; idempotent."""
        import torch
        from transformers import AutoConfig, AutoModel

        from mdaq.hardware import resolve_precision
        from mdaq.models.lm import resolve_device

        if self.model_ is not None:
            return self
        if not (self.encoder / "config.json").is_file():
            raise MissingAssetError(
                f"encoder folder {self.encoder} not found; build it with `python -m mdaq assets build "
                f"{self.encoder.name} --root {self.encoder.parent}`"
            )
        self.device = resolve_device(self.device)
        self.precision_ = resolve_precision(self.precision, self.device)
        self.tokenizer_ = _tokenizer(str(self.encoder.resolve()), _stamp(self.encoder))
        config = AutoConfig.from_pretrained(self.encoder)
        if self.dropout is not None:
            for key, value in list(vars(config).items()):
                if "dropout" in key and isinstance(value, float):
                    setattr(config, key, float(self.dropout))
        self.model_ = AutoModel.from_pretrained(
            self.encoder, config=config, use_safetensors=True, add_pooling_layer=False
        )
        self.model_.to(self.device)
        if self.kind in HEADED:
            self.head_ = torch.nn.Linear(self.model_.config.hidden_size, 1).to(self.device)
            head_file = self.encoder / HEAD_FILE
            if head_file.is_file():
                from safetensors.torch import load_file

                self.head_.load_state_dict(load_file(head_file, device=str(self.device)))
        return self

    # ---- forward -----------------------------------------------------------------------------------------------
    def tokenize(self, texts: Sequence[str], pairs: Sequence[str] | None = None, **kw: Any) -> Any:
        """Token ids of ``texts``, or of (text, pair) inputs: the tokenizer's pair encoding, cut longest side first."""
        if pairs is None:
            return self.tokenizer_(list(texts), truncation=True, max_length=self.max_len, **kw)
        if len(pairs) != len(texts):
            raise ValueError(f"{len(texts)} texts but {len(pairs)} pair texts")
        return self.tokenizer_(list(texts), list(pairs), truncation="longest_first", max_length=self.max_len, **kw)

    def embed(self, texts: Sequence[str], pairs: Sequence[str] | None = None) -> Any:
        """Pooled vectors of ``texts`` (or of (text, pair) inputs); a tensor with gradients in training mode."""
        from mdaq.models.lm import autocast

        batch = self.tokenize(texts, pairs, padding=True, return_tensors="pt").to(self.device)
        with autocast(self.device, self.precision_):
            states = self.model_(**batch).last_hidden_state
        return self._pool(states, batch["attention_mask"])

    def _pool(self, states: Any, attention_mask: Any) -> Any:
        """CLS or masked mean of ``states``, in float32; unit length when ``normalize``."""
        import torch

        states = states.float()
        if self.pooling == "cls":
            pooled = states[:, 0]
        else:
            mask = attention_mask.unsqueeze(-1).to(states.dtype)
            pooled = (states * mask).sum(1) / torch.clamp(mask.sum(1), min=1.0)
        return torch.nn.functional.normalize(pooled, dim=-1) if self.normalize else pooled

    def cross_inputs(self, instructions: Sequence[str], responses: Sequence[str]) -> tuple[list[str], list[str]]:
        """The ``cross`` kind's (first, second) texts: the prefixed instruction and the prefixed response."""
        if len(instructions) != len(responses):
            raise ValueError(f"{len(instructions)} instructions but {len(responses)} responses")
        return [self.query_prefix + t for t in instructions], [self.passage_prefix + t for t in responses]

    def raw_scores(self, instructions: Sequence[str], responses: Sequence[str]) -> Any:
        """Differentiable scores for one batch."""
        if self.kind == "triplet":
            a = self.embed([self.query_prefix + t for t in instructions])
            r = self.embed([self.passage_prefix + t for t in responses])
            return -(a - r).norm(dim=-1)
        if self.kind == "cross":
            return self.head_(self.embed(*self.cross_inputs(instructions, responses))).squeeze(-1)
        texts = [f"{self.passage_prefix}{i}\n{r}" for i, r in zip(instructions, responses, strict=True)]
        return self.head_(self.embed(texts)).squeeze(-1)

    def score(
        self, instructions: Sequence[str], responses: Sequence[str], *, batch_size: int = 32, progress: bool = False
    ) -> np.ndarray:
        """Quality scores, higher is better, in input order (no gradients).

        Triplet models embed anchors and responses separately; the cross and regression models embed one input per
        (instruction, response) and apply their head.
        Texts are tokenised once, sorted by token length and cut into batches of ``batch_size`` rows, each padded
        only to its longest text (:meth:`embed_texts`), so padding stays small; the result is in input order.
        """
        if len(instructions) != len(responses):
            raise ValueError(f"{len(instructions)} instructions but {len(responses)} responses")
        self.load_encoder()
        self.model_.eval()
        if self.kind == "triplet":  # an instruction repeated across rows (pairs, pools) is embedded once
            uniq, inverse = np.unique(np.asarray(instructions, dtype=object), return_inverse=True)
            a = self.embed_texts([self.query_prefix + t for t in uniq], batch_size, progress)[inverse]
            r = self.embed_texts([self.passage_prefix + t for t in responses], batch_size, progress)
            return -np.linalg.norm(a - r, axis=1).astype(np.float32)
        if self.kind == "cross":
            first, second = self.cross_inputs(instructions, responses)
            pooled = self.embed_texts(first, batch_size, progress, pairs=second)
        else:
            texts = [f"{self.passage_prefix}{i}\n{r}" for i, r in zip(instructions, responses, strict=True)]
            pooled = self.embed_texts(texts, batch_size, progress)
        w, b = self.head_.weight.detach().cpu().numpy(), self.head_.bias.detach().cpu().numpy()
        return (pooled @ w.T + b)[:, 0].astype(np.float32)

    def embed_texts(
        self, texts: Sequence[str], batch_size: int, progress: bool, *, pairs: Sequence[str] | None = None
    ) -> np.ndarray:
        """Pooled vectors (float32, input order) of ``texts``, or of (text, pair) inputs when ``pairs`` is given:
        tokenised once, sorted by length, cut into batches of ``batch_size`` rows padded only to the batch's longest
        input, encoded without gradients."""
        import torch
        from tqdm.auto import tqdm

        from mdaq.models.lm import autocast

        enc = self.tokenize(texts, pairs)
        ids = enc["input_ids"]
        # segment ids of pair inputs, for tokenizers that have them (BERT's; XLM-R's have none): all 0 otherwise
        types = enc.get("token_type_ids") if pairs is not None else None
        lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))
        order = np.argsort(-lengths, kind="stable")
        pad_id = self.tokenizer_.pad_token_id or 0
        out = np.zeros((len(texts), self.model_.config.hidden_size), dtype=np.float32)
        starts = range(0, len(order), max(1, batch_size))
        with torch.inference_mode(), autocast(self.device, self.precision_):
            for start in tqdm(starts, desc="qsm embed", unit="batch", disable=not progress):
                idx = order[start : start + batch_size]
                width = max(int(lengths[idx[0]]), 1)
                input_ids = np.full((len(idx), width), pad_id, dtype=np.int64)
                mask = np.zeros((len(idx), width), dtype=np.int64)
                segments = np.zeros((len(idx), width), dtype=np.int64)
                for row, i in enumerate(idx):
                    input_ids[row, : lengths[i]] = ids[i]
                    mask[row, : lengths[i]] = 1
                    segments[row, : lengths[i]] = types[i] if types is not None else 0
                input_t = torch.from_numpy(input_ids).to(self.device)
                mask_t = torch.from_numpy(mask).to(self.device)
                extra = {"token_type_ids": torch.from_numpy(segments).to(self.device)} if types is not None else {}
                states = self.model_(input_ids=input_t, attention_mask=mask_t, **extra).last_hidden_state
                out[idx] = self._pool(states, mask_t).cpu().numpy()
        return out

    def score_jsonl(self, path: str | Path, *, chunk: int = 4096, batch_size: int = 32) -> np.ndarray:
        """Score a pool JSONL file (``Sample`` rows) streamed in chunks, so memory stays flat for large pools."""
        from mdaq.io import iter_jsonl

        parts, instr, resp = [], [], []
        for row in iter_jsonl(path):
            instr.append(anchor_text(row["instruction"], row.get("input", "")))
            resp.append(row["output"])
            if len(instr) == chunk:
                parts.append(self.score(instr, resp, batch_size=batch_size))
                instr, resp = [], []
        if instr:
            parts.append(self.score(instr, resp, batch_size=batch_size))
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)

    def score_samples(self, samples: Sequence[Any], **kw: Any) -> np.ndarray:
        """:class:`~mdaq.types.QualityScorer` interface over :class:`~mdaq.types.Sample` objects."""
        return self.score([anchor_text(s.instruction, s.input) for s in samples], [s.output for s in samples], **kw)

    # ---- persistence ---------------------------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """Constructor arguments (minus the path and device), saved next to the weights."""
        return {
            "kind": self.kind,
            "pooling": self.pooling,
            "query_prefix": self.query_prefix,
            "passage_prefix": self.passage_prefix,
            "max_len": self.max_len,
            "precision": self.precision,
            "normalize": self.normalize,
        }

    def save(self, out_dir: str | Path, record: dict[str, Any] | None = None) -> Path:
        """Write encoder (safetensors), tokenizer, head and ``qsm_config.json`` (with the training record)."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        self.model_.save_pretrained(out_dir, safe_serialization=True)
        self.tokenizer_.save_pretrained(out_dir)
        if self.head_ is not None:
            from safetensors.torch import save_file

            save_file({k: v.contiguous() for k, v in self.head_.state_dict().items()}, out_dir / HEAD_FILE)
        cfg = {**self.config(), "base_encoder": str(self.encoder), "train_record": record or self.train_record_}
        (out_dir / CONFIG_FILE).write_text(json.dumps(cfg, indent=2, ensure_ascii=False), encoding="utf-8")
        return out_dir

    @classmethod
    def load(cls, path: str | Path, device: str = "auto", precision: str | None = None) -> QualityModel:
        """Load a folder written by :meth:`save`; ``precision`` defaults to the one it was trained with (``auto``
        resolves again on this machine)."""
        path = Path(path)
        cfg_file = path / CONFIG_FILE
        if not cfg_file.is_file():
            raise MissingAssetError(f"{path} is not a saved QSM (no {CONFIG_FILE}); train one with `dvc repro qsm`")
        cfg = read_json(cfg_file)
        keys = ("kind", "pooling", "query_prefix", "passage_prefix", "max_len")
        missing = [k for k in keys if not isinstance(cfg, dict) or k not in cfg]
        if missing:
            raise DataError(cfg_file, f"not a QSM config: missing {missing}", field=missing[0])
        normalize = cfg.get("normalize", False)  # absent in folders saved before it existed: they did not normalise
        if not isinstance(normalize, bool):
            raise DataError(cfg_file, f"normalize must be true or false, got {normalize!r}", field="normalize")
        if cfg["kind"] in HEADED and not (path / HEAD_FILE).is_file():
            raise MissingAssetError(f"{path} holds a {cfg['kind']!r} QSM without its head ({HEAD_FILE})")
        model = cls(
            path,
            device=device,
            **{k: cfg[k] for k in keys},
            precision=precision or cfg.get("precision", "fp32"),
            normalize=normalize,
        )
        model.train_record_ = cfg.get("train_record", {})
        return model.load_encoder()
