"""Kill tests (issue 18): `kill -9` an entry point at a seeded random moment, rerun it, and the final outputs equal an
uninterrupted run's while nothing outside the outputs changed (docs/reliability.md)."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from mdaq.cli import main
from mdaq.config import load_profile
from mdaq.io import write_jsonl, write_samples
from mdaq.types import Sample

from .conftest import REPO

ENV = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "mdaq", *args]


def _tree(root: Path, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """Relative path -> sha256 of every file under ``root`` (outside ``skip`` prefixes)."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.is_file() and not rel.startswith(skip):
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _kill_then_finish(cmd: list[str], cwd: Path, delays: list[float], ready: Path | None = None) -> int:
    """Start ``cmd``, SIGKILL it after each delay in turn (counted from when ``ready`` exists, if given), then run it
    to the end. Returns how many runs were killed while still running."""
    killed = 0
    for delay in delays:
        proc = subprocess.Popen(cmd, cwd=cwd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while ready is not None and not ready.exists() and proc.poll() is None:
            time.sleep(0.05)
        try:
            proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            killed += 1
    done = subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return killed


def _timed(cmd: list[str], cwd: Path) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return time.perf_counter() - t0


def _delays(seed: int, total: float, n: int) -> list[float]:
    rng = random.Random(seed)
    return [rng.uniform(0.2, max(total, 0.5)) for _ in range(n)]


def _samples(n: int = 16) -> list[Sample]:
    return [Sample.create("fr", f"Répète le mot {i}.", "", f"mot {i} " * 3) for i in range(n)]


def test_select_killed_then_rerun(tmp_path, monkeypatch, seed=0):
    inputs = tmp_path / "in"
    inputs.mkdir()
    write_samples(inputs / "pool.jsonl", _samples(200))
    cmd = _cli("select", "--method", "random", "--pool", "in/pool.jsonl", "--budget", "20", "--seed", "3")
    reference = tmp_path / "ref"
    reference.mkdir()
    monkeypatch.chdir(tmp_path)  # the uninterrupted reference in this process: the same entry point, no start-up
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        assert main([*cmd[3:], "--out", str(reference / "sel.jsonl")]) == 0
    total = time.perf_counter() - t0 + 3.0  # + a process's start-up
    before = _tree(inputs)
    _kill_then_finish([*cmd, "--out", "out/sel.jsonl"], tmp_path, _delays(seed, total, 2))
    assert (tmp_path / "out" / "sel.jsonl").read_bytes() == (reference / "sel.jsonl").read_bytes()
    assert _tree(inputs) == before
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["sel.jsonl"], "no temp file left"


def test_fetch_killed_then_rerun(tmp_path):
    mirror = tmp_path / "mirror"
    files = {}
    rng = random.Random(0)
    for k in range(6):  # large enough that a kill lands mid-copy
        rel = f"midb/part{k}.json"
        data = bytes(rng.getrandbits(8) for _ in range(1 << 16)) * 48
        (mirror / rel).parent.mkdir(parents=True, exist_ok=True)
        (mirror / rel).write_bytes(data)
        files[rel] = hashlib.sha256(data).hexdigest()
    manifest = tmp_path / "manifest.json"
    manifest.write_text(
        yaml.safe_dump({"commit": "0" * 40, "url_template": "http://127.0.0.1:9/{commit}/{path}", "files": files})
    )
    script = (
        "import sys, yaml; from mdaq.data.fetch import fetch; "
        "fetch(sys.argv[1], mirror=sys.argv[2], manifest=yaml.safe_load(open(sys.argv[3])))"
    )
    cmd = [sys.executable, "-c", script, "out", str(mirror), str(manifest)]
    before = _tree(mirror)
    assert _kill_then_finish(cmd, tmp_path, [0.01, 0.05, 0.1], ready=tmp_path / "out" / "midb") >= 1
    assert _tree(tmp_path / "out") == {rel: sha for rel, sha in files.items()}, "pinned files only, all verified"
    assert _tree(mirror) == before


def test_lora_training_killed_then_rerun(tiny_lm, tmp_path, monkeypatch):
    write_samples(tmp_path / "pool.jsonl", _samples())
    write_jsonl(tmp_path / "sel.jsonl", [{"id": s.id} for s in _samples()])
    params = load_profile(REPO / "profiles" / "smoke.yaml")
    # precision pinned: the in-process reference sees the test bf16 probe ("slow": fp32), the killed command the real
    # one, which is bf16 on an AMX / AVX512-BF16 CPU; this test is about resuming, not about precision
    params["train"] = dict(
        params["train"],
        lora_dropout=0.0,
        batch_size=2,
        epochs=1,
        max_seq_len=48,
        checkpoint_every=2,
        lr=5e-3,
        precision="fp32",
    )
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))

    def cmd(out: str) -> list[str]:
        files = {"--pool": "pool.jsonl", "--selection": "sel.jsonl", "--params": "params.yaml", "--out": out}
        return _cli("train", "--base-model", str(tiny_lm), *(x for kv in files.items() for x in kv))

    from mdaq.training.lora import train_from_files

    # the uninterrupted reference in this process (the same library call the command makes; no start-up cost)
    monkeypatch.chdir(tmp_path)
    train_from_files(tiny_lm, "pool.jsonl", "sel.jsonl", "ref", "params.yaml")
    inputs = _tree(tmp_path, skip=("ref", "out"))
    # killed at a seeded moment after its first checkpoint, twice: the rerun resumes from the latest one
    ready = tmp_path / "out.ckpt" / "state.json"
    assert _kill_then_finish(cmd("out"), tmp_path, _delays(2, 0.5, 2), ready=ready) >= 1
    ref, out = tmp_path / "ref", tmp_path / "out"
    assert (out / "adapter_model.safetensors").read_bytes() == (ref / "adapter_model.safetensors").read_bytes()
    assert (out / "adapter_config.json").read_bytes() == (ref / "adapter_config.json").read_bytes()
    assert _tree(tmp_path, skip=("ref", "out")) == inputs, "nothing outside the outputs changed, no temp left"


