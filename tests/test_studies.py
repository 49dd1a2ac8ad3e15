"""Study snapshots (mdaq/pipeline/studies.py): a profile's results saved to studies/PROFILE/ and put back."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mdaq.cli import main
from mdaq.errors import DataError
from mdaq.pipeline.studies import (
    HIDE_CPU_BF16,
    committed_precision,
    design_change,
    precision_plan,
    restore_snapshot,
    run_precisions,
    save_snapshot,
    snapshot_dir,
)

from .conftest import REPO

LOCK = """schema: '2.0'
stages:
  run@full-de-0:
    cmd: papermill ...
    outs:
    - path: results/runs/full/de/s0
      hash: md5
  leaderboard:
    outs:
    - path: figures/f.png
    - path: artifacts/cached/thing
"""


def _work(root, params="profile: study\n", lock=LOCK):
    (root / "results" / "runs" / "full" / "de" / "s0").mkdir(parents=True)
    (root / "results" / "runs" / "full" / "de" / "s0" / "metrics.json").write_text('{"acc": 0.5}')
    (root / "figures").mkdir()
    (root / "figures" / "f.png").write_bytes(b"png")
    (root / "results" / "qsm").mkdir()  # the default profile's file, from HEAD: not this study's
    (root / "results" / "qsm" / "summary.csv").write_text("default")
    (root / "params.yaml").write_text(params)
    (root / "dvc.lock").write_text(lock)
    return root


def test_save_then_restore_round_trip(tmp_path):
    work = _work(tmp_path / "w")
    snap = tmp_path / "repo" / "studies" / "study"
    assert save_snapshot(work, snap) == ["params.yaml", "dvc.lock", "figures/f.png", "results/runs/full/de/s0"]
    assert (snap / "results/runs/full/de/s0/metrics.json").read_text() == '{"acc": 0.5}'
    assert not (snap / "results" / "qsm").exists(), "only what the lock records as the study's outputs"
    # a second sitting: a fresh worktree whose results are another profile's, same params.yaml
    fresh = tmp_path / "fresh"
    (fresh / "results" / "runs" / "random").mkdir(parents=True)
    (fresh / "params.yaml").write_text("profile: study\n")
    restore_snapshot(snap, fresh)
    assert (fresh / "results/runs/full/de/s0/metrics.json").is_file()
    assert not (fresh / "results/runs/random").exists(), "results/ is replaced whole, nothing stale stays"
    assert (fresh / "dvc.lock").read_text() == (work / "dvc.lock").read_text()
    assert (fresh / "figures/f.png").read_bytes() == b"png"


def test_restore_keeps_the_published_folders_readmes(tmp_path):
    # a study without SAH runs still needs results/sah (a leaderboard dependency), kept by its git-tracked README
    snap = tmp_path / "snap"
    save_snapshot(_work(tmp_path / "w"), snap)
    fresh = tmp_path / "fresh"
    for rel in ("results/sah/README.md", "results/sah/m/100/de/metrics.json", "results/leaderboard.csv"):
        (fresh / rel).parent.mkdir(parents=True, exist_ok=True)
        (fresh / rel).write_text("default profile")
    (fresh / "params.yaml").write_text("profile: study\n")
    restore_snapshot(snap, fresh)
    assert (fresh / "results/sah/README.md").read_text() == "default profile"
    assert not (fresh / "results/sah/m").exists() and not (fresh / "results/leaderboard.csv").exists()
    assert (fresh / "results/runs/full/de/s0/metrics.json").is_file()


def test_save_replaces_the_previous_snapshot_whole(tmp_path):
    work = _work(tmp_path / "w")
    snap = tmp_path / "studies" / "study"
    save_snapshot(work, snap)
    (snap / "results" / "stale.csv").write_text("x")
    save_snapshot(work, snap)
    assert not (snap / "results" / "stale.csv").exists()
    assert not snap.with_name("study.saving").exists() and not snap.with_name("study.old").exists()


def test_restore_refuses_a_changed_profile(tmp_path):
    snap = tmp_path / "studies" / "study"
    save_snapshot(_work(tmp_path / "w"), snap)
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / "params.yaml").write_text("profile: study\ntrain: {epochs: 2}\n")  # a setting, not a growth
    with pytest.raises(DataError, match="profile changed"):
        restore_snapshot(snap, fresh)
    assert not (fresh / "results").exists(), "nothing restored after a refusal"


@pytest.mark.parametrize("lock", ["stages: {a: [\n", "- just a list\n"])
def test_save_refuses_a_torn_or_foreign_lock(tmp_path, lock):
    snap = tmp_path / "studies" / "study"
    with pytest.raises(DataError, match="dvc.lock"):
        save_snapshot(_work(tmp_path / "w", lock=lock), snap)
    assert not snap.exists()


def test_save_needs_a_run_folder(tmp_path):
    with pytest.raises(DataError, match="params.yaml"):
        save_snapshot(tmp_path, tmp_path / "studies" / "study")


@pytest.mark.parametrize("name", ["default", "../x", ".hidden", ""])
def test_snapshot_dir_names_a_study(tmp_path, name):
    with pytest.raises(DataError):
        snapshot_dir(tmp_path, name)


def test_cli_save_and_restore(tmp_path, capsys):
    work = _work(tmp_path / "w")
    repo = tmp_path / "repo"
    assert main(["study", "restore", "study", "--work", str(work), "--repo", str(repo)]) == 0
    assert "afresh" in capsys.readouterr().out
    assert main(["study", "save", "study", "--work", str(work), "--repo", str(repo)]) == 0
    assert (repo / "studies/study/results/runs/full/de/s0/metrics.json").is_file()
    assert main(["study", "restore", "study", "--work", str(work), "--repo", str(repo)]) == 0


def test_the_code_revision_travels_with_the_snapshot(tmp_path):
    work = _work(tmp_path / "w")
    (work / "study-rev").write_text("84cd375\n")
    snap = tmp_path / "studies" / "study"
    assert "study-rev" in save_snapshot(work, snap)
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / "params.yaml").write_text("profile: study\n")
    assert "study-rev" in restore_snapshot(snap, fresh)
    assert (fresh / "study-rev").read_text() == "84cd375\n"


DESIGN = """profile: study
seeds: [0]
method_seeds: {}
methods: [full, mdaq_das]
train: {epochs: 3}
runs:
  full-de-0: {method: full, lang: de, seed: 0}
  mdaq_das-de-0: {method: mdaq_das, lang: de, seed: 0}
