"""Profiles: each one loads strictly and resolves every dvc.yaml stage (the paper profile's dry run), hub models."""

from __future__ import annotations

import functools
import json
import shutil
from pathlib import Path

import pytest
import yaml

from mdaq.cli import main
from mdaq.config import load_profile, params_from_dict, run_grid, select_grid
from mdaq.errors import MissingAssetError
from mdaq.pipeline.dryrun import dry_run
from mdaq.submissions.recipe import plan_reuse

REPO = Path(__file__).resolve().parents[1]
PROFILES = sorted((REPO / "profiles").glob("*.yaml"))


@functools.cache
def _dry_run(profile: Path) -> dict:
    """One dry run per profile for the whole module (each loads DVC: seconds)."""
    return dry_run(profile, REPO)


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.stem)
def test_every_profile_resolves_every_stage(profile):
    report = _dry_run(profile)
    assert report["problems"] == []
    params = load_profile(profile)
    plain = params_from_dict(params)
    # method x language x each method's seeds, submissions included, less the runs a verified submission reuses
    planned = params_from_dict({**params, "reused_runs": plan_reuse(plain, REPO / "submissions")})
    assert report["stages"]["run"] == len(run_grid(planned))
    assert report["stages"]["select"] == len(select_grid(planned))
    assert report["stages"].get("submission", 0) == len(plain.submissions)
    assert report["stages"]["features"] == report["stages"]["run_base"] == len(params["languages"])


def test_paper_profile_is_paper_scale():
    report = _dry_run(REPO / "profiles" / "paper.yaml")
    # every method and both controls x every MIDB language with revision pairs x 3 seeds
    assert report["stages"]["run"] == 13 * 11 * 3
    p = load_profile(REPO / "profiles" / "paper.yaml")
    assert p["train"]["accelerate_config"] == "configs/accelerate/8gpu.yaml" and p["train"]["epochs"] == 3
    acc = yaml.safe_load((REPO / p["train"]["accelerate_config"]).read_text())
    assert p["train"]["batch_size"] * p["train"]["grad_accum"] * acc["num_processes"] == 256  # the paper's batch
    assert p["selectors"]["mdaq_das"]["n_quality_ratio"] == 6 and p["selectors"]["mdaq_das"]["n_diversity_ratio"] == 1


def test_dry_run_reports_what_does_not_resolve(tmp_path):
    bad = load_profile(REPO / "profiles" / "paper.yaml")  # standalone: `extends` resolved
    bad["train"]["accelerate_config"] = "configs/accelerate/missing.yaml"
    bad["base_model"] = "no-such-model"
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    problems = dry_run(tmp_path / "bad.yaml", REPO)["problems"]
    assert any("train.accelerate_config" in p for p in problems)
    assert any("base_model" in p and "no-such-model" in p for p in problems)
    # a stage that depends on a file nobody provides
    root = tmp_path / "repo"
    root.mkdir()
    stage = "stages:\n  s:\n    cmd: echo\n    deps: [missing.txt]\n    params: [seed, nokey]\n"
    (root / "dvc.yaml").write_text(stage)
    (tmp_path / "smoke.yaml").write_text(yaml.safe_dump(load_profile(REPO / "profiles" / "smoke.yaml")))
    problems = dry_run(tmp_path / "smoke.yaml", root)["problems"]
    assert any("missing.txt" in p for p in problems) and any("'nokey'" in p for p in problems)


def test_profile_check_cli(capsys, tmp_path):
    assert main(["profile", "check", "paper", "--profiles", str(REPO / "profiles"), "--root", str(REPO)]) == 0
    assert json.loads(capsys.readouterr().out)["n_stages"] > 100
    assert main(["profile", "check", "nope", "--profiles", str(REPO / "profiles")]) == 1


def test_hub_model_download_is_atomic_safetensors_only(tmp_path, monkeypatch, tiny_lm):
    import huggingface_hub

    from mdaq.models.hub import HUB_MODELS, build_hub_model

    calls = []

    def fake_snapshot(repo_id, revision, local_dir, allow_patterns):
        calls.append((repo_id, revision, tuple(allow_patterns)))
        shutil.copytree(tiny_lm, local_dir)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot)
    out = build_hub_model("llama-3-8b", tmp_path / "llama-3-8b")
    manifest = json.loads((out / "asset.json").read_text())
    assert manifest["repo_id"] == HUB_MODELS["llama-3-8b"].repo_id and "config.json" in manifest["files"]
    assert not any(p.endswith((".bin", ".pt")) or p == "*" for p in calls[0][2])
    assert build_hub_model("llama-3-8b", out) == out and len(calls) == 1  # built once

    def offline(**_):
        raise OSError("offline")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    with pytest.raises(MissingAssetError, match="copy a local folder"):
        build_hub_model("xlm-roberta-large", tmp_path / "xlmr")
    assert not (tmp_path / "xlmr").exists() and not list(tmp_path.glob(".*tmp"))
    with pytest.raises(KeyError, match="valid"):
        build_hub_model("nope", tmp_path / "x")


def test_committed_lock_has_only_the_active_profiles_stages():
    """DVC never drops a lock entry and rewrites the whole file after every stage: orphans cost seconds per stage."""
    from mdaq.pipeline.dryrun import stage_names

    lock = yaml.safe_load((REPO / "dvc.lock").read_text())
    orphans = sorted(set(lock["stages"]) - set(stage_names(REPO)))
    assert orphans == [], f"{len(orphans)} orphan dvc.lock entries (python -m mdaq profile prune-lock): {orphans[:5]}"


def test_prune_lock_drops_only_unknown_stages(tmp_path):
    from mdaq.pipeline.dryrun import prune_lock

    for name in ("dvc.yaml", "params.yaml"):
        shutil.copyfile(REPO / name, tmp_path / name)
    (tmp_path / ".dvc").mkdir()
    (tmp_path / ".dvc" / "config").write_text("[core]\n    no_scm = True\n")
    entry = {"cmd": "x", "outs": [{"path": "a", "md5": "0" * 32}]}
    lock = {"schema": "2.0", "stages": {"prepare": entry, "generate@random-de": entry, "qsm": entry}}
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(lock, sort_keys=False))
    assert prune_lock(tmp_path) == ["generate@random-de"]
    kept = yaml.safe_load((tmp_path / "dvc.lock").read_text())
    assert kept["schema"] == "2.0" and list(kept["stages"]) == ["prepare", "qsm"] and kept["stages"]["qsm"] == entry
    assert prune_lock(tmp_path) == []  # idempotent


def test_profile_check_reports_selector_parameters_and_languages_without_midb_files(tmp_path):
    """The finding: `profile check` said "no problems" for unknown selector parameters and `n_clusters: "abc"`;
    each selector's own validation now runs, and a language the pipeline has no MIDB file for is reported."""
    bad = load_profile(REPO / "profiles" / "smoke.yaml")
    bad["selectors"]["car"] = {"n_clusters": "abc"}
    bad["selectors"]["mmr"] = {"lam": 0.5, "bogus": 1}
    bad["languages"] = ["fr", "sw"]
    bad.pop("runs", None)
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    root = tmp_path / "repo"
    root.mkdir()
    (root / "dvc.yaml").write_text("stages:\n  s:\n    cmd: echo\n")
    problems = dry_run(tmp_path / "bad.yaml", root)["problems"]
    assert "selectors.car.n_clusters: expected an int, got 'abc' (str)" in problems
    assert any(p.startswith("selectors.mmr.bogus: unknown parameter") for p in problems)
    assert any(p.startswith("languages: 'sw' has no MIDB file") for p in problems)
