"""Masked encoding, response-only log-probs, LoRA training and judge-free evaluation on a tiny random LM."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mdaq import Sample
from mdaq.config import EvaluateConfig, TrainConfig
from mdaq.evaluate import evaluate_heldout, preference_metrics
from mdaq.lm import IGNORE, collate, encode_pair, format_prompt, load_causal_lm, response_logprobs

torch = pytest.importorskip("torch")


def test_encode_pair_masks_prompt_and_truncates(tiny_lm):
    tok, _ = load_causal_lm(tiny_lm)
    enc = encode_pair(tok, format_prompt("Say hi", "to Bob"), "Hi Bob!", max_len=64)
    n_prompt = len(tok(format_prompt("Say hi", "to Bob"))["input_ids"])
    assert enc.labels[:n_prompt] == [IGNORE] * n_prompt
    assert enc.labels[n_prompt:] == enc.input_ids[n_prompt:] and enc.labels[-1] == tok.eos_token_id
    long = encode_pair(tok, "word " * 200, "answer " * 200, max_len=50)
    assert len(long.input_ids) == 50 and long.n_response >= 25


def test_collate_masks_padding(tiny_lm):
    tok, _ = load_causal_lm(tiny_lm)
    batch = collate([encode_pair(tok, "a", "b c d", 32), encode_pair(tok, "a", "b", 32)], tok.pad_token_id)
    short = batch["attention_mask"][1].sum()
    assert (batch["labels"][1, short:] == IGNORE).all() and (batch["attention_mask"][1, short:] == 0).all()


def test_response_logprobs_match_full_logits(tiny_lm):
    tok, model = load_causal_lm(tiny_lm)
    encs = [encode_pair(tok, format_prompt("Nenne eine Farbe."), "Blau.", 64), encode_pair(tok, "色", "青です。", 64)]
    batch = collate(encs, tok.pad_token_id)
    with torch.no_grad():
        lp, row = response_logprobs(model, batch)
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    full = torch.log_softmax(logits[:, :-1].float(), -1)
    tgt = batch["labels"][:, 1:]
    mask = tgt != IGNORE
    ref = full[mask].gather(1, tgt[mask][:, None])[:, 0]
    torch.testing.assert_close(lp, ref, atol=1e-4, rtol=1e-4)
    assert row.tolist() == mask.nonzero()[:, 0].tolist()
    assert len(lp) == sum(e.n_response for e in encs)  # prompt tokens carry no loss


def _samples(n=12):
    return [Sample.create("fr", f"Répète le mot {i}.", "", f"mot {i} " * 3) for i in range(n)]


def test_train_lora_learns_saves_and_is_deterministic(tiny_lm, tmp_path):
    from mdaq.train import train_lora

    cfg = TrainConfig(lora_r=4, lr=5e-3, epochs=3, batch_size=4, max_seq_len=64, warmup_ratio=0.0)
    a = train_lora(tiny_lm, _samples(), cfg, tmp_path / "a", seed=0)
    b = train_lora(tiny_lm, _samples(), cfg, tmp_path / "b", seed=0)
    rec = json.loads((a / "train_record.json").read_text())
    assert (a / "adapter_model.safetensors").is_file() and rec["n_steps"] == 9
    assert np.mean(rec["losses"][-3:]) < np.mean(rec["losses"][:3])
    assert rec["losses"] == json.loads((b / "train_record.json").read_text())["losses"]
    assert rec["sample_ids"] == [s.id for s in _samples()]
    assert not list(tmp_path.glob(".*tmp"))  # atomic: no temp folder left

    rows = [{"instruction": s.instruction, "input": "", "chosen": s.output, "rejected": "zzz qqq " * 3}
            for s in _samples()]  # fmt: skip
    ecfg = EvaluateConfig(batch_size=4, max_seq_len=64)
    tuned = evaluate_heldout(tiny_lm, a, rows, ecfg)
    base = evaluate_heldout(tiny_lm, None, rows, ecfg)
    assert tuned["n"] == 12 and tuned["ref_nll"] < base["ref_nll"]
    assert tuned["expert_pref_acc"] >= base["expert_pref_acc"] and tuned["expert_pref_acc"] > 0.9


def test_train_rejects_empty_selection(tiny_lm, tmp_path):
    from mdaq.train import train_lora

    with pytest.raises(ValueError, match="no training samples"):
        train_lora(tiny_lm, [], TrainConfig(), tmp_path / "x")


def test_preference_metrics_hand_computed():
    chosen = (np.array([-2.0, -9.0, -4.0]), np.array([2, 3, 4]))  # per-token -1, -3, -1
    rejected = (np.array([-4.0, -2.0, -2.0]), np.array([2, 2, 2]))  # per-token -2, -1, -1
    m = preference_metrics(chosen, rejected)
    assert m["expert_pref_acc"] == pytest.approx((1 + 0 + 0.5) / 3)
    assert m["ref_nll"] == pytest.approx(15 / 9)
    assert m["n"] == 3


def test_train_resume_reaches_the_same_adapter(tiny_lm, tmp_path):
    from safetensors.torch import load_file

    from mdaq.train import Interrupted, train_lora

    cfg = TrainConfig(lora_r=4, lr=5e-3, epochs=2, batch_size=2, grad_accum=2, max_seq_len=64, checkpoint_every=2)
    full = train_lora(tiny_lm, _samples(), cfg, tmp_path / "full", seed=1, ckpt_dir=tmp_path / "ck_full")
    assert not (tmp_path / "ck_full").exists()  # removed once the adapter is saved
    with pytest.raises(Interrupted):
        train_lora(tiny_lm, _samples(), cfg, tmp_path / "res", seed=1, ckpt_dir=tmp_path / "ck", stop_after=3)
    assert json.loads((tmp_path / "ck" / "state.json").read_text())["step"] == 2 and not (tmp_path / "res").exists()
    resumed = train_lora(tiny_lm, _samples(), cfg, tmp_path / "res", seed=1, ckpt_dir=tmp_path / "ck")
    a, b = load_file(full / "adapter_model.safetensors"), load_file(resumed / "adapter_model.safetensors")
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    rec_full = json.loads((full / "train_record.json").read_text())
    rec_res = json.loads((resumed / "train_record.json").read_text())
    assert rec_res["losses"] == rec_full["losses"] and rec_res["resumed_from_step"] == 2
    other = TrainConfig(**{**cfg.__dict__, "lr": 1e-3})  # a checkpoint of another run is not resumed
    with pytest.raises(Interrupted):
        train_lora(tiny_lm, _samples(), cfg, tmp_path / "x", seed=1, ckpt_dir=tmp_path / "ck2", stop_after=2)
    again = train_lora(tiny_lm, _samples(), other, tmp_path / "x", seed=1, ckpt_dir=tmp_path / "ck2")
    assert json.loads((again / "train_record.json").read_text())["resumed_from_step"] == 0
