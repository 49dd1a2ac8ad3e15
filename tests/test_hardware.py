"""`precision: auto` and threads from the hardware: the probe's rule, cgroup/affinity limits, and every stage type
resolving `auto` to fp32 with the probe patched to "no fast bf16" and to bf16 with it patched to "AMX".

The "AMX" half never runs bf16 arithmetic (it would be emulated, ~100x slower, on AVX2-only CPUs): autocast is
replaced by a spy that records the precision each forward pass asked for and runs it in fp32.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from pathlib import Path

import pytest

from mdaq import Sample, hardware
from mdaq.config import EvaluateConfig, FeaturesConfig, GenerateConfig, IFDConfig, QSMConfig, TrainConfig
from mdaq.hardware import CPUInfo, cpu_fast_bf16, resolve_precision

from .conftest import planted_rows

torch = pytest.importorskip("torch")

AMX = CPUInfo("Intel(R) Xeon(R) Platinum 8480+", frozenset({"avx2", "avx512f", "amx_tile", "amx_bf16"}))
ZEN4 = CPUInfo("AMD EPYC 9654", frozenset({"avx2", "avx512f", "avx512_bf16"}))
AVX2 = CPUInfo("AMD EPYC 7B13", frozenset({"avx", "avx2", "fma"}))


def test_the_rule_reads_the_bf16_flags():
    assert cpu_fast_bf16(AMX)[0] and "amx_bf16" in cpu_fast_bf16(AMX)[1]
    assert cpu_fast_bf16(ZEN4)[0]
    ok, why = cpu_fast_bf16(AVX2)
    assert not ok and "emulated" in why and "AMD EPYC 7B13" in why
    assert not cpu_fast_bf16(CPUInfo("unknown", frozenset()))[0]  # unreadable flags: fp32, the safe side


def test_resolve_precision(monkeypatch):
    monkeypatch.setattr(hardware, "cpu_fast_bf16", lambda info=None: (True, "patched AMX"))
    assert resolve_precision("auto", "cpu") == "bf16"
    assert resolve_precision("auto", "cpu", decoding=True) == "fp32"  # decoding's own rule on CPUs
    assert resolve_precision("fp32", "cpu") == "fp32"
    monkeypatch.setattr(hardware, "cpu_fast_bf16", lambda info=None: (False, "patched AVX2"))
    assert resolve_precision("auto", "cpu") == "fp32"
    assert resolve_precision("bf16", "cpu") == "bf16"  # an explicit choice is obeyed
    with pytest.raises(ValueError, match="precision must be one of"):
        resolve_precision("half", "cpu")


def test_cuda_rule_uses_compute_capability(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: "NVIDIA H100")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda i=0: (9, 0))
    assert resolve_precision("auto", "cuda") == "bf16" and resolve_precision("auto", "cuda:0", decoding=True) == "bf16"
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda i=0: (7, 5))  # T4: no bf16 tensor cores
    assert resolve_precision("auto", "cuda") == "fp32"


def test_cpuinfo_parser_reads_the_first_cpu(tmp_path, monkeypatch):
    text = "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu avx2 fma\n\nprocessor\t: 1\nflags\t: amx_bf16\n"
    real_read = Path.read_text
    monkeypatch.setattr(
        Path, "read_text", lambda self, *a, **k: text if str(self) == "/proc/cpuinfo" else real_read(self, *a, **k)
    )
    hardware.cpu_info.cache_clear()
    try:
        info = hardware.cpu_info()
    finally:
        hardware.cpu_info.cache_clear()
    assert info.model == "AMD EPYC" and info.flags == {"fpu", "avx2", "fma"}


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"cpu.max": "200000 100000\n"}, 2.0),
        ({"cpu.max": "max 100000\n"}, None),
        ({"cpu/cpu.cfs_quota_us": "150000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 1.5),
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
        ({}, None),
    ],
)
def test_cgroup_quota(tmp_path, files, expected):
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert hardware._cgroup_cpu_limit(tmp_path) == expected


def test_threads_follow_affinity_physical_cores_and_quota(monkeypatch):
    monkeypatch.setattr(hardware.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3, 4, 5, 6, 7}, raising=False)
    monkeypatch.setattr(hardware, "_physical_cores", lambda cpus: len(cpus) // 2)  # 2 hyperthreads per core
    monkeypatch.setattr(hardware, "_cgroup_cpu_limit", lambda root=None: None)
    plan = hardware.thread_plan()
    assert (plan.threads, plan.logical_cpus, plan.physical_cores) == (4, 8, 4)
    monkeypatch.setattr(hardware, "_cgroup_cpu_limit", lambda root=None: 2.5)
    assert hardware.thread_plan().threads == 2
    assert "2 torch threads" in hardware.thread_plan().describe()


def test_set_threads_sets_torch_and_respects_a_pinned_env(monkeypatch):
    before = torch.get_num_threads()
    try:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
        assert hardware.set_threads(hardware.ThreadPlan(1, 2, 2, None)).threads == 1 == torch.get_num_threads()
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        torch.set_num_threads(1)
        assert hardware.set_threads(hardware.ThreadPlan(2, 2, 2, None)).threads == 1 == torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def test_physical_cores_from_sysfs():
    n = hardware._physical_cores({0})
    assert n == 1


# ---- every stage type, with the probe patched either way ----------------------------------------------------------


@pytest.fixture(params=["avx2", "amx"])
def probe(request, monkeypatch):
    """Patch the CPU probe; for "amx" also replace autocast by a spy (fp32 arithmetic, requested precision kept)."""
    fast = request.param == "amx"
    monkeypatch.setattr(hardware, "cpu_fast_bf16", lambda info=None: (fast, f"patched {request.param}"))
    seen: list[str] = []

    def spy(device, precision="fp32"):
        seen.append(hardware.resolve_precision(precision, str(device)))
        return contextlib.nullcontext()

    import mdaq.evaluation.generate
    import mdaq.models.lm

    monkeypatch.setattr(mdaq.models.lm, "autocast", spy)
    monkeypatch.setattr(mdaq.evaluation.generate, "autocast", spy)
    return {"expect": "bf16" if fast else "fp32", "seen": seen}


def _check(probe, record):
    assert record["precision_requested"] == "auto"
    assert record["precision"] == probe["expect"]
    assert record["cpu_model"] and record["torch_threads"] >= 1 and record["device"] == "cpu"
    assert probe["seen"] and set(probe["seen"]) == {probe["expect"]}  # what the forward passes really ran


def _samples(n=8):
    return [
        Sample.create("fr", f"Répète le mot {i}.", "", f"mot {i} " * 3, meta={"is_revised": i % 2 == 0})
        for i in range(n)
    ]


def test_qsm_training_resolves_auto(probe, tiny_encoder, tmp_path):
    from mdaq.quality.model import QualityModel
    from mdaq.quality.train import train_qsm

    cfg = QSMConfig(batch_size=4, max_len=32, epochs=1, precision="auto", device="cpu")
    model = train_qsm(tiny_encoder, planted_rows(8), cfg, tmp_path / "qsm", seed=0)
    _check(probe, model.train_record_["hardware"])
    saved = json.loads((tmp_path / "qsm" / "qsm_config.json").read_text())
    assert saved["precision"] == "auto"  # re-resolved on the machine that loads it
    assert saved["train_record"]["hardware"]["precision"] == probe["expect"]
    assert QualityModel.load(tmp_path / "qsm", device="cpu").precision_ == probe["expect"]


def test_features_resolve_auto(probe, tiny_encoder, tmp_path):
    from mdaq.features.pool import RECORD_FILE, compute_features, write_features
    from mdaq.io import write_jsonl
    from mdaq.quality.model import QualityModel

    QualityModel(tiny_encoder, max_len=32, device="cpu").load_encoder().save(tmp_path / "q")  # untrained: enough
    pool = tmp_path / "pool.jsonl"
    write_jsonl(pool, [s.to_dict() for s in _samples()])
    probe["seen"].clear()
    quality, emb, record = compute_features(
        pool, tmp_path / "q", tiny_encoder, FeaturesConfig(embed_max_len=32), device="cpu"
    )
    write_features(tmp_path / "f", quality, emb, record)
    _check(probe, record["hardware"])
    assert record["qsm_precision"] == probe["expect"]
    assert json.loads((tmp_path / "f" / RECORD_FILE).read_text())["hardware"]["precision"] == probe["expect"]
    assert quality.shape == (8,) and emb.shape[0] == 8


def test_ifd_resolves_auto(probe, tiny_lm, tmp_path):
    from mdaq.features.ifd import compute_ifd, write_ifd

    scores = compute_ifd(tiny_lm, _samples(4), IFDConfig(max_seq_len=32, batch_size=2, device="cpu"))
    _check(probe, scores["hardware"])
    write_ifd(tmp_path, scores)
    assert json.loads((tmp_path / "ifd_record.json").read_text())["hardware"]["precision"] == probe["expect"]


def test_lora_training_resolves_auto(probe, tiny_lm, tmp_path):
    from mdaq.training.lora import train_lora

    cfg = TrainConfig(lora_r=2, epochs=1, batch_size=4, max_seq_len=32, device="cpu")
    out = train_lora(tiny_lm, _samples(), cfg, tmp_path / "a", seed=0)
    _check(probe, json.loads((out / "train_record.json").read_text())["hardware"])


def test_evaluation_resolves_auto_and_decoding_keeps_its_rule(probe, tiny_lm):
    from mdaq.evaluation.generate import Generator
    from mdaq.evaluation.heldout import evaluate_heldout

    rows = [{"instruction": f"Dis {i}.", "chosen": f"{i} " * 3, "rejected": "non"} for i in range(4)]
    metrics = evaluate_heldout(tiny_lm, None, rows, EvaluateConfig(batch_size=2, max_seq_len=32, device="cpu"))
    _check(probe, metrics["hardware"])
    probe["seen"].clear()
    gen = Generator(tiny_lm, None, GenerateConfig(max_new_tokens=2, batch_size=2, device="cpu"))
    gen(["Bonjour", "Salut"])
    assert gen.precision == "fp32" and set(probe["seen"]) == {"fp32"}  # fp32 on CPUs whatever the probe says


def test_params_accept_auto_and_reject_unknown(tmp_path):
    import yaml

    from mdaq.config import load_params
    from mdaq.errors import DataError

    data = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())
    for section in ("qsm", "features", "ifd", "train", "evaluate", "generate"):
        assert data[section]["precision"] == "auto", section  # the default profile decides per machine
    data["train"]["precision"] = "fp16"
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(DataError, match="train.precision"):
        load_params(tmp_path / "p.yaml")
    assert dataclasses.asdict(TrainConfig())["precision"] == "auto"
