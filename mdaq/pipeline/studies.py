"""Studies: a profile's results committed beside the default profile's, and finished over several sittings.

The repository's top level (``params.yaml``, ``dvc.lock``, ``results/``, ``figures/``) belongs to the active profile,
the default one in every commit. Another profile's run lives in ``studies/<profile>/``: its ``params.yaml``, its
``dvc.lock`` and the outputs under ``results/`` and ``figures/`` that this lock records. ``scripts/study.sh PROFILE``
runs it in a separate git worktree: it restores the snapshot there, runs ``dvc repro`` and saves the snapshot back
after every finished stage (and on exit). Because the snapshot holds ``dvc.lock`` and every ``run`` stage output
(all committed, none git-ignored), a fresh clone does not train a run whose results are in the snapshot again: DVC
finds that run's dependencies and outputs unchanged. The upstream stages (data, QSM, features, selections) rerun
from scratch in a clone; they are deterministic on one kind of CPU in one precision (``scripts/study.sh`` keeps the
committed runs' precision: :func:`precision_plan`), and a selection that differs on another CPU reruns the runs that
depend on it, as it should (``dvc repro -s leaderboard`` builds the board from the committed runs as they are).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import yaml

from mdaq.errors import DataError
from mdaq.io import swap_in
from mdaq.names import check_name, path_under

TOP = ("params.yaml", "dvc.lock")  # always saved
REV = "study-rev"  # the code revision the study runs at (scripts/study.sh writes it; saved when present)
PUBLISHED = ("results", "figures")  # of these folders, only what the study's own stages wrote (dvc.lock's outs)


def snapshot_dir(root: str | Path, profile: str) -> Path:
    check_name(profile, "study", what="profile name")
    if profile == "default":
        raise DataError(profile, "a study is a profile other than `default` (its results are the top level)")
    return path_under(root, "studies", profile)


def _copy(src: Path, dst: Path) -> None:
    if src.is_dir():
        shutil.copytree(src, dst, symlinks=False, dirs_exist_ok=True)  # over a cleared folder's READMEs
    else:
        shutil.copy2(src, dst)


def lock_outputs(lock: dict) -> list[str]:
    """The outputs recorded in a ``dvc.lock`` that lie under ``results/`` or ``figures/``: what the profile's stages
    wrote. The worktree starts from the default profile's committed files, and a stage the study did not run
    (``dvc repro leaderboard`` skips the QSM evaluation) must not pass the default's results off as the study's."""
    outs = set()
    for entry in (lock.get("stages") or {}).values():
        for out in entry.get("outs") or []:
            path = out.get("path", "") if isinstance(out, dict) else ""
            if path.split("/")[0] in PUBLISHED:
                outs.add(path.rstrip("/"))
    return sorted(outs)


def _read_lock(work: Path) -> dict:
    try:  # DVC may be rewriting the lock right now: never save a torn one
        lock = yaml.safe_load((work / "dvc.lock").read_text())
    except yaml.YAMLError as e:
        raise DataError(work / "dvc.lock", f"not valid YAML (being written?): {e}") from None
    if not isinstance(lock, dict) or "stages" not in lock:
        raise DataError(work / "dvc.lock", "not a DVC lock file (no `stages`)")
    return lock


def save_snapshot(work: str | Path, dest: str | Path) -> list[str]:
    """Copy ``params.yaml``, ``dvc.lock`` and the outputs it records under ``results/`` and ``figures/`` from
    ``work`` (a finished or partly finished run) to ``dest``, replacing it whole. Returns the paths saved.

    The copy is built beside ``dest`` and swapped in by renames, so an interrupted save leaves the previous
    snapshot intact."""
    work, dest = Path(work), Path(dest)
    for name in TOP:
        if not (work / name).is_file():
            raise DataError(work / name, "missing: run `dvc repro` in this folder before saving a study")
    paths = [*TOP, *([REV] if (work / REV).is_file() else []), *lock_outputs(_read_lock(work))]
    paths = [p for p in paths if (work / p).exists()]
    tmp = dest.with_name(dest.name + ".saving")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    for rel in paths:
        (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
        _copy(work / rel, tmp / rel)
    swap_in(tmp, dest)
    return paths


KEEP = "README.md"  # a published folder's documentation (git-tracked), not a result


def _clear_results(folder: Path) -> None:
    """Delete every file under ``folder`` but its ``README.md`` files, and the folders left empty. The READMEs stay
    because they are documentation, and because they keep folders that a stage depends on present when the study's
    profile has no stage writing into them (``results/sah`` with no SAH runs: the leaderboard depends on it)."""
    if not folder.is_dir():
        return
    for path in sorted(folder.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if path.is_symlink() or path.is_file():
            if path.name != KEEP:
                path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    if not any(folder.iterdir()):
        folder.rmdir()


GROWABLE = ("seeds", "method_seeds", "methods", "runs")  # what a later sitting may add to (never remove from)


def design_change(old: str, new: str) -> str | None:
    """Why the ``params.yaml`` text ``new`` is not the study design ``old`` or a growth of it, or None.

    A study grows when a later sitting adds methods, seeds or runs and changes nothing else: every setting outside
    :data:`GROWABLE` is equal, every method of ``old`` is still in ``new``, and every run of ``old`` is in ``new``
    with the same definition. Its committed runs then stay current (DVC reruns nothing of them) and the new runs
    are added; the leaderboard is computed again over all of them."""
    a, b = yaml.safe_load(old) or {}, yaml.safe_load(new) or {}
    changed = sorted(str(k) for k in a.keys() | b.keys() if k not in GROWABLE and a.get(k) != b.get(k))
    if changed:
        return f"settings changed: {', '.join(changed)}"
    lost = [m for m in a.get("methods") or [] if m not in (b.get("methods") or [])]
    if lost:
        return f"methods removed: {', '.join(map(str, lost))}"
    runs_a, runs_b = a.get("runs") or {}, b.get("runs") or {}
    lost = sorted(str(r) for r in runs_a if runs_b.get(r) != runs_a[r])
    if lost:
        return f"runs removed or changed: {', '.join(lost)}"
    return None


def restore_snapshot(src: str | Path, work: str | Path) -> list[str]:
    """Put a saved snapshot back into ``work`` (a worktree whose ``params.yaml`` is the study's profile).

    Refuses when the profile written by ``mdaq profile use`` differs from the snapshot's ``params.yaml`` other than
    by growing (:func:`design_change`): the study's design changed since its runs were made, and mixing the two
    would leave stale results in the folder (move or delete ``studies/<profile>/`` to start the study afresh). A
    grown design keeps ``work``'s ``params.yaml`` (reported as ``params.yaml (grown)``)."""
    src, work = Path(src), Path(work)
    if not (src / "params.yaml").is_file():
        raise DataError(src, "not a study snapshot (no params.yaml)")
    current = work / "params.yaml"
    grown = False
    if current.is_file() and current.read_text() != (src / "params.yaml").read_text():
        problem = design_change((src / "params.yaml").read_text(), current.read_text())
        if problem:
            raise DataError(
                src / "params.yaml",
                f"differs from {current} ({problem}: the profile changed since this study's runs were made, beyond "
                "adding methods, seeds or runs); move the snapshot away to start the study afresh",
            )
        grown = True
    for name in PUBLISHED:  # the default profile's results are not the study's
        _clear_results(work / name)
    restored = []
    if grown:
        restored.append("params.yaml (grown)")
    for name in (*TOP, REV, *PUBLISHED):
        if grown and name == "params.yaml":
            continue
        if (src / name).exists():
            target = work / name
            if target.is_file():
                target.unlink()
            _copy(src / name, target)
            restored.append(name)
    return restored


def run_precisions(snapshot: str | Path) -> dict[str, list[str]]:
    """The precisions the study's committed runs trained and scored in: ``{precision: [run folders]}``, read from
    each run's ``train.json`` and ``metrics.json`` (``hardware.precision``: what ``auto`` resolved to on the machine
    of that sitting). A study whose profile says ``precision: auto`` resolves it per machine, so a sitting on a CPU
    with fast bf16 would train the new runs in bf16 beside committed fp32 runs: ``scripts/study.sh`` reads this to
    run every later sitting in the committed runs' precision (``docs/study-power.md``)."""
    runs = Path(snapshot) / "results" / "runs"
    found: dict[str, list[str]] = {}
    for record in sorted(runs.glob("*/*/s*/*.json")) if runs.is_dir() else []:
        if record.name not in ("train.json", "metrics.json"):
            continue
        try:
            hardware = json.loads(record.read_text()).get("hardware") or {}
        except (OSError, ValueError, AttributeError) as e:
            raise DataError(record, f"not a readable run record: {e}") from None
        precision = hardware.get("precision")
        if precision:
            run = record.parent.relative_to(runs).as_posix()
            if run not in found.setdefault(str(precision), []):
                found[str(precision)].append(run)
    return found


def committed_precision(snapshot: str | Path) -> str | None:
    """The one precision of every committed run of the study (None when no run has a record yet).

    Raises
    ------
    DataError
        The committed runs mix precisions: name them, so they can be moved out and rerun.
    """
    found = run_precisions(snapshot)
    if len(found) > 1:
        detail = "; ".join(f"{p}: {', '.join(runs[:6])}{' ...' if len(runs) > 6 else ''}" for p, runs in found.items())
        raise DataError(
            Path(snapshot) / "results" / "runs",
            f"the committed runs mix precisions ({detail}): a study's runs must share one; move the odd ones out "
            "and rerun them",
        )
    return next(iter(found), None)


HIDE_CPU_BF16 = "hide-cpu-bf16"


def precision_plan(committed: str | None, device: str, fast: bool) -> str:
    """How a sitting on this machine keeps the study's one precision, given the committed runs' precision
    (:func:`committed_precision`), the device ``auto`` picks here and whether it multiplies bf16 fast
    (:func:`mdaq.hardware.fast_bf16`): ``"as-is"`` when ``precision: auto`` resolves here as it did for the committed
    runs (or no run is committed yet), :data:`HIDE_CPU_BF16` when the committed runs are fp32 and this CPU has fast
    bf16 (``scripts/study.sh`` then hides its bf16 flags from the study's processes, so ``auto`` resolves to fp32).

    Raises
    ------
    DataError
        The committed runs are bf16 and this machine cannot run bf16 fast (a CPU would emulate it ~100x slower), or
        they are fp32 and this machine is a fast-bf16 GPU: finish the study on a machine like the first sitting's.
    """
    here = "bf16" if fast else "fp32"
    if committed is None or committed == here:
        return "as-is"
    if committed == "fp32" and str(device).startswith("cpu"):
        return HIDE_CPU_BF16
    raise DataError(
        device,
        f"the study's committed runs used {committed} and `precision: auto` resolves to {here} here: finish it on a "
        f"machine that resolves to {committed} (or set MDAQ_STUDY_MIXED_PRECISION=1 to mix, and say so)",
    )
