"""Masked encoding, response-only log-probs, LoRA training and judge-free evaluation on a tiny random LM."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from mdaq import Sample
from mdaq.config import EvaluateConfig, TrainConfig, load_profile
from mdaq.evaluation.heldout import evaluate_heldout, preference_metrics
from mdaq.models.lm import IGNORE, collate, encode_pair, format_prompt, load_causal_lm, response_logprobs

torch = pytest.importorskip("torch")
REPO = Path(__file__).resolve().parents[1]


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
    from mdaq.training.lora import train_lora

    cfg = TrainConfig(lora_r=4, lr=5e-3, epochs=3, batch_size=4, max_seq_len=64, warmup_ratio=0.0)
    a = train_lora(tiny_lm, _samples(), cfg, tmp_path / "a", seed=0)
    b = train_lora(tiny_lm, _samples(), cfg, tmp_path / "b", seed=0)
    rec = json.loads((a / "train_record.json").read_text())
    assert (a / "adapter_model.safetensors").is_file() and rec["n_steps"] == 9
    assert np.mean(rec["losses"][-3:]) < np.mean(rec["losses"][:3])
    assert rec["losses"] == json.loads((b / "train_record.json").read_text())["losses"]
    assert rec["sample_ids"] == sorted(s.id for s in _samples())  # sorted by id: the order of a selection is moot
    assert not list(tmp_path.glob(".*tmp"))  # atomic: no temp folder left

    rows = [
        {"instruction": s.instruction, "input": "", "chosen": s.output, "rejected": "zzz qqq " * 3} for s in _samples()
    ]
    ecfg = EvaluateConfig(batch_size=4, max_seq_len=64)
    tuned = evaluate_heldout(tiny_lm, a, rows, ecfg)
    base = evaluate_heldout(tiny_lm, None, rows, ecfg)
    assert tuned["n"] == 12 and tuned["ref_nll"] < base["ref_nll"]
    assert tuned["expert_pref_acc"] >= base["expert_pref_acc"] and tuned["expert_pref_acc"] > 0.9


def test_the_trained_model_in_memory_scores_as_the_saved_adapter(tiny_lm, tmp_path):
    """`on_model` hands over the trained model: the run notebook scores with it instead of loading the base model and
    the adapter again, so it must give the same per-item numbers (dropout off, same float32 weights)."""
    from mdaq.config import load_params
    from mdaq.evaluation.stage import run_model
    from mdaq.training.lora import train_lora

    cfg = TrainConfig(lora_r=4, lr=5e-3, epochs=2, batch_size=4, max_seq_len=64, lora_dropout=0.5)
    kept: dict = {}
    out = train_lora(tiny_lm, _samples(), cfg, tmp_path / "a", seed=0, on_model=lambda t, m: kept.update(m=(t, m)))
    tok, model = kept["m"]
    assert not model.training and all(p.grad is None for p in model.parameters())
    rows = [dict(instruction=s.instruction, input="", chosen=s.output, rejected="zzz " * 4) for s in _samples()]
    ecfg = EvaluateConfig(batch_size=4, max_seq_len=64)
    in_memory = evaluate_heldout(tiny_lm, out, rows, ecfg, loaded=(tok, model), return_items=True)
    reloaded = evaluate_heldout(tiny_lm, out, rows, ecfg, return_items=True)
    cols = ["chosen_lp", "chosen_n", "rejected_lp", "rejected_n"]
    a, b = in_memory["items"][cols].to_numpy(float), reloaded["items"][cols].to_numpy(float)
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-5)
    # already trained (same fingerprint): nothing trained, the hook is not called, the run loads from disk
    again: dict = {}
    train_lora(tiny_lm, _samples(), cfg, tmp_path / "a", seed=0, on_model=lambda t, m: again.update(m=(t, m)))
    assert again == {}
    params = load_params(REPO / "profiles" / "default.yaml")
    assert run_model(tiny_lm, out, params, trained=(tok, model)) == (tok, model)
    bf16_base = dataclasses.replace(params, train=dataclasses.replace(params.train, base_dtype="bf16"))
    assert run_model(tiny_lm, out, bf16_base, trained=(tok, model))[1] is not model  # not what a reload gives
    lm_eval = dataclasses.replace(params, evaluate=dataclasses.replace(params.evaluate, engine="lm_eval"))
    assert run_model(tiny_lm, out, lm_eval, trained=(tok, model)) is None


def test_train_rejects_empty_selection(tiny_lm, tmp_path):
    from mdaq.training.lora import train_lora

    with pytest.raises(ValueError, match="no training samples"):
        train_lora(tiny_lm, [], TrainConfig(), tmp_path / "x")


def test_preference_metrics_hand_computed():
    chosen = (np.array([-2.0, -9.0, -4.0]), np.array([2, 3, 4]))  # per-token -1, -3, -1
    rejected = (np.array([-4.0, -2.0, -2.0]), np.array([2, 2, 2]))  # per-token -2, -1, -1
    m = preference_metrics(chosen, rejected)
    assert m["expert_pref_acc"] == pytest.approx((1 + 0 + 0.5) / 3)
    assert m["ref_nll"] == pytest.approx(15 / 9)
    assert m["n"] == 3


@pytest.mark.parametrize("group_by_length", [0, 2])
def test_train_resume_reaches_the_same_adapter(tiny_lm, tmp_path, group_by_length):
    from safetensors.torch import load_file

    from mdaq.training.lora import Interrupted, train_lora

    cfg = TrainConfig(
        lora_r=4,
        lr=5e-3,
        epochs=2,
        batch_size=2,
        grad_accum=2,
        max_seq_len=64,
        checkpoint_every=2,
        group_by_length=group_by_length,
    )
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


def _train_files(tmp_path, grad_accum: int):
    import yaml

    from mdaq.io import write_jsonl, write_samples

    write_samples(tmp_path / "pool.jsonl", _samples())
    write_jsonl(tmp_path / "sel.jsonl", [{"id": s.id} for s in _samples()])
    params = load_profile(REPO / "profiles" / "smoke.yaml")
    params["train"] = dict(
        params["train"],
        lora_dropout=0.0,
        batch_size=2,
        grad_accum=grad_accum,
        epochs=1,
        max_seq_len=64,
        checkpoint_every=2,
        lr=5e-3,
    )
    path = tmp_path / f"params_ga{grad_accum}.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


@pytest.mark.slow
def test_two_processes_reach_the_one_process_adapter(tiny_lm, tmp_path):
    """The multi-GPU path on CPU: 2 processes (torchrun, gloo) with grad_accum 1 equal 1 process with grad_accum 2."""
    import os
    import subprocess
    import sys

    from safetensors.torch import load_file

    common = [
        "--base-model",
        str(tiny_lm),
        "--pool",
        str(tmp_path / "pool.jsonl"),
        "--selection",
        str(tmp_path / "sel.jsonl"),
    ]
    one = _train_files(tmp_path, grad_accum=2)
    two = _train_files(tmp_path, grad_accum=1)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    subprocess.run(
        [sys.executable, "-m", "mdaq", "train", *common, "--out", str(tmp_path / "a1"), "--params", str(one)],
        check=True,
        env=env,
        cwd=REPO,
    )
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    subprocess.run(
        [*torchrun, "-m", "mdaq", "train", *common, "--out", str(tmp_path / "a2"), "--params", str(two)],
        check=True,
        env=env,
        cwd=REPO,
    )
    r1 = json.loads((tmp_path / "a1" / "train_record.json").read_text())
    r2 = json.loads((tmp_path / "a2" / "train_record.json").read_text())
    assert (r1["world_size"], r2["world_size"]) == (1, 2)
    assert r1["effective_batch_size"] == r2["effective_batch_size"] == 4 and r1["n_steps"] == r2["n_steps"] == 3
    np.testing.assert_allclose(r1["losses"], r2["losses"], rtol=1e-5)
    w1 = load_file(tmp_path / "a1" / "adapter_model.safetensors")
    w2 = load_file(tmp_path / "a2" / "adapter_model.safetensors")
    assert w1.keys() == w2.keys()
    for k in w1:
        torch.testing.assert_close(w1[k], w2[k], atol=1e-5, rtol=1e-4)
    assert not (tmp_path / "a2.ckpt").exists()  # removed after the adapter is saved


def test_launch_command_uses_accelerate_with_the_config(tmp_path):
    from mdaq.training.lora import launch_command

    cfg = tmp_path / "acc.yaml"
    with pytest.raises(FileNotFoundError, match="accelerate config"):
        launch_command(cfg, [])
    cfg.write_text("distributed_type: MULTI_GPU\n")
    cmd = launch_command(cfg, ["--out", "x"])
    assert cmd[1:6] == ["-m", "accelerate.commands.launch", "--config_file", str(cfg), "-m"]
    assert cmd[6:] == ["mdaq", "train", "--out", "x"]


def test_repo_accelerate_configs_are_valid():
    """Every config in configs/accelerate parses with accelerate's own loader."""
    from accelerate.commands.config.config_args import load_config_from_file

    files = sorted((REPO / "configs" / "accelerate").glob("*.yaml"))
    assert files
    for f in files:
        cfg = load_config_from_file(str(f))
        assert cfg.num_processes >= 1 and cfg.mixed_precision == "no", f


