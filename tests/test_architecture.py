"""The tree matches docs/architecture.md, imports follow its table, no private name crosses modules, and every
dvc.yaml stage depends on its whole import closure."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

from mdaq.pipeline.imports import closure, missing_deps, stage_entry_modules
from tests.conftest import REPO

PKG = REPO / "mdaq"


def _map() -> dict[str, set[str] | None]:
    """unit -> allowed units (None: any), from the table of docs/architecture.md."""
    out: dict[str, set[str] | None] = {}
    for line in (REPO / "docs" / "architecture.md").read_text(encoding="utf-8").splitlines():
        m = re.match(r"\|\s*`([\w_]+)(/|\.py)`\s*\|[^|]*\|[^|]*\|([^|]*)\|", line)
        if m:
            allowed = m.group(3).strip()
            out[m.group(1)] = None if allowed == "any" else {a.strip() for a in allowed.split(",") if a.strip()}
    return out


def _unit(path: Path) -> str:
    rel = path.relative_to(PKG).parts
    return rel[0] if len(rel) > 1 else rel[0].removesuffix(".py")


def _imports(path: Path) -> list[tuple[str, list[str], int]]:
    """(module, imported names, line) of every absolute mdaq import in ``path``."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "mdaq":
            out.append((node.module, [a.name for a in node.names], node.lineno))
        elif isinstance(node, ast.Import):
            out += [(a.name, [], node.lineno) for a in node.names if a.name.split(".")[0] == "mdaq"]
    return out


def _library_files() -> list[Path]:
    return sorted(p for p in PKG.rglob("*.py") if "__pycache__" not in p.parts)


def test_tree_matches_the_map():
    table = set(_map())
    tree = {p.name for p in PKG.iterdir() if (p / "__init__.py").is_file()}
    tree |= {p.stem for p in PKG.glob("*.py") if p.name != "__init__.py"}
    assert tree == table, (
        f"in the tree only: {sorted(tree - table)}; in docs/architecture.md only: {sorted(table - tree)}"
    )


def test_imports_follow_the_map():
    allowed = _map()
    bad = []
    for path in _library_files():
        src = _unit(path)
        if src == "__init__" or allowed[src] is None:
            continue
        for module, _, line in _imports(path):
            parts = module.split(".")
            dst = parts[1] if len(parts) > 1 else "__init__"
            if dst not in (src, "__init__") and dst not in allowed[src]:
                bad.append(
                    f"{path.relative_to(REPO)}:{line}: {src} imports {module} (allowed: {sorted(allowed[src])})"
                )
    assert not bad, "\n".join(bad)


def test_no_private_name_crosses_modules():
    bad = []
    for path in [*_library_files(), *sorted((REPO / "tests").glob("*.py"))]:
        here = ".".join(path.relative_to(REPO).with_suffix("").parts)
        for module, names, line in _imports(path):
            for name in names:
                if name.startswith("_") and not name.startswith("__") and module != here:
                    bad.append(f"{path.relative_to(REPO)}:{line}: from {module} import {name}")
    assert not bad, "private names imported across modules:\n" + "\n".join(bad)


def test_every_stage_depends_on_its_import_closure():
    gaps = missing_deps(REPO)
    assert not gaps, f"dvc.yaml deps miss files the stages import (python -m mdaq profile deps): {gaps}"


@pytest.mark.parametrize(
    ("stage", "removed", "expected"),
    [
        ("qsm", "mdaq/models", "mdaq/models/lm.py"),  # batch order (commit 001fb0e changed it unseen)
        ("qsm", "mdaq/data", "mdaq/data/split.py"),  # which pairs it trains on
        ("qsm", "mdaq/quality", "mdaq/quality/train.py"),
        ("prepare", "mdaq/config.py", "mdaq/config.py"),
        ("leaderboard", "mdaq/judging", "mdaq/judging/prompts/judge_pairwise_v1.txt"),  # package data too
    ],
)
def test_a_removed_dependency_is_caught(tmp_path, stage, removed, expected):
    dvc = yaml.safe_load((REPO / "dvc.yaml").read_text(encoding="utf-8"))
    deps = dvc["stages"][stage]["deps"]
    assert removed in deps
    deps.remove(removed)
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump(dvc), encoding="utf-8")
    gaps = missing_deps(REPO, tmp_path / "dvc.yaml")
    assert list(gaps) == [stage] and expected in gaps[stage]


def test_closure_follows_function_level_imports_and_lazy_exports(tmp_path):
    root = tmp_path
    (root / "mdaq" / "a").mkdir(parents=True)
    (root / "mdaq" / "__init__.py").write_text("")
    (root / "mdaq" / "a" / "__init__.py").write_text("")
    (root / "mdaq" / "a" / "x.py").write_text("def f():\n    from mdaq.b import g\n    return g\n")
    (root / "mdaq" / "a" / "prompt.txt").write_text("data")
    (root / "mdaq" / "b.py").write_text("from mdaq import Pool\n")  # a lazy export of mdaq/__init__.py
    (root / "mdaq" / "types.py").write_text("")
    files = {str(p) for p in closure(["mdaq.a.x"], root)}
    assert files == {
        "mdaq/__init__.py",
        "mdaq/a/__init__.py",
        "mdaq/a/x.py",
        "mdaq/a/prompt.txt",
        "mdaq/b.py",
        "mdaq/types.py",
    }


def test_cli_stages_follow_only_their_subcommand():
    modules = stage_entry_modules("python -m mdaq assets build tiny-llama --root artifacts/base", REPO)
    assert "mdaq.models.assets" in modules and not any(m.startswith("mdaq.quality") for m in modules)
    with pytest.raises(KeyError, match="no CLI handler"):
        stage_entry_modules("python -m mdaq nonsense", REPO)


def test_a_handler_in_a_command_module_brings_that_module_not_the_others():
    modules = stage_entry_modules("python -m mdaq submit import x --out o --record r", REPO)
    assert {"mdaq.cli", "mdaq.cli_pipeline", "mdaq.submissions.stage", "mdaq.config"} <= modules
    assert not {"mdaq.cli_select", "mdaq.cli_features"} & modules  # registered by build_parser, not run
    files = closure(modules, REPO)
    assert Path("mdaq/cli_pipeline.py") in files
    # command modules are entry points: their function-level imports are followed only per handler (the Ray engine
    # is imported by the features/select handlers of the other command modules)
    assert Path("mdaq/features/ray_engine.py") not in files and Path("mdaq/cli_select.py") not in files


def test_sync_deps_restores_a_removed_dependency(tmp_path):
    from mdaq.pipeline.imports import sync_deps

    text = (REPO / "dvc.yaml").read_text(encoding="utf-8")
    broken = text.replace("      - mdaq/quality\n", "", 1)
    assert broken != text
    (tmp_path / "dvc.yaml").write_text(broken, encoding="utf-8")
    changed = sync_deps(REPO, tmp_path / "dvc.yaml")
    assert changed and not missing_deps(REPO, tmp_path / "dvc.yaml")
    assert (tmp_path / "dvc.yaml").read_text(encoding="utf-8") == text  # comments and layout untouched
