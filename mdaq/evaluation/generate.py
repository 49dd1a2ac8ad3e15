"""Answers of a fine-tuned model to the translated AlpacaEval and MT-Bench prompts: batched, greedy by default,
resumable, with the detected language of every answer.

Outputs follow the formats the judges read: AlpacaEval model outputs (a JSON list of ``{instruction, output,
generator, dataset}``) and MT-Bench answers (JSONL of ``{question_id, answer_id, model_id, choices: [{index,
turns}]}``, FastChat's layout without its wall-clock ``tstamp``), each record carrying ``lang`` and
``detected_lang`` as extra fields.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mdaq.config import GenerateConfig
from mdaq.io import atomic_path, iter_jsonl
from mdaq.models.lm import PROMPT_TEMPLATE, autocast, format_prompt

log = logging.getLogger(__name__)


def turn2_prompt(turn1: str, answer1: str, turn2: str) -> str:
    """The round-2 prompt: the whole dialogue so far (question 1, the model's own answer 1, question 2), in the
    training template, so round 2 is conditioned on what the model actually said in round 1."""
    return f"{format_prompt(turn1)}{answer1.strip()}\n\n{PROMPT_TEMPLATE.format(instruction=turn2)}"


def detect_language(text: str) -> str:
    """ISO 639-1 code from py3langid (offline; 97 languages); ``"und"`` for empty text."""
    if not text.strip():
        return "und"
    import py3langid

    return py3langid.classify(text)[0]


class Generator:
    """Batched generation from a base model + optional LoRA adapter (left padding, no gradients).

    Parameters
    ----------
    base_model, adapter : path
        Model folder and adapter folder (None: the base model itself).
    cfg : GenerateConfig
        ``params.yaml: generate`` (max new tokens, batch size, greedy or seeded sampling, precision).
    loaded : (tokenizer, model), optional
        That base model + adapter, already loaded on ``cfg.device`` (then nothing is read from disk). The
        adapter is merged into it in place, so score with it before generating.
    """

    def __init__(
        self,
        base_model: str | Path,
        adapter: str | Path | None,
        cfg: GenerateConfig,
        *,
        loaded: tuple[Any, Any] | None = None,
    ) -> None:
        from mdaq.hardware import configure_torch
        from mdaq.models.lm import load_causal_lm, resolve_device

        self.cfg = cfg
        self.device = resolve_device(cfg.device)
        self.hardware = configure_torch(cfg.precision, self.device, stage="generate", decoding=True)
        self.precision = self.hardware["precision"]  # decoding's rule: fp32 on CPUs (mdaq.hardware)
        if loaded is None:
            loaded = load_causal_lm(base_model, self.device, adapter=adapter)
        self.tok, self.model = loaded
        if adapter is not None and hasattr(self.model, "merge_and_unload"):
            self.model = self.model.merge_and_unload()  # same outputs, no per-layer adapter matmuls
        self.model.eval()
        self.tok.padding_side = "left"  # decoder-only generation continues from the last real token
        self.tok.truncation_side = "left"  # a too-long prompt loses its start, never the question at its end

    def __call__(self, prompts: Sequence[str], seed: int = 0) -> list[str]:
        """Answers to ``prompts`` in order; batches are formed from length-sorted prompts."""
        import torch

        if not prompts:
            return []
        lengths = [len(self.tok(p)["input_ids"]) for p in prompts]
        order = np.argsort(-np.asarray(lengths), kind="stable")
        out: list[str] = [""] * len(prompts)
        for start in range(0, len(order), self.cfg.batch_size):
            idx = order[start : start + self.cfg.batch_size]
            batch = self.tok(
                [prompts[i] for i in idx],
                return_tensors="pt",
                padding=True,
                truncation=True,
                max_length=self.cfg.max_prompt_len,
            ).to(self.device)
            kw: dict[str, Any] = {"max_new_tokens": self.cfg.max_new_tokens, "pad_token_id": self.tok.pad_token_id}
            if self.cfg.do_sample:
                torch.manual_seed(seed + start)  # batch-level seed: same params, same answers
                kw.update(do_sample=True, temperature=self.cfg.temperature, top_p=self.cfg.top_p)
            else:
                kw.update(do_sample=False)
            with torch.inference_mode(), autocast(self.device, self.precision):
                gen = self.model.generate(**batch, **kw)
            new = gen[:, batch["input_ids"].shape[1] :]
            for row, i in enumerate(idx):
                out[i] = self.tok.decode(new[row], skip_special_tokens=True).strip()
        return out


def _stable_id(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, ensure_ascii=False).encode()).hexdigest()[:16]


def _resume(partial: Path) -> dict[str, dict]:
    """Records already written to a ``.partial`` JSONL (a torn last line from a crash is dropped)."""
    done: dict[str, dict] = {}
    if partial.is_file():
        try:
            for rec in iter_jsonl(partial):
                done[rec["key"]] = rec
        except Exception:  # noqa: BLE001  (a half-written last line: keep what parsed)
            log.warning("%s: ignoring a torn record at the end", partial)
    return done


def _append(partial: Path, records: Sequence[dict], done: dict[str, dict]) -> None:
    """Append ``records`` to the ``.partial`` file and to ``done`` (no re-reading: linear I/O)."""
    partial.parent.mkdir(parents=True, exist_ok=True)
    with partial.open("a", encoding="utf-8") as f:
        for rec in records:
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
        f.flush()
    done.update((rec["key"], rec) for rec in records)


def generate_alpaca_eval(
    generate: Callable[[Sequence[str], int], list[str]],
    instructions: Sequence[str],
    out_path: str | Path,
    *,
    generator: str,
    lang: str,
    chunk: int = 32,
    seed: int = 0,
) -> list[dict]:
    """Answer every AlpacaEval instruction and write AlpacaEval's model-outputs JSON.

    Work is appended to ``<out_path>.partial`` every ``chunk`` answers; a rerun skips what is there, so an
    interrupted run loses at most one chunk. The final file is written atomically and the partial file removed.
    """
    out_path = Path(out_path)
    partial = out_path.with_name(out_path.name + ".partial")
    done = _resume(partial)
    keys = [_stable_id(lang, i, text) for i, text in enumerate(instructions)]
    todo = [i for i, k in enumerate(keys) if k not in done]
    for start in range(0, len(todo), chunk):
        part = todo[start : start + chunk]
        answers = generate([format_prompt(instructions[i]) for i in part], seed + start)
        _append(
            partial,
            [
                {"key": keys[i], "output": a, "detected_lang": detect_language(a)}
                for i, a in zip(part, answers, strict=True)
            ],
            done,
        )
    records = [
        {
            "instruction": text,
            "output": done[k]["output"],
            "generator": generator,
            "dataset": f"alpaca_eval_{lang}",
            "lang": lang,
            "detected_lang": done[k]["detected_lang"],
        }
        for text, k in zip(instructions, keys, strict=True)
    ]
    with atomic_path(out_path) as tmp:
        tmp.write_text(json.dumps(records, ensure_ascii=False, indent=1), encoding="utf-8")
    partial.unlink(missing_ok=True)
    return records


def generate_mt_bench(
    generate: Callable[[Sequence[str], int], list[str]],
    questions: Sequence[dict],
    out_path: str | Path,
    *,
    model_id: str,
    lang: str,
    chunk: int = 16,
    seed: int = 0,
) -> list[dict]:
    """Answer both MT-Bench turns (turn 2 sees the model's own turn-1 answer) and write the answer JSONL.

    Questions with one turn (a few in the translated release) get a one-turn answer. Resumable like
    :func:`generate_alpaca_eval`: turn-1 answers of a chunk are saved before its turn-2 prompts are built.
    """
    out_path = Path(out_path)
    partial = out_path.with_name(out_path.name + ".partial")
    done = _resume(partial)
    for start in range(0, len(questions), chunk):
        part = questions[start : start + chunk]
        need1 = [q for q in part if f"{q['question_id']}:1" not in done]
        if need1:
            answers = generate([format_prompt(q["turns"][0]) for q in need1], seed + start)
            _append(
                partial,
                [
                    {"key": f"{q['question_id']}:1", "output": a, "detected_lang": detect_language(a)}
                    for q, a in zip(need1, answers, strict=True)
                ],
                done,
            )
        need2 = [q for q in part if len(q["turns"]) > 1 and f"{q['question_id']}:2" not in done]
        if need2:
            prompts = [
                turn2_prompt(q["turns"][0], done[f"{q['question_id']}:1"]["output"], q["turns"][1]) for q in need2
            ]
            answers = generate(prompts, seed + start + 100_000)
            _append(
                partial,
                [
                    {"key": f"{q['question_id']}:2", "output": a, "detected_lang": detect_language(a)}
                    for q, a in zip(need2, answers, strict=True)
                ],
                done,
            )
    records = []
    for q in questions:
        turns = [done[f"{q['question_id']}:{t + 1}"] for t in range(len(q["turns"]))]
        records.append(
            {
                "question_id": q["question_id"],
                "answer_id": _stable_id(model_id, lang, q["question_id"]),
                "model_id": model_id,
                "choices": [{"index": 0, "turns": [t["output"] for t in turns]}],
                "lang": lang,
                "detected_lang": [t["detected_lang"] for t in turns],
            }
        )
    with atomic_path(out_path) as tmp:
        tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    partial.unlink(missing_ok=True)
    return records