def test_epoch_batches_plain_is_the_seeded_permutation():
    from mdaq.models.lm import epoch_batches

    perm = np.random.default_rng([5, 1]).permutation(21)
    got = epoch_batches([3] * 21, 8, seed=5, epoch=1)
    assert [b.tolist() for b in got] == [perm[:8].tolist(), perm[8:16].tolist(), perm[16:].tolist()]


def test_epoch_batches_grouped_by_length():
    from mdaq.models.lm import epoch_batches

    lengths = np.random.default_rng(0).integers(5, 200, size=100)
    plain = epoch_batches(lengths, 8, seed=1, epoch=0)
    grouped = epoch_batches(lengths, 8, seed=1, epoch=0, group_by_length=16)  # one chunk: a full sort
    assert sorted(np.concatenate(grouped).tolist()) == list(range(100))  # every index once
    assert [b.tolist() for b in grouped] == [b.tolist() for b in epoch_batches(lengths, 8, 1, 0, 16)]  # seeded
    assert [b.tolist() for b in grouped] != [b.tolist() for b in epoch_batches(lengths, 8, 1, 1, 16)]  # per epoch

    def padded(batches):
        return sum(int(lengths[b].max()) * len(b) for b in batches)

    assert padded(grouped) < 0.8 * padded(plain)
    spans = sorted((int(lengths[b].min()), int(lengths[b].max())) for b in grouped)
    assert all(hi <= lo_next for (_, hi), (lo_next, _) in zip(spans, spans[1:], strict=False))  # disjoint ranges
    small = epoch_batches(lengths, 8, seed=1, epoch=0, group_by_length=2)  # chunks of 16 sorted separately
    assert sorted(np.concatenate(small).tolist()) == list(range(100)) and len(small) == 13


def test_one_process_trains_on_the_configured_device_not_on_accelerates_earlier_one(tiny_lm, tmp_path, monkeypatch):
    """accelerate's state is a per-process singleton: after one run it reports that run's device to every later
    Accelerator (seen on a GPU machine: a `device: cuda` run after a CPU one trained on the CPU)."""
    import accelerate
    import torch

    from mdaq.training.lora import train_lora

    real = accelerate.Accelerator

    class StaleDevice(real):  # what a second in-process Accelerator reports: an earlier run's device
        @property
        def device(self):
            return torch.device("meta")

    monkeypatch.setattr(accelerate, "Accelerator", StaleDevice)
    cfg = TrainConfig(lora_r=2, epochs=1, batch_size=4, max_seq_len=32, device="cpu")
    out = train_lora(tiny_lm, _samples(4), cfg, tmp_path / "a", seed=0)
    rec = json.loads((out / "train_record.json").read_text())
    assert rec["hardware"]["device"] == "cpu" and np.isfinite(rec["losses"]).all()
