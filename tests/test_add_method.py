"""Follow docs/adding-a-method.md with a toy method: register, satisfy the contract, select from a pool."""

from __future__ import annotations

import re

import numpy as np
import pytest

from mdaq import SELECTORS, get_selector

from .conftest import REPO


@pytest.fixture
def toy_method(monkeypatch, tmp_path):
    """Execute the documented example file as a module, registering `shortest` only for this test."""
    monkeypatch.setattr(SELECTORS, "_items", dict(SELECTORS._items))
    doc = (REPO / "docs" / "adding-a-method.md").read_text(encoding="utf-8")
    code = re.search(r"```python\n(.*?)```", doc, flags=re.S).group(1)
    code = "\n".join(line[3:] if line.startswith("   ") else line for line in code.splitlines())
    namespace: dict = {"__name__": "toy_shortest"}
    exec(compile(code, str(tmp_path / "shortest.py"), "exec"), namespace)  # noqa: S102  (our own doc's example)
    return namespace["ShortestSelector"]


def test_documented_method_registers_and_selects(toy_method, toy_pool):
    assert "shortest" in SELECTORS.names()
    idx = get_selector("shortest", {"max_chars": 50}).select(toy_pool, 4)
    lengths = [len(toy_pool.samples[i].output) for i in idx]
    assert lengths == sorted(lengths) and len(idx) == 4 and idx.dtype == np.int64
    with pytest.raises(ValueError, match="selectors.shortest"):
        get_selector("shortest", {"bogus": 1})


def _doc_blocks(lang: str) -> list[str]:
    doc = (REPO / "docs" / "adding-a-method.md").read_text(encoding="utf-8")
    blocks = re.findall(rf"```{lang}\n(.*?)```", doc, flags=re.S)
    return ["\n".join(line[3:] if line.startswith("   ") else line for line in b.splitlines()) + "\n" for b in blocks]


def test_the_three_documented_edits_add_a_method(tmp_path):
    """One file, one registry line, one params entry — exactly as docs/adding-a-method.md says, on a copy of the
    repository: the method is registered, its params entry agrees with its defaults, it passes the contract."""
    import os
    import shutil
    import subprocess
    import sys

    repo = tmp_path / "repo"
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    for rel in tracked.splitlines():
        if rel.split("/")[0] in ("mdaq", "tests", "profiles", "docs", "submissions") or rel in (
            "pyproject.toml",
            "params.yaml",
        ):
            (repo / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, repo / rel)
    (code,) = _doc_blocks("python")
    registry_line, params_entry = _doc_blocks("text")
    # 1. one file
    (repo / "mdaq" / "selectors" / "shortest.py").write_text(code, encoding="utf-8")
    # 2. one registry line
    init = repo / "mdaq" / "selectors" / "__init__.py"
    head = "from mdaq.selectors import (\n"
    init.write_text(init.read_text(encoding="utf-8").replace(head, head + registry_line, 1), encoding="utf-8")
    # 3. one params entry
    base = repo / "profiles" / "default.yaml"
    base.write_text(base.read_text(encoding="utf-8").replace("\nselectors:\n", "\nselectors:\n" + params_entry, 1))

    env = {**os.environ, "PYTHONPATH": str(repo)}

    def run(*args: str) -> str:
        out = subprocess.run([sys.executable, *args], cwd=repo, env=env, capture_output=True, text=True)
        assert out.returncode == 0, out.stdout + out.stderr
        return out.stdout

    run("-m", "mdaq", "profile", "use", "default")
    assert "shortest" in run("-m", "mdaq", "ls")
    tests = [
        "tests/test_selector_contract.py",
        "tests/test_config.py::test_one_place_for_defaults_the_default_profile",
    ]
    report = run("-m", "pytest", "-q", "-p", "no:cacheprovider", *tests, "-k", "shortest or one_place")
    assert re.search(r"\b(\d+) passed", report) and int(re.search(r"\b(\d+) passed", report).group(1)) >= 5
