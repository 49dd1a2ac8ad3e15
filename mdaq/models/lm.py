"""Causal-LM plumbing shared by training and evaluation: prompt template, masked encoding, response-only log-probs."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mdaq.hardware import PRECISIONS, resolve_precision

IGNORE = -100  # label value that carries no loss (prompt and padding tokens)

PROMPT_TEMPLATE = "### Instruction:\n{instruction}\n\n### Response:\n"
PROMPT_TEMPLATE_INPUT = "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"


def format_prompt(instruction: str, input: str = "") -> str:
    """Alpaca-style prompt; language-neutral markers so one template serves every language."""
    if input.strip():
        return PROMPT_TEMPLATE_INPUT.format(instruction=instruction, input=input)
    return PROMPT_TEMPLATE.format(instruction=instruction)


def autocast(device: Any, precision: str = "fp32") -> Any:
    """Mixed-precision context for forward passes: ``"bf16"`` runs matmuls in bfloat16 (weights and losses stay
    float32), ``"fp32"`` is a no-op, ``"auto"`` is :func:`mdaq.hardware.resolve_precision` for ``device``. On CPUs
    with AMX/AVX-512-BF16 and on recent GPUs bf16 is 2-3x faster; on AVX2-only CPUs it is emulated and two orders of
    magnitude slower. The choice is a parameter because it changes results in the last digits.

    Raises
    ------
    ValueError
        Unknown ``precision``.
    """
    import torch

    kind = torch.device(device).type
    enabled = resolve_precision(precision, str(device)) == "bf16"
    return torch.autocast(device_type=kind, dtype=torch.bfloat16, enabled=enabled)


def resolve_device(device: str = "auto") -> str:
    """``"auto"`` -> ``"cuda"`` when available, else ``"cpu"``."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


@dataclass(frozen=True)
class Encoded:
    """One (prompt, response) pair as token ids, with labels masked on the prompt, and whether either was cut."""

    input_ids: list[int]
    labels: list[int]
    prompt_truncated: bool = False
    response_truncated: bool = False

    @property
    def n_response(self) -> int:
        return sum(1 for t in self.labels if t != IGNORE)