"""


def test_a_design_may_grow_but_not_change():
    grown = (
        DESIGN.replace("method_seeds: {}", "method_seeds: {mdaq_das: [0, 1]}").replace(
            "methods: [full, mdaq_das]", "methods: [full, mdaq_das, random]"
        )
        + "  mdaq_das-de-1: {method: mdaq_das, lang: de, seed: 1}\n"
        + "  random-de-0: {method: random, lang: de, seed: 0}\n"
    )
    assert design_change(DESIGN, DESIGN) is None
    assert design_change(DESIGN, grown) is None
    assert "train" in design_change(DESIGN, DESIGN.replace("epochs: 3", "epochs: 2"))
    assert "full-de-0" in design_change(DESIGN, DESIGN.replace("  full-de-0: {method: full, lang: de, seed: 0}\n", ""))
    assert "methods removed: full" in design_change(
        grown, grown.replace("[full, mdaq_das, random]", "[mdaq_das, random]")
    )
    changed_run = DESIGN.replace(
        "mdaq_das-de-0: {method: mdaq_das, lang: de, seed: 0}", "mdaq_das-de-0: {method: mdaq_das, lang: ja, seed: 0}"
    )
    assert "mdaq_das-de-0" in design_change(DESIGN, changed_run)


def test_restore_into_a_grown_design_keeps_its_params_and_the_committed_runs(tmp_path):
    snap = tmp_path / "snap"
    save_snapshot(_work(tmp_path / "w", params=DESIGN), snap)
    grown = DESIGN + "  mdaq_das-de-1: {method: mdaq_das, lang: de, seed: 1}\n"
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / "params.yaml").write_text(grown)
    restored = restore_snapshot(snap, fresh)
    assert "params.yaml (grown)" in restored and "params.yaml" not in restored
    assert (fresh / "params.yaml").read_text() == grown
    assert (fresh / "results/runs/full/de/s0/metrics.json").is_file() and (fresh / "dvc.lock").is_file()
    (fresh / "params.yaml").write_text(DESIGN.replace("epochs: 3", "epochs: 2"))
    with pytest.raises(DataError, match="settings changed: train"):
        restore_snapshot(snap, fresh)


def _record(snap, run, precision, name="metrics.json"):
    folder = snap / "results" / "runs" / run
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps({"hardware": {"precision": precision, "precision_requested": "auto"}}))


def test_committed_precision_reads_every_run_and_refuses_a_mix(tmp_path):
    snap = tmp_path / "studies" / "study"
    assert run_precisions(snap) == {} and committed_precision(snap) is None  # no run yet
    _record(snap, "full/de/s0", "fp32")
    _record(snap, "full/de/s0", "fp32", "train.json")
    _record(snap, "base/de/s0", "fp32")
    assert committed_precision(snap) == "fp32"
    assert run_precisions(snap) == {"fp32": ["base/de/s0", "full/de/s0"]}
    _record(snap, "mdaq_das/de/s2", "bf16", "train.json")  # trained in bf16, even if scored in fp32
    _record(snap, "mdaq_das/de/s2", "fp32")
    assert run_precisions(snap)["bf16"] == ["mdaq_das/de/s2"]
    with pytest.raises(DataError, match=r"mix precisions \(fp32: base/de/s0, .*; bf16: mdaq_das/de/s2\)"):
        committed_precision(snap)
    (snap / "results" / "runs" / "full" / "de" / "s0" / "metrics.json").write_text("{torn")
    with pytest.raises(DataError, match=r"full/de/s0/metrics.json.*not a readable run record"):
        run_precisions(snap)


@pytest.mark.parametrize(
    ("committed", "device", "fast", "plan"),
    [
        (None, "cpu", True, "as-is"),  # a first sitting: auto resolves as it will
        ("fp32", "cpu", False, "as-is"),  # the AVX2 machine of the first sittings
        ("fp32", "cpu", True, HIDE_CPU_BF16),  # an AVX512-BF16 / AMX CPU: hide its bf16 flags
        ("bf16", "cpu", True, "as-is"),
        ("bf16", "cuda", True, "as-is"),
    ],
)
def test_precision_plan_keeps_the_committed_precision(committed, device, fast, plan):
    assert precision_plan(committed, device, fast) == plan


@pytest.mark.parametrize(("committed", "device", "fast"), [("bf16", "cpu", False), ("fp32", "cuda", True)])
def test_precision_plan_refuses_what_it_cannot_match(committed, device, fast):
    with pytest.raises(DataError, match=f"committed runs used {committed}"):
        precision_plan(committed, device, fast)


def test_cli_precision_prints_the_plan(tmp_path, capsys, monkeypatch):
    import mdaq.hardware
    import mdaq.models.lm

    snap = tmp_path / "studies" / "study"
    _record(snap, "full/de/s0", "fp32")
    monkeypatch.setattr(mdaq.models.lm, "resolve_device", lambda device="auto": "cpu")
    monkeypatch.setattr(mdaq.hardware, "fast_bf16", lambda device: (True, "X: avx512_bf16"))
    assert main(["study", "precision", "study", "--repo", str(tmp_path)]) == 0
    out = capsys.readouterr()
    assert out.out.strip() == HIDE_CPU_BF16 and "committed runs fp32; here cpu, X: avx512_bf16" in out.err
    monkeypatch.setattr(mdaq.hardware, "fast_bf16", lambda device: (False, "X: no bf16"))
    assert main(["study", "precision", "study", "--repo", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == "as-is"


@pytest.mark.skipif(not Path("/proc/cpuinfo").is_file(), reason="needs Linux /proc/cpuinfo")
def test_without_cpu_bf16_hides_only_the_bf16_flags(tmp_path):
    """scripts/without_cpu_bf16.sh: the command sees /proc/cpuinfo without amx_bf16 / avx512_bf16, every other flag
    kept, and its exit status comes back. Skipped where no private mount namespace can be made."""
    import subprocess
    import sys

    script = REPO / "scripts" / "without_cpu_bf16.sh"
    env = {**os.environ, "PYTHON": sys.executable}
    probe = subprocess.run(["bash", str(script), "true"], env=env, capture_output=True, text=True)
    if probe.returncode == 2 and "no private mount namespace" in probe.stderr:
        pytest.skip("no private mount namespace on this machine")
    assert probe.returncode == 0, probe.stderr
    seen = subprocess.run(["bash", str(script), "cat", "/proc/cpuinfo"], env=env, capture_output=True, text=True)

    def flags(text):
        return {f for line in text.splitlines() if line.startswith("flags") for f in line.split(":")[1].split()}

    real = flags(Path("/proc/cpuinfo").read_text())
    assert flags(seen.stdout) == real - {"amx_bf16", "avx512_bf16"} and flags(seen.stdout)
    hidden = subprocess.run(
        ["bash", str(script), sys.executable, "-c", "from mdaq.hardware import fast_bf16; print(fast_bf16('cpu')[0])"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert hidden.stdout.strip() == "False"
    assert subprocess.run(["bash", str(script), "sh", "-c", "exit 3"], env=env).returncode == 3
    assert subprocess.run(["bash", str(script)], env=env, capture_output=True).returncode == 2  # usage