JUDGE_SCRIPT = """
import json, sys
from mdaq.config import JudgeConfig
from mdaq.judging.stage import run_judge_stage
gen, midb, url, out, cache = sys.argv[1:6]
cfg = JudgeConfig(backend="openai_compat", model="stub", base_url=url, n_concurrent=1, max_retries=0)
run_judge_stage(gen, midb, ["full", "mdaq_das"], ["de"], cfg, out, cache)
"""


def test_judge_stage_killed_then_rerun(tmp_path, monkeypatch):
    """The judge stage killed mid-batch (each reply takes 0.1 s) and rerun: the same judgments and win rates as an
    uninterrupted run, and the rerun asks the server only what the killed runs had not cached."""
    from mdaq.io import read_json, read_jsonl

    from .judge_stub import StubServer
    from .test_judging import QUESTIONS, _generations

    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    gen, midb = tmp_path / "gen", tmp_path / "midb"
    _generations(gen, "full", long=False)
    _generations(gen, "mdaq_das", long=True)
    (midb / "mt_bench").mkdir(parents=True)
    (midb / "mt_bench" / "German.json").write_text(json.dumps(QUESTIONS), encoding="utf-8")
    server = StubServer()

    def reply(body):  # deterministic in the prompt, slow enough for a kill to land between requests
        time.sleep(0.1)
        text = json.dumps(body["messages"], sort_keys=True)
        return "[[1]]" if int(hashlib.sha256(text.encode()).hexdigest(), 16) % 3 else "[[2]]"

    server.reply = reply
    try:

        def cmd(out: str) -> list[str]:
            return [sys.executable, "-c", JUDGE_SCRIPT, "gen", "midb", server.base_url, out, f"{out}.sqlite"]

        _timed(cmd("ref"), tmp_path)
        n_reference = server.count
        inputs = _tree(tmp_path, skip=("ref", "out"))
        ready = tmp_path / "out.sqlite"
        killed = _kill_then_finish(cmd("out"), tmp_path, _delays(3, 0.6, 2), ready=ready)
        assert killed >= 1
        assert server.count - n_reference <= n_reference + 2 * killed, "at most the in-flight request is asked twice"
    finally:
        server.close()
    ref, out = tmp_path / "ref" / "mdaq_das" / "de", tmp_path / "out" / "mdaq_das" / "de"

    def verdicts(path):
        return sorted(
            (r["benchmark"], str(r["item_id"]), r["order"], str(r["winner"]), str(r.get("verdict")))
            for r in read_jsonl(path / "judgments.jsonl")
        )

    assert verdicts(out) == verdicts(ref)
    for bench in ("alpaca_eval", "mt_bench_r1", "mt_bench_r2"):
        assert read_json(out / "judge.json")[bench]["win_rate"] == read_json(ref / "judge.json")[bench]["win_rate"]
    assert _tree(tmp_path, skip=("ref", "out")) == inputs