def encode_responses(
    tokenizer: Any, prompt: str, responses: Sequence[str], max_len: int, *, eos: bool = True, reserve: int = 0
) -> list[Encoded]:
    """Tokenise ``prompt + response (+ eos)`` for each response, with the prompt cut **identically** for all.

    The prompt is tokenised with the tokenizer's special tokens, each response without (``eos=True`` appends the
    EOS token to it, as training wants: the model learns to stop). When too long, the prompt is cut from the left
    (keeping its first token, the BOS, and the part next to the response) to leave room for the *longest* response,
    but never below half of ``max_len``; then each response is cut from the right. Scoring two responses of one
    prompt therefore conditions both on the same prompt tokens: a preference between them never comes from a
    different view of the prompt. ``reserve``: leave room for a response of at least this many tokens (for a
    caller that encodes the responses of one prompt one at a time, as lm-eval does).
    """
    p_ids = tokenizer(prompt, add_special_tokens=True)["input_ids"]
    r_ids = [tokenizer(r, add_special_tokens=False)["input_ids"] for r in responses]
    if eos and tokenizer.eos_token_id is not None:
        r_ids = [r + [tokenizer.eos_token_id] for r in r_ids]
    longest = max([len(r) for r in r_ids] + [reserve])
    room_prompt = max(max_len - longest, max_len // 2)
    prompt_cut = len(p_ids) > room_prompt
    if prompt_cut:
        p_ids = p_ids[:1] + p_ids[len(p_ids) - room_prompt + 1 :] if room_prompt > 1 else p_ids[:room_prompt]
    out = []
    for r in r_ids:
        kept = r[: max_len - len(p_ids)]
        out.append(Encoded(p_ids + kept, [IGNORE] * len(p_ids) + kept, prompt_cut, len(kept) < len(r)))
    return out


def encode_pair(tokenizer: Any, prompt: str, response: str, max_len: int, *, eos: bool = True) -> Encoded:
    """Tokenise ``prompt + response (+ eos)``; prompt tokens get label ``IGNORE``.

    When too long, the prompt is cut from the left (keeping the part next to the response) to leave room for at
    least half of ``max_len`` of response, then the response is cut from the right (:func:`encode_responses` with
    one response).
    """
    return encode_responses(tokenizer, prompt, [response], max_len, eos=eos)[0]


def collate(batch: Sequence[Encoded], pad_id: int) -> dict[str, Any]:
    """Right-pad a batch into tensors; padding gets label ``IGNORE`` and attention 0."""
    import torch

    width = max(len(e.input_ids) for e in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
    attn = torch.zeros((len(batch), width), dtype=torch.long)
    for i, e in enumerate(batch):
        n = len(e.input_ids)
        ids[i, :n] = torch.tensor(e.input_ids)
        labels[i, :n] = torch.tensor(e.labels)
        attn[i, :n] = 1
    return {"input_ids": ids, "attention_mask": attn, "labels": labels}


def length_batches(lengths: Sequence[int], batch_size: int) -> Iterator[np.ndarray]:
    """Index batches of similar length (longest first), so padding waste stays small."""
    order = np.argsort(-np.asarray(lengths), kind="stable")
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


def epoch_batches(
    lengths: Sequence[int], batch_size: int, seed: int, epoch: int, group_by_length: int = 0
) -> list[np.ndarray]:
    """Index batches of one training epoch; a function of ``(seed, epoch)`` only, so a resumed run replays them.

    ``group_by_length=0``: consecutive slices of a seeded permutation. ``group_by_length=k > 0``: the permutation
    is cut into chunks of ``k`` batches, each chunk is sorted by length (longest first) and sliced, and the batch
    order is shuffled with the same generator. Batches then hold texts of similar length, so little compute goes
    to padding (Hugging Face's ``group_by_length``, with ``k`` as its mega-batch factor); every index still
    appears exactly once per epoch.
    """
    rng = np.random.default_rng([seed, epoch])
    perm = rng.permutation(len(lengths))
    if group_by_length <= 0:
        return [perm[i : i + batch_size] for i in range(0, len(perm), batch_size)]
    lengths = np.asarray(lengths)
    chunk = batch_size * group_by_length
    batches = []
    for start in range(0, len(perm), chunk):
        part = perm[start : start + chunk]
        batches += [part[idx] for idx in length_batches(lengths[part], batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def response_logprobs(model: Any, batch: dict[str, Any], precision: str = "fp32") -> tuple[Any, Any]:
    """Log-probability of every response token, computing the LM head on response positions only.

    Gemma's 262k-token vocabulary makes the full ``(batch, seq, vocab)`` logits the dominant cost; projecting
    only the hidden states that predict a labelled token avoids it. ``precision="bf16"`` runs the matmuls under
    bfloat16 autocast (:func:`autocast`); the log-softmax is always computed in float32.

    Returns
    -------
    (token_logprobs, row) : tuple of tensors
        Flat per-token log-probs and the batch row each one belongs to.
    """
    import torch
    import torch.nn.functional as F

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    targets = batch["labels"][:, 1:]
    mask = targets != IGNORE
    with autocast(batch["input_ids"].device, precision):
        hidden = base.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        logits = base.lm_head(hidden[:, :-1][mask])
    logits = logits.float()
    cap = getattr(base.config, "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    token_lp = -F.cross_entropy(logits, targets[mask], reduction="none")
    row = mask.nonzero()[:, 0]
    return token_lp, row


def load_causal_lm(
    path: str | Path, device: Any = "cpu", adapter: str | Path | None = None, dtype: str = "fp32"
) -> tuple[Any, Any]:
    """Load a local causal LM folder (safetensors, no remote code) and optionally a PEFT adapter on top.

    ``dtype="bf16"`` loads the weights in bfloat16 (half the memory; for 8B models on one GPU); LoRA weights that
    peft adds stay float32.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from mdaq.models.assets import require_asset

    path = require_asset(Path(path))
    tok = AutoTokenizer.from_pretrained(path)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    if dtype not in PRECISIONS:
        raise ValueError(f"dtype must be one of {PRECISIONS}, got {dtype!r}")
    torch_dtype = torch.bfloat16 if dtype == "bf16" else torch.float32
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype, use_safetensors=True)
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter))
    return tok, model.to(device)


def encoded_logprobs(
    model: Any, tok: Any, encoded: Sequence[Encoded], batch_size: int, precision: str = "fp32", desc: str = "score"
) -> tuple[np.ndarray, np.ndarray]:
    """Summed log-probability and count of the labelled tokens of each encoded sequence, in length-sorted
    batches without gradients."""
    import torch
    from tqdm.auto import tqdm

    device = next(model.parameters()).device
    sums, counts = np.zeros(len(encoded)), np.zeros(len(encoded), dtype=np.int64)
    model.eval()
    batches = list(length_batches([len(e.input_ids) for e in encoded], batch_size))
    with torch.inference_mode():
        for idx in tqdm(batches, desc=desc, unit="batch"):
            batch = {k: v.to(device) for k, v in collate([encoded[i] for i in idx], tok.pad_token_id).items()}
            token_lp, row = response_logprobs(model, batch, precision)
            sums[idx] = torch.zeros(len(idx), dtype=torch.float64).index_add_(0, row.cpu(), token_lp.double().cpu())
            counts[idx] = np.bincount(row.cpu().numpy(), minlength=len(idx))
    return sums, counts
