"""dvc.yaml, params.yaml and notebooks agree: every stage notebook exists with a parameters cell, every -p key is
declared there, every -p path is a dep or out of the stage, every method is registered."""

from __future__ import annotations

import re

import nbformat
import pytest
import yaml

from mdaq import SELECTORS, load_params
from mdaq.config import run_grid, select_grid

from .conftest import REPO

DVC = yaml.safe_load((REPO / "dvc.yaml").read_text())
PARAMS = yaml.safe_load((REPO / "params.yaml").read_text())


# paths a stage writes on purpose without declaring them: the `run` stage's adapter is a by-product (not a DVC output),
# so a clone holding the committed results of a run does not train it again (docs/design.md)
BYPRODUCTS = ("artifacts/adapters/",)
# stages whose committed results let a clone skip them: every output must be tracked by git (an ignored output is
# missing in a fresh clone, and DVC reruns a stage with a missing output)
RESUMABLE = ("run", "run_base")


def _stages():
    """One entry per papermill command (a stage may run several notebooks)."""
    for name, stage in DVC["stages"].items():
        stage = stage.get("do", stage)  # foreach stages keep their definition under `do`
        cmds = stage["cmd"] if isinstance(stage["cmd"], list) else [stage["cmd"]]
        papermill = [c for c in cmds if "papermill" in c]
        for k, cmd in enumerate(papermill):
            yield (name if len(papermill) == 1 else f"{name}[{k}]"), stage, cmd


def _parameters_cell(path):
    nb = nbformat.read(path, as_version=4)
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, f"{path}: needs exactly one cell tagged 'parameters'"
    return dict(re.findall(r"^(\w+)\s*=\s*(.+)$", cells[0].source, flags=re.M)), nb


def _names(entries):
    return {next(iter(e)) if isinstance(e, dict) else e for e in entries or []}


@pytest.mark.parametrize(("name", "stage", "cmd"), list(_stages()), ids=[s[0] for s in _stages()])
def test_stage_notebook_parameters(name, stage, cmd):
    nb_path = re.search(r"papermill -k python3 --log-output (\S+\.ipynb)", cmd).group(1)
    declared, nb = _parameters_cell(REPO / nb_path)
    assert nb.cells[0].cell_type == "markdown", f"{nb_path}: first cell explains the stage"
    passed = dict(re.findall(r"-p (\w+) (\S+)", cmd))
    assert set(passed) <= set(declared), f"{name}: -p keys not declared in {nb_path}"
    io = _names(stage.get("deps")) | _names(stage.get("outs")) | _names(stage.get("metrics"))
    for key, value in passed.items():
        if "/" in value and key != "params_path" and not value.startswith(BYPRODUCTS):
            inside = any(value.startswith(d.rstrip("/") + "/") or d.startswith(value + "/") for d in io)
            assert value in io or inside, f"{name}: -p {key} {value} is neither a dep nor an out"
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.get("outputs"), f"{nb_path}: committed with outputs (strip them)"


def test_methods_registered_and_params_valid():
    params = load_params(REPO / "params.yaml")
    assert set(params.methods) <= set(SELECTORS.names())
    for name, hyper in params.selectors.items():
        SELECTORS.get(name)(**hyper)  # __init__ is the schema: unknown hyperparameters fail here
    assert all(isinstance(lang, str) for lang in PARAMS["languages"])


def test_matrix_and_param_sections_exist():
    for name, stage in DVC["stages"].items():
        if "foreach" in stage:  # the generated (method, language, seed) grids of params.yaml, or the submissions
            params = load_params(REPO / "params.yaml")
            grids = {
                "${runs}": (PARAMS["runs"], run_grid(params)),
                "${selects}": (PARAMS["selects"], select_grid(params)),
                "${submissions}": (PARAMS["submissions"], params.submissions),
            }
            assert stage["foreach"] in grids, name
            written, expected = grids[stage["foreach"]]
            assert list(written) == list(expected), name
        stage = stage.get("do", stage)
        for p in stage.get("params", []):
            top = p.split(".")[0]
            assert top in PARAMS, f"{name}: params {p} not in params.yaml"
        if "matrix" in stage:
            assert stage["matrix"] in (
                {"method": "${methods}", "lang": "${languages}"},
                {"lang": "${languages}"},
                {"method": "${methods}"},
                {"method": "${sah.methods}", "size": "${sah.sizes}", "lang": "${languages}"},
            )


@pytest.mark.parametrize("name", RESUMABLE)
def test_resumable_stage_outputs_are_committed(name):
    """A fresh clone must not retrain a run whose results are committed: DVC reruns a stage when any output is
    missing, so the `run` and `run_base` outputs are all uncached (committed) and none is git-ignored."""
    import subprocess

    stage = DVC["stages"][name].get("do", DVC["stages"][name])
    outs = stage["outs"]
    assert outs, name
    for out in outs:
        path, spec = next(iter(out.items())) if isinstance(out, dict) else (out, {})
        assert spec.get("cache") is False, f"{name}: {path} must be `cache: false` (committed with git)"
        probe = re.sub(r"\$\{[^}]+\}", "x", path).rstrip("/") + "/metrics.json"
        ignored = subprocess.run(["git", "check-ignore", "-q", probe], cwd=REPO, check=False).returncode == 0
        assert not ignored, f"{name}: output {path} is git-ignored, so a fresh clone would rerun the stage"
