"""End to end: a clean copy of the repo runs `dvc repro` on the smoke profile with real MIDB data (from the mirror),
produces the leaderboard, reruns nothing the second time, and reruns only one method's stages when its parameter
changes. A few minutes on 2 CPU cores (docs/design.md, *Stage start-up*)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from .conftest import REPO


def _sh(args, cwd, env, timeout=900):
    res = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, f"{' '.join(args)} failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    return res.stdout + res.stderr


@pytest.fixture(scope="module")
def smoke_repo(tmp_path_factory, midb_mirror):
    """A copy of the tracked/unignored files, with the smoke profile active and the data fetched."""
    dst = tmp_path_factory.mktemp("clone") / "mdaq"
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for rel in files:
        if (REPO / rel).is_file():
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, dst / rel)
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "MDAQ_DATA_MIRROR": str(midb_mirror),
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }
    for args in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "copy"]):
        _sh(args, dst, env)
    _sh([sys.executable, "-m", "mdaq", "profile", "use", "smoke"], dst, env)
    _sh([sys.executable, "-m", "mdaq", "profile", "prune-lock"], dst, env)  # the default profile's entries go
    _sh([sys.executable, "-m", "mdaq", "data", "fetch", "--out", "data/midb"], dst, env)
    return dst, env


def test_smoke_repro_end_to_end(smoke_repo):
    dst, env = smoke_repo
    _sh(["dvc", "repro"], dst, env)
    params = yaml.safe_load((dst / "params.yaml").read_text())
    df = pd.read_csv(dst / "results" / "leaderboard_wide.csv")
    n_rows = (len(params["methods"]) + 1) * (len(params["languages"]) + 1)  # and the base model's row
    assert len(df) == n_rows and set(df["method"]) == {*params["methods"], "base"}
    assert df["expert_pref_acc"].between(0, 1).all() and (df["ref_nll"] > 0).all()
    assert (df["n"] > 0).all() and set(df["status"]) == {"partial"}
    assert df["git_sha"].str.len().min() >= 12 and df["params_sha"].str.len().min() == 12
    full = df[(df["method"] == "full") & (df["lang"] != "all")]
    assert (full["n_selected"] == params["prepare"]["max_pool"]).all()
    assert (dst / "notebooks" / "_runs" / "50_leaderboard.ipynb").is_file()
    long = pd.read_csv(dst / "results" / "leaderboard.csv")
    assert len(long[long["metric"] == "expert_pref_acc"]) == n_rows and not long["metric"].str.startswith("win").any()
    assert (long["git_sha"] == df["git_sha"].iloc[0]).all() and long["params_sha"].notna().all()
    html = (dst / "results" / "leaderboard.html").read_text()
    assert "data:image/png;base64," in html and '"expert_pref_acc"' in html
    comparisons = pd.read_csv(dst / "results" / "comparisons.csv")
    assert set(comparisons["against"]) == {"full"} and set(comparisons["method"]) == {"base", "mdaq_das"}
    assert df["d_acc_vs_full"].notna().sum() == 2 * (len(params["languages"]) + 1)  # every row but full's own
    figures = ("leaderboard_by_language.png", "paired_differences.png", "win_rates.png", "sah_curves.png")
    for fig in (*figures, "human_eval_table1.png"):
        assert (dst / "figures" / fig).stat().st_size > 5_000
    human = json.loads((dst / "results" / "human_eval" / "status.json").read_text())
    assert human["status"] == "skipped" and "docs/human-eval.md" in human["reason"]  # the repo ships no judgments
    skipped = json.loads((dst / "results" / "judge" / "mdaq_das" / "fr" / "judge.json").read_text())
    assert skipped["status"] == "skipped" and "judge.backend: none" in skipped["reason"]
    run = dst / "results" / "runs" / "mdaq_das" / "fr" / "s0"
    runs = json.loads((run / "metrics.json").read_text())
    assert runs["engine"] == "lm_eval" and runs["lm_eval_version"]  # the smoke profile evaluates through lm-eval
    items = pd.read_csv(run / "items.csv")
    assert len(items) == runs["n"] == params["prepare"]["max_heldout"] and items["correct"].mean() == pytest.approx(
        runs["expert_pref_acc"]
    )
    assert json.loads((run / "train.json").read_text())["seed"] == 0
    base = json.loads((dst / "results" / "runs" / "base" / "fr" / "s0" / "metrics.json").read_text())
    assert base["role"] == "base" and base["n_selected"] == 0
    qsm = pd.read_csv(dst / "results" / "qsm" / "qsm_by_lang.csv")
    assert set(qsm["scorer"]) == {"qsm", "untrained", "length", "surface", "random"} and qsm["lang"].nunique() == 11
    assert set(qsm.loc[qsm["lang"] == "ko", "split"]) == {"unseen"}
    assert (qsm["n"] == params["prepare"]["qsm_eval_max"]).all()  # its own cap, not prepare.max_heldout
    strata = pd.read_csv(dst / "results" / "qsm" / "qsm_strata.csv")
    assert set(strata["stratum"]) == {"all", "shorter", "matched", "longer", "rev_not_longer"}
    paired = pd.read_csv(dst / "results" / "qsm" / "qsm_paired.csv")
    assert set(paired["baseline"]) == {"length", "surface"} and paired["p_holm"].notna().any()
    for png in ("qsm_accuracy.png", "qsm_strata.png"):
        assert (dst / "results" / "qsm" / png).stat().st_size > 10_000

    intrinsic = pd.read_csv(dst / "results" / "intrinsic" / "intrinsic.csv")
    assert set(intrinsic["mode"]) == {"per_language", "pooled"} and set(intrinsic["method"]) == set(params["methods"])
    assert (dst / "figures" / "selection_composition.png").stat().st_size > 10_000
    trained = df[df["method"] != "base"]  # the base model has no selection, hence no coverage
    assert trained["cluster_coverage"].notna().all() and df["share_target_lang"].notna().all()
    for lang in params["languages"]:
        gen = dst / "results" / "runs" / "mdaq_das" / lang / "s0"
        alpaca = json.loads((gen / "alpaca_eval.json").read_text())
        assert len(alpaca) == params["generate"]["alpaca_eval_items"] and {"instruction", "output"} <= set(alpaca[0])
        mt = [json.loads(x) for x in (gen / "mt_bench.jsonl").read_text().splitlines()]
        assert len(mt) == params["generate"]["mt_bench_items"] and mt[0]["choices"][0]["turns"]

    out = _sh(["dvc", "repro"], dst, env)
    assert "Running stage" not in out  # second run is a no-op

    params["selectors"]["mdaq_das"]["random_state"] = 1
    (dst / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = _sh(["dvc", "status"], dst, env)
    changed = {line.strip().rstrip(":") for line in out.splitlines() if line and not line.startswith("\t")}
    changed = {c for c in changed if "@" in c or c in ("assets", "prepare", "leaderboard")}
    sah = {f"sah@mdaq_das-{size}-{lang}" for size in params["sah"]["sizes"] for lang in params["languages"]}
    selects = {f"select@mdaq_das-{lang}-0" for lang in params["languages"]}
    assert changed == {*selects, "select_pooled@mdaq_das", *sah}  # downstream


@pytest.mark.slow  # about 3 more minutes of dvc repro: keeps the default suite near its 15-minute budget
def test_judge_endpoint_and_a_new_method_reach_the_leaderboard(smoke_repo):
    """With a judge endpoint configured (a loopback OpenAI-compatible server started here), `dvc repro` reruns only
    the judge and the leaderboard and fills the win-rate columns; then a toy method added the way
    docs/adding-a-method.md says (one file, one import line, its params) joins every table with one `dvc repro`."""
    import re

    from mdaq.config import params_from_dict, run_grid, select_grid
    from tests.judge_stub import StubServer

    dst, env = smoke_repo
    params_path = dst / "params.yaml"
    params = yaml.safe_load(params_path.read_text())
    params["selectors"]["mdaq_das"].pop("random_state", None)  # undo the first test's edit
    params_path.write_text(yaml.safe_dump(params, sort_keys=False))
    _sh(["dvc", "repro"], dst, env)  # a no-op after the first test; the whole pipeline when this test runs alone
    server = StubServer()  # answers "[[1]]": a judge that always prefers the first answer
    try:
        params["judge"] = {
            "backend": "openai_compat",
            "model": "stub-judge",
            "base_url": server.base_url,
            "n_concurrent": 2,
            "reference": "full",
        }
        params_path.write_text(yaml.safe_dump(params, sort_keys=False))
        out = _sh(["dvc", "repro"], dst, env)
        ran = set(re.findall(r"Running stage '([^']+)'", out))
        assert ran == {"judge", "leaderboard"}, ran
        n_calls = server.count
        assert n_calls > 0
        wide = pd.read_csv(dst / "results" / "leaderboard_wide.csv")
        judged = wide[~wide["method"].isin(["full", "base"]) & (wide["lang"] != "all")]  # base: not judged
        assert (judged["win_rate_alpaca_eval"] == 50.0).all() and (judged["status"] == "ok").all()  # all ties
        assert (judged["judge_id"] == "openai_compat:stub-judge").all()
        verdict = json.loads((dst / "results" / "judge" / "mdaq_das" / "fr" / "judge.json").read_text())
        assert verdict["diagnostics"]["position_bias_rate"] >= 0.5  # identical answer pairs are ties without a call

        selectors = dst / "mdaq" / "selectors"
        doc = (dst / "docs" / "adding-a-method.md").read_text()
        code = re.search(r"```python\n(.*?)```", doc, flags=re.S).group(1)
        (selectors / "shortest.py").write_text("\n".join(line[3:] for line in code.splitlines()) + "\n")
        init = (selectors / "__init__.py").read_text()
        (selectors / "__init__.py").write_text(init.replace("    score_first,", "    score_first,\n    shortest,"))
        params["methods"].append("shortest")
        params["selectors"]["shortest"] = {}
        fresh = params_from_dict({**params, "runs": {}, "selects": {}})  # what `mdaq profile use` regenerates
        params["runs"], params["selects"] = run_grid(fresh), select_grid(fresh)
        params_path.write_text(yaml.safe_dump(params, sort_keys=False))
        out = _sh(["dvc", "repro"], dst, env)
        assert "select@shortest-fr-0" in out and "run@shortest-ja-0" in out
        long = pd.read_csv(dst / "results" / "leaderboard.csv")
        rows = long[long["method"] == "shortest"]
        assert set(rows["language"]) == {"fr", "ja", "all"} and "win_rate_alpaca_eval" in set(rows["metric"])
        assert '"method": "shortest"' in (dst / "results" / "leaderboard.html").read_text()
        # Without the cache the old methods' comparisons alone would cost n_calls again. The new method may cost
        # none: the smoke profile's random tiny model can answer exactly like `full`, and identical answers are
        # ties without a call.
        assert server.count - n_calls < n_calls
    finally:
        server.close()
