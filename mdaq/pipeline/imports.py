"""Which library files each pipeline stage runs: the import closure of its notebook or CLI command, and the
``dvc.yaml`` dependencies that fail to cover it.

A stage's code is its papermill notebook (the code cells) or, for ``python -m mdaq GROUP SUB`` commands, the CLI
handler of that subcommand (``mdaq.cli._GROUP_SUB`` or ``_GROUP``, with the CLI helpers it calls). From there the
closure follows every ``import mdaq...`` / ``from mdaq... import`` statement, at module level *and* inside functions
(a stage may call any function of a module it imports), the package ``__init__`` files on the way, the lazy
top-level names of :data:`mdaq.EXPORTS`, and the data files that live in an imported package's folder (prompts,
task YAMLs, the MIDB manifest). Static and conservative: it can list a file a run does not touch, never miss one
that an import statement names.

``python -m mdaq profile deps`` prints what each stage lacks; ``tests/test_architecture.py`` fails on any gap.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

import yaml

PACKAGE = "mdaq"


def _module_file(root: Path, module: str) -> Path | None:
    """``root/mdaq/a/b.py`` or ``root/mdaq/a/b/__init__.py`` for ``mdaq.a.b``; None when neither exists."""
    base = root.joinpath(*module.split("."))
    for cand in (base.with_suffix(".py"), base / "__init__.py"):
        if cand.is_file():
            return cand
    return None


def _imported_modules(tree: ast.AST, root: Path) -> set[str]:
    """mdaq modules named by the import statements anywhere in ``tree``."""
    from mdaq import EXPORTS

    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == PACKAGE}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] != PACKAGE:
                continue
            found.add(node.module)
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                if _module_file(root, sub) is not None:
                    found.add(sub)
                elif node.module == PACKAGE and alias.name in EXPORTS:
                    found.add(EXPORTS[alias.name])
    return found


@cache
def _module_imports(path: Path, root: Path) -> frozenset[str]:
    return frozenset(_imported_modules(ast.parse(path.read_text(encoding="utf-8"), str(path)), root))


def _with_parents(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


# entry modules whose own file runs but whose function-level imports are followed per subcommand (cli_modules):
# mdaq.cli, mdaq.__main__ and the command modules mdaq.cli_*


def _shallow(module: str) -> bool:
    return module in (f"{PACKAGE}.cli", f"{PACKAGE}.__main__") or module.startswith(f"{PACKAGE}.cli_")


def closure(modules: Iterable[str], root: str | Path = ".") -> set[Path]:
    """Files (relative to ``root``) that importing ``modules`` may execute, plus their packages' data files."""
    root = Path(root).resolve()
    modules = set(modules)
    files: set[Path] = {
        p.relative_to(root) for m in modules if _shallow(m) and (p := _module_file(root, m)) is not None
    }
    todo = [m for mod in modules if not _shallow(mod) for m in _with_parents(mod)]
    seen: set[str] = set()
    while todo:
        mod = todo.pop()
        if mod in seen or _shallow(mod):  # reached from a library module: not followed
            continue
        seen.add(mod)
        path = _module_file(root, mod)
        if path is None:
            continue
        files.add(path.relative_to(root))
        todo += [m for imp in _module_imports(path, root) for m in _with_parents(imp)]
    for path in list(files):
        if path.name == "__init__.py" and path.parent != Path(PACKAGE):
            files |= {
                p.relative_to(root)
                for p in (root / path.parent).rglob("*")
                if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts
            }
    return files


def notebook_modules(path: str | Path, root: Path) -> set[str]:
    """mdaq modules imported by a notebook's code cells (IPython magics and shell lines skipped)."""
    cells = json.loads(Path(path).read_text(encoding="utf-8"))["cells"]
    src = "\n".join(
        "\n".join(line for line in "".join(c["source"]).splitlines() if not line.lstrip().startswith(("%", "!")))
        for c in cells
        if c["cell_type"] == "code"
    )
    return _imported_modules(ast.parse(src, str(path)), root)


