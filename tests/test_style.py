"""Formatting and lint are on for the whole tree, notebooks included (`ruff format`, `ruff check`)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO


def _ruff(*args: str) -> subprocess.CompletedProcess:
    pytest.importorskip("ruff")  # a dev requirement (requirements/lock.txt)
    return subprocess.run([sys.executable, "-m", "ruff", *args], cwd=REPO, capture_output=True, text=True)


def test_tree_is_ruff_formatted():
    out = _ruff("format", "--check", ".")
    assert out.returncode == 0, f"run `.venv/bin/ruff format .`:\n{out.stdout}{out.stderr}"


def test_tree_is_lint_clean():
    out = _ruff("check", ".")
    assert out.returncode == 0, f"run `.venv/bin/ruff check --fix .`:\n{out.stdout}{out.stderr}"


def test_no_formatter_escapes():
    marked = subprocess.run(
        ["git", "grep", "-n", "-E", "fmt: (skip|off)", "--", "*.py", "*.ipynb"],
        cwd=REPO,
        capture_output=True,
        text=True,
    ).stdout
    assert not marked.strip(), f"formatting turned off here:\n{marked}"
