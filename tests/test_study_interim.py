"""scripts/study_interim.py: the board's paired statistics on the languages of a study whose arms are all in."""

from __future__ import annotations

import importlib.util

import pytest
import yaml

from mdaq import load_params
from mdaq.config import load_profile

from .conftest import REPO, write_run

N = 40


def _script():
    spec = importlib.util.spec_from_file_location("study_interim", REPO / "scripts" / "study_interim.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _study(tmp_path):
    study = tmp_path / "study"
    study.mkdir()
    profile = load_profile(REPO / "profiles" / "study.yaml")
    profile.update(seeds=[0], method_seeds={})  # one seed per arm, whatever seeds the study has grown to
    (study / "params.yaml").write_text(yaml.safe_dump(profile))
    (study / "study-rev").write_text("0123456789abcdef\n")
    return study, load_params(study / "params.yaml")


def test_interim_covers_only_complete_languages_and_reports_controls(tmp_path):
    mod = _script()
    study, params = _study(tmp_path)
    runs = study / "results" / "runs"
    accs = {"base": 0.5, "full": 0.5, "mdaq_das": 0.8, "oracle_revised": 0.9, "oracle_raw": 0.3}
    for method, acc in accs.items():
        k = round(acc * N)
        write_run(runs, method, "de", params, [1.0] * k + [0.0] * (N - k))
    write_run(runs, "base", "ja", params, [1.0] * N)  # Japanese incomplete: left out
    assert mod.complete_langs(runs, params) == ["de"]
    md = mod.interim(study)
    assert "on de (40 held-out pairs; revision `0123456`; training seeds full 0; mdaq_das 0;" in md
    assert "| mdaq_das | 1 | 0.800 ± " in md and "| oracle_raw | 1 | 0.300 ± " in md
    row = next(line for line in md.splitlines() if line.startswith("| mdaq_das | full |"))
    assert "+0.300 [" in row and "12 : 0" in row  # 12 pairs right only with mdaq_das, none only with full
    assert "The controls separate" in md
    with pytest.raises(FileNotFoundError, match="no metrics for full/ja"):
        mod.interim(study, ["ja"])
    (runs / "oracle_raw").rename(tmp_path / "gone")
    with pytest.raises(SystemExit, match="no language has every arm"):
        mod.interim(study)


def test_base_agreement_counts_pairs_and_correlates_margins(tmp_path):
    spec = importlib.util.spec_from_file_location("base_agreement", REPO / "scripts" / "base_agreement.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    params = load_params(REPO / "profiles" / "smoke.yaml")
    base = [1.0] * 6 + [0.0] * 4
    write_run(tmp_path, "base", "de", params, base)
    write_run(tmp_path, "full", "de", params, base)  # the same preferences as base
    write_run(tmp_path, "random", "de", params, [1.0] * 8 + [0.0] * 2)  # two pairs flipped
    write_run(tmp_path, "random", "de", params, base, seed=1)  # another seed: left out with seed=0
    rows = {r["method"]: r for r in mod.agreement(tmp_path, seed=0)}
    assert set(rows) == {"full", "random"}
    assert rows["full"]["same"] == 10 and rows["full"]["r"] == pytest.approx(1.0)
    assert rows["random"]["same"] == 8 and rows["random"]["r"] < 1.0
    assert len(mod.agreement(tmp_path, seed=None)) == 3


def test_committed_seeds_average_the_runs_that_are_in_and_name_them(tmp_path):
    mod = _script()
    study, _ = _study(tmp_path)
    design = yaml.safe_load((study / "params.yaml").read_text())
    design["method_seeds"] = {"full": [0, 1, 2], "mdaq_das": [0, 1, 2]}  # a grown design, partly run
    (study / "params.yaml").write_text(yaml.safe_dump(design))
    params = load_params(study / "params.yaml")
    runs = study / "results" / "runs"
    for lang in ("de", "ja"):
        for method, acc in {"base": 0.5, "full": 0.5, "oracle_revised": 0.9, "oracle_raw": 0.3}.items():
            k = round(acc * N)
            write_run(runs, method, lang, params, [1.0] * k + [0.0] * (N - k))
        write_run(runs, "mdaq_das", lang, params, [1.0] * 32 + [0.0] * 8)  # 0.8
        write_run(runs, "mdaq_das", lang, params, [0.0] * 8 + [1.0] * 24 + [0.0] * 8, seed=1)  # 0.6
    write_run(runs, "full", "de", params, [1.0] * N, seed=1)  # German only: not a seed of both languages
    assert mod.complete_langs(runs, params) == []  # seed 2 of both arms is missing everywhere
    with pytest.raises(SystemExit, match="no language has every arm"):
        mod.interim(study)
    assert mod.complete_langs(runs, params, committed=True) == ["de", "ja"]
    assert mod.committed_seeds(runs, params, ["de", "ja"])["full"] == [0]
    assert mod.committed_seeds(runs, params, ["de"])["full"] == [0, 1]
    md = mod.interim(study, seed_mode="committed")
    assert "training seeds full 0; mdaq_das 0, 1; oracle_revised 0; oracle_raw 0" in md
    # seed-averaged per pair: 8 pairs at 0.5, 24 at 1, 8 at 0 -> 0.7; seed SD of (0.8, 0.6)
    row = next(line for line in md.splitlines() if line.startswith("| mdaq_das | 2 |"))
    assert "| 0.700 ± " in row and "| 0.141 |" in row
    comp = next(line for line in md.splitlines() if line.startswith("| mdaq_das | full |"))
    assert "+0.200 [" in comp
    first = mod.interim(study, ["de", "ja"], seed_mode="first")  # the one-seed analysis: seed 0 of every arm
    assert "training seeds full 0; mdaq_das 0; oracle_revised 0" in first
    assert "| mdaq_das | 1 | 0.800 ± " in first
    dropped = mod.interim(study, ["de", "ja"], seed_mode="committed", drop=["mdaq_das:1"])
    assert "training seeds full 0; mdaq_das 0; oracle_revised 0" in dropped and "| mdaq_das | 1 | 0.800 ± " in dropped
    with pytest.raises(SystemExit, match="not a method:seed"):
        mod.interim(study, seed_mode="committed", drop=["mdaq_das:7"])
    with pytest.raises(SystemExit, match="leaves full without a seed"):
        mod.interim(study, seed_mode="committed", drop=["full:0"])
    with pytest.raises(ValueError, match="seed_mode must be one of"):
        mod.interim(study, seed_mode="all")
    (runs / "mdaq_das").rename(tmp_path / "gone")
    with pytest.raises(SystemExit, match="no language has every arm"):
        mod.interim(study, seed_mode="committed")
    (tmp_path / "gone").rename(runs / "mdaq_das")
    with pytest.raises(SystemExit, match=r"no seed of \['full', 'mdaq_das'"):
        mod.committed_seeds(runs, params, ["de", "ja", "xx"])


def test_run_agreement_compares_the_runs_in_both_folders(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("run_agreement", REPO / "scripts" / "run_agreement.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    params = load_params(REPO / "profiles" / "smoke.yaml")
    a, b = tmp_path / "fp32", tmp_path / "bf16"
    write_run(a, "full", "de", params, [1.0] * 6 + [0.0] * 4)
    write_run(b, "full", "de", params, [1.0] * 5 + [0.0] * 4 + [1.0])  # pair 5 lost, pair 9 won
    write_run(a, "mdaq_das", "de", params, [1.0] * 10)  # only in A: left out
    rows = mod.compare(a, b)
    assert [r["run"] for r in rows] == ["full/de/s0"]
    r = rows[0]
    assert (r["n"], r["same"], r["only_a"], r["only_b"]) == (10, 8, 1, 1)
    assert r["acc_a"] == pytest.approx(0.6) and r["acc_b"] == pytest.approx(0.6) and r["r"] < 1.0
    write_run(b, "mdaq_das", "de", params, [1.0] * 9)  # other items
    with pytest.raises(ValueError, match="not the same held-out items"):
        mod.compare(a, b)
    assert mod.compare(a, tmp_path / "none") == []
