"""Executed notebooks are published one per stage type (mdaq.reporting.notebooks) and the DAS figures draw what
Algorithm 1 picked (mdaq.selectors.plots)."""

from __future__ import annotations

import json

import numpy as np

from mdaq.reporting.notebooks import STREAM_CHARS, pick_runs, publish_notebooks
from mdaq.selectors.algorithms import das_select
from mdaq.selectors.plots import das_toy, pca_2d, plot_das


def _nb(text: str) -> dict:
    return {
        "cells": [{"cell_type": "code", "source": "x", "outputs": [{"output_type": "stream", "text": text}]}],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def test_one_run_per_stage_preferring_mdaq_das(tmp_path):
    runs = tmp_path / "_runs"
    runs.mkdir()
    for name in ("20_select@car-de", "20_select@mdaq_das-ja", "20_select@mdaq_das-de", "00_prepare", "50_leaderboard"):
        (runs / f"{name}.ipynb").write_text(json.dumps(_nb("log " * 1000)))
    assert {s: p.name for s, p in pick_runs(runs).items()} == {
        "00_prepare": "00_prepare.ipynb",
        "20_select": "20_select@mdaq_das-de.ipynb",
        "50_leaderboard": "50_leaderboard.ipynb",
    }
    out = tmp_path / "published"
    (out / "stale.ipynb").parent.mkdir()
    (out / "stale.ipynb").write_text("{}")
    files = publish_notebooks(runs, out, skip=["50_leaderboard"])
    assert [p.name for p in files] == ["00_prepare.ipynb", "20_select.ipynb"]  # replaced as a whole
    text = json.loads((out / "20_select.ipynb").read_text())["cells"][0]["outputs"][0]["text"]
    assert text.startswith("[... ") and len(text) < STREAM_CHARS + 100
    assert "20_select@mdaq_das-de.ipynb" in (out / "README.md").read_text()
    assert not list(tmp_path.glob(".published.*"))
    # the index says why a pipeline notebook has no executed copy
    stages = [tmp_path / f"{s}.ipynb" for s in ("00_prepare", "20_select", "50_leaderboard", "60_sah")]
    publish_notebooks(runs, out, skip=["50_leaderboard"], stage_notebooks=stages)
    index = (out / "README.md").read_text()
    assert "| 50_leaderboard | this stage's own notebook" in index
    assert "| 60_sah | not executed by this profile" in index
    assert "| 00_prepare | not" not in index


def test_das_toy_takes_quality_then_uncovered_clusters():
    toy = das_toy(n_clusters=5, per_cluster=20, budget=7, ratio=(6, 1), seed=3)
    picks, labels, nq = toy["picks"], toy["labels"], toy["n_quality"]
    assert nq == 6 and len(picks) == 7
    order = np.argsort(-toy["quality"], kind="stable")
    assert set(picks[:nq]) == set(order[:nq])  # the quality part is the top by score
    assert labels[picks[nq]] not in set(labels[picks[:nq]])  # the diversity pick opens a new cluster
    np.testing.assert_array_equal(picks, das_select(toy["quality"], labels, 6, 1, fill=False))


def test_plot_das_writes_a_png_and_returns_the_open_figure(tmp_path):
    toy = das_toy()
    fig = plot_das(
        toy["points"], toy["quality"], toy["labels"], toy["picks"], toy["n_quality"], path=tmp_path / "d.png"
    )
    assert (tmp_path / "d.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(fig.axes[0].collections) == 3  # pool, quality picks, diversity picks


def test_pca_2d_is_deterministic_and_centred():
    x = np.random.default_rng(0).normal(size=(50, 8))
    a, b = pca_2d(x), pca_2d(x.copy())
    np.testing.assert_array_equal(a, b)
    assert a.shape == (50, 2) and np.allclose(a.mean(axis=0), 0)
    assert a[:, 0].var() >= a[:, 1].var()