def _cli_functions(root: Path) -> dict[str, tuple[str, ast.Module, dict[str, ast.FunctionDef]]]:
    """Per command-line module (``mdaq/cli.py`` and the command modules ``mdaq/cli_*.py`` it registers): its module
    name, parsed file and top-level functions."""
    found = {}
    for path in sorted((root / PACKAGE).glob("cli*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        funcs = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
        found[path.stem] = (f"{PACKAGE}.{path.stem}", tree, funcs)
    return found


def cli_modules(words: list[str], root: Path) -> set[str]:
    """mdaq modules a ``python -m mdaq WORDS...`` command imports: ``mdaq.cli``'s own imports, and the module that
    holds the subcommand's handler (``_<group>_<command>`` or ``_<command>``, in ``mdaq/cli.py`` or a command module
    ``mdaq/cli_*.py``) with its own imports and those of the handler and the helpers it calls in that module. The
    other command modules, which ``build_parser`` imports only to register their parsers, are left out: their parser
    code cannot change a stage's outputs."""
    modules = _cli_functions(root)
    names = [w.replace("-", "_") for w in words if not w.startswith("-")]
    owner = handler = None
    for k in (2, 1):
        name = f"_{'_'.join(names[:k])}"
        owner = next((stem for stem in modules if name in modules[stem][2]), None)  # cli.py sorts first
        if owner is not None:
            handler = name
            break
    if handler is None:
        raise KeyError(f"no CLI handler for `python -m mdaq {' '.join(words)}` in {root / PACKAGE}/cli*.py")
    found = {f"{PACKAGE}.cli", f"{PACKAGE}.__main__"}
    for stem in {"cli", owner}:
        module, tree, _ = modules[stem]
        top = ast.Module(body=[n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)], type_ignores=[])
        found |= {module} | _imported_modules(top, root)
    funcs = modules[owner][2]
    todo, done = [handler], set()
    while todo:
        name = todo.pop()
        if name in done:
            continue
        done.add(name)
        found |= _imported_modules(funcs[name], root)
        todo += [
            n.func.id
            for n in ast.walk(funcs[name])
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in funcs
        ]
    return found


def stage_entry_modules(cmd: str | list[str], root: Path) -> set[str]:
    """The mdaq modules a stage command runs directly (its notebooks' imports, its CLI subcommands')."""
    text = " ".join(cmd) if isinstance(cmd, list) else cmd
    found: set[str] = set()
    for nb in re.findall(r"papermill\s+(?:-k\s+\S+\s+|--[\w-]+\s+)*(\S+\.ipynb)", text):
        found |= notebook_modules(root / nb, root)
    for m in re.finditer(r"python\s+-m\s+mdaq\s+([^;&|\n]+)", text):
        found |= cli_modules(m.group(1).split(), root)
    return found


def _covered(path: Path, deps: list[str]) -> bool:
    return any(path == Path(d) or Path(d) in path.parents for d in deps)


def missing_deps(root: str | Path = ".", dvc_file: str = "dvc.yaml") -> dict[str, list[str]]:
    """Per stage of ``dvc_file``: the library files in its import closure that none of its ``deps`` covers
    (a file dep, or a folder dep above it). Empty when every stage's dependencies are complete."""
    root = Path(root).resolve()
    stages = yaml.safe_load((root / dvc_file).read_text(encoding="utf-8"))["stages"]
    out: dict[str, list[str]] = {}
    for name, stage in stages.items():
        stage = stage.get("do", stage)  # a `foreach` stage keeps its definition under `do`
        deps = [str(d) if isinstance(d, str) else next(iter(d)) for d in stage.get("deps", [])]
        need = closure(stage_entry_modules(stage["cmd"], root), root)
        gaps = sorted(str(p) for p in need if not _covered(p, deps))
        if gaps:
            out[name] = gaps
    return out


def stage_closures(root: str | Path = ".", dvc_file: str = "dvc.yaml") -> dict[str, Any]:
    """Per stage: the package folders and root modules its import closure touches (what its deps should name)."""
    root = Path(root).resolve()
    stages = yaml.safe_load((root / dvc_file).read_text(encoding="utf-8"))["stages"]
    out = {}
    for name, stage in stages.items():
        stage = stage.get("do", stage)
        need = closure(stage_entry_modules(stage["cmd"], root), root)
        out[name] = sorted({str(Path(*p.parts[:2])) if len(p.parts) > 2 else str(p) for p in need})
    return out


def sync_deps(root: str | Path = ".", dvc_file: str = "dvc.yaml") -> list[str]:
    """Rewrite the ``mdaq/...`` entries of every stage's ``deps`` in ``dvc_file`` to :func:`stage_closures` (other
    deps, comments and layout untouched); returns the stages whose list changed. ``mdaq profile deps --write``."""
    root = Path(root).resolve()
    closures = stage_closures(root, dvc_file)
    lines = (root / dvc_file).read_text(encoding="utf-8").split("\n")
    out: list[str] = []
    stage, in_deps, old, indent, changed = None, False, [], "", []

    def close() -> None:
        if sorted(old) != closures[stage]:
            changed.append(stage)
        out.extend(f"{indent}- {unit}" for unit in closures[stage])

    for line in lines:
        text = line.strip()
        if in_deps and not text.startswith("- "):
            close()
            in_deps = False
        if re.match(r"^  [A-Za-z_][\w-]*:\s*$", line):
            stage = text[:-1]
        if text == "deps:":
            in_deps, old, indent = True, [], line[: len(line) - len(line.lstrip())] + "  "
        elif in_deps and text.startswith(f"- {PACKAGE}/"):
            old.append(text[2:])
            continue
        out.append(line)
    if in_deps:
        close()
    (root / dvc_file).write_text("\n".join(out), encoding="utf-8")
    return changed
