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
